//! Kill -9 during scheduled backups and their pruning (`notifeed::maintenance::backup_now`,
//! keeping 1): a child process backs a loaded store up into one folder, over and over, each
//! backup removing the one before it, and prints `DONE n <dir>` after each. The parent kills it
//! (SIGKILL) 20 times or more, aimed at the removal of the older copy: once the newer copy is
//! complete (no marker, a watermark), after a delay that sweeps from none to thousands of
//! yields, until some kill has cut a removal short. Then every directory in the folder is either
//! whole (opens, verifies, holds everything loaded), refused by every open (its
//! `BACKUP_INCOMPLETE` marker: a copy or a removal cut short), or holds at most its lock file
//! (a copy killed before its marker, or a removal killed after it): never a store with part of
//! the data. The next round's first backup removes what the kill left.
//!
//!
//! The same with refreshes (`BackupSchedule::refresh`, keeping 2): a child appends, then backs
//! up, over and over, each backup once two complete copies exist refreshing the older and
//! renaming it for its instant. Every directory a kill leaves is whole (holding at least what
//! the store held when the backup its name is for ran, and no more than the store ever held),
//! refused by every open (a refresh cut short), or at most its lock file; the newest copy a
//! `DONE` named is whole and holds exactly what the store held then.
//!
//! The children are this test binary itself, re-run with `--ignored` on `pruning_child` and
//! `scheduled_refresh_child`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kill_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kill_support::{clock, config, feed, holds_at_most_the_lock, load, next_random, note, open_copy, spawn_child};
use notifeed::FeedStore;
use notifeed::engine::log::LogStore;
use notifeed::maintenance::{BackupSchedule, backup_now};

const CHILD_DIR: &str = "NOTIFEED_PRUNING_CHILD_DIR";
const CHILD_ROUND: &str = "NOTIFEED_PRUNING_CHILD_ROUND";
const LOADED: u64 = 3_000;

fn schedule(root: &Path) -> BackupSchedule {
    BackupSchedule { dir: root.join("backups"), every: Duration::from_secs(3600), keep: 1, refresh: false }
}

/// The child: backs `db` up into `backups`, keeping 1, forever, each at a later instant.
#[test]
#[ignore = "run by a_kill_during_backups_or_their_pruning_never_leaves_a_partial_store as its child process"]
fn pruning_child() {
    let Ok(root) = std::env::var(CHILD_DIR) else { return };
    let root = PathBuf::from(root);
    let round: i64 = std::env::var(CHILD_ROUND).ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let store = LogStore::open(&root.join("db"), config(), Arc::new(clock())).unwrap();
    let schedule = schedule(&root);
    for n in 0.. {
        // Made-up instants, a second apart and later than every earlier round's.
        let at = jiff::Timestamp::from_second(1_800_000_000 + round * 1_000_000 + n).unwrap();
        let done = backup_now(&store, &schedule, at).unwrap();
        println!("DONE {n} {}", done.path.display());
    }
}

