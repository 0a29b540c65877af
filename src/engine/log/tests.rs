//! Behaviour of the whole engine on the fault-injecting file system: torn tails, bit flips,
//! no resurrection, poisoning, crashes, bounded descriptors, index size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::fs::{FaultFileSystem, FaultPlan, FileSystem};
use super::record::{self, SEGMENT_HEADER_LEN};
use super::*;
use crate::{Clock, FeedKey, ManualClock, NewNotification};

const DIR: &str = "/data";

fn open(fs: &FaultFileSystem, clock: &ManualClock, config: LogConfig) -> Result<LogStore, StoreError> {
    LogStore::open_with_fs(Path::new(DIR), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn at(clock: &ManualClock, minutes: i64) -> Timestamp {
    let start = ManualClock::at_epoch_2026().now();
    let _ = clock;
    start + SignedDuration::from_mins(minutes)
}

fn note(app: &str, expires: Timestamp) -> NewNotification {
    NewNotification::visual("app.example", app, &format!("title of {app}")).expiring_at(expires)
}

fn buffered() -> LogConfig {
    LogConfig { durability: Durability::Buffered, ..LogConfig::default() }
}

fn segment_paths(fs: &FaultFileSystem) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|p| segment::parse_segment_file_name(p).is_some())
        .collect();
    paths.sort();
    paths
}

/// Frame boundaries of a segment image.
fn frame_ends(bytes: &[u8], segment_id: u64) -> Vec<usize> {
    let (_, _, salt) = record::decode_segment_header(bytes).unwrap();
    let segment_id = record::frame_key(segment_id, salt);
    let mut ends = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Ok(frame) = record::decode_frame(&bytes[at..], segment_id) {
        at += frame.len();
        ends.push(at);
    }
    ends
}

fn all_app_ids(store: &LogStore, f: &FeedKey) -> Vec<String> {
    let page = store.list(f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
    page.items.into_iter().map(|n| n.app_notification_id().to_owned()).collect()
}

/// The location an open that must refuse as corruption names; panics on any other outcome.
fn refused_as_corruption(opened: Result<LogStore, StoreError>) -> String {
    match opened {
        Err(StoreError::Corruption { location, .. }) => location,
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(store) => panic!("opened, reporting {:?}", store.recovery_report()),
    }
}

#[test]
fn torn_tail_is_truncated_on_open_at_every_offset() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let mut written = Vec::new();
    {
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        for i in 0..6 {
            written.push(store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap());
        }
    }
    let path = segment_paths(&fs).pop().unwrap();
    let image = fs.read_all(&path).unwrap();
    let id = u64::from(segment::parse_segment_file_name(&path).unwrap());
    let ends = frame_ends(&image, id);
    assert_eq!(ends.len(), 6);
    for cut in ends[2]..=image.len() {
        // The file as a power loss may leave it, before the clean close that made it whole
        // listed its synced length (past which nothing may be torn).
        let crashed = fs.crash(None);
        crashed.overwrite(&path, image[..cut].to_vec());
        crashed.remove_file(&Path::new(DIR).join(synced_lengths::SYNCED_FILE)).unwrap();
        let store = open(&crashed, &clock, LogConfig::default()).unwrap();
        let kept = ends.iter().filter(|&&e| e <= cut).count();
        let expected: Vec<String> = (0..kept).rev().map(|i| format!("a{i}")).collect();
        assert_eq!(all_app_ids(&store, &f), expected, "cut at {cut}");
        let torn = !ends.contains(&cut);
        assert_eq!(store.recovery_report().torn_tails.len(), usize::from(torn), "cut at {cut}");
        // The store accepts writes again, after the cut.
        store.append(&f, note("after", at(&clock, 30))).unwrap();
        drop(store);
        let again = open(&crashed, &clock, LogConfig::default()).unwrap();
        assert_eq!(all_app_ids(&again, &f).len(), kept + 1);
        assert!(again.recovery_report().torn_tails.is_empty());
    }
}

fn small_segments() -> LogConfig {
    LogConfig { max_segment_bytes: 4096, ..LogConfig::default() }
}

