//! `notifeed`: the reference notification server, and its log engine's offline checks.
//!
//! ```text
//! notifeed [serve] [--address ADDR] [--data-dir DIR] [--config FILE]
//! notifeed verify [--data-dir DIR] [--config FILE]
//! notifeed backup DEST [--refresh] [--data-dir DIR] [--config FILE]
//! ```
//!
//! | Flag | Environment variable | Default |
//! |---|---|---|
//! | `--address` | `NOTIFEED_ADDRESS` | `127.0.0.1:8080` |
//! | `--data-dir` | `NOTIFEED_DATA_DIR` | `./notifeed-data` |
//! | `--config` | `NOTIFEED_CONFIG` | none: the built-in configuration with the demo app |
//!
//! A flag wins over its variable. `serve` (the default) prints `notifeed listening on
//! http://<address>` on start (with the port actually bound, so `--address 127.0.0.1:0` is usable
//! by tests), and runs the scheduled verification and backups of the configuration's
//! `[maintenance]` section; `SIGUSR1` asks it for a backup now (`kill -USR1 <pid>`), and
//! `SIGUSR2` for a verification of its log store now (`kill -USR2 <pid>`), with or without a
//! schedule.
//!
//! `verify` and `backup` open the log store of a data directory no server is running on (the
//! store's lock refuses a second opener), as a server's start would (recovering from a crash
//! first), then check every record (`LogStore::verify`) or copy the store into `DEST`, which
//! must be empty or missing, and outside the store (`LogStore::backup`); with `--refresh`,
//! `DEST` may hold an earlier copy, which is brought up to now by writing only what differs
//! (`LogStore::refresh_backup`). They exit with 0 on
//! success, 1 with the reason on stderr otherwise (a corrupt record is reported with its file
//! and offset), and 2 for a usage error. For a running server, use `[maintenance]` or the
//! signals instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use notifeed::config::{Config, EngineChoice};
use notifeed::engine::log::LogStore;
use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::handler::Handler;
use notifeed::maintenance::{BackupSchedule, Maintenance};
use notifeed::server::Background;
use notifeed::{FeedStore, SharedClock, SystemClock};

const USAGE: &str = "usage: notifeed [serve] [--address ADDR] [--data-dir DIR] [--config FILE]
       notifeed verify [--data-dir DIR] [--config FILE]
       notifeed backup DEST [--refresh] [--data-dir DIR] [--config FILE]

  serve            run the server (the default)
  verify           check every record of a stopped server's log store
  backup DEST      copy a stopped server's log store into DEST (empty or missing)
  --refresh        backup only: bring the earlier copy in DEST up to now, writing what differs

  --address ADDR   where to listen (env NOTIFEED_ADDRESS; default 127.0.0.1:8080)
  --data-dir DIR   where the store and subscriptions live (env NOTIFEED_DATA_DIR; default ./notifeed-data)
  --config FILE    TOML configuration (env NOTIFEED_CONFIG; default: built-in, with the demo app)";

/// What to do.
enum Command {
    Serve,
    Verify,
    Backup(PathBuf),
}

