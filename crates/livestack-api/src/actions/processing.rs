//! What the six template families (`transcode`, `watermark`, `record`,
//! `snapshot`, `callback`, `timeshift`) share: the create/modify/delete/describe flow
//! of templates, the rules that bind them, quotas, and the checks and
//! error codes they have in common.
//!
//! Owns: the choice of code for everything that is not family-specific
//! (a missing template, a template in use, a rule that exists or does not,
//! quotas, a rule on a domain the caller does not have). Must not: know any
//! family's settings; the family modules convert those.
//!
//! Every read-check-write runs in one store transaction, so two requests
//! cannot both take the last quota slot or bind the same place; a dry run
//! checks everything and then rolls back.

use std::sync::Arc;

use livestack_core::media::MediaControl;
use livestack_core::rules::{Kind, Rule, Template, TemplateId, TemplateSpec};
use livestack_core::DomainKind;
use livestack_model::RuleInfo;
use livestack_store::domains::{self, Domain};
use livestack_store::templates::{self, RulePlace};
use livestack_store::{accounts, Connection, StoreError};

use super::check::{dry_run_stop, invalid_input, name_chars, shown};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Templates of one family an account may have (the documented limit of
/// transcoding, recording, snapshot and callback templates).
pub const TEMPLATE_QUOTA: usize = 50;
/// Watermarks an account may have.
pub const WATERMARK_QUOTA: usize = 100;
/// Transcoding rules an account may have.
pub const TRANSCODE_RULE_QUOTA: usize = 50;

fn quota(kind: Kind) -> usize {
    match kind {
        Kind::Watermark => WATERMARK_QUOTA,
        _ => TEMPLATE_QUOTA,
    }
}

/// What a family is called in messages.
fn noun(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Transcode => ("transcoding template", "转码模板"),
        Kind::Watermark => ("watermark", "水印"),
        Kind::Record => ("recording template", "录制模板"),
        Kind::Snapshot => ("snapshot template", "截图模板"),
        Kind::Callback => ("callback template", "回调模板"),
        Kind::TimeShift => ("time-shift template", "时移模板"),
    }
}

/// The documented rule of record, snapshot and callback template names and
/// descriptions: 中文, English letters, digits, `_` and `-`, at most
/// `max_bytes` bytes (UTF-8); names must not be empty.
pub(crate) fn check_text(
    name: &str,
    value: &str,
    max_bytes: usize,
    required: bool,
) -> ApiResult<()> {
    let chinese =
        |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c);
    let ok = (!required || !value.is_empty())
        && value.len() <= max_bytes
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || chinese(c));
    if ok {
        Ok(())
    } else {
        let value = shown(value);
        Err(invalid_input(
            format!("{name} `{value}` is not allowed: use 1 to {max_bytes} bytes of Chinese characters, letters, digits, `_` and `-`."),
            format!("{name} `{value}` 不合法：仅支持中文、英文、数字、_、-，长度 1~{max_bytes} 字节。"),
        ))
    }
}

/// Sets the name and description a Modify request gives (absent: unchanged).
pub(crate) fn rename(t: &mut Template, name: Option<String>, description: Option<String>) {
    if let Some(name) = name {
        t.name = name;
    }
    if let Some(description) = description {
        t.description = description;
    }
}

/// A description of at most 1024 bytes (no content rule documented).
pub(crate) fn check_description(value: &str) -> ApiResult<()> {
    if value.len() <= 1024 {
        Ok(())
    } else {
        Err(invalid_input(
            "Description may be at most 1024 bytes long.".into(),
            "Description 长度不能超过 1024 字节。".into(),
        ))
    }
}

/// The code for a template id the caller does not have: documented as
/// `InternalError.WatermarkNotExist` for watermarks and
/// `InternalError.ConfNotFound` for the other families.
pub(crate) fn missing_template(kind: Kind, id: i64) -> ApiError {
    let (en, zh) = noun(kind);
    let code = if kind == Kind::Watermark {
        ErrorCode::InternalErrorWatermarkNotExist
    } else {
        ErrorCode::InternalErrorConfNotFound
    };
    ApiError::new(
        code,
        format!("There is no {en} with id {id}."),
        format!("{zh} {id} 不存在。"),
    )
}

