//! A tiny in-memory `FeedStore` for handler tests while no engine is merged. Test code only: it
//! keeps the trait's semantics that the handler relies on (replacement, exact expiration, cap
//! eviction, change pages through `notifeed::changes`), not durability.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use notifeed::changes::{FeedHorizon, Planned, Sequenced, check_token, plan_page};
use notifeed::clock::timestamp_to_nanos;
use notifeed::store::validate_for_append;
use notifeed::{
    Change, ChangeToken, Changes, Counts, Cursor, FeedKey, FeedStore, ListQuery, NewNotification, Notification,
    NotificationId, Page, ReadState, RemovalReason, SharedClock, StateUpdate, StoreError, StoreOptions, SweepStats,
};

struct Entry {
    notification: Notification,
    position: u64,
    changed: u64,
}

#[derive(Default)]
struct Feed {
    entries: HashMap<NotificationId, Entry>,
    removals: Vec<(u64, NotificationId, RemovalReason)>,
    swept: Vec<(i64, NotificationId)>,
    latest: u64,
}

/// The in-memory store.
pub struct MemoryStore {
    clock: SharedClock,
    options: StoreOptions,
    feeds: Mutex<HashMap<FeedKey, Feed>>,
    sequence: AtomicU64,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Poisoned
}

impl MemoryStore {
    /// An empty store.
    pub fn new(clock: SharedClock, options: StoreOptions) -> Self {
        Self { clock, options, feeds: Mutex::new(HashMap::new()), sequence: AtomicU64::new(0) }
    }

    fn next(&self, feed: &mut Feed) -> u64 {
        let s = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        feed.latest = s;
        s
    }
}

impl FeedStore for MemoryStore {
    fn append(&self, key: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        let now = self.clock.now();
        let expiration = validate_for_append(&new, &self.options.limits, now)?;
        let mut feeds = self.feeds.lock().map_err(poisoned)?;
        let feed = feeds.entry(key.clone()).or_default();
        let existing = feed
            .entries
            .values()
            .find(|e| !e.notification.is_expired(now) && e.notification.app_notification_id == new.app_notification_id)
            .map(|e| (e.notification.id, e.notification.created));
        let seq = self.next(feed);
        let notification = match existing {
            Some((id, created)) => {
                let mut n = Notification::from_new(id, new, expiration, now);
                n.created = created;
                n
            }
            None => {
                let live = feed.entries.values().filter(|e| !e.notification.is_expired(now)).count();
                if live >= self.options.feed_capacity {
                    let oldest = feed
                        .entries
                        .values()
                        .filter(|e| !e.notification.is_expired(now))
                        .min_by_key(|e| e.position)
                        .map(|e| e.notification.id);
                    if let Some(id) = oldest {
                        feed.entries.remove(&id);
                        feed.removals.push((seq, id, RemovalReason::Evicted));
                    }
                }
                Notification::from_new(NotificationId::new_random(), new, expiration, now)
            }
        };
        feed.entries.insert(notification.id, Entry { notification: notification.clone(), position: seq, changed: seq });
        Ok(notification)
    }

    fn get(&self, key: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        let now = self.clock.now();
        let feeds = self.feeds.lock().map_err(poisoned)?;
        Ok(feeds
            .get(key)
            .and_then(|f| f.entries.get(&id))
            .filter(|e| !e.notification.is_expired(now))
            .map(|e| e.notification.clone()))
    }

