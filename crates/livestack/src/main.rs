//! The `livestack` binary: configuration, wiring, and the offline key
//! commands.
//!
//! CLI parsing and the process around the library: flags and environment
//! into a [`Config`], the log subscriber, the runtime, signals, and the
//! offline `keys` and `url` commands. The server itself is
//! [`livestack::App`]. Uses `anyhow` with context for everything that can
//! stop it from starting.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use livestack_store::{accounts, keys, Store};
use tokio_util::sync::CancellationToken;

use livestack::config::{self, Config};
use livestack::{App, RootKey};

/// A self-hosted live-streaming platform that speaks the Tencent Cloud Live
/// (CSS) API 2018-08-01: point the official SDKs, tccli or Terraform at it.
#[derive(Debug, Parser)]
#[command(name = "livestack", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the API, RTMP(S) and SRT ingest, RTMP(S), HTTP(S)-FLV and HLS playback.
    Serve(Box<ServeArgs>),
    /// Manage API keys in the data directory (works with the server running or not).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the push or play URLs of a stream, signed with the domain's current key.
    Url(UrlArgs),
}

/// Which of a stream's play URLs `livestack url play` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlayFormat {
    /// `rtmp://…/app/stream` (push and play).
    Rtmp,
    /// `http://…/app/stream.flv` (HTTP-FLV, play).
    Flv,
    /// `http://…/app/stream.m3u8` (HLS, play).
    Hls,
    /// `http://…/app/stream.m3u8?…&ll=1` (low-latency HLS, play).
    Llhls,
    /// `rtmps://…/app/stream` (RTMP over TLS, push and play).
    Rtmps,
    /// `srt://…?streamid=#!::h=…,r=app/stream,…` (push).
    Srt,
    /// `http://…/app/stream/whep` (WebRTC over WHEP, play).
    Whep,
    /// `http://…/app/stream/whip` (WebRTC over WHIP, push).
    Whip,
    /// `webrtc://…/app/stream` (WebRTC for Tencent's LEB player SDKs, play).
    Webrtc,
}

/// Which URLs `livestack url` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UrlKind {
    /// The RTMP URL publishers push to (push domain, push key).
    Push,
    /// The RTMP, HTTP-FLV and HLS URLs players pull (play domain, play key).
    Play,
}

#[derive(Debug, Args)]
struct UrlArgs {
    /// push or play.
    kind: UrlKind,
    #[command(flatten)]
    location: Location,
    /// The push or play domain.
    #[arg(long)]
    domain: String,
    /// The AppName (the path segment before the stream name).
    #[arg(long, default_value = "live")]
    app: String,
    /// The StreamName.
    #[arg(long)]
    stream: String,
    /// How long the URL stays valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    expires: i64,
    /// Print only this URL (so that `"$(livestack url play … --format
    /// flv)"` can be pasted into a player's command line) [default: push:
    /// rtmp; play: rtmp, flv and hls].
    #[arg(long, value_enum)]
    format: Option<PlayFormat>,
}

/// Parses `90`, `90s`, `30m`, `24h` or `7d` into seconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 3600, 30m, 24h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

