//! Review finding (LOW, memory): every replacement pushes one more entry into the global expiry
//! heap and nothing removes the stale one before its expiration time, so index memory grows with
//! the number of replacements, not with the number of notifications.
//!
//! `LogStore::append` (src/engine/log/mod.rs, the replacement branch) calls
//! `index.expect_expiry(...)` (now `index.change_expiry`) for the new version; the old version's
//! `(expiration, feed, id key)` stays in the `BinaryHeap` (src/engine/log/index.rs,
//! `Index::expiry`) until its time comes and the sweep discards it. Services update notifications
//! in place by `appNotificationId` all the time (a counter, a "3 new messages" summary): one
//! notification replaced once a minute with the default 30-day expiration leaves 43,200 stale heap
//! entries (16 bytes each, about 690 KB) behind. The budget is 64 bytes of index per
//! notification, measured; `LogStore::index_stats` counts the heap and blows through it.
//!
//! Fix: when a replacement keeps the expiration window (or the exact expiration), do not push a
//! second entry (the sweep already re-checks the entry's current expiration), or keep one
//! expiry entry per notification keyed by id (e.g. a per-window bucket of id keys that the
//! replacement moves), or rebuild the heap when stale entries exceed the live count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification};

#[test]
fn replacing_the_same_notifications_keeps_index_memory_within_the_budget() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { durability: Durability::Buffered, ..LogConfig::default() };
    let store =
        LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    let f = FeedKey::new("user/app").unwrap();
    for round in 0..100 {
        clock.advance(SignedDuration::from_mins(1));
        let expires = clock.now() + SignedDuration::from_hours(30 * 24);
        for n in 0..20 {
            let new = NewNotification::visual("app.example", &format!("counter-{n}"), &format!("{round} new"))
                .expiring_at(expires);
            store.append(&f, new).unwrap();
        }
    }
    let stats = store.index_stats();
    assert_eq!(stats.notifications, 20);
    assert!(
        stats.bytes_per_notification() <= 64.0 * 4.0,
        "{} index bytes per notification after 100 replacements each (budget 64): {stats:?}",
        stats.bytes_per_notification()
    );
}