#[test]
fn every_flipped_byte_of_a_sealed_segment_refuses_the_open() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    {
        let store = open(&fs, &clock, small_segments()).unwrap();
        for i in 0..120 {
            store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap();
        }
    }
    let paths = segment_paths(&fs);
    assert!(paths.len() >= 3, "small segments roll");
    let sealed = &paths[0];
    let image = fs.read_all(sealed).unwrap();
    for i in 0..image.len() {
        let crashed = fs.crash(None);
        let mut bad = image.clone();
        bad[i] ^= 0x04;
        crashed.overwrite(sealed, bad);
        match open(&crashed, &clock, small_segments()) {
            Err(StoreError::Corruption { location, .. }) => assert!(location.contains("0000000001.seg"), "{location}"),
            other => panic!("flip at {i} opened: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_flip_in_the_last_segment_never_returns_altered_data() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let mut originals = Vec::new();
    {
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        for i in 0..5 {
            originals.push(store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap());
        }
    }
    let path = segment_paths(&fs).pop().unwrap();
    let image = fs.read_all(&path).unwrap();
    for i in 0..image.len() {
        let crashed = fs.crash(None);
        let mut bad = image.clone();
        bad[i] ^= 0x20;
        crashed.overwrite(&path, bad);
        if let Ok(store) = open(&crashed, &clock, LogConfig::default()) {
            let page = store.list(&f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
            for n in page.items {
                assert!(originals.contains(&n), "flip at {i} returned altered data");
            }
        }
    }
}

#[test]
fn reads_report_corruption_instead_of_returning_a_bad_record() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    let n = store.append(&f, note("a", at(&clock, 30))).unwrap();
    let path = segment_paths(&fs).pop().unwrap();
    let mut image = fs.read_all(&path).unwrap();
    // Inside the record (the file goes on with zeros written ahead of it).
    let inside = super::record::SEGMENT_HEADER_LEN + 30;
    image[inside] ^= 1;
    fs.overwrite(&path, image);
    assert!(matches!(store.get(&f, n.id), Err(StoreError::Corruption { .. })));
    assert!(matches!(store.get_by_app_id(&f, "a"), Err(StoreError::Corruption { .. })));
    assert!(matches!(store.list(&f, &ListQuery::default()), Err(StoreError::Corruption { .. })));
}

#[test]
fn salvage_skips_a_corrupt_region_and_reports_it() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    {
        let store = open(&fs, &clock, small_segments()).unwrap();
        for i in 0..60 {
            store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap();
        }
    }
    let sealed = segment_paths(&fs)[0].clone();
    let mut image = fs.read_all(&sealed).unwrap();
    image[SEGMENT_HEADER_LEN + 30] ^= 0xff;
    fs.overwrite(&sealed, image);
    assert!(matches!(open(&fs, &clock, small_segments()), Err(StoreError::Corruption { .. })));
    let salvage = LogConfig { recovery_mode: RecoveryMode::Salvage, ..small_segments() };
    let store = open(&fs, &clock, salvage).unwrap();
    let lost = &store.recovery_report().lost;
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].offset, SEGMENT_HEADER_LEN as u64);
    let ids = all_app_ids(&store, &f);
    assert_eq!(ids.len(), 59, "exactly the first record is lost");
    assert!(!ids.contains(&"a0".to_string()));
}

#[test]
fn no_resurrection_after_windows_are_unlinked() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let options = StoreOptions { feed_capacity: 4, ..StoreOptions::default() };
    let config = || LogConfig { options: options.clone(), ..LogConfig::default() };
    let f = feed("u/app");
    let cap = feed("u/cap");
    let h = |hours: i64| at(&clock, hours * 60);
    {
        let store = open(&fs, &clock, config()).unwrap();
        // Delete: the tombstone shares the notification's window.
        let d = store.append(&f, note("deleted", h(3))).unwrap();
        assert!(store.delete(&f, d.id).unwrap());
        // Replace with a later expiration, and with an earlier one (shadow rule).
        store.append(&f, note("later", h(3))).unwrap();
        store.append(&f, NewNotification { ..note("later", h(10)) }).unwrap();
        store.append(&f, note("earlier", h(10))).unwrap();
        store.append(&f, note("earlier", h(2))).unwrap();
        // Group delete across windows.
        store.append(&f, note("g1", h(2)).with_group("g")).unwrap();
        store.append(&f, note("g2", h(8)).with_group("g")).unwrap();
        assert_eq!(store.delete_group(&f, "g").unwrap(), 2);
        // Eviction of a long-lived notification by a short-lived one.
        store.append(&cap, note("e1", h(9))).unwrap();
        store.append(&cap, note("e2", h(9))).unwrap();
        store.append(&cap, note("e3", h(9))).unwrap();
        store.append(&cap, note("e4", h(9))).unwrap();
        store.append(&cap, note("e5", h(2))).unwrap();
        assert_eq!(all_app_ids(&store, &cap), ["e5", "e4", "e3", "e2"]);
    }
    for hours in [4, 9, 11] {
        clock.set(h(hours));
        {
            let store = open(&fs, &clock, config()).unwrap();
            let stats = store.sweep_expired().unwrap();
            assert_eq!(stats.bytes_rewritten, 0);
        }
        let store = open(&fs, &clock, config()).unwrap();
        let ids = all_app_ids(&store, &f);
        assert!(!ids.contains(&"deleted".to_string()), "at {hours} h: {ids:?}");
        assert!(!ids.contains(&"earlier".to_string()), "at {hours} h: {ids:?}");
        assert!(!ids.contains(&"g1".to_string()) && !ids.contains(&"g2".to_string()), "at {hours} h: {ids:?}");
        assert_eq!(ids.contains(&"later".to_string()), hours < 10, "at {hours} h: {ids:?}");
        let later = store.get_by_app_id(&f, "later").unwrap();
        assert!(later.is_none_or(|n| n.expiration == h(10)));
        let caps = all_app_ids(&store, &cap);
        assert!(!caps.contains(&"e1".to_string()), "at {hours} h: {caps:?}");
        assert_eq!(caps.len(), if hours < 9 { 3 } else { 0 }, "at {hours} h: {caps:?}");
    }
    // What is left is the sweeps' expiry log, kept for `expiry_log_retention` (7 days).
    for path in segment_paths(&fs) {
        let (_, window, _) = record::decode_segment_header(&fs.read_all(&path).unwrap()).unwrap();
        assert!(window >= recovery::window_of(timestamp_to_nanos(h(7 * 24)), 3_600_000_000_000), "{path:?}");
    }
}

