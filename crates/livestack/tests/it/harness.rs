//! The test harness: a real `livestack serve` on 127.0.0.1 port 0, and the
//! official clients (Python SDK, tccli, Node SDK) driven through the small
//! translators in `tests/clients/`.
//!
//! Nothing here fakes the server or the clients: each test starts the
//! binary cargo built, in a fresh data directory, and talks to it over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use livestack_core::Clock;
use serde_json::{json, Value};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh random key id and secret in Tencent's shapes.
pub fn random_key() -> (String, String) {
    let id = format!("AKID{}", uuid::Uuid::new_v4().simple());
    let key = uuid::Uuid::new_v4().simple().to_string();
    (id, key)
}

/// How to start a server.
#[derive(Default)]
pub struct ServerOptions {
    /// Extra arguments after `serve` (in process: `--config FILE` and
    /// `--api-rate-limit N`, the two the tests use).
    pub args: Vec<String>,
    /// Extra environment variables (these need the binary).
    pub env: Vec<(String, String)>,
    /// Set LIVESTACK_SECRET_ID/KEY (the default) or let the server generate
    /// a key (the binary: it prints the key on stdout).
    pub generate_key: bool,
    /// Run the real binary in its own process rather than the app in this
    /// one: for kill -9, signals, stdout and the environment.
    pub binary: bool,
    /// Share this PostgreSQL database (another node's) instead of a fresh
    /// database of its own.
    pub database_url: Option<String>,
}

/// The app running inside the test process: its own runtime on its own
/// thread, its log in the same file the binary's stderr would go to.
struct InProcess {
    shutdown: tokio_util::sync::CancellationToken,
    policy: std::sync::Arc<livestack_api::PolicyPublisher>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Cancels the app and waits for its graceful shutdown.
    fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("livestack stopped with an error: {e:#}"),
                Err(_) => panic!("livestack's thread panicked"),
            }
        }
    }
}

/// A running livestack (in this process, or the binary), stopped on drop.
pub struct Server {
    child: Option<Child>,
    inproc: Option<InProcess>,
    /// The API address.
    pub addr: SocketAddr,
    /// The RTMP address.
    pub rtmp: SocketAddr,
    /// The HTTP playback address.
    pub http: SocketAddr,
    /// The HTTPS playback address.
    pub https: SocketAddr,
    /// The RTMPS address.
    pub rtmps: SocketAddr,
    /// The SRT address (UDP).
    pub srt: SocketAddr,
    /// The data directory (kept for restarts and inspection).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The root key.
    pub secret_id: String,
    /// The root key's secret.
    pub secret_key: String,
    /// Everything the binary printed on stdout before it was ready (empty
    /// in process).
    pub banner: Vec<String>,
    /// The server's clock: manual in process (a test may jump it
    /// forward), the system clock for the binary.
    pub clock: Clock,
    options_env: Vec<(String, String)>,
    options_args: Vec<String>,
    /// The PostgreSQL database this server uses (`None`: SQLite in the
    /// data directory); see [`test_database`].
    pub database_url: Option<String>,
}

/// A fresh PostgreSQL database when the suite runs on PostgreSQL
/// (`LIVESTACK_TEST_POSTGRES` names a server: `scripts/test` starts one for
/// its second leg), else `None` for SQLite. One per server, so tests never
/// see each other's rows.
pub fn test_database() -> Option<String> {
    let server = std::env::var(livestack_store::pg::TEST_SERVER_ENV).ok()?;
    if server.is_empty() {
        return None;
    }
    Some(livestack_store::pg::create_scratch_database(&server).expect("a scratch database"))
}

impl Server {
    /// A server in this process with a known root key and default settings.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    /// The real binary, for tests of what only a process has (kill -9).
    pub fn start_binary() -> Server {
        Server::start_with(ServerOptions {
            binary: true,
            ..ServerOptions::default()
        })
    }

    /// A server with extra arguments.
    pub fn start_with_args(args: &[&str]) -> Server {
        Server::start_with(ServerOptions {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..ServerOptions::default()
        })
    }

