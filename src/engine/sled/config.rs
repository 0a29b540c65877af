//! [`SledConfig`]: how a [`super::SledStore`] is set up.

use std::time::Duration;

use crate::store::{Durability, StoreOptions};

/// How a [`SledStore`](super::SledStore) is set up.
#[derive(Clone, Debug)]
pub struct SledConfig {
    /// The semantics every engine shares (limits, feed capacity, change-log bounds).
    /// Default: [`StoreOptions::default`].
    pub options: StoreOptions,
    /// When a mutation is durable. `Always` flushes sled and fdatasyncs its data file before
    /// each mutation returns (concurrent writers share one flush): it survives a killed process
    /// and a power loss
    /// (`tests/crash_sled.rs` kills a writer and finds every acknowledged append). `Buffered`
    /// leaves that to sled's background flusher and [`FeedStore::sync`](crate::FeedStore::sync); sled buffers in the
    /// process, so a killed process loses what was not flushed yet (at most
    /// `flush_every_milliseconds` of writes). Default: [`Durability::Always`].
    pub durability: Durability,
    /// sled's page cache, in bytes of on-disk data cached (sled's `cache_capacity`; its heap use
    /// is a multiple of this). Bounds: any; small values cost reads. Default: 64 MiB.
    pub cache_capacity_bytes: u64,
    /// How often sled's background thread flushes buffered writes, in milliseconds; `None`
    /// turns it off (then only [`FeedStore::sync`](crate::FeedStore::sync) and `Always` flush). Bounds: at least 1.
    /// Default: `Some(500)`.
    pub flush_every_milliseconds: Option<u64>,
    /// How long `open` waits for the directory's lock when it is held. sled releases the lock
    /// of a dropped database from its background threads a moment after the last handle goes,
    /// so a reopen in the same process may find it still held. Bounds: any; zero tries once.
    /// Default: 2 seconds.
    pub lock_wait: Duration,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            options: StoreOptions::default(),
            durability: Durability::Always,
            cache_capacity_bytes: 64 * 1024 * 1024,
            flush_every_milliseconds: Some(500),
            lock_wait: Duration::from_secs(2),
        }
    }
}
