//! Who is calling: key lookup, timestamp window, signature, replay and
//! session-token checks for both signature versions.
//!
//! Owns: the `AuthFailure.*` decisions about the key. Must not: look at
//! action parameters beyond what the signature covers. What the key's
//! owner may do (`AuthFailure.UnauthorizedOperation`) is decided by
//! [`crate::access`] on the [`Principal`] this module returns, after it.

pub mod tc3;
pub mod v1;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livestack_core::AccountId;
use livestack_store::keys::{self, ApiKey};
use livestack_store::Store;
use subtle::ConstantTimeEq;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, ErrorCode, Lang};

/// How far a request's timestamp may be from the server clock, in seconds.
pub const TIMESTAMP_WINDOW: i64 = 300;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account the request acts for.
    pub account: AccountId,
    /// The key that signed it.
    pub secret_id: String,
    /// The sub-account the key belongs to; `None` for the root account.
    pub user_id: Option<i64>,
    /// Whether the key is temporary (it carried its session token).
    pub temporary: bool,
    /// A federation token's name.
    pub session_name: Option<String>,
    /// A federation token's policy, which limits what it may do.
    pub session_policy: Option<String>,
    /// The role credentials from AssumeRole act as.
    pub role_id: Option<i64>,
}

impl Principal {
    fn of(key: &ApiKey) -> Principal {
        Principal {
            account: key.account_id,
            temporary: key.token.is_some(),
            secret_id: key.secret_id.clone(),
            user_id: key.user_id,
            session_name: key.session_name.clone(),
            session_policy: key.session_policy.clone(),
            role_id: key.role_id,
        }
    }
}

/// How long a key read from the store is trusted. The offline `keys`
/// commands write from another process, so a disabled key stops working
/// within this time rather than at once.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a key read from the store is still trusted while the store
/// cannot be reached: the key cannot have changed meanwhile (changing it
/// needs the store), and the caller then gets its action's own answer
/// (served from what is cached) rather than a database error on every
/// call.
pub const KEY_CACHE_STALE: Duration = Duration::from_secs(600);

/// Recently used keys, so that a busy client does not cost a database
/// round trip per request.
#[derive(Default)]
pub struct KeyCache {
    // Shared, not cloned: a hit hands out the key without copying its
    // strings.
    entries: Mutex<HashMap<String, (Instant, Arc<ApiKey>)>>,
}

impl KeyCache {
    fn get(&self, secret_id: &str) -> Option<Arc<ApiKey>> {
        self.get_within(secret_id, KEY_CACHE_TTL)
    }