/// Where the configuration and data live; shared by every command.
#[derive(Debug, Args)]
struct Location {
    /// TOML configuration file (see livestack.example.toml).
    #[arg(long, env = "LIVESTACK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: ./livestack-data].
    #[arg(long, env = "LIVESTACK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database shared by every node given the same URL
    /// (postgres://user:password@host:port/db) [default: SQLite in the data directory].
    #[arg(
        long,
        env = "LIVESTACK_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    location: Location,
    /// This node's name among nodes sharing one database [default: the host name].
    #[arg(long, env = "LIVESTACK_NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// The host or IP the other nodes reach this one at [default: the API listen address].
    #[arg(long, env = "LIVESTACK_ADVERTISE", value_name = "HOST")]
    advertise: Option<String>,
    /// API listen address [default: 127.0.0.1:9100]; port 0 picks a free port.
    #[arg(long, env = "LIVESTACK_API_LISTEN", value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// RTMP ingest and playback listen address [default: 127.0.0.1:1935].
    #[arg(long, env = "LIVESTACK_RTMP_LISTEN", value_name = "ADDR")]
    rtmp_listen: Option<SocketAddr>,
    /// HTTP-FLV/HLS playback listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "LIVESTACK_HTTP_LISTEN", value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// HTTPS playback listen address [default: 127.0.0.1:8443].
    #[arg(long, env = "LIVESTACK_HTTPS_LISTEN", value_name = "ADDR")]
    https_listen: Option<SocketAddr>,
    /// RTMPS (RTMP over TLS) push and playback listen address [default: 127.0.0.1:1936].
    #[arg(long, env = "LIVESTACK_RTMPS_LISTEN", value_name = "ADDR")]
    rtmps_listen: Option<SocketAddr>,
    /// SRT ingest listen address (UDP) [default: 127.0.0.1:9000].
    #[arg(long, env = "LIVESTACK_SRT_LISTEN", value_name = "ADDR")]
    srt_listen: Option<SocketAddr>,
    /// WebRTC media listen address (UDP; WHEP and LEB signalling ride on
    /// the HTTP(S) listeners) [default: 127.0.0.1:8000].
    #[arg(long, env = "LIVESTACK_WEBRTC_LISTEN", value_name = "ADDR")]
    webrtc_listen: Option<SocketAddr>,
    /// The address WebRTC players are told to send to (this machine's
    /// public address behind NAT) [default: the listen address, or
    /// 127.0.0.1 for a wildcard].
    #[arg(long, env = "LIVESTACK_WEBRTC_CANDIDATE", value_name = "IP")]
    webrtc_candidate: Option<std::net::IpAddr>,
    /// Requests per second per account per action, for every action
    /// [default: each action's documented limit, 20/s where none is documented].
    #[arg(long, env = "LIVESTACK_API_RATE_LIMIT", value_name = "N")]
    api_rate_limit: Option<u32>,
    /// Address blocks server-side fetches (watermark pictures, callbacks)
    /// may reach although not public, comma-separated, e.g. 127.0.0.0/8
    /// [default: none].
    #[arg(
        long,
        env = "LIVESTACK_FETCH_ALLOW",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    fetch_allow: Option<Vec<String>>,
    /// Log filter, e.g. info or livestack_api=debug [default: info; RUST_LOG wins].
    #[arg(long, env = "LIVESTACK_LOG", value_name = "FILTER")]
    log: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (the secret is shown only here).
    Create {
        #[command(flatten)]
        location: Location,
        /// Account the key acts for (created if new).
        #[arg(long, default_value = "root")]
        account: String,
        /// Make a temporary key that expires after this many seconds and
        /// needs its session token (X-TC-Token) on every request.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Disable a key: requests signed with it get AuthFailure.SecretIdNotFound.
    Disable {
        #[command(flatten)]
        location: Location,
        /// The key's SecretId.
        secret_id: String,
    },
    /// Enable a disabled key again.
    Enable {
        #[command(flatten)]
        location: Location,
        /// The key's SecretId.
        secret_id: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Keys(cmd) => keys_command(cmd),
        Command::Url(args) => url_command(args),
    }
}

fn load(location: &Location) -> anyhow::Result<Config> {
    let mut config = Config::load(location.config.as_deref())?;
    if let Some(dir) = &location.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Some(url) = &location.database_url {
        config.store.database_url = Some(config::ConfigSecret(url.clone()));
    }
    Ok(config)
}

/// The store of an existing data directory: the offline commands never
/// create one (run from the wrong directory, they would make an empty one
/// and then report that nothing is in it).
fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open_existing(&config.data_dir, config.database_url())
        .with_context(|| format!("cannot open {}", config.database_shown()))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load(&args.location)?;
    if let Some(n) = args.node_name {
        config.cluster.node_name = n;
    }
    if let Some(a) = args.advertise {
        config.cluster.advertise = a;
    }
    if let Some(a) = args.api_listen {
        config.api.listen = a;
    }
    if let Some(a) = args.rtmp_listen {
        config.rtmp.listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http.listen = a;
    }
    if let Some(a) = args.https_listen {
        config.https.listen = a;
    }
    if let Some(a) = args.rtmps_listen {
        config.rtmps.listen = a;
    }
    if let Some(a) = args.srt_listen {
        config.srt.listen = a;
    }
    if let Some(a) = args.webrtc_listen {
        config.webrtc.listen = a;
    }
    if let Some(ip) = args.webrtc_candidate {
        config.webrtc.candidate = Some(ip);
    }
    if let Some(n) = args.api_rate_limit {
        config.api.rate_limit = Some(n);
    }
    if let Some(allow) = args.fetch_allow {
        config.fetch.allow = allow.into_iter().filter(|c| !c.trim().is_empty()).collect();
    }
    if let Some(level) = args.log {
        config.log.level = level;
    }
    // Object-storage credentials come from the environment, never a flag,
    // which would show the secret in the process list.
    if let Some(id) = env_nonempty("LIVESTACK_S3_ACCESS_KEY_ID") {
        config.storage.s3.access_key_id = Some(id);
    }
    if let Some(secret) = env_nonempty("LIVESTACK_S3_SECRET_ACCESS_KEY") {
        config.storage.s3.secret_access_key = Some(config::ConfigSecret(secret));
    }
    init_tracing(&config.log.level)?;
    raise_open_files_limit();
    let root_key = root_key_from_env()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = App::build(config, root_key, livestack_core::Clock::system()).await?;
        if let Some(key) = app.generated_key() {
            println!("Generated the root API key; the secret is shown only this once:");
            println!("  SecretId:  {}", key.secret_id);
            println!("  SecretKey: {}", key.secret_key);
        }
        // One line per bound address, on stdout, so scripts and tests can
        // read them; the API line comes last and means everything is ready.
        let addrs = app.addrs();
        println!("rtmp listening on rtmp://{}", addrs.rtmp);
        println!("http listening on http://{}", addrs.http);
        println!("https listening on https://{}", addrs.https);
        println!("rtmps listening on rtmps://{}", addrs.rtmps);
        println!("srt listening on srt://{}", addrs.srt);
        match addrs.webrtc_tcp {
            Some(tcp) => println!("webrtc listening on udp://{} and tcp://{tcp}", addrs.webrtc),
            None => println!("webrtc listening on udp://{}", addrs.webrtc),
        }
        println!("api listening on http://{}", addrs.api);
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        let run = app.run(shutdown);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => result,
            () = wait_for_signal() => {
                on_signal.cancel();
                run.await
            }
        }
    })
}

