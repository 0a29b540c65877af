//! `LogStore::backup`, the online copy:
//! * the copy opens as the store it copied (every notification, byte for byte, and nothing
//!   the store did after it), and is durable when the call returns;
//! * a copy cut short by an error keeps its marker, and no open accepts it; the store goes on;
//! * a directory that holds files, or that a store holds, is refused;
//! * a record that fails its checksum is never copied, and a store poisoned before the copy
//!   finished leaves it unopenable;
//! * after a sweep unlinked a window, the copy answers a change token as the store, reopened,
//!   does;
//! * records still in a `Buffered` store's buffer are in the copy;
//! * taken while writers append, the copy holds, for each writer, a prefix of its appends
//!   that includes every one acknowledged before the call;
//! * removing a copy (`BackupDirectory::discard`), cut at any step by a power loss, leaves
//!   the whole copy, one that no open accepts, or nothing of it;
//! * so does making a copy, cut at any write or sync by a power loss;
//! * a refresh of a copy (`LogStore::refresh_backup`) writes only what differs, removes what
//!   the store swept and what a store opened on the copy wrote, opens as the store at the
//!   refresh, refuses a directory holding other files, and cut by a power loss leaves the
//!   earlier copy, a refused one, or the new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod filled_log;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use filled_log::{EVERY_CUT, HELD, RECORDS, config, contents, feed, fill, note};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan, FileSystem};
use notifeed::engine::log::{BACKUP_INCOMPLETE_FILE, BackupDirectory, BackupReport, LogConfig, LogStore, RecoveryMode};
use notifeed::{Durability, FeedStore, ListQuery, ManualClock, Notification, StoreError};

const DIR: &str = "/db";
const COPY: &str = "/backup/one";

fn open_at(fs: &FaultFileSystem, clock: &ManualClock, dir: &str, config: LogConfig) -> Result<LogStore, StoreError> {
    LogStore::open_with_fs(Path::new(dir), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

/// Every open mode refuses the copy in `dir` for its `BACKUP_INCOMPLETE` marker.
fn assert_refused_as_incomplete(fs: &FaultFileSystem, clock: &ManualClock, dir: &str) {
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Salvage] {
        match open_at(fs, clock, dir, LogConfig { recovery_mode: mode, ..config() }) {
            Err(StoreError::Corruption { location, .. }) => {
                assert!(location.ends_with("BACKUP_INCOMPLETE"), "{location}")
            }
            other => panic!("{mode:?}: opened: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_backup_opens_as_the_store_it_copied_and_is_durable_when_the_call_returns() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let before = contents(&store);
    let report = store.backup(Path::new(COPY)).unwrap();
    assert!(report.segments > 3 && report.bytes > 10_000, "{report:?}");
    // It carries the store's floors (the LSN lease, what unlinking forgot).
    let watermark = fs.read_all(&Path::new(DIR).join("WATERMARK")).unwrap();
    assert_eq!(fs.read_all(&Path::new(COPY).join("WATERMARK")), Some(watermark));
    // The store goes on; the copy does not see it.
    store.append(&feed(0), note(&clock, "after", 1)).unwrap();
    let n = store.get_by_app_id(&feed(1), "n31").unwrap().unwrap();
    store.delete(&feed(1), n.id).unwrap();

    // A power loss right after the call: the copy is whole.
    let crashed = fs.crash(None);
    let copy = open_at(&crashed, &clock, COPY, config()).unwrap();
    let recovered = copy.recovery_report();
    assert!(recovered.torn_tails.is_empty() && recovered.lost.is_empty(), "{recovered:?}");
    assert_eq!(recovered.records, RECORDS);
    assert_eq!(contents(&copy), before);
    assert_eq!(copy.verify().unwrap().notifications, HELD);
    // It is a store of its own: it takes writes, and they are not the original's.
    copy.append(&feed(2), note(&clock, "in the copy", 2)).unwrap();
    assert!(store.get_by_app_id(&feed(2), "in the copy").unwrap().is_none());
}

#[test]
fn a_backup_cut_short_keeps_its_marker_and_no_open_accepts_it() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    // The third file write of the copy fails.
    fs.set_plan(FaultPlan { fail_write: Some(3), ..FaultPlan::default() });
    assert!(matches!(store.backup(Path::new(COPY)), Err(StoreError::Io { .. })));
    fs.set_plan(FaultPlan::default());
    assert!(!store.is_poisoned(), "the copy's failure is not the store's");
    store.append(&feed(0), note(&clock, "after", 1)).unwrap();
    assert_refused_as_incomplete(&fs, &clock, COPY);
    // Another directory takes a whole copy.
    store.backup(Path::new("/backup/two")).unwrap();
    assert_eq!(contents(&open_at(&fs, &clock, "/backup/two", config()).unwrap()), contents(&store));
}

#[test]
fn a_directory_that_holds_files_is_refused() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    store.backup(Path::new(COPY)).unwrap();
    assert!(matches!(store.backup(Path::new(COPY)), Err(StoreError::Io { .. })));
    assert!(matches!(store.backup(Path::new(DIR)), Err(StoreError::Locked { .. })), "the store holds its own");
    assert!(!store.is_poisoned());
    assert_eq!(contents(&open_at(&fs, &clock, COPY, config()).unwrap()).concat().len() as u64, HELD);
}

#[test]
fn records_in_a_buffered_stores_buffer_are_in_the_copy() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, LogConfig { durability: Durability::Buffered, ..config() }).unwrap();
    for i in 0..5 {
        store.append(&feed(0), note(&clock, &format!("n{i}"), 1)).unwrap();
    }
    store.backup(Path::new(COPY)).unwrap();
    let copy = open_at(&fs.crash(None), &clock, COPY, config()).unwrap();
    assert_eq!(contents(&copy), contents(&store));
    assert_eq!(copy.count(&feed(0)).unwrap().total, 5);
}

