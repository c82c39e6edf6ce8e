//! Generates the wire models of the services livestack serves, one file
//! each in `crates/livestack-model/src/`: Live (`generated.rs`, from
//! `spec/api.json`, the current actions, and `spec/legacy-api.json`, actions
//! removed from the current model that old clients still call), CAM
//! (`generated_cam.rs`, from `spec/cam-api.json`) and STS
//! (`generated_sts.rs`, from `spec/sts-api.json`); the last two are tccli's
//! own model files, copied unchanged.
//!
//! The generator is deterministic: objects and actions are emitted sorted
//! by name, members in spec order, and the result is piped through
//! `rustfmt`, so the committed file can be compared byte for byte (see the
//! `generated_model_matches_the_spec` test).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Deserialize;

/// One generated model: which spec files it comes from, where it goes.
pub(crate) struct Target {
    /// The current model, relative to the workspace root.
    spec: &'static str,
    /// Actions removed from the current model, if the service has any.
    legacy: Option<&'static str>,
    /// Where the generated model goes, relative to the workspace root.
    pub(crate) output: &'static str,
    /// The first line of the module doc.
    title: &'static str,
}

/// Every generated model.
pub(crate) const TARGETS: &[Target] = &[
    Target {
        spec: "spec/api.json",
        legacy: Some("spec/legacy-api.json"),
        output: "crates/livestack-model/src/generated.rs",
        title: "The Live API 2018-08-01 wire model",
    },
    Target {
        spec: "spec/cam-api.json",
        legacy: None,
        output: "crates/livestack-model/src/generated_cam.rs",
        title: "The CAM API 2019-01-16 wire model",
    },
    Target {
        spec: "spec/sts-api.json",
        legacy: None,
        output: "crates/livestack-model/src/generated_sts.rs",
        title: "The STS API 2018-08-13 wire model",
    },
];

/// Doc comments are cut to this many characters (not bytes).
const DOC_MAX_CHARS: usize = 160;

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

// ---------------------------------------------------------------------------
// Spec format (only the fields we use; unknown fields are ignored).

#[derive(Deserialize, Default)]
struct SpecFile {
    actions: BTreeMap<String, SpecAction>,
    objects: BTreeMap<String, SpecObject>,
}

#[derive(Deserialize)]
struct SpecAction {
    input: String,
    output: String,
}

#[derive(Deserialize)]
struct SpecObject {
    members: Vec<SpecMember>,
    usage: Option<String>,
    document: Option<String>,
}

#[derive(Deserialize)]
struct SpecMember {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    member: String,
    required: Option<bool>,
    output_required: Option<bool>,
    value_allowed_null: Option<bool>,
    document: Option<String>,
}

// ---------------------------------------------------------------------------
// The merged model.

/// How a struct is used on the wire, which decides derives and optionality.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// An action's input (`*Request`).
    Request,
    /// An action's output (`*Response`).
    Response,
    /// A nested object only ever sent by callers (`usage: "in"`).
    In,
    /// A nested object only ever returned (`usage: "out"`).
    Out,
    /// A nested object both sent and returned (`usage: "both"`).
    Both,
}

impl Role {
    /// Whether optionality follows the input `required` flag (else the
    /// output `output_required`/`value_allowed_null` flags).
    fn is_input(self) -> bool {
        matches!(self, Role::Request | Role::In)
    }
}

/// A member's type, resolved and checked against the object table.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Type {
    Int,
    Uint,
    Float,
    Bool,
    String,
    Object(String),
    List(Box<Type>),
}

struct Field {
    wire: String,
    ident: String,
    ty: Type,
    /// The input `required` flag (what the validator checks).
    required: bool,
    optional: bool,
    boxed: bool,
    doc: String,
}

struct Struct {
    name: String,
    role: Role,
    doc: String,
    fields: Vec<Field>,
}

struct Action {
    name: String,
    input: String,
    output: String,
    legacy: bool,
}

struct Model {
    structs: Vec<Struct>,
    actions: Vec<Action>,
}

// ---------------------------------------------------------------------------
// Entry points.

