//! Changing one feed: the index bookkeeping every mutation shares.
//!
//! A [`FeedWriter`] holds the feed's meta in memory, turns "this record is stored" and "this
//! record is gone" into writes of every tree that indexes it, and at [`FeedWriter::finish`]
//! trims the removal log and writes the meta, all into one [`WriteSet`].
//!
//! Invariants the writes keep (and reads rely on), for every stored record `r` of feed `f`:
//! `notifications[f|r.id]`, `positions[f|r.position] = r.id`, `upserts[f|r.sequence] = r.id`,
//! `expiry[r.expiration|f|r.id]`, `feed_expiry[f|r.expiration|r.id]`, and
//! `app_ids[f|r.app id] = r.id` unless a later notification took the app id after `r` expired.
//! `meta.stored` / `meta.stored_unread` count the stored records.

use crate::clock::timestamp_to_nanos;
use crate::model::{NotificationId, ReadState};
use crate::store::{RemovalReason, StoreError};

use super::keys::{self, FeedNumber};
use super::trees::{TreeName, Trees, WriteSet};
use super::values::{self, FeedMeta, Record};

/// The pending change of one feed.
pub(crate) struct FeedWriter<'a> {
    trees: &'a Trees,
    /// The feed being changed.
    pub feed: FeedNumber,
    /// Its meta as it will be written.
    pub meta: FeedMeta,
    /// The store-wide sequence counter: the last sequence given to any feed.
    store_sequence: u64,
    /// Whether this operation took sequences (the counter must be written).
    took_sequences: bool,
    /// Removals logged by this operation, oldest first: `(sequence, id, reason)`.
    new_removals: Vec<(u64, NotificationId, RemovalReason)>,
    /// The writes so far.
    pub writes: WriteSet,
}

impl<'a> FeedWriter<'a> {
    /// Starts changing `feed`, whose current meta is `meta`, with the store-wide counter at
    /// `store_sequence`; `writes` may already hold writes (the allocation of a new feed number).
    pub(crate) fn new(
        trees: &'a Trees,
        feed: FeedNumber,
        meta: FeedMeta,
        store_sequence: u64,
        writes: WriteSet,
    ) -> Self {
        Self { trees, feed, meta, store_sequence, took_sequences: false, new_removals: Vec::new(), writes }
    }

    /// The highest sequence this operation gave out so far (or the counter it started from).
    pub(crate) fn store_sequence(&self) -> u64 {
        self.store_sequence
    }

    /// Takes the next sequence number for this feed.
    ///
    /// Sequences come from one store-wide counter, so each feed's sequence grows forever (also
    /// across restarts and when a feed empties), and numbers follow the order of operations
    /// across the store.
    pub(crate) fn next_sequence(&mut self) -> u64 {
        self.store_sequence = self.store_sequence.max(self.meta.sequence).saturating_add(1);
        self.meta.sequence = self.store_sequence;
        self.took_sequences = true;
        self.store_sequence
    }

    /// Writes `record` and every index entry pointing at it. When a record with the same id is
    /// replaced, call [`FeedWriter::remove_record`] for the old one first.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the notification does not encode.
    pub(crate) fn insert_record(&mut self, record: &Record) -> Result<(), StoreError> {
        let n = &record.notification;
        let feed = self.feed;
        let expiration = timestamp_to_nanos(n.expiration);
        let id_value = values::encode_id(n.id);
        self.writes.insert(
            TreeName::Notifications,
            &keys::notification_key(feed, n.id),
            values::encode_record(record)?,
        );
        self.writes.insert(TreeName::Positions, &keys::sequenced_key(feed, record.position), id_value.clone());
        self.writes.insert(TreeName::Upserts, &keys::sequenced_key(feed, record.sequence), id_value.clone());
        self.writes.insert(TreeName::AppIds, &keys::app_id_key(feed, n.app_notification_id()), id_value);
        self.writes.insert(TreeName::Expiry, &keys::time_key(expiration, feed, n.id), Vec::new());
        self.writes.insert(TreeName::FeedExpiry, &keys::feed_time_key(feed, expiration, n.id), Vec::new());
        self.meta.stored += 1;
        if n.read_state == ReadState::Unread {
            self.meta.stored_unread += 1;
        }
        Ok(())
    }

