//! `ModelStore`: the plainest possible [`FeedStore`], the reference the engines are checked
//! against.
//!
//! Everything is a linear scan over `BTreeMap`s behind one mutex; nothing is clever, so each rule
//! of the trait is visible in a few lines. "Durability" is a process-global registry keyed by
//! [`Env::namespace`]: opening the same namespace again sees the same state, which is what the
//! conformance suite's reopen checks need.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, LazyLock};

use jiff::Timestamp;
use notifeed::changes::{FeedHorizon, Planned, Sequenced, check_token, plan_page};
use notifeed::clock::timestamp_to_nanos;
use notifeed::store::validate_for_append;
use notifeed::{
    Change, ChangeToken, Changes, Clock, Counts, Cursor, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification,
    Notification, NotificationId, Page, RemovalReason, StateUpdate, StoreError, StoreOptions, SweepStats,
};
use parking_lot::Mutex;

use crate::conformance::Env;

/// Opens the model store of `env.namespace` (the same state every time): an `Opener`.
pub fn open(env: &Env) -> Result<Box<dyn FeedStore>, StoreError> {
    Ok(Box::new(ModelStore::open(env)))
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Arc<Mutex<State>>>>> = LazyLock::new(Default::default);

/// The reference implementation of [`FeedStore`].
#[derive(Debug)]
pub struct ModelStore {
    state: Arc<Mutex<State>>,
    clock: ManualClock,
    options: StoreOptions,
}

#[derive(Debug, Default)]
struct State {
    /// The last sequence number given out, store-wide (so every feed's is monotonic forever).
    sequence: u64,
    feeds: BTreeMap<FeedKey, Feed>,
}

#[derive(Debug)]
struct Feed {
    latest_sequence: u64,
    /// Every notification not yet swept, live or expired.
    entries: BTreeMap<NotificationId, Entry>,
    /// Explicit removals (delete, group delete, eviction), oldest first, at most
    /// `removal_log_capacity`.
    removals: VecDeque<(u64, NotificationId, RemovalReason)>,
    forgotten_removals_through: u64,
    /// Swept expirations: (expiration in nanoseconds, id).
    swept: Vec<(i64, NotificationId)>,
    forgotten_expirations_through: i64,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            latest_sequence: 0,
            entries: BTreeMap::new(),
            removals: VecDeque::new(),
            forgotten_removals_through: 0,
            swept: Vec::new(),
            forgotten_expirations_through: i64::MIN,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    notification: Notification,
    /// The sequence of its last append or replacement: the list order.
    position: u64,
    /// The sequence of its last change of any kind.
    sequence: u64,
}

impl ModelStore {
    /// The store of `env.namespace`, created empty the first time.
    pub fn open(env: &Env) -> Self {
        let state = REGISTRY.lock().entry(env.namespace.clone()).or_default().clone();
        Self { state, clock: env.clock.clone(), options: env.options.clone() }
    }
}

impl State {
    fn next_sequence(&mut self, feed: &FeedKey) -> u64 {
        self.sequence += 1;
        self.feeds.entry(feed.clone()).or_default().latest_sequence = self.sequence;
        self.sequence
    }
}

impl Feed {
    fn live(&self, now: Timestamp) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(move |e| !e.notification.is_expired(now))
    }

    fn live_id(&self, id: NotificationId, now: Timestamp) -> Option<&Entry> {
        self.entries.get(&id).filter(|e| !e.notification.is_expired(now))
    }

    fn live_app_id(&self, app_id: &str, now: Timestamp) -> Option<NotificationId> {
        self.live(now).find(|e| e.notification.app_notification_id() == app_id).map(|e| e.notification.id)
    }

    fn remember_removal(&mut self, sequence: u64, id: NotificationId, reason: RemovalReason, capacity: usize) {
        self.removals.push_back((sequence, id, reason));
        while self.removals.len() > capacity {
            if let Some((forgotten, _, _)) = self.removals.pop_front() {
                self.forgotten_removals_through = forgotten;
            }
        }
    }

    /// Every expiration at or before now still remembered: (expiration, id).
    fn expirations(&self, now: Timestamp) -> Vec<(i64, NotificationId)> {
        let unswept = self
            .entries
            .values()
            .filter(|e| e.notification.is_expired(now))
            .map(|e| (timestamp_to_nanos(e.notification.expiration), e.notification.id));
        unswept.chain(self.swept.iter().copied()).collect()
    }
}

