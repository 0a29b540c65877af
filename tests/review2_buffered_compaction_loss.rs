//! Review finding (HIGH, fixed: compaction syncs everything before it drops a record): with `Durability::Buffered`, compaction drops a notification's synced
//! record because a later record superseded it, while that later record is still only in the
//! engine's write buffer of *another* window's segment. A crash then loses the later record
//! (allowed: it was never synced) and the earlier one (not allowed: `sync()` had made it
//! durable): the notification vanishes entirely.
//!
//! Scenario: append notifications expiring in window W1, `sync()`; replace them with versions
//! expiring hours later (the placement rule puts the replacements in the later window W10,
//! whose segment keeps them in the engine buffer); a sweep that expires nothing writes no
//! `Expired`/`Removals` record, so it syncs nothing, then compacts W1's sealed, now fully dead
//! segment: compaction syncs only W1's active segment (IMPORTANT 13), copies nothing, unlinks
//! the original and syncs the directory. A crash now keeps neither version.
//!
//! Why: `compaction.rs` decides "dead" from the in-memory index, which in Buffered mode points at
//! records that are not durable yet; only the compacted window's active segment is synced.
//!
//! Fix: before unlinking (step 5), make every record that supersedes a dropped one durable,
//! e.g. flush and sync every dirty segment (`sync_many` over all dirty ids, like a `Sync`
//! request) under the writer's lock before dropping anything, or compact only in
//! `Durability::Always` / only records superseded by synced records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification};

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    let config = LogConfig {
        durability: Durability::Buffered,
        window: SignedDuration::from_hours(1),
        max_segment_bytes: 4096,
        index_snapshot: false,
        ..LogConfig::default()
    };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

fn note(app: &str, expires: jiff::Timestamp) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("{app} {}", "x".repeat(800))).expiring_at(expires)
}

#[test]
fn a_synced_notification_survives_a_crash_after_compaction_when_its_replacement_was_not_synced() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("alice/app").unwrap();
    let soon = clock.now() + SignedDuration::from_mins(90);
    let later = clock.now() + SignedDuration::from_hours(10);
    // Four fill the first segment of W1 (4 KiB), the fifth rolls it: the first is sealed.
    let apps: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
    let replaced = &apps[..4];

    let store = open(&fs, &clock);
    for app in &apps {
        store.append(&f, note(app, soon)).unwrap();
    }
    // Every original is durable from here on.
    store.sync().unwrap();
    // Acknowledged, not synced: these may be lost by a crash (Buffered), the originals may not.
    // They fit W10's first segment, so no roll syncs them.
    for app in replaced {
        store.append(&f, note(app, later)).unwrap();
    }

    // Control: a crash now keeps every original.
    let control = open(&fs.crash(None), &clock);
    for app in &apps {
        assert!(control.get_by_app_id(&f, app).unwrap().is_some(), "{app} lost without compaction");
    }
    drop(control);

    let stats = store.sweep_expired().unwrap();
    assert_eq!(stats.expired, 0);
    assert!(stats.files_removed > 0, "nothing was compacted: {stats:?}");
    let crashed = fs.crash(None);
    drop(store);

    let store = open(&crashed, &clock);
    let missing: Vec<&String> = apps.iter().filter(|app| store.get_by_app_id(&f, app).unwrap().is_none()).collect();
    assert!(
        missing.is_empty(),
        "notifications made durable by sync() vanished after compaction and a crash: {missing:?}"
    );
}