#[test]
fn sweep_unlinks_passed_windows_without_rewriting() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    for i in 0..10 {
        store.append(&f, note(&format!("short{i}"), at(&clock, 30))).unwrap();
        store.append(&f, note(&format!("long{i}"), at(&clock, 300))).unwrap();
    }
    assert_eq!(segment_paths(&fs).len(), 2);
    clock.set(at(&clock, 61));
    let stats = store.sweep_expired().unwrap();
    assert_eq!((stats.expired, stats.files_removed, stats.bytes_rewritten), (10, 1, 0));
    assert!(stats.bytes_reclaimed > 0);
    assert_eq!(segment_paths(&fs).len(), 2, "the long window and the sweep's expiry log");
    let again = store.sweep_expired().unwrap();
    assert_eq!((again.expired, again.files_removed, again.bytes_reclaimed), (0, 0, 0));
    drop(store);
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    assert_eq!(store.count(&f).unwrap().total, 10);
}

#[test]
fn sequences_never_go_backwards_after_every_segment_is_unlinked() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let token = {
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        for i in 0..5 {
            store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap();
        }
        clock.set(at(&clock, 31));
        store.changes(&f, None, 100).unwrap().next
    };
    clock.set(at(&clock, 120));
    {
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        store.sweep_expired().unwrap();
    }
    assert_eq!(segment_paths(&fs).len(), 1, "only the sweep's expiry log is left");
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    let n = store.append(&f, note("new", at(&clock, 300))).unwrap();
    let changes = store.changes(&f, Some(token), 100).unwrap();
    assert!(changes.next.sequence > token.sequence);
    assert!(changes.items.iter().any(|c| matches!(c, Change::Upserted(u) if u.id == n.id)));
}

#[test]
fn an_injected_write_failure_poisons_and_reopen_recovers_the_acknowledged() {
    for plan in [
        FaultPlan { fail_write: Some(1), ..FaultPlan::default() },
        FaultPlan { tear_write: Some(1), ..FaultPlan::default() },
        FaultPlan { fail_sync: Some(1), ..FaultPlan::default() },
    ] {
        let fs = FaultFileSystem::new();
        let clock = ManualClock::at_epoch_2026();
        let f = feed("u/app");
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        let acked: Vec<_> = (0..5).map(|i| store.append(&f, note(&format!("a{i}"), at(&clock, 30))).unwrap()).collect();
        fs.set_plan(plan.clone());
        assert!(matches!(store.append(&f, note("failed", at(&clock, 30))), Err(StoreError::Io { .. })), "{plan:?}");
        assert!(store.is_poisoned());
        assert!(matches!(store.append(&f, note("later", at(&clock, 30))), Err(StoreError::Poisoned)));
        assert!(matches!(store.delete(&f, acked[0].id), Err(StoreError::Poisoned)));
        assert!(matches!(store.sync(), Err(StoreError::Poisoned)));
        assert!(matches!(store.sweep_expired(), Err(StoreError::Poisoned)));
        assert_eq!(store.get(&f, acked[0].id).unwrap().as_ref(), Some(&acked[0]), "reads still work");
        drop(store);
        let crashed = fs.crash(Some(13));
        let store = open(&crashed, &clock, LogConfig::default()).unwrap();
        let expected: Vec<String> = (0..5).rev().map(|i| format!("a{i}")).collect();
        assert_eq!(all_app_ids(&store, &f), expected, "{plan:?}");
        for n in &acked {
            assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
        }
        store.append(&f, note("again", at(&clock, 30))).unwrap();
    }
}

#[test]
fn a_crash_keeps_every_acknowledged_write_and_buffered_keeps_what_was_synced() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    let a = store.append(&f, note("a", at(&clock, 30))).unwrap();
    let b = store.append(&f, note("b", at(&clock, 600))).unwrap();
    store.update_state(&f, a.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() }).unwrap();
    let crashed = fs.crash(Some(5));
    std::mem::forget(store);
    let store = open(&crashed, &clock, LogConfig::default()).unwrap();
    assert_eq!(store.get(&f, a.id).unwrap().map(|n| n.read_state), Some(ReadState::Read));
    assert_eq!(store.get(&f, b.id).unwrap(), Some(b));
    drop(store);

    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, buffered()).unwrap();
    let synced = store.append(&f, note("synced", at(&clock, 30))).unwrap();
    store.sync().unwrap();
    store.append(&f, note("unsynced", at(&clock, 30))).unwrap();
    let crashed = fs.crash(None);
    std::mem::forget(store);
    let store = open(&crashed, &clock, buffered()).unwrap();
    assert_eq!(all_app_ids(&store, &f), ["synced"]);
    assert_eq!(store.get(&f, synced.id).unwrap(), Some(synced));
}

#[test]
fn open_descriptors_stay_bounded_whatever_the_number_of_windows() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let config = || LogConfig { max_open_files: 4, ..LogConfig::default() };
    let store = open(&fs, &clock, config()).unwrap();
    for i in 0..30 {
        store.append(&f, note(&format!("a{i}"), at(&clock, 60 * (i + 1) + 1))).unwrap();
        assert!(store.open_descriptors() <= 4);
    }
    assert_eq!(segment_paths(&fs).len(), 30);
    assert_eq!(all_app_ids(&store, &f).len(), 30);
    assert!(store.open_descriptors() <= 4);
}

/// A `Buffered` store with 3 descriptors and 1-minute windows, records written to the OS at
/// once (`write_buffer_bytes` 0) or gathered in the engine's buffer; one record in each of
/// windows 0..3, synced, so that the next writes start with every segment clean.
fn buffered_three_descriptors(fs: &FaultFileSystem, clock: &ManualClock, write_buffer_bytes: usize) -> LogStore {
    let config =
        LogConfig { max_open_files: 3, write_buffer_bytes, window: SignedDuration::from_mins(1), ..buffered() };
    let store = open(fs, clock, config).unwrap();
    for w in 0..3 {
        store.append(&feed("u/app"), note(&format!("first-{w}"), at(clock, w + 1))).unwrap();
    }
    store.sync().unwrap();
    store
}

