//! [`SledStore`]: the [`FeedStore`] on sled 0.34.
//!
//! Layout: one sled database per store directory, with twelve trees (listed in `trees`), keys
//! of fixed-width big-endian fields written by us (`keys`), and every value sealed with a
//! format-version byte and a crc32 (`values`). Each operation collects its writes under the
//! store's writer lock and commits them in one sled transaction across all trees, so an
//! operation is atomic: after a crash either all of it or none of it is there.
//!
//! Expiration is exact at read time: every read compares the stored expiration with the clock,
//! so an expired notification is never returned, swept or not. [`FeedStore::sweep_expired`]
//! walks the global expiry index from its oldest entry, so it costs O(expired). Its
//! [`SweepStats::bytes_reclaimed`] counts the bytes of the notification values it removed (sled
//! gives the space back to the file system later, by its own segment cleaning); it removes no
//! files and rewrites nothing. A notification that fails its checksum stops the sweep with
//! [`StoreError::Corruption`] rather than be dropped unread.
//!
//! # On-disk format
//!
//! Written down once, beside the code that writes it: the trees and what each holds in
//! `trees`, the key layout in `keys`, the value frames in `values`. The catalog holds a layout
//! version (1); `open` refuses another. Invariants recovery relies on: every operation is one
//! sled transaction, so after a crash the indexes agree with the notifications (listed in
//! `feed`); the store-wide sequence counter and each feed's meta are written in the same
//! transaction as the changes that took their numbers; the catalog's sequence lease is made
//! durable before any sequence above it is committed, and a reopened store starts its
//! sequences above it, so a sequence a reader saw is never given out again, even when the
//! write that took it was lost (`Buffered`).
//!
//! Durability: sled writes a log of its own on `flush`, but on Linux only waits for it with
//! `sync_file_range`, which flushes neither the drive's cache nor the file's metadata, so it
//! does not survive a power loss; a flush here is sled's flush followed by an fdatasync of
//! sled's data file. With [`Durability::Always`]
//! every mutation is covered by such a flush before it returns (one flush covers every
//! mutation committed before it started, so concurrent writers share it); with
//! [`Durability::Buffered`] mutations reach sled's buffers (and sled's background flusher
//! writes them every [`SledConfig::flush_every_milliseconds`]) and [`FeedStore::sync`]
//! flushes.

mod append;
mod changes;
mod config;
mod error;
mod feed;
mod keys;
mod read;
mod sweep;
mod trees;
mod values;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use parking_lot::Mutex;

use crate::clock::{SharedClock, timestamp_to_nanos};
use crate::model::{NewNotification, Notification, NotificationId, ReadState};
use crate::store::{
    ChangeToken, Changes, Counts, Durability, FeedKey, FeedStore, ListQuery, Page, RemovalReason, StateUpdate,
    StoreError, StoreOptions, SweepStats,
};

use feed::FeedWriter;
use keys::FeedNumber;
use trees::{TreeName, Trees, WriteSet};
use values::Record;

pub use config::SledConfig;

/// How often `open` retries a held lock within [`SledConfig::lock_wait`].
const LOCK_POLL: Duration = Duration::from_millis(10);

/// The notification feed store on sled. Share it across threads in an `Arc`.
///
/// Reads run concurrently; mutations are serialised by one writer lock (sled transactions take
/// a global lock of their own, so they would serialise anyway) up to their commit, and with
/// `Always` durability wait for sled's flush outside it, so concurrent writers share fsyncs.
pub struct SledStore {
    trees: Trees,
    clock: SharedClock,
    options: StoreOptions,
    durability: Durability,
    /// Held while an operation reads what it will change and commits it.
    writer: Mutex<()>,
    /// Set when a commit or flush failed: mutations then refuse until the store is reopened.
    poisoned: AtomicBool,
    /// Tickets of commits given out (the last one).
    committed: AtomicU64,
    /// The last ticket a flush covered; held while flushing, so writers queue behind one flush.
    synced: Mutex<u64>,
    /// The durable sequence lease as of open: sequences start above it after a restart.
    sequence_floor: u64,
    /// The durable sequence lease now (read and raised under the writer lock).
    sequence_lease: AtomicU64,
}

