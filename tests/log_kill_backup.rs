//! Kill -9 during `LogStore::backup`: a child process appends one notification, acknowledged,
//! then backs the store up into a directory of its own, over and over, printing `START n`
//! before each backup and `DONE n` after it returns. The parent kills it (SIGKILL) 20 times:
//! mostly mid-copy (once the copy holds its marker and a first segment), else right after a
//! `DONE`. Then every copy the child began:
//! * if its backup returned, opens, verifies, and holds the notification appended before it;
//! * if not, is refused by every open (its `BACKUP_INCOMPLETE` marker), or holds no segment
//!   yet, or is whole (the kill came between the return and the `DONE`): a copy cut short
//!   never opens as a store with part of the data.
//!
//! Kill -9 during `LogStore::refresh_backup`, the same way: the child appends, then refreshes
//! one copy, over and over; each round's kill lands mid-refresh (once the copy holds its
//! marker) or right after a `DONE`, and the next round refreshes the copy the kill left (after
//! the parent opened it as a store, when it opened). After each kill the copy is refused by
//! every open, or opens whole and holds the notification appended before the last refresh
//! that returned.
//!
//! The children are this test binary itself, re-run with `--ignored` on `backup_child` or
//! `refresh_child`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kill_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use kill_support::{clock, config, feed, load, next_random, note, open_copy};
use notifeed::FeedStore;
use notifeed::engine::log::LogStore;

const CHILD_DIR: &str = "NOTIFEED_BACKUP_CHILD_DIR";
const CHILD_ROUND: &str = "NOTIFEED_BACKUP_CHILD_ROUND";

fn copy_dir(root: &Path, round: &str, n: u64) -> PathBuf {
    root.join("copies").join(format!("{round}-{n}"))
}

/// The child: appends `before-<round>-<n>`, then backs up into `copies/<round>-<n>`, forever.
#[test]
#[ignore = "run by a_backup_killed_midway_never_opens_and_one_that_returned_is_whole as its child process"]
fn backup_child() {
    let Ok(root) = std::env::var(CHILD_DIR) else { return };
    let root = PathBuf::from(root);
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    let store = LogStore::open(&root.join("db"), config(), Arc::new(clock())).unwrap();
    for n in 0.. {
        store.append(&feed(0), note(&format!("before-{round}-{n}"), 48)).unwrap();
        println!("START {n}");
        store.backup(&copy_dir(&root, &round, n)).unwrap();
        println!("DONE {n}");
    }
}

/// Starts this test binary again as its child test `name`, for `round`, in `root`; its
/// output comes line by line.
fn spawn_child(name: &str, root: &Path, round: u64) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, root)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// A child's `START n` (true) or `DONE n` (false), read from the last two words of `line`
/// (the test harness may print its own text before the first).
fn progress(line: &str) -> Option<(bool, u64)> {
    let mut words = line.split_whitespace().rev();
    match (words.next().and_then(|n| n.parse::<u64>().ok()), words.next()) {
        (Some(n), Some("START")) => Some((true, n)),
        (Some(n), Some("DONE")) => Some((false, n)),
        _ => None,
    }
}

/// Whether the copy in `dir` holds its marker and a segment already, or is whole.
fn mid_copy_or_done(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    let segments = names.iter().filter(|n| n.ends_with(".seg")).count();
    (has("BACKUP_INCOMPLETE") && segments > 0) || (has("WATERMARK") && !has("BACKUP_INCOMPLETE"))
}