#[test]
fn a_buffered_write_syncs_first_when_unsynced_segments_would_fill_the_descriptors() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = buffered_three_descriptors(&fs, &clock, 0);
    let config = store.config.clone();
    // Two segments with unsynced bytes leave one descriptor for reads: no sync, whether a
    // write dirties a segment or adds to one already dirty.
    fs.set_plan(FaultPlan::default());
    for (app, w) in [("second-0", 0), ("second-1", 1), ("third-1", 1)] {
        store.append(&f, note(app, at(&clock, w + 1))).unwrap();
    }
    assert_eq!(fs.counts(), (3, 0), "one write per append and no sync");
    assert_eq!(store.segments.unsynced_and_capacity(), (2, 3));
    // A third would leave none: that write first syncs the two (one volume sync), then writes.
    store.append(&f, note("second-2", at(&clock, 3))).unwrap();
    assert_eq!(fs.counts(), (4, 1), "the two segments synced before the third window's write");
    assert_eq!(store.segments.unsynced_and_capacity(), (1, 3));

    // So a power loss now keeps the two windows' later records, which no `sync` covered.
    let crashed = fs.crash(None);
    drop(store);
    let store = open(&crashed, &clock, config).unwrap();
    let ids = all_app_ids(&store, &f);
    for app in ["first-0", "first-1", "first-2", "second-0", "second-1", "third-1"] {
        assert!(ids.iter().any(|id| id == app), "{app} lost: {ids:?}");
    }
}

#[test]
fn a_buffered_write_counts_segments_whose_bytes_are_still_in_the_engine_buffer() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = buffered_three_descriptors(&fs, &clock, 64 << 10);
    fs.set_plan(FaultPlan::default());
    for w in 0..2 {
        store.append(&f, note(&format!("second-{w}"), at(&clock, w + 1))).unwrap();
    }
    assert_eq!(fs.counts(), (0, 0), "both records wait in the engine's buffers");
    assert_eq!(store.segments.unsynced_and_capacity(), (2, 3));
    // Writing the buffers out would need a descriptor for each: the third window's write
    // first writes both and syncs them.
    store.append(&f, note("second-2", at(&clock, 3))).unwrap();
    assert_eq!(fs.counts(), (2, 1));
    assert_eq!(store.segments.unsynced_and_capacity(), (1, 3));
}

#[test]
fn a_failed_sync_before_a_buffered_write_fails_that_write_and_poisons_the_store() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = buffered_three_descriptors(&fs, &clock, 0);
    let config = store.config.clone();
    for w in 0..2 {
        store.append(&f, note(&format!("second-{w}"), at(&clock, w + 1))).unwrap();
    }
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    let failed = store.append(&f, note("second-2", at(&clock, 3)));
    assert!(matches!(failed, Err(StoreError::Io { .. })), "{failed:?}");
    assert!(matches!(store.append(&f, note("after", at(&clock, 1))), Err(StoreError::Poisoned)));
    assert!(store.get_by_app_id(&f, "second-2").unwrap().is_none(), "the failed write is not served");

    // A reopen finds what the last successful sync made durable, and nothing of the write.
    drop(store);
    let store = open(&fs, &clock, config).unwrap();
    let mut ids = all_app_ids(&store, &f);
    ids.sort();
    assert_eq!(ids, ["first-0", "first-1", "first-2"]);
}

#[test]
fn a_second_open_of_the_directory_is_locked() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let first = open(&fs, &clock, LogConfig::default()).unwrap();
    assert!(matches!(open(&fs, &clock, LogConfig::default()), Err(StoreError::Locked { .. })));
    drop(first);
    assert!(open(&fs, &clock, LogConfig::default()).is_ok());
}

#[test]
fn index_bytes_per_notification_are_measured() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, buffered()).unwrap();
    for feed_no in 0..100 {
        let f = feed(&format!("user{feed_no}/app.example"));
        for i in 0..100 {
            let group = format!("g{}", i % 10);
            store.append(&f, note(&format!("n{i}"), at(&clock, 60 * (i % 48 + 1))).with_group(&group)).unwrap();
        }
    }
    drop(store);
    let store = open(&fs, &clock, buffered()).unwrap();
    let stats = store.index_stats();
    assert_eq!(stats.notifications, 10_000);
    let per = stats.bytes_per_notification();
    println!("index: {per:.1} bytes per notification ({stats:?})");
    assert!(per >= 50.0, "an entry alone is 50 bytes");
    // 50 (entry) + 8 (expiry order: a 4-byte key, and an 8-byte run per feed and window, here
    // about 2 notifications a run) + 3.84 (one hash table: 100 entries a feed in 128 buckets
    // of 3 bytes) + groups (10 names a feed: ~3.2). 65.6 when written.
    assert!(per <= 66.0, "{per} bytes per notification");
}

#[test]
fn a_segment_whose_creation_was_interrupted_is_removed_not_refused() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    {
        let store = open(&fs, &clock, LogConfig::default()).unwrap();
        store.append(&f, note("a", at(&clock, 30))).unwrap();
    }
    // A second segment whose header never reached the disk (zeros), and one cut inside it.
    fs.open(&Path::new(DIR).join(segment::segment_file_name(7)), true).unwrap().set_len(32).unwrap();
    fs.open(&Path::new(DIR).join(segment::segment_file_name(8)), true).unwrap().set_len(5).unwrap();
    let store = open(&fs, &clock, LogConfig::default()).unwrap();
    assert_eq!(store.recovery_report().incomplete_segments_removed.len(), 2);
    assert_eq!(all_app_ids(&store, &f), ["a"]);
    // A bad header in front of real records is corruption.
    drop(store);
    let path = segment_paths(&fs)[0].clone();
    let mut image = fs.read_all(&path).unwrap();
    image[0] ^= 1;
    fs.overwrite(&path, image);
    assert!(matches!(open(&fs, &clock, LogConfig::default()), Err(StoreError::Corruption { .. })));
}

