//! Request parameters, checked against the Live API's request model.
//!
//! Owns: turning a JSON body or flattened `A.0.B=x` pairs (GET queries, form
//! bodies) into one JSON value whose names and types match the action's
//! input structure in `livestack-model`, coercing the numbers and booleans
//! that clients send as strings. Must not: check value ranges or business
//! rules; handlers do that on the typed request.

use std::collections::BTreeMap;

use livestack_model::schema::{Service, StructSchema, Ty};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, ErrorCode};

/// Why parameters do not fit the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamError {
    /// A required member is absent (its dotted path).
    Missing(String),
    /// A name the structure does not define.
    Unknown(String),
    /// A value of the wrong type.
    Type {
        /// Dotted path of the value.
        path: String,
        /// What the model wants there.
        want: Want,
    },
}

/// The kind of value a member wants, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Int,
    Uint,
    Float,
    Bool,
    String,
    Object,
    List,
}

impl Want {
    fn of(ty: &Ty) -> Want {
        match ty {
            Ty::Int => Want::Int,
            Ty::Uint => Want::Uint,
            Ty::Float => Want::Float,
            Ty::Bool => Want::Bool,
            Ty::String => Want::String,
            Ty::Object(_) => Want::Object,
            Ty::List(_) => Want::List,
        }
    }

    fn en(self) -> &'static str {
        match self {
            Want::Int => "an integer",
            Want::Uint => "a non-negative integer",
            Want::Float => "a number",
            Want::Bool => "a boolean",
            Want::String => "a string",
            Want::Object => "an object",
            Want::List => "an array",
        }
    }

    fn zh(self) -> &'static str {
        match self {
            Want::Int => "整数",
            Want::Uint => "非负整数",
            Want::Float => "数值",
            Want::Bool => "布尔值",
            Want::String => "字符串",
            Want::Object => "对象",
            Want::List => "数组",
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        match e {
            ParamError::Missing(p) => ApiError::new(
                ErrorCode::MissingParameter,
                format!("The required parameter `{p}` is missing."),
                format!("缺少必填参数 `{p}`。"),
            ),
            ParamError::Unknown(p) => ApiError::new(
                ErrorCode::UnknownParameter,
                format!("The parameter `{p}` is not defined for this action."),
                format!("未知参数 `{p}`，该接口未定义此参数。"),
            ),
            ParamError::Type { path, want } => ApiError::new(
                ErrorCode::InvalidParameter,
                format!("The parameter `{path}` must be {}.", want.en()),
                format!("参数 `{path}` 的类型应为{}。", want.zh()),
            ),
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks a JSON object against `schema`, returning it with numbers and
/// booleans normalised. `null` counts as absent, as the SDKs mean it.
pub(crate) fn from_json(
    value: Value,
    schema: &StructSchema,
    service: &Service,
) -> Result<Value, ParamError> {
    check_struct(value, schema, "", service)
}

fn check_struct(
    value: Value,
    schema: &StructSchema,
    path: &str,
    service: &Service,
) -> Result<Value, ParamError> {
    let Value::Object(map) = value else {
        return Err(ParamError::Type {
            path: if path.is_empty() {
                "(body)".to_owned()
            } else {
                path.to_owned()
            },
            want: Want::Object,
        });
    };
    let mut out = Map::with_capacity(map.len());
    for (name, v) in map {
        let member_path = join(path, &name);
        let Some(member) = schema.members.iter().find(|m| m.name == name) else {
            return Err(ParamError::Unknown(member_path));
        };
        if v.is_null() {
            continue;
        }
        out.insert(name, check_value(v, &member.ty, &member_path, service)?);
    }
    for member in schema.members {
        if member.required && !out.contains_key(member.name) {
            return Err(ParamError::Missing(join(path, member.name)));
        }
    }
    Ok(Value::Object(out))
}

fn check_value(value: Value, ty: &Ty, path: &str, service: &Service) -> Result<Value, ParamError> {
    let wrong = || ParamError::Type {
        path: path.to_owned(),
        want: Want::of(ty),
    };
    match ty {
        Ty::Object(name) => {
            let schema = service.find_struct(name).ok_or_else(wrong)?;
            check_struct(value, schema, path, service)
        }
        Ty::List(elem) => match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| check_value(v, elem, &format!("{path}.{i}"), service))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(wrong()),
        },
        _ => match value {
            Value::String(s) => scalar_from_str(&s, ty).ok_or_else(wrong),
            Value::Number(n) => number(n, ty).ok_or_else(wrong),
            Value::Bool(b) if matches!(ty, Ty::Bool) => Ok(Value::Bool(b)),
            _ => Err(wrong()),
        },
    }
}

