//! Reading the trees: feed numbers, metas, records and the expiry ranges, with every value
//! checked on the way out.

use std::collections::HashSet;
use std::ops::Bound;

use crate::clock::timestamp_to_nanos;
use crate::model::NotificationId;
use crate::store::{FeedKey, StoreError};

use super::keys::{self, FeedNumber};
use super::trees::{TreeName, Trees};
use super::values::{self, FeedMeta, Record};

/// The number of `feed`, or `None` for a feed never written.
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn feed_number(trees: &Trees, feed: &FeedKey) -> Result<Option<FeedNumber>, StoreError> {
    let key = feed.as_str().as_bytes();
    trees.get(TreeName::Feeds, key)?.map(|value| values::decode_u64(TreeName::Feeds.as_str(), key, &value)).transpose()
}

/// A counter of the catalog tree (`keys::NEXT_FEED_KEY`, `keys::STORE_SEQUENCE_KEY`); `None`
/// when never written.
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn catalog_counter(trees: &Trees, key: &[u8]) -> Result<Option<u64>, StoreError> {
    trees
        .get(TreeName::Catalog, key)?
        .map(|value| values::decode_u64(TreeName::Catalog.as_str(), key, &value))
        .transpose()
}

/// The meta of `feed`; the default for a feed without one.
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn meta(trees: &Trees, feed: FeedNumber) -> Result<FeedMeta, StoreError> {
    let key = keys::feed_prefix(feed);
    match trees.get(TreeName::FeedMeta, &key)? {
        Some(value) => FeedMeta::decode(TreeName::FeedMeta.as_str(), &key, &value),
        None => Ok(FeedMeta::default()),
    }
}

/// The stored record of `id` (live or expired-but-unswept), or `None`.
///
/// # Errors
/// Read errors; [`StoreError::Corruption`] naming the key for a value that fails its check.
pub(crate) fn record(trees: &Trees, feed: FeedNumber, id: NotificationId) -> Result<Option<Record>, StoreError> {
    let key = keys::notification_key(feed, id);
    trees
        .get(TreeName::Notifications, &key)?
        .map(|value| values::decode_record(TreeName::Notifications.as_str(), &key, &value))
        .transpose()
}

/// The record of `id` when it is live at `now_nanos`.
///
/// # Errors
/// As [`record`].
pub(crate) fn live_record(
    trees: &Trees,
    feed: FeedNumber,
    id: NotificationId,
    now_nanos: i64,
) -> Result<Option<Record>, StoreError> {
    Ok(record(trees, feed, id)?.filter(|r| is_live(r, now_nanos)))
}

/// Whether `record` is live at `now_nanos` (expiration is exclusive).
pub(crate) fn is_live(record: &Record, now_nanos: i64) -> bool {
    timestamp_to_nanos(record.notification.expiration) > now_nanos
}

/// The live record holding `app_notification_id`, or `None`.
///
/// # Errors
/// As [`record`].
pub(crate) fn live_record_by_app_id(
    trees: &Trees,
    feed: FeedNumber,
    app_notification_id: &str,
    now_nanos: i64,
) -> Result<Option<Record>, StoreError> {
    let key = keys::app_id_key(feed, app_notification_id);
    let Some(value) = trees.get(TreeName::AppIds, &key)? else {
        return Ok(None);
    };
    let id = values::decode_id(TreeName::AppIds.as_str(), &key, &value)?;
    Ok(live_record(trees, feed, id, now_nanos)?.filter(|r| r.notification.app_notification_id() == app_notification_id))
}

/// Every `(expiration, id)` of `tree` (`feed_expiry` or `expired_log`) for `feed` with an
/// expiration in `(after, through]`. Cost: O(entries in the range).
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn expirations_between(
    trees: &Trees,
    tree: TreeName,
    feed: FeedNumber,
    after: i64,
    through: i64,
) -> Result<Vec<(i64, NotificationId)>, StoreError> {
    if through <= after {
        return Ok(Vec::new());
    }
    let start = Bound::Excluded(keys::feed_time_bound(feed, after, 0xFF));
    scan_feed_times(trees, tree, start, Bound::Included(keys::feed_time_bound(feed, through, 0xFF)))
}

/// The ids of the notifications of `feed` that are stored but expired at `now_nanos` (not yet
/// swept). Cost: O(such notifications).
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn expired_unswept(
    trees: &Trees,
    feed: FeedNumber,
    now_nanos: i64,
) -> Result<HashSet<NotificationId>, StoreError> {
    let start = Bound::Included(keys::feed_time_bound(feed, i64::MIN, 0x00));
    let end = Bound::Included(keys::feed_time_bound(feed, now_nanos, 0xFF));
    Ok(scan_feed_times(trees, TreeName::FeedExpiry, start, end)?.into_iter().map(|(_, id)| id).collect())
}

/// The latest expiration of `tree` (`feed_expiry` or `expired_log`) for `feed` at or before
/// `through`, or `None`. Cost: O(log n).
///
/// # Errors
/// Read and corruption errors.
pub(crate) fn latest_expiration_through(
    trees: &Trees,
    tree: TreeName,
    feed: FeedNumber,
    through: i64,
) -> Result<Option<i64>, StoreError> {
    let start = keys::feed_time_bound(feed, i64::MIN, 0x00);
    let end = keys::feed_time_bound(feed, through, 0xFF);
    let Some(entry) = trees.tree(tree).range(start..=end).next_back() else {
        return Ok(None);
    };
    let (key, _) = entry.map_err(|e| trees.read_error(e))?;
    Ok(Some(keys::split_feed_time(tree.as_str(), &key)?.1))
}

fn scan_feed_times(
    trees: &Trees,
    tree: TreeName,
    start: Bound<[u8; keys::TIME_KEY_LEN]>,
    end: Bound<[u8; keys::TIME_KEY_LEN]>,
) -> Result<Vec<(i64, NotificationId)>, StoreError> {
    let mut out = Vec::new();
    for entry in trees.tree(tree).range::<[u8; keys::TIME_KEY_LEN], _>((start, end)).keys() {
        let key = entry.map_err(|e| trees.read_error(e))?;
        let (_, expiration, id) = keys::split_feed_time(tree.as_str(), &key)?;
        out.push((expiration, id));
    }
    Ok(out)
}
