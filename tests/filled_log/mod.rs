//! A small log store filled the same way by the tests of `verify` and `backup`: 3 feeds, 3
//! expiration windows of 10 minutes, segments small enough to roll.

use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use notifeed::engine::log::LogConfig;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan, FileSystem};
use notifeed::{
    Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, Notification, ReadState, StateUpdate,
};

/// Records [`fill`] writes.
pub const RECORDS: u64 = 76;
/// Notifications [`fill`] leaves held.
pub const HELD: u64 = 55;

pub fn feed(n: usize) -> FeedKey {
    FeedKey::new(format!("user{n}/app.example")).unwrap()
}

/// Small segments (they roll) and 10-minute windows.
pub fn config() -> LogConfig {
    LogConfig { max_segment_bytes: 4096, window: SignedDuration::from_secs(600), ..LogConfig::default() }
}

/// A notification of about 130 bytes of content expiring in window `w`.
pub fn note(clock: &ManualClock, app: &str, w: i64) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("content of {app} {}", "x".repeat(100)))
        .expiring_at(clock.now() + SignedDuration::from_secs(600 * w + 300))
}

/// 60 appends over feeds 0..3 and windows 1..=3, 10 replacements, 5 deletes and one state
/// change: [`RECORDS`] records, [`HELD`] notifications held.
pub fn fill(store: &dyn FeedStore, clock: &ManualClock) {
    for i in 0..60 {
        store.append(&feed(i % 3), note(clock, &format!("n{i}"), (i % 3) as i64 + 1)).unwrap();
    }
    for i in 0..10 {
        store.append(&feed(i % 3), note(clock, &format!("n{i}"), 3)).unwrap();
    }
    for i in 10..15 {
        let n = store.get_by_app_id(&feed(i % 3), &format!("n{i}")).unwrap().unwrap();
        assert!(store.delete(&feed(i % 3), n.id).unwrap());
    }
    let n = store.get_by_app_id(&feed(0), "n30").unwrap().unwrap();
    let read = StateUpdate { read_state: Some(ReadState::Read), user_action_state: None };
    store.update_state(&feed(0), n.id, read).unwrap();
}

/// Every notification of feeds 0..3, newest first per feed (each feed in one page).
pub fn contents(store: &dyn FeedStore) -> Vec<Vec<Notification>> {
    (0..3)
        .map(|f| {
            let query = ListQuery { limit: ListQuery::MAX_LIMIT, ..ListQuery::default() };
            let page = store.list(&feed(f), &query).unwrap();
            assert!(page.next.is_none());
            page.items
        })
        .collect()
}

/// The segment files in `dir`, in id order.
pub fn segment_paths(fs: &FaultFileSystem, dir: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        fs.list(Path::new(dir)).unwrap().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    paths.sort();
    paths
}

/// A fault plan failing the Nth operation of one kind.
pub type Cut = fn(u64) -> FaultPlan;

/// Every kind of cut the fault-injecting file system makes: a write failed or torn, a sync, a
/// directory sync or a removal failed. A test tries N = 1, 2, ... of each until the operation
/// under test runs through.
pub const EVERY_CUT: [Cut; 5] = [
    |n| FaultPlan { fail_write: Some(n), ..FaultPlan::default() },
    |n| FaultPlan { tear_write: Some(n), ..FaultPlan::default() },
    |n| FaultPlan { fail_sync: Some(n), ..FaultPlan::default() },
    |n| FaultPlan { fail_sync_dir_at: Some(n), ..FaultPlan::default() },
    |n| FaultPlan { fail_remove: Some(n), ..FaultPlan::default() },
];