#[test]
fn a_duplicate_app_id_whose_record_does_not_decode_is_left_for_its_reads_to_report() {
    // `first` (the two-hour window's segment), its delete (the same segment), then `second`
    // with the freed app id (the next window's segment). The delete is then lost, as a power
    // loss that keeps one file's records and not another's may lose it, and `second`'s title
    // is made not UTF-8 under a valid checksum (which only a faulty writer could do).
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config =
        || LogConfig { window: SignedDuration::from_mins(10), preallocate_bytes: Some(0), ..LogConfig::default() };
    let f = feed("u/app");
    let store = open(&fs, &clock, config()).unwrap();
    let first = store.append(&f, note("dup", at(&clock, 120))).unwrap();
    let first_segment = segment_paths(&fs)[0].clone();
    let before_delete = fs.read_all(&first_segment).unwrap().len();
    assert!(store.delete(&f, first.id).unwrap());
    let second = store.append(&f, note("dup", at(&clock, 5))).unwrap();
    drop(store);
    let mut image = fs.read_all(&first_segment).unwrap();
    assert!(image.len() > before_delete, "the delete went to the segment of what it removes");
    image.truncate(before_delete);
    fs.overwrite(&first_segment, image);
    // As a power loss leaves it: before the clean close that listed the synced lengths.
    fs.remove_file(&Path::new(DIR).join(synced_lengths::SYNCED_FILE)).unwrap();
    let second_segment = segment_paths(&fs).into_iter().find(|p| *p != first_segment).unwrap();
    let mut image = fs.read_all(&second_segment).unwrap();
    let (id, _, salt) = record::decode_segment_header(&image).unwrap();
    let key = record::frame_key(id, salt);
    let (kind, lsn, distance, len) = {
        let frame = record::decode_frame(&image[SEGMENT_HEADER_LEN..], key).unwrap();
        (frame.kind, frame.lsn, u64::from(frame.unsynced_distance), frame.len())
    };
    let frame = &mut image[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + len];
    let title = frame.windows(12).position(|w| w == b"title of dup").unwrap();
    frame[title + 11] = 0xff;
    record::seal_frame(frame, key, kind, lsn, distance);
    fs.overwrite(&second_segment, image);

    // The open indexes both (it does not check the strings the index skips), cannot compare
    // the pair, and leaves it: the damaged record's reads report it, the other reads whole.
    let store = open(&fs, &clock, config()).unwrap();
    assert!(store.recovery_report().duplicate_app_ids_removed.is_empty());
    assert_eq!(store.get(&f, first.id).unwrap().map(|n| n.id), Some(first.id));
    assert!(matches!(store.get(&f, second.id), Err(StoreError::Corruption { .. })));
}