    fn get_by_app_id(&self, key: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError> {
        let now = self.clock.now();
        let feeds = self.feeds.lock().map_err(poisoned)?;
        Ok(feeds.get(key).and_then(|f| {
            f.entries
                .values()
                .find(|e| !e.notification.is_expired(now) && e.notification.app_notification_id == app_notification_id)
                .map(|e| e.notification.clone())
        }))
    }

    fn list(&self, key: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        let now = self.clock.now();
        let feeds = self.feeds.lock().map_err(poisoned)?;
        let Some(feed) = feeds.get(key) else { return Ok(Page { items: vec![], next: None }) };
        let mut live: Vec<&Entry> = feed
            .entries
            .values()
            .filter(|e| !e.notification.is_expired(now) && query.matches(&e.notification))
            .filter(|e| query.cursor.is_none_or(|c| e.position < c.before_position))
            .collect();
        live.sort_by_key(|e| std::cmp::Reverse(e.position));
        let limit = query.effective_limit();
        let next = (live.len() > limit).then(|| Cursor { before_position: live[limit - 1].position });
        Ok(Page { items: live.into_iter().take(limit).map(|e| e.notification.clone()).collect(), next })
    }

    fn count(&self, key: &FeedKey) -> Result<Counts, StoreError> {
        let now = self.clock.now();
        let feeds = self.feeds.lock().map_err(poisoned)?;
        let mut counts = Counts::default();
        for e in feeds.get(key).iter().flat_map(|f| f.entries.values()) {
            if !e.notification.is_expired(now) {
                counts.total += 1;
                counts.unread += u64::from(e.notification.read_state == ReadState::Unread);
            }
        }
        Ok(counts)
    }

    fn update_state(
        &self,
        key: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        let now = self.clock.now();
        let mut feeds = self.feeds.lock().map_err(poisoned)?;
        let Some(feed) = feeds.get_mut(key) else { return Ok(None) };
        if feed.entries.get(&id).is_none_or(|e| e.notification.is_expired(now)) {
            return Ok(None);
        }
        let seq = self.next(feed);
        let Some(entry) = feed.entries.get_mut(&id) else { return Ok(None) };
        if let Some(r) = update.read_state {
            entry.notification.read_state = r;
        }
        if let Some(a) = update.user_action_state {
            entry.notification.user_action_state = a;
        }
        entry.notification.last_modified = now;
        entry.changed = seq;
        Ok(Some(entry.notification.clone()))
    }

    fn delete(&self, key: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut feeds = self.feeds.lock().map_err(poisoned)?;
        let Some(feed) = feeds.get_mut(key) else { return Ok(false) };
        if feed.entries.get(&id).is_none_or(|e| e.notification.is_expired(now)) {
            return Ok(false);
        }
        feed.entries.remove(&id);
        let seq = self.next(feed);
        feed.removals.push((seq, id, RemovalReason::Deleted));
        Ok(true)
    }

    fn delete_by_app_id(&self, key: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError> {
        match self.get_by_app_id(key, app_notification_id)? {
            Some(n) => self.delete(key, n.id),
            None => Ok(false),
        }
    }

    fn delete_group(&self, key: &FeedKey, group: &str) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut feeds = self.feeds.lock().map_err(poisoned)?;
        let Some(feed) = feeds.get_mut(key) else { return Ok(0) };
        let ids: Vec<NotificationId> = feed
            .entries
            .values()
            .filter(|e| !e.notification.is_expired(now) && e.notification.group_name.as_deref() == Some(group))
            .map(|e| e.notification.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let seq = self.next(feed);
        for id in &ids {
            feed.entries.remove(id);
            feed.removals.push((seq, *id, RemovalReason::GroupDeleted));
        }
        Ok(ids.len() as u64)
    }

    fn changes(&self, key: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        let now = self.clock.now();
        let now_nanos = timestamp_to_nanos(now);
        let feeds = self.feeds.lock().map_err(poisoned)?;
        let empty = Feed::default();
        let feed = feeds.get(key).unwrap_or(&empty);
        let horizon = FeedHorizon {
            latest_sequence: feed.latest,
            forgotten_removals_through: 0,
            forgotten_expirations_through: i64::MIN,
        };
        if let Some(since) = since {
            check_token(since, &horizon)?;
        }
        let mut expirations = Vec::new();
        if let Some(since) = since {
            let in_range = |t: i64| t > since.expired_through_nanos && t <= now_nanos;
            for e in feed.entries.values() {
                let t = timestamp_to_nanos(e.notification.expiration);
                if in_range(t) {
                    expirations.push((t, e.notification.id));
                }
            }
            expirations.extend(feed.swept.iter().filter(|(t, _)| in_range(*t)).copied());
        }
        let after = since.map_or(0, |s| s.sequence);
        let mut sequenced: Vec<(u64, Sequenced<NotificationId>)> = feed
            .entries
            .values()
            .filter(|e| !e.notification.is_expired(now) && e.changed > after)
            .map(|e| (e.changed, Sequenced::Upsert(e.notification.id)))
            .collect();
        sequenced.extend(
            feed.removals.iter().filter(|(s, ..)| *s > after).map(|(s, id, r)| (*s, Sequenced::Removed(*id, *r))),
        );
        let (page, next, more) = plan_page(since, now_nanos, &horizon, expirations, sequenced, limit);
        let items = page
            .into_iter()
            .filter_map(|p| match p {
                Planned::Upsert(id) => {
                    feed.entries.get(&id).map(|e| Change::Upserted(Box::new(e.notification.clone())))
                }
                Planned::Removed(id, reason) => Some(Change::Removed { id, reason }),
            })
            .collect();
        Ok(Changes { items, next, more })
    }

    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        let now = self.clock.now();
        let mut feeds = self.feeds.lock().map_err(poisoned)?;
        let mut stats = SweepStats::default();
        for feed in feeds.values_mut() {
            let expired: Vec<NotificationId> =
                feed.entries.values().filter(|e| e.notification.is_expired(now)).map(|e| e.notification.id).collect();
            for id in expired {
                if let Some(e) = feed.entries.remove(&id) {
                    feed.swept.push((timestamp_to_nanos(e.notification.expiration), id));
                    stats.expired += 1;
                }
            }
        }
        Ok(stats)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
