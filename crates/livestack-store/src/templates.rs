//! Processing templates and the rules that bind them, for every family at
//! once (`livestack_core::rules`): one `templates` table with a `kind`
//! column and the family's settings as JSON text, one `template_rules`
//! table, and the local copies of watermark pictures.
//!
//! Owns: ids (one counter for templates, watermarks and adaptive children),
//! the rows, and the picture files under `<data dir>/watermarks/`. Must
//! not: fetch pictures (the API layer does, and hands over the bytes) or
//! decide what is valid (quotas, name rules, codes belong to the API).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::db::{Connection, OptionalExtension};
use livestack_core::rules::{Kind, Rule, Template, TemplateId, TemplateSpec};

use crate::{AccountId, Store, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, kind, name, description, spec, created_at, updated_at";

/// A column that does not hold what this version expects.
fn bad_column(index: usize, e: impl std::error::Error) -> crate::DbError {
    crate::DbError::Conversion {
        index,
        why: e.to_string(),
    }
}

fn from_row(r: &crate::db::Row) -> crate::db::DbResult<Template> {
    let spec: String = r.get(5)?;
    Ok(Template {
        id: TemplateId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(3)?,
        description: r.get(4)?,
        spec: serde_json::from_str(&spec).map_err(|e| bad_column(5, e))?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn spec_json(spec: &TemplateSpec) -> StoreResult<String> {
    serde_json::to_string(spec).map_err(|e| {
        StoreError::Query(crate::DbError::Conversion {
            index: 5,
            why: format!("the template cannot be written as JSON: {e}"),
        })
    })
}

/// Hands out `n` fresh ids, in order.
///
/// One statement increments and reads the counter, so two writers never
/// get the same ids even outside a transaction.
pub fn next_ids(conn: &Connection, n: usize) -> StoreResult<Vec<TemplateId>> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let last: i64 = conn.query_row(
        "UPDATE template_ids SET last_id = last_id + ?1 WHERE singleton = 1 RETURNING last_id",
        [n],
        |r| r.get(0),
    )?;
    Ok((last - n + 1..=last).map(TemplateId).collect())
}

/// Gives `t` and its adaptive children ids where they have none (0).
fn assign_ids(conn: &Connection, t: &mut Template) -> StoreResult<()> {
    let mut wanted = usize::from(t.id.0 == 0);
    if let TemplateSpec::Transcode(s) = &t.spec {
        wanted += s.children.iter().filter(|c| c.id.0 == 0).count();
    }
    if wanted == 0 {
        return Ok(());
    }
    let mut ids = next_ids(conn, wanted)?.into_iter();
    if t.id.0 == 0 {
        t.id = ids.next().unwrap_or_default();
    }
    if let TemplateSpec::Transcode(s) = &mut t.spec {
        for child in s.children.iter_mut().filter(|c| c.id.0 == 0) {
            child.id = ids.next().unwrap_or_default();
        }
    }
    Ok(())
}

/// The columns of `t`, in [`COLUMNS`] order.
fn values(t: &Template) -> StoreResult<[crate::db::Value; 8]> {
    Ok([
        t.id.0.into(),
        t.account.0.into(),
        t.kind().as_str().to_owned().into(),
        t.name.clone().into(),
        t.description.clone().into(),
        spec_json(&t.spec)?.into(),
        t.created_at.into(),
        t.updated_at.into(),
    ])
}

/// Stores a new template, giving it (and its adaptive children) ids.
pub fn insert(conn: &Connection, t: &mut Template) -> StoreResult<()> {
    assign_ids(conn, t)?;
    conn.execute(
        &format!("INSERT INTO templates ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        values(t)?,
    )?;
    Ok(())
}

/// Writes every field of a changed template back (matched by id, owner
/// and family), giving new adaptive children ids; false when the owner has
/// no such template.
pub fn update(conn: &Connection, t: &mut Template) -> StoreResult<bool> {
    assign_ids(conn, t)?;
    let n = conn.execute(
        "UPDATE templates SET name = ?4, description = ?5, spec = ?6, created_at = ?7,
             updated_at = ?8
         WHERE id = ?1 AND account_id = ?2 AND kind = ?3",
        values(t)?,
    )?;
    Ok(n > 0)
}

/// Deletes one of `account`'s templates of `kind`; false when there is none.
pub fn delete(
    conn: &Connection,
    account: AccountId,
    kind: Kind,
    id: TemplateId,
) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM templates WHERE id = ?1 AND account_id = ?2 AND kind = ?3",
        crate::params![id.0, account.0, kind.as_str()],
    )?;
    Ok(n > 0)
}

/// One of `account`'s templates of `kind`.
pub fn find(
    conn: &Connection,
    account: AccountId,
    kind: Kind,
    id: TemplateId,
) -> StoreResult<Option<Template>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM templates WHERE id = ?1 AND account_id = ?2 AND kind = ?3"
    ))?;
    Ok(stmt
        .query_row(crate::params![id.0, account.0, kind.as_str()], from_row)
        .optional()?)
}

