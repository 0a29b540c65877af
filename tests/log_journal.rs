//! The commit journal of an `Always` store (`LogConfig::journal_bytes`), through the public API
//! on the fault-injecting file system:
//! * a batch syncs the journal, not the segments it wrote, and a power loss that keeps only
//!   synced bytes loses no acknowledged record: the open writes the journal back first;
//! * a full journal checkpoints (syncs the segments) and starts over;
//! * a journal whose sync failed poisons the store, and no reopen serves its record;
//! * a `Buffered` open writes a journal back and removes it;
//! * every open starts a new generation, synced, so nothing a failed sync left only in the page
//!   cache (a discarded entry, a header slot) can come back after the store wrote past it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification, Notification, StoreError};

const DIR: &str = "/db";
const JOURNAL: &str = "/db/commit.journal";

fn feed() -> FeedKey {
    FeedKey::new("user/app.example").unwrap()
}

fn config(journal_bytes: u64) -> LogConfig {
    LogConfig { window: SignedDuration::from_secs(600), journal_bytes, ..LogConfig::default() }
}

fn open(fs: &FaultFileSystem, clock: &ManualClock, config: LogConfig) -> LogStore {
    LogStore::open_with_fs(Path::new(DIR), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

/// A notification expiring in window `w` (10-minute windows), `body_len` bytes of content.
fn note(clock: &ManualClock, app: &str, w: i64, body_len: usize) -> NewNotification {
    NewNotification::raw("app.example", app, &"x".repeat(body_len))
        .expiring_at(clock.now() + SignedDuration::from_secs(600 * w + 300))
}

fn assert_all_present(store: &LogStore, acknowledged: &[Notification]) {
    for n in acknowledged {
        assert_eq!(store.get(&feed(), n.id).unwrap().as_ref(), Some(n), "{}", n.app_notification_id());
    }
    assert_eq!(store.count(&feed()).unwrap().total, acknowledged.len() as u64);
}

#[test]
fn an_always_append_syncs_only_the_journal_and_a_power_loss_replays_it() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    // One append per window creates its segment (a sync of its own) and raises the lease.
    let mut acknowledged: Vec<Notification> =
        (0..4).map(|w| store.append(&feed(), note(&clock, &format!("first-{w}"), w, 100)).unwrap()).collect();
    // From here each append writes its segment and the journal, and syncs one file.
    fs.set_plan(FaultPlan::default());
    for w in 0..4 {
        acknowledged.push(store.append(&feed(), note(&clock, &format!("second-{w}"), w, 100)).unwrap());
    }
    assert_eq!(fs.counts(), (8, 4), "a segment write, a journal write and one sync per append");

    // A power loss: the segments lose every append since their creation; the journal has them.
    let crashed = fs.crash(None);
    let store = open(&crashed, &clock, config(1 << 20));
    assert!(store.recovery_report().journal_entries_replayed >= 4, "{:?}", store.recovery_report());
    assert!(store.recovery_report().torn_tails.is_empty(), "{:?}", store.recovery_report());
    assert_all_present(&store, &acknowledged);
    acknowledged.push(store.append(&feed(), note(&clock, "after", 2, 100)).unwrap());

    // The open started a new generation: a second power loss (before the close's checkpoint)
    // replays only what came after.
    let again = crashed.crash(None);
    drop(store);
    let store = open(&again, &clock, config(1 << 20));
    assert_eq!(store.recovery_report().journal_entries_replayed, 1, "{:?}", store.recovery_report());
    assert_all_present(&store, &acknowledged);
}

#[test]
fn without_a_journal_each_append_syncs_its_segment() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(0));
    let mut acknowledged: Vec<Notification> =
        (0..4).map(|w| store.append(&feed(), note(&clock, &format!("first-{w}"), w, 100)).unwrap()).collect();
    fs.set_plan(FaultPlan::default());
    for w in 0..4 {
        acknowledged.push(store.append(&feed(), note(&clock, &format!("second-{w}"), w, 100)).unwrap());
    }
    assert_eq!(fs.counts(), (4, 4), "a segment write and its sync per append");
    assert!(fs.read_all(Path::new(JOURNAL)).is_none(), "no journal file");
    let store = open(&fs.crash(None), &clock, config(0));
    assert_eq!(store.recovery_report().journal_entries_replayed, 0);
    assert_all_present(&store, &acknowledged);
}