/// Reads the spec files of `target` under `root` and returns the formatted
/// contents of its output file.
pub(crate) fn generate(root: &Path, target: &Target) -> Result<String> {
    let current = read_spec(&root.join(target.spec))?;
    let legacy = match target.legacy {
        Some(path) => read_spec(&root.join(path))?,
        None => SpecFile::default(),
    };
    let model = build_model(current, legacy)?;
    let sources = match target.legacy {
        Some(legacy) => format!("{} and {legacy}", target.spec),
        None => target.spec.to_owned(),
    };
    let source = render(&model, &sources, target.title);
    rustfmt(root, &source)
}

/// Regenerates the committed files; returns the ones that changed.
pub(crate) fn write(root: &Path) -> Result<Vec<&'static str>> {
    let mut changed = Vec::new();
    for target in TARGETS {
        let generated = generate(root, target)?;
        let path = root.join(target.output);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != generated {
            std::fs::write(&path, generated)
                .with_context(|| format!("writing {}", path.display()))?;
            changed.push(target.output);
        }
    }
    Ok(changed)
}

/// The committed files that differ from what the generator would write now.
pub(crate) fn stale(root: &Path) -> Result<Vec<&'static str>> {
    let mut stale = Vec::new();
    for target in TARGETS {
        let generated = generate(root, target)?;
        let path = root.join(target.output);
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if old != generated {
            stale.push(target.output);
        }
    }
    Ok(stale)
}

fn read_spec(path: &Path) -> Result<SpecFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// ---------------------------------------------------------------------------
// Building the model.

fn build_model(current: SpecFile, legacy: SpecFile) -> Result<Model> {
    // Objects: legacy first, the current model wins on a name clash.
    let mut objects: BTreeMap<String, (SpecObject, bool)> = BTreeMap::new();
    for (name, object) in legacy.objects {
        objects.insert(name, (object, true));
    }
    for (name, object) in current.objects {
        objects.insert(name, (object, false));
    }

    let mut actions: BTreeMap<String, Action> = BTreeMap::new();
    for (name, action) in legacy.actions {
        let entry = Action {
            name: name.clone(),
            input: action.input,
            output: action.output,
            legacy: true,
        };
        actions.insert(name, entry);
    }
    for (name, action) in current.actions {
        let entry = Action {
            name: name.clone(),
            input: action.input,
            output: action.output,
            legacy: false,
        };
        actions.insert(name, entry);
    }

    let mut inputs = BTreeSet::new();
    let mut outputs = BTreeSet::new();
    for action in actions.values() {
        for (object, set) in [(&action.input, &mut inputs), (&action.output, &mut outputs)] {
            if !objects.contains_key(object) {
                bail!("action {} refers to unknown object {object}", action.name);
            }
            set.insert(object.clone());
        }
    }

    let mut structs = Vec::with_capacity(objects.len());
    for (name, (object, legacy)) in &objects {
        let role = if inputs.contains(name) {
            Role::Request
        } else if outputs.contains(name) {
            Role::Response
        } else {
            match object.usage.as_deref() {
                Some("in") => Role::In,
                Some("out") => Role::Out,
                Some("both") => Role::Both,
                other => bail!("object {name}: unknown usage {other:?}"),
            }
        };
        if inputs.contains(name) && outputs.contains(name) {
            bail!("object {name} is both an action input and an action output");
        }

        let mut idents = BTreeSet::new();
        let mut fields = Vec::with_capacity(object.members.len());
        for member in &object.members {
            if role == Role::Response && member.name == "RequestId" {
                continue; // the response envelope adds it
            }
            let ty = resolve_type(member, &objects)
                .with_context(|| format!("object {name}, member {}", member.name))?;
            let required = member.required.unwrap_or(false);
            let optional = if role.is_input() {
                !required
            } else {
                let promised = member.output_required.unwrap_or(false)
                    && !member.value_allowed_null.unwrap_or(false);
                !promised
            };
            let ident = unique_ident(&member.name, &mut idents);
            let doc = clean_doc(member.document.as_deref().unwrap_or(""))
                .unwrap_or_else(|| format!("`{}`.", member.name));
            fields.push(Field {
                wire: member.name.clone(),
                ident,
                ty,
                required,
                optional,
                boxed: false,
                doc,
            });
        }
        let doc = clean_doc(object.document.as_deref().unwrap_or(""))
            .unwrap_or_else(|| format!("`{name}`."));
        let doc = if *legacy {
            format!("(legacy) {doc}")
        } else {
            doc
        };
        structs.push(Struct {
            name: name.clone(),
            role,
            doc,
            fields,
        });
    }

    box_recursive_fields(&mut structs);

    Ok(Model {
        structs,
        actions: actions.into_values().collect(),
    })
}