/// Raises the soft limit of open files to the hard one: every connection
/// is a descriptor, and the common soft default of 1024 would cap the
/// server far below `[limits] max_connections`. Raise the hard limit
/// itself with `ulimit -Hn` or systemd's `LimitNOFILE`.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
}

/// The root key from `LIVESTACK_SECRET_ID` / `LIVESTACK_SECRET_KEY`: both
/// or neither.
fn root_key_from_env() -> anyhow::Result<Option<RootKey>> {
    match (
        env_nonempty("LIVESTACK_SECRET_ID"),
        env_nonempty("LIVESTACK_SECRET_KEY"),
    ) {
        (Some(secret_id), Some(secret_key)) => Ok(Some(RootKey {
            secret_id,
            secret_key,
        })),
        (None, None) => Ok(None),
        _ => bail!("set both LIVESTACK_SECRET_ID and LIVESTACK_SECRET_KEY, or neither"),
    }
}

/// The value of environment variable `name`, when set and not empty.
fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn init_tracing(level: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(level),
    }
    .with_context(|| format!("invalid log filter {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log redirected to a file or read by
        // journald stays plain text that grep and the eye can read.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn keys_command(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            location,
            account,
            ttl,
        } => {
            let store = open_store(&load(&location)?)?;
            let key = store.transaction_blocking(|conn| {
                let account = accounts::ensure(conn, &account)?;
                let key = keys::NewKey::generate(account.id, ttl.map(i64::from));
                keys::insert(conn, &key)?;
                Ok(key)
            })?;
            println!("SecretId:  {}", key.secret_id);
            println!("SecretKey: {}", key.secret_key);
            if let Some((token, expires_at)) = &key.temporary {
                println!("Token:     {token}");
                println!("ExpiresAt: {expires_at}");
            }
        }
        KeysCommand::List { location } => {
            let store = open_store(&load(&location)?)?;
            let (accounts, keys, users) = store.run_blocking(|conn| {
                let accounts = accounts::list(conn)?;
                let mut users = Vec::new();
                for a in &accounts {
                    users.extend(livestack_store::cam::users(conn, a.id)?);
                }
                Ok((accounts, keys::list(conn)?, users))
            })?;
            println!(
                "{:<40} {:<10} {:<24} {:<9} {:<10} EXPIRES",
                "SECRET ID", "ACCOUNT", "USER", "STATUS", "KIND"
            );
            for key in keys {
                let account = accounts
                    .iter()
                    .find(|a| a.id == key.account_id)
                    .map_or("?", |a| a.name.as_str());
                // The root account's own keys, or a sub-account's (by its
                // CAM name); a federation token also shows its name.
                let mut user = match key.user_id {
                    None => "(root)".to_owned(),
                    Some(id) => users
                        .iter()
                        .find(|u| u.id == id)
                        .map_or_else(|| format!("(deleted user {id})"), |u| u.name.clone()),
                };
                if let Some(role) = key.role_id {
                    user = format!("role {role}");
                }
                if let Some(name) = &key.session_name {
                    user = format!("{user} as {name}");
                }
                println!(
                    "{:<40} {:<10} {:<24} {:<9} {:<10} {}",
                    key.secret_id,
                    account,
                    user,
                    if key.enabled { "enabled" } else { "disabled" },
                    if key.role_id.is_some() {
                        "role"
                    } else if key.session_name.is_some() {
                        "federated"
                    } else if key.token.is_some() {
                        "temporary"
                    } else {
                        "permanent"
                    },
                    key.expires_at.map_or("-".to_owned(), |t| t.to_string()),
                );
            }
        }
        KeysCommand::Disable {
            location,
            secret_id,
        } => set_key_enabled(&location, &secret_id, false)?,
        KeysCommand::Enable {
            location,
            secret_id,
        } => set_key_enabled(&location, &secret_id, true)?,
    }
    Ok(())
}