/// The rows `sql` selects, each read by `row`.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl crate::db::Params,
    row: fn(&crate::db::Row) -> crate::db::DbResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every template of `kind` that `account` has, oldest first.
pub fn list(conn: &Connection, account: AccountId, kind: Kind) -> StoreResult<Vec<Template>> {
    let sql =
        format!("SELECT {COLUMNS} FROM templates WHERE account_id = ?1 AND kind = ?2 ORDER BY id");
    collect(
        conn,
        &sql,
        crate::params![account.0, kind.as_str()],
        from_row,
    )
}

/// Every template of every account (for the media plane's policy).
pub fn all(conn: &Connection) -> StoreResult<Vec<Template>> {
    collect(
        conn,
        &format!("SELECT {COLUMNS} FROM templates ORDER BY id"),
        (),
        from_row,
    )
}

const RULE_SELECT: &str = "SELECT r.account_id, r.kind, d.name, r.app, r.stream, r.template_id, \
                           r.created_at, r.updated_at \
                           FROM template_rules r JOIN domains d ON d.id = r.domain_id";

#[derive(Debug, thiserror::Error)]
#[error("unknown template kind `{0}`")]
struct UnknownKind(String);

fn rule_from_row(r: &crate::db::Row) -> crate::db::DbResult<Rule> {
    let kind: String = r.get(1)?;
    Ok(Rule {
        account: AccountId(r.get(0)?),
        kind: Kind::parse(&kind).ok_or_else(|| bad_column(1, UnknownKind(kind)))?,
        domain: r.get(2)?,
        app: r.get(3)?,
        stream: r.get(4)?,
        template: TemplateId(r.get(5)?),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Stores a rule on one of its owner's domains; false when the owner has
/// no domain of that name; `Conflict` when the same rule exists.
pub fn insert_rule(conn: &Connection, rule: &Rule) -> StoreResult<bool> {
    let n = conn
        .execute(
            "INSERT INTO template_rules
                 (account_id, kind, domain_id, app, stream, template_id, created_at, updated_at)
             SELECT ?1, ?2, d.id, ?4, ?5, ?6, ?7, ?8 FROM domains d
             WHERE d.account_id = ?1 AND d.name = ?3",
            crate::params![
                rule.account.0,
                rule.kind.as_str(),
                rule.domain,
                rule.app,
                rule.stream,
                rule.template.0,
                rule.created_at,
                rule.updated_at,
            ],
        )
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::Conflict { what: "rule" }
            } else {
                e.into()
            }
        })?;
    Ok(n > 0)
}

/// Where a rule binds: the family, the owner's domain, app and stream, and
/// for families that bind several templates at one place, which template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePlace {
    /// The owner.
    pub account: AccountId,
    /// The family.
    pub kind: Kind,
    /// The domain, lower-case.
    pub domain: String,
    /// AppName ("" for the whole domain).
    pub app: String,
    /// StreamName ("" for the whole app).
    pub stream: String,
    /// Only the rule binding this template; `None` for any.
    pub template: Option<TemplateId>,
}

