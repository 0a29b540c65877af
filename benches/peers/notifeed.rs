//! Any notifeed engine, as a [`Peer`]: the adapter takes a `Box<dyn FeedStore>`.
//!
//! The store reads time from a [`ManualClock`] standing at the workload's start; reads and
//! sweeps at a later `now` move it there first. Feed capacity is raised to 10,000 so that no
//! engine evicts at 1M records (the peers do not evict).

use std::path::Path;
use std::sync::Arc;

use notifeed::clock::nanos_to_timestamp;
use notifeed::{Clock, Durability, FeedStore, ListQuery, ManualClock, SharedClock, StoreError, StoreOptions};

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, Workload};

/// How to open one notifeed engine: `S` is the engine's type, or `dyn FeedStore` for any engine.
pub type EngineOpener<S> = fn(&Path, Durability, SharedClock, StoreOptions) -> Result<Box<S>, StoreError>;

/// What an engine counts of itself, when it does: the report and the durable benches show it.
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnCounts {
    /// Bytes its in-memory index holds per notification.
    pub index_bytes: Option<f64>,
    /// Records per group commit since it opened.
    pub mean_batch: Option<f64>,
}

/// Reads an engine's [`OwnCounts`].
pub type CountsOf<S> = fn(&S) -> OwnCounts;

/// A notifeed engine under the bench workload: any `Box<dyn FeedStore>`, or a concrete engine
/// whose own index accounting the report shows.
pub struct Notifeed<S: FeedStore + ?Sized> {
    store: Box<S>,
    clock: ManualClock,
    counts: CountsOf<S>,
}

/// Opens any notifeed engine with `open` on `dir`.
pub fn adapt(dir: &Path, mode: Mode, open: EngineOpener<dyn FeedStore>) -> BenchResult<Box<dyn Peer>> {
    adapt_with_counts(dir, mode, open, |_| OwnCounts::default())
}

/// Opens a notifeed engine with `open` on `dir`; `counts` reads what it counts of itself.
pub fn adapt_with_counts<S: FeedStore + ?Sized + 'static>(
    dir: &Path,
    mode: Mode,
    open: EngineOpener<S>,
    counts: CountsOf<S>,
) -> BenchResult<Box<dyn Peer>> {
    let clock = ManualClock::new(Workload::default().start());
    let durability = match mode {
        Mode::Buffered => Durability::Buffered,
        Mode::Durable => Durability::Always,
    };
    let options = StoreOptions { feed_capacity: 10_000, ..StoreOptions::default() };
    let store = open(dir, durability, Arc::new(clock.clone()), options)?;
    Ok(Box::new(Notifeed { store, clock, counts }))
}

impl<S: FeedStore + ?Sized> Notifeed<S> {
    fn at(&self, now_nanos: i64) {
        let now = nanos_to_timestamp(now_nanos);
        if self.clock.now() != now {
            self.clock.set(now);
        }
    }
}

impl<S: FeedStore + ?Sized> Peer for Notifeed<S> {
    fn append(&self, record: Record) -> BenchResult<()> {
        self.store.append(&record.feed_key, record.new)?;
        Ok(())
    }

    fn load(&self, records: &[Record]) -> BenchResult<()> {
        for record in records {
            self.store.append(&record.feed_key, record.new.clone())?;
        }
        self.sync()
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        self.at(now_nanos);
        let query = ListQuery { limit, ..ListQuery::default() };
        Ok(self.store.list(Workload::feed_key(feed), &query)?.items)
    }

    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        self.at(now_nanos);
        Ok(self.store.get_by_app_id(Workload::feed_key(feed), app_id)?)
    }

    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome> {
        self.at(now_nanos);
        let stats = self.store.sweep_expired()?;
        self.store.sync()?;
        Ok(SweepOutcome { removed: stats.expired, bytes_rewritten: Some(stats.bytes_rewritten) })
    }

    fn sync(&self) -> BenchResult<()> {
        Ok(self.store.sync()?)
    }

    fn index_bytes_per_notification(&self) -> Option<f64> {
        (self.counts)(&self.store).index_bytes
    }

    fn mean_commit_batch(&self) -> Option<f64> {
        (self.counts)(&self.store).mean_batch
    }
}

