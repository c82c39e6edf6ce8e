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
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Limited};
use livestack_model::schema::{self, Service};
use livestack_store::Store;
use serde_json::Value;
use tracing::Instrument as _;

use crate::auth::{self, Authenticated, Authenticator, Params, RawRequest};
use crate::dispatch::{self, Cx};
use crate::error::{ApiError, ApiResult, ErrorCode, Lang};
use crate::params;
use crate::policy::PolicyPublisher;
use crate::ratelimit::RateLimiter;
use crate::settings::TaskLimits;
use livestack_core::limits::ConnLimiter;
use livestack_core::media::MediaControl;
use livestack_core::Clock;

/// The Live API version.
pub const VERSION: &str = "2018-08-01";
/// Largest GET query (32 KB).
pub const MAX_QUERY: usize = 32 * 1024;
/// Largest legacy-signed (form) POST body (1 MB).
pub const MAX_FORM_BODY: usize = 1024 * 1024;
/// Largest TC3 POST body (10 MB).
pub const MAX_JSON_BODY: usize = 10 * 1024 * 1024;
/// How long a request head may take to arrive whole.
pub const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a request body may take to arrive whole.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Regions the Tencent SDKs know
/// (<https://www.tencentcloud.com/document/product/267/30762>).
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
    /// What server-side fetches (watermark pictures) may reach.
    pub fetch: livestack_net::FetchPolicy,
    /// This node's name among nodes sharing one database.
    pub node: String,
    /// How domain ownership is checked, and when it is required.
    pub owner: crate::settings::OwnerVerification,
    /// `[cam] enforce`: whether CAM denials are answered, logged or skipped.
    pub cam: crate::access::Enforce,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            rate_limit: None,
            regions: DEFAULT_REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            task_limits: TaskLimits::default(),
            fetch: livestack_net::FetchPolicy::default(),
            node: String::new(),
            owner: crate::settings::OwnerVerification::default(),
            cam: crate::access::Enforce::default(),
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
    auth: Authenticator,
    access: crate::access::Access,
    task_limits: TaskLimits,
    fetch: livestack_net::Fetcher,
    owner: Arc<crate::settings::OwnerVerification>,
    node: Arc<str>,
    clock: Clock,
    metrics: crate::metrics::ApiMetrics,
    /// Everything `GET /metrics` shows; set by [`Gateway::with_registry`].
    registry: Option<Arc<prometheus_client::registry::Registry>>,
    /// The HTTP playback port the console's preview plays from; set by
    /// [`Gateway::with_console`].
    play_port: Option<u16>,
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
    ) -> Result<Gateway, reqwest::Error> {
        let fetch = livestack_net::Fetcher::new(
            settings.fetch.clone(),
            Some(crate::settings::FETCH_TIMEOUT),
            livestack_net::Redirects::Follow(5),
        )?;
        Ok(Gateway {
            store: store.clone(),
            media,
            policy,
            limiter: RateLimiter::new(settings.rate_limit),
            regions: settings.regions.iter().cloned().collect(),
            auth: Authenticator::new(store.clone()),
            access: crate::access::Access::new(store.clone(), settings.cam),
            task_limits: settings.task_limits,
            fetch,
            owner: Arc::new(settings.owner.clone()),
            node: Arc::from(settings.node.as_str()),
            clock,
            metrics: crate::metrics::ApiMetrics::default(),
            registry: None,
            play_port: None,
        })
    }

    /// Tells the web console at `/console/` where this server plays HLS.
    pub fn with_console(mut self, play_port: u16) -> Gateway {
        self.play_port = Some(play_port);
        self
    }

    /// The API's metrics, to register with the rest before
    /// [`Gateway::with_registry`].
    pub fn metrics(&self) -> &crate::metrics::ApiMetrics {
        &self.metrics
    }

    /// Serves `registry` at `GET /metrics`.
    pub fn with_registry(
        mut self,
        registry: Arc<prometheus_client::registry::Registry>,
    ) -> Gateway {
        self.registry = Some(registry);
        self
    }

    /// The axum router of the pages beside the API: `GET /healthz` for
    /// readiness, `GET /metrics` for Prometheus, the web console under
    /// `GET /console/`; any other path is the API (the fallback), which
    /// [`Gateway::serve`] calls without the router (see [`is_page`]).
    fn pages(self: Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .route(
                "/console",
                get(|| async { axum::response::Redirect::permanent("/console/") }),
            )
            .route("/console/", get(console))
            .route("/console/{*path}", get(console))
            .fallback(api_fallback)
            .with_state(self)
    }

    /// Serves the API on `listener` until `shutdown` completes, then lets
    /// requests in flight finish. Each connection takes a permit of
    /// `connections` (closed at once when none is left), and a request
    /// head must arrive whole within [`HEAD_TIMEOUT`].
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        connections: Arc<ConnLimiter>,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioIo, TokioTimer};

        let pages = hyper_util::service::TowerToHyperService::new(Arc::clone(&self).pages());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT);
        let mut warnings = livestack_core::limits::AcceptWarnings::default();
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        if let Some(more) = warnings.failed() {
                            tracing::warn!(listener = "API", more, "accept failed: {e}");
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Some(permit) = connections.try_acquire(peer.ip()) else {
                if let Some(more) = warnings.refused() {
                    tracing::warn!(listener = "API", %peer, more, "connection refused: the connection limits are reached");
                }
                continue;
            };
            // API requests go straight to the pipeline: the router's
            // matching, its futures and an extensions map per request
            // were a tenth of the API's own CPU (docs/benchmarks.md). The
            // caller's address goes with each request, for CAM's `qcs:ip`
            // conditions.
            let pages = pages.clone();
            let gw = Arc::clone(&self);
            let per_request =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    let ip = peer.ip();
                    if is_page(req.uri().path()) {
                        req.extensions_mut().insert(Peer(ip));
                        futures_util::future::Either::Left(hyper::service::Service::call(
                            &pages, req,
                        ))
                    } else {
                        let gw = Arc::clone(&gw);
                        futures_util::future::Either::Right(async move {
                            Ok::<_, std::convert::Infallible>(
                                api(gw, req.map(Body::new), Some(ip)).await,
                            )
                        })
                    }
                });
            let conn = http.serve_connection(TokioIo::new(socket), per_request);
            let conn = graceful.watch(conn);
            // Owned by `graceful`: shutdown below waits for it.
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "API connection ended: {e}");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// The address a request came from, for requests that go through
/// [`Gateway::pages`].
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::IpAddr);