#[test]
fn a_backup_taken_while_writers_append_holds_a_prefix_of_each_that_covers_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { durability: Durability::Buffered, write_buffer_bytes: 1024, ..config() };
    let store = LogStore::open(&dir.path().join("db"), config.clone(), Arc::new(clock.clone())).unwrap();
    let acknowledged: [AtomicUsize; 3] = Default::default();
    let copy_dir = dir.path().join("copy");
    let at_least = std::thread::scope(|scope| {
        for (t, acked) in acknowledged.iter().enumerate() {
            let (store, clock) = (&store, &clock);
            scope.spawn(move || {
                for i in 0..300 {
                    store.append(&feed(t), note(clock, &format!("t{t}-{i:03}"), (i % 4) as i64 + 1)).unwrap();
                    acked.store(i + 1, Ordering::SeqCst);
                }
            });
        }
        while acknowledged.iter().map(|a| a.load(Ordering::SeqCst)).sum::<usize>() < 300 {
            std::thread::yield_now();
        }
        let at_least: Vec<usize> = acknowledged.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        store.backup(&copy_dir).unwrap();
        at_least
    });
    let copy = LogStore::open(&copy_dir, config, Arc::new(clock.clone())).unwrap();
    for (t, &acked) in at_least.iter().enumerate() {
        let query = ListQuery { limit: ListQuery::MAX_LIMIT, ..ListQuery::default() };
        let mut apps: Vec<String> = copy
            .list(&feed(t), &query)
            .unwrap()
            .items
            .into_iter()
            .map(|n| n.app_notification_id().to_owned())
            .collect();
        apps.sort();
        let prefix: Vec<String> = (0..apps.len()).map(|i| format!("t{t}-{i:03}")).collect();
        assert_eq!(apps, prefix, "writer {t}: not a prefix");
        assert!(apps.len() >= acked, "writer {t}: {} in the copy, {acked} acknowledged before it", apps.len());
    }
}

#[test]
fn a_bad_record_is_never_copied_and_the_copy_stays_unopenable() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let path = filled_log::segment_paths(&fs, DIR).remove(0);
    let mut image = fs.read_all(&path).unwrap();
    image[200] ^= 0x02;
    fs.overwrite(&path, image);
    match store.backup(Path::new(COPY)) {
        Err(StoreError::Corruption { location, .. }) => {
            assert!(location.starts_with(&path.display().to_string()), "{location}")
        }
        other => panic!("copied: {other:?}"),
    }
    assert_refused_as_incomplete(&fs, &clock, COPY);
}

