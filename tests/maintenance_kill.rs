//! Kill -9 during scheduled backups and their pruning (`notifeed::maintenance::backup_now`,
//! keeping 1): a child process backs a loaded store up into one folder, over and over, each
//! backup removing the one before it, and prints `DONE n` after each. The parent kills it
//! (SIGKILL) 20 times, at random moments: mid-copy, mid-removal of the older copy, or between.
//! Then every directory in the folder is either whole (opens, verifies, holds everything
//! loaded), refused by every open (its `BACKUP_INCOMPLETE` marker: a copy or a removal cut
//! short), or empty (killed after its directory was made, before its marker): never a store
//! with part of the data.
//! The next round's first backup then removes what the kill left.
//!
//! The child is this test binary itself, re-run with `--ignored` on `pruning_child`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore, RecoveryMode};
use notifeed::maintenance::{BackupSchedule, backup_now};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

const CHILD_DIR: &str = "NOTIFEED_PRUNING_CHILD_DIR";
const LOADED: u64 = 3_000;

fn config() -> LogConfig {
    LogConfig { max_segment_bytes: 256 * 1024, ..LogConfig::default() }
}

fn clock() -> ManualClock {
    ManualClock::at_epoch_2026()
}

fn feed(n: u64) -> FeedKey {
    FeedKey::new(format!("user{n}/app.example")).unwrap()
}

fn note(app: &str, hours: i64) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("payload of {app} ").repeat(40))
        .expiring_at(clock().now() + SignedDuration::from_hours(hours))
}

fn schedule(root: &Path) -> BackupSchedule {
    BackupSchedule { dir: root.join("backups"), every: Duration::from_secs(3600), keep: 1 }
}

/// The child: backs `db` up into `backups`, keeping 1, forever, each at a later instant.
#[test]
#[ignore = "run by a_kill_during_backups_or_their_pruning_never_leaves_a_partial_store as its child process"]
fn pruning_child() {
    let Ok(root) = std::env::var(CHILD_DIR) else { return };
    let root = PathBuf::from(root);
    let store = LogStore::open(&root.join("db"), config(), Arc::new(clock())).unwrap();
    let schedule = schedule(&root);
    for n in 0.. {
        // Every run's instants are later than the last run's (the wall clock, in ms).
        let done = backup_now(&store, &schedule, jiff::Timestamp::now()).unwrap();
        println!("DONE {n} removed {}", done.removed.len());
    }
}

/// A small deterministic generator.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn a_kill_during_backups_or_their_pruning_never_leaves_a_partial_store() {
    let root = tempfile::tempdir().unwrap();
    {
        // About 2 MB over 4 windows and several segments each.
        let store = LogStore::open(&root.path().join("db"), config(), Arc::new(clock())).unwrap();
        for i in 0..LOADED {
            store.append(&feed(i % 7), note(&format!("n{i}"), 24 * (i as i64 % 4 + 1))).unwrap();
        }
    }
    let exe = std::env::current_exe().unwrap();
    let mut random = 0x9e37_79b9_u64;
    let (mut whole, mut refused, mut empty, mut removals) = (0, 0, 0, 0);
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args(["pruning_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // After the k-th `DONE`, let the child run on for a random number of yields: it is
        // then copying, removing the older copy, or between the two.
        let k = 1 + next_random(&mut random) % 3;
        let spin = next_random(&mut random) % 20_000;
        let mut done = 0;
        while let Some(Ok(line)) = lines.next() {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                if word == "DONE" {
                    done += 1;
                    if words.nth(1) == Some("removed") && words.next().is_some_and(|r| r != "0") {
                        removals += 1;
                    }
                    break;
                }
            }
            if done == k {
                for _ in 0..spin {
                    std::thread::yield_now();
                }
                child.kill().unwrap();
                break;
            }
        }
        child.wait().unwrap();
        assert_eq!(done, k, "round {round}: the child ended by itself");

        for entry in std::fs::read_dir(root.path().join("backups")).unwrap() {
            let dir = entry.unwrap().path();
            // Killed after the directory was made and before its marker: nothing in it (an
            // open would make it a new, empty store, so it is not opened).
            let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            if files.iter().all(|f| f == "LOCK") {
                empty += 1;
                continue;
            }
            match LogStore::open(&dir, config(), Arc::new(clock())) {
                Err(StoreError::Corruption { location, .. }) if location.ends_with("BACKUP_INCOMPLETE") => {
                    let salvage = LogConfig { recovery_mode: RecoveryMode::Salvage, ..config() };
                    assert!(LogStore::open(&dir, salvage, Arc::new(clock())).is_err(), "round {round}: {dir:?}");
                    refused += 1;
                }
                Err(e) => panic!("round {round}: {}: {e}", dir.display()),
                Ok(copy) => {
                    let verified = copy.verify().unwrap();
                    assert_eq!(verified.notifications, LOADED, "round {round}: {} is partial", dir.display());
                    assert!(copy.get_by_app_id(&feed(3), "n3").unwrap().is_some());
                    whole += 1;
                }
            }
        }
    }
    eprintln!("{whole} whole, {refused} refused, {empty} empty; {removals} removals reported");
    assert!(whole > 0 && refused > 0 && removals > 0, "{whole} whole, {refused} refused, {removals} removals");
}