    /// A server started from `options` in a new temporary data directory.
    pub fn start_with(options: ServerOptions) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let binary = options.binary || options.generate_key || !options.env.is_empty();
        let (id, key) = if options.generate_key {
            (String::new(), String::new())
        } else {
            random_key()
        };
        let mut env = options.env;
        if !options.generate_key {
            env.push(("LIVESTACK_SECRET_ID".into(), id.clone()));
            env.push(("LIVESTACK_SECRET_KEY".into(), key.clone()));
        }
        let db = options.database_url.clone().or_else(test_database);
        let mut server = if binary {
            Server::spawn(&data_dir, &options.args, &env, db)
        } else {
            Server::in_process(&data_dir, &options.args, &id, &key, Clock::manual(), db)
        };
        server._tmp = Some(tmp);
        if !options.generate_key {
            server.secret_id = id;
            server.secret_key = key;
        }
        server
    }

    /// The configuration the binary would build from `args` (the flags the
    /// tests use), listening on port 0 everywhere.
    fn config(data_dir: &Path, args: &[String], db: Option<&str>) -> livestack::Config {
        let mut config = livestack::Config::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            match arg.as_str() {
                "--config" => {
                    config = livestack::Config::load(Some(Path::new(value))).expect("config")
                }
                "--api-rate-limit" => {
                    config.api.rate_limit = Some(value.parse().expect("a number"));
                }
                "--node-name" => config.cluster.node_name.clone_from(value),
                other => panic!("the in-process server does not take {other}; use the binary"),
            }
        }
        config.data_dir = data_dir.to_owned();
        if let Some(url) = db {
            config.store.database_url = Some(livestack::config::ConfigSecret(url.to_owned()));
        }
        // Picture servers and callback receivers of the tests listen on
        // loopback, which server-side fetches refuse unless allowed.
        if config.fetch.allow.is_empty() {
            config.fetch.allow = vec!["127.0.0.0/8".to_owned()];
        }
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        config.api.listen = any;
        config.rtmp.listen = any;
        config.http.listen = any;
        config.https.listen = any;
        config.rtmps.listen = any;
        config.srt.listen = any;
        config.webrtc.listen = any;
        config
    }

    fn in_process(
        data_dir: &Path,
        args: &[String],
        id: &str,
        key: &str,
        clock: Clock,
        database_url: Option<String>,
    ) -> Server {
        std::fs::create_dir_all(data_dir.parent().expect("parent")).expect("mkdir");
        let config = Server::config(data_dir, args, database_url.as_deref());
        let root_key = livestack::RootKey {
            secret_id: id.to_owned(),
            secret_key: key.to_owned(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("log file");
        // Every thread of this app's runtime logs to this app's file, so
        // tests running side by side keep their logs apart.
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .with_writer(std::sync::Mutex::new(log))
                .with_ansi(false)
                .finish(),
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let stop = shutdown.clone();
        let app_clock = clock.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let _log = tracing::dispatcher::set_default(&dispatch);
            let for_threads = dispatch.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    // The guard lives as long as the thread.
                    std::mem::forget(tracing::dispatcher::set_default(&for_threads));
                })
                .build()?;
            runtime.block_on(async move {
                let app = match livestack::App::build(config, Some(root_key), app_clock).await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = tx.send(Ok((app.addrs(), app.policy())));
                app.run(stop).await
            })
        });
        let (addrs, policy) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => panic!("livestack did not start: {e}"),
            Err(e) => panic!("livestack did not start: {e}"),
        };
        let server = Server {
            child: None,
            inproc: Some(InProcess {
                shutdown,
                thread: Some(thread),
                policy,
            }),
            addr: addrs.api,
            rtmp: addrs.rtmp,
            http: addrs.http,
            https: addrs.https,
            rtmps: addrs.rtmps,
            srt: addrs.srt,
            data_dir: data_dir.to_owned(),
            _tmp: None,
            secret_id: String::new(),
            secret_key: String::new(),
            banner: Vec::new(),
            clock,
            options_env: Vec::new(),
            options_args: args.to_vec(),
            database_url,
        };
        server.wait_healthy();
        server
    }

    fn spawn(
        data_dir: &Path,
        args: &[String],
        env: &[(String, String)],
        database_url: Option<String>,
    ) -> Server {
        std::fs::create_dir_all(data_dir.parent().expect("parent")).expect("mkdir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestack"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-listen", "127.0.0.1:0"])
            .args(["--rtmp-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--https-listen", "127.0.0.1:0"])
            .args(["--rtmps-listen", "127.0.0.1:0"])
            .args(["--srt-listen", "127.0.0.1:0"])
            .args(["--webrtc-listen", "127.0.0.1:0"])
            .args(["--fetch-allow", "127.0.0.0/8"])
            .args(args)
            .env_remove("LIVESTACK_SECRET_ID")
            .env_remove("LIVESTACK_SECRET_KEY")
            .env_remove("LIVESTACK_API_RATE_LIMIT")
            .env_remove("RUST_LOG")
            .env_remove("LIVESTACK_DATABASE_URL")
            .envs(database_url.iter().map(|u| ("LIVESTACK_DATABASE_URL", u)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("start livestack");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads stdout until the server says where it listens; the thread
        // ends with the server's stdout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut rtmp, mut http_addr, mut https_addr) = (None, None, None);
        let (mut rtmps, mut srt) = (None, None);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
                panic!("livestack did not report its API address; output so far: {banner:?}\nlog:\n{log}");
            };
            banner.push(line.clone());
            if let Some(a) = line.strip_prefix("rtmp listening on rtmp://") {
                rtmp = a.parse::<SocketAddr>().ok();
            }
            if let Some(a) = line.strip_prefix("http listening on http://") {
                http_addr = a.parse::<SocketAddr>().ok();
            }
            if let Some(a) = line.strip_prefix("https listening on https://") {
                https_addr = a.parse::<SocketAddr>().ok();
            }
            if let Some(a) = line.strip_prefix("rtmps listening on rtmps://") {
                rtmps = a.parse::<SocketAddr>().ok();
            }
            if let Some(a) = line.strip_prefix("srt listening on srt://") {
                srt = a.parse::<SocketAddr>().ok();
            }
            if let Some(addr) = line.strip_prefix("api listening on http://") {
                break addr.parse::<SocketAddr>().expect("address");
            }
        };
        let server = Server {
            child: Some(child),
            inproc: None,
            addr,
            rtmp: rtmp.expect("RTMP address printed before the API address"),
            http: http_addr.expect("HTTP address printed before the API address"),
            https: https_addr.expect("HTTPS address printed before the API address"),
            rtmps: rtmps.expect("RTMPS address printed before the API address"),
            srt: srt.expect("SRT address printed before the API address"),
            data_dir: data_dir.to_owned(),
            _tmp: None,
            secret_id: String::new(),
            secret_key: String::new(),
            banner,
            clock: Clock::system(),
            options_env: env.to_vec(),
            options_args: args.to_vec(),
            database_url,
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(resp) = http(
                self.addr,
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes(),
            ) {
                if resp.status == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "livestack never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as SDK endpoints are written.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server gracefully and starts it again on the same data
    /// directory, with the same options (and, in process, the same clock).
    pub fn restart(mut self) -> Server {
        self.stop("-TERM");
        self.respawn()
    }

    /// Kills the binary with SIGKILL and starts it again on the same data.
    pub fn crash_and_restart(mut self) -> Server {
        assert!(
            self.child.is_some(),
            "a kill -9 needs a process: start this server with Server::start_binary"
        );
        self.stop("-KILL");
        self.respawn()
    }

    fn respawn(mut self) -> Server {
        let mut next = if self.options_env.is_empty() {
            Server::in_process(
                &self.data_dir,
                &self.options_args,
                &self.secret_id,
                &self.secret_key,
                self.clock.clone(),
                self.database_url.clone(),
            )
        } else {
            Server::spawn(
                &self.data_dir,
                &self.options_args,
                &self.options_env,
                self.database_url.clone(),
            )
        };
        next._tmp = self._tmp.take();
        next.secret_id = std::mem::take(&mut self.secret_id);
        next.secret_key = std::mem::take(&mut self.secret_key);
        next
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) to the binary; it keeps running.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a signal needs a process");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Kills the binary with SIGKILL and does not start it again.
    pub fn kill9(&mut self) {
        assert!(self.child.is_some(), "a kill -9 needs a process");
        self.stop("-KILL");
    }

    /// Stops the server gracefully and waits until it has stopped.
    pub fn terminate(&mut self) {
        self.stop("-TERM");
    }

    fn stop(&mut self, signal: &str) {
        if let Some(mut app) = self.inproc.take() {
            app.stop();
        }
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
            child.wait().expect("wait");
        }
    }

    /// The policy the media plane enforces now (in process only).
    pub fn policy_in_force(&self) -> livestack_core::media::Policy {
        let app = self.inproc.as_ref().expect("an in-process server");
        (*app.policy.current()).clone()
    }

    /// The policy the store's current contents make (in process only).
    pub fn policy_in_store(&self) -> livestack_core::media::Policy {
        let app = self.inproc.as_ref().expect("an in-process server");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(app.policy.build())
            .expect("policy from the store")
    }

    /// The server's database, opened beside it as another process would
    /// (SQLite file or PostgreSQL database alike).
    pub fn store(&self) -> livestack_store::Store {
        livestack_store::Store::open_configured(&self.data_dir, self.database_url.as_deref())
            .expect("the server's database")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// Runs `livestack <args>` against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestack"));
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        cmd.env_remove("LIVESTACK_DATABASE_URL");
        if let Some(url) = &self.database_url {
            cmd.env("LIVESTACK_DATABASE_URL", url);
        }
        cmd.output().expect("run livestack")
    }

    /// Creates a key for account `name` (created if new) with the offline
    /// `keys create` command; returns (SecretId, SecretKey).
    pub fn account_key(&self, name: &str) -> (String, String) {
        let out = self.cli(&["keys", "create", "--account", name]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |field: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {field} in {text}"))
        };
        (get("SecretId:"), get("SecretKey:"))
    }

    /// One call with the root key, signed here with livestack's own TC3
    /// signer (by the server's clock) and sent over loopback: what the
    /// SDKs send, without an interpreter per call.
    pub fn api(&self, action: &str, params: Value) -> Outcome {
        self.api_as(&self.secret_id, &self.secret_key, action, params)
    }

    /// [`api`](Server::api) with another key.
    pub fn api_as(
        &self,
        secret_id: &str,
        secret_key: &str,
        action: &str,
        params: Value,
    ) -> Outcome {
        let body = serde_json::to_vec(&params).expect("JSON");
        let req = Tc3Request::new(self, action, &body);
        let raw = http(
            self.addr,
            &req.build_with(secret_id, secret_key, self.clock.unix()),
        )
        .expect("request");
        Outcome::from_envelope(&raw.json())
    }

    /// One call to `service` (`live`, `cam`, `sts`) at `version`, with any
    /// key and an optional session token, signed here with TC3.
    #[allow(clippy::too_many_arguments)]
    pub fn api_service(
        &self,
        (secret_id, secret_key, token): (&str, &str, Option<&str>),
        service: &str,
        version: &str,
        action: &str,
        params: Value,
    ) -> Outcome {
        let body = serde_json::to_vec(&params).expect("JSON");
        let mut req = Tc3Request::new(self, action, &body);
        req.service = service;
        req.version = version;
        req.token = token;
        let raw = http(
            self.addr,
            &req.build_with(secret_id, secret_key, self.clock.unix()),
        )
        .expect("request");
        Outcome::from_envelope(&raw.json())
    }

    /// A CAM 2019-01-16 call with the root key.
    pub fn cam(&self, action: &str, params: Value) -> Outcome {
        self.api_service(
            (&self.secret_id, &self.secret_key, None),
            "cam",
            "2019-01-16",
            action,
            params,
        )
    }

    /// The base call description for the client translators.
    pub fn call(&self, action: &str, params: Value) -> Value {
        json!({
            "endpoint": self.endpoint(),
            "secret_id": self.secret_id,
            "secret_key": self.secret_key,
            "action": action,
            "params": params,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(app) = self.inproc.as_mut() {
            // Not `stop`: a test that already failed must not panic again.
            app.shutdown.cancel();
            if let Some(thread) = app.thread.take() {
                let _ = thread.join();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Merges `extra` into the object `base`.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// One answer as a client reports it.
#[derive(Debug, Clone)]
pub struct Outcome(pub Value);

impl Outcome {
    /// The answer of a raw `{"Response": …}` envelope, in the shape the
    /// client translators report.
    pub fn from_envelope(envelope: &Value) -> Outcome {
        let mut resp = envelope["Response"].clone();
        let request_id = resp
            .as_object_mut()
            .and_then(|m| m.remove("RequestId"))
            .unwrap_or(Value::Null);
        if let Some(error) = resp.get("Error") {
            return Outcome(json!({"error": {
                "code": error["Code"],
                "message": error["Message"],
                "request_id": request_id,
            }}));
        }
        Outcome(json!({"ok": resp, "request_id": request_id}))
    }

    /// The error code, `None` on success.
    pub fn code(&self) -> Option<&str> {
        self.0["error"]["code"].as_str()
    }

    /// The error message.
    pub fn message(&self) -> &str {
        self.0["error"]["message"].as_str().unwrap_or("")
    }

    /// The RequestId, on success or failure.
    pub fn request_id(&self) -> &str {
        self.0["request_id"]
            .as_str()
            .or_else(|| self.0["error"]["request_id"].as_str())
            .unwrap_or("")
    }

    /// The response (without RequestId); panics with the error otherwise.
    pub fn ok(&self) -> &Value {
        assert!(
            self.0.get("ok").is_some(),
            "expected success, got {}",
            self.0
        );
        &self.0["ok"]
    }

    /// Asserts the error code and returns self.
    #[track_caller]
    pub fn expect_code(&self, code: &str) -> &Self {
        assert_eq!(self.code(), Some(code), "full answer: {}", self.0);
        assert!(is_uuid(self.request_id()), "RequestId missing: {}", self.0);
        self
    }
}

/// True for a canonical lower-case UUID.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs the official clients",
        path.display()
    );
    path
}

fn run_translator(program: &Path, script: &str, spec: &Value) -> Vec<Outcome> {
    let mut child = Command::new(program)
        .arg(repo_root().join("tests/clients").join(script))
        .current_dir(repo_root().join("tests/clients"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write spec");
    let out = child.wait_with_output().expect("client output");
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Outcome(serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))))
        .collect()
}

/// Runs a call description through the official Python SDK.
pub fn python(spec: &Value) -> Vec<Outcome> {
    run_translator(&venv_bin("python"), "py_client.py", spec)
}

/// One call through the Python SDK.
pub fn python1(spec: &Value) -> Outcome {
    python(spec).remove(0)
}

/// Runs a call description through the official Node.js SDK.
pub fn node(spec: &Value) -> Vec<Outcome> {
    let modules = repo_root().join("tests/clients/node_modules/tencentcloud-sdk-nodejs");
    assert!(
        modules.exists(),
        "the Node SDK is missing: run scripts/test, which installs the official clients"
    );
    run_translator(Path::new("node"), "node_client.js", spec)
}

/// One call through the Node.js SDK.
pub fn node1(spec: &Value) -> Outcome {
    node(spec).remove(0)
}

/// What tccli did.
#[derive(Debug)]
pub struct Tccli {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `tccli live <args> --endpoint http://ADDR` with the given key.
pub fn tccli(server: &Server, secret_id: &str, secret_key: &str, args: &[&str]) -> Tccli {
    tccli_service(server, "live", secret_id, secret_key, args)
}

/// Runs `tccli <service> <args> --endpoint http://ADDR` with the given key.
pub fn tccli_service(
    server: &Server,
    service: &str,
    secret_id: &str,
    secret_key: &str,
    args: &[&str],
) -> Tccli {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new(venv_bin("tccli"))
        .arg(service)
        .args(args)
        .args(["--endpoint", &format!("http://{}", server.endpoint())])
        .env("HOME", home.path())
        .env("TENCENTCLOUD_SECRET_ID", secret_id)
        .env("TENCENTCLOUD_SECRET_KEY", secret_key)
        .env("TENCENTCLOUD_REGION", "ap-guangzhou")
        .output()
        .expect("run tccli");
    Tccli {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// `Response.Error.Code`.
    pub fn code(&self) -> Option<String> {
        self.json()["Response"]["Error"]["Code"]
            .as_str()
            .map(str::to_owned)
    }
}

/// Sends raw bytes (one request with `Connection: close`) and reads the answer.
pub fn http(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if let Some(te) = head.to_ascii_lowercase().find("transfer-encoding: chunked") {
        let _ = te;
        body = dechunk(&body);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[pos + 2 + size + 2..];
    }
    out
}

/// A TC3-signed request, built the way the SDKs build it, with the
/// signature computed over exactly the bytes sent.
pub struct Tc3Request<'a> {
    /// Server.
    pub server: &'a Server,
    /// Action header.
    pub action: &'a str,
    /// Raw body.
    pub body: &'a [u8],
    /// Content-Type.
    pub content_type: &'a str,
    /// Signed header names, in order (lower-case).
    pub signed_headers: &'a [&'a str],
    /// Lower-case the signed header values (as the doc example does).
    pub lower_values: bool,
    /// Host header as sent.
    pub host: String,
    /// The service in the credential scope.
    pub service: &'a str,
    /// `X-TC-Version`.
    pub version: &'a str,
    /// `X-TC-Token`, for a temporary key.
    pub token: Option<&'a str>,
}

impl<'a> Tc3Request<'a> {
    /// A JSON POST of `body` signed like the Python SDK.
    pub fn new(server: &'a Server, action: &'a str, body: &'a [u8]) -> Self {
        Tc3Request {
            server,
            action,
            body,
            content_type: "application/json",
            signed_headers: &["content-type", "host"],
            lower_values: false,
            host: server.endpoint(),
            service: "live",
            version: "2018-08-01",
            token: None,
        }
    }

    /// The raw HTTP request, signed with the server's root key now.
    pub fn build(&self) -> Vec<u8> {
        self.build_with(
            &self.server.secret_id,
            &self.server.secret_key,
            self.server.clock.unix(),
        )
    }

    /// The raw HTTP request, signed with `secret_id`/`secret_key` at `ts`.
    pub fn build_with(&self, secret_id: &str, secret_key: &str, ts: i64) -> Vec<u8> {
        use livestack_api::auth::tc3;
        let date = livestack_api::time::utc_date(ts);
        let ts_s = ts.to_string();
        let value = |name: &str| -> String {
            let v = match name {
                "content-type" => self.content_type.to_owned(),
                "host" => self.host.clone(),
                "x-tc-action" => self.action.to_owned(),
                other => panic!("cannot sign {other}"),
            };
            if self.lower_values {
                v.to_ascii_lowercase()
            } else {
                v
            }
        };
        let values: Vec<(String, String)> = self
            .signed_headers
            .iter()
            .map(|n| ((*n).to_owned(), value(n)))
            .collect();
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let canonical = tc3::canonical_request("POST", "", &pairs, &tc3::sha256_hex(self.body));
        let service = self.service;
        let sts = tc3::string_to_sign(&ts_s, &date, service, &canonical);
        let sig = tc3::signature(&tc3::signing_key(secret_key, &date, service), &sts);
        let token = self
            .token
            .map(|t| format!("X-TC-Token: {t}\r\n"))
            .unwrap_or_default();
        let mut req = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nX-TC-Action: {}\r\n\
             X-TC-Version: {}\r\nX-TC-Timestamp: {ts_s}\r\nX-TC-TraceId: trace-me\r\n{token}\
             Authorization: TC3-HMAC-SHA256 Credential={}/{date}/{service}/tc3_request, SignedHeaders={}, Signature={sig}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            self.content_type,
            self.action,
            self.version,
            secret_id,
            self.signed_headers.join(";"),
            self.body.len()
        )
        .into_bytes();
        req.extend_from_slice(self.body);
        req
    }

    /// Sends it.
    pub fn send(&self) -> RawResponse {
        http(self.server.addr, &self.build()).expect("request")
    }
}

/// Where tests keep what a person may want to look at (screenshots):
/// `$LIVESTACK_TEST_ARTIFACTS`, or `target/test-artifacts`.
pub(crate) fn artifact(name: &str) -> PathBuf {
    let dir = std::env::var_os("LIVESTACK_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.join(name)
}

/// Where Chromium is: `CHROMIUM`, or Debian's package.
fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium (apt-get install chromium); .ci/run does"
    );
    path
}

/// Runs the browser script `tests/clients/<script>` (Debian's Chromium
/// through playwright-core) with `args`; its one JSON line, once it has
/// said it succeeded (no `error`).
pub(crate) fn browser(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    assert!(
        repo_root()
            .join("tests/clients/node_modules/playwright-core")
            .exists(),
        "playwright-core is missing: run scripts/test, which installs the test clients"
    );
    let out = Command::new("node")
        .arg(repo_root().join("tests/clients").join(script))
        .args(args)
        .env("CHROMIUM", chromium())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert!(
        out.status.success() && seen.is_object() && seen["error"].is_null(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen
}
