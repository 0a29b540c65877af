//! The server's configuration: the apps allowed to post, who is blocked, rate limits, size and
//! expiration limits, and the engine. Read from a TOML file with [`Config::from_toml`].
//!
//! Every field has a default, so an empty file (or no file) is a valid configuration. The default
//! configuration holds one demo app, [`DEMO_APP_ID`], whose bearer token is
//! [`DEMO_BEARER_TOKEN`], so the README's curl session works on a fresh machine. Replace it with
//! your own apps before exposing a server beyond localhost.
//!
//! Secrets (bearer tokens) are held as [`Secret`]: its `Debug` and `Display` print
//! `[redacted]`, so printing a config never leaks a token.
//!
//! ```toml
//! engine = "log"
//! blocked_callers = ["spammy-app"]
//!
//! [[apps]]
//! id = "contoso"
//! host_name = "graphnotifications.sample.windows.com"
//! bearer_tokens = ["a-long-random-token"]
//!
//! [rate_limits]
//! caller_per_second = 100.0
//! caller_burst = 200
//! user_per_second = 20.0
//! user_burst = 40
//!
//! [limits]
//! max_request_bytes = 65536
//! max_expiration_days = 30
//!
//! [subscriptions]
//! default_lifetime_hours = 720
//! max_lifetime_hours = 720
//!
//! [log]
//! window_seconds = 3600
//! head_cache_bytes = 33554432
//! index_snapshot = true
//! ```

use std::fmt;
use std::path::Path;

use jiff::SignedDuration;
use serde::Deserialize;

use crate::contract::Limits;
use crate::engine::log::LogConfig;

/// The id of the app in the default configuration.
pub const DEMO_APP_ID: &str = "demo";
/// The host name of the app in the default configuration.
pub const DEMO_APP_HOST_NAME: &str = "demo.notifeed.local";
/// The bearer token of the app in the default configuration. Public: it is in the README. A
/// configuration file that lists `[[apps]]` replaces the demo app entirely.
pub const DEMO_BEARER_TOKEN: &str = "notifeed-demo-token";

/// A secret string (a bearer token). Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which engine the server opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// `log`: the append-only log engine. The default.
    #[default]
    Log,
    /// `sled`: the sled engine.
    Sled,
    /// `redis`: the Redis Cluster engine (`engine::redis::RedisStore`), configured by the
    /// `[redis]` section. Needs a build with the `redis` cargo feature.
    Redis,
}

/// Where the Redis engine finds its cluster: the `[redis]` section, read when
/// `engine = "redis"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port` URLs of some of the cluster's nodes; any one reachable node is enough.
    /// Held as secrets because a URL may carry a password. Required with `engine = "redis"`.
    /// Default: none.
    pub nodes: Vec<Secret>,
    /// Prepended to every key, so several deployments share one cluster. Default: `notifeed`.
    pub key_prefix: String,
    /// `always`: every master must run `appendonly yes` and `appendfsync always` (checked at
    /// start-up); `buffered`: the servers' own `appendfsync` decides. Default: `always`.
    pub durability: DurabilityChoice,
    /// How many replicas must acknowledge each write (`WAIT`) before the server answers; 1
    /// survives a failover. Default: 0.
    pub min_replicas_acked: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            key_prefix: "notifeed".to_owned(),
            durability: DurabilityChoice::Always,
            min_replicas_acked: 0,
        }
    }
}

/// A durability level as the config file names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityChoice {
    /// `always`: [`crate::Durability::Always`].
    #[default]
    Always,
    /// `buffered`: [`crate::Durability::Buffered`].
    Buffered,
}

impl DurabilityChoice {
    /// The store's durability level.
    pub fn durability(self) -> crate::Durability {
        match self {
            DurabilityChoice::Always => crate::Durability::Always,
            DurabilityChoice::Buffered => crate::Durability::Buffered,
        }
    }
}

/// An app service allowed to call the API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app's id: what the blocked list and the logs name. Required, unique.
    pub id: String,
    /// The app's host name (`targetHostName`): the feeds it may read and write. Required, unique
    /// (compared case-insensitively).
    pub host_name: String,
    /// The bearer tokens that authenticate the app (several, so tokens can be rotated). Each
    /// token belongs to exactly one app.
    pub bearer_tokens: Vec<Secret>,
}