struct Options {
    command: Command,
    /// `backup --refresh`.
    refresh: bool,
    address: String,
    data_dir: PathBuf,
    config: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = Options {
        command: Command::Serve,
        refresh: false,
        address: env("NOTIFEED_ADDRESS").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
        data_dir: env("NOTIFEED_DATA_DIR").map_or_else(|| PathBuf::from("notifeed-data"), PathBuf::from),
        config: env("NOTIFEED_CONFIG").map(PathBuf::from),
    };
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("serve") => {
            args.next();
        }
        Some("verify") => {
            args.next();
            options.command = Command::Verify;
        }
        Some("backup") => {
            args.next();
            let dest = args
                .next()
                .filter(|d| !d.starts_with('-'))
                .ok_or("backup needs a destination: notifeed backup DEST")?;
            options.command = Command::Backup(PathBuf::from(dest));
        }
        _ => {}
    }
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err(String::new());
        }
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {name} (a command comes first: serve, verify or backup DEST)"));
        }
        if name == "--address" && !matches!(options.command, Command::Serve) {
            return Err("--address applies to serve only".to_owned());
        }
        if name == "--refresh" {
            if !matches!(options.command, Command::Backup(_)) || inline.is_some() {
                return Err("--refresh applies to backup only, and takes no value".to_owned());
            }
            options.refresh = true;
            continue;
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

/// The opened engine: as the handler sees it, and as the log store it may be (for
/// [`Maintenance`]).
struct Opened {
    store: Arc<dyn FeedStore>,
    log: Option<Arc<LogStore>>,
}

/// Opens the log store of `data_dir` (its `log/` folder) with the configuration's limits.
fn open_log(config: &Config, data_dir: &Path, clock: SharedClock) -> Result<LogStore, String> {
    let path = data_dir.join("log");
    LogStore::open(&path, config.log_config(), clock)
        .map_err(|e| format!("cannot open the log store in {}: {e}", path.display()))
}

/// Opens the configured engine in `data_dir`.
///
/// The engine's files go in a folder of the data directory named for it (`log/`, `sled/`), next
/// to `subscriptions.json`. Both engines run with `Durability::Always`: a 201 means on disk.
fn open_store(config: &Config, data_dir: &Path, clock: SharedClock) -> Result<Opened, String> {
    let options = config.store_options();
    match config.engine {
        EngineChoice::Log => {
            let log = Arc::new(open_log(config, data_dir, clock)?);
            Ok(Opened { store: Arc::clone(&log) as Arc<dyn FeedStore>, log: Some(log) })
        }
        EngineChoice::Sled => {
            let path = data_dir.join("sled");
            let store = SledStore::open(&path, SledConfig { options, ..SledConfig::default() }, clock)
                .map_err(|e| format!("cannot open the sled store in {}: {e}", path.display()))?;
            Ok(Opened { store: Arc::new(store), log: None })
        }
        EngineChoice::Redis => Ok(Opened { store: open_redis(config, options, clock)?, log: None }),
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
    let done = match options.command {
        Command::Serve => serve(options),
        Command::Verify => verify(&options),
        Command::Backup(ref dest) => backup(&options, dest),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("notifeed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(options: &Options) -> Result<Config, String> {
    match &options.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

/// The log store of a data directory no server runs on, for `verify` and `backup`.
fn open_offline(options: &Options) -> Result<LogStore, String> {
    let config = load_config(options)?;
    if config.engine != EngineChoice::Log {
        return Err(format!("verify and backup work on the log engine; the configuration names {:?}", config.engine));
    }
    if !options.data_dir.join("log").is_dir() {
        return Err(format!("{} holds no log store (no log/ folder)", options.data_dir.display()));
    }
    let store = open_log(&config, &options.data_dir, Arc::new(SystemClock))?;
    let report = store.recovery_report();
    println!(
        "opened {}: {} segments, {} records scanned, {} torn tails cut, {} journal entries replayed",
        store.dir().display(),
        report.segments,
        report.records,
        report.torn_tails.len(),
        report.journal_entries_replayed
    );
    Ok(store)
}

fn verify(options: &Options) -> Result<(), String> {
    let store = open_offline(options)?;
    let report = store.verify().map_err(|e| format!("verify failed: {e}"))?;
    println!(
        "verified: {} records in {} segments ({} bytes) sound; {} notifications readable",
        report.records, report.segments, report.bytes, report.notifications
    );
    store.close().map_err(|e| format!("closing the store failed: {e}"))
}

fn backup(options: &Options, dest: &Path) -> Result<(), String> {
    let store_dir = options.data_dir.join("log");
    if store_dir.is_dir() && overlapping(dest, &store_dir)? {
        return Err(format!(
            "{} and the log store {} must not lie one inside the other",
            dest.display(),
            store_dir.display()
        ));
    }
    let store = open_offline(options)?;
    if options.refresh {
        let report = store
            .refresh_backup(dest)
            .map_err(|e| format!("refreshing the backup in {} failed: {e}", dest.display()))?;
        println!(
            "refreshed {} segments ({} bytes, {} written; {} removed) in {}",
            report.segments,
            report.bytes,
            report.bytes_written,
            report.segments_removed,
            dest.display()
        );
    } else {
        let report = store.backup(dest).map_err(|e| format!("backup into {} failed: {e}", dest.display()))?;
        println!("backed up {} segments ({} bytes) into {}", report.segments, report.bytes, dest.display());
    }
    store.close().map_err(|e| format!("closing the store failed: {e}"))
}

/// Whether `a` and `b` lie one inside the other ([`notifeed::maintenance::overlapping`]).
fn overlapping(a: &Path, b: &Path) -> Result<bool, String> {
    notifeed::maintenance::overlapping(a, b)
        .map_err(|e| format!("cannot compare {} with {}: {e}", a.display(), b.display()))
}

/// The verification (scheduled, or only on `SIGUSR2`) and the backups `config` asks for, over
/// `log`: `None` for another engine.
fn maintenance(
    config: &Config,
    data_dir: &Path,
    log: Option<Arc<LogStore>>,
    clock: SharedClock,
) -> Result<Option<Maintenance>, String> {
    let settings = &config.maintenance;
    let Some(store) = log else { return Ok(None) };
    let backup = match &settings.backup_dir {
        Some(dir) => {
            // A backup folder inside the data directory would be copied into itself, or sit
            // among the store's files; one that holds the data directory would prune it.
            if overlapping(dir, data_dir)? {
                return Err(format!(
                    "maintenance.backup_dir {} and the data directory {} must not lie one inside the other",
                    dir.display(),
                    data_dir.display()
                ));
            }
            Some(BackupSchedule {
                dir: dir.clone(),
                every: Duration::from_secs(settings.backup_interval_seconds),
                keep: settings.backup_keep,
                refresh: settings.backup_refresh,
            })
        }
        None => None,
    };
    let verify_every =
        (settings.verify_interval_seconds > 0).then(|| Duration::from_secs(settings.verify_interval_seconds));
    Ok(Some(Maintenance {
        store,
        clock,
        verify_every,
        verify_requests: Arc::default(),
        backup,
        backup_requests: Arc::default(),
    }))
}

fn serve(options: Options) -> Result<(), String> {
    let config = load_config(&options)?;
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", options.data_dir.display()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let Opened { store, log } = open_store(&config, &options.data_dir, Arc::clone(&clock))?;
    let background = Background {
        sweep_interval: Duration::from_secs(config.sweep_interval_seconds),
        maintenance: maintenance(&config, &options.data_dir, log, Arc::clone(&clock))?,
    };
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
        // `SIGUSR1` asks for a backup now, `SIGUSR2` for a verification (and neither ends
        // the process).
        #[cfg(unix)]
        {
            let requests =
                background.maintenance.as_ref().filter(|m| m.backup.is_some()).map(|m| Arc::clone(&m.backup_requests));
            let listening = notifeed::server::backups_on_sigusr1(requests)
                .map_err(|e| format!("cannot listen for SIGUSR1: {e}"))?;
            tokio::spawn(listening);
            let requests = background.maintenance.as_ref().map(|m| Arc::clone(&m.verify_requests));
            let listening = notifeed::server::verification_on_sigusr2(requests)
                .map_err(|e| format!("cannot listen for SIGUSR2: {e}"))?;
            tokio::spawn(listening);
        }
        println!("notifeed listening on http://{bound} (engine {engine}, data {})", options.data_dir.display());
        if demo {
            println!("notifeed: the demo app is enabled (token in the README); pass --config for real apps");
        }
        notifeed::server::run(listener, handler, store, background, notifeed::server::shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}