impl ModelStore {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Forgets the expirations older than the retention, for every read of `changes`.
    fn forget_old_expirations(&self, feed: &mut Feed, now: Timestamp) -> i64 {
        let horizon = timestamp_to_nanos(now)
            .saturating_sub(i64::try_from(self.options.expiry_log_retention.as_nanos()).unwrap_or(i64::MAX));
        let mut forgotten = feed.forgotten_expirations_through;
        for (expiration, _) in feed.expirations(now) {
            if expiration <= horizon {
                forgotten = forgotten.max(expiration);
            }
        }
        feed.swept.retain(|(expiration, _)| *expiration > horizon);
        feed.forgotten_expirations_through = forgotten;
        forgotten
    }

    fn remove(&self, state: &mut State, feed: &FeedKey, id: NotificationId, reason: RemovalReason) {
        let sequence = state.next_sequence(feed);
        let f = state.feeds.entry(feed.clone()).or_default();
        f.entries.remove(&id);
        f.remember_removal(sequence, id, reason, self.options.removal_log_capacity);
    }
}

impl FeedStore for ModelStore {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        let now = self.now();
        let expiration = validate_for_append(&new, &self.options.limits, now)?;
        let mut state = self.state.lock();
        let f = state.feeds.entry(feed.clone()).or_default();
        if let Some(id) = f.live_app_id(&new.app_notification_id, now) {
            let created = f.entries[&id].notification.created;
            let sequence = state.next_sequence(feed);
            let mut notification = Notification::from_new(id, new, expiration, now);
            notification.created = created;
            let entry = Entry { notification: notification.clone(), position: sequence, sequence };
            state.feeds.entry(feed.clone()).or_default().entries.insert(id, entry);
            return Ok(notification);
        }
        loop {
            let f = state.feeds.entry(feed.clone()).or_default();
            if f.live(now).count() < self.options.feed_capacity.max(1) {
                break;
            }
            let oldest = f.live(now).min_by_key(|e| e.position).map(|e| e.notification.id);
            let Some(oldest) = oldest else { break };
            self.remove(&mut state, feed, oldest, RemovalReason::Evicted);
        }
        let sequence = state.next_sequence(feed);
        let notification = Notification::from_new(NotificationId::new_random(), new, expiration, now);
        let entry = Entry { notification: notification.clone(), position: sequence, sequence };
        state.feeds.entry(feed.clone()).or_default().entries.insert(notification.id, entry);
        Ok(notification)
    }

    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        let now = self.now();
        let state = self.state.lock();
        Ok(state.feeds.get(feed).and_then(|f| f.live_id(id, now)).map(|e| e.notification.clone()))
    }

    fn get_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError> {
        let now = self.now();
        let state = self.state.lock();
        let Some(f) = state.feeds.get(feed) else { return Ok(None) };
        Ok(f.live_app_id(app_notification_id, now).map(|id| f.entries[&id].notification.clone()))
    }

    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        let now = self.now();
        let state = self.state.lock();
        let Some(f) = state.feeds.get(feed) else { return Ok(Page { items: vec![], next: None }) };
        let before = query.cursor.map_or(u64::MAX, |c| c.before_position);
        let mut matching: Vec<&Entry> =
            f.live(now).filter(|e| e.position < before && query.matches(&e.notification)).collect();
        matching.sort_by_key(|e| std::cmp::Reverse(e.position));
        let limit = query.effective_limit();
        let more = matching.len() > limit;
        matching.truncate(limit);
        let next = if more { matching.last().map(|e| Cursor { before_position: e.position }) } else { None };
        Ok(Page { items: matching.into_iter().map(|e| e.notification.clone()).collect(), next })
    }

    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        let now = self.now();
        let state = self.state.lock();
        let Some(f) = state.feeds.get(feed) else { return Ok(Counts::default()) };
        let total = f.live(now).count() as u64;
        let unread = f.live(now).filter(|e| e.notification.read_state == notifeed::ReadState::Unread).count() as u64;
        Ok(Counts { total, unread })
    }

    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        let now = self.now();
        let mut state = self.state.lock();
        if state.feeds.get(feed).and_then(|f| f.live_id(id, now)).is_none() {
            return Ok(None);
        }
        let sequence = state.next_sequence(feed);
        let f = state.feeds.entry(feed.clone()).or_default();
        let Some(entry) = f.entries.get_mut(&id) else { return Ok(None) };
        if let Some(read) = update.read_state {
            entry.notification.read_state = read;
        }
        if let Some(action) = update.user_action_state {
            entry.notification.user_action_state = action;
        }
        entry.notification.last_modified = now;
        entry.sequence = sequence;
        Ok(Some(entry.notification.clone()))
    }

    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.state.lock();
        if state.feeds.get(feed).and_then(|f| f.live_id(id, now)).is_none() {
            return Ok(false);
        }
        self.remove(&mut state, feed, id, RemovalReason::Deleted);
        Ok(true)
    }

    fn delete_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.state.lock();
        let Some(id) = state.feeds.get(feed).and_then(|f| f.live_app_id(app_notification_id, now)) else {
            return Ok(false);
        };
        self.remove(&mut state, feed, id, RemovalReason::Deleted);
        Ok(true)
    }

    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        let now = self.now();
        let mut state = self.state.lock();
        let Some(f) = state.feeds.get(feed) else { return Ok(0) };
        let mut members: Vec<(u64, NotificationId)> = f
            .live(now)
            .filter(|e| e.notification.group_name() == Some(group))
            .map(|e| (e.position, e.notification.id))
            .collect();
        members.sort();
        for (_, id) in &members {
            self.remove(&mut state, feed, *id, RemovalReason::GroupDeleted);
        }
        Ok(members.len() as u64)
    }

    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        let now = self.now();
        let now_nanos = timestamp_to_nanos(now);
        let mut state = self.state.lock();
        let mut empty = Feed::default();
        let f = state.feeds.get_mut(feed).unwrap_or(&mut empty);
        let forgotten_expirations_through = self.forget_old_expirations(f, now);
        let horizon = FeedHorizon {
            latest_sequence: f.latest_sequence,
            forgotten_removals_through: f.forgotten_removals_through,
            forgotten_expirations_through,
        };
        if let Some(token) = since {
            check_token(token, &horizon)?;
        }
        let expirations = match since {
            None => Vec::new(),
            Some(token) => f
                .expirations(now)
                .into_iter()
                .filter(|(expiration, _)| *expiration > token.expired_through_nanos && *expiration <= now_nanos)
                .collect(),
        };
        let after = since.map_or(0, |t| t.sequence);
        let mut sequenced: Vec<(u64, Sequenced<NotificationId>)> = f
            .live(now)
            .filter(|e| e.sequence > after)
            .map(|e| (e.sequence, Sequenced::Upsert(e.notification.id)))
            .collect();
        sequenced.extend(
            f.removals
                .iter()
                .filter(|(sequence, _, _)| *sequence > after)
                .map(|(sequence, id, reason)| (*sequence, Sequenced::Removed(*id, *reason))),
        );
        let (planned, next, more) = plan_page(since, now_nanos, &horizon, expirations, sequenced, limit);
        let items = planned
            .into_iter()
            .map(|p| match p {
                Planned::Upsert(id) => Change::Upserted(Box::new(f.entries[&id].notification.clone())),
                Planned::Removed(id, reason) => Change::Removed { id, reason },
            })
            .collect();
        Ok(Changes { items, next, more })
    }

    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        let now = self.now();
        let mut state = self.state.lock();
        let mut expired = 0;
        for f in state.feeds.values_mut() {
            let gone: Vec<NotificationId> =
                f.entries.values().filter(|e| e.notification.is_expired(now)).map(|e| e.notification.id).collect();
            for id in gone {
                if let Some(e) = f.entries.remove(&id) {
                    f.swept.push((timestamp_to_nanos(e.notification.expiration), id));
                    expired += 1;
                }
            }
        }
        Ok(SweepStats { expired, ..SweepStats::default() })
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