/// Transcoding template names are stream-name suffixes, so they must be
/// unique across the account's templates and adaptive children
/// (`InternalError.ProcessorAlreadyExist`). Other families may repeat names.
fn check_unique_names(t: &Template, taken: &[Template]) -> ApiResult<()> {
    if t.kind() != Kind::Transcode {
        return Ok(());
    }
    let mine = t.output_names();
    let clash = mine.iter().enumerate().find_map(|(i, name)| {
        let twice_here = mine[..i].contains(name);
        let elsewhere = taken
            .iter()
            .filter(|o| o.id != t.id)
            .any(|o| o.output_names().contains(name));
        (twice_here || elsewhere).then_some(*name)
    });
    match clash {
        Some(name) => Err(ApiError::new(
            ErrorCode::InternalErrorProcessorAlreadyExist,
            format!("A transcoding template named `{name}` already exists."),
            format!("转码模板名称 `{name}` 已经存在。"),
        )),
        None => Ok(()),
    }
}

/// Creates a template of the family of `spec`, within the family's quota;
/// returns it with its id.
pub(crate) async fn create_template(
    cx: &Cx,
    name: String,
    description: String,
    spec: TemplateSpec,
) -> ApiResult<Template> {
    let mut t = Template {
        id: TemplateId(0),
        account: cx.account,
        name,
        description,
        created_at: cx.now,
        updated_at: cx.now,
        spec,
    };
    let dry_run = cx.dry_run;
    let media = Arc::clone(&cx.media);
    let t = cx
        .store
        .transaction(move |c| {
            let taken = templates::list(c, t.account, t.kind())?;
            check_quota(t.kind(), taken.len())?;
            check_unique_names(&t, &taken)?;
            check_granted(c, &*media, &t)?;
            dry_run_stop(dry_run)?;
            templates::insert(c, &mut t)?;
            Ok::<_, ApiError>(t)
        })
        .await?;
    cx.publish_policy().await?;
    Ok(t)
}

/// Refuses a template that stores files into a bucket the operator has
/// not granted to its account (`[storage.s3] buckets`): snapshot templates
/// with their documented `FailedOperation.CosBucketNotPermission`, record
/// templates (which document no such code) with `InvalidParameter`.
fn check_granted(c: &Connection, media: &dyn MediaControl, t: &Template) -> ApiResult<()> {
    let buckets = t.spec.buckets();
    if buckets.is_empty() {
        return Ok(());
    }
    let app_id = accounts::get(c, t.account)?.map_or(0, |a| a.app_id);
    for (bucket, _) in buckets {
        if !media.bucket_permitted(app_id, bucket) {
            let code = match t.kind() {
                Kind::Snapshot => ErrorCode::FailedOperationCosBucketNotPermission,
                _ => ErrorCode::InvalidParameter,
            };
            return Err(ApiError::new(
                code,
                format!(
                    "This account (AppId {app_id}) may not store files into the bucket `{bucket}`; \
                     the operator grants buckets per account ([storage.s3] buckets)."
                ),
                format!("该账号（AppId {app_id}）无权将文件存入存储桶 `{bucket}`（由运营方按账号授权：[storage.s3] buckets）。"),
            ));
        }
    }
    Ok(())
}

fn check_quota(kind: Kind, count: usize) -> ApiResult<()> {
    let limit = quota(kind);
    if count >= limit {
        let (en, zh) = noun(kind);
        return Err(ApiError::new(
            ErrorCode::InternalErrorConfOutLimit,
            format!("This account already has {limit} of {limit} {en}s: delete one first."),
            format!("{zh}数量已达上限（{limit} 个），请先删除。"),
        ));
    }
    Ok(())
}