/// How far the sequence lease is raised at a time: one durable catalog write per this many
/// sequences.
const SEQUENCE_LEASE_BLOCK: u64 = 1 << 16;

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.trees.path())
            .field("durability", &self.durability)
            .field("poisoned", &self.poisoned.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the store in the directory `path`, creating it when absent.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another open store (in this or another process) still holds
    /// the directory after [`SledConfig::lock_wait`]; [`StoreError::Io`] when it cannot be
    /// created or read; [`StoreError::Corruption`] when sled finds its files damaged.
    ///
    /// Cost: sled's recovery, proportional to its log since the last snapshot.
    pub fn open(path: &Path, config: SledConfig, clock: SharedClock) -> Result<SledStore, StoreError> {
        let sled_config = || {
            sled::Config::new()
                .cache_capacity(config.cache_capacity_bytes)
                .flush_every_ms(config.flush_every_milliseconds.map(|ms| ms.max(1)))
        };
        let deadline = Instant::now() + config.lock_wait;
        let trees = loop {
            match Trees::open(path, sled_config()) {
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_POLL.min(deadline.saturating_duration_since(Instant::now())));
                }
                other => break other?,
            }
        };
        let store = SledStore {
            trees,
            clock,
            options: config.options,
            durability: config.durability,
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            committed: AtomicU64::new(0),
            synced: Mutex::new(0),
            sequence_floor: 0,
            sequence_lease: AtomicU64::new(0),
        };
        store.check_layout()?;
        let lease = read::catalog_counter(&store.trees, keys::SEQUENCE_LEASE_KEY)?.unwrap_or(0);
        store.sequence_lease.store(lease, Ordering::SeqCst);
        Ok(SledStore { sequence_floor: lease, ..store })
    }

    /// Checks the catalog's layout version, writing it into a new database.
    fn check_layout(&self) -> Result<(), StoreError> {
        match read::catalog_counter(&self.trees, keys::LAYOUT_VERSION_KEY)? {
            Some(keys::LAYOUT_VERSION) => Ok(()),
            Some(other) => Err(StoreError::Corruption {
                location: format!("sled tree catalog in {}, key layout", self.trees.path().display()),
                detail: format!("layout version {other}; this build reads version {}", keys::LAYOUT_VERSION),
            }),
            None => {
                let mut writes = WriteSet::default();
                writes.insert(TreeName::Catalog, keys::LAYOUT_VERSION_KEY, values::encode_u64(keys::LAYOUT_VERSION));
                let ticket = self.commit(writes)?;
                self.make_durable(ticket)
            }
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) { Err(StoreError::Poisoned) } else { Ok(()) }
    }

    /// Commits `writes` (under the writer lock). Returns the commit's ticket, to pass to
    /// [`SledStore::make_durable`], or `None` when there was nothing to commit. A failed commit
    /// poisons the store.
    fn commit(&self, writes: WriteSet) -> Result<Option<u64>, StoreError> {
        if writes.is_empty() {
            return Ok(None);
        }
        // 1. One transaction over the trees written: the operation is all there or not at all.
        self.trees.commit(writes).inspect_err(|_| self.poisoned.store(true, Ordering::SeqCst))?;
        // Tickets are taken after the commit and under the writer lock, so every commit with a
        // ticket up to `committed` is in sled when `committed` is read.
        Ok(Some(self.committed.fetch_add(1, Ordering::SeqCst) + 1))
    }

    /// With `Always` durability, makes the commit with `ticket` durable (nothing for `None`).
    ///
    /// Called after the writer lock is released, so writers commit while another syncs; the
    /// sync then covers every commit made before it started (a group commit): a writer whose
    /// ticket an earlier sync covered returns without syncing again.
    fn make_durable(&self, ticket: Option<u64>) -> Result<(), StoreError> {
        match ticket {
            Some(ticket) if self.durability != Durability::Buffered => self.sync_through(ticket),
            _ => Ok(()),
        }
    }

    /// Makes every commit up to `ticket` durable, with one flush for all of them.
    fn sync_through(&self, ticket: u64) -> Result<(), StoreError> {
        let mut synced = self.synced.lock();
        if *synced >= ticket {
            return Ok(());
        }
        self.check_poisoned()?;
        let target = self.committed.load(Ordering::SeqCst);
        // 2. IMPORTANT: a mutation returns only after this flush (sled's log written and
        //    fdatasynced) covered it.
        self.trees.flush().inspect_err(|_| self.poisoned.store(true, Ordering::SeqCst))?;
        *synced = target;
        Ok(())
    }

    /// Runs a mutation of `feed`, which must exist; `None` when it does not.
    fn mutate_existing<T>(
        &self,
        feed: &FeedKey,
        change: impl FnOnce(&mut FeedWriter<'_>, Timestamp) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.check_poisoned()?;
        let (out, ticket) = {
            let _writer = self.writer.lock();
            let Some(number) = read::feed_number(&self.trees, feed)? else {
                return Ok(None);
            };
            self.run_mutation(number, WriteSet::default(), change)?
        };
        self.make_durable(ticket)?;
        Ok(Some(out))
    }

    /// Runs a mutation of `feed`, assigning it a feed number when it has none.
    fn mutate_or_create<T>(
        &self,
        feed: &FeedKey,
        change: impl FnOnce(&mut FeedWriter<'_>, Timestamp) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_poisoned()?;
        let (out, ticket) = {
            let _writer = self.writer.lock();
            let mut writes = WriteSet::default();
            let number = match read::feed_number(&self.trees, feed)? {
                Some(number) => number,
                None => self.assign_feed_number(feed, &mut writes)?,
            };
            self.run_mutation(number, writes, change)?
        };
        self.make_durable(ticket)?;
        Ok(out)
    }

    /// Under the writer lock: applies `change` to the feed and commits it; the caller makes it
    /// durable once the lock is released.
    fn run_mutation<T>(
        &self,
        number: FeedNumber,
        writes: WriteSet,
        change: impl FnOnce(&mut FeedWriter<'_>, Timestamp) -> Result<T, StoreError>,
    ) -> Result<(T, Option<u64>), StoreError> {
        let now = self.now();
        let meta = read::meta(&self.trees, number)?;
        self.check_poisoned()?;
        // After a crash the counter may be behind sequences already seen in tokens (with
        // `Buffered`, or read before their flush): start above the lease, which covers them.
        let counter = read::catalog_counter(&self.trees, keys::STORE_SEQUENCE_KEY)?.unwrap_or(0);
        let store_sequence = counter.max(self.sequence_floor);
        let mut writer = FeedWriter::new(&self.trees, number, meta, store_sequence, writes);
        let out = change(&mut writer, now)?;
        let highest = writer.store_sequence();
        let writes = writer.finish(self.options.removal_log_capacity)?;
        self.cover_sequences(highest)?;
        let ticket = self.commit(writes)?;
        Ok((out, ticket))
    }

    /// Under the writer lock, before a commit gives out sequences up to `highest`: makes sure
    /// the durable lease covers them, raising it (one small durable write) when it does not, so
    /// that no restart can give out a sequence a reader has already seen.
    fn cover_sequences(&self, highest: u64) -> Result<(), StoreError> {
        if highest <= self.sequence_lease.load(Ordering::SeqCst) {
            return Ok(());
        }
        let lease = highest.saturating_add(SEQUENCE_LEASE_BLOCK);
        let mut writes = WriteSet::default();
        writes.insert(TreeName::Catalog, keys::SEQUENCE_LEASE_KEY, values::encode_u64(lease));
        let ticket = self.commit(writes)?;
        // IMPORTANT: durable before any sequence above the old lease is committed, whatever the
        // durability setting.
        if let Some(ticket) = ticket {
            self.sync_through(ticket)?;
        }
        self.sequence_lease.store(lease, Ordering::SeqCst);
        Ok(())
    }

    /// Assigns the next feed number to `feed` (in `writes`, committed with the operation).
    fn assign_feed_number(&self, feed: &FeedKey, writes: &mut WriteSet) -> Result<FeedNumber, StoreError> {
        let number = read::catalog_counter(&self.trees, keys::NEXT_FEED_KEY)?.unwrap_or(1);
        let next = number
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend { engine: "sled", detail: "feed numbers are exhausted".to_owned() })?;
        writes.insert(TreeName::Catalog, keys::NEXT_FEED_KEY, values::encode_u64(next));
        writes.insert(TreeName::Feeds, feed.as_str().as_bytes(), values::encode_u64(number));
        Ok(number)
    }

    /// The live records of a feed, oldest position first, that pass `keep`.
    fn live_records(
        &self,
        feed: FeedNumber,
        now_nanos: i64,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for entry in self.trees.tree(TreeName::Positions).scan_prefix(keys::feed_prefix(feed)) {
            let (key, value) = entry.map_err(|e| self.trees.read_error(e))?;
            let id = values::decode_id(TreeName::Positions.as_str(), &key, &value)?;
            if let Some(record) = read::live_record(&self.trees, feed, id, now_nanos)?
                && keep(&record)
            {
                out.push(record);
            }
        }
        Ok(out)
    }
}

impl FeedStore for SledStore {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        self.mutate_or_create(feed, |writer, now| self.append_locked(writer, new, now))
    }

    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        let now_nanos = timestamp_to_nanos(self.now());
        let Some(number) = read::feed_number(&self.trees, feed)? else {
            return Ok(None);
        };
        Ok(read::live_record(&self.trees, number, id, now_nanos)?.map(|r| r.notification))
    }

    fn get_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError> {
        let now_nanos = timestamp_to_nanos(self.now());
        let Some(number) = read::feed_number(&self.trees, feed)? else {
            return Ok(None);
        };
        Ok(read::live_record_by_app_id(&self.trees, number, app_notification_id, now_nanos)?.map(|r| r.notification))
    }

    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        let now_nanos = timestamp_to_nanos(self.now());
        let Some(number) = read::feed_number(&self.trees, feed)? else {
            return Ok(Page { items: vec![], next: None });
        };
        let limit = query.effective_limit();
        let end = query.cursor.map_or(u64::MAX, |c| c.before_position);
        let positions = self.trees.tree(TreeName::Positions);
        let range = positions.range(keys::sequenced_key(number, 0)..keys::sequenced_key(number, end));
        let mut items: Vec<(u64, Notification)> = Vec::with_capacity(limit);
        let mut next = None;
        for entry in range.rev() {
            let (key, value) = entry.map_err(|e| self.trees.read_error(e))?;
            let (_, position) = keys::split_sequenced(TreeName::Positions.as_str(), &key)?;
            let id = values::decode_id(TreeName::Positions.as_str(), &key, &value)?;
            // A record missing or at another position was changed since the index was read.
            let Some(record) = read::live_record(&self.trees, number, id, now_nanos)? else {
                continue;
            };
            if record.position != position || !query.matches(&record.notification) {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|(p, _)| crate::store::Cursor { before_position: *p });
                break;
            }
            items.push((position, record.notification));
        }
        Ok(Page { items: items.into_iter().map(|(_, n)| n).collect(), next })
    }

    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        let now_nanos = timestamp_to_nanos(self.now());
        let Some(number) = read::feed_number(&self.trees, feed)? else {
            return Ok(Counts::default());
        };
        // Both reads under the writer lock, so the meta's counts and the index agree.
        let _writer = self.writer.lock();
        let meta = read::meta(&self.trees, number)?;
        let mut expired_unread = 0;
        let expired = read::expired_unswept(&self.trees, number, now_nanos)?;
        for id in &expired {
            if read::record(&self.trees, number, *id)?.is_some_and(|r| r.notification.read_state == ReadState::Unread) {
                expired_unread += 1;
            }
        }
        Ok(Counts {
            total: meta.stored.saturating_sub(expired.len() as u64),
            unread: meta.stored_unread.saturating_sub(expired_unread),
        })
    }

    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        let updated = self.mutate_existing(feed, |writer, now| {
            let Some(old) = read::live_record(&self.trees, writer.feed, id, timestamp_to_nanos(now))? else {
                return Ok(None);
            };
            writer.remove_record(&old)?;
            let sequence = writer.next_sequence();
            let mut notification = old.notification;
            if let Some(read_state) = update.read_state {
                notification.read_state = read_state;
            }
            if let Some(action) = update.user_action_state {
                notification.user_action_state = action;
            }
            notification.last_modified = now;
            writer.insert_record(&Record { position: old.position, sequence, notification: notification.clone() })?;
            Ok(Some(notification))
        })?;
        Ok(updated.flatten())
    }

    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        let deleted = self.mutate_existing(feed, |writer, now| {
            let Some(record) = read::live_record(&self.trees, writer.feed, id, timestamp_to_nanos(now))? else {
                return Ok(false);
            };
            writer.remove_explicitly(&record, RemovalReason::Deleted)?;
            Ok(true)
        })?;
        Ok(deleted.unwrap_or(false))
    }

    fn delete_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError> {
        let deleted = self.mutate_existing(feed, |writer, now| {
            let found =
                read::live_record_by_app_id(&self.trees, writer.feed, app_notification_id, timestamp_to_nanos(now))?;
            let Some(record) = found else {
                return Ok(false);
            };
            writer.remove_explicitly(&record, RemovalReason::Deleted)?;
            Ok(true)
        })?;
        Ok(deleted.unwrap_or(false))
    }

    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        let deleted = self.mutate_existing(feed, |writer, now| {
            let in_group = self
                .live_records(writer.feed, timestamp_to_nanos(now), |r| r.notification.group_name() == Some(group))?;
            for record in &in_group {
                writer.remove_explicitly(record, RemovalReason::GroupDeleted)?;
            }
            Ok(in_group.len() as u64)
        })?;
        Ok(deleted.unwrap_or(0))
    }

    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        let (changes, ticket) = {
            let _writer = self.writer.lock();
            (self.changes_locked(feed, since, limit)?, self.committed.load(Ordering::SeqCst))
        };
        // With `Always`, a page (and its token) shows only durable changes: a writer may have
        // committed and not yet returned from its flush.
        self.make_durable(Some(ticket).filter(|t| *t > 0))?;
        Ok(changes)
    }

    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        self.check_poisoned()?;
        let started = Instant::now();
        let now_nanos = timestamp_to_nanos(self.now());
        let cutoff = self.retention_cutoff(now_nanos);
        let mut stats = SweepStats::default();
        let mut ticket = None;
        // The writer lock is taken per chunk, so appends and deletes interleave with a long
        // sweep; each chunk is planned from what is committed when it starts.
        loop {
            let _writer = self.writer.lock();
            let Some(chunk) = sweep::expired_chunk(&self.trees, now_nanos, self.options.removal_log_capacity)? else {
                break;
            };
            stats.expired += chunk.expired;
            stats.bytes_reclaimed += chunk.bytes;
            ticket = self.commit(chunk.writes)?.or(ticket);
        }
        loop {
            let _writer = self.writer.lock();
            let Some(writes) = sweep::forget_chunk(&self.trees, cutoff)? else {
                break;
            };
            ticket = self.commit(writes)?.or(ticket);
        }
        // With `Always`, the sweep is durable when it returns: one flush for all chunks, each
        // atomic on its own.
        self.make_durable(ticket)?;
        stats.duration = started.elapsed();
        Ok(stats)
    }

    fn check_health(&self) -> Result<(), StoreError> {
        self.check_poisoned()
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.check_poisoned()?;
        // Every acknowledged mutation has a ticket up to `committed` and is in sled already.
        let target = self.committed.load(Ordering::SeqCst);
        let mut synced = self.synced.lock();
        // IMPORTANT: flush even when no commit is pending: sled's own buffered state goes too.
        self.trees.flush().inspect_err(|_| self.poisoned.store(true, Ordering::SeqCst))?;
        *synced = (*synced).max(target);
        Ok(())
    }
}
