//! The model check run with the model as the engine: a smoke test of the harness, plus proof that
//! it catches a store that differs from the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod model;
mod model_check;

use notifeed::{
    ChangeToken, Changes, Counts, FeedKey, FeedStore, ListQuery, NewNotification, Notification, NotificationId, Page,
    StateUpdate, StoreError, SweepStats,
};

#[test]
fn model_agrees_with_itself() {
    model_check::check_engine_against_model(model::open);
}

/// The model with one subtle bug: `count` reports every notification as unread.
struct UnreadMiscounted(Box<dyn FeedStore>);

impl FeedStore for UnreadMiscounted {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        self.0.append(feed, new)
    }
    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        self.0.get(feed, id)
    }
    fn get_by_app_id(&self, feed: &FeedKey, app_id: &str) -> Result<Option<Notification>, StoreError> {
        self.0.get_by_app_id(feed, app_id)
    }
    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        self.0.list(feed, query)
    }
    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        let counts = self.0.count(feed)?;
        Ok(Counts { unread: counts.total, ..counts })
    }
    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        self.0.update_state(feed, id, update)
    }
    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        self.0.delete(feed, id)
    }
    fn delete_by_app_id(&self, feed: &FeedKey, app_id: &str) -> Result<bool, StoreError> {
        self.0.delete_by_app_id(feed, app_id)
    }
    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        self.0.delete_group(feed, group)
    }
    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        self.0.changes(feed, since, limit)
    }
    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        self.0.sweep_expired()
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.0.sync()
    }
}

fn open_miscounting(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    Ok(Box::new(UnreadMiscounted(model::open(env)?)))
}

#[test]
#[should_panic(expected = "the engine disagrees with the model")]
fn a_store_that_differs_from_the_model_is_caught() {
    model_check::check_engine_against_model(open_miscounting);
}
