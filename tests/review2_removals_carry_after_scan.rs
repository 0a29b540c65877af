//! Review finding (MEDIUM, fixed: a scan marks a `Removals` record's segment as holding removals; the root cause predates the three new commits, but the snapshot now
//! makes scan and snapshot opens disagree): a `Removals` record's segment loses its
//! "highest removal LSN" when the store is reopened by a scan, so when that record's own window
//! passes, the sweep does not carry the feed's removal log forward again, unlinks the only
//! record of the removals, and after the next reopen a change token taken before a delete is
//! accepted and the delete is never reported.
//!
//! Scenario: append N (expiring in 2 h), take a token, delete N; 4 h later a sweep unlinks N's
//! window and carries the removal log forward in a `Removals` record (window of
//! now + `expiry_log_retention`, 1 h here). Reopen (scan). 8 h later a sweep unlinks the
//! `Removals` record's window; reopen. `changes(token)` returns no change at all, where it must
//! report the removal or refuse the token as stale. Without the reopen in between (or with a
//! snapshot open), the sweep carries the log again and the answer is right.
//!
//! Why: the sweep writes `Removals` with `removes: true` (so the writer sets the segment's
//! `max_removal_lsn`), but `recovery::to_op` returns `removes = false` for `Record::Removals`, so
//! a scan rebuilds `max_removal_lsn = 0` for a segment holding only carried removals; the
//! sweep's `victim_removals` is then 0 and nothing is carried.
//!
//! Fix: in `recovery::to_op`, return `removes = true` for `Removals` (matching the write path
//! and the snapshot), or compute `victim_removals` from the feeds' removal logs rather than
//! from per-segment state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Change, Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError, StoreOptions};

fn open(dir: &Path, clock: &ManualClock) -> LogStore {
    let options = StoreOptions { expiry_log_retention: SignedDuration::from_hours(1), ..StoreOptions::default() };
    let config = LogConfig { options, index_snapshot: false, ..LogConfig::default() };
    LogStore::open(dir, config, Arc::new(clock.clone())).unwrap()
}

/// Returns whether `changes(token)` after the second unlink is right (removal reported, or the
/// token refused as stale).
fn scenario(reopen_between_sweeps: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("alice/app").unwrap();
    let mut store = open(dir.path(), &clock);
    let keeper = NewNotification::visual("app.example", "keeper", "t")
        .expiring_at(clock.now() + SignedDuration::from_hours(100));
    store.append(&f, keeper).unwrap();
    let n = store
        .append(
            &f,
            NewNotification::visual("app.example", "n", "t").expiring_at(clock.now() + SignedDuration::from_hours(2)),
        )
        .unwrap();
    let token = store.changes(&f, None, 100).unwrap().next;
    assert!(store.delete(&f, n.id).unwrap());

    clock.advance(SignedDuration::from_hours(4));
    assert!(store.sweep_expired().unwrap().files_removed > 0);
    if reopen_between_sweeps {
        drop(store);
        store = open(dir.path(), &clock);
    }
    clock.advance(SignedDuration::from_hours(8));
    assert!(store.sweep_expired().unwrap().files_removed > 0);
    drop(store);

    let store = open(dir.path(), &clock);
    match store.changes(&f, Some(token), 100) {
        Err(StoreError::StaleToken) => Ok(()),
        Ok(page) if page.items.iter().any(|c| matches!(c, Change::Removed { id, .. } if *id == n.id)) => Ok(()),
        Ok(page) => {
            Err(format!("the delete of {} is missing from changes since an older token: {:?}", n.id, page.items))
        }
        Err(e) => Err(format!("unexpected error: {e}")),
    }
}

#[test]
fn a_removal_stays_reported_after_its_carried_log_window_is_unlinked_across_a_scan_reopen() {
    // Control: without a reopen between the sweeps the log is carried again.
    scenario(false).unwrap();
    scenario(true).unwrap();
}