#[test]
fn a_store_poisoned_before_the_copy_finished_leaves_it_unopenable() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, LogConfig { durability: Durability::Buffered, ..config() }).unwrap();
    for i in 0..5 {
        store.append(&feed(0), note(&clock, &format!("n{i}"), 1)).unwrap();
    }
    // Writing the buffered records out, at the copy's instant, fails.
    fs.set_plan(FaultPlan { fail_write: Some(1), ..FaultPlan::default() });
    assert!(store.backup(Path::new(COPY)).is_err());
    assert!(store.is_poisoned());
    assert!(matches!(store.backup(Path::new("/backup/two")), Err(StoreError::Poisoned)));
    assert_refused_as_incomplete(&fs, &clock, COPY);
}

#[test]
fn after_a_sweep_unlinked_a_window_the_copy_answers_a_change_token_as_the_reopened_store_does() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let token = store.changes(&feed(1), None, 1000).unwrap().next;
    let n = store.get_by_app_id(&feed(1), "n40").unwrap().unwrap();
    store.delete(&feed(1), n.id).unwrap();
    // Window 1 passes: its files go, its notifications are reported expired.
    clock.advance(SignedDuration::from_secs(600 * 2 + 1));
    let swept = store.sweep_expired().unwrap();
    assert!(swept.expired > 0 && swept.files_removed > 0, "{swept:?}");
    store.backup(Path::new(COPY)).unwrap();
    let copy = open_at(&fs, &clock, COPY, config()).unwrap();
    assert_eq!(contents(&copy), contents(&store));
    // Compared with the store reopened, which rebuilds its feeds' floors from the same files
    // the same way.
    drop(store);
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    for f in 0..3 {
        let since = if f == 1 { Some(token) } else { None };
        let (a, b) = (store.changes(&feed(f), since, 1000), copy.changes(&feed(f), since, 1000));
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "feed {f}");
    }
}

/// What a removal of [`COPY`] left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// No directory.
    Nothing,
    /// An empty directory, which no pruning counts as a copy.
    Empty,
    /// A copy that every open refuses for its marker.
    Refused,
    /// The whole copy: it opens with every notification of `before`, and verifies.
    Whole,
}

/// Judges what is left of [`COPY`] in `fs`, and fails on anything but the four outcomes of
/// [`Left`] (a copy with files gone that opens, above all). Opens it, so `fs` is changed.
fn what_is_left(fs: &FaultFileSystem, clock: &ManualClock, before: &[Vec<Notification>]) -> Left {
    let dir = Path::new(COPY);
    let files = match fs.list(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Left::Nothing,
        listed => listed.unwrap(),
    };
    let claimed = BackupDirectory::claim_on(Arc::new(fs.clone()), dir).unwrap().unwrap();
    if files.contains(&dir.join(BACKUP_INCOMPLETE_FILE)) {
        assert!(!claimed.is_complete());
        drop(claimed);
        assert_refused_as_incomplete(fs, clock, COPY);
        return Left::Refused;
    }
    if files.is_empty() {
        assert!(!claimed.is_complete());
        return Left::Empty;
    }
    assert!(claimed.is_complete(), "files left, no marker, yet not complete: {files:?}");
    drop(claimed);
    let copy = open_at(fs, clock, COPY, config()).unwrap_or_else(|e| panic!("{files:?}: {e}"));
    assert_eq!(contents(&copy), before, "a copy without its marker is whole: {files:?}");
    assert_eq!(copy.verify().unwrap().notifications, HELD);
    Left::Whole
}

