//! `LogStore::verify`, the online scrub, on the fault-injecting file system:
//! * a sound store reads back whole: every record written and every notification held;
//! * a flipped byte anywhere in a segment, under a running store, is reported with its file,
//!   and only that: put back, the store verifies again, and it was never poisoned;
//! * a bad record that nothing points at any more (a replaced notification's) is found too,
//!   and so is a sound header that names another segment;
//! * a store a salvaging open kept running past a bad region verifies, the region skipped;
//! * records still in a `Buffered` store's buffer are written out and read;
//! * a poisoned store is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the backup and power-loss tests, which use the rest of it.
#[allow(dead_code)]
mod filled_log;

use std::path::Path;
use std::sync::Arc;

use filled_log::{HELD, RECORDS, config, feed, fill, note};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore, RecoveryMode};
use notifeed::{Durability, FeedStore, ManualClock, StoreError};

const DIR: &str = "/db";

fn open(fs: &FaultFileSystem, clock: &ManualClock, config: LogConfig) -> LogStore {
    LogStore::open_with_fs(Path::new(DIR), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

#[test]
fn a_sound_store_reads_back_every_record_and_every_notification() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, config());
    fill(&store, &clock);
    let report = store.verify().unwrap();
    let on_disk: u64 = filled_log::segment_paths(&fs, DIR).iter().map(|p| fs.read_all(p).unwrap().len() as u64).sum();
    assert_eq!(
        (report.segments, report.records, report.notifications),
        (filled_log::segment_paths(&fs, DIR).len() as u64, RECORDS, HELD)
    );
    assert_eq!(report.lost_bytes_skipped, 0);
    assert!(report.segments > 3, "small segments roll: {report:?}");
    // Every byte of the files but their preallocated zeros.
    assert!(report.bytes <= on_disk && report.bytes > on_disk / 2, "{} of {on_disk}", report.bytes);
    // The reopen's scan agrees.
    drop(store);
    let store = open(&fs, &clock, config());
    assert_eq!(store.recovery_report().records, RECORDS);
    assert_eq!(store.verify().unwrap().records, RECORDS);
}

#[test]
fn every_flipped_byte_under_a_running_store_is_reported_with_its_file() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, config());
    fill(&store, &clock);
    store.sync().unwrap();
    let before = store.verify().unwrap();
    let paths = filled_log::segment_paths(&fs, DIR);
    let path = &paths[0];
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let image = fs.read_all(path).unwrap();
    let records_end = image.iter().rposition(|&b| b != 0).unwrap() + 1;
    for i in 0..records_end {
        let mut bad = image.clone();
        bad[i] ^= 0x10;
        fs.overwrite(path, bad);
        match store.verify() {
            Err(StoreError::Corruption { location, .. }) => {
                assert!(location.contains(&name), "flip at {i}: {location}");
                let offset: usize = location.rsplit(' ').next().unwrap().parse().unwrap();
                assert!(offset <= i, "flip at {i} reported at {offset}");
            }
            other => panic!("flip at {i} of {name} verified: {other:?}"),
        }
        fs.overwrite(path, image.clone());
    }
    assert!(!store.is_poisoned());
    assert_eq!(store.verify().unwrap(), before);
    store.append(&feed(0), note(&clock, "after", 1)).unwrap();
}

#[test]
fn a_bad_record_nothing_points_at_is_found() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { window: SignedDuration::from_secs(600), ..LogConfig::default() };
    let store = open(&fs, &clock, config);
    let first = store.append(&feed(0), note(&clock, "replaced", 1)).unwrap();
    // The replacement (same app id) goes to a later window's file; the first record is dead.
    store.append(&feed(0), note(&clock, "replaced", 2)).unwrap();
    store.append(&feed(0), note(&clock, "other", 1)).unwrap();
    assert_eq!(store.verify().unwrap().notifications, 2);
    let path = filled_log::segment_paths(&fs, DIR).into_iter().next().unwrap();
    let mut image = fs.read_all(&path).unwrap();
    let content = b"content of replaced";
    let at = image.windows(content.len()).position(|w| w == content).unwrap();
    image[at] ^= 1;
    fs.overwrite(&path, image);
    // Every read still succeeds: no index entry leads to the bad record.
    assert_eq!(store.get_by_app_id(&feed(0), "replaced").unwrap().unwrap().id, first.id);
    assert!(store.get_by_app_id(&feed(0), "other").unwrap().is_some());
    match store.verify() {
        Err(StoreError::Corruption { location, detail }) => {
            assert!(location.contains(path.file_name().unwrap().to_str().unwrap()), "{location}: {detail}")
        }
        other => panic!("verified: {other:?}"),
    }
}

