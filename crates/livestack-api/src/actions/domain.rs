//! Live domains and their URL-signing keys and referer rules:
//! `AddLiveDomain`, `DeleteLiveDomain`, `DescribeLiveDomain(s)`,
//! `EnableLiveDomain`, `ForbidLiveDomain`, `ModifyLivePlayDomain`,
//! `Describe/ModifyLiveDomainReferer`, `Describe/ModifyLivePushAuthKey`,
//! `Describe/ModifyLivePlayAuthKey`.
//!
//! Owns: validation of domain names and of the documented enumerations,
//! and the choice of error code for each failure. Must not: resolve DNS or
//! verify domain ownership itself (`owner.rs` does; `AddLiveDomain` asks it
//! whether a domain needs a verified owner first, and `VerifyOwnerType`
//! is checked for its values only, the proof being
//! `AuthenticateDomainOwner`'s).

use livestack_core::DomainKind;
use livestack_model::{
    AddLiveDomainRequest, AddLiveDomainResponse, DeleteLiveDomainRequest, DeleteLiveDomainResponse,
    DescribeLiveDomainRefererRequest, DescribeLiveDomainRefererResponse, DescribeLiveDomainRequest,
    DescribeLiveDomainResponse, DescribeLiveDomainsRequest, DescribeLiveDomainsResponse,
    DescribeLivePlayAuthKeyRequest, DescribeLivePlayAuthKeyResponse,
    DescribeLivePushAuthKeyRequest, DescribeLivePushAuthKeyResponse, DomainInfo,
    EnableLiveDomainRequest, EnableLiveDomainResponse, ForbidLiveDomainRequest,
    ForbidLiveDomainResponse, ModifyLiveDomainRefererRequest, ModifyLiveDomainRefererResponse,
    ModifyLivePlayAuthKeyRequest, ModifyLivePlayAuthKeyResponse, ModifyLivePlayDomainRequest,
    ModifyLivePlayDomainResponse, ModifyLivePushAuthKeyRequest, ModifyLivePushAuthKeyResponse,
    PlayAuthKeyInfo, PushAuthKeyInfo, RefererAuthConfig,
};
use livestack_store::domains::{self, AuthKeys, Domain, DomainFilter, Referer};
use livestack_store::StoreError;

use super::check::{check_enum, check_range, to_i64};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How many domains one account may have (`FailedOperation.HostOutLimit`).
pub const DOMAIN_QUOTA: u64 = 100;

/// `DomainType` of push domains.
const PUSH: i64 = 0;
/// `DomainType` of play domains.
const PLAY: i64 = 1;

/// Checks a domain name and returns it in lower case.
///
/// A name is 1–253 characters of ASCII letters, digits, `-` and `.`, with
/// at least two labels of 1–63 characters that neither start nor end with
/// `-`, and a top-level label that is not all digits (an IP address is not
/// a domain).
pub(crate) fn parse_domain_name(raw: &str) -> ApiResult<String> {
    if !raw.is_ascii() {
        return Err(ApiError::new(
            ErrorCode::InternalErrorChineseCharacterDetected,
            format!("`{raw}` contains non-ASCII characters: internationalised domain names are not supported; use the punycode (xn--) form."),
            format!("`{raw}` 含有非 ASCII 字符：暂不支持中文域名，请使用 punycode（xn--）形式。"),
        ));
    }
    if raw.len() > 253 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterDomainTooLong,
            format!(
                "The domain name is {} characters long; at most 253 are allowed.",
                raw.len()
            ),
            format!("域名长度为 {} 个字符，超过上限 253。", raw.len()),
        ));
    }
    let name = raw.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    if labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterDomainFormatError,
            format!("`{raw}` is not a valid domain name (letters, digits and hyphens in dot-separated labels, such as play.example.com)."),
            format!("`{raw}` 不是合法的域名（由字母、数字和连字符组成、以点分隔，例如 play.example.com）。"),
        ));
    }
    Ok(name)
}

/// A domain name as a lookup key: lower-cased; a name that cannot be a
/// domain simply matches nothing.
fn lookup_name(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

fn push_domain_missing(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorPushDomainNoRecord,
        format!("The push domain `{name}` does not exist."),
        format!("推流域名 `{name}` 不存在。"),
    )
}

fn play_domain_missing(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorPlayDomainNoRecord,
        format!("The play domain `{name}` does not exist."),
        format!("播放域名 `{name}` 不存在。"),
    )
}

