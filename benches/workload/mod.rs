//! The one workload every engine and peer runs, and the [`Peer`] trait the benches drive.
//!
//! # The records
//! Notification `i` is generated from a fixed seed and `i` alone (a ChaCha8 stream per record,
//! from `rand_chacha`), so every engine sees byte-identical records in the same order, in any
//! process, and a bench can make record `i` without making the ones before it.
//!
//! * 1,000 feeds (`user-0000/app.example.com` ...), chosen uniformly per record;
//! * 10 groups (`group-0` ... `group-9`), chosen uniformly per record;
//! * a unique `appNotificationId` per record;
//! * a visual title, body and raw content of random lengths, so the encoded record
//!   ([`notifeed::codec::encode_notification`]) is about 400 bytes;
//! * half the records (a fair coin) expire within the first hour after [`Workload::start`];
//!   the other half about 29 days after it. A clock moved to [`Workload::sweep_time`] therefore
//!   sees half the data expired.
//!
//! # Scale
//! `NOTIFEED_BENCH_SCALE` (a float, default 1) multiplies every record count and every
//! measurement time, so `NOTIFEED_BENCH_SCALE=0.01 cargo bench` is a smoke run.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use notifeed::clock::timestamp_to_nanos;
use notifeed::{FeedKey, NewNotification, Notification, NotificationId};
use rand::distr::Alphanumeric;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed of every run.
pub const SEED: u64 = 0x6e6f_7469_6665_6564; // "notifeed"
/// How many feeds the records spread over.
pub const FEEDS: u32 = 1_000;
/// How many groups the records spread over.
pub const GROUPS: u32 = 10;
/// The app every feed belongs to.
pub const HOST: &str = "app.example.com";

/// Any error of a bench; benches stop on the first one.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a bench operation.
pub type BenchResult<T> = Result<T, BenchError>;

/// Unwraps a bench result, naming what failed. Benches have no caller to return an error to.
pub fn must<T>(result: BenchResult<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

/// One generated notification, in every form an engine needs.
#[derive(Clone, Debug)]
pub struct Record {
    /// The record's number in the workload; also its store-global sequence for the peers.
    pub seq: u64,
    /// Which feed, `0..FEEDS`.
    pub feed: u32,
    /// The feed's key.
    pub feed_key: FeedKey,
    /// What a client posts: the notifeed engines append this.
    pub new: NewNotification,
    /// The `appNotificationId`.
    pub app_id: String,
    /// The expiration, Unix nanoseconds.
    pub expiration_nanos: i64,
    /// The stored notification, encoded by `notifeed::codec` (what the peers store).
    pub body: Vec<u8>,
}

/// The workload: a seed and a start time.
#[derive(Clone, Debug)]
pub struct Workload {
    seed: u64,
    start: Timestamp,
}

impl Default for Workload {
    fn default() -> Self {
        Self { seed: SEED, start: Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH) }
    }
}

impl Workload {
    /// The clock's time while records are written: 2026-01-01T00:00:00Z.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// A time at which exactly the short-lived half of the records has expired.
    pub fn sweep_time(&self) -> Timestamp {
        self.start + SignedDuration::from_hours(1)
    }

