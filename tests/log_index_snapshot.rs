//! The index snapshot (`LogConfig::index_snapshot`): a clean close writes the index to `INDEX`,
//! and the next open rebuilds from it instead of decoding every record, but only when every
//! segment is byte for byte what it was at the close.
//!
//! * the reopen from a snapshot answers every query exactly as the store did before the close,
//!   and as a reopen that scans every record;
//! * a snapshot is read once (the open removes it), and one that is stale (the segments grew,
//!   shrank or changed since), damaged, or back after a crash is never used: the open scans;
//! * corruption in a segment is still reported by the open, snapshot or not;
//! * nothing is written when snapshots are off or the store is poisoned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan, FileSystem};
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{
    ChangeToken, Clock, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, ReadState,
    StateUpdate, StoreError, StoreOptions,
};

const FEEDS: [&str; 3] = ["alice/app.example", "bob/app.example", "carol/app.example"];

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn at(minutes: i64) -> Timestamp {
    ManualClock::at_epoch_2026().now() + SignedDuration::from_mins(minutes)
}

fn note(app: &str, group: Option<&str>, expires_in_minutes: i64, now: Timestamp) -> NewNotification {
    let mut n = NewNotification::raw("app.example", app, &format!("content of {app}"))
        .expiring_at(now + SignedDuration::from_mins(expires_in_minutes));
    n.group_name = group.map(str::to_owned);
    n
}

fn config() -> LogConfig {
    LogConfig {
        options: StoreOptions { feed_capacity: 12, removal_log_capacity: 5, ..StoreOptions::default() },
        window: SignedDuration::from_mins(10),
        max_segment_bytes: 4096,
        // Off by default.
        index_snapshot: true,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clock: &ManualClock, config: LogConfig) -> Result<LogStore, StoreError> {
    LogStore::open(dir, config, Arc::new(clock.clone()))
}

/// Everything a client can see of the three feeds, as text (so it compares whole).
fn view(store: &LogStore, tokens: &[(usize, ChangeToken)]) -> String {
    let mut out = String::new();
    for name in FEEDS {
        let f = feed(name);
        let page = store.list(&f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
        out += &format!("{name} list {:?}\n", page.items);
        out += &format!("{name} count {:?}\n", store.count(&f).unwrap());
        for g in ["g1", "g2"] {
            let q = ListQuery { limit: 1000, group: Some(g.into()), ..ListQuery::default() };
            out += &format!("{name} group {g} {:?}\n", store.list(&f, &q).unwrap().items);
        }
        for i in 0..40 {
            out += &format!("{name} app-{i} {:?}\n", store.get_by_app_id(&f, &format!("app-{i}")).unwrap());
        }
        // Items only: a restarted store's next token may carry a higher sequence (every feed
        // reports at least the store's sequence floor after an open, scan or snapshot).
        out += &format!("{name} changes {:?}\n", store.changes(&f, None, 1000).unwrap().items);
    }
    for (i, token) in tokens {
        out += &format!("token {i} {:?}\n", store.changes(&feed(FEEDS[*i]), Some(*token), 1000).map(|c| c.items));
    }
    out
}

fn assert_same_lines(got: &str, want: &str) {
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {i} differs");
    }
    assert_eq!(got.lines().count(), want.lines().count());
}

/// A history with every kind of record: appends in groups, replacements, state changes,
/// deletes, a group delete, cap evictions, and a sweep that counts expirations and unlinks a
/// window. Returns change tokens taken along the way.
fn history(store: &LogStore, clock: &ManualClock) -> Vec<(usize, ChangeToken)> {
    let mut tokens = Vec::new();
    for i in 0..40 {
        let fi = i % 3;
        let f = feed(FEEDS[fi]);
        let group = [Some("g1"), Some("g2"), None][i % 3];
        let lifetime = if i % 4 == 0 { 5 } else { 600 };
        let n = store.append(&f, note(&format!("app-{i}"), group, lifetime, clock.now())).unwrap();
        if i % 5 == 0 {
            store.append(&f, note(&format!("app-{i}"), Some("g2"), 700, clock.now())).unwrap();
        }
        if i % 7 == 0 {
            let read = StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() };
            store.update_state(&f, n.id, read).unwrap();
        }
        if i % 9 == 0 {
            store.delete(&f, n.id).unwrap();
        }
        if i % 10 == 3 {
            tokens.push((fi, store.changes(&f, None, 1000).unwrap().next));
        }
        clock.set(clock.now() + SignedDuration::from_secs(10));
    }
    store.delete_group(&feed(FEEDS[1]), "g1").unwrap();
    clock.set(clock.now() + SignedDuration::from_mins(30));
    let swept = store.sweep_expired().unwrap();
    assert!(swept.expired > 0 && swept.files_removed > 0, "the sweep must count and unlink: {swept:?}");
    tokens.push((2, store.changes(&feed(FEEDS[2]), None, 1000).unwrap().next));
    tokens
}