fn domain_missing(code: ErrorCode, name: &str) -> ApiError {
    ApiError::new(
        code,
        format!("The domain `{name}` does not exist."),
        format!("域名 `{name}` 不存在。"),
    )
}

/// Loads one of the caller's domains of the given type, or the error for
/// a missing one (`PushDomainNoRecord` / `PlayDomainNoRecord`).
async fn load_typed(cx: &Cx, raw: &str, kind: DomainKind) -> ApiResult<Domain> {
    let name = lookup_name(raw);
    let account = cx.account;
    let key = name.clone();
    let found = cx
        .store
        .run(move |c| domains::find(c, account, &key))
        .await?;
    match found {
        Some(d) if d.kind == kind => Ok(d),
        _ if kind == DomainKind::Push => Err(push_domain_missing(&name)),
        _ => Err(play_domain_missing(&name)),
    }
}

/// Loads one of the caller's domains of any type; `missing` is the code
/// the action documents for an absent domain.
async fn load_any(cx: &Cx, raw: &str, missing: ErrorCode) -> ApiResult<Domain> {
    let name = lookup_name(raw);
    let account = cx.account;
    let key = name.clone();
    cx.store
        .run(move |c| domains::find(c, account, &key))
        .await?
        .ok_or_else(|| domain_missing(missing, &name))
}

/// Writes a changed domain back, after the dry-run commit point.
async fn save(cx: &Cx, domain: Domain) -> ApiResult<()> {
    cx.commit_point()?;
    let name = domain.name.clone();
    let updated = cx.store.run(move |c| domains::update(c, &domain)).await?;
    if updated {
        cx.publish_policy().await
    } else {
        // Deleted by a concurrent request between load and save.
        Err(domain_missing(
            ErrorCode::ResourceNotFoundDomainNotExist,
            &name,
        ))
    }
}

/// A fresh random signing key: 32 hex digits.
fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Adds a push or play domain.
///
/// Push domains start with push authentication on and a generated master
/// key, as CSS creates them (read it with `DescribeLivePushAuthKey` or sign
/// URLs with `livestack url`); play domains start without play
/// authentication.
pub async fn add_live_domain(
    cx: Cx,
    req: AddLiveDomainRequest,
) -> ApiResult<AddLiveDomainResponse> {
    let name = parse_domain_name(&req.domain_name)?;
    let kind = wire_kind(
        check_enum("DomainType", Some(to_i64(req.domain_type)), &[PUSH, PLAY])?.unwrap_or(PUSH),
    );
    let play_type = check_enum(
        "PlayType",
        Some(req.play_type.map_or(1, to_i64)),
        &[1, 2, 3],
    )?
    .unwrap_or(1);
    let is_delay_live =
        check_enum("IsDelayLive", Some(req.is_delay_live.unwrap_or(0)), &[0, 1])?.unwrap_or(0);
    let is_mini_program_live = check_enum(
        "IsMiniProgramLive",
        Some(req.is_mini_program_live.unwrap_or(0)),
        &[0, 1],
    )?
    .unwrap_or(0);
    if let Some(v) = req.verify_owner_type.as_deref() {
        if !["dnsCheck", "fileCheck", "dbCheck"].contains(&v) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("VerifyOwnerType must be dnsCheck, fileCheck or dbCheck, not `{v}`."),
                format!(
                    "VerifyOwnerType 的取值须为 dnsCheck、fileCheck 或 dbCheck，当前为 `{v}`。"
                ),
            ));
        }
    }
    let domain = Domain {
        play_type,
        is_delay_live,
        is_mini_program_live,
        auth: if kind == DomainKind::Push {
            AuthKeys {
                enabled: true,
                key: random_key(),
                backup_key: String::new(),
                delta: 0,
            }
        } else {
            AuthKeys::default()
        },
        ..Domain::new(cx.account, name.clone(), kind, cx.now)
    };

    enum Outcome {
        Added,
        Mine,
        Theirs,
        Full,
        Unverified,
        DryRun,
    }
    let dry_run = cx.dry_run;
    let verify = cx.owner.required;
    // One write transaction: the uniqueness and quota checks and the insert
    // see the same state.
    let outcome = cx
        .store
        .transaction(move |c| -> Result<Outcome, StoreError> {
            Ok(match domains::find_any(c, &domain.name)? {
                Some(existing) if existing.account_id == domain.account_id => Outcome::Mine,
                Some(_) => Outcome::Theirs,
                None if domains::count(c, domain.account_id)? >= DOMAIN_QUOTA => Outcome::Full,
                None if super::owner::needs_verification(
                    c,
                    verify,
                    domain.account_id,
                    &domain.name,
                )? =>
                {
                    Outcome::Unverified
                }
                None if dry_run => Outcome::DryRun,
                None => {
                    domains::insert(c, &domain)?;
                    Outcome::Added
                }
            })
        })
        .await?;
    match outcome {
        Outcome::Added => {
            cx.publish_policy().await?;
            Ok(AddLiveDomainResponse {})
        }
        Outcome::DryRun => Err(ApiError::bare(ErrorCode::DryRunOperation)),
        Outcome::Mine => Err(ApiError::new(
            ErrorCode::FailedOperationDomainAdded,
            format!("The domain `{name}` has already been added to this account."),
            format!("域名 `{name}` 已添加。"),
        )),
        Outcome::Theirs => Err(ApiError::new(
            ErrorCode::InvalidParameterDomainAlreadyExist,
            format!("The domain `{name}` is already in use by another account."),
            format!("域名 `{name}` 已在其他处接入，请检查域名是否输入正确。"),
        )),
        Outcome::Unverified => {
            let main = super::owner::main_domain(&name).unwrap_or_default();
            Err(ApiError::new(
                ErrorCode::FailedOperationDomainNeedVerifyOwner,
                format!("Another account has a domain under {main}: prove this account controls {main} with AuthenticateDomainOwner (dnsCheck or fileCheck) first."),
                format!("{main} 下已有其他账号的域名：请先通过 AuthenticateDomainOwner（dnsCheck 或 fileCheck）验证本账号对 {main} 的归属。"),
            ))
        }
        Outcome::Full => Err(ApiError::new(
            ErrorCode::FailedOperationHostOutLimit,
            format!("This account already has {DOMAIN_QUOTA} domains, the limit."),
            format!("域名数量超过限制（{DOMAIN_QUOTA} 个）。"),
        )),
    }
}