/// Token-bucket rate limits. A bucket holds at most `burst` requests and refills at
/// `per_second`; a request that finds its bucket empty gets 406 with `Retry-After`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Refill rate of each caller's (app's) bucket, requests per second. Bounds: > 0.
    /// Default: 100.
    pub caller_per_second: f64,
    /// Size of each caller's bucket. Bounds: at least 1. Default: 200.
    pub caller_burst: u32,
    /// Refill rate of each user's bucket (across apps), requests per second. Bounds: > 0.
    /// Default: 20.
    pub user_per_second: f64,
    /// Size of each user's bucket. Bounds: at least 1. Default: 40.
    pub user_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { caller_per_second: 100.0, caller_burst: 200, user_per_second: 20.0, user_burst: 40 }
    }
}

/// Size and expiration limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest request body, in bytes, as sent and again after gzip/deflate decoding (a
    /// larger one gets 413). Bounds: 1 KiB..=64 MiB. Default: 64 KiB.
    pub max_request_bytes: usize,
    /// The largest notification content (see [`Limits::max_notification_bytes`]).
    /// Default: 16 KiB.
    pub max_notification_bytes: usize,
    /// The largest `payload.rawContent`, in bytes. Default: 8 KiB.
    pub max_raw_content_bytes: usize,
    /// How many days ahead `expirationDateTime` may lie; also the expiration of a notification
    /// posted without one. Bounds: 1..=3650. Default: 30.
    pub max_expiration_days: u32,
    /// The most notifications a feed keeps; the oldest is evicted beyond it. Default: 1,000.
    pub feed_capacity: usize,
    /// The longest `Prefer: wait=N` long poll on delta, in seconds. Default: 60.
    pub max_wait_seconds: u32,
    /// How many delta long polls may wait at once, across all callers. Each holds a thread of
    /// the server's blocking pool, so without a cap a few hundred polls would starve every
    /// other request. A poll beyond the cap is answered at once, without `Preference-Applied`.
    /// Default: 128.
    pub max_waiting_polls: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_request_bytes: 64 * 1024,
            max_notification_bytes: limits.max_notification_bytes,
            max_raw_content_bytes: limits.max_raw_content_bytes,
            max_expiration_days: 30,
            feed_capacity: 1_000,
            max_wait_seconds: 60,
            max_waiting_polls: 128,
        }
    }
}

/// Lifetimes of UNS subscriptions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionLimits {
    /// The lifetime of a subscription created without `expirationDateTime`, in hours.
    /// Default: 720 (30 days).
    pub default_lifetime_hours: u32,
    /// The longest lifetime a subscription may ask for, in hours. Bounds: at most 87,600 (ten
    /// years). Default: 720.
    pub max_lifetime_hours: u32,
    /// How many live subscriptions one app may hold; creating one more gets 403 until one ends
    /// or expires. Bounds the subscription file, which is rewritten whole on every change.
    /// Default: 10,000.
    pub max_per_app: usize,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self { default_lifetime_hours: 720, max_lifetime_hours: 720, max_per_app: 10_000 }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The engine to open. Default: `log`.
    pub engine: EngineChoice,
    /// The apps allowed to call. Default: the demo app ([`DEMO_APP_ID`]).
    pub apps: Vec<AppConfig>,
    /// App ids that are refused with 403 even with a valid token. Default: none.
    pub blocked_callers: Vec<String>,
    /// Rate limits. Default: [`RateLimits::default`].
    pub rate_limits: RateLimits,
    /// Size and expiration limits. Default: [`LimitsConfig::default`].
    pub limits: LimitsConfig,
    /// Subscription lifetimes. Default: [`SubscriptionLimits::default`].
    pub subscriptions: SubscriptionLimits,
    /// How often the background sweeper reclaims expired notifications, in seconds.
    /// Default: 60.
    pub sweep_interval_seconds: u64,
    /// On SIGINT or SIGTERM, how long the server waits for requests in flight before it drops
    /// them (unanswered, so unacknowledged) and syncs the store, in seconds: a client that
    /// stalls mid-body cannot hold the shutdown forever. Default: 30.
    pub shutdown_grace_seconds: u64,
    /// The Redis cluster, when `engine = "redis"`. Default: [`RedisSettings::default`].
    pub redis: RedisSettings,
    /// Scheduled verification and backups (log engine only). Default: none.
    pub maintenance: MaintenanceConfig,
    /// How the log engine lays out, caches and commits its data (log engine only). Default:
    /// [`LogSettings::default`], which is [`LogConfig::default`]'s.
    pub log: LogSettings,
}

