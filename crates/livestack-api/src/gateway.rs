//! The request pipeline: one HTTP request in, one envelope out.
//!
//! Owns: the order of the checks (method, size, signature, version, action,
//! region, rate, parameters, dry run), the `{"Response": …}` envelope, the
//! RequestId and the log line of every request. Must not: contain business
//! logic (handlers do) or let anything but HTTP 200 with
//! `Content-Type: application/json` reach an API client: the Python SDK and
//! tccli only parse errors under exactly that content type.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Limited};
use livestack_model::schema::{find_action, find_struct, ActionSchema};
use livestack_store::Store;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::auth::{self, tc3, v1, KeyCache, NonceCache, Principal};
use crate::dispatch::{self, Cx};
use crate::error::{ApiError, ApiResult, ErrorCode, Lang};
use crate::params;
use crate::policy::PolicyPublisher;
use crate::ratelimit::RateLimiter;
use crate::settings::TaskLimits;
use livestack_core::media::MediaControl;
use livestack_core::Clock;

/// The only API version there is.
pub const VERSION: &str = "2018-08-01";
/// Largest GET query (32 KB).
pub const MAX_QUERY: usize = 32 * 1024;
/// Largest legacy-signed (form) POST body (1 MB).
pub const MAX_FORM_BODY: usize = 1024 * 1024;
/// Largest TC3 POST body (10 MB).
pub const MAX_JSON_BODY: usize = 10 * 1024 * 1024;

/// Regions the Tencent SDKs know (`live-semantics.md` §3.10).
pub const DEFAULT_REGIONS: &[&str] = &[
    "ap-bangkok",
    "ap-beijing",
    "ap-chengdu",
    "ap-chongqing",
    "ap-guangzhou",
    "ap-guangzhou-open",
    "ap-hongkong",
    "ap-jakarta",
    "ap-mumbai",
    "ap-nanjing",
    "ap-seoul",
    "ap-shanghai",
    "ap-shanghai-fsi",
    "ap-shenzhen-fsi",
    "ap-singapore",
    "ap-tokyo",
    "eu-frankfurt",
    "eu-moscow",
    "na-ashburn",
    "na-siliconvalley",
    "na-toronto",
    "sa-saopaulo",
];

/// Settings of the API gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// One limit (requests per second per account per action) for every
    /// action; `None` applies each action's documented default.
    pub rate_limit: Option<u32>,
    /// Regions a request may name; an absent or empty region is always fine.
    pub regions: Vec<String>,
    /// The limits of legacy recording tasks (`CreateLiveRecord`).
    pub task_limits: TaskLimits,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            rate_limit: None,
            regions: DEFAULT_REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            task_limits: TaskLimits::default(),
        }
    }
}

/// Shared state of the gateway.
pub struct Gateway {
    store: Store,
    media: Arc<dyn MediaControl>,
    policy: Arc<PolicyPublisher>,
    limiter: RateLimiter,
    regions: HashSet<String>,
    nonces: NonceCache,
    keys: KeyCache,
    task_limits: TaskLimits,
    clock: Clock,
}

impl Gateway {
    /// A gateway over `store` that asks `media` about live streams and
    /// keeps `policy` up to date, reading time from `clock`.
    pub fn new(
        store: Store,
        settings: &ApiSettings,
        media: Arc<dyn MediaControl>,
        policy: Arc<PolicyPublisher>,
        clock: Clock,
    ) -> Gateway {
        Gateway {
            store,
            media,
            policy,
            limiter: RateLimiter::new(settings.rate_limit),
            regions: settings.regions.iter().cloned().collect(),
            nonces: NonceCache::default(),
            keys: KeyCache::default(),
            task_limits: settings.task_limits,
            clock,
        }
    }

    /// The axum router: the API on every path, `GET /healthz` for readiness.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .fallback(api)
            .with_state(self)
    }

    /// Serves the API on `listener` until `shutdown` completes, then lets
    /// requests in flight finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// What the pipeline learned about a request, for the response and the log.