#[test]
fn a_removal_cut_at_any_step_by_a_power_loss_leaves_the_whole_copy_a_refused_one_or_nothing() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let before = contents(&store);
    store.backup(Path::new(COPY)).unwrap();
    drop(store);
    // Every run below starts from this machine, the copy durable.
    let machine = fs.crash(None);
    let files = machine.list(Path::new(COPY)).unwrap().len();
    assert!(files > 4, "{files} files: segments and the watermark");

    // A cut before the first removal (the marker's directory entry not yet durable), then one
    // after each removal (the Nth fails), until the removal runs through.
    let plans = std::iter::once(FaultPlan { fail_sync_dir: true, ..FaultPlan::default() })
        .chain((1..).map(|n| FaultPlan { fail_remove: Some(n), ..FaultPlan::default() }));
    let mut seen = Vec::new();
    for plan in plans {
        let fs = machine.crash(None);
        let claimed = BackupDirectory::claim_on(Arc::new(fs.clone()), Path::new(COPY)).unwrap().unwrap();
        assert!(claimed.is_complete());
        fs.set_plan(plan.clone());
        let outcome = claimed.discard();
        fs.set_plan(FaultPlan::default());
        // A power loss now, with any prefix of the name changes not yet synced kept.
        for kept in 0..=fs.unsynced_name_changes() {
            let left = what_is_left(&fs.crash_keeping_name_changes(None, kept), &clock, &before);
            seen.push((plan.clone(), kept, left));
        }
        // Without a power loss: what the next pruning finds.
        let left = what_is_left(&fs, &clock, &before);
        match outcome {
            Ok(()) => {
                assert_eq!(left, Left::Nothing);
                break;
            }
            Err(e) => {
                assert!(matches!(e, StoreError::Io { .. }), "{e}");
                // Refused, or (the lock file's removal failing) empty.
                assert!(matches!(left, Left::Refused | Left::Empty), "{plan:?}: {e}: {left:?}");
            }
        }
        assert!(plan.fail_remove < Some(files as u64 + 3), "the removal never ran through");
    }
    // Each outcome was reached, so the cuts above fell on every step.
    for outcome in [Left::Nothing, Left::Empty, Left::Refused, Left::Whole] {
        assert!(seen.iter().any(|(_, _, left)| *left == outcome), "{outcome:?} never seen: {seen:?}");
    }
}

/// Runs `copy` on the store of `machine`, reopened, once for every cut of [`EVERY_CUT`] (the
/// first write, sync, directory sync or removal failing, then the second, until one runs
/// through), and hands `judge` each power loss that may follow (keeping any prefix of the
/// name changes no directory sync covered yet), whether `copy` returned, and the cut.
fn after_every_cut(
    machine: &FaultFileSystem,
    clock: &ManualClock,
    copy: impl Fn(&LogStore) -> Result<BackupReport, StoreError>,
    mut judge: impl FnMut(&FaultFileSystem, bool, String),
) {
    for plan in EVERY_CUT {
        for n in 1.. {
            let fs = machine.crash(None);
            let store = open_at(&fs, clock, DIR, config()).unwrap();
            fs.set_plan(plan(n));
            let outcome = copy(&store);
            fs.set_plan(FaultPlan::default());
            for kept in 0..=fs.unsynced_name_changes() {
                judge(&fs.crash_keeping_name_changes(None, kept), outcome.is_ok(), format!("{:?}", plan(n)));
            }
            if outcome.is_ok() {
                break;
            }
            assert!(n < 200, "the copy never ran through");
        }
    }
}

#[test]
fn a_backup_cut_at_any_write_or_sync_by_a_power_loss_is_refused_or_whole() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let before = contents(&store);
    let machine = fs.crash(None);
    drop(store);

    let mut seen = Vec::new();
    after_every_cut(
        &machine,
        &clock,
        |store| store.backup(Path::new(COPY)),
        |crashed, returned, plan| {
            let left = what_is_left(crashed, &clock, &before);
            if returned {
                assert_eq!(left, Left::Whole, "{plan}: a copy that returned is durable");
            }
            seen.push(left);
        },
    );
    // Cuts fell before the marker was durable (an empty directory), while it was, and after
    // the copy was whole (178 crashes: 3, 170 and 5 when written).
    for outcome in [Left::Empty, Left::Refused, Left::Whole] {
        assert!(seen.contains(&outcome), "{outcome:?} never seen: {seen:?}");
    }
}

/// The files in [`COPY`] but its lock, by name.
fn names_in_copy(fs: &FaultFileSystem) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list(Path::new(COPY))
        .unwrap()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "LOCK")
        .collect();
    names.sort();
    names
}