#[test]
fn a_backup_killed_midway_never_opens_and_one_that_returned_is_whole() {
    let root = tempfile::tempdir().unwrap();
    // About 3 MB over 4 windows and several segments each.
    load(&root.path().join("db"), 4_000);
    let mut random = 0xbac_u64;
    let (mut cut_short, mut whole) = (0, 0);
    for round in 0..20 {
        // Kill right after the k-th START (mid-copy) or the k-th DONE.
        let k = next_random(&mut random) % 3;
        let after_start = !next_random(&mut random).is_multiple_of(4);
        let (mut child, mut lines) = spawn_child("backup_child", root.path(), round);
        let mut returned: BTreeMap<u64, bool> = BTreeMap::new();
        let mut killed = false;
        while let Some(Ok(line)) = lines.next() {
            let Some((started, n)) = progress(&line) else { continue };
            returned.insert(n, !started);
            if !killed && n == k && started == after_start {
                if started {
                    // Mid-copy: once the marker and a first segment are in the copy (or, should
                    // the copy finish first, once it is whole).
                    let dir = copy_dir(root.path(), &round.to_string(), n);
                    while !mid_copy_or_done(&dir) && child.try_wait().unwrap().is_none() {
                        std::thread::yield_now();
                    }
                }
                child.kill().unwrap();
                killed = true;
            }
        }
        child.wait().unwrap();
        assert!(killed, "round {round}: the child ended by itself");

        for (&n, &done) in &returned {
            let dir = copy_dir(root.path(), &round.to_string(), n);
            let opened = open_copy(&dir);
            if done {
                let Some(copy) = opened else { panic!("round {round}: copy {n} returned but is refused") };
                let held = copy.verify().unwrap().notifications;
                assert!(held > 4_000 + n, "round {round}: copy {n} holds {held}");
                let before = format!("before-{round}-{n}");
                assert!(copy.get_by_app_id(&feed(0), &before).unwrap().is_some(), "round {round}: {before}");
                whole += 1;
                continue;
            }
            match opened {
                None => cut_short += 1,
                Some(copy) => {
                    // Killed before the marker was made (nothing copied yet), or after the
                    // backup returned and before `DONE` was printed (all of it copied). A
                    // copy missing a segment would hold less than the 4,000 loaded.
                    let verified = copy.verify().unwrap();
                    let before = format!("before-{round}-{n}");
                    let whole_copy =
                        verified.notifications > 4_000 + n && copy.get_by_app_id(&feed(0), &before).unwrap().is_some();
                    assert!(verified.records == 0 || whole_copy, "round {round}: copy {n} opened: {verified:?}");
                }
            }
        }
    }
    eprintln!("{cut_short} copies cut short, {whole} whole");
    assert!(cut_short > 0 && whole > 0, "{cut_short} copies cut short, {whole} whole");
}

const REFRESHED: &str = "refreshed";

/// The child of the refresh test: appends `refresh-<round>-<n>`, then refreshes
/// `copies/refreshed`, forever.
#[test]
#[ignore = "run by a_refresh_killed_midway_never_opens_and_one_that_returned_holds_what_came_before_it as its child"]
fn refresh_child() {
    let Ok(root) = std::env::var(CHILD_DIR) else { return };
    let root = PathBuf::from(root);
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    let store = LogStore::open(&root.join("db"), config(), Arc::new(clock())).unwrap();
    for n in 0.. {
        store.append(&feed(0), note(&format!("refresh-{round}-{n}"), 48)).unwrap();
        println!("START {n}");
        store.refresh_backup(&root.join("copies").join(REFRESHED)).unwrap();
        println!("DONE {n}");
    }
}

#[test]
fn a_refresh_killed_midway_never_opens_and_one_that_returned_holds_what_came_before_it() {
    let root = tempfile::tempdir().unwrap();
    load(&root.path().join("db"), 4_000);
    let copy = root.path().join("copies").join(REFRESHED);
    let marker = copy.join("BACKUP_INCOMPLETE");
    let mut random = 0x2ef_u64;
    let (mut cut_short, mut whole) = (0, 0);
    // Whether the copy opened after the last round: only then does the marker, once it
    // appears, say that this round's refresh is under way.
    let mut was_whole = true;
    for round in 0..12 {
        let k = next_random(&mut random) % 3;
        let after_start = !next_random(&mut random).is_multiple_of(4);
        let (mut child, mut lines) = spawn_child("refresh_child", root.path(), round);
        let mut last_done = None;
        let mut killed = false;
        while let Some(Ok(line)) = lines.next() {
            let Some((started, n)) = progress(&line) else { continue };
            if !started {
                last_done = Some(n);
            }
            if !killed && n == k && started == after_start {
                if started {
                    // Mid-refresh: once the marker is in the copy (a refresh that runs through
                    // first is killed after it, or in the next).
                    let spin = std::time::Instant::now();
                    while !marker.exists() && spin.elapsed() < std::time::Duration::from_secs(2) {
                        std::thread::yield_now();
                    }
                }
                child.kill().unwrap();
                killed = true;
            }
        }
        child.wait().unwrap();
        assert!(killed, "round {round}: the child ended by itself");
        match open_copy(&copy) {
            None => {
                cut_short += usize::from(was_whole);
                was_whole = false;
            }
            Some(opened) => {
                was_whole = true;
                let held = opened.verify().unwrap().notifications;
                assert!(held >= 4_000, "round {round}: the copy holds {held}");
                if let Some(n) = last_done {
                    let before = format!("refresh-{round}-{n}");
                    assert!(opened.get_by_app_id(&feed(0), &before).unwrap().is_some(), "round {round}: {before}");
                }
                whole += 1;
            }
        }
    }
    // `cut_short` counts only kills after a refresh over a whole copy had begun.
    eprintln!("{cut_short} refreshes cut short, {whole} copies whole");
    assert!(cut_short > 0 && whole > 0, "{cut_short} refreshes cut short, {whole} copies whole");
}