/// The log engine's tuning, as the server's `[log]` section sets it: each key is the
/// [`LogConfig`] field of the same meaning (see there for what it costs and buys), and each
/// default is [`LogConfig::default`]'s.
///
/// Durability is not among them: the server always opens the store with
/// [`crate::Durability::Always`], because its 201 promises the notification is on disk.
/// Out-of-bounds values are refused by [`Config::validate`] (naming the key), not clamped as
/// [`LogStore::open`](crate::engine::log::LogStore::open) clamps them. A store opened with a
/// different `window_seconds` from the one it was written with keeps every record: old
/// segments keep their windows, and new records go to windows of the new width.
///
/// ```toml
/// [log]
/// window_seconds = 3600              # width of an expiration window (one segment set each)
/// max_segment_bytes = 67108864       # a window's segment rolls past this
/// max_open_files = 128               # segment descriptors kept open (an LRU)
/// journal_bytes = 1048576            # the commit journal; 0: none
/// volume_sync = true                 # one syncfs for a batch over several files (ext4)
/// index_snapshot = false             # write INDEX at a clean close for a faster next open
/// head_cache_bytes = 33554432        # each feed's newest page kept decoded; 0: off
/// compaction_dead_fraction = 0.5     # compact a sealed segment once this much is dead
/// compaction_bytes_per_sweep = 67108864 # 0: no compaction
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// [`LogConfig::window`], in seconds: 1 to 31,536,000 (a year). Default: 3,600.
    pub window_seconds: u64,
    /// [`LogConfig::max_segment_bytes`]: 4,096 to 4,294,967,295. Default: 64 MiB.
    pub max_segment_bytes: u64,
    /// [`LogConfig::max_open_files`]: at least 2. Default: 128.
    pub max_open_files: usize,
    /// [`LogConfig::journal_bytes`]: 0 (no journal), or 8 KiB to 1 GiB. Default: 1 MiB.
    pub journal_bytes: u64,
    /// [`LogConfig::volume_sync`]. Default: true.
    pub volume_sync: bool,
    /// [`LogConfig::index_snapshot`]. Default: false.
    pub index_snapshot: bool,
    /// [`LogConfig::head_cache_bytes`]; 0 turns the cache off. Default: 32 MiB.
    pub head_cache_bytes: usize,
    /// [`LogConfig::compaction_dead_fraction`]: 0.05 to 1.0. Default: 0.5.
    pub compaction_dead_fraction: f64,
    /// [`LogConfig::compaction_bytes_per_sweep`]; 0 turns compaction off. Default: 64 MiB.
    pub compaction_bytes_per_sweep: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        let d = LogConfig::default();
        Self {
            window_seconds: d.window.as_secs().unsigned_abs(),
            max_segment_bytes: d.max_segment_bytes,
            max_open_files: d.max_open_files,
            journal_bytes: d.journal_bytes,
            volume_sync: d.volume_sync,
            index_snapshot: d.index_snapshot,
            head_cache_bytes: d.head_cache_bytes,
            compaction_dead_fraction: d.compaction_dead_fraction,
            compaction_bytes_per_sweep: d.compaction_bytes_per_sweep,
        }
    }
}

/// The widest `[log] window_seconds` the server accepts: a year.
const MAX_WINDOW_SECONDS: u64 = 365 * 24 * 3600;
/// The commit journal's bounds ([`LogConfig::journal_bytes`]), when there is one.
const JOURNAL_BYTES: std::ops::RangeInclusive<u64> = (8 << 10)..=(1 << 30);