#[test]
fn a_kill_during_backups_or_their_pruning_never_leaves_a_partial_store() {
    let root = tempfile::tempdir().unwrap();
    // About 2 MB over 4 windows and several segments each.
    load(&root.path().join("db"), LOADED);
    let backups = root.path().join("backups");
    let mut random = 0x9e37_79b9_u64;
    let (mut whole, mut refused, mut lock_only, mut cut_removals) = (0, 0, 0, 0);
    // At least 20 rounds, and on until a kill has cut a removal short (at most 120): how long
    // a removal takes against the kill's delay depends on the machine and its load, so the
    // delay sweeps from none to a few thousand yields, round after round.
    let mut round = 0;
    while round < 20 || (cut_removals == 0 && round < 120) {
        round += 1;
        let envs = [(CHILD_DIR, root.path().display().to_string()), (CHILD_ROUND, round.to_string())];
        let (mut child, lines) = spawn_child("pruning_child", &envs);
        // The k-th completed backup's directory.
        let k = 1 + next_random(&mut random) % 3;
        let mut done = 0;
        let mut last = PathBuf::new();
        while done < k {
            let line = lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let mut words = line.split_whitespace().skip_while(|w| *w != "DONE").skip(2);
            if let Some(path) = words.next() {
                done += 1;
                last = PathBuf::from(path);
            }
        }
        // Wait until a newer copy is complete: the child is then removing `last` (or has).
        let complete = |dir: &Path| !dir.join("BACKUP_INCOMPLETE").exists() && dir.join("WATERMARK").exists();
        while child.try_wait().unwrap().is_none() {
            let newer = std::fs::read_dir(&backups)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .any(|p| p > last && complete(&p));
            if newer {
                break;
            }
            std::thread::yield_now();
        }
        const DELAYS: [u64; 8] = [0, 10, 30, 100, 300, 1_000, 3_000, 10_000];
        let delay = DELAYS[round % DELAYS.len()];
        for _ in 0..delay + next_random(&mut random) % (delay + 1) {
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let mut left: Vec<PathBuf> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        let newest = left.last().cloned();
        for dir in left {
            let older = Some(&dir) != newest.as_ref();
            if holds_at_most_the_lock(&dir) {
                lock_only += 1;
                cut_removals += usize::from(older);
                continue;
            }
            match open_copy(&dir) {
                None => {
                    refused += 1;
                    // An older copy with its marker back: a removal cut short (a copy is
                    // always the newest, and pruning empties the folder of older ones first).
                    cut_removals += usize::from(older);
                }
                Some(copy) => {
                    let verified = copy.verify().unwrap();
                    assert_eq!(verified.notifications, LOADED, "round {round}: {} is partial", dir.display());
                    assert!(copy.get_by_app_id(&feed(3), "n3").unwrap().is_some());
                    whole += 1;
                }
            }
        }
    }
    eprintln!(
        "{round} rounds: {whole} whole, {refused} refused, {lock_only} holding at most the lock; {cut_removals} removals cut"
    );
    assert!(whole > 0 && cut_removals > 0, "{whole} whole, {cut_removals} removals cut");
}

const REFRESH_DIR: &str = "NOTIFEED_SCHEDULED_REFRESH_CHILD_DIR";
const REFRESH_ROUND: &str = "NOTIFEED_SCHEDULED_REFRESH_CHILD_ROUND";
/// Appended before each scheduled backup of the refresh test.
const APPENDED_PER_BACKUP: u64 = 40;

/// The child: appends to `db`, then backs it up into `backups` keeping 2 with refreshes,
/// forever, printing `DONE n <dir> <notifications the store held>` after each.
#[test]
#[ignore = "run by a_kill_during_scheduled_refreshes_never_leaves_a_partial_store as its child process"]
fn scheduled_refresh_child() {
    let Ok(root) = std::env::var(REFRESH_DIR) else { return };
    let root = PathBuf::from(root);
    let round: i64 = std::env::var(REFRESH_ROUND).ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let store = LogStore::open(&root.join("db"), config(), Arc::new(clock())).unwrap();
    let schedule = BackupSchedule { keep: 2, refresh: true, ..schedule(&root) };
    for n in 0.. {
        for i in 0..APPENDED_PER_BACKUP {
            store.append(&feed(i % 7), note(&format!("r{round}-{n}-{i}"), 24)).unwrap();
        }
        let held = store.index_stats().notifications;
        let at = jiff::Timestamp::from_second(1_800_000_000 + round * 1_000_000 + n).unwrap();
        let done = backup_now(&store, &schedule, at).unwrap();
        println!("DONE {n} {} {held}", done.path.display());
    }
}

#[test]
fn a_kill_during_scheduled_refreshes_never_leaves_a_partial_store() {
    let root = tempfile::tempdir().unwrap();
    load(&root.path().join("db"), LOADED);
    let backups = root.path().join("backups");
    let mut random = 0x7f4a_7c15_u64;
    // What the store held when the backup each directory is named for ran.
    let mut held_by_name: HashMap<PathBuf, u64> = HashMap::new();
    let (mut whole, mut refused, mut lock_only, mut cut_refreshes) = (0, 0, 0, 0);
    let mut most_held = LOADED;
    let mut round = 0;
    // At least 12 rounds, and on until a kill has cut a refresh short (at most 80).
    while round < 12 || (cut_refreshes == 0 && round < 80) {
        round += 1;
        let envs = [(REFRESH_DIR, root.path().display().to_string()), (REFRESH_ROUND, round.to_string())];
        let (mut child, lines) = spawn_child("scheduled_refresh_child", &envs);
        // Past the k-th completed backup (from the third on, with two complete copies, each
        // is a refresh), then a delay that sweeps from none to thousands of yields.
        let k = 1 + next_random(&mut random) % 3;
        let mut last: Option<(PathBuf, u64)> = None;
        let mut read = |line: String| -> bool {
            let words: Vec<&str> = line.split_whitespace().skip_while(|w| *w != "DONE").collect();
            let [_, _, path, held] = words[..] else { return false };
            let held: u64 = held.parse().unwrap();
            held_by_name.insert(PathBuf::from(path), held);
            most_held = most_held.max(held);
            last = Some((PathBuf::from(path), held));
            true
        };
        let mut done = 0;
        while done < k {
            let line = lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("round {round}: {e}"));
            done += u64::from(read(line));
        }
        const DELAYS: [u64; 6] = [0, 30, 300, 3_000, 10_000, 30_000];
        let delay = DELAYS[round % DELAYS.len()];
        for _ in 0..delay + next_random(&mut random) % (delay + 1) {
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Every line the child printed (the reader ends at the pipe's end).
        for line in lines.iter() {
            read(line);
        }
        // The store may have taken appends after the last `DONE` (a backup may even have
        // completed unannounced): at most one more batch.
        let ceiling = most_held + APPENDED_PER_BACKUP;

        let (last_path, last_held) = last.unwrap();
        let mut left: Vec<PathBuf> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        assert!(left.contains(&last_path), "round {round}: the newest copy named by a DONE is gone");
        for dir in left {
            if holds_at_most_the_lock(&dir) {
                lock_only += 1;
                continue;
            }
            match open_copy(&dir) {
                None => {
                    assert_ne!(dir, last_path, "round {round}: the newest copy named by a DONE is refused");
                    refused += 1;
                    // An older complete copy with the marker: a refresh (never a fresh copy,
                    // with two complete copies kept) cut short.
                    cut_refreshes += usize::from(held_by_name.contains_key(&dir));
                }
                Some(copy) => {
                    let held = copy.verify().unwrap().notifications;
                    if dir == last_path {
                        assert_eq!(held, last_held, "round {round}: {}", dir.display());
                    }
                    // A refresh killed after it completed, before its rename, leaves newer
                    // contents under the older name; never older ones.
                    let named = held_by_name.get(&dir).copied().unwrap_or(LOADED);
                    assert!(
                        (named..=ceiling).contains(&held),
                        "round {round}: {} holds {held}, named for {named}, the store held at most {ceiling}",
                        dir.display()
                    );
                    assert!(copy.get_by_app_id(&feed(3), "n3").unwrap().is_some());
                    whole += 1;
                }
            }
        }
    }
    eprintln!(
        "{round} rounds: {whole} whole, {refused} refused, {lock_only} holding at most the lock; {cut_refreshes} refreshes cut"
    );
    assert!(whole > 0 && cut_refreshes > 0, "{whole} whole, {cut_refreshes} refreshes cut");
}