    /// The key of feed `feed` (`feed` is taken modulo [`FEEDS`]).
    pub fn feed_key(feed: u32) -> &'static FeedKey {
        static KEYS: OnceLock<Vec<FeedKey>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            (0..FEEDS)
                .map(|f| {
                    FeedKey::for_user_app(&format!("user-{f:04}"), HOST).unwrap_or_else(|e| panic!("feed key: {e}"))
                })
                .collect()
        });
        &keys[(feed % FEEDS) as usize]
    }

    /// Record `seq`: depends only on the seed and `seq`.
    pub fn record(&self, seq: u64) -> Record {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(seq);
        let feed = rng.random_range(0..FEEDS);
        let group = rng.random_range(0..GROUPS);
        let app_id = format!("order-{seq:08}-{}", text(&mut rng, 8..9));
        let title = text(&mut rng, 30..50);
        let body = text(&mut rng, 120..180);
        let raw = text(&mut rng, 90..130);
        let expires_in = if rng.random_bool(0.5) {
            SignedDuration::from_secs(rng.random_range(600..3_000))
        } else {
            SignedDuration::from_hours(29 * 24) + SignedDuration::from_secs(rng.random_range(0..86_400))
        };
        let expiration = self.start + expires_in;
        let mut new = NewNotification::visual(HOST, &app_id, &title)
            .with_group(&format!("group-{group}"))
            .expiring_at(expiration);
        if let Some(visual) = new.payload.visual_content.as_mut() {
            visual.body = Some(body);
        }
        new.payload.raw_content = Some(raw);
        let id = NotificationId::from_bytes(rng.random());
        let stored = Notification::from_new(id, new.clone(), expiration, self.start);
        let encoded =
            notifeed::codec::encode_notification(&stored).unwrap_or_else(|e| panic!("encoding record {seq}: {e}"));
        Record {
            seq,
            feed,
            feed_key: Self::feed_key(feed).clone(),
            new,
            app_id,
            expiration_nanos: timestamp_to_nanos(expiration),
            body: encoded,
        }
    }

    /// Records `range`, in order.
    pub fn records(&self, range: std::ops::Range<u64>) -> Vec<Record> {
        range.map(|seq| self.record(seq)).collect()
    }
}

/// Random alphanumeric text of a random length in `len`.
fn text(rng: &mut ChaCha8Rng, len: std::ops::Range<usize>) -> String {
    let len = rng.random_range(len);
    (0..len).map(|_| char::from(rng.sample(Alphanumeric))).collect()
}

/// The scale of this run, from `NOTIFEED_BENCH_SCALE` (default 1).
pub fn scale() -> f64 {
    std::env::var("NOTIFEED_BENCH_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(1.0)
}

/// `count` scaled, at least 100.
pub fn scaled(count: u64) -> u64 {
    ((count as f64 * scale()) as u64).max(100)
}

/// `duration` scaled, at least 50 ms.
pub fn scaled_time(duration: Duration) -> Duration {
    duration.mul_f64(scale().min(1.0)).max(Duration::from_millis(50))
}

/// How a store is asked to make writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each commit reaches the OS page cache (or the engine's own buffer); nothing is synced
    /// per operation.
    Buffered,
    /// Each commit is fdatasync'd (or the engine's equivalent) before it returns.
    Durable,
}

/// What a sweep did, as far as the engine can tell.
#[derive(Clone, Debug, Default)]
pub struct SweepOutcome {
    /// Notifications removed.
    pub removed: u64,
    /// Bytes of live data the engine says it copied, when it says.
    pub bytes_rewritten: Option<u64>,
}

/// The operations the benches time, as a server would issue them: one commit per operation.
pub trait Peer: Send + Sync {
    /// Appends one record in its own commit (durable per the [`Mode`] the peer was opened with).
    fn append(&self, record: Record) -> BenchResult<()>;

    /// Loads many records as fast as the engine allows (batched commits), then syncs. Used to
    /// prepare data for read, sweep and open benches; never timed as an append.
    fn load(&self, records: &[Record]) -> BenchResult<()> {
        for record in records {
            self.append(record.clone())?;
        }
        self.sync()
    }

    /// The newest `limit` live notifications of `feed` at `now_nanos`, decoded.
    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<Notification>>;

    /// The live notification of `feed` with this `appNotificationId` at `now_nanos`, decoded.
    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<Notification>>;

    /// Removes every record expired at `now_nanos`, in one commit, and syncs.
    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome>;

    /// Makes every commit so far durable.
    fn sync(&self) -> BenchResult<()>;

    /// The bytes per notification the engine's own in-memory index holds, when it counts them.
    fn index_bytes_per_notification(&self) -> Option<f64> {
        None
    }

    /// Records per group commit since the engine opened, when it counts them.
    fn mean_commit_batch(&self) -> Option<f64> {
        None
    }
}