/// Scheduled verification and backups of the log engine while the server runs (see
/// [`crate::maintenance`]). Both are off by default.
///
/// ```toml
/// [maintenance]
/// verify_interval_seconds = 86400
/// backup_dir = "/var/backups/notifeed"
/// backup_interval_seconds = 3600
/// backup_keep = 24
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// How often to read every record back and check it (`LogStore::verify`), in seconds;
    /// 0: only when the server is sent `SIGUSR2`. A failure is logged on stderr
    /// (`VERIFY FAILED`). Default: 0.
    pub verify_interval_seconds: u64,
    /// The folder that receives a backup every `backup_interval_seconds`, each in a new
    /// directory `notifeed-backup-<UTC instant>` that `LogStore::open` opens; relative to the
    /// working directory. It must lie outside the data directory. Default: none (no backups).
    pub backup_dir: Option<std::path::PathBuf>,
    /// How often to back up, in seconds, at least 1. Default: 86,400 (daily).
    pub backup_interval_seconds: u64,
    /// How many complete backups to keep, at least 1: once a new one is complete, older ones
    /// beyond this count are removed, and so are copies an error or a crash cut short.
    /// Default: 7.
    pub backup_keep: usize,
    /// Once `backup_keep` complete backups exist, refresh the oldest and rename it for the new
    /// instant instead of copying the store whole (`LogStore::refresh_backup`: only what the
    /// store wrote since that copy is written). Needs `backup_keep` of at least 2. Default:
    /// false.
    pub backup_refresh: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            verify_interval_seconds: 0,
            backup_dir: None,
            backup_interval_seconds: 86_400,
            backup_keep: 7,
            backup_refresh: false,
        }
    }
}

impl MaintenanceConfig {
    /// Whether anything is scheduled.
    pub fn any(&self) -> bool {
        self.verify_interval_seconds > 0 || self.backup_dir.is_some()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            engine: EngineChoice::default(),
            apps: vec![AppConfig {
                id: DEMO_APP_ID.to_owned(),
                host_name: DEMO_APP_HOST_NAME.to_owned(),
                bearer_tokens: vec![Secret::new(DEMO_BEARER_TOKEN)],
            }],
            blocked_callers: Vec::new(),
            rate_limits: RateLimits::default(),
            limits: LimitsConfig::default(),
            subscriptions: SubscriptionLimits::default(),
            sweep_interval_seconds: 60,
            shutdown_grace_seconds: 30,
            redis: RedisSettings::default(),
            maintenance: MaintenanceConfig::default(),
            log: LogSettings::default(),
        }
    }
}