#[test]
fn a_refresh_writes_only_what_changed_and_opens_as_the_store_at_the_refresh() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    let first = store.backup(Path::new(COPY)).unwrap();
    assert_eq!(first.bytes_written, first.bytes);
    // The store goes on: appends, a replacement and a delete.
    for i in 0..3 {
        store.append(&feed(i), note(&clock, &format!("later{i}"), 3)).unwrap();
    }
    store.append(&feed(0), note(&clock, "n0", 3)).unwrap();
    let n = store.get_by_app_id(&feed(1), "n31").unwrap().unwrap();
    store.delete(&feed(1), n.id).unwrap();
    let now = contents(&store);

    let refreshed = store.refresh_backup(Path::new(COPY)).unwrap();
    assert!(refreshed.bytes > first.bytes, "{refreshed:?}");
    assert!(
        refreshed.bytes_written > 0 && refreshed.bytes_written * 4 < refreshed.bytes,
        "only the new records' pieces: {refreshed:?}"
    );
    store.append(&feed(2), note(&clock, "after the refresh", 2)).unwrap();
    // A power loss right after the call: the copy is whole, and it is the store at the refresh.
    let crashed = fs.crash(None);
    let copy = open_at(&crashed, &clock, COPY, config()).unwrap();
    assert_eq!(contents(&copy), now);
    assert_eq!(copy.verify().unwrap().notifications, HELD + 2);
    drop(copy);
    // With one append since, a refresh writes its piece; with nothing new, nothing.
    let again = store.refresh_backup(Path::new(COPY)).unwrap();
    let unchanged = store.refresh_backup(Path::new(COPY)).unwrap();
    assert!(again.bytes_written > 0, "the append after the refresh: {again:?}");
    assert_eq!(unchanged.bytes_written, 0, "{unchanged:?}");
}

#[test]
fn a_refresh_removes_what_the_store_swept_and_what_a_store_opened_on_the_copy_wrote() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    store.backup(Path::new(COPY)).unwrap();
    let copied = names_in_copy(&fs);
    // Someone opens the copy as a store and writes to it (a restore drill), then closes it.
    let opened = open_at(&fs, &clock, COPY, LogConfig { index_snapshot: true, ..config() }).unwrap();
    opened.append(&feed(0), note(&clock, "in the copy", 1)).unwrap();
    opened.close().unwrap();
    assert!(names_in_copy(&fs).iter().any(|n| n == "SYNCED" || n == "INDEX"), "{:?}", names_in_copy(&fs));
    // Window 1 passes in the store: its files go.
    clock.advance(SignedDuration::from_secs(600 * 2 + 1));
    let swept = store.sweep_expired().unwrap();
    assert!(swept.files_removed > 0, "{swept:?}");

    let refreshed = store.refresh_backup(Path::new(COPY)).unwrap();
    // The swept files, and any file the drill's appends rolled into.
    assert!(refreshed.segments_removed >= swept.files_removed, "{refreshed:?}");
    let names = names_in_copy(&fs);
    assert!(names.iter().all(|n| n == "WATERMARK" || n.ends_with(".seg")), "{names:?}");
    assert!(names.len() < copied.len(), "{names:?} against {copied:?}");
    let copy = open_at(&fs, &clock, COPY, config()).unwrap();
    assert_eq!(contents(&copy), contents(&store));
    assert!(copy.get_by_app_id(&feed(0), "in the copy").unwrap().is_none());
}

#[test]
fn a_refresh_into_a_directory_holding_other_files_is_refused_and_changes_nothing() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    store.backup(Path::new(COPY)).unwrap();
    let before = contents(&store);
    fs.open(&Path::new(COPY).join("notes.txt"), true).unwrap();
    let names = names_in_copy(&fs);
    store.append(&feed(0), note(&clock, "later", 1)).unwrap();
    match store.refresh_backup(Path::new(COPY)) {
        Err(StoreError::Io { path, .. }) => assert!(path.ends_with("notes.txt"), "{path}"),
        other => panic!("refreshed: {other:?}"),
    }
    assert_eq!(names_in_copy(&fs), names);
    fs.remove_file(&Path::new(COPY).join("notes.txt")).unwrap();
    assert_eq!(contents(&open_at(&fs, &clock, COPY, config()).unwrap()), before);
    assert!(!store.is_poisoned());
}