fn resolve_type(
    member: &SpecMember,
    objects: &BTreeMap<String, (SpecObject, bool)>,
) -> Result<Type> {
    let element = |name: &str| -> Result<Type> {
        Ok(match name {
            "int64" => Type::Int,
            "uint64" => Type::Uint,
            "float" => Type::Float,
            "bool" => Type::Bool,
            "string" | "datetime" | "date" => Type::String,
            object if objects.contains_key(object) => Type::Object(object.to_owned()),
            other => bail!("unknown element type {other:?}"),
        })
    };
    let ty = match (member.kind.as_str(), member.member.as_str()) {
        ("int", "int64") => Type::Int,
        ("int", "uint64") => Type::Uint,
        ("float", "float") => Type::Float,
        ("bool", "bool") => Type::Bool,
        ("string", "string" | "datetime" | "date") => Type::String,
        ("object", object) => match element(object)? {
            ty @ Type::Object(_) => ty,
            _ => bail!("`object` member of non-object type {object:?}"),
        },
        ("list", elem) => Type::List(Box::new(element(elem)?)),
        (kind, elem) => bail!("unsupported type {kind:?} with member {elem:?}"),
    };
    Ok(ty)
}

/// Boxes direct (non-`Vec`) object fields that close a cycle, so that every
/// struct has a finite size. The current spec has no cycles.
fn box_recursive_fields(structs: &mut [Struct]) {
    let edges: BTreeMap<String, Vec<String>> = structs
        .iter()
        .map(|s| {
            let targets = s
                .fields
                .iter()
                .filter_map(|f| match &f.ty {
                    Type::Object(target) => Some(target.clone()),
                    _ => None,
                })
                .collect();
            (s.name.clone(), targets)
        })
        .collect();
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(node) = stack.pop() {
            if node == to {
                return true;
            }
            if seen.insert(node.clone()) {
                stack.extend(edges.get(&node).into_iter().flatten().cloned());
            }
        }
        false
    };
    for s in structs.iter_mut() {
        for field in &mut s.fields {
            if let Type::Object(target) = &field.ty {
                field.boxed = reaches(target, &s.name);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Names and docs.

const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "union", "unsafe", "unsized",
    "use", "virtual", "where", "while", "yield",
];

/// `snake_case` for a PascalCase wire name, keeping acronyms together:
/// `BCName` -> `bc_name`, `WebRTCPlayUrl` -> `web_rtc_play_url`,
/// `URL` -> `url`, `P95PeakBandwidth` -> `p95_peak_bandwidth`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Rust identifier for `wire`, unique among `taken` (which it joins).
fn unique_ident(wire: &str, taken: &mut BTreeSet<String>) -> String {
    let base = snake_case(wire);
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    match candidate.as_str() {
        "self" | "super" | "crate" | "_" => format!("{candidate}_"),
        k if KEYWORDS.contains(&k) => format!("r#{candidate}"),
        _ => candidate,
    }
}

/// One line of plain text from the spec's HTML: tags stripped, the common
/// entities decoded, whitespace collapsed, cut to [`DOC_MAX_CHARS`]
/// characters. `None` when nothing is left.
pub(crate) fn clean_doc(html: &str) -> Option<String> {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        text.push_str(&rest[..lt]);
        let after = &rest[lt + 1..];
        let is_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!');
        match after.find('>') {
            Some(gt) if is_tag => {
                text.push(' ');
                rest = &after[gt + 1..];
            }
            _ => {
                text.push('<');
                rest = after;
            }
        }
    }
    text.push_str(rest);

    let decoded = decode_entities(&text);
    let words: Vec<&str> = decoded
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    if line.is_empty() {
        return None;
    }
    if line.chars().count() <= DOC_MAX_CHARS {
        return Some(line);
    }
    let mut cut: String = line.chars().take(DOC_MAX_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    Some(cut)
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let entity = after
            .find(';')
            .filter(|&semi| semi <= 8)
            .and_then(|semi| decode_entity(&after[1..semi]).map(|c| (c, semi)));
        match entity {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering.

fn rust_type(ty: &Type) -> String {
    match ty {
        Type::Int => "i64".to_owned(),
        Type::Uint => "u64".to_owned(),
        Type::Float => "f64".to_owned(),
        Type::Bool => "bool".to_owned(),
        Type::String => "String".to_owned(),
        Type::Object(name) => name.clone(),
        Type::List(elem) => format!("Vec<{}>", rust_type(elem)),
    }
}

fn schema_ty(ty: &Type) -> String {
    match ty {
        Type::Int => "Ty::Int".to_owned(),
        Type::Uint => "Ty::Uint".to_owned(),
        Type::Float => "Ty::Float".to_owned(),
        Type::Bool => "Ty::Bool".to_owned(),
        Type::String => "Ty::String".to_owned(),
        Type::Object(name) => format!("Ty::Object({name:?})"),
        Type::List(elem) => format!("Ty::List(&{})", schema_ty(elem)),
    }
}

fn render(model: &Model, sources: &str, title: &str) -> String {
    let mut out = String::with_capacity(1 << 21);
    let _ = writeln!(
        out,
        "// @generated by `cargo xtask codegen` from {sources}. Do not edit.\n"
    );
    let _ = writeln!(
        out,
        "//! {title}: one struct per spec object, plus the schema tables behind \
         `crate::schema`.\n"
    );
    for s in &model.structs {
        render_struct(&mut out, s);
    }
    render_tables(&mut out, model);
    out
}

fn render_struct(out: &mut String, s: &Struct) {
    let derives = match s.role {
        Role::Response => "Debug, Clone, Default, serde::Serialize",
        Role::Request | Role::In | Role::Out | Role::Both => {
            "Debug, Clone, Default, serde::Serialize, serde::Deserialize"
        }
    };
    let _ = writeln!(out, "/// {}", s.doc);
    let _ = writeln!(out, "#[derive({derives})]");
    if s.role == Role::Both {
        // Callers may leave out members that responses always carry.
        out.push_str("#[serde(default)]\n");
    }
    if s.fields.is_empty() {
        let _ = writeln!(out, "pub struct {} {{}}\n", s.name);
        return;
    }
    let _ = writeln!(out, "pub struct {} {{", s.name);
    for f in &s.fields {
        let mut ty = rust_type(&f.ty);
        if f.boxed {
            ty = format!("Box<{ty}>");
        }
        if f.optional {
            ty = format!("Option<{ty}>");
        }
        let skip = if f.optional && s.role.is_input() {
            ", skip_serializing_if = \"Option::is_none\""
        } else {
            ""
        };
        let _ = writeln!(out, "    /// {}", f.doc);
        let _ = writeln!(out, "    #[serde(rename = {:?}{skip})]", f.wire);
        let _ = writeln!(out, "    pub {}: {ty},", f.ident);
    }
    out.push_str("}\n\n");
}

fn render_tables(out: &mut String, model: &Model) {
    out.push_str(
        "/// The schema tables, re-exported by `crate::schema`.\n\
         pub(crate) mod tables {\n\
         use crate::schema::{ActionSchema, MemberSchema, StructSchema, Ty};\n\n",
    );

    out.push_str("/// Every struct, sorted by name.\n");
    out.push_str("pub(crate) const STRUCTS: &[StructSchema] = &[\n");
    for s in &model.structs {
        let _ = writeln!(out, "StructSchema {{ name: {:?}, members: &[", s.name);
        for f in &s.fields {
            let _ = writeln!(
                out,
                "MemberSchema {{ name: {:?}, ty: {}, required: {} }},",
                f.wire,
                schema_ty(&f.ty),
                f.required
            );
        }
        out.push_str("] },\n");
    }
    out.push_str("];\n\n");

    out.push_str("/// Every action, current and legacy, sorted by name.\n");
    out.push_str("pub(crate) const ACTIONS: &[ActionSchema] = &[\n");
    for a in &model.actions {
        let _ = writeln!(
            out,
            "ActionSchema {{ name: {:?}, input: {:?}, output: {:?}, legacy: {} }},",
            a.name, a.input, a.output, a.legacy
        );
    }
    out.push_str("];\n\n");

    out.push_str("/// Every action name, current and legacy, sorted.\n#[allow(dead_code)]\n");
    out.push_str("pub(crate) const ALL_ACTIONS: &[&str] = &[\n");
    for a in &model.actions {
        let _ = writeln!(out, "{:?},", a.name);
    }
    out.push_str("];\n}\n");
}

// ---------------------------------------------------------------------------
// Formatting.

/// Formats `source` with the toolchain's `rustfmt` (or `$RUSTFMT`), run from
/// the workspace root so it sees the same configuration as `cargo fmt`.
fn rustfmt(root: &Path, source: &str) -> Result<String> {
    let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(&program)
        .args(["--edition", "2021"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", program.to_string_lossy()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("rustfmt stdin"))?;
    // Write from another thread so a full stdout pipe cannot deadlock us.
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("waiting for rustfmt")?;
    writer
        .join()
        .map_err(|_| anyhow!("rustfmt writer thread panicked"))?
        .context("writing to rustfmt")?;
    if !output.status.success() {
        bail!(
            "rustfmt failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("rustfmt produced invalid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_models_match_the_specs() {
        let root = workspace_root();
        for target in TARGETS {
            let generated = generate(&root, target).expect("codegen failed");
            let committed = std::fs::read_to_string(root.join(target.output)).unwrap_or_default();
            assert!(
                generated == committed,
                "{} is out of date with {} (or the generator); \
                 run `cargo xtask codegen` and commit the result",
                target.output,
                target.spec
            );
        }
    }

    #[test]
    fn snake_case_keeps_acronyms_together() {
        for (wire, ident) in [
            ("BCName", "bc_name"),
            ("CosBucketName", "cos_bucket_name"),
            ("URL", "url"),
            ("Url", "url"),
            ("WebRTCPlayUrl", "web_rtc_play_url"),
            ("DRMType", "drm_type"),
            ("ACodec", "a_codec"),
            ("CurrentCName", "current_c_name"),
            ("SceneID", "scene_id"),
            ("P95PeakBandwidth", "p95_peak_bandwidth"),
            ("Code2xx", "code2xx"),
            ("HlsMp4VideoCodecTag", "hls_mp4_video_codec_tag"),
            ("PageSize", "page_size"),
        ] {
            assert_eq!(snake_case(wire), ident, "{wire}");
        }
    }

    #[test]
    fn idents_are_escaped_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_ident("Type", &mut taken), "r#type");
        assert_eq!(unique_ident("URL", &mut taken), "url");
        assert_eq!(unique_ident("Url", &mut taken), "url_2");
        assert_eq!(unique_ident("Self", &mut taken), "self_");
    }

    #[test]
    fn docs_are_one_clean_line() {
        assert_eq!(
            clean_doc("<p>a&lt;b</p><br/>\n  c &amp; d &#39;e&#39;</p>").as_deref(),
            Some("a<b c & d 'e'")
        );
        assert_eq!(clean_doc("x < 3 and y>2").as_deref(), Some("x < 3 and y>2"));
        assert_eq!(clean_doc("<p> </p>"), None);
        let long = "直播".repeat(200);
        let cut = clean_doc(&long).unwrap();
        assert_eq!(cut.chars().count(), DOC_MAX_CHARS);
        assert!(cut.ends_with('…'));
    }
}