/// The error for a `field` whose value is wrong, saying what is wrong.
fn bad(field: &str, problem: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { field: field.into(), problem: problem.into() })
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed or names an unknown field. Only the parser's message and the line
    /// are kept, never the text of the line, which may hold a token.
    #[error("invalid config at line {line}: {message}")]
    Parse {
        /// The line (1-based) where the problem starts; 0 when unknown.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A value is out of bounds or inconsistent.
    #[error("invalid config: {field} {problem}")]
    Invalid {
        /// The field, such as `apps[1].host_name`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for malformed TOML or unknown fields, [`ConfigError::Invalid`] for
    /// a value out of bounds (the error names the field).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Parse {
            line: e.span().map_or(0, |span| {
                text.as_bytes()[..span.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
            }),
            message: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] naming the path, then as [`Config::from_toml`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// Checks bounds and uniqueness.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut tokens = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        let mut hosts = std::collections::HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if app.id.is_empty() || !ids.insert(app.id.clone()) {
                return bad(&format!("apps[{i}].id"), "must be non-empty and unique");
            }
            if app.host_name.is_empty() || !hosts.insert(app.host_name.to_ascii_lowercase()) {
                return bad(&format!("apps[{i}].host_name"), "must be non-empty and unique");
            }
            for token in &app.bearer_tokens {
                if token.expose().is_empty() || !tokens.insert(token.expose().to_owned()) {
                    return bad(&format!("apps[{i}].bearer_tokens"), "must be non-empty and unique across apps");
                }
            }
        }
        if self.engine == EngineChoice::Redis && self.redis.nodes.is_empty() {
            return bad("redis.nodes", "must list at least one node when engine = \"redis\"");
        }
        let r = &self.rate_limits;
        if !(r.caller_per_second > 0.0 && r.caller_per_second.is_finite()) || r.caller_burst == 0 {
            return bad("rate_limits.caller_*", "must be a positive rate and a burst of at least 1");
        }
        if !(r.user_per_second > 0.0 && r.user_per_second.is_finite()) || r.user_burst == 0 {
            return bad("rate_limits.user_*", "must be a positive rate and a burst of at least 1");
        }
        let l = &self.limits;
        if !(1024..=64 * 1024 * 1024).contains(&l.max_request_bytes) {
            return bad("limits.max_request_bytes", "must be between 1024 and 67108864");
        }
        if l.max_notification_bytes < 1024 {
            return bad("limits.max_notification_bytes", "must be at least 1024");
        }
        if !(1..=3650).contains(&l.max_expiration_days) {
            return bad("limits.max_expiration_days", "must be between 1 and 3650");
        }
        if l.feed_capacity == 0 {
            return bad("limits.feed_capacity", "must be at least 1");
        }
        if self.subscriptions.default_lifetime_hours == 0
            || self.subscriptions.default_lifetime_hours > self.subscriptions.max_lifetime_hours
        {
            return bad("subscriptions.default_lifetime_hours", "must be between 1 and max_lifetime_hours");
        }
        if self.subscriptions.max_lifetime_hours > 87_600 {
            return bad("subscriptions.max_lifetime_hours", "must be at most 87600 (ten years)");
        }
        if self.sweep_interval_seconds == 0 {
            return bad("sweep_interval_seconds", "must be at least 1");
        }
        let m = &self.maintenance;
        if m.any() && self.engine != EngineChoice::Log {
            return bad("maintenance", "verification and backups need engine = \"log\"");
        }
        if m.backup_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return bad("maintenance.backup_dir", "must not be empty");
        }
        if m.backup_interval_seconds == 0 {
            return bad("maintenance.backup_interval_seconds", "must be at least 1");
        }
        if m.backup_keep == 0 {
            return bad("maintenance.backup_keep", "must be at least 1");
        }
        if m.backup_refresh && m.backup_keep < 2 {
            return bad("maintenance.backup_refresh", "needs backup_keep of at least 2 (one copy stays usable)");
        }
        self.validate_log()
    }

    fn validate_log(&self) -> Result<(), ConfigError> {
        let l = &self.log;
        if l != &LogSettings::default() && self.engine != EngineChoice::Log {
            return bad("log", "tunes the log engine and needs engine = \"log\"");
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&l.window_seconds) {
            return bad("log.window_seconds", "must be between 1 and 31536000 (a year)");
        }
        if !(4096..=u64::from(u32::MAX)).contains(&l.max_segment_bytes) {
            return bad("log.max_segment_bytes", "must be between 4096 and 4294967295");
        }
        if l.max_open_files < 2 {
            return bad("log.max_open_files", "must be at least 2");
        }
        if l.journal_bytes != 0 && !JOURNAL_BYTES.contains(&l.journal_bytes) {
            return bad("log.journal_bytes", "must be 0 (no journal) or between 8192 and 1073741824");
        }
        if !(0.05..=1.0).contains(&l.compaction_dead_fraction) {
            return bad("log.compaction_dead_fraction", "must be between 0.05 and 1.0");
        }
        Ok(())
    }

    /// The log engine's configuration these settings give, with [`Durability::Always`]
    /// (see [`LogSettings`]) and [`Config::store_options`].
    ///
    /// [`Durability::Always`]: crate::Durability::Always
    pub fn log_config(&self) -> LogConfig {
        let l = &self.log;
        LogConfig {
            options: self.store_options(),
            durability: crate::Durability::Always,
            window: SignedDuration::from_secs(i64::try_from(l.window_seconds).unwrap_or(i64::MAX)),
            max_segment_bytes: l.max_segment_bytes,
            max_open_files: l.max_open_files,
            journal_bytes: l.journal_bytes,
            volume_sync: l.volume_sync,
            index_snapshot: l.index_snapshot,
            head_cache_bytes: l.head_cache_bytes,
            compaction_dead_fraction: l.compaction_dead_fraction,
            compaction_bytes_per_sweep: l.compaction_bytes_per_sweep,
            ..LogConfig::default()
        }
    }

    /// The contract limits these settings give.
    pub fn contract_limits(&self) -> Limits {
        Limits {
            max_notification_bytes: self.limits.max_notification_bytes,
            max_raw_content_bytes: self.limits.max_raw_content_bytes,
            max_expiration: SignedDuration::from_hours(i64::from(self.limits.max_expiration_days) * 24),
            ..Limits::default()
        }
    }

    /// The store options these settings give (limits and feed capacity).
    pub fn store_options(&self) -> crate::StoreOptions {
        crate::StoreOptions {
            limits: self.contract_limits(),
            feed_capacity: self.limits.feed_capacity,
            ..crate::StoreOptions::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_demo_app() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.apps.len(), 1);
        assert_eq!(config.apps[0].bearer_tokens[0].expose(), DEMO_BEARER_TOKEN);
        assert_eq!(config.engine, EngineChoice::Log);
    }

    #[test]
    fn debug_print_never_shows_a_token() {
        let config = Config::from_toml(
            "[[apps]]\nid = \"a\"\nhost_name = \"a.example\"\nbearer_tokens = [\"super-secret-value\"]\n",
        )
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("super-secret-value"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn unknown_field_is_rejected() {
        assert!(matches!(Config::from_toml("engin = \"log\""), Err(ConfigError::Parse { line: 1, .. })));
    }

    #[test]
    fn parse_errors_never_quote_the_line_with_a_token() {
        let text = "[[apps]]\nid = \"a\"\nhost_name = \"a\"\nbearer_tokens = [\"leaky-secret\" \"x\"]\n";
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(!err.contains("leaky-secret"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn duplicate_token_across_apps_is_rejected() {
        let text = "[[apps]]\nid = \"a\"\nhost_name = \"a\"\nbearer_tokens = [\"t\"]\n\
                    [[apps]]\nid = \"b\"\nhost_name = \"b\"\nbearer_tokens = [\"t\"]\n";
        let err = Config::from_toml(text).unwrap_err();
        assert!(err.to_string().contains("apps[1].bearer_tokens"), "{err}");
    }

    #[test]
    fn documented_examples_parse() {
        let docs = include_str!("../docs/http.md");
        let block = docs.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
        let config = Config::from_toml(block).unwrap();
        assert_eq!(config.apps[0].id, "contoso");
        assert_eq!(config.blocked_callers, ["spammy-app"]);
        assert_eq!(config.maintenance.backup_keep, 24);
        assert_eq!(config.maintenance.backup_dir, Some("/var/backups/notifeed".into()));
        assert!(config.maintenance.backup_refresh);
        assert!(config.log.index_snapshot);
        assert_eq!(config.log_config().window, SignedDuration::from_hours(1));
        let module_doc: String = include_str!("config.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let block = module_doc.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
        let config = Config::from_toml(block).unwrap();
        assert_eq!(config.rate_limits.user_burst, 40);
        assert!(config.log.index_snapshot);
        let settings_doc: String = include_str!("config.rs")
            .split("pub struct LogSettings")
            .next()
            .unwrap()
            .rsplit("```toml\n")
            .next()
            .unwrap()
            .lines()
            .take_while(|l| !l.contains("```"))
            .map(|l| format!("{}\n", l.trim_start().trim_start_matches("///").trim_start()))
            .collect();
        let documented = Config::from_toml(&settings_doc).unwrap();
        assert_eq!(documented.log, LogSettings::default(), "LogSettings' example shows the defaults");
    }

    #[test]
    fn log_section_defaults_to_the_engine_defaults_and_reaches_its_config() {
        let config = Config::default().log_config();
        let engine = LogConfig::default();
        assert_eq!(config.durability, crate::Durability::Always);
        assert_eq!(config.window, engine.window);
        assert_eq!(
            (config.max_segment_bytes, config.max_open_files, config.journal_bytes, config.head_cache_bytes),
            (engine.max_segment_bytes, engine.max_open_files, engine.journal_bytes, engine.head_cache_bytes)
        );
        assert_eq!((config.volume_sync, config.index_snapshot), (engine.volume_sync, engine.index_snapshot));
        assert_eq!(config.compaction_dead_fraction, engine.compaction_dead_fraction);
        assert_eq!(config.compaction_bytes_per_sweep, engine.compaction_bytes_per_sweep);

        let text = "[limits]\nfeed_capacity = 77\n[log]\nwindow_seconds = 600\nmax_segment_bytes = 1048576\n\
                    max_open_files = 16\njournal_bytes = 0\nvolume_sync = false\nindex_snapshot = true\n\
                    head_cache_bytes = 0\ncompaction_dead_fraction = 0.25\ncompaction_bytes_per_sweep = 0\n";
        let config = Config::from_toml(text).unwrap().log_config();
        assert_eq!(config.window, SignedDuration::from_mins(10));
        assert_eq!((config.max_segment_bytes, config.max_open_files, config.journal_bytes), (1 << 20, 16, 0));
        assert!(!config.volume_sync && config.index_snapshot);
        assert_eq!((config.head_cache_bytes, config.compaction_bytes_per_sweep), (0, 0));
        assert_eq!(config.compaction_dead_fraction, 0.25);
        assert_eq!(config.options.feed_capacity, 77);
    }

    #[test]
    fn log_section_out_of_bounds_is_refused_naming_the_key() {
        for (text, field) in [
            ("[log]\nwindow_seconds = 0\n", "log.window_seconds"),
            ("[log]\nwindow_seconds = 31536001\n", "log.window_seconds"),
            ("[log]\nmax_segment_bytes = 4095\n", "log.max_segment_bytes"),
            ("[log]\nmax_segment_bytes = 4294967296\n", "log.max_segment_bytes"),
            ("[log]\nmax_open_files = 1\n", "log.max_open_files"),
            ("[log]\njournal_bytes = 8191\n", "log.journal_bytes"),
            ("[log]\njournal_bytes = 1073741825\n", "log.journal_bytes"),
            ("[log]\ncompaction_dead_fraction = 0.01\n", "log.compaction_dead_fraction"),
            ("[log]\ncompaction_dead_fraction = nan\n", "log.compaction_dead_fraction"),
            ("engine = \"sled\"\n[log]\nindex_snapshot = true\n", "log"),
        ] {
            match Config::from_toml(text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // The bounds themselves are accepted, and so is a sled config that leaves `[log]` alone.
        let edges = "[log]\nwindow_seconds = 31536000\nmax_segment_bytes = 4096\nmax_open_files = 2\n\
                     journal_bytes = 8192\ncompaction_dead_fraction = 1.0\n";
        assert!(Config::from_toml(edges).is_ok());
        assert!(Config::from_toml("engine = \"sled\"\n[log]\nwindow_seconds = 3600\n").is_ok());
        assert!(matches!(Config::from_toml("[log]\nwindow = 5\n"), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn redis_engine_needs_nodes_and_hides_their_urls() {
        let text = "engine = \"redis\"\n[redis]\nnodes = [\"redis://:hunter2@10.0.0.1:7000\"]\nmin_replicas_acked = 1\ndurability = \"buffered\"\n";
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.engine, EngineChoice::Redis);
        assert_eq!(config.redis.min_replicas_acked, 1);
        assert_eq!(config.redis.durability.durability(), crate::Durability::Buffered);
        assert_eq!(config.redis.nodes[0].expose(), "redis://:hunter2@10.0.0.1:7000");
        assert!(!format!("{config:?}").contains("hunter2"));
        let missing = Config::from_toml("engine = \"redis\"\n").unwrap_err().to_string();
        assert!(missing.contains("redis.nodes"), "{missing}");
    }

    #[test]
    fn sled_engine_and_limits_parse() {
        let config = Config::from_toml("engine = \"sled\"\n[limits]\nmax_expiration_days = 2\n").unwrap();
        assert_eq!(config.engine, EngineChoice::Sled);
        assert_eq!(config.contract_limits().max_expiration, SignedDuration::from_hours(48));
    }

    #[test]
    fn maintenance_is_off_by_default_and_needs_the_log_engine_and_sane_values() {
        assert!(!Config::default().maintenance.any());
        let config = Config::from_toml("[maintenance]\nverify_interval_seconds = 60\n").unwrap();
        assert!(config.maintenance.any() && config.maintenance.backup_dir.is_none());
        for (text, field) in [
            ("engine = \"sled\"\n[maintenance]\nbackup_dir = \"b\"\n", "maintenance"),
            ("engine = \"sled\"\n[maintenance]\nverify_interval_seconds = 1\n", "maintenance"),
            ("[maintenance]\nbackup_dir = \"\"\n", "maintenance.backup_dir"),
            ("[maintenance]\nbackup_dir = \"b\"\nbackup_interval_seconds = 0\n", "maintenance.backup_interval_seconds"),
            ("[maintenance]\nbackup_dir = \"b\"\nbackup_keep = 0\n", "maintenance.backup_keep"),
            (
                "[maintenance]\nbackup_dir = \"b\"\nbackup_keep = 1\nbackup_refresh = true\n",
                "maintenance.backup_refresh",
            ),
        ] {
            match Config::from_toml(text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // Off, the engine does not matter.
        assert!(Config::from_toml("engine = \"sled\"\n[maintenance]\nbackup_keep = 3\n").is_ok());
    }
}
