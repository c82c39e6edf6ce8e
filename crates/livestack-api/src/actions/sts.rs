//! STS 2018-08-13: federation tokens and who-am-I.
//!
//! Owns: `GetFederationToken` (a temporary key whose rights are its
//! issuer's intersected with the policy it was asked for; the gateway's
//! `access` check applies both on every call) and `GetCallerIdentity`.
//! Must not: hand out a key that outlives the documented bounds or
//! carries a policy the engine does not understand. `AssumeRole` (a
//! role's credentials, if its trust policy names the caller; their rights
//! are the role's policies, intersected with the session policy if one is
//! given).

use livestack_model::sts::*;
use livestack_store::keys::{self, NewKey};

use super::cam::valid_name;
use crate::access::user_uin;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Default federation token lifetime (s).
pub const DEFAULT_DURATION: u64 = 1800;
/// Longest lifetime for a token asked by a root key (s).
pub const ROOT_MAX_DURATION: u64 = 7200;
/// Longest lifetime for a token asked by a sub-account's key (s).
pub const SUB_MAX_DURATION: u64 = 129_600;
/// The longest session policy, in bytes (URL-decoded).
pub const MAX_POLICY: usize = 2048;

/// URL decoding (`%XX`, and `+` for a space: the documented encoding of
/// `Policy`); a document sent unencoded (no `%` in it) passes unchanged.
/// `None` when an escape is broken.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Default AssumeRole lifetime (s).
pub const ROLE_DEFAULT_DURATION: u64 = 7200;
/// Longest AssumeRole lifetime (s).
pub const ROLE_MAX_DURATION: u64 = 43_200;

fn temp_key_refused(action: &str) -> ApiError {
    ApiError::new(
        ErrorCode::FailedOperationTempKeyNotAllowed,
        format!("{action} must be called with a permanent key, not a temporary one."),
        format!("{action} 不支持临时密钥调用，请使用永久密钥。"),
    )
}

/// A session policy as asked: URL-decoded, within its size, understood whole.
fn session_policy(raw: &str) -> ApiResult<String> {
    let policy = percent_decode(raw).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameterStrategyFormatError,
            "Policy is not correctly URL-encoded.",
            "Policy 的 URL 编码不正确。",
        )
    })?;
    if policy.len() > MAX_POLICY {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterPolicyTooLong,
            format!(
                "The policy is {} bytes; at most {MAX_POLICY} are allowed.",
                policy.len()
            ),
            format!(
                "策略长度为 {} 字节，超过 {MAX_POLICY} 字节的限制。",
                policy.len()
            ),
        ));
    }
    super::cam::check_document(&policy).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameterStrategyFormatError,
            e.message(crate::error::Lang::En).into_owned(),
            e.message(crate::error::Lang::Zh).into_owned(),
        )
    })?;
    Ok(policy)
}

/// `AssumeRole`: the role named by `RoleArn`
/// (`qcs::cam::uin/<uin>:roleName/<name>`) in the caller's account, if its
/// trust policy names the caller (its account's `:root` or itself).
pub async fn assume_role(cx: Cx, req: AssumeRoleRequest) -> ApiResult<AssumeRoleResponse> {
    if cx.caller.temporary {
        return Err(temp_key_refused("AssumeRole"));
    }
    let session_ok = req.role_session_name.len() >= 2 && valid_name(&req.role_session_name, 128);
    if !session_ok {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterParamError,
            format!(
                "RoleSessionName {:?} is not valid: 2 to 128 letters, digits or +=,.@_-.",
                req.role_session_name
            ),
            format!(
                "RoleSessionName {:?} 不合法：须为 2 到 128 个字母、数字或 +=,.@_-。",
                req.role_session_name
            ),
        ));
    }
    let bad_arn = || {
        ApiError::new(
            ErrorCode::InvalidParameterResouceError,
            format!(
                "RoleArn {:?} is not qcs::cam::uin/<uin>:roleName/<name>.",
                req.role_arn
            ),
            format!(
                "RoleArn {:?} 的格式应为 qcs::cam::uin/<uin>:roleName/<name>。",
                req.role_arn
            ),
        )
    };
    let (uin, name) = req
        .role_arn
        .strip_prefix("qcs::cam::uin/")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(uin, role)| Some((uin, role.strip_prefix("roleName/")?)))
        .filter(|(uin, name)| !uin.is_empty() && !name.is_empty())
        .ok_or_else(bad_arn)?;
    let not_found = || {
        ApiError::new(
            ErrorCode::ResourceNotFoundRoleNotFound,
            format!("The role {} does not exist.", req.role_arn),
            format!("角色 {} 不存在。", req.role_arn),
        )
    };
    // Roles are assumed within their own account: tenancy between root
    // accounts stays as it is.
    if uin != cx.caller.owner_uin {
        return Err(not_found());
    }
    let policy = req.policy.as_deref().map(session_policy).transpose()?;
    let account = cx.account;
    let role_name = name.to_owned();
    let role = cx
        .store
        .run(move |conn| livestack_store::cam::role_by_name(conn, account, &role_name))
        .await?
        .ok_or_else(not_found)?;
    let trust = livestack_core::cam::Trust::parse(&role.trust_policy).map_err(|e| {
        ApiError::internal(
            ErrorCode::InternalError,
            anyhow::anyhow!(
                "stored trust policy of role {} no longer parses: {e}",
                role.name
            ),
        )
    })?;
    let op = ["*".to_owned()];
    let request = livestack_core::cam::Request {
        action: "sts:AssumeRole",
        resources: &op,
        owner_uin: &cx.caller.owner_uin,
        app_id: cx.caller.app_id,
        ip: None,
        now: cx.now,
    };
    if !trust.allows(&cx.caller.principals(), &request) {
        return Err(ApiError::new(
            ErrorCode::UnauthorizedOperation,
            format!(
                "The trust policy of role {} does not let {} assume it.",
                role.name,
                cx.caller.uin()
            ),
            format!(
                "角色 {} 的信任策略不允许 {} 扮演该角色。",
                role.name,
                cx.caller.uin()
            ),
        ));
    }
    let max = if role.session_duration > 0 {
        role.session_duration.unsigned_abs().min(ROLE_MAX_DURATION)
    } else {
        ROLE_MAX_DURATION
    };
    let duration = req
        .duration_seconds
        .unwrap_or(ROLE_DEFAULT_DURATION.min(max));
    if duration == 0 || duration > max {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterOverTimeError,
            format!("DurationSeconds must be between 1 and {max} for this role, not {duration}."),
            format!("DurationSeconds 的取值范围为 1 到 {max}，而不是 {duration}。"),
        ));
    }
    cx.commit_point()?;
    let ttl = i64::try_from(duration).unwrap_or(i64::MAX);
    let key = NewKey::generate(cx.account, Some(ttl))
        .for_role(role.id)
        .with_session(req.role_session_name.clone(), policy);
    let stored = key.clone();
    cx.store
        .run(move |conn| keys::insert(conn, &stored))
        .await?;
    let (token, expires_at) = key.temporary.unwrap_or_default();
    tracing::info!(role = %role.name, session = %req.role_session_name, secret_id = %key.secret_id, expires_at, "role assumed");
    Ok(AssumeRoleResponse {
        credentials: Credentials {
            token,
            tmp_secret_id: key.secret_id,
            tmp_secret_key: key.secret_key,
        },
        expired_time: expires_at,
        expiration: crate::time::utc_iso(expires_at),
    })
}