/// Deletes a domain of the given type.
pub async fn delete_live_domain(
    cx: Cx,
    req: DeleteLiveDomainRequest,
) -> ApiResult<DeleteLiveDomainResponse> {
    let kind = wire_kind(
        check_enum("DomainType", Some(to_i64(req.domain_type)), &[PUSH, PLAY])?.unwrap_or(PUSH),
    );
    let domain = load_typed(&cx, &req.domain_name, kind).await?;
    cx.commit_point()?;
    let account = cx.account;
    let deleted = cx
        .store
        .run(move |c| domains::delete(c, account, &domain.name, kind))
        .await?;
    if !deleted {
        let name = lookup_name(&req.domain_name);
        return Err(if kind == DomainKind::Push {
            push_domain_missing(&name)
        } else {
            play_domain_missing(&name)
        });
    }
    cx.publish_policy().await?;
    Ok(DeleteLiveDomainResponse {})
}

/// Describes one domain.
pub async fn describe_live_domain(
    cx: Cx,
    req: DescribeLiveDomainRequest,
) -> ApiResult<DescribeLiveDomainResponse> {
    let domain = load_any(
        &cx,
        &req.domain_name,
        ErrorCode::ResourceNotFoundDomainNotExist,
    )
    .await?;
    Ok(DescribeLiveDomainResponse {
        domain_info: domain_info(domain),
    })
}