struct Outcome {
    lang: Lang,
    action: Option<&'static str>,
    result: ApiResult<Value>,
}

async fn api(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let trace_id = req.headers().get("x-tc-traceid").cloned();
    let mut lang = header_str(req.headers(), "x-tc-language").map_or(Lang::Zh, Lang::parse);
    // One span per request: every line a handler, the store or the policy
    // logs carries the RequestId, the action and the account.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        action = tracing::field::Empty,
        account = tracing::field::Empty,
    );
    let outcome = AssertUnwindSafe(process(&gw, req, &request_id, &mut lang))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let outcome = outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Outcome {
            lang,
            action: None,
            result: Err(ApiError::internal(
                ErrorCode::InternalError,
                anyhow::anyhow!("handler panicked: {what}"),
            )),
        }
    });
    span.in_scope(|| log(&request_id, &outcome));
    envelope(&request_id, trace_id, outcome)
}

fn log(request_id: &str, outcome: &Outcome) {
    let action = outcome.action.unwrap_or("-");
    match &outcome.result {
        Ok(_) => tracing::debug!(request_id, action, "ok"),
        Err(e) => match &e.cause {
            Some(cause) => tracing::error!(
                request_id,
                action,
                code = e.code.as_str(),
                "request failed: {cause:#}"
            ),
            None => tracing::info!(
                request_id,
                action,
                code = e.code.as_str(),
                "{}",
                e.message(Lang::En)
            ),
        },
    }
}

fn envelope(request_id: &str, trace_id: Option<HeaderValue>, outcome: Outcome) -> Response<Body> {
    let mut inner = match outcome.result {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(e) => {
            let mut map = Map::new();
            let mut error = Map::new();
            error.insert("Code".into(), Value::from(e.code.as_str()));
            error.insert("Message".into(), Value::from(e.message(outcome.lang)));
            map.insert("Error".into(), Value::Object(error));
            map
        }
    };
    inner.insert("RequestId".into(), Value::from(request_id));
    let mut root = Map::new();
    root.insert("Response".into(), Value::Object(inner));
    let body = serde_json::to_vec(&Value::Object(root)).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(trace_id) = trace_id {
        resp.headers_mut().insert("x-tc-traceid", trace_id);
    }
    resp
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parameters as they arrived: a JSON body or flattened pairs.
enum Params {
    Json(Value),
    Flat(Vec<(String, String)>),
}

/// The common parameters of either signature version.
struct Common {
    action: String,
    version: Option<String>,
    region: Option<String>,
}

fn missing(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        format!("The required parameter `{name}` is missing."),
        format!("缺少必填参数 `{name}`。"),
    )
}

async fn process(gw: &Gateway, req: Request<Body>, request_id: &str, lang: &mut Lang) -> Outcome {
    let mut action = None;
    let result = pipeline(gw, req, request_id, lang, &mut action).await;
    Outcome {
        lang: *lang,
        action,
        result,
    }
}