#[test]
fn a_buffered_append_is_written_by_its_caller_and_only_a_sync_runs_a_batch() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, buffered()).unwrap();
    let appended: Vec<(FeedKey, Notification)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let (store, clock) = (&store, &clock);
                scope.spawn(move || {
                    (0..50)
                        .map(|i| {
                            let f = feed(&format!("u{}/app", i % 3));
                            let n = store.append(&f, note(&format!("{t}-{i}"), at(clock, 30 + 90 * (i % 2)))).unwrap();
                            (f, n)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(store.commit.batches_begun(), 0, "a buffered append went through group commit");
    store.sync().unwrap();
    assert_eq!(store.commit.batches_begun(), 1);
    let crashed = fs.crash(None);
    std::mem::forget(store);
    let store = open(&crashed, &clock, buffered()).unwrap();
    for (f, n) in &appended {
        assert_eq!(store.get(f, n.id).unwrap().as_ref(), Some(n), "{} lost or altered", n.app_notification_id());
    }
}

#[test]
fn a_reused_frame_buffer_carries_nothing_of_the_record_before() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, buffered()).unwrap();
    let mut long = note("long", at(&clock, 30));
    long.payload.raw_content = Some("x".repeat(3000));
    let mut longer = note("longer", at(&clock, 30));
    longer.payload.raw_content = Some("y".repeat(SPARE_FRAME_MAX + 1000));
    let written = [
        store.append(&f, long).unwrap(),
        store.append(&f, note("short", at(&clock, 30))).unwrap(),
        store.append(&f, longer).unwrap(),
        store.append(&f, note("short again", at(&clock, 30))).unwrap(),
    ];
    store.sync().unwrap();
    let crashed = fs.crash(None);
    std::mem::forget(store);
    let paths = segment_paths(&crashed);
    assert_eq!(paths.len(), 1);
    let id = segment::parse_segment_file_name(&paths[0]).unwrap();
    let bytes = crashed.read_all(&paths[0]).unwrap();
    assert_eq!(frame_ends(&bytes, u64::from(id)).len(), written.len(), "a frame held more than its record");
    let store = open(&crashed, &clock, buffered()).unwrap();
    for n in &written {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
}

/// The counters of `LogStore::stats` against what the fault-injecting file system saw: every
/// `fdatasync` or `syncfs` of the write path is counted, once.
#[test]
fn stats_count_records_group_commits_and_every_sync_of_the_write_path() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = Arc::new(
        open(&fs, &clock, LogConfig { window: SignedDuration::from_mins(10), ..LogConfig::default() }).unwrap(),
    );
    assert_eq!(store.stats(), LogStats::default());
    // The first write raises the LSN lease (a WATERMARK file sync, not the write path's).
    store.append(&feed("u/app"), note("warm-up", at(&clock, 5))).unwrap();
    let before = store.stats();
    assert_eq!((before.records, before.batches, before.batched_records, before.segments_created), (1, 1, 1, 1));
    fs.set_plan(FaultPlan::default());

    // One writer, `Always`: one batch and one journal sync per append; a new window's segment
    // adds its header's sync.
    for i in 0..5 {
        store.append(&feed("u/app"), note(&format!("one-{i}"), at(&clock, 5 + 10 * (i % 2)))).unwrap();
    }
    let one = store.stats();
    assert_eq!((one.records - before.records, one.batches - before.batches), (5, 5));
    assert_eq!(one.segments_created - before.segments_created, 1);
    let syncs = |s: &LogStats| s.file_syncs + s.volume_syncs;
    assert_eq!(syncs(&one) - syncs(&before), fs.counts().1);
    assert_eq!(syncs(&one) - syncs(&before), 5 + 1);

    // 8 writers: every record in exactly one batch.
    let expires = at(&clock, 5);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let store = Arc::clone(&store);
            scope.spawn(move || {
                for i in 0..25 {
                    store.append(&feed(&format!("u{t}/app")), note(&format!("w{t}-{i}"), expires)).unwrap();
                }
            });
        }
    });
    let many = store.stats();
    assert_eq!((many.records - one.records, many.batched_records - one.batched_records), (200, 200));
    assert!(many.batches - one.batches <= 200 && many.mean_batch() >= 1.0);
    assert_eq!(syncs(&many) - syncs(&before), fs.counts().1);
    assert!(many.record_bytes > one.record_bytes);

    // `sync` checkpoints; a sweep past both windows removes their segments.
    store.sync().unwrap();
    let synced = store.stats();
    assert_eq!(synced.checkpoints - many.checkpoints, 1);
    assert_eq!(syncs(&synced) - syncs(&before), fs.counts().1);
    clock.set(at(&clock, 60));
    let swept = store.sweep_expired().unwrap();
    assert_eq!(swept.expired, 206);
    assert_eq!(store.stats().segments_removed, 2);
}

/// A notification replaced while a compaction copies its record (between the copy and the
/// repointing of the index) leaves a dead copy in the new segment: the new segment counts it
/// dead, so a later sweep may compact it (the original, where the replacement counted it, is
/// gone).
#[test]
fn a_copy_superseded_while_compaction_runs_counts_dead_in_the_new_segment() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = Arc::new(open(&fs, &clock, small_segments()).unwrap());
    // The first segment: the keeper, then versions of one notification, each replacing the
    // one before; the later segments hold the rest of them. All but the keeper and the last
    // version are dead.
    store.append(&f, note("keeper", at(&clock, 300))).unwrap();
    for _ in 0..120 {
        store.append(&f, note("churn", at(&clock, 300))).unwrap();
    }
    let before: Vec<PathBuf> = segment_paths(&fs);
    assert!(before.len() >= 3, "{before:?}");

    let writer = Arc::clone(&store);
    let replaced_keeper = f.clone();
    let expires = at(&clock, 300);
    compaction::BEFORE_REPOINT.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move || {
            writer.append(&replaced_keeper, note("keeper", expires)).unwrap();
        }));
    });
    let stats = store.sweep_expired();
    compaction::BEFORE_REPOINT.with(|hook| hook.borrow_mut().take());
    let stats = stats.unwrap();
    assert!(stats.files_removed > 0 && stats.bytes_rewritten > 0, "nothing was compacted: {stats:?}");

    // The new segment holds the keeper's copy (dead) and then its replacement (live).
    let new: Vec<PathBuf> = segment_paths(&fs).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let id = segment::parse_segment_file_name(&new[0]).unwrap();
    let ends = frame_ends(&fs.read_all(&new[0]).unwrap(), u64::from(id));
    assert_eq!(ends.len(), 2);
    let copy_len = (ends[0] - SEGMENT_HEADER_LEN) as u64;
    let dead = store.segments.writer.lock().segments.get(&id).map(|s| s.dead_bytes);
    assert_eq!(dead, Some(copy_len));
    assert_eq!(all_app_ids(&store, &f), ["keeper", "churn"]);
}

/// A compaction's new segment is its window's last, and no writer may ever append to it: its
/// last copy's frame still proves the other copies durable, so a flipped byte in the first
/// copy refuses the open instead of being cut away as a torn tail with everything after it.
#[test]
fn damage_to_a_compacted_copy_is_corruption_not_a_torn_tail() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, small_segments()).unwrap();
    store.append(&f, note("keeper-1", at(&clock, 300))).unwrap();
    store.append(&f, note("keeper-2", at(&clock, 300))).unwrap();
    for _ in 0..120 {
        store.append(&f, note("churn", at(&clock, 300))).unwrap();
    }
    let before = segment_paths(&fs);
    let stats = store.sweep_expired().unwrap();
    assert!(stats.bytes_rewritten > 0, "nothing was compacted: {stats:?}");
    drop(store);
    let new: Vec<PathBuf> = segment_paths(&fs).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let id = segment::parse_segment_file_name(&new[0]).unwrap();
    let image = fs.read_all(&new[0]).unwrap();
    assert_eq!(frame_ends(&image, u64::from(id)).len(), 2, "the two keepers' copies");

    // The same image, opened as it is and with a byte of the first copy's body flipped.
    let whole = open(&fs, &clock, small_segments()).unwrap();
    assert_eq!(all_app_ids(&whole, &f), ["churn", "keeper-2", "keeper-1"]);
    drop(whole);
    let mut damaged = image.clone();
    damaged[SEGMENT_HEADER_LEN + record::FRAME_HEADER_LEN + 5] ^= 0x10;
    fs.overwrite(&new[0], damaged);
    let location = refused_as_corruption(open(&fs, &clock, small_segments()));
    assert!(location.contains(&format!("{id:010}.seg")), "{location}");
}