/// Whether `path` is one of [`Gateway::pages`]' routes rather than the
/// API. The router keeps the API as its fallback, so a path this misses
/// would still be answered the same way, only slower.
fn is_page(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/console") || path.starts_with("/console/")
}

/// What the pipeline learned about a request, for the response and the log.
struct Outcome {
    lang: Lang,
    action: Option<&'static str>,
    /// The response as a serialized JSON object, or the error.
    result: ApiResult<Vec<u8>>,
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response<Body> {
    let body = crate::metrics::expose(gw.registry.as_ref());
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn console(
    State(gw): State<Arc<Gateway>>,
    path: Option<axum::extract::Path<String>>,
) -> Response<Body> {
    let path = path.map(|p| p.0).unwrap_or_default();
    crate::console::serve(&path, gw.play_port)
}

async fn api_fallback(State(gw): State<Arc<Gateway>>, req: Request<Body>) -> Response<Body> {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    api(gw, req, peer).await
}

async fn api(
    gw: Arc<Gateway>,
    req: Request<Body>,
    peer: Option<std::net::IpAddr>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let mut id = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    let request_id: &str = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id);
    let trace_id = req
        .headers()
        .get(&crate::auth::names::X_TC_TRACEID)
        .cloned();
    let lang = auth::header_str(req.headers(), &crate::auth::names::X_TC_LANGUAGE)
        .map_or(Lang::Zh, Lang::parse);
    // One span per request: every line a handler, the store or the policy
    // logs carries the RequestId, the action and the account.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        action = tracing::field::Empty,
        account = tracing::field::Empty,
    );
    let outcome = AssertUnwindSafe(process(&gw, req, peer, request_id, lang))
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
    span.in_scope(|| log(request_id, &outcome));
    let code = match &outcome.result {
        Ok(_) => "Ok",
        Err(e) => e.code.as_str(),
    };
    gw.metrics
        .observe(outcome.action, code, started.elapsed().as_secs_f64());
    envelope(request_id, trace_id, outcome)
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
    // `{"Response":{<the response's fields, or "Error">,"RequestId":…}}`,
    // written around the handler's serialized response rather than
    // through a `Value` (the response is already a JSON object).
    // Room for the fields, the error or the RequestId and the braces.
    let fields_len = outcome.result.as_ref().map_or(0, Vec::len);
    let mut body = Vec::with_capacity(fields_len + 128);
    body.extend_from_slice(b"{\"Response\":{");
    match outcome.result {
        Ok(object) => {
            let fields = object
                .strip_prefix(b"{")
                .and_then(|o| o.strip_suffix(b"}"))
                .unwrap_or_default();
            if !fields.is_empty() {
                body.extend_from_slice(fields);
                body.push(b',');
            }
        }
        Err(e) => {
            let error = serde_json::json!({
                "Code": e.code.as_str(),
                "Message": e.message(outcome.lang),
            });
            body.extend_from_slice(b"\"Error\":");
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, &error);
            body.push(b',');
        }
    }
    body.extend_from_slice(b"\"RequestId\":");
    let _ = serde_json::to_writer(&mut body, request_id);
    body.extend_from_slice(b"}}");
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