/// `InternalError.ConfOutLimit` now, before work that is wasted when the
/// family is full (fetching a watermark picture).
pub(crate) async fn precheck_quota(cx: &Cx, kind: Kind) -> ApiResult<()> {
    let account = cx.account;
    let count = cx
        .store
        .run(move |c| Ok(templates::list(c, account, kind)?.len()))
        .await?;
    check_quota(kind, count)
}

/// Changes one of the caller's templates with `change`, which sees the
/// stored template and may refuse; returns it as it was and as it is now.
pub(crate) async fn modify_template<F>(
    cx: &Cx,
    kind: Kind,
    id: i64,
    change: F,
) -> ApiResult<(Template, Template)>
where
    F: FnOnce(&mut Template) -> ApiResult<()> + Send + 'static,
{
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let media = Arc::clone(&cx.media);
    let changed = cx
        .store
        .transaction(move |c| {
            let before = templates::find(c, account, kind, TemplateId(id))?
                .ok_or_else(|| missing_template(kind, id))?;
            let mut after = before.clone();
            change(&mut after)?;
            check_granted(c, &*media, &after)?;
            after.updated_at = now;
            check_unique_names(&after, &templates::list(c, account, kind)?)?;
            dry_run_stop(dry_run)?;
            templates::update(c, &mut after)?;
            Ok::<_, ApiError>((before, after))
        })
        .await?;
    cx.publish_policy().await?;
    Ok(changed)
}

/// Deletes one of the caller's templates that no rule uses
/// (`InternalError.ConfInUsed` otherwise); returns what was deleted.
pub(crate) async fn delete_template(cx: &Cx, kind: Kind, id: i64) -> ApiResult<Template> {
    let (account, dry_run) = (cx.account, cx.dry_run);
    let deleted = cx
        .store
        .transaction(move |c| {
            let t = templates::find(c, account, kind, TemplateId(id))?
                .ok_or_else(|| missing_template(kind, id))?;
            let rules = templates::rules_using(c, account, t.id)?;
            if rules > 0 {
                let (en, zh) = noun(kind);
                return Err(ApiError::new(
                    ErrorCode::InternalErrorConfInUsed,
                    format!("The {en} {id} is used by {rules} rule(s): delete them first."),
                    format!("{zh} {id} 正被 {rules} 条规则使用，请先删除规则。"),
                ));
            }
            dry_run_stop(dry_run)?;
            templates::delete(c, account, kind, t.id)?;
            Ok::<_, ApiError>(t)
        })
        .await?;
    cx.publish_policy().await?;
    Ok(deleted)
}

/// One of the caller's templates.
pub(crate) async fn get_template(cx: &Cx, kind: Kind, id: i64) -> ApiResult<Template> {
    let account = cx.account;
    cx.store
        .run(move |c| templates::find(c, account, kind, TemplateId(id)))
        .await?
        .ok_or_else(|| missing_template(kind, id))
}

/// Every template of `kind` the caller has, oldest first.
pub(crate) async fn list_templates(cx: &Cx, kind: Kind) -> ApiResult<Vec<Template>> {
    let account = cx.account;
    Ok(cx
        .store
        .run(move |c| templates::list(c, account, kind))
        .await?)
}

/// Every rule of `kind` the caller has, oldest first.
pub(crate) async fn list_rules(cx: &Cx, kind: Kind) -> ApiResult<Vec<Rule>> {
    let account = cx.account;
    Ok(cx
        .store
        .run(move |c| templates::rules(c, account, kind))
        .await?)
}

/// A domain the caller does not have, or not of the type the family's
/// rules name: `InternalError.PlayDomainNoRecord` for transcoding rules,
/// `InternalError.PushDomainNoRecord` for the others.
fn domain_missing(kind: Kind, name: &str) -> ApiError {
    match kind.domain_kind() {
        DomainKind::Play => ApiError::new(
            ErrorCode::InternalErrorPlayDomainNoRecord,
            format!("`{name}` is not a play domain of this account; transcoding rules name play domains."),
            format!("`{name}` 不是本账号的播放域名（转码规则须绑定播放域名）。"),
        ),
        DomainKind::Push => ApiError::new(
            ErrorCode::InternalErrorPushDomainNoRecord,
            format!("`{name}` is not a push domain of this account."),
            format!("`{name}` 不是本账号的推流域名。"),
        ),
    }
}

