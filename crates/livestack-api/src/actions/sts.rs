//! STS 2018-08-13: federation tokens and who-am-I.
//!
//! Owns: `GetFederationToken` (a temporary key whose rights are its
//! issuer's intersected with the policy it was asked for; the gateway's
//! `access` check applies both on every call) and `GetCallerIdentity`.
//! Must not: hand out a key that outlives the documented bounds or
//! carries a policy the engine does not understand. `AssumeRole` needs
//! CAM roles and trust policies, which livestack does not have yet.

use livestack_model::sts::*;
use livestack_store::keys::{self, NewKey};

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

/// `GetFederationToken`.
pub async fn get_federation_token(
    cx: Cx,
    req: GetFederationTokenRequest,
) -> ApiResult<GetFederationTokenResponse> {
    if cx.caller.temporary {
        return Err(ApiError::new(
            ErrorCode::FailedOperationTempKeyNotAllowed,
            "GetFederationToken must be called with a permanent key, not a temporary one.",
            "GetFederationToken 不支持临时密钥调用，请使用永久密钥。",
        ));
    }
    let name_ok = !req.name.is_empty()
        && req.name.len() <= 32
        && req
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
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
    let policy = percent_decode(&req.policy).ok_or_else(|| {
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
    cx.commit_point()?;
    let ttl = i64::try_from(duration).unwrap_or(i64::MAX);
    let key = NewKey::generate(cx.account, Some(ttl))
        .for_user(cx.caller.user.as_ref().map(|u| u.id))
        .with_session(req.name.clone(), policy);
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
