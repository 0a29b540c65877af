//! Review finding (LOW, fixed): a salvage open that loads the index snapshot drops what it already
//! lost from its report. With a damaged `WATERMARK`, `recovery::recover` records a
//! `LostRegion` for it and continues with `Watermark::default()`, then returns the snapshot's
//! `Recovered` as is: `snapshot::build` makes a fresh `RecoveryReport` (only `Loaded`), so
//! `recovery_report().lost` is empty. The same open without a snapshot reports the damaged
//! watermark.
//!
//! Consequences: the operator is not told that salvage replaced the floors; because `lost` is
//! empty the store counts as clean, so its next close writes a new snapshot; and the store runs
//! on the default watermark (sequence floor 0, expirations unlinked through `i64::MIN`), which
//! its first lease raise writes to disk, lowering the durable floors that a later scan open
//! rebuilds change-token horizons from.
//!
//! Fix: in `recover`, carry the report built so far into the snapshot's result (merge
//! `report.lost` into `recovered.report`), or skip the snapshot whenever salvage already lost
//! something (the watermark), and scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore, RecoveryMode};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

fn open(fs: &FaultFileSystem, clock: &ManualClock, recovery_mode: RecoveryMode, index_snapshot: bool) -> LogStore {
    let config = LogConfig { recovery_mode, index_snapshot, ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

/// A store with a snapshot from a clean close and a damaged watermark.
fn damaged(clock: &ManualClock) -> FaultFileSystem {
    let fs = FaultFileSystem::new();
    let f = FeedKey::new("user/app").unwrap();
    let store = open(&fs, clock, RecoveryMode::default(), true);
    let later = clock.now() + SignedDuration::from_hours(5);
    store.append(&f, NewNotification::visual("h", "n", "t").expiring_at(later)).unwrap();
    store.close().unwrap();
    let path = Path::new("/data/WATERMARK");
    let mut bytes = fs.read_all(path).expect("the first append raised the LSN lease");
    bytes[5] ^= 0x40;
    fs.overwrite(path, bytes);
    fs
}

#[test]
fn a_salvage_open_from_the_snapshot_reports_the_damaged_watermark() {
    let clock = ManualClock::at_epoch_2026();

    // Control: scanning, salvage reports the watermark it could not read.
    let scanned = open(&damaged(&clock), &clock, RecoveryMode::Salvage, false);
    assert!(!scanned.recovery_report().lost.is_empty(), "{:?}", scanned.recovery_report());

    let store = open(&damaged(&clock), &clock, RecoveryMode::Salvage, true);
    let report = store.recovery_report();
    // The fix chosen: the snapshot is not used once salvage has lost something (the floors
    // come from a scan), and the report says both.
    assert!(matches!(report.index_snapshot, IndexSnapshot::Rejected { .. }), "{report:?}");
    assert!(!report.lost.is_empty(), "the damaged WATERMARK is missing from the salvage report: {report:?}");
}