    fn get_within(&self, secret_id: &str, age: Duration) -> Option<Arc<ApiKey>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(secret_id) {
            Some((at, key)) if at.elapsed() < age => Some(Arc::clone(key)),
            _ => None,
        }
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn put(&self, key: Arc<ApiKey>) {
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
) -> ApiResult<Arc<ApiKey>> {
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
            match store.run(move |c| keys::find(c, &id)).await {
                Ok(key) => {
                    let key = key.map(Arc::new);
                    if let Some(key) = &key {
                        cache.put(Arc::clone(key));
                    }
                    key
                }
                Err(e @ livestack_store::StoreError::Connect { .. }) => {
                    match cache.get_within(secret_id, KEY_CACHE_STALE) {
                        Some(key) => Some(key),
                        None => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
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

// ---------------------------------------------------------------- requests

/// Parameters as they arrived: a JSON body or flattened pairs.
pub enum Params {
    /// A JSON body (TC3 POST).
    Json(Value),
    /// `A.0.B=x` pairs (GET, form bodies, legacy signatures).
    Flat(Vec<(String, String)>),
}

/// `MissingParameter` for a required common parameter.
pub(crate) fn missing(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        format!("The required parameter `{name}` is missing."),
        format!("缺少必填参数 `{name}`。"),
    )
}

fn decode_pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// The common parameters of a legacy-signed request; never action parameters.
const V1_COMMON: &[&str] = &[
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Token",
    "Language",
    "RequestClient",
];

/// A request as it arrived, before anything in it is trusted.
pub struct RawRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The query string (GET parameters).
    pub query: &'a str,
    /// The body exactly as sent (the TC3 signature covers these bytes).
    pub body: &'a [u8],
    /// Whether the body is `application/x-www-form-urlencoded`.
    pub is_form: bool,
    /// The server clock (Unix seconds) when it arrived.
    pub now: i64,
    /// Without an `Authorization` header, the parameters (the query of a
    /// GET, a form body of a POST), decoded once for both the `Language`
    /// and the legacy signature; empty otherwise.
    legacy: Vec<(String, String)>,
}

impl<'a> RawRequest<'a> {
    /// A request as it arrived.
    pub fn new(
        method: &'a str,
        headers: &'a HeaderMap,
        query: &'a str,
        body: &'a [u8],
        is_form: bool,
        now: i64,
    ) -> RawRequest<'a> {
        let legacy = if header_str(headers, &names::AUTHORIZATION).is_some() {
            Vec::new()
        } else if method == "GET" {
            decode_pairs(query.as_bytes())
        } else if is_form {
            decode_pairs(body)
        } else {
            Vec::new()
        };
        RawRequest {
            method,
            headers,
            query,
            body,
            is_form,
            now,
            legacy,
        }
    }

    /// The `Language` parameter of a legacy-signed request (TC3 sends it
    /// as the `X-TC-Language` header), read before authentication so that
    /// its errors are in that language too.
    pub fn language(&self) -> Option<Lang> {
        self.legacy
            .iter()
            .find(|(k, _)| k == "Language")
            .map(|(_, l)| Lang::parse(l))
    }
}

/// Who is calling and what they ask, once the signature holds.
pub struct Authenticated {
    /// The caller.
    pub principal: Principal,
    /// The service of a TC3 credential scope (`live`, `cam`, `sts`, ...);
    /// empty for a legacy signature, which names none.
    pub service: String,
    /// `X-TC-Action` / `Action`.
    pub action: String,
    /// `X-TC-Version` / `Version`.
    pub version: Option<String>,
    /// `X-TC-Region` / `Region`.
    pub region: Option<String>,
    /// The action's parameters.
    pub params: Params,
}

/// Authenticates requests of either signature version against the keys
/// in the store.
pub struct Authenticator {
    store: Store,
    keys: KeyCache,
    nonces: NonceCache,
    signing: SigningKeys,
}

/// TC3 signing keys derived from (secret key, date, service): three HMACs
/// a request need not repeat (5 % of a signed request's CPU). Bounded: it
/// is emptied when it reaches [`SigningKeys::MAX`] entries, so a flood of
/// dates or services costs derivations, never memory.
///
/// Keyed by a hash of the three (randomly seeded, as `HashMap`'s own), so
/// a lookup borrows them instead of building an owned key; an entry
/// keeps them to check that it is the one asked for, and two that share a
/// hash take turns in the slot.
#[derive(Default)]
struct SigningKeys {
    hasher: std::hash::RandomState,
    keys: Mutex<HashMap<u64, SigningKey>>,
}

struct SigningKey {
    secret_key: String,
    date: String,
    service: String,
    mac: tc3::HmacSha256,
}

impl SigningKeys {
    const MAX: usize = 4096;

    /// The HMAC keyed with the signing key of `secret_key`, `date` and
    /// `service`.
    fn get(&self, secret_key: &str, date: &str, service: &str) -> tc3::HmacSha256 {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one((secret_key, date, service));
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
        {
            if k.secret_key == secret_key && k.date == date && k.service == service {
                return k.mac.clone();
            }
        }
        let mac = tc3::keyed(&tc3::signing_key(secret_key, date, service));
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= Self::MAX {
            keys.clear();
        }
        keys.insert(
            hash,
            SigningKey {
                secret_key: secret_key.to_owned(),
                date: date.to_owned(),
                service: service.to_owned(),
                mac: mac.clone(),
            },
        );
        mac
    }
}

impl Authenticator {
    /// An authenticator reading keys from `store`.
    pub fn new(store: Store) -> Authenticator {
        Authenticator {
            store,
            keys: KeyCache::default(),
            nonces: NonceCache::default(),
            signing: SigningKeys::default(),
        }
    }

    /// Forgets every cached key, after a key was changed on this node.
    pub fn forget_keys(&self) {
        self.keys.clear();
    }

    /// The one entry point: TC3 when there is an `Authorization` header,
    /// the legacy signature when the parameters carry `SecretId` and
    /// `Signature`; `AuthFailure.*` otherwise.
    pub async fn authenticate(&self, mut req: RawRequest<'_>) -> ApiResult<Authenticated> {
        if let Some(authorization) = header_str(req.headers, "authorization") {
            return self.authenticate_tc3(&req, authorization).await;
        }
        let pairs = std::mem::take(&mut req.legacy);
        if !pairs
            .iter()
            .any(|(k, _)| k == "Signature" || k == "SecretId")
        {
            return Err(ApiError::new(
                ErrorCode::AuthFailureInvalidAuthorization,
                "The request carries neither an Authorization header (TC3-HMAC-SHA256) nor a SecretId and Signature (HmacSHA1/HmacSHA256).",
                "请求既没有 Authorization 头部（TC3-HMAC-SHA256），也没有 SecretId 与 Signature 参数（HmacSHA1/HmacSHA256）。",
            ));
        }
        self.authenticate_v1(&req, pairs).await
    }

    async fn authenticate_tc3(
        &self,
        req: &RawRequest<'_>,
        authorization: &str,
    ) -> ApiResult<Authenticated> {
        let RawRequest {
            method,
            headers,
            query,
            body,
            is_form,
            now,
            ..
        } = *req;
        let auth = tc3::parse_authorization(authorization).map_err(|why| {
            ApiError::new(
                ErrorCode::AuthFailureInvalidAuthorization,
                format!(
                    "The Authorization header does not follow the Tencent Cloud standard: {why}."
                ),
                format!("请求头部的 Authorization 不符合腾讯云标准：{why}。"),
            )
        })?;
        let key = lookup_key(&self.store, &self.keys, auth.secret_id).await?;
        let timestamp =
            header_str(headers, &names::X_TC_TIMESTAMP).ok_or_else(|| missing("X-TC-Timestamp"))?;
        check_timestamp(timestamp, now)?;
        let unsigned = header_str(headers, &names::X_TC_CONTENT_SHA256)
            .is_some_and(|v| v.eq_ignore_ascii_case("UNSIGNED-PAYLOAD"));
        let payload_hash = if unsigned {
            tc3::sha256_hex(b"UNSIGNED-PAYLOAD")
        } else {
            tc3::sha256_hex(body)
        };
        let lookup = |name: &str| header_str(headers, name);
        let signed = tc3::Signed {
            method,
            query: if method == "GET" { query } else { "" },
            timestamp,
            payload_hash,
            header: &lookup,
        };
        // The scope date must be the UTC date of the timestamp it signs.
        let date_ok = timestamp
            .trim()
            .parse::<i64>()
            .is_ok_and(|ts| crate::time::is_utc_date_of(auth.date, ts));
        check_signature(
            date_ok
                && tc3::verify_with(
                    &signed,
                    &auth,
                    &self.signing.get(&key.secret_key, auth.date, auth.service),
                ),
        )?;
        check_token(&key, header_str(headers, &names::X_TC_TOKEN), now)?;

        let action = header_str(headers, &names::X_TC_ACTION)
            .ok_or_else(|| missing("X-TC-Action"))?
            .to_owned();
        let params = if method == "GET" {
            Params::Flat(decode_pairs(query.as_bytes()))
        } else if is_form {
            Params::Flat(decode_pairs(body))
        } else if body.iter().all(u8::is_ascii_whitespace) {
            Params::Json(Value::Object(Map::new()))
        } else {
            // The signature covered these bytes, so they are what the client
            // meant to send; still, they may not be JSON. That is the
            // client's mistake (`InvalidParameter`, logged at INFO), not
            // an internal error an SDK would retry and an operator be paged for.
            let value: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("The request body is not valid JSON: {e}."),
                    format!("请求包体不是合法的 JSON：{e}。"),
                )
            })?;
            Params::Json(value)
        };
        Ok(Authenticated {
            principal: Principal::of(&key),
            service: auth.service.to_owned(),
            action,
            version: header_str(headers, &names::X_TC_VERSION).map(str::to_owned),
            region: header_str(headers, &names::X_TC_REGION).map(str::to_owned),
            params,
        })
    }

    async fn authenticate_v1(
        &self,
        req: &RawRequest<'_>,
        pairs: Vec<(String, String)>,
    ) -> ApiResult<Authenticated> {
        let RawRequest {
            method,
            headers,
            now,
            ..
        } = *req;
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let secret_id = get("SecretId").ok_or_else(|| missing("SecretId"))?;
        let signature = get("Signature").ok_or_else(|| missing("Signature"))?;
        let timestamp = get("Timestamp").ok_or_else(|| missing("Timestamp"))?;
        let nonce = get("Nonce").ok_or_else(|| missing("Nonce"))?;
        let sign_method = v1::Method::parse(get("SignatureMethod")).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameterValue,
                "SignatureMethod must be HmacSHA1 or HmacSHA256.",
                "SignatureMethod 的取值须为 HmacSHA1 或 HmacSHA256。",
            )
        })?;
        let key = lookup_key(&self.store, &self.keys, secret_id).await?;
        check_timestamp(timestamp, now)?;
        let signed: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, _)| k != "Signature")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let host = header_str(headers, axum::http::header::HOST).unwrap_or("");
        check_signature(v1::verify(
            method,
            host,
            &signed,
            sign_method,
            &key.secret_key,
            signature,
        ))?;
        self.nonces.check(secret_id, nonce, now)?;
        check_token(&key, get("Token"), now)?;

        let action = get("Action").ok_or_else(|| missing("Action"))?.to_owned();
        let version = get("Version").map(str::to_owned);
        let region = get("Region").map(str::to_owned);
        let principal = Principal::of(&key);
        let params = pairs
            .into_iter()
            .filter(|(k, _)| !V1_COMMON.contains(&k.as_str()))
            .collect();
        Ok(Authenticated {
            principal,
            service: String::new(),
            action,
            version,
            region,
            params: Params::Flat(params),
        })
    }
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header_str(
    headers: &HeaderMap,
    name: impl axum::http::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers every signed request is read for, parsed once: a lookup by
/// `&str` parses and checks the name on every call (3 % of a signed
/// request's CPU).
pub(crate) mod names {
    use axum::http::HeaderName;

    pub(crate) static AUTHORIZATION: HeaderName = HeaderName::from_static("authorization");
    pub(crate) static X_TC_TIMESTAMP: HeaderName = HeaderName::from_static("x-tc-timestamp");
    pub(crate) static X_TC_CONTENT_SHA256: HeaderName =
        HeaderName::from_static("x-tc-content-sha256");
    pub(crate) static X_TC_TOKEN: HeaderName = HeaderName::from_static("x-tc-token");
    pub(crate) static X_TC_ACTION: HeaderName = HeaderName::from_static("x-tc-action");
    pub(crate) static X_TC_VERSION: HeaderName = HeaderName::from_static("x-tc-version");
    pub(crate) static X_TC_REGION: HeaderName = HeaderName::from_static("x-tc-region");
    pub(crate) static X_TC_LANGUAGE: HeaderName = HeaderName::from_static("x-tc-language");
    pub(crate) static X_TC_TRACEID: HeaderName = HeaderName::from_static("x-tc-traceid");
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
            user_id: None,
            session_name: None,
            session_policy: None,
            role_id: None,
        }
    }

    fn code<T: std::fmt::Debug>(r: ApiResult<T>) -> &'static str {
        r.expect_err("an error").code.as_str()
    }

    #[test]
    fn cached_signing_keys_are_each_their_own_derivation() {
        let cache = SigningKeys::default();
        let asks = [
            ("secret", "2026-12-07", "live"),
            ("secret", "2026-12-08", "live"),
            ("secret", "2026-12-07", "cam"),
            ("other", "2026-12-07", "live"),
        ];
        use hmac::Mac as _;
        let tag = |mac: tc3::HmacSha256| mac.chain_update(b"message").finalize().into_bytes();
        for _ in 0..2 {
            for (key, date, service) in asks {
                assert_eq!(
                    tag(cache.get(key, date, service)),
                    tag(tc3::keyed(&tc3::signing_key(key, date, service)))
                );
            }
        }
        assert_eq!(cache.keys.lock().expect("lock").len(), asks.len());
        for day in 0..SigningKeys::MAX + 10 {
            cache.get("secret", &format!("d{day}"), "live");
        }
        assert!(cache.keys.lock().expect("lock").len() <= SigningKeys::MAX);
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