#[test]
fn a_full_journal_checkpoints_the_segments_and_starts_over() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    // A journal of 64 KiB fills after about 30 appends of 2 KB.
    let store = open(&fs, &clock, config(64 << 10));
    let acknowledged: Vec<Notification> =
        (0..100).map(|i| store.append(&feed(), note(&clock, &format!("n-{i}"), i % 3, 2_000)).unwrap()).collect();
    let crashed = fs.crash(None);
    drop(store);
    let store = open(&crashed, &clock, config(64 << 10));
    let replayed = store.recovery_report().journal_entries_replayed;
    // Only the appends since the last checkpoint were in the journal; the rest were synced.
    assert!(replayed > 0 && replayed < 40, "replayed {replayed}");
    assert_all_present(&store, &acknowledged);
}

#[test]
fn a_failed_journal_sync_poisons_and_no_reopen_serves_its_record() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    let first = store.append(&feed(), note(&clock, "first", 1, 100)).unwrap();
    let second = store.append(&feed(), note(&clock, "second", 1, 100)).unwrap();

    // The third append writes its segment and the journal entry; the journal's sync fails.
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    let failed = store.append(&feed(), note(&clock, "failed", 1, 100));
    assert!(matches!(failed, Err(StoreError::Io { .. })), "{failed:?}");
    let refused = store.append(&feed(), note(&clock, "refused", 1, 100));
    assert!(matches!(refused, Err(StoreError::Poisoned)), "{refused:?}");
    assert_eq!(store.get_by_app_id(&feed(), "failed").unwrap(), None);
    // The failure cut back only the failed batch's bytes: the journaled records still read.
    assert_all_present(&store, &[first.clone(), second.clone()]);
    drop(store);

    // A reopen in the same boot (the page cache as it is) ...
    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock, config(1 << 20));
    assert_all_present(&store, &[first.clone(), second.clone()]);
    assert_eq!(store.get_by_app_id(&feed(), "failed").unwrap(), None);
    let later = store.append(&feed(), note(&clock, "later", 1, 100)).unwrap();
    drop(store);

    // ... and after a power loss.
    let store = open(&fs.crash(None), &clock, config(1 << 20));
    assert_all_present(&store, &[first, second, later]);
}

#[test]
fn a_torn_journal_entry_is_not_replayed_and_the_acknowledged_ones_are() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    let acknowledged: Vec<Notification> =
        (0..3).map(|i| store.append(&feed(), note(&clock, &format!("n-{i}"), 1, 300)).unwrap()).collect();
    // The next append's journal write is torn (half written, then it fails).
    fs.set_plan(FaultPlan { tear_write: Some(2), ..FaultPlan::default() });
    assert!(store.append(&feed(), note(&clock, "torn", 1, 300)).is_err());
    drop(store);
    for torn in [None, Some(200)] {
        let store = open(&fs.crash(torn), &clock, config(1 << 20));
        assert_all_present(&store, &acknowledged);
        assert_eq!(store.get_by_app_id(&feed(), "torn").unwrap(), None);
    }
}

#[test]
fn a_buffered_open_writes_the_journal_back_and_removes_it() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    let acknowledged: Vec<Notification> =
        (0..5).map(|i| store.append(&feed(), note(&clock, &format!("n-{i}"), i, 100)).unwrap()).collect();
    let crashed = fs.crash(None);
    drop(store);
    assert!(crashed.read_all(Path::new(JOURNAL)).is_some());
    let buffered = LogConfig { durability: Durability::Buffered, ..config(1 << 20) };
    let store = open(&crashed, &clock, buffered.clone());
    assert!(store.recovery_report().journal_entries_replayed > 0);
    assert_all_present(&store, &acknowledged);
    assert!(crashed.read_all(Path::new(JOURNAL)).is_none(), "a Buffered store keeps no journal");
    drop(store);
    let store = open(&crashed.crash(None), &clock, buffered);
    assert_all_present(&store, &acknowledged);
}