fn number(n: Number, ty: &Ty) -> Option<Value> {
    match ty {
        Ty::Int => n.as_i64().map(Value::from),
        Ty::Uint => n.as_u64().map(Value::from),
        Ty::Float => n.as_f64().map(Value::from),
        _ => None,
    }
}

/// Reads a scalar sent as a string: the official examples send `"10"` for
/// integers, and GET queries and form bodies carry nothing but strings.
fn scalar_from_str(s: &str, ty: &Ty) -> Option<Value> {
    match ty {
        Ty::String => Some(Value::String(s.to_owned())),
        Ty::Int => s.trim().parse::<i64>().ok().map(Value::from),
        Ty::Uint => s.trim().parse::<u64>().ok().map(Value::from),
        Ty::Float => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        Ty::Bool => match s.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Some(Value::Bool(true)),
            f if f.eq_ignore_ascii_case("false") || f == "0" => Some(Value::Bool(false)),
            _ => None,
        },
        Ty::Object(_) | Ty::List(_) => None,
    }
}

/// A tree built from dotted names before it is typed.
#[derive(Debug)]
enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

/// Builds the typed JSON value from flattened pairs (`Filters.0.Name=x`).
pub(crate) fn from_flat(
    pairs: &[(String, String)],
    schema: &StructSchema,
    service: &Service,
) -> Result<Value, ParamError> {
    let mut root = BTreeMap::new();
    for (key, value) in pairs {
        insert(&mut root, key, value)?;
    }
    flat_struct(root, schema, "", service)
}

fn insert(root: &mut BTreeMap<String, Node>, key: &str, value: &str) -> Result<(), ParamError> {
    let mut parts = key.split('.').peekable();
    let mut map = root;
    let mut path = String::new();
    while let Some(part) = parts.next() {
        path = join(&path, part);
        if parts.peek().is_none() {
            if map
                .insert(part.to_owned(), Node::Leaf(value.to_owned()))
                .is_some()
            {
                // `A=1` and `A.0=1`, or the same key twice.
                return Err(ParamError::Type {
                    path,
                    want: Want::String,
                });
            }
            return Ok(());
        }
        let entry = map
            .entry(part.to_owned())
            .or_insert_with(|| Node::Branch(BTreeMap::new()));
        map = match entry {
            Node::Branch(m) => m,
            Node::Leaf(_) => {
                return Err(ParamError::Type {
                    path,
                    want: Want::Object,
                })
            }
        };
    }
    Ok(())
}

fn flat_struct(
    map: BTreeMap<String, Node>,
    schema: &StructSchema,
    path: &str,
    service: &Service,
) -> Result<Value, ParamError> {
    let mut out = Map::with_capacity(map.len());
    for (name, node) in map {
        let member_path = join(path, &name);
        let Some(member) = schema.members.iter().find(|m| m.name == name) else {
            return Err(ParamError::Unknown(member_path));
        };
        out.insert(name, flat_value(node, &member.ty, &member_path, service)?);
    }
    for member in schema.members {
        if member.required && !out.contains_key(member.name) {
            return Err(ParamError::Missing(join(path, member.name)));
        }
    }
    Ok(Value::Object(out))
}

