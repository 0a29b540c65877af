//! Review finding (LOW): a damaged `WATERMARK` file makes the store unopenable, even in
//! `RecoveryMode::Salvage`, which exists precisely to get a damaged store open again.
//!
//! `recovery::recover` (src/engine/log/recovery.rs) starts with `Watermark::load(fs, dir)?`; a
//! checksum failure there is returned as `StoreError::Corruption` before the recovery mode is
//! even looked at. The watermark holds only floors (next LSN, next segment id, what sweeps
//! counted and unlinked), so salvage can always proceed with conservative values derived from
//! the segments and report that it did: every segment file, with every acknowledged record,
//! is intact, yet the data cannot be reached without hand-editing the directory.
//!
//! Fix: in salvage mode, on a bad watermark, continue with a conservative one (LSN floor and
//! segment floor from the highest ones found on disk, plus a safety gap for the LSN; expirations
//! and removals "unlinked through" set to now and to the highest LSN, so old change tokens are
//! reported stale rather than answered wrongly), rewrite it, and add an entry to the
//! `RecoveryReport` (e.g. a `LostRegion` for the watermark file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore, RecoveryMode};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

fn open(fs: &FaultFileSystem, clock: &ManualClock, recovery_mode: RecoveryMode) -> Result<LogStore, StoreError> {
    let config = LogConfig { recovery_mode, ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

#[test]
fn salvage_opens_a_store_whose_watermark_is_damaged() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let kept = {
        let store = open(&fs, &clock, RecoveryMode::default()).unwrap();
        let soon = clock.now() + SignedDuration::from_mins(10);
        let later = clock.now() + SignedDuration::from_hours(5);
        store.append(&f, NewNotification::visual("h", "short", "t").expiring_at(soon)).unwrap();
        let kept = store.append(&f, NewNotification::visual("h", "long", "t").expiring_at(later)).unwrap();
        clock.advance(SignedDuration::from_hours(2));
        // The sweep writes the watermark before unlinking the passed window.
        assert_eq!(store.sweep_expired().unwrap().files_removed, 1);
        kept
    };
    let path = Path::new("/data/WATERMARK");
    let mut bytes = fs.read_all(path).expect("the sweep wrote a watermark");
    bytes[5] ^= 0x40;
    fs.overwrite(path, bytes);
    assert!(matches!(open(&fs, &clock, RecoveryMode::default()), Err(StoreError::Corruption { .. })));

    let store = match open(&fs, &clock, RecoveryMode::Salvage) {
        Ok(store) => store,
        Err(e) => panic!("salvage refuses to open a store whose segments are all intact: {e}"),
    };
    assert_eq!(store.get(&f, kept.id).unwrap().as_ref(), Some(&kept));
}