async fn pipeline(
    gw: &Gateway,
    req: Request<Body>,
    request_id: &str,
    lang: &mut Lang,
    action_out: &mut Option<&'static str>,
) -> ApiResult<Value> {
    let (parts, body) = req.into_parts();
    let method = match parts.method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => return Err(ApiError::bare(ErrorCode::UnsupportedProtocol)),
    };
    let headers = &parts.headers;
    let query = parts.uri.query().unwrap_or("");
    let content_type = header_str(headers, "content-type").unwrap_or("");
    let is_form = content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded");
    let body = if method == "GET" {
        if query.len() > MAX_QUERY {
            return Err(too_large("GET query", MAX_QUERY));
        }
        Bytes::new()
    } else {
        let limit = if is_form {
            MAX_FORM_BODY
        } else {
            MAX_JSON_BODY
        };
        read_body(body, limit).await?
    };
    let now = gw.clock.unix();

    // Who is calling, by either signature version.
    let (principal, common, params) = match header_str(headers, "authorization") {
        Some(authorization) => {
            let authorization = authorization.to_owned();
            authenticate_tc3(
                gw,
                headers,
                method,
                query,
                &body,
                is_form,
                &authorization,
                now,
            )
            .await?
        }
        None => {
            let pairs: Vec<(String, String)> = if method == "GET" {
                decode_pairs(query.as_bytes())
            } else if is_form {
                decode_pairs(&body)
            } else {
                Vec::new()
            };
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
            if let Some((_, l)) = pairs.iter().find(|(k, _)| k == "Language") {
                *lang = Lang::parse(l);
            }
            authenticate_v1(gw, headers, method, pairs, now).await?
        }
    };

    // What is being asked.
    match common.version.as_deref() {
        None | Some("") => return Err(missing("Version")),
        Some(VERSION) => {}
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::NoSuchVersion,
                format!("The API version `{other}` does not exist; Live is at version {VERSION}."),
                format!("接口版本 `{other}` 不存在，直播接口版本为 {VERSION}。"),
            ))
        }
    }
    let schema: &'static ActionSchema = find_action(&common.action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAction,
            format!(
                "The action `{}` does not exist in the Live API.",
                common.action
            ),
            format!("接口 `{}` 不存在。", common.action),
        )
    })?;
    *action_out = Some(schema.name);
    let span = tracing::Span::current();
    span.record("action", schema.name);
    span.record("account", principal.account.0);
    if let Some(region) = common.region.as_deref().filter(|r| !r.is_empty()) {
        if !gw.regions.contains(region) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedRegion,
                format!("The region `{region}` is not supported by this server."),
                format!("接口不支持所传地域 `{region}`。"),
            ));
        }
    }
    if let Err(e) = gw.limiter.check(principal.account, schema.name, now) {
        return Err(ApiError::new(
            ErrorCode::RequestLimitExceeded,
            format!(
                "Your current request times equals to `{}` in a second, which exceeds the frequency limit `{}` for a second. Please reduce the frequency of calls.",
                e.count, e.limit
            ),
            format!("您当前每秒请求 `{}` 次，超过了每秒频率上限 `{}`，请稍后重试。", e.count, e.limit),
        ));
    }

    // With what parameters.
    let input = find_struct(schema.input).ok_or_else(|| {
        ApiError::internal(
            ErrorCode::InternalError,
            anyhow::anyhow!("model has no struct {}", schema.input),
        )
    })?;
    let (dry_run, value) = match params {
        Params::Json(mut value) => {
            let dry_run = match value.as_object_mut().and_then(|m| m.remove("DryRun")) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(Value::String(s)) => parse_bool("DryRun", &s)?,
                Some(_) => return Err(not_bool("DryRun")),
            };
            (dry_run, params::from_json(value, input)?)
        }
        Params::Flat(mut pairs) => {
            let mut dry_run = false;
            if let Some(i) = pairs.iter().position(|(k, _)| k == "DryRun") {
                dry_run = parse_bool("DryRun", &pairs.remove(i).1)?;
            }
            (dry_run, params::from_flat(&pairs, input)?)
        }
    };
    let cx = Cx {
        store: gw.store.clone(),
        media: Arc::clone(&gw.media),
        policy: Arc::clone(&gw.policy),
        account: principal.account,
        request_id: Arc::from(request_id),
        dry_run,
        now,
        task_limits: gw.task_limits,
    };
    dispatch::dispatch(cx, schema.name, value).await
}

fn parse_bool(name: &str, s: &str) -> ApiResult<bool> {
    match s {
        t if t.eq_ignore_ascii_case("true") || t == "1" => Ok(true),
        f if f.eq_ignore_ascii_case("false") || f == "0" || f.is_empty() => Ok(false),
        _ => Err(not_bool(name)),
    }
}

fn not_bool(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("The parameter `{name}` must be a boolean."),
        format!("参数 `{name}` 的类型应为布尔值。"),
    )
}