/// Lists the caller's domains, filtered and paged.
pub async fn describe_live_domains(
    cx: Cx,
    req: DescribeLiveDomainsRequest,
) -> ApiResult<DescribeLiveDomainsResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(10, to_i64), 10, 100)?;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, 100_000)?;
    let filter = DomainFilter {
        enabled: check_enum("DomainStatus", req.domain_status.map(to_i64), &[0, 1])?
            .map(|s| s == 1),
        kind: check_enum("DomainType", req.domain_type.map(to_i64), &[PUSH, PLAY])?.map(wire_kind),
        is_delay_live: check_enum("IsDelayLive", req.is_delay_live.map(to_i64), &[0, 1])?,
        play_type: check_enum("PlayType", req.play_type.map(to_i64), &[1, 2, 3])?,
        prefix: req
            .domain_prefix
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| !p.is_empty()),
    };
    // Answered from the policy's read model of the domains (kept current
    // by every domain write), not the database: this is the hottest read
    // of automation tools, and a round trip to SQLite costs more than the
    // rest of the request.
    let all = cx.policy.domains();
    let mine: Vec<&Domain> = all.iter().filter(|d| d.account_id == cx.account).collect();
    let owned = mine.len() as u64;
    let mut play_type_count = [0_i64; 3];
    for d in mine
        .iter()
        .filter(|d| d.kind == DomainKind::Play && d.enabled)
    {
        if let Some(slot) = usize::try_from(d.play_type - 1)
            .ok()
            .and_then(|i| play_type_count.get_mut(i))
        {
            *slot += 1;
        }
    }
    let matching: Vec<&Domain> = mine.into_iter().filter(|d| filter.matches(d)).collect();
    let total = matching.len() as u64;
    let offset = (page_num as usize - 1).saturating_mul(page_size as usize);
    let rows: Vec<Domain> = matching
        .into_iter()
        .skip(offset)
        .take(page_size as usize)
        .cloned()
        .collect();
    Ok(DescribeLiveDomainsResponse {
        all_count: total,
        domain_list: rows.into_iter().map(domain_info).collect(),
        create_limit_count: DOMAIN_QUOTA.saturating_sub(owned) as i64,
        play_type_count: play_type_count.to_vec(),
    })
}

/// Enables a domain: pushes and plays on it are accepted again.
pub async fn enable_live_domain(
    cx: Cx,
    req: EnableLiveDomainRequest,
) -> ApiResult<EnableLiveDomainResponse> {
    let mut domain = load_any(&cx, &req.domain_name, ErrorCode::ResourceNotFound).await?;
    domain.enabled = true;
    save(&cx, domain).await?;
    Ok(EnableLiveDomainResponse {})
}

/// Disables a domain: pushes and plays on it are refused.
pub async fn forbid_live_domain(
    cx: Cx,
    req: ForbidLiveDomainRequest,
) -> ApiResult<ForbidLiveDomainResponse> {
    let mut domain = load_any(&cx, &req.domain_name, ErrorCode::ResourceNotFound).await?;
    domain.enabled = false;
    save(&cx, domain).await?;
    Ok(ForbidLiveDomainResponse {})
}

/// Changes a play domain's area.
pub async fn modify_live_play_domain(
    cx: Cx,
    req: ModifyLivePlayDomainRequest,
) -> ApiResult<ModifyLivePlayDomainResponse> {
    let play_type = check_enum("PlayType", Some(req.play_type), &[1, 2, 3])?.unwrap_or(1);
    let mut domain = load_typed(&cx, &req.domain_name, DomainKind::Play).await?;
    domain.play_type = play_type;
    save(&cx, domain).await?;
    Ok(ModifyLivePlayDomainResponse {})
}

/// A play domain's referer rules.
pub async fn describe_live_domain_referer(
    cx: Cx,
    req: DescribeLiveDomainRefererRequest,
) -> ApiResult<DescribeLiveDomainRefererResponse> {
    let domain = load_typed(&cx, &req.domain_name, DomainKind::Play).await?;
    Ok(DescribeLiveDomainRefererResponse {
        referer_auth_config: Some(RefererAuthConfig {
            domain_name: domain.name,
            enable: i64::from(domain.referer.enabled),
            r#type: domain.referer.list_type,
            allow_empty: i64::from(domain.referer.allow_empty),
            rules: domain.referer.rules,
        }),
    })
}

/// Sets a play domain's referer rules.
pub async fn modify_live_domain_referer(
    cx: Cx,
    req: ModifyLiveDomainRefererRequest,
) -> ApiResult<ModifyLiveDomainRefererResponse> {
    check_enum("Enable", Some(req.enable), &[0, 1])?;
    check_enum("Type", Some(req.r#type), &[0, 1])?;
    check_enum("AllowEmpty", Some(req.allow_empty), &[0, 1])?;
    let rules = parse_referer_rules(&req.rules)?;
    let mut domain = load_typed(&cx, &req.domain_name, DomainKind::Play).await?;
    domain.referer = Referer {
        enabled: req.enable == 1,
        list_type: req.r#type,
        allow_empty: req.allow_empty == 1,
        rules,
    };
    save(&cx, domain).await?;
    Ok(ModifyLiveDomainRefererResponse {})
}

/// Normalises a `;`-separated referer list: each entry a host name,
/// optionally with a leading `*.` wildcard.
fn parse_referer_rules(raw: &str) -> ApiResult<String> {
    let mut rules = Vec::new();
    for rule in raw.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        let host = rule.strip_prefix("*.").unwrap_or(rule);
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
        if !ok {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Rules: `{rule}` is not a host name (such as example.com or *.example.com)."
                ),
                format!(
                    "Rules 中的 `{rule}` 不是合法的主机名（例如 example.com 或 *.example.com）。"
                ),
            ));
        }
        rules.push(rule.to_ascii_lowercase());
    }
    Ok(rules.join(";"))
}

