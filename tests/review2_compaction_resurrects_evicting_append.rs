//! Review finding (HIGH, fixed: replaying an `Expired` record removes whatever version of the notification is indexed): compaction resurrects an expired notification whose first record was
//! an evicting `Append`. After a reopen by scan, the notification is back, live, with its
//! original content and expiration.
//!
//! Scenario: a feed at capacity; appending N evicts the oldest (an `Append` carrying an
//! eviction, which compaction always keeps); N is then replaced with a shorter expiration (the
//! `Replace` goes to N's original window, the placement rule). Once the shorter expiration
//! passes, a sweep counts N (an `Expired` record listing N with the *replacement's* expiration)
//! and then compacts N's segment: the `Replace` is dropped (no index entry points at it any
//! more), the evicting `Append` is kept. A scan replays the `Append` (N, original expiration),
//! and the `Expired` record removes N only when the entry's expiration equals the listed one
//! (`recovery::replay`, `Op::Expired`), which it no longer does: N is live again.
//!
//! Why: FORMAT.md invariant 4 says compaction only drops records "which a later record in a
//! window no earlier supersedes"; for a swept notification the superseding record is the
//! `Expired` record, but it matches only the exact last version, and the kept evicting `Append`
//! is an older version.
//!
//! Fix: when compaction keeps an evicting `Append` whose notification is not live in the index,
//! keep the notification's latest record too (or rewrite the copy without the notification,
//! e.g. as a record that only evicts); or make replay of `Expired` remove the listed id
//! whatever its current expiration when the entry's sequence is below the `Expired` record's LSN.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreOptions};

fn open(dir: &Path, clock: &ManualClock) -> LogStore {
    let config = LogConfig {
        options: StoreOptions { feed_capacity: 2, ..StoreOptions::default() },
        window: SignedDuration::from_hours(1),
        max_segment_bytes: 4096,
        index_snapshot: false,
        compaction_dead_fraction: 0.3,
        ..LogConfig::default()
    };
    LogStore::open(dir, config, Arc::new(clock.clone())).unwrap()
}

fn note(app: &str, size: usize, expires: jiff::Timestamp) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("{app} {}", "x".repeat(size))).expiring_at(expires)
}

#[test]
fn an_expired_notification_stays_gone_after_compaction_and_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("alice/app").unwrap();
    let far = clock.now() + SignedDuration::from_hours(10);
    let soon = clock.now() + SignedDuration::from_hours(1);

    let store = open(dir.path(), &clock);
    store.append(&f, note("v1", 10, far)).unwrap();
    store.append(&f, note("v2", 10, far)).unwrap();
    // The feed is full: this append evicts v1 (an Append with an eviction: always kept).
    store.append(&f, note("n", 800, far)).unwrap();
    // A shorter expiration; the Replace stays in n's window (10 h).
    store.append(&f, note("n", 800, soon)).unwrap();
    // Fillers in other feeds, same window, so the segment rolls and is mostly dead.
    let fillers: Vec<FeedKey> = (0..3).map(|i| FeedKey::new(format!("user{i}/app")).unwrap()).collect();
    for (i, u) in fillers.iter().enumerate() {
        store.append(u, note(&format!("fill{i}"), 800, far)).unwrap();
    }
    for (i, u) in fillers.iter().enumerate().take(2) {
        assert!(store.delete_by_app_id(u, &format!("fill{i}")).unwrap());
    }

    clock.advance(SignedDuration::from_hours(2));
    let stats = store.sweep_expired().unwrap();
    assert_eq!(stats.expired, 1, "{stats:?}");
    assert!(stats.bytes_rewritten > 0, "nothing was compacted: {stats:?}");
    assert!(store.get_by_app_id(&f, "n").unwrap().is_none());
    drop(store);

    let store = open(dir.path(), &clock);
    let back = store.get_by_app_id(&f, "n").unwrap().map(|n| (n.id, n.expiration));
    assert!(back.is_none(), "the expired notification came back after compaction and a reopen: {back:?}");
    let listed = store.list(&f, &Default::default()).unwrap().items;
    assert_eq!(listed.len(), 1, "{listed:?}");
}