fn too_large(what: &str, limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RequestSizeLimitExceeded,
        format!("The {what} exceeds the limit of {limit} bytes."),
        format!("请求包超过限制大小（{limit} 字节）。"),
    )
}

async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large("request body", limit))
        }
        Err(e) => Err(ApiError::internal(
            ErrorCode::InternalError,
            anyhow::anyhow!("reading the request body failed: {e}"),
        )),
    }
}

fn decode_pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

#[allow(clippy::too_many_arguments)]
async fn authenticate_tc3(
    gw: &Gateway,
    headers: &HeaderMap,
    method: &str,
    query: &str,
    body: &Bytes,
    is_form: bool,
    authorization: &str,
    now: i64,
) -> ApiResult<(Principal, Common, Params)> {
    let auth = tc3::parse_authorization(authorization).map_err(|why| {
        ApiError::new(
            ErrorCode::AuthFailureInvalidAuthorization,
            format!("The Authorization header does not follow the Tencent Cloud standard: {why}."),
            format!("请求头部的 Authorization 不符合腾讯云标准：{why}。"),
        )
    })?;
    let key = auth::lookup_key(&gw.store, &gw.keys, auth.secret_id).await?;
    let timestamp =
        header_str(headers, "x-tc-timestamp").ok_or_else(|| missing("X-TC-Timestamp"))?;
    auth::check_timestamp(timestamp, now)?;
    let unsigned = header_str(headers, "x-tc-content-sha256")
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
        .is_ok_and(|ts| crate::time::utc_date(ts) == auth.date);
    auth::check_signature(date_ok && tc3::verify(&signed, &auth, &key.secret_key))?;
    auth::check_token(&key, header_str(headers, "x-tc-token"), now)?;

    let common = Common {
        action: header_str(headers, "x-tc-action")
            .ok_or_else(|| missing("X-TC-Action"))?
            .to_owned(),
        version: header_str(headers, "x-tc-version").map(str::to_owned),
        region: header_str(headers, "x-tc-region").map(str::to_owned),
    };
    let params = if method == "GET" {
        Params::Flat(decode_pairs(query.as_bytes()))
    } else if is_form {
        Params::Flat(decode_pairs(body))
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Params::Json(Value::Object(Map::new()))
    } else {
        // The signature covered these bytes, so they are what the client
        // meant to send; still, they may not be JSON.
        let value: Value = serde_json::from_slice(body).map_err(|e| ApiError {
            code: ErrorCode::InternalError,
            message: Some(crate::error::Text::new(
                "The request body is not valid JSON.",
                "请求包体不是合法的 JSON。",
            )),
            cause: Some(anyhow::anyhow!("malformed JSON body: {e}")),
        })?;
        Params::Json(value)
    };
    Ok((
        Principal {
            account: key.account_id,
            secret_id: key.secret_id,
        },
        common,
        params,
    ))
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

async fn authenticate_v1(
    gw: &Gateway,
    headers: &HeaderMap,
    method: &str,
    pairs: Vec<(String, String)>,
    now: i64,
) -> ApiResult<(Principal, Common, Params)> {
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
    let key = auth::lookup_key(&gw.store, &gw.keys, secret_id).await?;
    auth::check_timestamp(timestamp, now)?;
    let signed: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let host = header_str(headers, "host").unwrap_or("");
    auth::check_signature(v1::verify(
        method,
        host,
        &signed,
        sign_method,
        &key.secret_key,
        signature,
    ))?;
    gw.nonces.check(secret_id, nonce, now)?;
    auth::check_token(&key, get("Token"), now)?;

    let common = Common {
        action: get("Action").ok_or_else(|| missing("Action"))?.to_owned(),
        version: get("Version").map(str::to_owned),
        region: get("Region").map(str::to_owned),
    };
    let principal = Principal {
        account: key.account_id,
        secret_id: key.secret_id,
    };
    let params = pairs
        .into_iter()
        .filter(|(k, _)| !V1_COMMON.contains(&k.as_str()))
        .collect();
    Ok((principal, common, Params::Flat(params)))
}
