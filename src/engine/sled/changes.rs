//! `changes`: gathering a feed's change candidates from the indexes for the shared planner
//! ([`crate::changes::plan_page`]), and forgetting expirations older than the retention.
//!
//! * Expirations after the token's time: the per-feed expiry index (stored, expired at now,
//!   not yet swept) and the expired log (swept), both by time.
//! * Upserts after the token's sequence: the `upserts` tree, less what expired by now.
//! * Explicit removals after the token's sequence: the `removals` tree.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use crate::changes::{FeedHorizon, Planned, Sequenced, check_token, plan_page};
use crate::clock::timestamp_to_nanos;
use crate::model::NotificationId;
use crate::store::{Change, ChangeToken, Changes, FeedKey, StoreError};

use super::SledStore;
use super::keys::{self, FeedNumber};
use super::read;
use super::trees::{TreeName, WriteSet};
use super::values::{self, FeedMeta};

impl SledStore {
    /// Gathers the change candidates after `since` and plans the page (under the writer lock,
    /// so the indexes and records agree).
    pub(super) fn changes_locked(
        &self,
        feed: &FeedKey,
        since: Option<ChangeToken>,
        limit: usize,
    ) -> Result<Changes, StoreError> {
        let now_nanos = timestamp_to_nanos(self.now());
        let number = read::feed_number(&self.trees, feed)?;
        let mut meta = match number {
            Some(number) => read::meta(&self.trees, number)?,
            None => FeedMeta::default(),
        };
        if let Some(number) = number {
            self.forget_old_expirations(number, &mut meta, now_nanos)?;
        }
        let horizon = FeedHorizon {
            latest_sequence: meta.sequence,
            forgotten_removals_through: meta.forgotten_removals_through,
            forgotten_expirations_through: meta.forgotten_expirations_through,
        };
        if let Some(token) = since {
            check_token(token, &horizon)?;
        }
        let Some(number) = number else {
            let (_, next, more) = plan_page::<NotificationId>(since, now_nanos, &horizon, vec![], vec![], limit);
            return Ok(Changes { items: vec![], next, more });
        };
        let mut expirations = Vec::new();
        if let Some(token) = since {
            let after = token.expired_through_nanos;
            for tree in [TreeName::FeedExpiry, TreeName::ExpiredLog] {
                expirations.extend(read::expirations_between(&self.trees, tree, number, after, now_nanos)?);
            }
        }
        let expired_now: HashSet<NotificationId> = read::expired_unswept(&self.trees, number, now_nanos)?;
        let after_sequence = since.map_or(0, |t| t.sequence);
        let mut sequenced = Vec::new();
        for entry in self.sequenced_after(TreeName::Upserts, number, after_sequence) {
            let (key, value) = entry.map_err(|e| self.trees.read_error(e))?;
            let (_, sequence) = keys::split_sequenced(TreeName::Upserts.as_str(), &key)?;
            let id = values::decode_id(TreeName::Upserts.as_str(), &key, &value)?;
            if !expired_now.contains(&id) {
                sequenced.push((sequence, Sequenced::Upsert(id)));
            }
        }
        for entry in self.sequenced_after(TreeName::Removals, number, after_sequence) {
            let (key, value) = entry.map_err(|e| self.trees.read_error(e))?;
            let (_, sequence) = keys::split_sequenced(TreeName::Removals.as_str(), &key)?;
            let (id, reason) = values::decode_removal(TreeName::Removals.as_str(), &key, &value)?;
            sequenced.push((sequence, Sequenced::Removed(id, reason)));
        }
        let (page, next, more) = plan_page(since, now_nanos, &horizon, expirations, sequenced, limit);
        let mut items = Vec::with_capacity(page.len());
        for planned in page {
            items.push(match planned {
                Planned::Upsert(id) => {
                    let record = read::record(&self.trees, number, id)?.ok_or_else(|| StoreError::Corruption {
                        location: format!("sled tree upserts, feed {number}"),
                        detail: format!("the change log names notification {id}, which is not stored"),
                    })?;
                    Change::Upserted(Box::new(record.notification))
                }
                Planned::Removed(id, reason) => Change::Removed { id, reason },
            });
        }
        Ok(Changes { items, next, more })
    }

    /// Forgets, for `changes`, the expirations of a feed older than the retention, swept or
    /// not: the feed's forgotten-expirations horizon rises to the latest of them (and is
    /// written, so it never falls back). Sweeps drop the entries themselves.
    fn forget_old_expirations(&self, feed: FeedNumber, meta: &mut FeedMeta, now_nanos: i64) -> Result<(), StoreError> {
        let cutoff = self.retention_cutoff(now_nanos);
        let mut forgotten = meta.forgotten_expirations_through;
        for tree in [TreeName::FeedExpiry, TreeName::ExpiredLog] {
            if let Some(latest) = read::latest_expiration_through(&self.trees, tree, feed, cutoff)? {
                forgotten = forgotten.max(latest);
            }
        }
        if forgotten > meta.forgotten_expirations_through {
            meta.forgotten_expirations_through = forgotten;
            if !self.poisoned.load(Ordering::SeqCst) {
                let mut writes = WriteSet::default();
                writes.insert(TreeName::FeedMeta, &keys::feed_prefix(feed), meta.encode());
                // Not flushed: a lost write is recomputed by the next read.
                self.commit(writes)?;
            }
        }
        Ok(())
    }

    /// Expirations at or before this time are forgotten: now less the retention (never after
    /// now).
    pub(super) fn retention_cutoff(&self, now_nanos: i64) -> i64 {
        let retention = i64::try_from(self.options.expiry_log_retention.as_nanos()).unwrap_or(i64::MAX);
        now_nanos.saturating_sub(retention).min(now_nanos)
    }

    /// The entries of a `feed | sequence` tree after `after`.
    fn sequenced_after(&self, tree: TreeName, feed: FeedNumber, after: u64) -> sled::Iter {
        match after.checked_add(1) {
            Some(first) => {
                self.trees.tree(tree).range(keys::sequenced_key(feed, first)..=keys::sequenced_key(feed, u64::MAX))
            }
            // Nothing follows u64::MAX: an empty range of this feed.
            None => self.trees.tree(tree).range(keys::sequenced_key(feed, 1)..keys::sequenced_key(feed, 1)),
        }
    }
}