#[test]
fn a_refresh_cut_at_any_write_or_sync_by_a_power_loss_leaves_the_earlier_copy_a_refused_one_or_the_new_one() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    store.backup(Path::new(COPY)).unwrap();
    // A restore drill writes to the copy (its journal, SYNCED, a longer segment file), and
    // the store sweeps a window (files the refresh removes) and takes appends.
    let drill = open_at(&fs, &clock, COPY, config()).unwrap();
    drill.append(&feed(0), note(&clock, "in the copy", 3)).unwrap();
    drill.close().unwrap();
    clock.advance(SignedDuration::from_secs(600 * 2 + 1));
    assert!(store.sweep_expired().unwrap().files_removed > 0);
    // The earlier copy as an open of it now shows it (its first window expired).
    let earlier = contents(&open_at(&fs, &clock, COPY, config()).unwrap());
    for i in 0..6 {
        store.append(&feed(i % 3), note(&clock, &format!("later{i}"), (i % 3) as i64 + 1)).unwrap();
    }
    let now = contents(&store);
    let machine = fs.crash(None);
    drop(store);

    let mut seen = Vec::new();
    after_every_cut(
        &machine,
        &clock,
        |store| store.refresh_backup(Path::new(COPY)),
        |crashed, returned, plan| {
            let marked = crashed.list(Path::new(COPY)).unwrap().contains(&Path::new(COPY).join(BACKUP_INCOMPLETE_FILE));
            let left = if marked {
                assert_refused_as_incomplete(crashed, &clock, COPY);
                "refused"
            } else {
                let held = contents(&open_at(crashed, &clock, COPY, config()).unwrap());
                if held == now {
                    "new"
                } else {
                    assert_eq!(held, earlier, "{plan}: neither copy");
                    "earlier"
                }
            };
            if returned {
                assert_eq!(left, "new", "{plan}: a refresh that returned is durable");
            }
            seen.push(left);
        },
    );
    for outcome in ["earlier", "refused", "new"] {
        assert!(seen.contains(&outcome), "{outcome} never seen");
    }
}

#[test]
fn a_refresh_after_one_that_failed_compares_nothing_and_rewrites_every_piece() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock, DIR, config()).unwrap();
    fill(&store, &clock);
    store.backup(Path::new(COPY)).unwrap();
    store.append(&feed(0), note(&clock, "later", 1)).unwrap();
    // The first sync of the refresh fails: what it wrote may be in no file on disk, though a
    // read shows it (Linux marks the pages clean).
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    assert!(matches!(store.refresh_backup(Path::new(COPY)), Err(StoreError::Io { .. })));
    fs.set_plan(FaultPlan::default());
    assert_refused_as_incomplete(&fs, &clock, COPY);
    let retried = store.refresh_backup(Path::new(COPY)).unwrap();
    assert_eq!(retried.bytes_written, retried.bytes, "{retried:?}");
    let copy = open_at(&fs, &clock, COPY, config()).unwrap();
    assert_eq!(contents(&copy), contents(&store));
    drop(copy);
    // Complete again: the next refresh compares.
    assert_eq!(store.refresh_backup(Path::new(COPY)).unwrap().bytes_written, 0);
}

#[test]
fn a_directory_holding_a_link_is_refused_before_anything_is_written_through_it() {
    let root = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let store = LogStore::open(&root.path().join("db"), config(), Arc::new(clock.clone())).unwrap();
    fill(&store, &clock);
    let copy = root.path().join("copy");
    store.backup(&copy).unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"not a segment").unwrap();
    // A segment of the copy swapped for a symbolic link to another file, then for a hard link.
    let segment = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    std::fs::remove_file(&segment).unwrap();
    std::os::unix::fs::symlink(&victim, &segment).unwrap();
    for attempt in ["symbolic link", "hard link"] {
        match store.refresh_backup(&copy) {
            Err(StoreError::Io { path, .. }) => assert!(path.ends_with(".seg"), "{attempt}: {path}"),
            other => panic!("{attempt}: refreshed: {other:?}"),
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"not a segment", "{attempt}");
        std::fs::remove_file(&segment).unwrap();
        std::fs::hard_link(&victim, &segment).unwrap();
    }
    assert!(!copy.join(BACKUP_INCOMPLETE_FILE).exists(), "refused before the marker");
    std::fs::remove_file(&segment).unwrap();
    store.refresh_backup(&copy).unwrap();
    assert_eq!(contents(&LogStore::open(&copy, config(), Arc::new(clock)).unwrap()), contents(&store));
}
