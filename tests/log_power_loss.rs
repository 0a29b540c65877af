//! Power losses in the middle of the log engine's multi-step file changes, each cut at every
//! write, removal, sync and directory sync it makes, then crashed with any prefix of the name
//! changes not yet synced kept (as a file system that journals its metadata in order may keep
//! them):
//! * a sweep (window files unlinked, mostly dead segments compacted), the store's first, so from
//!   a version-1 watermark as a build older than version 2 leaves it: the reopened store holds
//!   exactly what was held before the sweep, less what has expired; nothing removed comes back,
//!   nothing acknowledged is lost, and every record verifies. A change token taken before any
//!   write gets the answer of the store with the sweep done, or (cut before the sweep's own
//!   records were durable) with none: what unlinking forgets is never forgotten silently;
//! * a segment created for a passed window after a sweep (the clock set back) is never taken
//!   for one the sweep was unlinking;
//! * a clean close that trims the segments' preallocated zeros and writes the index snapshot:
//!   the reopened store, from the snapshot or from a scan, holds every acknowledged operation;
//! * an open recovering from a power loss (writing the commit journal back into segments that
//!   lost their unsynced records, starting a new journal generation): the next open holds
//!   every acknowledged operation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the verify and backup tests, which use the rest of it.
#[allow(dead_code)]
mod filled_log;

use std::path::Path;
use std::sync::Arc;

use filled_log::{Cut, EVERY_CUT, config, contents, feed, fill};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{Change, ChangeToken, Clock, FeedStore, ManualClock, Notification};

const DIR: &str = "/db";