/// Checks a signing key given to a Modify*AuthKey action.
fn check_key(name: &str, key: &str) -> ApiResult<()> {
    if key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be at most 128 printable ASCII characters without spaces."),
            format!("{name} 须为不超过 128 个可打印 ASCII 字符，且不含空格。"),
        ));
    }
    Ok(())
}

/// Applies the optional fields of a Modify*AuthKey request ("absent means
/// unchanged") and checks the result can sign URLs when enabled.
fn apply_auth(
    mut auth: AuthKeys,
    enable: Option<i64>,
    key: Option<(&str, String)>,
    backup: Option<(&str, String)>,
    delta: Option<u64>,
) -> ApiResult<AuthKeys> {
    if let Some(enable) = check_enum("Enable", enable, &[0, 1])? {
        auth.enabled = enable == 1;
    }
    if let Some((name, key)) = key {
        check_key(name, &key)?;
        auth.key = key;
    }
    if let Some((name, backup)) = backup {
        check_key(name, &backup)?;
        auth.backup_key = backup;
    }
    if let Some(delta) = delta {
        // Ten years: anything longer is a typo, and it must fit the store.
        auth.delta = check_range("AuthDelta", to_i64(delta), 0, 10 * 365 * 86_400)?;
    }
    if auth.enabled && auth.key.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "Authentication cannot be enabled without a key: set the master key too.",
            "启用鉴权时必须设置主鉴权 Key。",
        ));
    }
    Ok(auth)
}

/// A push domain's signing keys.
pub async fn describe_live_push_auth_key(
    cx: Cx,
    req: DescribeLivePushAuthKeyRequest,
) -> ApiResult<DescribeLivePushAuthKeyResponse> {
    let domain = load_typed(&cx, &req.domain_name, DomainKind::Push).await?;
    Ok(DescribeLivePushAuthKeyResponse {
        push_auth_key_info: PushAuthKeyInfo {
            domain_name: domain.name,
            enable: i64::from(domain.auth.enabled),
            master_auth_key: domain.auth.key,
            backup_auth_key: domain.auth.backup_key,
            auth_delta: u64::try_from(domain.auth.delta).unwrap_or(0),
        },
    })
}

/// Changes a push domain's signing keys.
pub async fn modify_live_push_auth_key(
    cx: Cx,
    req: ModifyLivePushAuthKeyRequest,
) -> ApiResult<ModifyLivePushAuthKeyResponse> {
    let mut domain = load_typed(&cx, &req.domain_name, DomainKind::Push).await?;
    domain.auth = apply_auth(
        domain.auth,
        req.enable,
        req.master_auth_key.map(|k| ("MasterAuthKey", k)),
        req.backup_auth_key.map(|k| ("BackupAuthKey", k)),
        req.auth_delta,
    )?;
    save(&cx, domain).await?;
    Ok(ModifyLivePushAuthKeyResponse {})
}

/// A play domain's signing keys.
pub async fn describe_live_play_auth_key(
    cx: Cx,
    req: DescribeLivePlayAuthKeyRequest,
) -> ApiResult<DescribeLivePlayAuthKeyResponse> {
    let domain = load_typed(&cx, &req.domain_name, DomainKind::Play).await?;
    Ok(DescribeLivePlayAuthKeyResponse {
        play_auth_key_info: PlayAuthKeyInfo {
            domain_name: domain.name,
            enable: i64::from(domain.auth.enabled),
            auth_key: domain.auth.key,
            auth_delta: u64::try_from(domain.auth.delta).unwrap_or(0),
            auth_back_key: domain.auth.backup_key,
        },
    })
}