/// Deletes the rule(s) at `place`; false when there is none.
pub fn delete_rule(conn: &Connection, place: &RulePlace) -> StoreResult<bool> {
    let mut sql = "DELETE FROM template_rules
         WHERE account_id = ?1 AND kind = ?2 AND app = ?4 AND stream = ?5
           AND domain_id IN (SELECT id FROM domains WHERE account_id = ?1 AND name = ?3)"
        .to_owned();
    let mut args: Vec<crate::db::Value> = vec![
        place.account.0.into(),
        place.kind.as_str().to_owned().into(),
        place.domain.clone().into(),
        place.app.clone().into(),
        place.stream.clone().into(),
    ];
    if let Some(id) = place.template {
        sql.push_str(" AND template_id = ?6");
        args.push(id.0.into());
    }
    let n = conn.execute(&sql, args)?;
    Ok(n > 0)
}

/// Every rule of `kind` that `account` has, oldest first.
pub fn rules(conn: &Connection, account: AccountId, kind: Kind) -> StoreResult<Vec<Rule>> {
    let sql = format!("{RULE_SELECT} WHERE r.account_id = ?1 AND r.kind = ?2 ORDER BY r.id");
    collect(
        conn,
        &sql,
        crate::params![account.0, kind.as_str()],
        rule_from_row,
    )
}

/// Every rule of every account (for the media plane's policy).
pub fn all_rules(conn: &Connection) -> StoreResult<Vec<Rule>> {
    collect(
        conn,
        &format!("{RULE_SELECT} ORDER BY r.id"),
        (),
        rule_from_row,
    )
}

/// How many rules bind one of `account`'s templates.
pub fn rules_using(conn: &Connection, account: AccountId, id: TemplateId) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM template_rules WHERE account_id = ?1 AND template_id = ?2",
        (account.0, id.0),
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The folder of watermark pictures, beside the database.
pub fn picture_dir(store: &Store) -> PathBuf {
    store.data_dir().join("watermarks")
}

/// Keeps a picture in `dir` (created 0700 if needed) under a fresh random
/// name with `extension`, written to a temporary file, synced and renamed
/// into place so that a crash never leaves half a picture; returns the
/// file name.
pub fn save_picture(dir: &Path, bytes: &[u8], extension: &str) -> StoreResult<String> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let name = format!("{:032x}.{extension}", rand::random::<u128>());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    let path = dir.join(&name);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(name)
}