#[test]
fn records_in_a_buffered_stores_buffer_are_written_out_and_read() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { durability: Durability::Buffered, ..config() };
    let store = open(&fs, &clock, config);
    for i in 0..5 {
        store.append(&feed(0), note(&clock, &format!("n{i}"), 1)).unwrap();
    }
    let written: usize = filled_log::segment_paths(&fs, DIR).iter().map(|p| fs.read_all(p).unwrap().len()).sum();
    let report = store.verify().unwrap();
    assert_eq!((report.records, report.notifications), (5, 5));
    let now: usize = filled_log::segment_paths(&fs, DIR).iter().map(|p| fs.read_all(p).unwrap().len()).sum();
    assert!(now > written, "the buffer was written out: {written} then {now}");
}

#[test]
fn a_poisoned_store_is_not_verified() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, config());
    store.append(&feed(0), note(&clock, "n0", 1)).unwrap();
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    assert!(store.append(&feed(0), note(&clock, "n1", 1)).is_err());
    assert!(matches!(store.verify(), Err(StoreError::Poisoned)));
}

#[test]
fn verifying_while_writers_append_finds_nothing_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { durability: Durability::Buffered, write_buffer_bytes: 1024, ..config() };
    let store = LogStore::open(dir.path(), config, Arc::new(clock.clone())).unwrap();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let (store, clock) = (&store, &clock);
            scope.spawn(move || {
                for i in 0..400 {
                    store.append(&feed(t), note(clock, &format!("t{t}-{i}"), (i % 4) as i64 + 1)).unwrap();
                }
            });
        }
        let mut last = 0;
        for _ in 0..20 {
            let report = store.verify().unwrap();
            assert!(report.records >= last, "{report:?} after {last}");
            last = report.records;
        }
    });
    assert_eq!(store.verify().unwrap().records, 1200);
}

#[test]
fn a_sound_header_naming_another_segment_is_reported() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, config());
    fill(&store, &clock);
    let paths = filled_log::segment_paths(&fs, DIR);
    let first = fs.read_all(&paths[0]).unwrap();
    let mut second = fs.read_all(&paths[1]).unwrap();
    second[..40].copy_from_slice(&first[..40]);
    fs.overwrite(&paths[1], second);
    match store.verify() {
        Err(StoreError::Corruption { location, detail }) => {
            assert!(location.ends_with(&format!("{} offset 0", paths[1].display())), "{location}");
            assert!(detail.contains("not this file's"), "{detail}");
        }
        other => panic!("verified: {other:?}"),
    }
}

#[test]
fn a_store_opened_by_salvage_verifies_with_the_lost_region_skipped() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    fill(&open(&fs, &clock, config()), &clock);
    let path = filled_log::segment_paths(&fs, DIR).into_iter().next().unwrap();
    let mut image = fs.read_all(&path).unwrap();
    image[100] ^= 0x08;
    fs.overwrite(&path, image);
    let salvage = LogConfig { recovery_mode: RecoveryMode::Salvage, ..config() };
    let store = open(&fs, &clock, salvage);
    let lost = &store.recovery_report().lost;
    assert_eq!(lost.len(), 1, "{lost:?}");
    let report = store.verify().unwrap();
    assert_eq!(report.lost_bytes_skipped, lost[0].len);
    assert!(report.records < RECORDS && report.records > 60, "{report:?}");
}