async fn process(
    gw: &Gateway,
    req: Request<Body>,
    peer: Option<std::net::IpAddr>,
    request_id: &str,
    header_lang: Lang,
) -> Outcome {
    let (parts, body) = req.into_parts();
    let fail = |lang, e| Outcome {
        lang,
        action: None,
        result: Err(e),
    };
    let method = match parts.method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => return fail(header_lang, ApiError::bare(ErrorCode::UnsupportedProtocol)),
    };
    let query = parts.uri.query().unwrap_or("");
    let content_type =
        auth::header_str(&parts.headers, axum::http::header::CONTENT_TYPE).unwrap_or("");
    let is_form = content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded");
    let body = if method == "GET" {
        if query.len() > MAX_QUERY {
            return fail(header_lang, too_large("GET query", MAX_QUERY));
        }
        Bytes::new()
    } else {
        let limit = if is_form {
            MAX_FORM_BODY
        } else {
            MAX_JSON_BODY
        };
        // A declared length over the limit is refused before a byte of
        // the body is waited for.
        let declared = auth::header_str(&parts.headers, axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return fail(header_lang, too_large("request body", limit));
        }
        match read_body(body, limit).await {
            Ok(body) => body,
            Err(e) => return fail(header_lang, e),
        }
    };
    let now = gw.clock.unix();
    let raw = RawRequest::new(method, &parts.headers, query, &body, is_form, now);
    let lang = raw.language().unwrap_or(header_lang);
    let authenticated = match gw.auth.authenticate(raw).await {
        Ok(a) => a,
        Err(e) => return fail(lang, e),
    };
    let (service, index) = match resolve(gw, &authenticated, now) {
        Ok(resolved) => resolved,
        Err(e) => return fail(lang, e),
    };
    Outcome {
        lang,
        action: Some(service.actions[index].name),
        result: execute(gw, service, index, authenticated, request_id, now, peer).await,
    }
}

/// What is being asked: the service and version, the action in its
/// model, the region, and whether the caller still has budget for it this
/// second. The version names the service (Live 2018-08-01, CAM 2019-01-16,
/// STS 2018-08-13); a TC3 credential scope that names one of them must
/// agree. Any other scope service is accepted (the Node SDK signs with the
/// first label of its endpoint, `127` for `127.0.0.1`).
fn resolve(gw: &Gateway, a: &Authenticated, now: i64) -> ApiResult<(&'static Service, usize)> {
    let service = match a.version.as_deref() {
        None | Some("") => return Err(auth::missing("Version")),
        Some(version) => schema::service_of_version(version).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoSuchVersion,
                format!("The API version `{version}` does not exist; this endpoint serves Live {VERSION}, CAM {} and STS {}.", schema::CAM.version, schema::STS.version),
                format!("接口版本 `{version}` 不存在。本服务提供直播 {VERSION}、访问管理 {} 与安全凭证服务 {} 版本。", schema::CAM.version, schema::STS.version),
            )
        })?,
    };
    if let Some(scoped) = schema::service_named(&a.service) {
        if scoped.name != service.name {
            return Err(ApiError::new(
                ErrorCode::NoSuchVersion,
                format!(
                    "The API version `{}` is {}'s, but the request was signed for the service `{}` (version {}).",
                    service.version, service.name, scoped.name, scoped.version
                ),
                format!(
                    "接口版本 `{}` 属于 {}，但请求签名的服务为 `{}`（版本 {}）。",
                    service.version, service.name, scoped.name, scoped.version
                ),
            ));
        }
    }
    let index = service.action_index(&a.action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAction,
            format!(
                "The action `{}` does not exist in the {} API {}.",
                a.action, service.name, service.version
            ),
            format!("接口 `{}` 不存在。", a.action),
        )
    })?;
    let schema = &service.actions[index];
    let span = tracing::Span::current();
    span.record("action", schema.name);
    span.record("account", a.principal.account.0);
    if let Some(region) = a.region.as_deref().filter(|r| !r.is_empty()) {
        if !gw.regions.contains(region) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedRegion,
                format!("The region `{region}` is not supported by this server."),
                format!("接口不支持所传地域 `{region}`。"),
            ));
        }
    }
    if let Err(e) = gw.limiter.check(a.principal.account, schema.name, now) {
        return Err(ApiError::new(
            ErrorCode::RequestLimitExceeded,
            format!(
                "Your current request times equals to `{}` in a second, which exceeds the frequency limit `{}` for a second. Please reduce the frequency of calls.",
                e.count, e.limit
            ),
            format!("您当前每秒请求 `{}` 次，超过了每秒频率上限 `{}`，请稍后重试。", e.count, e.limit),
        ));
    }
    Ok((service, index))
}

