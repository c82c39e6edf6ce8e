//! The `livestack` binary: configuration, wiring, and the offline key
//! commands.
//!
//! This is the only crate that sees every other one: it opens the store,
//! builds the API gateway, binds the listeners and owns shutdown. It uses
//! `anyhow` with context for everything that can stop it from starting.

mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use livestack_store::{accounts, keys, Store};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

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
    /// Run the server (the API now; RTMP and HTTP playback with the media plane).
    Serve(ServeArgs),
    /// Manage API keys in the data directory (works with the server running or not).
    #[command(subcommand)]
    Keys(KeysCommand),
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    location: Location,
    /// API listen address [default: 127.0.0.1:9100]; port 0 picks a free port.
    #[arg(long, env = "LIVESTACK_API_LISTEN", value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// RTMP listen address [default: 127.0.0.1:1935] (not served yet: media plane pending).
    #[arg(long, env = "LIVESTACK_RTMP_LISTEN", value_name = "ADDR")]
    rtmp_listen: Option<SocketAddr>,
    /// HTTP playback listen address [default: 127.0.0.1:8080] (not served yet: media plane pending).
    #[arg(long, env = "LIVESTACK_HTTP_LISTEN", value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Requests per second per account per action, for every action
    /// [default: each action's documented limit, 20/s where none is documented].
    #[arg(long, env = "LIVESTACK_API_RATE_LIMIT", value_name = "N")]
    api_rate_limit: Option<u32>,
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
        Command::Serve(args) => serve(args),
        Command::Keys(cmd) => keys_command(cmd),
    }
}

fn load(location: &Location) -> anyhow::Result<Config> {
    let mut config = Config::load(location.config.as_deref())?;
    if let Some(dir) = &location.data_dir {
        config.data_dir.clone_from(dir);
    }
    Ok(config)
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.data_dir).with_context(|| {
        format!(
            "cannot open the data directory {}",
            config.data_dir.display()
        )
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load(&args.location)?;
    if let Some(a) = args.api_listen {
        config.api.listen = a;
    }
    if let Some(a) = args.rtmp_listen {
        config.rtmp.listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http.listen = a;
    }
    if let Some(n) = args.api_rate_limit {
        config.api.rate_limit = Some(n);
    }
    if let Some(level) = args.log {
        config.log.level = level;
    }
    init_tracing(&config.log.level)?;

    let store = open_store(&config)?;
    bootstrap_root_key(&store)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config, store))
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
        .init();
    Ok(())
}

/// Makes sure the root account has a key: the one given in
/// `LIVESTACK_SECRET_ID` / `LIVESTACK_SECRET_KEY`, or on a brand-new data
/// directory a generated one, printed once.
fn bootstrap_root_key(store: &Store) -> anyhow::Result<()> {
    let env_id = std::env::var("LIVESTACK_SECRET_ID")
        .ok()
        .filter(|s| !s.is_empty());
    let env_key = std::env::var("LIVESTACK_SECRET_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    store.run_blocking(|conn| {
        let root = accounts::ensure(conn, "root")?;
        match (env_id, env_key) {
            (Some(secret_id), Some(secret_key)) => {
                if !keys::is_well_formed_secret_id(&secret_id) {
                    return Ok(Err(anyhow::anyhow!(
                        "LIVESTACK_SECRET_ID must look like a Tencent Cloud key id: AKID followed by letters and digits"
                    )));
                }
                let key = keys::NewKey {
                    secret_id: secret_id.clone(),
                    secret_key,
                    account_id: root.id,
                    temporary: None,
                };
                if keys::upsert(conn, &key)? {
                    tracing::info!(secret_id, "root API key set from LIVESTACK_SECRET_ID");
                }
                Ok(Ok(()))
            }
            (Some(_), None) | (None, Some(_)) => Ok(Err(anyhow::anyhow!(
                "set both LIVESTACK_SECRET_ID and LIVESTACK_SECRET_KEY, or neither"
            ))),
            (None, None) => {
                if keys::count(conn)? == 0 {
                    let key = keys::NewKey::generate(root.id, None);
                    keys::insert(conn, &key)?;
                    println!("Generated the root API key; the secret is shown only this once:");
                    println!("  SecretId:  {}", key.secret_id);
                    println!("  SecretKey: {}", key.secret_key);
                }
                Ok(Ok(()))
            }
        }
    })??;
    Ok(())
}

async fn run(config: Config, store: Store) -> anyhow::Result<()> {
    let settings = livestack_api::ApiSettings {
        rate_limit: config.api.rate_limit,
        regions: config.api.regions.clone(),
    };
    let gateway = Arc::new(livestack_api::Gateway::new(store, &settings));
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", config.api.listen))?;
    let addr = listener
        .local_addr()
        .context("API listener has no address")?;
    // One line per bound address, on stdout, so scripts and tests can read it.
    println!("api listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "livestack API ready");

    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    let server = gateway.serve(listener, async move { signals.cancelled().await });
    tokio::select! {
        result = server => result.context("API server failed")?,
        () = wait_for_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    }
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
            let key = store.run_blocking(|conn| {
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
            let (accounts, keys) =
                store.run_blocking(|conn| Ok((accounts::list(conn)?, keys::list(conn)?)))?;
            println!(
                "{:<40} {:<10} {:<9} {:<10} EXPIRES",
                "SECRET ID", "ACCOUNT", "STATUS", "KIND"
            );
            for key in keys {
                let account = accounts
                    .iter()
                    .find(|a| a.id == key.account_id)
                    .map_or("?", |a| a.name.as_str());
                println!(
                    "{:<40} {:<10} {:<9} {:<10} {}",
                    key.secret_id,
                    account,
                    if key.enabled { "enabled" } else { "disabled" },
                    if key.token.is_some() {
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
    if !store.run_blocking(move |conn| keys::set_enabled(conn, &id, enabled))? {
        bail!("no key with SecretId {secret_id}");
    }
    println!(
        "{} {secret_id}",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}
