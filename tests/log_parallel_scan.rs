//! A scanning open on the real file system scans segments on several threads (one whole
//! segment each): it must find what a scan in order finds, and report the same first error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, StoreError};

fn config() -> LogConfig {
    // Small segments and many windows: a dozen segment files; no snapshot, so opens scan.
    LogConfig {
        window: SignedDuration::from_secs(600),
        max_segment_bytes: 8 << 10,
        index_snapshot: false,
        durability: notifeed::Durability::Buffered,
        ..LogConfig::default()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Appends 300 notifications over 3 feeds and 4 windows, with deletes and replacements (120
/// app ids), and syncs; returns every feed's list.
fn fill(store: &LogStore, clock: &ManualClock) -> Vec<Vec<notifeed::Notification>> {
    let feeds: Vec<FeedKey> = (0..3).map(|i| FeedKey::new(format!("user-{i}/app")).unwrap()).collect();
    for i in 0..300u32 {
        let mut new =
            NewNotification::raw("app.example", &format!("app-{}", i % 120), &"x".repeat(100 + (i as usize % 50)));
        new.group_name = Some(format!("g{}", i % 4));
        new.expiration = Some(clock.now() + SignedDuration::from_secs(700 + 600 * i64::from(i % 4)));
        let n = store.append(&feeds[(i % 3) as usize], new).unwrap();
        if i % 17 == 0 {
            store.delete(&feeds[(i % 3) as usize], n.id).unwrap();
        }
    }
    store.sync().unwrap();
    feeds.iter().map(|f| store.list(f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap().items).collect()
}

#[test]
fn a_scan_on_several_threads_finds_what_a_scan_in_order_finds() {
    let clock = ManualClock::at_epoch_2026();
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), config(), Arc::new(clock.clone())).unwrap();
    let before = fill(&store, &clock);
    drop(store);
    assert!(segments(dir.path()).len() >= 8, "{:?}", segments(dir.path()));

    // The same bytes on the in-memory file system, which scans in order.
    let fs = FaultFileSystem::new();
    let mem = Path::new("/db");
    std::fs::read_dir(dir.path()).unwrap().for_each(|e| {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            use notifeed::engine::log::fs::FileSystem;
            fs.create_dir_all(mem).unwrap();
            let file = fs.open(&mem.join(e.file_name()), true).unwrap();
            file.write_all_at(&std::fs::read(e.path()).unwrap(), 0).unwrap();
        }
    });
    let in_order = LogStore::open_with_fs(mem, config(), Arc::new(clock.clone()), Arc::new(fs)).unwrap();
    let threaded = LogStore::open(dir.path(), config(), Arc::new(clock.clone())).unwrap();
    for (i, expected) in before.iter().enumerate() {
        let f = FeedKey::new(format!("user-{i}/app")).unwrap();
        let q = ListQuery { limit: 1000, ..ListQuery::default() };
        assert_eq!(&threaded.list(&f, &q).unwrap().items, expected);
        assert_eq!(&in_order.list(&f, &q).unwrap().items, expected);
    }
    let (a, b) = (threaded.recovery_report(), in_order.recovery_report());
    assert_eq!((a.segments, a.records), (b.segments, b.records));
}

#[test]
fn a_scan_on_several_threads_reports_the_first_corrupt_segment() {
    let clock = ManualClock::at_epoch_2026();
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), config(), Arc::new(clock.clone())).unwrap();
    fill(&store, &clock);
    drop(store);
    let files = segments(dir.path());
    // Damage a record in the middle of two segments: the open names the lower one, every time
    // (a scan in order stops there).
    let damage = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    };
    damage(&files[1]);
    damage(&files[files.len() - 5]);
    let name = files[1].file_name().unwrap().to_string_lossy().into_owned();
    for _ in 0..5 {
        match LogStore::open(dir.path(), config(), Arc::new(clock.clone())) {
            Err(StoreError::Corruption { location, .. }) => assert!(location.contains(&name), "{location}"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a damaged sealed segment opened"),
        }
    }
}
