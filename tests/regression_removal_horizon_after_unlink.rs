//! Regression (found by the model check, `model_check_log`): a change token that had not seen a
//! removal the feed already forgot was served after a sweep and a reopen, so the client missed
//! that removal.
//!
//! A feed forgets its oldest removal when its removal log overflows, and the token check refuses
//! tokens older than what it forgot. After a restart the log engine rebuilds that horizon by
//! replaying the removal records. When the record that made the feed forget lived in a window
//! the sweep unlinked, and every removal the feed still remembered lived in later windows, the
//! sweep did not carry the feed's removal log (with its horizon) forward: after the reopen the
//! feed believed it had forgotten nothing. Now the sweep also carries the log when the horizon
//! may lie in a segment it unlinks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError, StoreOptions};

fn open(dir: &std::path::Path, clock: &ManualClock) -> LogStore {
    let options = StoreOptions { removal_log_capacity: 2, ..StoreOptions::default() };
    LogStore::open(dir, LogConfig { options, ..LogConfig::default() }, Arc::new(clock.clone())).unwrap()
}

#[test]
fn a_token_behind_a_forgotten_removal_stays_stale_after_its_window_is_unlinked_and_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let feed = FeedKey::new("alice/app").unwrap();
    let store = open(dir.path(), &clock);
    let soon = clock.now() + SignedDuration::from_mins(30);
    let short_lived = store.append(&feed, NewNotification::raw("app", "short", "x").expiring_at(soon)).unwrap();
    let token = store.changes(&feed, None, 100).unwrap().next;
    // Its delete goes to the short-lived window; the two later deletes to the 30-day window,
    // and with a removal log of 2 the first delete is forgotten.
    assert!(store.delete(&feed, short_lived.id).unwrap());
    for app in ["b", "c"] {
        store.append(&feed, NewNotification::raw("app", app, "x")).unwrap();
        assert!(store.delete_by_app_id(&feed, app).unwrap());
    }
    assert!(matches!(store.changes(&feed, Some(token), 100), Err(StoreError::StaleToken)));

    clock.advance(SignedDuration::from_hours(2));
    let stats = store.sweep_expired().unwrap();
    assert!(stats.files_removed >= 1, "the short-lived window was unlinked: {stats:?}");
    drop(store);

    let store = open(dir.path(), &clock);
    assert!(
        matches!(store.changes(&feed, Some(token), 100), Err(StoreError::StaleToken)),
        "a token that missed a forgotten removal must stay stale after the reopen"
    );
}