#[test]
fn a_reopen_from_the_snapshot_answers_exactly_as_before_the_close_and_as_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let scan_dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock, config()).unwrap();
    let tokens = history(&store, &clock);
    let before = view(&store, &tokens);
    store.close().unwrap();
    assert!(dir.path().join("INDEX").exists(), "a clean close writes the snapshot");

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" && entry.file_name() != "INDEX" {
            std::fs::copy(entry.path(), scan_dir.path().join(entry.file_name())).unwrap();
        }
    }
    let scanned = open(scan_dir.path(), &clock, config()).unwrap();
    assert_eq!(scanned.recovery_report().index_snapshot, IndexSnapshot::Absent);
    assert!(scanned.recovery_report().records > 0);

    let reopened = open(dir.path(), &clock, config()).unwrap();
    assert_eq!(reopened.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    assert_eq!(reopened.recovery_report().records, 0, "no record is decoded");
    assert!(!dir.path().join("INDEX").exists(), "the open removes the snapshot it read");
    assert_same_lines(&view(&reopened, &tokens), &before);
    for name in FEEDS {
        let f = feed(name);
        let all = ListQuery { limit: 1000, ..ListQuery::default() };
        assert_eq!(reopened.list(&f, &all).unwrap(), scanned.list(&f, &all).unwrap());
        assert_eq!(reopened.count(&f).unwrap(), scanned.count(&f).unwrap());
    }
    assert_eq!(reopened.index_stats().notifications, scanned.index_stats().notifications);

    // The reopened store goes on: new sequences follow the old tokens, the expiry order and the
    // app id index work, and a second clean close round-trips again.
    let f = feed(FEEDS[0]);
    let token = reopened.changes(&f, None, 1000).unwrap().next;
    let fresh = reopened.append(&f, note("app-new", Some("g1"), 20, clock.now())).unwrap();
    let replaced = reopened.append(&f, note("app-1", None, 20, clock.now())).unwrap();
    let changes = reopened.changes(&f, Some(token), 1000).unwrap();
    let ids: Vec<_> = changes.items.iter().map(|c| format!("{c:?}")).collect();
    assert_eq!(changes.items.len(), 2, "{ids:?}");
    assert_eq!(reopened.get_by_app_id(&f, "app-new").unwrap().unwrap().id, fresh.id);
    assert_eq!(reopened.get_by_app_id(&f, "app-1").unwrap().unwrap(), replaced);
    clock.set(clock.now() + SignedDuration::from_mins(25));
    assert!(reopened.sweep_expired().unwrap().expired >= 2, "the expiry order was rebuilt");
    let again = view(&reopened, &[]);
    drop(reopened);
    let third = open(dir.path(), &clock, config()).unwrap();
    assert_eq!(third.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    assert_same_lines(&view(&third, &[]), &again);
}

#[test]
fn a_stale_snapshot_is_rejected_and_the_scan_keeps_what_came_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let store = open(dir.path(), &clock, config()).unwrap();
    let kept = store.append(&f, note("kept", None, 60, clock.now())).unwrap();
    let doomed = store.append(&f, note("doomed", None, 60, clock.now())).unwrap();
    drop(store);
    let old_snapshot = std::fs::read(dir.path().join("INDEX")).unwrap();

    let store = open(dir.path(), &clock, config()).unwrap();
    assert_eq!(store.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    let later = store.append(&f, note("later", None, 60, clock.now())).unwrap();
    assert!(store.delete(&f, doomed.id).unwrap());
    drop(store);
    std::fs::write(dir.path().join("INDEX"), &old_snapshot).unwrap();

    let store = open(dir.path(), &clock, config()).unwrap();
    let IndexSnapshot::Rejected { reason } = &store.recovery_report().index_snapshot else {
        panic!("a stale snapshot was used: {:?}", store.recovery_report());
    };
    assert!(reason.contains("changed since"), "{reason}");
    assert_eq!(store.get(&f, kept.id).unwrap().unwrap(), kept);
    assert_eq!(store.get(&f, later.id).unwrap().unwrap(), later);
    assert_eq!(store.get(&f, doomed.id).unwrap(), None, "the delete after the snapshot holds");
}

#[test]
fn a_damaged_snapshot_is_rejected_and_every_byte_of_it_matters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let store = open(dir.path(), &clock, config()).unwrap();
    let ids: Vec<_> =
        (0..5).map(|i| store.append(&f, note(&format!("a{i}"), Some("g1"), 60, clock.now())).unwrap()).collect();
    drop(store);
    let good = std::fs::read(dir.path().join("INDEX")).unwrap();
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        std::fs::write(dir.path().join("INDEX"), &bad).unwrap();
        let store = open(dir.path(), &clock, config()).unwrap();
        assert!(
            matches!(store.recovery_report().index_snapshot, IndexSnapshot::Rejected { .. }),
            "flip at byte {i}: {:?}",
            store.recovery_report().index_snapshot
        );
        for n in &ids {
            assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n), "flip at byte {i}");
        }
        store.close().unwrap();
        // The close wrote a fresh snapshot; damage the original again next round.
    }
}