/// Opens a peer on a directory (created empty or holding an earlier peer's data).
pub type Opener = fn(&Path, Mode) -> BenchResult<Box<dyn Peer>>;

/// A peer by name.
#[derive(Clone, Copy)]
pub struct PeerSpec {
    /// The name printed in results.
    pub name: &'static str,
    /// How to open it.
    pub open: Opener,
}

/// The bytes the files under `dir` take on disk: `(apparent length, allocated blocks)`.
pub fn disk_bytes(dir: &Path) -> BenchResult<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = disk_bytes(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}

/// Allocated bytes of the files under `dir` that are caches an engine rebuilds if they are
/// missing: the log engine's index snapshot (`INDEX`, written at a clean close and removed by
/// the next open).
pub fn cache_bytes(dir: &Path) -> BenchResult<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            allocated += cache_bytes(&entry.path())?;
        } else if entry.file_name() == "INDEX" {
            allocated += meta.blocks() * 512;
        }
    }
    Ok(allocated)
}

/// Key helpers shared by the key-value peers (sled, redb, fjall).
pub mod keys {
    /// `feed` as a fixed-width, order-preserving key prefix, NUL-terminated: the feed key text.
    pub fn feed_prefix(feed: u32) -> Vec<u8> {
        let mut key = super::Workload::feed_key(feed).as_str().as_bytes().to_vec();
        key.push(0);
        key
    }

    /// The first key after every key starting with [`feed_prefix`]`(feed)`.
    pub fn feed_end(feed: u32) -> Vec<u8> {
        let mut key = feed_prefix(feed);
        if let Some(last) = key.last_mut() {
            *last = 1;
        }
        key
    }

    /// Records table: `feed NUL seq(u64 BE)`.
    pub fn record(feed: u32, seq: u64) -> Vec<u8> {
        let mut key = feed_prefix(feed);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// App id index: `feed NUL app id`.
    pub fn app(feed: u32, app_id: &str) -> Vec<u8> {
        let mut key = feed_prefix(feed);
        key.extend_from_slice(app_id.as_bytes());
        key
    }

    /// Expiry index: `expiration (order-preserving u64 BE) seq(u64 BE)`; the value names the feed
    /// and app id, so a sweep can remove the other entries without reading the record.
    pub fn expiry(expiration_nanos: i64, seq: u64) -> Vec<u8> {
        let mut key = ordered(expiration_nanos).to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    /// The first expiry key after every expiration at or before `now_nanos`.
    pub fn expiry_end(now_nanos: i64) -> Vec<u8> {
        (ordered(now_nanos) + 1).to_be_bytes().to_vec()
    }

    /// The value of an expiry entry: `feed(u32 BE) app id`.
    pub fn expiry_value(feed: u32, app_id: &str) -> Vec<u8> {
        let mut value = feed.to_be_bytes().to_vec();
        value.extend_from_slice(app_id.as_bytes());
        value
    }

    /// The inverse of [`expiry_value`].
    pub fn parse_expiry_value(value: &[u8]) -> Option<(u32, &str)> {
        let (feed, app) = value.split_at_checked(4)?;
        Some((u32::from_be_bytes(feed.try_into().ok()?), std::str::from_utf8(app).ok()?))
    }

    /// The sequence number at the end of a records key.
    pub fn seq_of(key: &[u8]) -> Option<u64> {
        let tail = key.get(key.len().checked_sub(8)?..)?;
        Some(u64::from_be_bytes(tail.try_into().ok()?))
    }

    fn ordered(nanos: i64) -> u64 {
        (nanos as u64) ^ (1 << 63)
    }
}

/// Decodes a stored body, or `None` when it has expired at `now_nanos`.
pub fn decode_live(body: &[u8], now_nanos: i64) -> BenchResult<Option<Notification>> {
    let n = notifeed::codec::decode_notification(body)?;
    Ok((timestamp_to_nanos(n.expiration) > now_nanos).then_some(n))
}