/// Flips a bit in the body of the fifth and newest record of the first segment file of
/// `crashed`, which must hold exactly five; returns that record's location as an open names
/// it (`<id>.seg offset <n>`).
fn flip_a_bit_of_the_newest_of_five_records(crashed: &FaultFileSystem) -> String {
    let first = segment_paths(crashed)[0].clone();
    let id = segment::parse_segment_file_name(&first).unwrap();
    let image = crashed.read_all(&first).unwrap();
    let ends = frame_ends(&image, u64::from(id));
    assert_eq!(ends.len(), 5);
    let mut damaged = image.clone();
    damaged[ends[3] + record::FRAME_HEADER_LEN + 3] ^= 0x10;
    crashed.overwrite(&first, damaged);
    format!("{id:010}.seg offset {}", ends[3])
}

/// Between clean closes, an `Always` store's checkpoints list the synced lengths too: after a
/// power loss, damage to the newest record of a window nothing was written to since the last
/// checkpoint (no later frame, and no journal entry, vouches for it) refuses the open, where
/// without the file it was cut as a torn tail.
#[test]
fn after_a_checkpoint_and_a_power_loss_damage_to_a_windows_newest_record_is_corruption() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let config = || LogConfig { journal_bytes: 8 << 10, ..LogConfig::default() };
    let store = open(&fs, &clock, config()).unwrap();
    for i in 0..5 {
        store.append(&f, note(&format!("early-{i}"), at(&clock, 30))).unwrap();
    }
    // Records of a later window fill the journal until a checkpoint syncs the first window.
    let before = store.stats().checkpoints;
    let mut later = 0;
    while store.stats().checkpoints == before {
        assert!(later < 1000, "no checkpoint after {later} appends");
        store.append(&f, note(&format!("late-{later}"), at(&clock, 300))).unwrap();
        later += 1;
    }
    let crashed = fs.crash(None);
    drop(store);
    let newest = flip_a_bit_of_the_newest_of_five_records(&crashed);
    let without = crashed.crash(None);
    let location = refused_as_corruption(open(&crashed, &clock, config()));
    assert!(location.ends_with(&newest), "{location}");
    // Without the file the frames alone cannot tell: the damaged record is cut as torn.
    without.remove_file(&Path::new(DIR).join(synced_lengths::SYNCED_FILE)).unwrap();
    let cut = open(&without, &clock, config()).unwrap();
    assert_eq!(cut.recovery_report().torn_tails.len(), 1, "{:?}", cut.recovery_report());
    let held = all_app_ids(&cut, &f);
    assert_eq!(held.len(), 4 + later, "every record but the damaged one");
    assert!(!held.contains(&"early-4".to_string()));
}

/// A `sync` of a store without a journal (`Buffered` here) lists the synced lengths too: after
/// a power loss, damage to the newest record it made durable refuses the open, where without
/// the file it was cut as a torn tail. A second `sync` with nothing new writes no file.
#[test]
fn after_a_buffered_sync_and_a_power_loss_damage_to_the_newest_synced_record_is_corruption() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, buffered()).unwrap();
    for i in 0..5 {
        store.append(&f, note(&format!("synced-{i}"), at(&clock, 30))).unwrap();
    }
    let syncs = store.stats().file_syncs;
    store.sync().unwrap();
    assert_eq!(store.stats().file_syncs, syncs + 2, "the segment and the synced-lengths file");
    store.sync().unwrap();
    assert_eq!(store.stats().file_syncs, syncs + 2, "a sync with nothing to sync writes no file");
    let crashed = fs.crash(None);
    drop(store);
    let newest = flip_a_bit_of_the_newest_of_five_records(&crashed);
    let without = crashed.crash(None);
    let location = refused_as_corruption(open(&crashed, &clock, buffered()));
    assert!(location.ends_with(&newest), "{location}");
    without.remove_file(&Path::new(DIR).join(synced_lengths::SYNCED_FILE)).unwrap();
    let cut = open(&without, &clock, buffered()).unwrap();
    assert_eq!(cut.recovery_report().torn_tails.len(), 1, "{:?}", cut.recovery_report());
    assert_eq!(all_app_ids(&cut, &f).len(), 4, "every record but the damaged one");
}

/// In an `Always` store without a journal every batch syncs its segment and lists nothing; a
/// `sync` after them, which finds nothing left to sync, lists what they synced: damage to the
/// newest record is then refused after a power loss.
#[test]
fn a_sync_lists_lengths_that_syncs_before_it_raised_without_listing() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let config = || LogConfig { journal_bytes: 0, ..LogConfig::default() };
    let store = open(&fs, &clock, config()).unwrap();
    for i in 0..5 {
        store.append(&f, note(&format!("synced-{i}"), at(&clock, 30))).unwrap();
    }
    let syncs = store.stats().file_syncs;
    store.sync().unwrap();
    assert_eq!(store.stats().file_syncs, syncs + 1, "only the synced-lengths file");
    let crashed = fs.crash(None);
    drop(store);
    let newest = flip_a_bit_of_the_newest_of_five_records(&crashed);
    let location = refused_as_corruption(open(&crashed, &clock, config()));
    assert!(location.ends_with(&newest), "{location}");
}

