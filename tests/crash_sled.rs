//! A killed process loses no acknowledged write of a [`SledStore`] with `Durability::Always`.
//!
//! The test runs itself as a child process (selected by an environment variable) that appends
//! without end and prints each acknowledged id; the parent kills it (SIGKILL) after a number of
//! acknowledgements, at whatever point of a write it is in, then reopens the directory and
//! expects every acknowledged notification. No timing is involved: the kill follows an
//! acknowledgement read from the pipe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::{FeedKey, FeedStore, ManualClock, NewNotification, NotificationId};

const CHILD_DIR: &str = "NOTIFEED_SLED_CRASH_CHILD_DIR";
const TEST_NAME: &str = "acknowledged_appends_survive_a_kill";

fn open(dir: &std::path::Path) -> SledStore {
    SledStore::open(dir, SledConfig::default(), Arc::new(ManualClock::at_epoch_2026())).unwrap()
}

fn feed() -> FeedKey {
    FeedKey::new("user/crash.example").unwrap()
}

/// The child: append until killed, acknowledging each append on stdout.
fn child(dir: &str) -> ! {
    let store = open(std::path::Path::new(dir));
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let n = store.append(&feed(), NewNotification::visual("crash.example", &format!("n{i}"), "t")).unwrap();
        writeln!(out, "ack {}", n.id).unwrap();
        out.flush().unwrap();
    }
    unreachable!("the parent kills the child")
}

#[test]
fn acknowledged_appends_survive_a_kill() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<NotificationId> = Vec::new();
    for kill_after in [5, 40, 17] {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(id) = line.strip_prefix("ack ") else { continue };
            acknowledged.push(id.parse().unwrap());
            seen += 1;
            if seen == kill_after {
                process.kill().unwrap();
                break;
            }
        }
        process.wait().unwrap();
        assert_eq!(seen, kill_after, "the child died before acknowledging enough appends");
        let store = open(dir.path());
        for id in &acknowledged {
            assert!(store.get(&feed(), *id).unwrap().is_some(), "acknowledged {id} was lost by the kill");
        }
    }
}
