//! `notifeed`: the reference notification server.
//!
//! ```text
//! notifeed [--address ADDR] [--data-dir DIR] [--config FILE]
//! ```
//!
//! | Flag | Environment variable | Default |
//! |---|---|---|
//! | `--address` | `NOTIFEED_ADDRESS` | `127.0.0.1:8080` |
//! | `--data-dir` | `NOTIFEED_DATA_DIR` | `./notifeed-data` |
//! | `--config` | `NOTIFEED_CONFIG` | none: the built-in configuration with the demo app |
//!
//! A flag wins over its variable. On start it prints `notifeed listening on http://<address>`
//! (with the port actually bound, so `--address 127.0.0.1:0` is usable by tests).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use notifeed::config::{Config, EngineChoice};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::handler::Handler;
use notifeed::{FeedStore, SharedClock, SystemClock};

const USAGE: &str = "usage: notifeed [--address ADDR] [--data-dir DIR] [--config FILE]

  --address ADDR   where to listen (env NOTIFEED_ADDRESS; default 127.0.0.1:8080)
  --data-dir DIR   where the store and subscriptions live (env NOTIFEED_DATA_DIR; default ./notifeed-data)
  --config FILE    TOML configuration (env NOTIFEED_CONFIG; default: built-in, with the demo app)";

struct Options {
    address: String,
    data_dir: PathBuf,
    config: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = Options {
        address: env("NOTIFEED_ADDRESS").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
        data_dir: env("NOTIFEED_DATA_DIR").map_or_else(|| PathBuf::from("notifeed-data"), PathBuf::from),
        config: env("NOTIFEED_CONFIG").map(PathBuf::from),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err(String::new());
        }
        let value = inline.or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--address" => options.address = value,
            "--data-dir" => options.data_dir = PathBuf::from(value),
            "--config" => options.config = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// Opens the configured engine in `data_dir`.
///
/// The engine's files go in a folder of the data directory named for it (`log/`, `sled/`), next
/// to `subscriptions.json`. Both engines run with `Durability::Always`: a 201 means on disk.
fn open_store(config: &Config, data_dir: &Path, clock: SharedClock) -> Result<Arc<dyn FeedStore>, String> {
    let options = config.store_options();
    match config.engine {
        EngineChoice::Log => {
            let path = data_dir.join("log");
            let store = LogStore::open(&path, LogConfig { options, ..LogConfig::default() }, clock)
                .map_err(|e| format!("cannot open the log store in {}: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
        EngineChoice::Sled => {
            let path = data_dir.join("sled");
            let store = SledStore::open(&path, SledConfig { options, ..SledConfig::default() }, clock)
                .map_err(|e| format!("cannot open the sled store in {}: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
        EngineChoice::Redis => open_redis(config, options, clock),
    }
}

/// Opens the Redis Cluster engine named by the `[redis]` section (see `docs/redis.md`).
#[cfg(feature = "redis")]
fn open_redis(
    config: &Config,
    options: notifeed::StoreOptions,
    clock: SharedClock,
) -> Result<Arc<dyn FeedStore>, String> {
    use notifeed::engine::redis::{RedisConfig, RedisStore};
    let settings = &config.redis;
    let nodes: Vec<&str> = settings.nodes.iter().map(|n| n.expose()).collect();
    let redis_config = RedisConfig {
        key_prefix: settings.key_prefix.clone(),
        options,
        durability: settings.durability.durability(),
        min_replicas_acked: settings.min_replicas_acked,
        ..RedisConfig::default()
    };
    let store =
        RedisStore::open(&nodes, redis_config, clock).map_err(|e| format!("cannot open the Redis store: {e}"))?;
    Ok(Arc::new(store))
}

/// Without the `redis` feature, `engine = "redis"` is a clear start-up error.
#[cfg(not(feature = "redis"))]
fn open_redis(_: &Config, _: notifeed::StoreOptions, _: SharedClock) -> Result<Arc<dyn FeedStore>, String> {
    Err("engine = \"redis\" needs a build with the redis feature: cargo build --release --features redis".to_owned())
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("notifeed: {message}");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    match serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("notifeed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(options: Options) -> Result<(), String> {
    let config = match &options.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", options.data_dir.display()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let store = open_store(&config, &options.data_dir, Arc::clone(&clock))?;
    let sweep_interval = Duration::from_secs(config.sweep_interval_seconds);
    let engine = format!("{:?}", config.engine).to_ascii_lowercase();
    let demo = config.apps.iter().any(|a| a.id == notifeed::config::DEMO_APP_ID);
    let handler =
        Arc::new(Handler::new(Arc::clone(&store), clock, config, Some(&options.data_dir)).map_err(|e| e.to_string())?);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.address)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.address))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        println!("notifeed listening on http://{bound} (engine {engine}, data {})", options.data_dir.display());
        if demo {
            println!("notifeed: the demo app is enabled (token in the README); pass --config for real apps");
        }
        notifeed::server::run(listener, handler, store, sweep_interval, notifeed::server::shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}