fn open_at(fs: &FaultFileSystem, clock: &ManualClock) -> LogStore {
    // Compaction on every sweep that finds a sealed segment a tenth dead.
    let config = LogConfig { compaction_dead_fraction: 0.1, ..config() };
    LogStore::open_with_fs(Path::new(DIR), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
}

/// What `changes` answers from each feed's token: the changes, or the error.
fn answers(store: &LogStore, tokens: &[ChangeToken]) -> Vec<Result<Vec<Change>, String>> {
    (0..3)
        .map(|f| {
            let page = store.changes(&feed(f), Some(tokens[f]), 1000);
            page.map(|c| c.items).map_err(|e| format!("{e:?}"))
        })
        .collect()
}

/// The answers in short: `U(app id)` for an upsert, `R(id, reason)` for a removal.
fn brief(answers: &[Result<Vec<Change>, String>]) -> String {
    let change = |c: &Change| match c {
        Change::Upserted(n) => format!("U({})", n.app_notification_id()),
        Change::Removed { id, reason } => format!("R({id} {reason:?})"),
    };
    let feeds = answers.iter().map(|a| match a {
        Ok(items) => items.iter().map(change).collect::<Vec<_>>().join(" "),
        Err(e) => e.clone(),
    });
    feeds.collect::<Vec<_>>().join(" | ")
}

#[test]
fn a_sweep_cut_at_any_removal_or_sync_by_a_power_loss_loses_and_resurrects_nothing() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock);
    let tokens: Vec<ChangeToken> = (0..3).map(|f| store.changes(&feed(f), None, 1).unwrap().next).collect();
    fill(&store, &clock);
    let before = contents(&store);
    // Every operation was acknowledged durable: this machine holds them all.
    let machine = fs.crash(None);
    drop(store);
    // No sweep has unlinked anything yet, so the watermark is version 1, as builds from before
    // version 2 wrote it: the cuts below are also those of the first sweep after an upgrade.
    let watermark = machine.read_all(&Path::new(DIR).join("WATERMARK"));
    assert_eq!(watermark.as_deref().and_then(<[u8]>::first), Some(&1), "{watermark:?}");

    // The first window (records expiring 15 minutes in) has passed whole.
    clock.advance(SignedDuration::from_secs(1300));
    let now = clock.now();
    let expected: Vec<Vec<Notification>> =
        before.iter().map(|items| items.iter().filter(|n| !n.is_expired(now)).cloned().collect()).collect();
    assert!(expected.concat().len() < before.concat().len(), "the sweep has work");
    // The two answers a token may get: with the sweep done (and durable), and with none.
    let unswept = answers(&open_at(&machine.crash(None), &clock), &tokens);
    let swept_answers = {
        let fs = machine.crash(None);
        open_at(&fs, &clock).sweep_expired().unwrap();
        answers(&open_at(&fs.crash(None), &clock), &tokens)
    };

    // Each kind of cut, and whether the sweep's own records (the `Expired` record, synced
    // before anything is unlinked or a directory synced) are durable wherever it falls.
    let kinds: [(Cut, bool); 3] = [
        (|n| FaultPlan { fail_remove: Some(n), ..FaultPlan::default() }, true),
        (|n| FaultPlan { fail_sync_dir_at: Some(n), ..FaultPlan::default() }, true),
        (|n| FaultPlan { fail_sync: Some(n), ..FaultPlan::default() }, false),
    ];
    let (mut cuts, mut prefixes, mut finished, mut removed, mut rewritten) = (0, 0, 0, 0, 0);
    for (plan, records_durable) in kinds {
        for n in 1.. {
            let fs = machine.crash(None);
            let store = open_at(&fs, &clock);
            fs.set_plan(plan(n));
            let outcome = store.sweep_expired();
            fs.set_plan(FaultPlan::default());
            // The power loss, before the store is dropped (its close would sync).
            let unsynced = fs.unsynced_name_changes();
            for kept in 0..=unsynced {
                let after = open_at(&fs.crash_keeping_name_changes(None, kept), &clock);
                let at = format!("{:?}, {kept} of {unsynced} name changes kept", plan(n));
                assert_eq!(contents(&after), expected, "{at}");
                assert!(after.recovery_report().lost.is_empty(), "{at}");
                after.verify().unwrap_or_else(|e| panic!("{at}: {e}"));
                let answered = answers(&after, &tokens);
                assert!(
                    answered == swept_answers || (!records_durable && answered == unswept),
                    "{at}:\n got     {}\n swept   {}\n unswept {}",
                    brief(&answered),
                    brief(&swept_answers),
                    brief(&unswept)
                );
                finished += usize::from(!after.recovery_report().unlinks_finished.is_empty());
                prefixes += 1;
            }
            match outcome {
                Ok(stats) => {
                    (removed, rewritten) = (stats.files_removed, stats.bytes_rewritten);
                    break;
                }
                Err(_) => cuts += 1,
            }
            assert!(n < 100, "the sweep never ran through");
        }
    }
    // The sweep unlinked files and compacted, and was cut at several points of both.
    assert!(removed >= 2 && rewritten > 0, "{removed} files removed, {rewritten} bytes rewritten");
    assert!(cuts >= 6, "{cuts} cuts");
    assert!(prefixes > cuts + 2, "some cuts left name changes unsynced: {prefixes} crashes");
    // Some crashes kept part of the sweep's unlinking, and the open finished it.
    assert!(finished > 0, "no open finished an unlinking: {prefixes} crashes");
}

#[test]
fn a_segment_created_after_a_sweep_for_a_passed_window_is_never_taken_for_the_sweeps() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock);
    fill(&store, &clock);
    let start = clock.now();
    clock.advance(SignedDuration::from_secs(1300));
    assert!(store.sweep_expired().unwrap().files_removed >= 2);
    // The clock is set back (NTP, an operator), into the window the sweep unlinked: a new
    // notification lands in a new segment of that window.
    clock.set(start + SignedDuration::from_secs(60));
    let late = store.append(&feed(0), filled_log::note(&clock, "late", 1)).unwrap();
    assert!(late.expiration <= start + SignedDuration::from_secs(1200), "in the passed window");
    // A power loss, with any prefix of the unsynced name changes: the open finishes no
    // unlinking, and the notification is there.
    for kept in 0..=fs.unsynced_name_changes() {
        let after = open_at(&fs.crash_keeping_name_changes(None, kept), &clock);
        assert!(after.recovery_report().unlinks_finished.is_empty(), "{:?}", after.recovery_report());
        assert_eq!(after.get(&feed(0), late.id).unwrap(), Some(late.clone()));
    }
    drop(store);
    assert_eq!(open_at(&fs, &clock).get(&feed(0), late.id).unwrap(), Some(late));
}