fn flat_value(node: Node, ty: &Ty, path: &str, service: &Service) -> Result<Value, ParamError> {
    let wrong = || ParamError::Type {
        path: path.to_owned(),
        want: Want::of(ty),
    };
    match (node, ty) {
        (Node::Branch(map), Ty::Object(name)) => {
            let schema = service.find_struct(name).ok_or_else(wrong)?;
            flat_struct(map, schema, path, service)
        }
        (Node::Branch(map), Ty::List(elem)) => {
            let mut items = Vec::with_capacity(map.len());
            for (index, node) in map {
                let i: usize = index.parse().map_err(|_| ParamError::Type {
                    path: join(path, &index),
                    want: Want::List,
                })?;
                items.push((i, node));
            }
            items.sort_by_key(|(i, _)| *i);
            items
                .into_iter()
                .map(|(i, node)| flat_value(node, elem, &format!("{path}.{i}"), service))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (Node::Leaf(s), Ty::Object(_) | Ty::List(_)) if s.is_empty() => Ok(match ty {
            Ty::List(_) => Value::Array(Vec::new()),
            _ => Value::Object(Map::new()),
        }),
        (Node::Leaf(s), _) => scalar_from_str(&s, ty).ok_or_else(wrong),
        (Node::Branch(_), _) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_model::schema::LIVE;
    use serde_json::json;

    fn from_json(value: Value, schema: &StructSchema) -> Result<Value, ParamError> {
        super::from_json(value, schema, &LIVE)
    }

    fn from_flat(pairs: &[(String, String)], schema: &StructSchema) -> Result<Value, ParamError> {
        super::from_flat(pairs, schema, &LIVE)
    }

    fn schema(name: &str) -> &'static StructSchema {
        LIVE.find_struct(name).expect("struct exists in the model")
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn integers_sent_as_strings_become_numbers() {
        let v = from_json(
            json!({"PageSize": "20", "PageNum": 2}),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(v, Ok(json!({"PageSize": 20, "PageNum": 2})));
    }

    #[test]
    fn nulls_count_as_absent() {
        let v = from_json(
            json!({"PageSize": null}),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(v, Ok(json!({})));
    }

    #[test]
    fn names_the_model_does_not_define_are_unknown() {
        let v = from_json(
            json!({"PageSize": 20, "Bogus": 1}),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(v, Err(ParamError::Unknown("Bogus".into())));
    }

    #[test]
    fn a_missing_required_member_is_reported_by_name() {
        let v = from_json(json!({}), schema("DescribeLiveDomainRequest"));
        assert_eq!(v, Err(ParamError::Missing("DomainName".into())));
    }

    #[test]
    fn wrong_types_name_the_path_and_the_wanted_type() {
        let v = from_json(
            json!({"PageSize": "ten"}),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(
            v,
            Err(ParamError::Type {
                path: "PageSize".into(),
                want: Want::Uint
            })
        );
        let v = from_json(
            json!({"DomainPrefix": 5}),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(
            v,
            Err(ParamError::Type {
                path: "DomainPrefix".into(),
                want: Want::String
            })
        );
        let v = from_json(json!([1]), schema("DescribeLiveDomainsRequest"));
        assert!(matches!(
            v,
            Err(ParamError::Type {
                want: Want::Object,
                ..
            })
        ));
    }

    #[test]
    fn flattened_pairs_become_nested_values_typed_by_the_model() {
        // DescribeLiveStreamOnlineList has scalars; DescribeLiveWatermarkRules none;
        // AddLiveDomain has a nested list of strings (VerifyOwnerType is a string).
        let v = from_flat(
            &pairs(&[("PageSize", "10"), ("DomainType", "1")]),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(v, Ok(json!({"PageSize": 10, "DomainType": 1})));
        let v = from_flat(
            &pairs(&[("PageSize", "x")]),
            schema("DescribeLiveDomainsRequest"),
        );
        assert!(matches!(v, Err(ParamError::Type { .. })));
        let v = from_flat(
            &pairs(&[("Nope.0", "x")]),
            schema("DescribeLiveDomainsRequest"),
        );
        assert_eq!(v, Err(ParamError::Unknown("Nope".into())));
    }

    #[test]
    fn every_official_example_request_fits_its_model() {
        let examples: Value =
            serde_json::from_str(include_str!("../../../spec/examples.json")).expect("parses");
        let actions = examples["actions"].as_object().expect("actions");
        let mut checked = 0;
        for (action, list) in actions {
            let Some(a) = livestack_model::schema::find_action(action) else {
                continue;
            };
            for example in list.as_array().into_iter().flatten() {
                let Some(input) = example["input"].as_str() else {
                    continue;
                };
                // Examples are HTTP requests; the JSON body follows the blank line.
                let Some((_, body)) = input.split_once("\n\n") else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(body.trim()) else {
                    continue;
                };
                let result = from_json(value, schema(a.input));
                assert!(result.is_ok(), "{action}: {result:?}\n{body}");
                checked += 1;
            }
        }
        assert!(checked > 150, "only {checked} examples checked");
    }
}
