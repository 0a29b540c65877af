//! Appending: replacement of the live notification with the same app id, or eviction of the
//! oldest live notifications of a full feed, then insertion.

use jiff::Timestamp;

use crate::clock::timestamp_to_nanos;
use crate::model::{NewNotification, Notification, NotificationId};
use crate::store::{RemovalReason, StoreError, validate_for_append};

use super::SledStore;
use super::feed::FeedWriter;
use super::keys;
use super::read;
use super::trees::TreeName;
use super::values::{self, Record};

impl SledStore {
    /// Appends under the writer lock: replacement, or eviction then insertion.
    pub(super) fn append_locked(
        &self,
        writer: &mut FeedWriter<'_>,
        new: NewNotification,
        now: Timestamp,
    ) -> Result<Notification, StoreError> {
        let expiration = validate_for_append(&new, &self.options.limits, now)?;
        let now_nanos = timestamp_to_nanos(now);
        let replaced = read::live_record_by_app_id(&self.trees, writer.feed, &new.app_notification_id, now_nanos)?;
        let (id, created) = match &replaced {
            Some(old) => {
                writer.remove_record(old)?;
                (old.notification.id, old.notification.created)
            }
            None => {
                self.evict_for_one_more(writer, now_nanos)?;
                (NotificationId::new_random(), now)
            }
        };
        let sequence = writer.next_sequence();
        let mut notification = Notification::from_new(id, new, expiration, now);
        notification.created = created;
        writer.insert_record(&Record { position: sequence, sequence, notification: notification.clone() })?;
        Ok(notification)
    }

    /// Evicts the oldest live notifications until one more fits under the feed capacity.
    fn evict_for_one_more(&self, writer: &mut FeedWriter<'_>, now_nanos: i64) -> Result<(), StoreError> {
        let expired = read::expired_unswept(&self.trees, writer.feed, now_nanos)?;
        let live = writer.meta.stored.saturating_sub(expired.len() as u64);
        let capacity = u64::try_from(self.options.feed_capacity.max(1)).unwrap_or(u64::MAX);
        if live < capacity {
            return Ok(());
        }
        let mut to_evict = live - capacity + 1;
        let mut oldest = Vec::new();
        for entry in self.trees.tree(TreeName::Positions).scan_prefix(keys::feed_prefix(writer.feed)) {
            if to_evict == 0 {
                break;
            }
            let (key, value) = entry.map_err(|e| self.trees.read_error(e))?;
            let id = values::decode_id(TreeName::Positions.as_str(), &key, &value)?;
            if expired.contains(&id) {
                continue;
            }
            if let Some(record) = read::live_record(&self.trees, writer.feed, id, now_nanos)? {
                oldest.push(record);
                to_evict -= 1;
            }
        }
        for record in &oldest {
            writer.remove_explicitly(record, RemovalReason::Evicted)?;
        }
        Ok(())
    }
}
