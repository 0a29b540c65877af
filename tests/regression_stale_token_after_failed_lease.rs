//! Regression (found by the `store_model` fuzz target, `Durability::Always`): a change token
//! the store itself issued was refused as stale (ahead of the feed) after the store reopened,
//! although nothing was lost.
//!
//! The sequence: a clean close with a failing sync, a reopen (the next LSN jumps to the LSN
//! lease), an append, reopens from the index snapshot, a token (whose sequence is the feed's
//! latest as that store reported it: just below the lease), then an append whose write of
//! the raised LSN lease (`WATERMARK.tmp`) fails and poisons the store. The close of a poisoned
//! store writes no index snapshot, so the next open scans the segments: it replays the
//! notification (one record) and yet answered `StaleToken` for that token, as if the feed's
//! latest sequence were below it. A reopen that loads the snapshot served the token.
//!
//! The cause: the index snapshot stored the writer's next LSN, which an open moves up to the
//! LSN lease, and a snapshot open reported every feed's latest sequence as that minus one, a
//! million sequences above the highest LSN ever assigned; a scan (rightly) reported the highest
//! LSN on disk. Fixed: the snapshot (format version 2) and the sequence floor record the
//! highest LSN assigned, so both opens report the same sequence and keep refusing tokens that
//! are truly ahead (`conformance::changes::token_ahead_of_the_feed_is_stale`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, SharedClock};

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    let shared: SharedClock = Arc::new(clock.clone());
    let config = LogConfig { window: SignedDuration::from_secs(600), ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/db"), config, shared, Arc::new(fs.clone())).unwrap()
}

fn feed() -> FeedKey {
    FeedKey::new("user/app.example").unwrap()
}

fn expiring_in(clock: &ManualClock, app_id: &str, seconds: i64) -> NewNotification {
    let mut new = NewNotification::raw("app.example", app_id, "raw");
    new.expiration = Some(clock.now() + SignedDuration::from_secs(seconds));
    new
}

#[test]
fn a_token_the_store_issued_is_served_after_a_failed_lease_write_and_a_scanning_reopen() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock);
    // A close whose second sync fails (the store is dropped with the fault armed).
    fs.set_plan(FaultPlan { fail_sync: Some(2), ..FaultPlan::default() });
    drop(store);
    fs.set_plan(FaultPlan::default());

    let store = open(&fs, &clock);
    store.append(&feed(), expiring_in(&clock, "kept", 18_761)).unwrap();
    drop(store);
    for _ in 0..3 {
        drop(open(&fs, &clock));
    }
    let store = open(&fs, &clock);
    let token = store.changes(&feed(), None, 100).unwrap().next;
    drop(store);

    // The next append must raise the LSN lease; writing it fails, and the store is poisoned.
    let store = open(&fs, &clock);
    fs.set_plan(FaultPlan { fail_write: Some(1), ..FaultPlan::default() });
    assert!(store.append(&feed(), expiring_in(&clock, "unknown", 257)).is_err());
    assert!(store.is_poisoned());
    drop(store);
    fs.set_plan(FaultPlan::default());

    let store = open(&fs, &clock);
    assert_eq!(store.recovery_report().records, 1, "the kept notification is replayed");
    let changes = store.changes(&feed(), Some(token), 100);
    assert!(changes.is_ok(), "the token the store issued ({token:?}) is refused: {changes:?}");
}