#[test]
fn a_close_cut_at_any_step_by_a_power_loss_keeps_every_acknowledged_operation() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let with_snapshot = || LogConfig { index_snapshot: true, ..config() };
    let open = |fs: &FaultFileSystem| {
        LogStore::open_with_fs(Path::new(DIR), with_snapshot(), Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap()
    };
    let store = open(&fs);
    fill(&store, &clock);
    let before = contents(&store);
    let machine = fs.crash(None);
    drop(store);

    let (mut crashes, mut from_snapshot) = (0, 0);
    for plan in EVERY_CUT {
        for n in 1.. {
            let fs = machine.crash(None);
            let store = open(&fs);
            fs.set_plan(plan(n));
            let closed = store.close();
            fs.set_plan(FaultPlan::default());
            for kept in 0..=fs.unsynced_name_changes() {
                let after = open(&fs.crash_keeping_name_changes(None, kept));
                let at = format!("{:?}, {kept} name changes kept", plan(n));
                assert_eq!(contents(&after), before, "{at}");
                after.verify().unwrap_or_else(|e| panic!("{at}: {e}"));
                from_snapshot += usize::from(after.recovery_report().index_snapshot == IndexSnapshot::Loaded);
                crashes += 1;
            }
            if closed.is_ok() {
                break;
            }
            assert!(n < 100, "the close never ran through");
        }
    }
    // Some crashes came after the snapshot was whole, and the open used it.
    assert!(from_snapshot > 0 && from_snapshot < crashes, "{from_snapshot} of {crashes} opens from the snapshot");
}

#[test]
fn an_open_cut_at_any_step_by_a_power_loss_is_recovered_by_the_next() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open_at(&fs, &clock);
    fill(&store, &clock);
    let before = contents(&store);
    // The segments' records since the last checkpoint are durable only in the commit journal:
    // a power loss keeps none of their unsynced bytes (a few, as a torn piece, in the second).
    let machines = [fs.crash(None), fs.crash(Some(100))];
    drop(store);

    let (mut cuts, mut replayed) = (0, 0);
    for machine in &machines {
        for plan in EVERY_CUT {
            for n in 1.. {
                let fs = machine.crash(None);
                fs.set_plan(plan(n));
                let config = LogConfig { compaction_dead_fraction: 0.1, ..config() };
                let opened =
                    LogStore::open_with_fs(Path::new(DIR), config, Arc::new(clock.clone()), Arc::new(fs.clone()));
                fs.set_plan(FaultPlan::default());
                let unsynced = fs.unsynced_name_changes();
                let crashed: Vec<_> = (0..=unsynced).map(|kept| fs.crash_keeping_name_changes(None, kept)).collect();
                let ran_through = opened.is_ok();
                match opened {
                    Ok(store) => {
                        replayed += usize::from(store.recovery_report().journal_entries_replayed > 0);
                        assert_eq!(contents(&store), before, "{:?}", plan(n));
                    }
                    Err(_) => cuts += 1,
                }
                for (kept, after) in crashed.iter().enumerate() {
                    let after = open_at(after, &clock);
                    let at = format!("{:?}, {kept} of {unsynced} name changes kept", plan(n));
                    assert_eq!(contents(&after), before, "{at}");
                    after.verify().unwrap_or_else(|e| panic!("{at}: {e}"));
                }
                if ran_through {
                    break;
                }
                assert!(n < 200, "the open never ran through");
            }
        }
    }
    assert!(cuts > 5 && replayed > 0, "{cuts} opens cut, {replayed} replayed the journal");
}
