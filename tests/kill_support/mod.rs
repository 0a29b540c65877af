//! What the two kill -9 tests of backups share (`log_kill_backup`, `maintenance_kill`): the
//! store they load and copy, a small deterministic generator for where to kill, and how a
//! backup directory left by a kill is opened.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore, RecoveryMode};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

/// Segments of 256 KiB, so that a loaded store holds several per window.
pub fn config() -> LogConfig {
    LogConfig { max_segment_bytes: 256 * 1024, ..LogConfig::default() }
}

pub fn clock() -> ManualClock {
    ManualClock::at_epoch_2026()
}

pub fn feed(n: u64) -> FeedKey {
    FeedKey::new(format!("user{n}/app.example")).unwrap()
}

/// A notification of about 800 bytes expiring `hours` after the clock's start.
pub fn note(app: &str, hours: i64) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("payload of {app} ").repeat(40))
        .expiring_at(clock().now() + SignedDuration::from_hours(hours))
}

/// Loads the store in `dir` with `count` notifications `n0`, `n1`, ... over 7 feeds and 4
/// windows a day apart, and closes it.
pub fn load(dir: &Path, count: u64) {
    let store = LogStore::open(dir, config(), Arc::new(clock())).unwrap();
    for i in 0..count {
        store.append(&feed(i % 7), note(&format!("n{i}"), 24 * (i as i64 % 4 + 1))).unwrap();
    }
}

/// A small deterministic generator.
pub fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// Opens the backup in `dir`: `None` when it is refused for its `BACKUP_INCOMPLETE` marker
/// (checked to be refused by the salvaging open too); any other refusal fails the test.
pub fn open_copy(dir: &Path) -> Option<LogStore> {
    match LogStore::open(dir, config(), Arc::new(clock())) {
        Err(StoreError::Corruption { location, .. }) if location.ends_with("BACKUP_INCOMPLETE") => {
            let salvage = LogConfig { recovery_mode: RecoveryMode::Salvage, ..config() };
            assert!(LogStore::open(dir, salvage, Arc::new(clock())).is_err(), "{} opened by salvage", dir.display());
            None
        }
        Err(e) => panic!("{}: {e}", dir.display()),
        Ok(store) => Some(store),
    }
}

/// Starts this test binary again as a child running only the ignored test `test`, with the
/// environment `envs`, and the lines it prints, read on a thread (so that a child that stops
/// printing fails a `recv_timeout` instead of hanging the test; the lines end with its output).
pub fn spawn_child(test: &str, envs: &[(&str, String)]) -> (Child, Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    (child, lines)
}

/// Whether `dir` holds nothing but, at most, a lock file (a copy killed before its marker, or
/// a removal killed after it). Not opened: an open would make it a new, empty store.
pub fn holds_at_most_the_lock(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|e| e.unwrap().file_name() == "LOCK")
}
