//! Regression (found by the `store_model` fuzz target): an acknowledged append was lost at a
//! power loss because the segment it went to had been found, not created, by the open before.
//!
//! A new segment's directory entry is synced before any record goes into it (FORMAT.md,
//! invariant 3). But when that directory sync failed, the append failed and poisoned the store,
//! and the file stayed behind with its header. The reopen found the file, took it as the active
//! segment of its window, and the next append of that window wrote into it and synced only the
//! file, so its name was still not durable: a power loss removed the file and the acknowledged
//! append with it. The same hole held for records: one whose sync failed was replayed by the
//! reopen (the page cache still had it) and then lost at a power loss, after the store had
//! served it. Recovery now syncs every segment it keeps and then the directory (invariant 7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, SharedClock, StoreError};

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    let shared: SharedClock = Arc::new(clock.clone());
    let config = LogConfig { window: SignedDuration::from_secs(600), ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/db"), config, shared, Arc::new(fs.clone())).unwrap()
}

fn feed() -> FeedKey {
    FeedKey::new("user/app.example").unwrap()
}

#[test]
fn an_append_into_a_segment_whose_name_was_never_synced_survives_a_power_loss() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock);
    let mut soon = NewNotification::visual("app.example", "soon", "expires in 40 minutes");
    soon.expiration = Some(clock.now() + SignedDuration::from_secs(2400));
    store.append(&feed(), soon).unwrap();

    // An append to a new window (the default 30-day expiration) creates a segment; its
    // directory sync fails.
    fs.set_plan(FaultPlan { fail_sync_dir: true, ..FaultPlan::default() });
    let failed = store.append(&feed(), NewNotification::visual("app.example", "lost", "never acknowledged"));
    assert!(matches!(failed, Err(StoreError::Io { .. })), "{failed:?}");
    assert!(store.is_poisoned());
    drop(store);

    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock);
    let kept = store.append(&feed(), NewNotification::visual("app.example", "kept", "acknowledged")).unwrap();
    drop(store);

    let after = open(&fs.crash(None), &clock);
    assert_eq!(after.get_by_app_id(&feed(), "kept").unwrap().map(|n| n.id), Some(kept.id));
    assert!(after.get_by_app_id(&feed(), "soon").unwrap().is_some());
}

#[test]
fn a_record_the_reopen_replayed_after_a_failed_sync_survives_a_power_loss() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock);
    store.append(&feed(), NewNotification::visual("app.example", "first", "acknowledged")).unwrap();

    // The record reaches the file, its sync fails: the caller gets an error.
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    let failed = store.append(&feed(), NewNotification::visual("app.example", "unsynced", "outcome unknown"));
    assert!(failed.is_err());
    drop(store);

    // The reopen finds the record and serves it ...
    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock);
    let served = store.get_by_app_id(&feed(), "unsynced").unwrap().expect("replayed from the page cache");
    drop(store);

    // ... so it must not disappear at a power loss.
    let after = open(&fs.crash(None), &clock);
    assert_eq!(after.get_by_app_id(&feed(), "unsynced").unwrap().map(|n| n.id), Some(served.id));
    assert!(after.get_by_app_id(&feed(), "first").unwrap().is_some());
}
