//! Regression (found by the `store_model` fuzz target, buffered durability): after a process
//! crash a buffered store held two live notifications with the same `appNotificationId`, a
//! state no sequence of operations produces; `get_by_app_id` answered one of them and `list`
//! showed both.
//!
//! With `Durability::Buffered` each segment keeps its own write buffer, and a read flushes only
//! the buffer of the segment it reads. A delete goes to the segment of the notification it
//! removes; an append of the freed `appNotificationId` goes to the segment of its own
//! expiration window. When a read flushed the second segment but not the first, a process
//! crash kept the new append (in the page cache) and lost the delete (still in the engine's
//! buffer): each file kept a prefix of its records, as the module documentation promises, but
//! together they are no prefix of the operations, and recovery replays both notifications as
//! live. A power loss does the same when only the second file's bytes were synced (a segment
//! roll synced one file). Fixed: a flush writes every segment's buffer, so the records the OS
//! holds are always a prefix of the operations, and a roll syncs every written segment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, SharedClock};

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    let shared: SharedClock = Arc::new(clock.clone());
    let config =
        LogConfig { durability: Durability::Buffered, window: SignedDuration::from_secs(600), ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/db"), config, shared, Arc::new(fs.clone())).unwrap()
}

fn feed() -> FeedKey {
    FeedKey::new("user/app.example").unwrap()
}

fn expiring_in(clock: &ManualClock, app_id: &str, seconds: i64) -> NewNotification {
    let mut new = NewNotification::visual("app.example", app_id, app_id);
    new.expiration = Some(clock.now() + SignedDuration::from_secs(seconds));
    new
}

#[test]
fn a_process_crash_never_leaves_two_live_notifications_with_one_app_notification_id() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock);

    // `first` goes to the segment of the window two hours out; reading it flushes that
    // segment's buffer to the OS.
    let first = store.append(&feed(), expiring_in(&clock, "order", 7200)).unwrap();
    assert!(store.get(&feed(), first.id).unwrap().is_some());
    // The delete goes to the same segment, and stays in its buffer.
    assert!(store.delete(&feed(), first.id).unwrap());
    // The freed app id is appended again, into the segment of the window ten minutes out;
    // reading it flushes that segment only.
    let second = store.append(&feed(), expiring_in(&clock, "order", 300)).unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(store.get(&feed(), second.id).unwrap().map(|n| n.id), Some(second.id));

    // The process dies: the OS keeps what it was given (every unsynced byte), the engine's
    // buffers are gone. (Captured before the store is dropped, since its drop syncs.)
    let after_crash = fs.crash(Some(1 << 20));
    drop(store);
    let store = open(&after_crash, &clock);

    // Either the delete survived (then `second` may be there), or it was lost and so was
    // everything after it: never both notifications.
    let listed = store.list(&feed(), &ListQuery { limit: 10, ..ListQuery::default() }).unwrap().items;
    let with_app_id: Vec<_> = listed.iter().filter(|n| n.app_notification_id() == "order").map(|n| n.id).collect();
    assert!(with_app_id.len() <= 1, "two live notifications with appNotificationId \"order\": {with_app_id:?}");
    let by_app_id = store.get_by_app_id(&feed(), "order").unwrap().map(|n| n.id);
    assert_eq!(by_app_id, with_app_id.first().copied(), "get_by_app_id and list disagree");
}
