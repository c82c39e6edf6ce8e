//! Who is calling: key lookup, timestamp window, signature, replay and
//! session-token checks for both signature versions.
//!
//! Owns: the `AuthFailure.*` decisions. Must not: look at action parameters
//! beyond what the signature covers. Sub-account permissions
//! (`AuthFailure.UnauthorizedOperation`, `AuthFailure.MFAFailure`) will be
//! checked on the [`Principal`] this module returns, after it.

pub mod tc3;
pub mod v1;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use livestack_core::AccountId;
use livestack_store::keys::{self, ApiKey};
use livestack_store::Store;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// How far a request's timestamp may be from the server clock, in seconds.
pub const TIMESTAMP_WINDOW: i64 = 300;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account the request acts for.
    pub account: AccountId,
    /// The key that signed it.
    pub secret_id: String,
}

/// How long a key read from the store is trusted. The offline `keys`
/// commands write from another process, so a disabled key stops working
/// within this time rather than at once.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Recently used keys, so that a busy client does not cost a database
/// round trip per request.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, ApiKey)>>,
}

impl KeyCache {
    fn get(&self, secret_id: &str) -> Option<ApiKey> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(secret_id) {
            Some((at, key)) if at.elapsed() < KEY_CACHE_TTL => Some(key.clone()),
            _ => None,
        }
    }

    fn put(&self, key: ApiKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
        }
        entries.insert(key.secret_id.clone(), (Instant::now(), key));
    }
}

/// Finds the key for `secret_id`: `InvalidSecretId` when the id is not
/// shaped like an API key id, `SecretIdNotFound` when it is unknown or
/// disabled.
pub(crate) async fn lookup_key(
    store: &Store,
    cache: &KeyCache,
    secret_id: &str,
) -> ApiResult<ApiKey> {
    if !keys::is_well_formed_secret_id(secret_id) {
        return Err(ApiError::new(
            ErrorCode::AuthFailureInvalidSecretId,
            "The SecretId is not a Cloud API key id (it must start with AKID and contain only letters and digits).",
            "密钥非法（不是云 API 密钥类型）：SecretId 须以 AKID 开头，仅含字母和数字。",
        ));
    }
    let key = match cache.get(secret_id) {
        Some(key) => Some(key),
        None => {
            let id = secret_id.to_owned();
            let key = store.run(move |c| keys::find(c, &id)).await?;
            if let Some(key) = &key {
                cache.put(key.clone());
            }
            key
        }
    };
    match key {
        Some(key) if key.enabled => Ok(key),
        _ => Err(ApiError::bare(ErrorCode::AuthFailureSecretIdNotFound)),
    }
}

/// `SignatureExpire` unless `timestamp` is within the window around `now`.
pub(crate) fn check_timestamp(timestamp: &str, now: i64) -> ApiResult<()> {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "The Timestamp must be a Unix time in seconds.",
            "Timestamp 必须是以秒为单位的 Unix 时间戳。",
        ));
    };
    if (now - ts).abs() > TIMESTAMP_WINDOW {
        return Err(ApiError::new(
            ErrorCode::AuthFailureSignatureExpire,
            format!(
                "The signature has expired: Timestamp {ts} differs from the server time {now} by more than five minutes. Check that the local clock is in sync."
            ),
            format!(
                "签名过期。Timestamp {ts} 和服务器时间 {now} 相差超过五分钟，请检查本地时间是否和标准时间同步。"
            ),
        ));
    }
    Ok(())
}

/// `SignatureFailure` unless the signature matched.
pub(crate) fn check_signature(matched: bool) -> ApiResult<()> {
    if matched {
        Ok(())
    } else {
        Err(ApiError::bare(ErrorCode::AuthFailureSignatureFailure))
    }
}

