//! Preallocation (`LogConfig::preallocate_bytes`): a segment file is extended with zeros ahead
//! of its records, so syncing a record changes no file size.
//! * the zeros are there while the store runs, and cut at a clean close and by a sweep;
//! * after a crash the zeros are preallocated space, not a torn tail: nothing is reported,
//!   every acknowledged record is there, and appends go on over the zeros;
//! * with preallocation off, files end at their records;
//! * by default a `Buffered` store writes no zeros ahead (only `Always` pays for them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification};

const SEGMENT: &str = "/data/0000000001.seg";

fn open(fs: &FaultFileSystem, clock: &ManualClock, config: LogConfig) -> LogStore {
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

fn note(app: &str, clock: &ManualClock) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("content of {app}"))
        .expiring_at(clock.now() + SignedDuration::from_mins(30))
}

/// About where the records end: past the last nonzero byte (the zeros run from there to the
/// end of the file).
fn records_end(fs: &FaultFileSystem) -> usize {
    let bytes = fs.read_all(Path::new(SEGMENT)).unwrap();
    bytes.iter().rposition(|&b| b != 0).unwrap() + 1
}

#[test]
fn zeros_are_written_ahead_and_cut_at_a_clean_close() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let store = open(&fs, &clock, LogConfig::default());
    for i in 0..3 {
        store.append(&f, note(&format!("a{i}"), &clock)).unwrap();
    }
    let size = fs.read_all(Path::new(SEGMENT)).unwrap().len();
    assert!(size >= 64 << 10, "no zeros written ahead: {size} bytes");
    drop(store);
    let closed = fs.read_all(Path::new(SEGMENT)).unwrap().len();
    assert!(closed < 4096, "the clean close kept {closed} bytes");

    let off = LogConfig { preallocate_bytes: Some(0), ..LogConfig::default() };
    let fs2 = FaultFileSystem::new();
    let store = open(&fs2, &clock, off);
    for i in 0..3 {
        store.append(&f, note(&format!("a{i}"), &clock)).unwrap();
    }
    assert_eq!(fs2.read_all(Path::new(SEGMENT)).unwrap().len(), closed, "the same records, no zeros");
}

#[test]
fn after_a_crash_the_zeros_are_preallocated_space_not_a_torn_tail() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let store = open(&fs, &clock, LogConfig::default());
    let acked: Vec<_> = (0..5).map(|i| store.append(&f, note(&format!("a{i}"), &clock)).unwrap()).collect();
    let end = records_end(&fs);
    let crashed = fs.crash(None);
    drop(store);

    let store = open(&crashed, &clock, LogConfig::default());
    assert!(store.recovery_report().torn_tails.is_empty(), "{:?}", store.recovery_report());
    for n in &acked {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
    // Appends go on over the zeros, where the records ended.
    let more = store.append(&f, note("more", &clock)).unwrap();
    let size = crashed.read_all(Path::new(SEGMENT)).unwrap().len();
    assert!(size >= 64 << 10);
    assert!(records_end(&crashed) > end);
    let crashed_again = crashed.crash(None);
    drop(store);
    let store = open(&crashed_again, &clock, LogConfig::default());
    assert_eq!(store.get(&f, more.id).unwrap().as_ref(), Some(&more));
    assert_eq!(store.list(&f, &ListQuery::default()).unwrap().items.len(), 6);
}

#[test]
fn a_sweep_cuts_the_zeros_and_reports_them_reclaimed() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let store = open(&fs, &clock, LogConfig::default());
    store.append(&f, note("a", &clock)).unwrap();
    let before = fs.read_all(Path::new(SEGMENT)).unwrap().len();
    let stats = store.sweep_expired().unwrap();
    let after = fs.read_all(Path::new(SEGMENT)).unwrap().len();
    assert!(after < before);
    assert_eq!(stats.bytes_reclaimed, (before - after) as u64, "{stats:?}");
    // The next append writes zeros ahead again.
    store.append(&f, note("b", &clock)).unwrap();
    assert!(fs.read_all(Path::new(SEGMENT)).unwrap().len() >= 64 << 10);
}

#[test]
fn by_default_only_an_always_store_writes_zeros_ahead() {
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let size_after_three = |config: LogConfig| {
        let fs = FaultFileSystem::new();
        let store = open(&fs, &clock, config);
        for i in 0..3 {
            store.append(&f, note(&format!("a{i}"), &clock)).unwrap();
        }
        store.sync().unwrap();
        fs.read_all(Path::new(SEGMENT)).unwrap().len()
    };
    let buffered = LogConfig { durability: Durability::Buffered, ..LogConfig::default() };
    assert_eq!(buffered.preallocate_bytes(), 0);
    let records = size_after_three(buffered.clone());
    assert!(records < 4096, "a buffered store wrote zeros ahead: {records} bytes");
    assert!(size_after_three(LogConfig::default()) >= 64 << 10, "an always store wrote no zeros ahead");
    let asked = LogConfig { preallocate_bytes: Some(64 << 10), ..buffered };
    assert!(size_after_three(asked) >= 64 << 10, "zeros asked for by a buffered store were not written");
}