fn set_key_enabled(location: &Location, secret_id: &str, enabled: bool) -> anyhow::Result<()> {
    let store = open_store(&load(location)?)?;
    let id = secret_id.to_owned();
    if !store.transaction_blocking(move |conn| keys::set_enabled(conn, &id, enabled))? {
        bail!("no key with SecretId {secret_id}");
    }
    println!(
        "{} {secret_id}",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

fn url_command(args: UrlArgs) -> anyhow::Result<()> {
    use livestack_core::urlsign;
    use livestack_store::domains;

    let config = load(&args.location)?;
    let store = open_store(&config)?;
    let name = args.domain.to_ascii_lowercase();
    let lookup = name.clone();
    let Some(domain) = store.run_blocking(move |conn| domains::find_any(conn, &lookup))? else {
        bail!("there is no domain {name}: add it first with AddLiveDomain");
    };
    if args.kind == UrlKind::Push
        && matches!(
            args.format,
            Some(
                PlayFormat::Flv
                    | PlayFormat::Hls
                    | PlayFormat::Llhls
                    | PlayFormat::Whep
                    | PlayFormat::Webrtc
            )
        )
    {
        bail!("a push URL is rtmp, rtmps, srt or whip; flv, hls, llhls, whep and webrtc are for players");
    }
    if args.kind == UrlKind::Play && matches!(args.format, Some(PlayFormat::Srt | PlayFormat::Whip))
    {
        bail!("srt and whip URLs are for pushing; play over rtmp, rtmps, flv, hls, llhls, whep or webrtc");
    }
    let want = match args.kind {
        UrlKind::Push => livestack_core::DomainKind::Push,
        UrlKind::Play => livestack_core::DomainKind::Play,
    };
    if domain.kind != want {
        let (is, needs) = if want == livestack_core::DomainKind::Push {
            ("a play", "push")
        } else {
            ("a push", "play")
        };
        bail!("{name} is {is} domain; {needs} URLs need a {needs} domain");
    }
    if !domain.enabled {
        eprintln!("note: {name} is disabled (ForbidLiveDomain); enable it with EnableLiveDomain");
    }
    let now = livestack_core::Clock::system().unix();
    let stream = &args.stream;
    let query = if domain.auth.enabled {
        format!(
            "?{}",
            urlsign::query(&domain.auth.key, stream, now + args.expires)
        )
    } else {
        eprintln!("note: URL authentication is off for {name}; the URLs are not signed");
        String::new()
    };
    let port = |addr: SocketAddr, default: u16| {
        if addr.port() == default {
            String::new()
        } else {
            format!(":{}", addr.port())
        }
    };
    let rtmp = port(config.rtmp.listen, 1935);
    let rtmps = port(config.rtmps.listen, 443);
    let http = port(config.http.listen, 80);
    let app = &args.app;
    match args.kind {
        UrlKind::Push => match args.format.unwrap_or(PlayFormat::Rtmp) {
            PlayFormat::Rtmps => println!("rtmps://{name}{rtmps}/{app}/{stream}{query}"),
            PlayFormat::Srt => {
                // SRT has no default port, and its parameters ride in the
                // streamid, comma-separated (Tencent's form).
                let signature = query.trim_start_matches('?').replace('&', ",");
                let sep = if signature.is_empty() { "" } else { "," };
                println!(
                    "srt://{name}:{}?streamid=#!::h={name},r={app}/{stream}{sep}{signature}",
                    config.srt.listen.port()
                );
            }
            // WHIP clients take the signature as the URL's query or as
            // their bearer token (OBS: "Bearer Token").
            PlayFormat::Whip => println!("http://{name}{http}/{app}/{stream}/whip{query}"),
            _ => println!("rtmp://{name}{rtmp}/{app}/{stream}{query}"),
        },
        UrlKind::Play => {
            let show = |f: PlayFormat| args.format.is_none_or(|want| want == f);
            if show(PlayFormat::Rtmp) {
                println!("rtmp://{name}{rtmp}/{app}/{stream}{query}");
            }
            if show(PlayFormat::Flv) {
                println!("http://{name}{http}/{app}/{stream}.flv{query}");
            }
            if show(PlayFormat::Hls) {
                println!("http://{name}{http}/{app}/{stream}.m3u8{query}");
            }
            if args.format == Some(PlayFormat::Llhls) {
                let ll = if query.is_empty() { "?ll=1" } else { "&ll=1" };
                println!("http://{name}{http}/{app}/{stream}.m3u8{query}{ll}");
            }
            if args.format == Some(PlayFormat::Rtmps) {
                println!("rtmps://{name}{rtmps}/{app}/{stream}{query}");
            }
            if args.format == Some(PlayFormat::Whep) {
                println!("http://{name}{http}/{app}/{stream}/whep{query}");
            }
            if args.format == Some(PlayFormat::Webrtc) {
                // Tencent's LEB SDKs post it to /webrtc/v1/pullstream.
                println!("webrtc://{name}/{app}/{stream}{query}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