/// Checks the session token: a temporary key needs its own, unexpired
/// token; a permanent key takes none.
pub(crate) fn check_token(key: &ApiKey, token: Option<&str>, now: i64) -> ApiResult<()> {
    let token = token.filter(|t| !t.is_empty());
    let fail = |en: &'static str, zh: &'static str| {
        Err(ApiError::new(ErrorCode::AuthFailureTokenFailure, en, zh))
    };
    match (&key.token, token) {
        (None, None) => Ok(()),
        (None, Some(_)) => fail(
            "The token is not a valid temporary credential: this SecretId is a permanent key, which takes no token.",
            "token 错误：该 SecretId 是永久密钥，不应携带 token。",
        ),
        (Some(_), None) => fail(
            "This SecretId is a temporary credential and needs its token (X-TC-Token).",
            "token 错误：该 SecretId 是临时密钥，请求须携带 token（X-TC-Token）。",
        ),
        (Some(expected), Some(given)) => {
            if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                fail("The token does not belong to this temporary credential.", "token 错误：token 与临时密钥不匹配。")
            } else if key.expires_at.is_some_and(|exp| now >= exp) {
                fail("The temporary credential has expired.", "token 错误：临时密钥已过期。")
            } else {
                Ok(())
            }
        }
    }
}

/// Remembers the (SecretId, Nonce) pairs of legacy-signed requests within
/// the timestamp window, so a captured request cannot be replayed.
#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl NonceCache {
    /// Records the pair at `now`; `SignatureFailure` when it was seen within
    /// the window.
    pub(crate) fn check(&self, secret_id: &str, nonce: &str, now: i64) -> ApiResult<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= 4096 {
            // Entries older than twice the window can no longer be replayed:
            // the timestamp check refuses their requests first.
            seen.retain(|_, at| now - *at <= 2 * TIMESTAMP_WINDOW);
        }
        let key = (secret_id.to_owned(), nonce.to_owned());
        match seen.get(&key) {
            Some(at) if now - *at <= 2 * TIMESTAMP_WINDOW => Err(ApiError::new(
                ErrorCode::AuthFailureSignatureFailure,
                "This Nonce was already used with this SecretId: the request looks like a replay. Use a fresh random Nonce for every request.",
                "签名错误：该 Nonce 已被此 SecretId 使用过，请求疑似重放。每个请求请使用新的随机 Nonce。",
            )),
            _ => {
                seen.insert(key, now);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: Option<&str>, expires_at: Option<i64>) -> ApiKey {
        ApiKey {
            secret_id: "AKIDtest0000".into(),
            secret_key: "k".into(),
            account_id: AccountId(1),
            enabled: true,
            token: token.map(str::to_owned),
            expires_at,
            created_at: 0,
        }
    }

    fn code<T: std::fmt::Debug>(r: ApiResult<T>) -> &'static str {
        r.expect_err("an error").code.as_str()
    }

    #[test]
    fn timestamps_outside_five_minutes_have_expired() {
        assert!(check_timestamp("1000", 1300).is_ok());
        assert!(check_timestamp("1000", 700).is_ok());
        assert_eq!(
            code(check_timestamp("1000", 1301)),
            "AuthFailure.SignatureExpire"
        );
        assert_eq!(
            code(check_timestamp("1000", 699)),
            "AuthFailure.SignatureExpire"
        );
        assert_eq!(code(check_timestamp("soon", 1000)), "InvalidParameter");
    }

    #[test]
    fn tokens_must_match_a_live_temporary_key_and_only_one() {
        assert!(check_token(&key(None, None), None, 0).is_ok());
        assert!(check_token(&key(None, None), Some(""), 0).is_ok());
        assert_eq!(
            code(check_token(&key(None, None), Some("x"), 0)),
            "AuthFailure.TokenFailure"
        );
        let temp = key(Some("tok"), Some(100));
        assert!(check_token(&temp, Some("tok"), 99).is_ok());
        assert_eq!(
            code(check_token(&temp, Some("tok"), 100)),
            "AuthFailure.TokenFailure"
        );
        assert_eq!(
            code(check_token(&temp, Some("bad"), 0)),
            "AuthFailure.TokenFailure"
        );
        assert_eq!(
            code(check_token(&temp, None, 0)),
            "AuthFailure.TokenFailure"
        );
    }

    #[test]
    fn a_nonce_is_accepted_once_per_key_within_the_window() {
        let cache = NonceCache::default();
        assert!(cache.check("AKIDa", "1", 1000).is_ok());
        assert_eq!(
            code(cache.check("AKIDa", "1", 1001)),
            "AuthFailure.SignatureFailure"
        );
        assert!(cache.check("AKIDb", "1", 1001).is_ok());
        assert!(cache
            .check("AKIDa", "1", 1000 + 2 * TIMESTAMP_WINDOW + 1)
            .is_ok());
    }
}
