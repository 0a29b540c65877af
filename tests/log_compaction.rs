//! Compaction (run by the sweep): sealed segments of windows still to come whose records are
//! mostly dead (replaced, changed, deleted, evicted) are copied without the dead records and
//! unlinked.
//!
//! * every answer (lists, counts, gets, changes from old tokens) is the same after compaction,
//!   and after a reopen from the snapshot or from a scan;
//! * disk use drops and the sweep reports the bytes it rewrote;
//! * nothing deleted comes back: tombstones are copied, only superseded records are dropped;
//! * a crash between writing the copy and unlinking the original (both files on disk) replays
//!   each record once;
//! * a zero budget turns it off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{
    ChangeToken, Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, ReadState, StateUpdate,
    StoreOptions,
};

const FEEDS: [&str; 2] = ["alice/app.example", "bob/app.example"];

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        options: StoreOptions { feed_capacity: 40, ..StoreOptions::default() },
        window: SignedDuration::from_hours(1),
        max_segment_bytes: 4096,
        // Clean reopens load the snapshot, which compaction must keep right.
        index_snapshot: true,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clock: &ManualClock, config: LogConfig) -> LogStore {
    LogStore::open(dir, config, Arc::new(clock.clone())).unwrap()
}

fn note(app: &str, version: u32, group: Option<&str>, clock: &ManualClock) -> NewNotification {
    let mut n = NewNotification::raw("app.example", app, &format!("{app} v{version} {}", "x".repeat(200)))
        .expiring_at(clock.now() + SignedDuration::from_hours(10));
    n.group_name = group.map(str::to_owned);
    n
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn view(store: &LogStore, tokens: &[(usize, ChangeToken)]) -> Vec<String> {
    let mut out = Vec::new();
    for name in FEEDS {
        let f = feed(name);
        out.push(format!("{name} {:?}", store.list(&f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap()));
        out.push(format!("{name} {:?}", store.count(&f).unwrap()));
        for app in (0..20).map(|i| format!("a{i}")).chain((0..8).map(|c| format!("c{c}"))) {
            out.push(format!("{name} {app} {:?}", store.get_by_app_id(&f, &app).unwrap()));
        }
        out.push(format!("{name} {:?}", store.changes(&f, None, 1000).unwrap().items));
    }
    for (i, t) in tokens {
        out.push(format!("token {i} {:?}", store.changes(&feed(FEEDS[*i]), Some(*t), 1000).map(|c| c.items)));
    }
    out
}

fn assert_same(got: &[String], want: &[String], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}");
    }
}

/// Per feed: keepers and victims first (their segments stay mostly live), then a churn of
/// replacements with the victims' deletes in the middle of it (those segments end up mostly
/// dead, tombstones included), state changes, a group delete and cap evictions.
fn churn(store: &LogStore, clock: &ManualClock) -> Vec<(usize, ChangeToken)> {
    let mut tokens = Vec::new();
    for (fi, name) in FEEDS.iter().enumerate() {
        let f = feed(name);
        for i in 0..20 {
            store.append(&f, note(&format!("a{i}"), 0, Some(["g1", "g2"][i % 2]), clock)).unwrap();
        }
        tokens.push((fi, store.changes(&f, None, 1000).unwrap().next));
    }
    for round in 0..5 {
        for (fi, name) in FEEDS.iter().enumerate() {
            let f = feed(name);
            for c in 0..8 {
                store.append(&f, note(&format!("c{c}"), round, Some("churn"), clock)).unwrap();
            }
            if round == 2 {
                // The victims a15..a19: their appends stay in mostly live segments, their
                // tombstones land among the churn.
                for i in 15..20 {
                    assert!(store.delete_by_app_id(&f, &format!("a{i}")).unwrap());
                }
                tokens.push((fi, store.changes(&f, None, 1000).unwrap().next));
            }
        }
    }
    for (fi, name) in FEEDS.iter().enumerate() {
        let f = feed(name);
        for i in 0..3 {
            let n = store.get_by_app_id(&f, &format!("a{i}")).unwrap().unwrap();
            let read = StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() };
            store.update_state(&f, n.id, read).unwrap();
        }
        if fi == 1 {
            assert_eq!(store.delete_group(&f, "churn").unwrap(), 8);
        }
        // Appends beyond the capacity (40) evict the oldest.
        for i in 0..20 {
            store.append(&f, note(&format!("late{i}"), 0, None, clock)).unwrap();
        }
        tokens.push((fi, store.changes(&f, None, 1000).unwrap().next));
    }
    tokens
}