/// Checks that the caller's domain `found` (looked up by `name`) is of the
/// type the family's rules name.
fn check_domain(kind: Kind, name: &str, found: Option<Domain>) -> ApiResult<()> {
    match found {
        Some(d) if d.kind == kind.domain_kind() => Ok(()),
        _ => Err(domain_missing(kind, name)),
    }
}

/// An AppName or StreamName of a rule: empty (the whole domain or app) or
/// a name a push could use.
fn check_stream_part(label: &str, value: &str) -> ApiResult<()> {
    if name_chars(value) {
        Ok(())
    } else {
        Err(invalid_input(
            format!("{label} `{value}` may only contain letters, digits, `_`, `-` and `.` (at most 256)."),
            format!("{label} `{value}` 仅支持字母、数字、_、-、.（最长 256）。"),
        ))
    }
}

/// Where a rule request points, as it gives it: AppName and StreamName
/// are optional in some actions, required in others, absent in callback
/// rules; absent means "" (the whole domain or app).
pub(crate) struct At {
    domain: String,
    app: Option<String>,
    stream: Option<String>,
}

/// The place a rule request names.
pub(crate) fn at(
    domain: String,
    app: impl Into<Option<String>>,
    stream: impl Into<Option<String>>,
) -> At {
    At {
        domain,
        app: app.into(),
        stream: stream.into(),
    }
}

/// Where a request's rule binds, checked and normalised.
fn place(cx: &Cx, kind: Kind, at: At, template: Option<i64>) -> ApiResult<RulePlace> {
    let (domain, app, stream) = (
        at.domain,
        at.app.unwrap_or_default(),
        at.stream.unwrap_or_default(),
    );
    check_stream_part("AppName", &app)?;
    check_stream_part("StreamName", &stream)?;
    Ok(RulePlace {
        account: cx.account,
        kind,
        domain: domain.trim().to_ascii_lowercase(),
        app,
        stream,
        template: template.map(TemplateId),
    })
}

fn rule_exists(rule: &Rule) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorRuleAlreadyExist,
        format!(
            "Template {} is already bound to {}/{}/{}.",
            rule.template.0, rule.domain, rule.app, rule.stream
        ),
        format!(
            "规则已经配置：模板 {} 已绑定到 {}/{}/{}。",
            rule.template.0, rule.domain, rule.app, rule.stream
        ),
    )
}

/// Checks a new rule against the family's rules: the same rule
/// (`RuleAlreadyExist`), another template at a place that binds only one
/// (`RuleInUsing`), and the documented limits (`RuleOutLimit`: 50
/// transcoding rules; one snapshot template per domain).
fn check_new_rule(rule: &Rule, existing: &[Rule]) -> ApiResult<()> {
    if existing
        .iter()
        .any(|r| r.same_place(rule) && r.template == rule.template)
    {
        return Err(rule_exists(rule));
    }
    if !rule.kind.binds_many() {
        if let Some(r) = existing.iter().find(|r| r.same_place(rule)) {
            return Err(ApiError::new(
                ErrorCode::InternalErrorRuleInUsing,
                format!(
                    "{}/{}/{} already uses template {}: delete that rule first.",
                    rule.domain, rule.app, rule.stream, r.template.0
                ),
                format!(
                    "规则使用中：{}/{}/{} 已绑定模板 {}，请先删除该规则。",
                    rule.domain, rule.app, rule.stream, r.template.0
                ),
            ));
        }
    }
    let out_of_limit =
        |en: String, zh: String| Err(ApiError::new(ErrorCode::InternalErrorRuleOutLimit, en, zh));
    if rule.kind == Kind::Transcode && existing.len() >= TRANSCODE_RULE_QUOTA {
        return out_of_limit(
            format!(
                "This account already has {TRANSCODE_RULE_QUOTA} transcoding rules, the limit."
            ),
            format!("转码规则数量已达上限（{TRANSCODE_RULE_QUOTA} 条）。"),
        );
    }
    if rule.kind == Kind::Snapshot {
        if let Some(r) = existing
            .iter()
            .find(|r| r.domain == rule.domain && r.template != rule.template)
        {
            return out_of_limit(
                format!(
                    "A domain can use only one snapshot template, and {} uses template {}.",
                    rule.domain, r.template.0
                ),
                format!(
                    "单个域名仅支持关联一个截图模板，{} 已关联模板 {}。",
                    rule.domain, r.template.0
                ),
            );
        }
    }
    Ok(())
}

