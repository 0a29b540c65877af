//! Reclaiming expired notifications and forgetting old expirations, a chunk at a time.
//!
//! Both walk a global index ordered by time (`expiry`, `expired_log_by_time`) from its start up
//! to a cutoff, so a sweep costs O(expired), whatever the live data. Each chunk is one
//! [`WriteSet`], committed by the caller before the next chunk is planned, so a crash between
//! chunks leaves every tree consistent and the next sweep continues where this one stopped.

use std::collections::BTreeMap;

use crate::model::NotificationId;
use crate::store::StoreError;

use super::feed::FeedWriter;
use super::keys::{self, FeedNumber};
use super::read;
use super::trees::{TreeName, Trees, WriteSet};
use super::values;

/// The most index entries one chunk handles (one transaction).
pub(crate) const CHUNK_ENTRIES: usize = 512;

/// What one chunk does.
pub(crate) struct Chunk {
    /// The writes to commit.
    pub writes: WriteSet,
    /// Notifications reclaimed.
    pub expired: u64,
    /// Bytes of notification values removed.
    pub bytes: u64,
}

/// Takes up to [`CHUNK_ENTRIES`] entries of a time-ordered `tree` with a time at or before
/// `through`, grouped by feed.
fn first_entries(
    trees: &Trees,
    tree: TreeName,
    through: i64,
) -> Result<BTreeMap<FeedNumber, Vec<(i64, NotificationId)>>, StoreError> {
    let mut by_feed: BTreeMap<FeedNumber, Vec<(i64, NotificationId)>> = BTreeMap::new();
    let upper = keys::time_upper_bound(through);
    for entry in trees.tree(tree).range(..=upper).keys().take(CHUNK_ENTRIES) {
        let key = entry.map_err(|e| trees.read_error(e))?;
        let (expiration, feed, id) = keys::split_time(tree.as_str(), &key)?;
        by_feed.entry(feed).or_default().push((expiration, id));
    }
    Ok(by_feed)
}

/// Plans the next chunk of notifications expired at `now_nanos`: each leaves every index and
/// enters its feed's expired log. `None` when nothing is left to reclaim.
///
/// # Errors
/// Read errors; [`StoreError::Corruption`] for a record that fails its check (the sweep stops
/// there rather than drop data it cannot read).
pub(crate) fn expired_chunk(
    trees: &Trees,
    now_nanos: i64,
    removal_log_capacity: usize,
) -> Result<Option<Chunk>, StoreError> {
    let by_feed = first_entries(trees, TreeName::Expiry, now_nanos)?;
    if by_feed.is_empty() {
        return Ok(None);
    }
    let mut chunk = Chunk { writes: WriteSet::default(), expired: 0, bytes: 0 };
    // Expirations take no sequence; the counter only passes through.
    let store_sequence = read::catalog_counter(trees, keys::STORE_SEQUENCE_KEY)?.unwrap_or(0);
    for (feed, entries) in by_feed {
        let meta = read::meta(trees, feed)?;
        let mut writer = FeedWriter::new(trees, feed, meta, store_sequence, std::mem::take(&mut chunk.writes));
        for (expiration, id) in entries {
            // The entry goes whatever the record says, so a sweep always makes progress.
            writer.writes.remove(TreeName::Expiry, &keys::time_key(expiration, feed, id));
            writer.writes.remove(TreeName::FeedExpiry, &keys::feed_time_key(feed, expiration, id));
            let key = keys::notification_key(feed, id);
            let Some(value) = trees.get(TreeName::Notifications, &key)? else {
                continue;
            };
            let record = values::decode_record(TreeName::Notifications.as_str(), &key, &value)?;
            writer.remove_expired(&record)?;
            chunk.expired += 1;
            chunk.bytes += value.len() as u64;
        }
        chunk.writes = writer.finish(removal_log_capacity)?;
    }
    Ok(Some(chunk))
}

/// Plans the next chunk of expired-log entries older than `cutoff_nanos` to forget; each
/// forgotten expiration raises its feed's forgotten-expirations horizon. `None` when nothing
/// is left to forget.
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn forget_chunk(trees: &Trees, cutoff_nanos: i64) -> Result<Option<WriteSet>, StoreError> {
    let by_feed = first_entries(trees, TreeName::ExpiredLogByTime, cutoff_nanos)?;
    if by_feed.is_empty() {
        return Ok(None);
    }
    let mut writes = WriteSet::default();
    for (feed, entries) in by_feed {
        let mut meta = read::meta(trees, feed)?;
        for (expiration, id) in entries {
            writes.remove(TreeName::ExpiredLogByTime, &keys::time_key(expiration, feed, id));
            writes.remove(TreeName::ExpiredLog, &keys::feed_time_key(feed, expiration, id));
            meta.forgotten_expirations_through = meta.forgotten_expirations_through.max(expiration);
        }
        writes.insert(TreeName::FeedMeta, &keys::feed_prefix(feed), meta.encode());
    }
    Ok(Some(writes))
}