/// Removes a picture kept by [`save_picture`]; a missing file is fine.
pub fn remove_picture(dir: &Path, file: &str) -> StoreResult<()> {
    // Only plain names made by save_picture: never a path out of `dir`.
    if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
        return Ok(());
    }
    let path = dir.join(file);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            path: path.display().to_string(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{accounts, domains};
    use livestack_core::rules::{AdaptiveChild, SnapshotSpec, TranscodeSpec};

    fn domain(account: AccountId, name: &str, kind: livestack_core::DomainKind) -> domains::Domain {
        domains::Domain::new(account, name, kind, 0)
    }

    fn template(account: AccountId, name: &str, spec: TemplateSpec) -> Template {
        Template {
            id: TemplateId(0),
            account,
            name: name.into(),
            description: String::new(),
            created_at: 1,
            updated_at: 1,
            spec,
        }
    }

    fn rule(account: AccountId, kind: Kind, domain: &str, template: TemplateId) -> Rule {
        Rule {
            account,
            kind,
            domain: domain.into(),
            app: "live".into(),
            stream: String::new(),
            template,
            created_at: 2,
            updated_at: 2,
        }
    }

    #[test]
    fn templates_get_unique_ids_including_adaptive_children_and_stay_with_their_owner() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let b = accounts::ensure(c, "other")?.id;
                let abr = TranscodeSpec {
                    adaptive: true,
                    children: vec![AdaptiveChild::default(), AdaptiveChild::default()],
                    ..TranscodeSpec::default()
                };
                let mut t = template(a, "abr", TemplateSpec::Transcode(abr));
                insert(c, &mut t)?;
                let mut s = template(a, "snap", TemplateSpec::Snapshot(SnapshotSpec::default()));
                insert(c, &mut s)?;
                let TemplateSpec::Transcode(spec) = &t.spec else {
                    panic!("kind")
                };
                let mut ids = vec![t.id, spec.children[0].id, spec.children[1].id, s.id];
                assert!(ids.iter().all(|id| id.0 > 1000), "{ids:?}");
                ids.dedup();
                assert_eq!(ids.len(), 4);
                assert_eq!(find(c, a, Kind::Transcode, t.id)?, Some(t.clone()));
                assert_eq!(
                    find(c, a, Kind::Snapshot, t.id)?,
                    None,
                    "kind is part of the key"
                );
                assert_eq!(find(c, b, Kind::Transcode, t.id)?, None, "tenancy");
                assert!(!delete(c, b, Kind::Transcode, t.id)?);
                let mut changed = t.clone();
                changed.description = "new".into();
                changed.account = b;
                assert!(
                    !update(c, &mut changed)?,
                    "another account cannot change it"
                );
                changed.account = a;
                assert!(update(c, &mut changed)?);
                assert_eq!(list(c, a, Kind::Transcode)?[0].description, "new");
                assert_eq!(all(c)?.len(), 2);
                assert!(delete(c, a, Kind::Transcode, t.id)?);
                assert!(list(c, a, Kind::Transcode)?.is_empty());
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn rules_name_owned_domains_and_go_with_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let b = accounts::ensure(c, "other")?.id;
                domains::insert(
                    c,
                    &domain(a, "push.example.com", livestack_core::DomainKind::Push),
                )?;
                let mut t = template(a, "snap", TemplateSpec::Snapshot(SnapshotSpec::default()));
                insert(c, &mut t)?;
                let r = rule(a, Kind::Snapshot, "push.example.com", t.id);
                assert!(insert_rule(c, &r)?);
                assert!(matches!(
                    insert_rule(c, &r),
                    Err(StoreError::Conflict { .. })
                ));
                assert!(
                    !insert_rule(
                        c,
                        &Rule {
                            account: b,
                            ..r.clone()
                        }
                    )?,
                    "not b's domain"
                );
                assert_eq!(rules(c, a, Kind::Snapshot)?, vec![r.clone()]);
                assert!(rules(c, b, Kind::Snapshot)?.is_empty());
                assert_eq!(rules_using(c, a, t.id)?, 1);
                let place = RulePlace {
                    account: a,
                    kind: Kind::Snapshot,
                    domain: "push.example.com".into(),
                    app: "live".into(),
                    stream: String::new(),
                    template: None,
                };
                assert!(!delete_rule(
                    c,
                    &RulePlace {
                        account: b,
                        ..place.clone()
                    }
                )?);
                assert!(!delete_rule(
                    c,
                    &RulePlace {
                        app: "other".into(),
                        ..place.clone()
                    }
                )?);
                assert!(delete_rule(c, &place)?);
                assert!(insert_rule(c, &r)?);
                assert!(domains::delete(
                    c,
                    a,
                    "push.example.com",
                    livestack_core::DomainKind::Push
                )?);
                assert!(
                    all_rules(c)?.is_empty(),
                    "a deleted domain takes its rules along"
                );
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn pictures_are_written_whole_and_removed_safely() {
        let dir = tempfile::tempdir().expect("tmp");
        let pics = dir.path().join("watermarks");
        let name = save_picture(&pics, b"\x89PNG", "png").expect("save");
        assert_eq!(fs::read(pics.join(&name)).expect("read"), b"\x89PNG");
        assert!(name.ends_with(".png") && !name.contains('/'));
        remove_picture(&pics, &name).expect("remove");
        remove_picture(&pics, &name).expect("twice is fine");
        remove_picture(&pics, "../livestack.db").expect("ignored");
        assert!(fs::read_dir(&pics).expect("dir").next().is_none());
    }
}