#[test]
fn compaction_drops_only_dead_records_and_every_answer_stays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let store = open(dir.path(), &clock, config());
    let tokens = churn(&store, &clock);
    let before = view(&store, &tokens);
    let disk_before = segment_bytes(dir.path());

    let stats = store.sweep_expired().unwrap();
    assert_eq!(stats.expired, 0);
    assert!(stats.bytes_rewritten > 0 && stats.files_removed > 0, "nothing was compacted: {stats:?}");
    let disk_after = segment_bytes(dir.path());
    assert!(disk_after < disk_before, "{disk_after} bytes after, {disk_before} before");
    assert_eq!(disk_before - disk_after, stats.bytes_reclaimed, "{stats:?}");
    assert_same(&view(&store, &tokens), &before, "after compaction");
    // A second sweep finds nothing more worth copying.
    assert_eq!(store.sweep_expired().unwrap().bytes_rewritten, 0);

    // Writes go on after it, into the window's new last segment.
    let f = feed(FEEDS[0]);
    let after = store.append(&f, note("after", 0, None, &clock)).unwrap();
    let mut expected = view(&store, &tokens);
    drop(store);

    let scan_dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" && entry.file_name() != "INDEX" {
            std::fs::copy(entry.path(), scan_dir.path().join(entry.file_name())).unwrap();
        }
    }
    let reopened = open(dir.path(), &clock, config());
    assert_eq!(reopened.recovery_report().index_snapshot, IndexSnapshot::Loaded);
    assert_same(&view(&reopened, &tokens), &expected, "reopened from the snapshot");
    let scanned = open(scan_dir.path(), &clock, config());
    assert_eq!(scanned.recovery_report().index_snapshot, IndexSnapshot::Absent);
    assert_same(&view(&scanned, &tokens), &expected, "reopened by a scan");
    assert_eq!(scanned.get(&f, after.id).unwrap().unwrap(), after);

    // Expiry still works on compacted segments, and nothing comes back after it.
    clock.set(clock.now() + SignedDuration::from_hours(11));
    let swept = reopened.sweep_expired().unwrap();
    assert!(swept.expired > 0);
    expected = view(&reopened, &[]);
    drop(reopened);
    let last = open(dir.path(), &clock, LogConfig { index_snapshot: false, ..config() });
    assert_same(&view(&last, &[]), &expected, "after expiry and a scan");
    for name in FEEDS {
        assert!(last.list(&feed(name), &ListQuery::default()).unwrap().items.is_empty());
    }
}

#[test]
fn a_crash_between_the_copy_and_the_unlink_replays_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let store = open(dir.path(), &clock, config());
    let tokens = churn(&store, &clock);
    let before = view(&store, &tokens);
    store.sync().unwrap();
    let originals: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| {
            std::fs::copy(e.path(), saved.path().join(e.file_name())).unwrap();
            e.file_name()
        })
        .collect();
    assert!(store.sweep_expired().unwrap().files_removed > 0);
    drop(store);
    // Put the compacted originals back beside their copies, as a crash before the unlink
    // reached the disk would leave them.
    let mut restored = 0;
    for name in &originals {
        if !dir.path().join(name).exists() {
            std::fs::copy(saved.path().join(name), dir.path().join(name)).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0);
    let store = open(dir.path(), &clock, config());
    assert!(matches!(store.recovery_report().index_snapshot, IndexSnapshot::Rejected { .. }));
    assert_same(&view(&store, &tokens), &before, "with both the originals and their copies");
}

#[test]
fn a_zero_budget_turns_compaction_off() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let store = open(dir.path(), &clock, LogConfig { compaction_bytes_per_sweep: 0, ..config() });
    churn(&store, &clock);
    let stats = store.sweep_expired().unwrap();
    assert_eq!((stats.bytes_rewritten, stats.files_removed), (0, 0));
}