/// notifeed's engines present on this branch.
///
/// With the `redis` feature, also `notifeed-redis`: `RedisStore` on a 3-master, 3-replica
/// cluster on loopback (`appendonly yes`, `appendfsync always`), started by the test harness in
/// `tests/redis_cluster/`.
pub fn engines() -> Vec<crate::workload::PeerSpec> {
    #[allow(unused_mut)]
    let mut engines = vec![
        crate::workload::PeerSpec { name: "notifeed-log", open: open_log },
        crate::workload::PeerSpec { name: "notifeed-sled", open: open_sled },
    ];
    #[cfg(feature = "redis")]
    engines.push(crate::workload::PeerSpec { name: "notifeed-redis", open: open_redis });
    engines
}

/// Configurations of notifeed's engines other than their defaults, run only when
/// `NOTIFEED_BENCH_ENGINES` names them: `notifeed-log-snapshot`, `LogStore` with its index
/// snapshot on (`LogConfig::index_snapshot: true`), whose clean reopens load the snapshot
/// instead of scanning the segments; `notifeed-log-nojournal`, `LogStore` without its commit
/// journal (`LogConfig::journal_bytes: 0`), whose durable batches sync their segments;
/// `notifeed-log-nocache`, `LogStore` without its head cache (`LogConfig::head_cache_bytes:
/// 0`), whose pages decode every record from the segment files.
pub fn variants() -> Vec<crate::workload::PeerSpec> {
    vec![
        crate::workload::PeerSpec { name: "notifeed-log-snapshot", open: open_log_snapshot },
        crate::workload::PeerSpec { name: "notifeed-log-nojournal", open: open_log_nojournal },
        crate::workload::PeerSpec { name: "notifeed-log-nocache", open: open_log_nocache },
    ]
}

/// What `LogStore` counts of itself: its index (`LogStore::index_stats`) and its group commits
/// (`LogStore::stats`).
fn log_counts(store: &notifeed::engine::log::LogStore) -> OwnCounts {
    OwnCounts {
        index_bytes: Some(store.index_stats().bytes_per_notification()),
        mean_batch: Some(store.stats().mean_batch()),
    }
}

/// `LogStore` as [`open_log`], without the commit journal.
fn open_log_nojournal(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    adapt_with_counts(
        dir,
        mode,
        |dir, durability, clock, options| {
            let config = LogConfig { options, durability, journal_bytes: 0, ..Default::default() };
            Ok(Box::new(LogStore::open(&dir.join("log"), config, clock)?))
        },
        log_counts,
    )
}

/// `LogStore` as [`open_log`], without the head cache.
fn open_log_nocache(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    adapt_with_counts(
        dir,
        mode,
        |dir, durability, clock, options| {
            let config = LogConfig { options, durability, head_cache_bytes: 0, ..Default::default() };
            Ok(Box::new(LogStore::open(&dir.join("log"), config, clock)?))
        },
        log_counts,
    )
}

/// `LogStore` as [`open_log`], with the index snapshot.
fn open_log_snapshot(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    adapt_with_counts(
        dir,
        mode,
        |dir, durability, clock, options| {
            let config = LogConfig { options, durability, index_snapshot: true, ..Default::default() };
            Ok(Box::new(LogStore::open(&dir.join("log"), config, clock)?))
        },
        log_counts,
    )
}

/// `LogStore` with its defaults (1-hour windows, 64 MiB segments) in `dir/log`; the report also
/// shows its own index accounting, and the durable benches its mean group commit
/// ([`log_counts`]).
fn open_log(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    adapt_with_counts(
        dir,
        mode,
        |dir, durability, clock, options| {
            let config = LogConfig { options, durability, ..Default::default() };
            Ok(Box::new(LogStore::open(&dir.join("log"), config, clock)?))
        },
        log_counts,
    )
}

/// `SledStore` with its defaults (64 MiB cache, 500 ms background flush) in `dir/notifeed-sled`.
fn open_sled(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    adapt(dir, mode, |dir, durability, clock, options| {
        let config = notifeed::engine::sled::SledConfig { options, durability, ..Default::default() };
        Ok(Box::new(notifeed::engine::sled::SledStore::open(&dir.join("notifeed-sled"), config, clock)?))
    })
}

/// `RedisStore` with its defaults on the shared cluster; the key prefix is named after `dir`, so
/// reopening the same directory finds the same data.
#[cfg(feature = "redis")]
fn open_redis(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    adapt(dir, mode, |dir, durability, clock, options| {
        let cluster = crate::redis_cluster::shared();
        let key_prefix = format!("bench-{:016x}", BuildHasherDefault::<DefaultHasher>::default().hash_one(dir));
        let config = notifeed::engine::redis::RedisConfig { key_prefix, options, durability, ..Default::default() };
        Ok(Box::new(notifeed::engine::redis::RedisStore::open(&cluster.urls(), config, clock)?))
    })
}