/// Binds one of the caller's templates at `place`.
pub(crate) async fn create_rule(cx: &Cx, kind: Kind, at: At, template: i64) -> ApiResult<()> {
    let place = place(cx, kind, at, None)?;
    let rule = Rule {
        account: place.account,
        kind: place.kind,
        domain: place.domain,
        app: place.app,
        stream: place.stream,
        template: TemplateId(template),
        created_at: cx.now,
        updated_at: cx.now,
    };
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |c| {
            check_domain(
                rule.kind,
                &rule.domain,
                domains::find(c, rule.account, &rule.domain)?,
            )?;
            if templates::find(c, rule.account, rule.kind, rule.template)?.is_none() {
                return Err(missing_template(rule.kind, template));
            }
            check_new_rule(&rule, &templates::rules(c, rule.account, rule.kind)?)?;
            dry_run_stop(dry_run)?;
            match templates::insert_rule(c, &rule) {
                Ok(true) => Ok(()),
                Ok(false) => Err(domain_missing(rule.kind, &rule.domain)),
                Err(StoreError::Conflict { .. }) => Err(rule_exists(&rule)),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
    cx.publish_policy().await
}

/// Deletes the caller's rule at `place` (`InternalError.RuleNotFound` when
/// there is none).
pub(crate) async fn delete_rule(
    cx: &Cx,
    kind: Kind,
    at: At,
    template: Option<i64>,
) -> ApiResult<()> {
    let place = place(cx, kind, at, template)?;
    let dry_run = cx.dry_run;
    cx.store
        .transaction(move |c| {
            check_domain(
                place.kind,
                &place.domain,
                domains::find(c, place.account, &place.domain)?,
            )?;
            let found = templates::rules(c, place.account, place.kind)?
                .iter()
                .any(|r| {
                    r.domain == place.domain
                        && r.app == place.app
                        && r.stream == place.stream
                        && place.template.is_none_or(|t| t == r.template)
                });
            if !found {
                return Err(ApiError::new(
                    ErrorCode::InternalErrorRuleNotFound,
                    format!(
                        "There is no such rule on {}/{}/{}.",
                        place.domain, place.app, place.stream
                    ),
                    format!(
                        "规则不存在：{}/{}/{}。",
                        place.domain, place.app, place.stream
                    ),
                ));
            }
            dry_run_stop(dry_run)?;
            templates::delete_rule(c, &place)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await
}

/// A rule on the wire, its times formatted by `time` (the rule lists
/// document Beijing time; the watermark rule list's example uses the ISO
/// form).
pub(crate) fn rule_info(rule: Rule, time: fn(i64) -> String) -> RuleInfo {
    RuleInfo {
        create_time: time(rule.created_at),
        update_time: time(rule.updated_at),
        template_id: rule.template.0,
        domain_name: rule.domain,
        app_name: rule.app,
        stream_name: rule.stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::AccountId;

    fn rule(kind: Kind, domain: &str, app: &str, stream: &str, template: i64) -> Rule {
        Rule {
            account: AccountId(1),
            kind,
            domain: domain.into(),
            app: app.into(),
            stream: stream.into(),
            template: TemplateId(template),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn new_rules_are_checked_against_existing_ones() {
        let code = |new: Rule, existing: &[Rule]| {
            check_new_rule(&new, existing)
                .err()
                .map(|e| e.code.as_str())
        };
        let rec = |app, t| rule(Kind::Record, "p.example.com", app, "", t);
        assert_eq!(
            code(rec("live", 1), &[rec("live", 1)]),
            Some("InternalError.RuleAlreadyExist")
        );
        assert_eq!(
            code(rec("live", 2), &[rec("live", 1)]),
            Some("InternalError.RuleInUsing")
        );
        assert_eq!(code(rec("game", 2), &[rec("live", 1)]), None);
        let tc = |t| rule(Kind::Transcode, "play.example.com", "live", "", t);
        assert_eq!(
            code(tc(2), &[tc(1)]),
            None,
            "several transcoding templates per place"
        );
        assert_eq!(
            code(tc(1), &[tc(1)]),
            Some("InternalError.RuleAlreadyExist")
        );
        let fifty: Vec<Rule> = (100..150).map(tc).collect();
        assert_eq!(code(tc(1), &fifty), Some("InternalError.RuleOutLimit"));
        let snap = |app, t| rule(Kind::Snapshot, "p.example.com", app, "", t);
        assert_eq!(
            code(snap("game", 2), &[snap("live", 1)]),
            Some("InternalError.RuleOutLimit")
        );
        assert_eq!(code(snap("game", 1), &[snap("live", 1)]), None);
    }

    #[test]
    fn text_rules_follow_the_documentation() {
        assert!(check_text("TemplateName", "录制_rec-1", 255, true).is_ok());
        assert!(check_text("TemplateName", "", 255, true).is_err());
        assert!(check_text("Description", "", 1024, false).is_ok());
        for bad in ["a b", "a.b", "a/b", "模板!"] {
            let e = check_text("TemplateName", bad, 255, true).expect_err(bad);
            assert_eq!(e.code.as_str(), "InternalError.InvalidInput");
        }
        assert!(check_text("TemplateName", &"a".repeat(256), 255, true).is_err());
        assert!(check_stream_part("AppName", "").is_ok());
        assert!(check_stream_part("AppName", "live.v2_x-1").is_ok());
        assert!(check_stream_part("AppName", "a/b").is_err());
    }
}

#[cfg(test)]
mod policy_tests {
    use livestack_core::rules::{RecordSpec, StreamRef};
    use livestack_store::{accounts, Store};

    use super::*;
    use crate::policy::PolicyPublisher;

    #[tokio::test]
    async fn the_media_plane_policy_carries_templates_and_rules() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        let (account, id) = store
            .run_blocking(|c| {
                let account = accounts::ensure(c, "root")?.id;
                domains::insert(
                    c,
                    &Domain::new(account, "push.example.com", DomainKind::Push, 0),
                )?;
                let mut t = Template {
                    id: TemplateId(0),
                    account,
                    name: "rec".into(),
                    description: String::new(),
                    created_at: 0,
                    updated_at: 0,
                    spec: TemplateSpec::Record(RecordSpec::default()),
                };
                templates::insert(c, &mut t)?;
                let rule = Rule {
                    account,
                    kind: Kind::Record,
                    domain: "push.example.com".into(),
                    app: "live".into(),
                    stream: String::new(),
                    template: t.id,
                    created_at: 0,
                    updated_at: 0,
                };
                templates::insert_rule(c, &rule)?;
                Ok((account, t.id))
            })
            .expect("store");
        let publisher = PolicyPublisher::new(store, livestack_core::Clock::system());
        publisher.refresh().await.expect("refresh");
        let policy = publisher.subscribe().borrow().clone();
        let stream = |app| StreamRef {
            account,
            domain: "push.example.com",
            app,
            stream: "cam",
        };
        let processing = &policy.processing;
        assert_eq!(
            processing.for_push(&stream("live")).record.map(|t| t.id),
            Some(id)
        );
        assert_eq!(processing.for_push(&stream("game")).record, None);
        assert!(processing.picture_dir.ends_with("watermarks"));
    }
}