/// Changes a play domain's signing keys.
pub async fn modify_live_play_auth_key(
    cx: Cx,
    req: ModifyLivePlayAuthKeyRequest,
) -> ApiResult<ModifyLivePlayAuthKeyResponse> {
    let mut domain = load_typed(&cx, &req.domain_name, DomainKind::Play).await?;
    domain.auth = apply_auth(
        domain.auth,
        req.enable,
        req.auth_key.map(|k| ("AuthKey", k)),
        req.auth_back_key.map(|k| ("AuthBackKey", k)),
        req.auth_delta,
    )?;
    save(&cx, domain).await?;
    Ok(ModifyLivePlayAuthKeyResponse {})
}

/// `DomainType` on the wire (0 push, 1 play) as a [`DomainKind`]; the
/// value has been checked to be one of the two.
pub(crate) fn wire_kind(v: i64) -> DomainKind {
    if v == PUSH {
        DomainKind::Push
    } else {
        DomainKind::Play
    }
}

/// A [`DomainKind`] as `DomainType` on the wire.
pub(crate) fn kind_wire(kind: DomainKind) -> u64 {
    match kind {
        DomainKind::Push => PUSH as u64,
        DomainKind::Play => PLAY as u64,
    }
}

/// A stored domain on the wire.
///
/// livestack serves domains itself, so there is no CNAME to point at:
/// `BCName` is 0 and the CNAME fields are empty.
pub(crate) fn domain_info(d: Domain) -> DomainInfo {
    DomainInfo {
        name: d.name,
        r#type: kind_wire(d.kind),
        status: u64::from(d.enabled),
        create_time: crate::time::beijing(d.created_at),
        bc_name: 0,
        target_domain: String::new(),
        play_type: d.play_type,
        is_delay_live: d.is_delay_live,
        current_c_name: String::new(),
        rent_tag: 0,
        rent_expire_time: "0000-00-00 00:00:00".to_owned(),
        is_mini_program_live: d.is_mini_program_live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_checked_and_lower_cased() {
        assert_eq!(
            parse_domain_name("Play.Example.COM").ok(),
            Some("play.example.com".to_owned())
        );
        assert_eq!(
            parse_domain_name("a-b.example.com").ok(),
            Some("a-b.example.com".to_owned())
        );
        for (bad, code) in [
            ("example", "InvalidParameter.DomainFormatError"),
            ("-a.example.com", "InvalidParameter.DomainFormatError"),
            ("a..example.com", "InvalidParameter.DomainFormatError"),
            ("a_b.example.com", "InvalidParameter.DomainFormatError"),
            ("127.0.0.1", "InvalidParameter.DomainFormatError"),
            ("play.example.com ", "InvalidParameter.DomainFormatError"),
            ("直播.example.com", "InternalError.ChineseCharacterDetected"),
        ] {
            let err = parse_domain_name(bad).expect_err(bad);
            assert_eq!(err.code.as_str(), code, "{bad}");
        }
        let long = format!("{}.com", "a.".repeat(130));
        assert_eq!(
            parse_domain_name(&long).expect_err("long").code.as_str(),
            "InvalidParameter.DomainTooLong"
        );
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(parse_domain_name(&long_label).is_err());
    }

    #[test]
    fn referer_rules_are_normalised_and_checked() {
        assert_eq!(
            parse_referer_rules(" A.com; *.b.com;;").ok(),
            Some("a.com;*.b.com".to_owned())
        );
        assert_eq!(parse_referer_rules("").ok(), Some(String::new()));
        assert!(parse_referer_rules("a.com;bad host").is_err());
    }

    #[test]
    fn absent_auth_fields_are_left_unchanged_and_enabling_needs_a_key() {
        let base = AuthKeys {
            enabled: false,
            key: "k".into(),
            backup_key: "b".into(),
            delta: 10,
        };
        let same = apply_auth(base.clone(), None, None, None, None).expect("ok");
        assert_eq!(same, base);
        let on = apply_auth(
            base.clone(),
            Some(1),
            None,
            Some(("B", String::new())),
            Some(5),
        )
        .expect("ok");
        assert!(on.enabled && on.key == "k" && on.backup_key.is_empty() && on.delta == 5);
        let no_key = AuthKeys::default();
        assert!(apply_auth(no_key, Some(1), None, None, None).is_err());
        assert!(apply_auth(base, Some(2), None, None, None).is_err());
    }
}