/// `GetFederationToken`.
pub async fn get_federation_token(
    cx: Cx,
    req: GetFederationTokenRequest,
) -> ApiResult<GetFederationTokenResponse> {
    if cx.caller.temporary {
        return Err(temp_key_refused("GetFederationToken"));
    }
    let name_ok = valid_name(&req.name, 32);
    if !name_ok {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterParamError,
            format!(
                "Name {:?} is not valid: 1 to 32 letters, digits or +=,.@_-.",
                req.name
            ),
            format!(
                "Name {:?} 不合法：须为 1 到 32 个字母、数字或 +=,.@_-。",
                req.name
            ),
        ));
    }
    let max = if cx.caller.user.is_some() {
        SUB_MAX_DURATION
    } else {
        ROOT_MAX_DURATION
    };
    let duration = req.duration_seconds.unwrap_or(DEFAULT_DURATION);
    if duration == 0 || duration > max {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterOverTimeError,
            format!("DurationSeconds must be between 1 and {max} for this key, not {duration}."),
            format!("DurationSeconds 的取值范围为 1 到 {max}，而不是 {duration}。"),
        ));
    }
    let policy = session_policy(&req.policy)?;
    cx.commit_point()?;
    let ttl = i64::try_from(duration).unwrap_or(i64::MAX);
    let key = NewKey::generate(cx.account, Some(ttl))
        .for_user(cx.caller.user.as_ref().map(|u| u.id))
        .with_session(req.name.clone(), Some(policy));
    let stored = key.clone();
    cx.store
        .run(move |conn| keys::insert(conn, &stored))
        .await?;
    let (token, expires_at) = key.temporary.unwrap_or_default();
    tracing::info!(name = %req.name, secret_id = %key.secret_id, expires_at, "federation token issued");
    Ok(GetFederationTokenResponse {
        credentials: Credentials {
            token,
            tmp_secret_id: key.secret_id,
            tmp_secret_key: key.secret_key,
        },
        expired_time: expires_at.unsigned_abs(),
        expiration: Some(crate::time::utc_iso(expires_at)),
    })
}

/// `GetCallerIdentity`: needs no permission.
pub async fn get_caller_identity(
    cx: Cx,
    _req: GetCallerIdentityRequest,
) -> ApiResult<GetCallerIdentityResponse> {
    let owner = cx.caller.owner_uin.clone();
    let me = match &cx.caller.user {
        Some(u) => user_uin(u.id).to_string(),
        None => owner.clone(),
    };
    if let Some(role) = &cx.caller.role {
        let id = crate::access::role_id(role.id);
        let session = cx.caller.session_name.clone().unwrap_or_default();
        return Ok(GetCallerIdentityResponse {
            arn: Some(format!("qcs::sts::uin/{owner}:assumed-role/{id}/{session}")),
            account_id: Some(owner.clone()),
            user_id: Some(format!("{id}:{session}")),
            principal_id: Some(owner),
            r#type: Some("CAMRole".to_owned()),
        });
    }
    let (arn, user_id, kind) = match (&cx.caller.session_name, &cx.caller.user) {
        (Some(name), _) => (
            format!("qcs::sts:{owner}:federated-user/{me}:{name}"),
            format!("{me}:{name}"),
            "FederatedUser",
        ),
        (None, Some(_)) => (
            format!("qcs::cam::uin/{owner}:uin/{me}"),
            me.clone(),
            "CAMUser",
        ),
        (None, None) => (
            format!("qcs::cam::uin/{owner}:uin/{owner}"),
            owner.clone(),
            "RootAccount",
        ),
    };
    Ok(GetCallerIdentityResponse {
        arn: Some(arn),
        account_id: Some(owner),
        user_id: Some(user_id),
        principal_id: Some(me),
        r#type: Some(kind.to_owned()),
    })
}