#[test]
fn corruption_in_a_segment_is_still_reported_by_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let store = open(dir.path(), &clock, config()).unwrap();
    for i in 0..20 {
        store.append(&f, note(&format!("a{i}"), None, 60, clock.now())).unwrap();
    }
    drop(store);
    assert!(dir.path().join("INDEX").exists());
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0x01; // inside the first record's body
    std::fs::write(&segment, &bytes).unwrap();
    match open(dir.path(), &clock, config()) {
        Err(StoreError::Corruption { location, .. }) => assert!(location.contains("offset"), "{location}"),
        other => panic!("a flipped segment opened: {:?}", other.map(|s| s.recovery_report().clone())),
    }
}

#[test]
fn a_snapshot_back_after_a_crash_is_not_used_once_the_segments_grew() {
    let fs = FaultFileSystem::new();
    let dir = Path::new("/store");
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let open_on =
        |fs: &FaultFileSystem| LogStore::open_with_fs(dir, config(), Arc::new(clock.clone()), Arc::new(fs.clone()));
    let store = open_on(&fs).unwrap();
    let first = store.append(&f, note("first", None, 60, clock.now())).unwrap();
    drop(store);
    let snapshot = fs.read_all(&dir.join("INDEX")).unwrap();
    let store = open_on(&fs).unwrap();
    assert_eq!(store.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    assert!(fs.read_all(&dir.join("INDEX")).is_none(), "the open removes the snapshot");
    // Acknowledged (Always: synced); then a power loss that brings the snapshot back (as an
    // unlink whose directory sync never happened would).
    let second = store.append(&f, note("second", None, 60, clock.now())).unwrap();
    let crashed = fs.crash(None);
    drop(store);
    let back = crashed.open(&dir.join("INDEX"), true).unwrap();
    back.write_all_at(&snapshot, 0).unwrap();
    back.sync_data().unwrap();
    crashed.sync_dir(dir).unwrap();
    let store = open_on(&crashed).unwrap();
    assert!(matches!(store.recovery_report().index_snapshot, IndexSnapshot::Rejected { .. }));
    assert_eq!(store.get(&f, first.id).unwrap().unwrap(), first);
    assert_eq!(store.get(&f, second.id).unwrap().unwrap(), second);
}

#[test]
fn no_snapshot_is_written_when_snapshots_are_off_or_the_store_is_poisoned() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let off = LogConfig { index_snapshot: false, ..config() };
    let store = open(dir.path(), &clock, off.clone()).unwrap();
    store.append(&f, note("a", None, 60, clock.now())).unwrap();
    store.close().unwrap();
    assert!(!dir.path().join("INDEX").exists());

    let fs = FaultFileSystem::new();
    let root = Path::new("/poisoned");
    let store = LogStore::open_with_fs(root, config(), Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    store.append(&f, note("a", None, 60, clock.now())).unwrap();
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    assert!(store.append(&f, note("b", None, 60, clock.now())).is_err());
    assert!(store.is_poisoned());
    drop(store);
    assert!(!fs.list(root).unwrap().iter().any(|p| p.ends_with("INDEX")), "a poisoned store wrote a snapshot");
}

#[test]
fn a_buffered_store_closes_to_a_snapshot_holding_every_buffered_write() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let f = feed(FEEDS[0]);
    let mut buffered = LogConfig { durability: Durability::Buffered, ..config() };
    buffered.options.feed_capacity = 100;
    let store = open(dir.path(), &clock, buffered.clone()).unwrap();
    let written: Vec<_> =
        (0..30).map(|i| store.append(&f, note(&format!("b{i}"), None, 60, clock.now())).unwrap()).collect();
    drop(store);
    let store = open(dir.path(), &clock, buffered).unwrap();
    assert_eq!(store.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    for n in &written {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
}