    /// Removes `record` and every index entry pointing at it. The app id entry goes only when it
    /// still points at this record.
    ///
    /// # Errors
    /// Read errors of the app id index.
    pub(crate) fn remove_record(&mut self, record: &Record) -> Result<(), StoreError> {
        let n = &record.notification;
        let feed = self.feed;
        let expiration = timestamp_to_nanos(n.expiration);
        self.writes.remove(TreeName::Notifications, &keys::notification_key(feed, n.id));
        self.writes.remove(TreeName::Positions, &keys::sequenced_key(feed, record.position));
        self.writes.remove(TreeName::Upserts, &keys::sequenced_key(feed, record.sequence));
        let app_key = keys::app_id_key(feed, n.app_notification_id());
        if let Some(value) = self.trees.get(TreeName::AppIds, &app_key)?
            && values::decode_id(TreeName::AppIds.as_str(), &app_key, &value)? == n.id
        {
            self.writes.remove(TreeName::AppIds, &app_key);
        }
        self.writes.remove(TreeName::Expiry, &keys::time_key(expiration, feed, n.id));
        self.writes.remove(TreeName::FeedExpiry, &keys::feed_time_key(feed, expiration, n.id));
        self.meta.stored = self.meta.stored.saturating_sub(1);
        if n.read_state == ReadState::Unread {
            self.meta.stored_unread = self.meta.stored_unread.saturating_sub(1);
        }
        Ok(())
    }

    /// Removes a live `record` explicitly (delete, group delete, eviction): it takes the next
    /// sequence and enters the removal log.
    ///
    /// # Errors
    /// As [`FeedWriter::remove_record`].
    pub(crate) fn remove_explicitly(&mut self, record: &Record, reason: RemovalReason) -> Result<(), StoreError> {
        self.remove_record(record)?;
        let sequence = self.next_sequence();
        self.new_removals.push((sequence, record.notification.id, reason));
        Ok(())
    }

    /// Removes an expired `record` (a sweep): it moves to the expired log, which `changes`
    /// reports by expiration time until the retention forgets it.
    ///
    /// # Errors
    /// As [`FeedWriter::remove_record`].
    pub(crate) fn remove_expired(&mut self, record: &Record) -> Result<(), StoreError> {
        self.remove_record(record)?;
        let id = record.notification.id;
        let expiration = timestamp_to_nanos(record.notification.expiration);
        self.writes.insert(TreeName::ExpiredLog, &keys::feed_time_key(self.feed, expiration, id), Vec::new());
        self.writes.insert(TreeName::ExpiredLogByTime, &keys::time_key(expiration, self.feed, id), Vec::new());
        Ok(())
    }

    /// Logs the new removals, forgets the oldest ones beyond `removal_log_capacity` (raising
    /// the feed's forgotten-removals horizon), writes the meta, and returns the writes. An
    /// operation that wrote nothing writes no meta either.
    ///
    /// # Errors
    /// Read and corruption errors of the removal log.
    pub(crate) fn finish(mut self, removal_log_capacity: usize) -> Result<WriteSet, StoreError> {
        if self.writes.is_empty() && self.new_removals.is_empty() {
            return Ok(self.writes);
        }
        let capacity = u64::try_from(removal_log_capacity).unwrap_or(u64::MAX);
        let total = self.meta.removals_remembered + self.new_removals.len() as u64;
        let mut overflow = total.saturating_sub(capacity);
        // 1. Forget the oldest remembered removals first: they precede this operation's.
        if overflow > 0 && self.meta.removals_remembered > 0 {
            let tree = self.trees.tree(TreeName::Removals);
            for entry in tree.scan_prefix(keys::feed_prefix(self.feed)).keys() {
                if overflow == 0 {
                    break;
                }
                let key = entry.map_err(|e| self.trees.read_error(e))?;
                let (_, sequence) = keys::split_sequenced(TreeName::Removals.as_str(), &key)?;
                self.writes.remove(TreeName::Removals, &key);
                self.meta.forgotten_removals_through = self.meta.forgotten_removals_through.max(sequence);
                self.meta.removals_remembered = self.meta.removals_remembered.saturating_sub(1);
                overflow -= 1;
            }
        }
        // 2. Then this operation's own, when it removed more than the log holds.
        for (sequence, id, reason) in std::mem::take(&mut self.new_removals) {
            if overflow > 0 {
                self.meta.forgotten_removals_through = self.meta.forgotten_removals_through.max(sequence);
                overflow -= 1;
                continue;
            }
            self.writes.insert(
                TreeName::Removals,
                &keys::sequenced_key(self.feed, sequence),
                values::encode_removal(id, reason),
            );
            self.meta.removals_remembered += 1;
        }
        if self.took_sequences {
            self.writes.insert(TreeName::Catalog, keys::STORE_SEQUENCE_KEY, values::encode_u64(self.store_sequence));
        }
        self.writes.insert(TreeName::FeedMeta, &keys::feed_prefix(self.feed), self.meta.encode());
        Ok(self.writes)
    }
}