/// A batch too large for the journal syncs its segments instead, in a checkpoint that finds
/// the journal empty: it lists the synced lengths all the same, so its record is vouched for.
#[test]
fn a_batch_too_large_for_the_journal_is_listed_by_its_checkpoint() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let config = || LogConfig { journal_bytes: 8 << 10, ..LogConfig::default() };
    let store = open(&fs, &clock, config()).unwrap();
    store.append(&f, note("small", at(&clock, 300))).unwrap();
    store.sync().unwrap();
    let mut large = note("large", at(&clock, 30));
    large.payload.raw_content = Some("x".repeat(6000));
    let before = store.stats().checkpoints;
    store.append(&f, large).unwrap();
    assert_eq!(store.stats().checkpoints, before + 1, "the batch did not fit the journal");
    let crashed = fs.crash(None);
    drop(store);
    let path = segment_paths(&crashed)
        .into_iter()
        .find(|p| {
            let id = segment::parse_segment_file_name(p).unwrap();
            let ends = frame_ends(&crashed.read_all(p).unwrap(), u64::from(id));
            ends.len() == 1 && ends[0] > 6000
        })
        .unwrap();
    let id = segment::parse_segment_file_name(&path).unwrap();
    let mut image = crashed.read_all(&path).unwrap();
    image[record::SEGMENT_HEADER_LEN + record::FRAME_HEADER_LEN + 100] ^= 0x10;
    crashed.overwrite(&path, image);
    let location = refused_as_corruption(open(&crashed, &clock, config()));
    assert!(location.contains(&format!("{id:010}.seg")), "{location}");
}

/// After a clean close, the newest records of a window's last segment have no later frame to
/// vouch that they were synced; the synced-lengths file does: damage to them refuses the open
/// (as for any synced record) instead of being cut as a torn tail with every record after it.
/// The claim holds in later sessions: a power loss that tears what was written after the next
/// open is still cut, and only that.
#[test]
fn after_a_clean_close_damage_to_the_newest_records_is_corruption_not_a_torn_tail() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let store = open(&fs, &clock, buffered()).unwrap();
    for i in 0..20 {
        store.append(&f, note(&format!("n{i}"), at(&clock, 300))).unwrap();
    }
    store.close().unwrap();
    let paths = segment_paths(&fs);
    assert_eq!(paths.len(), 1);
    let id = segment::parse_segment_file_name(&paths[0]).unwrap();
    let image = fs.read_all(&paths[0]).unwrap();
    let ends = frame_ends(&image, u64::from(id));
    assert_eq!(ends.len(), 20);

    let mut damaged = image.clone();
    damaged[ends[1] + record::FRAME_HEADER_LEN + 3] ^= 0x10; // the third record's body
    fs.overwrite(&paths[0], damaged);
    let location = refused_as_corruption(open(&fs, &clock, buffered()));
    assert!(location.ends_with(&format!("{id:010}.seg offset {}", ends[1])), "{location}");
    // Without the file, the frames alone cannot tell: the damage is cut as a torn tail, and
    // the 17 records after it with it.
    let without = fs.crash(None);
    without.remove_file(&Path::new(DIR).join(synced_lengths::SYNCED_FILE)).unwrap();
    let cut = open(&without, &clock, buffered()).unwrap();
    let torn = &cut.recovery_report().torn_tails;
    assert_eq!((torn.len(), torn[0].valid_records_dropped), (1, 17), "{torn:?}");
    drop(cut);
    // Nor does an entry for the segment's id with another salt (a segment that took the id
    // again after a salvaging open lost the watermark's floor) say anything of it.
    let other = fs.crash(None);
    let other_fs: Arc<dyn FileSystem> = Arc::new(other.clone());
    let mut entry = synced_lengths::load(&other_fs, Path::new(DIR)).unwrap()[&id];
    entry.salt ^= 1;
    synced_lengths::write(&other_fs, Path::new(DIR), &[entry]).unwrap();
    let cut = open(&other, &clock, buffered()).unwrap();
    assert_eq!(cut.recovery_report().torn_tails[0].valid_records_dropped, 17);
    drop(cut);
    // A file that ends on a frame boundary before its listed length lost synced records.
    let short = fs.crash(None);
    short.overwrite(&paths[0], image[..ends[18]].to_vec());
    let location = refused_as_corruption(open(&short, &clock, buffered()));
    assert!(location.ends_with(&format!("offset {}", ends[18])), "{location}");

    // Undamaged, in a later session: records written after the open and torn by a power loss
    // are cut; everything the close found synced stays.
    fs.overwrite(&paths[0], image);
    let store = open(&fs, &clock, LogConfig { write_buffer_bytes: 0, ..buffered() }).unwrap();
    for i in 20..25 {
        store.append(&f, note(&format!("n{i}"), at(&clock, 300))).unwrap();
    }
    let crashed = fs.crash(Some(100));
    drop(store);
    let reopened = open(&crashed, &clock, buffered()).unwrap();
    assert_eq!(reopened.recovery_report().torn_tails.len(), 1, "{:?}", reopened.recovery_report());
    let held = all_app_ids(&reopened, &f);
    assert_eq!(held.len(), 20);
    assert!(held.iter().all(|a| a.strip_prefix('n').and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n < 20)));
}