/// Checks the parameters against the action's input structure, strips
/// `DryRun`, asks CAM and runs the handler.
async fn execute(
    gw: &Gateway,
    service: &'static Service,
    index: usize,
    a: Authenticated,
    request_id: &str,
    now: i64,
    peer: Option<std::net::IpAddr>,
) -> ApiResult<Vec<u8>> {
    let schema = &service.actions[index];
    let input = service.input_of(index).ok_or_else(|| {
        ApiError::internal(
            ErrorCode::InternalError,
            anyhow::anyhow!("model has no struct {}", schema.input),
        )
    })?;
    let (dry_run, value) = match a.params {
        Params::Json(mut value) => {
            let dry_run = match value.as_object_mut().and_then(|m| m.remove("DryRun")) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(Value::String(s)) => parse_bool("DryRun", &s)?,
                Some(_) => return Err(not_bool("DryRun")),
            };
            (dry_run, params::from_json(value, input, service)?)
        }
        Params::Flat(mut pairs) => {
            let mut dry_run = false;
            if let Some(i) = pairs.iter().position(|(k, _)| k == "DryRun") {
                dry_run = parse_bool("DryRun", &pairs.remove(i).1)?;
            }
            (dry_run, params::from_flat(&pairs, input, service)?)
        }
    };
    let call = crate::access::Call {
        service,
        action: schema.name,
        params: &value,
        region: a.region.as_deref().filter(|r| !r.is_empty()),
        ip: peer,
        now,
        request_id,
    };
    let caller = gw.access.authorize(&a.principal, &call).await?;
    let cx = Cx {
        store: gw.store.clone(),
        media: Arc::clone(&gw.media),
        policy: Arc::clone(&gw.policy),
        account: a.principal.account,
        request_id: Arc::from(request_id),
        dry_run,
        now,
        task_limits: gw.task_limits,
        owner: Arc::clone(&gw.owner),
        fetch: gw.fetch.clone(),
        node: Arc::clone(&gw.node),
        caller: Arc::new(caller),
        region: a.region.filter(|r| !r.is_empty()).map(Arc::from),
    };
    let result = dispatch::dispatch(cx, service, index, value).await;
    let read_only = ["Get", "List", "Describe"]
        .iter()
        .any(|p| schema.name.starts_with(p));
    if service.name == "cam" && result.is_ok() && !read_only {
        // A user, key or policy changed: this node's next call sees it.
        gw.access.forget();
        gw.auth.forget_keys();
    }
    result
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
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    // A small body usually arrived with the head: it is taken at once,
    // and only a body still on its way gets a timer (setting one and
    // dropping it again cost about 2 % of a signed request's CPU).
    let read = match futures_util::poll!(collect.as_mut()) {
        std::task::Poll::Ready(read) => Ok(read),
        std::task::Poll::Pending => tokio::time::timeout(BODY_TIMEOUT, collect).await,
    };
    let Ok(read) = read else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "The request body did not arrive within {} s.",
                BODY_TIMEOUT.as_secs()
            ),
            format!("请求包体未在 {} 秒内送达。", BODY_TIMEOUT.as_secs()),
        ));
    };
    match read {
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
