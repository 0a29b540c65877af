//! Regression (found by the `store_model` fuzz target, finding 9, buffered durability): a write
//! that fails part-way through a flush of several segments' buffers poisons the store, and the
//! reopen finds, of that flush, the buffers written before the failure and not the others: a
//! prefix of each file's records, not a prefix of the operations, as after a power loss. When
//! the lost buffer held a delete and a written one a later append of the freed
//! `appNotificationId`, the files hold two live notifications with that app id.
//!
//! A scanning open now resolves such a pair: it deletes the older (the delete the loss did not
//! keep), keeps the newer, and says so in the recovery report; the delete is a record, so the
//! older does not come back at the next open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{
    Clock, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, SharedClock, StoreError,
};

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    let shared: SharedClock = Arc::new(clock.clone());
    let config =
        LogConfig { durability: Durability::Buffered, window: SignedDuration::from_secs(600), ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/db"), config, shared, Arc::new(fs.clone())).unwrap()
}

fn expiring_in(clock: &ManualClock, app_id: &str, seconds: i64) -> NewNotification {
    let mut new = NewNotification::visual("app.example", app_id, app_id);
    new.expiration = Some(clock.now() + SignedDuration::from_secs(seconds));
    new
}

#[test]
fn after_a_write_failing_between_segments_of_one_flush_the_open_deletes_the_older_of_two_notifications_with_one_app_id()
{
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let f = FeedKey::new("user/app.example").unwrap();
    let store = open(&fs, &clock);
    // Segment 1: the window five minutes out; segment 2: two hours out. Both durable.
    let early = store.append(&f, expiring_in(&clock, "early", 300)).unwrap();
    let first = store.append(&f, expiring_in(&clock, "order", 7200)).unwrap();
    store.sync().unwrap();

    // Buffered: the delete of `first` (segment 2), then an append of the freed app id
    // (segment 1).
    assert!(store.delete(&f, first.id).unwrap());
    let second = store.append(&f, expiring_in(&clock, "order", 300)).unwrap();
    assert_ne!(second.id, first.id);
    // The sync flushes segment 1's buffer, then fails writing segment 2's.
    fs.set_plan(FaultPlan { fail_write: Some(2), ..FaultPlan::default() });
    assert!(matches!(store.sync(), Err(StoreError::Io { .. })));
    assert!(matches!(store.append(&f, expiring_in(&clock, "late", 300)), Err(StoreError::Poisoned)));
    drop(store);

    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock);
    // Durable before the failure: all there.
    assert_eq!(store.get(&f, early.id).unwrap().as_ref(), Some(&early));
    // Segment 1 kept the append; segment 2 lost the delete; the open deleted `first` again.
    assert_eq!(store.get(&f, second.id).unwrap().as_ref(), Some(&second));
    assert_eq!(store.get(&f, first.id).unwrap(), None);
    assert_eq!(store.recovery_report().duplicate_app_ids_removed, vec![(f.as_str().to_string(), first.id)]);
    let listed = store.list(&f, &ListQuery::default()).unwrap().items;
    assert_eq!(listed.iter().filter(|n| n.app_notification_id == "order").count(), 1);
    assert_eq!(store.get_by_app_id(&f, "order").unwrap().map(|n| n.id), Some(second.id));
    assert_eq!(store.count(&f).unwrap().total, listed.len() as u64, "count agrees with the list");
    // The store takes writes again; an append of "order" replaces `second`.
    let third = store.append(&f, expiring_in(&clock, "order", 300)).unwrap();
    assert_eq!(third.id, second.id, "a replacement keeps the id");
    drop(store);
    // The resolution was written: `first` stays gone after a reopen (and a scan).
    let store = open(&fs, &clock);
    assert_eq!(store.get(&f, first.id).unwrap(), None);
    assert_eq!(store.get_by_app_id(&f, "order").unwrap().map(|n| n.id), Some(second.id));
}