#[test]
fn a_clean_close_checkpoints_so_the_next_open_replays_nothing_and_writes_one_header() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    let acknowledged: Vec<Notification> =
        (0..5).map(|i| store.append(&feed(), note(&clock, &format!("n-{i}"), i, 100)).unwrap()).collect();
    drop(store);
    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock, config(1 << 20));
    assert_eq!(store.recovery_report().journal_entries_replayed, 0);
    assert_eq!(fs.counts().0, 1, "one write at open: the journal's new generation");
    drop(store);
    let store = open(&fs.crash(None), &clock, config(1 << 20));
    assert_all_present(&store, &acknowledged);
}

#[test]
fn a_reopen_after_a_failed_checkpoint_starts_a_durable_generation_before_it_writes_entries() {
    // helper-17's finding: a checkpoint's new generation whose sync failed stays in the page
    // cache only; a reopen in the same boot that went on in that generation would write
    // entries keyed by a header the disk never got, and a power loss would then drop them.
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    let store = open(&fs, &clock, config(1 << 20));
    let first = store.append(&feed(), note(&clock, "first", 1, 100)).unwrap();
    // `sync` checkpoints: the segment's sync, then the journal's new generation, whose sync fails.
    fs.set_plan(FaultPlan { fail_sync: Some(2), ..FaultPlan::default() });
    assert!(matches!(store.sync(), Err(StoreError::Io { .. })));
    assert_eq!(fs.counts().1, 2, "the segment's sync, then the journal's");
    drop(store);

    fs.set_plan(FaultPlan::default());
    let store = open(&fs, &clock, config(1 << 20));
    let later: Vec<Notification> =
        (0..3).map(|i| store.append(&feed(), note(&clock, &format!("later-{i}"), 1 + i, 100)).unwrap()).collect();
    // A power loss before the close (whose checkpoint would sync the segments).
    let crashed = fs.crash(None);
    drop(store);

    let store = open(&crashed, &clock, config(1 << 20));
    let mut acknowledged = vec![first];
    acknowledged.extend(later);
    assert_all_present(&store, &acknowledged);
}

#[test]
fn a_batch_checkpoints_first_when_unsynced_segments_would_fill_the_descriptors() {
    let clock = ManualClock::at_epoch_2026();
    let fs = FaultFileSystem::new();
    // Three descriptors: at most two segments may hold unsynced bytes, one slot stays free.
    let config = || LogConfig { max_open_files: 3, ..config(1 << 20) };
    let store = open(&fs, &clock, config());
    let mut acknowledged: Vec<Notification> =
        (0..3).map(|w| store.append(&feed(), note(&clock, &format!("first-{w}"), w, 100)).unwrap()).collect();
    store.sync().unwrap();
    // Two segments with unsynced bytes leave a descriptor free: one sync (the journal's) per
    // append.
    fs.set_plan(FaultPlan::default());
    for w in 0..2 {
        acknowledged.push(store.append(&feed(), note(&clock, &format!("second-{w}"), w, 100)).unwrap());
    }
    assert_eq!(fs.counts(), (4, 2), "a segment write, a journal write and one sync per append");
    // A third would not: that append first checkpoints (one volume sync of those segments, a
    // new generation's header written and synced, the synced lengths written and synced), then
    // is journaled (a segment write, a journal write, its sync). A checkpoint at its end
    // instead would write no entry: (7, 5).
    acknowledged.push(store.append(&feed(), note(&clock, "second-2", 2, 100)).unwrap());
    assert_eq!(fs.counts(), (8, 6), "no checkpoint before the write");

    // So a power loss now replays that append alone, and loses nothing.
    let crashed = fs.crash(None);
    drop(store);
    let store = open(&crashed, &clock, config());
    assert_eq!(store.recovery_report().journal_entries_replayed, 1, "{:?}", store.recovery_report());
    assert_all_present(&store, &acknowledged);
}
