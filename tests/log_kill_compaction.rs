//! Kill -9 during compaction: a child process replaces, deletes and re-adds notifications of a
//! few app ids with `Durability::Always` (so most records die young), and sweeps after every few
//! operations with small segments and a low dead fraction, so compaction copies and unlinks
//! segments all the time. It prints each acknowledged operation; the parent kills it (SIGKILL) at
//! a random moment, 30 times. The operations are a fixed sequence, one at a time, so after each
//! kill the store must hold exactly the state after the last acknowledged operation, or after
//! the one that was in flight:
//! * no acknowledged replacement or delete is lost, no deleted or replaced version comes back,
//!   and no app id is live twice, whatever step of a sweep or compaction the kill interrupted
//!   (copy written, index moved, original unlinked or not);
//! * the store reopens by a scan (a killed store leaves no index snapshot) and accepts writes.
//!
//! A kill keeps the page cache, so this cannot see a missing fsync (the fault-injecting file
//! system's crash tests and `store_model` do); `log_compaction.rs` pins which records compaction
//! may drop.
//!
//! The child is this test binary itself, re-run with `--ignored` on `compaction_kill_child`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, StoreOptions};

const CHILD_DIR: &str = "NOTIFEED_COMPACTION_CHILD_DIR";
const CHILD_START: &str = "NOTIFEED_COMPACTION_CHILD_START";
const APPS: u64 = 24;

fn config() -> LogConfig {
    LogConfig {
        options: StoreOptions { feed_capacity: 1000, ..StoreOptions::default() },
        max_segment_bytes: 8 * 1024,
        compaction_dead_fraction: 0.3,
        ..LogConfig::default()
    }
}

fn clock() -> ManualClock {
    ManualClock::at_epoch_2026()
}

fn feed() -> FeedKey {
    FeedKey::new("user/app.example").unwrap()
}

/// Operation `i`: `Some((app, version))` writes that version of the app id (an append, or a
/// replacement while it exists); `None`-version deletes it.
fn op(i: u64) -> (String, Option<u64>) {
    let app = format!("k{}", (i * 7) % APPS);
    if i % 5 == 4 { (app, None) } else { (app, Some(i)) }
}

fn note(app: &str, version: u64) -> NewNotification {
    // Expirations spread over a few windows, so the sweep has several to compact.
    let hours = 2 + (version % 4) as i64;
    NewNotification::raw("app.example", app, &format!("{app} version {version} {}", "x".repeat(150)))
        .expiring_at(clock().now() + SignedDuration::from_hours(hours))
}

/// The state after operations `0..end`: app id to version.
fn model(end: u64) -> BTreeMap<String, u64> {
    let mut state = BTreeMap::new();
    for i in 0..end {
        match op(i) {
            (app, Some(version)) => {
                state.insert(app, version);
            }
            (app, None) => {
                state.remove(&app);
            }
        }
    }
    state
}

/// The child: runs operations from `NOTIFEED_COMPACTION_CHILD_START` on, printing `ACK i` after
/// each, and sweeps (expiring nothing, compacting) after every third.
#[test]
#[ignore = "run by kill_nine_during_compaction_keeps_exactly_the_acknowledged_state as its child"]
fn compaction_kill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let start: u64 = std::env::var(CHILD_START).unwrap().parse().unwrap();
    let store = LogStore::open(Path::new(&dir), config(), Arc::new(clock())).unwrap();
    for i in start..start + 1_000_000 {
        match op(i) {
            (app, Some(version)) => {
                store.append(&feed(), note(&app, version)).unwrap();
            }
            (app, None) => {
                store.delete_by_app_id(&feed(), &app).unwrap();
            }
        }
        println!("ACK {i}");
        if i % 3 == 0 {
            let stats = store.sweep_expired().unwrap();
            if stats.bytes_rewritten > 0 {
                println!("COMPACTED {}", stats.bytes_rewritten);
            }
        }
    }
}

fn state_of(store: &LogStore) -> BTreeMap<String, u64> {
    let page = store.list(&feed(), &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
    let mut state = BTreeMap::new();
    for n in page.items {
        let content = n.payload().raw_content.unwrap().to_owned();
        let version: u64 = content.split(' ').nth(2).unwrap().parse().unwrap();
        assert_eq!(note(n.app_notification_id(), version).payload, n.payload(), "a half-written notification");
        assert!(
            state.insert(n.app_notification_id().to_owned(), version).is_none(),
            "two live {}",
            n.app_notification_id()
        );
    }
    state
}

/// A small deterministic generator.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn kill_nine_during_compaction_keeps_exactly_the_acknowledged_state() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut random = 0xc0_ffee_u64;
    let mut next = 0u64;
    let mut compactions = 0;
    for round in 0..30 {
        let kill_after = 5 + next_random(&mut random) % 120;
        let mut child = Command::new(&exe)
            .args(["compaction_kill_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut last_acked = None;
        let mut seen = 0;
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("ACK ") {
                last_acked = Some(i.parse::<u64>().unwrap());
                seen += 1;
                if seen >= kill_after && !killed {
                    child.kill().unwrap();
                    killed = true;
                }
            } else if line.starts_with("COMPACTED ") {
                compactions += 1;
            }
        }
        child.wait().unwrap();
        assert!(killed, "round {round}: the child ended before {kill_after} acknowledgements");
        let acked_end = last_acked.map_or(next, |i| i + 1);

        let store = LogStore::open(dir.path(), config(), Arc::new(clock())).unwrap();
        assert_ne!(store.recovery_report().index_snapshot, IndexSnapshot::Loaded, "round {round}");
        let state = state_of(&store);
        next = if state == model(acked_end) {
            acked_end
        } else if state == model(acked_end + 1) {
            acked_end + 1
        } else {
            panic!(
                "round {round}: the state after the kill is neither that after operation {acked_end} nor the next:\n\
                 got      {state:?}\nexpected {:?}",
                model(acked_end)
            );
        };
        // The store accepts writes again (the probe is the next operation itself).
        match op(next) {
            (app, Some(version)) => {
                store.append(&feed(), note(&app, version)).unwrap();
            }
            (app, None) => {
                store.delete_by_app_id(&feed(), &app).unwrap();
            }
        }
        next += 1;
        assert_eq!(state_of(&store), model(next), "round {round}");
        // A clean close: the next child opens from the snapshot.
        drop(store);
    }
    assert!(compactions >= 10, "only {compactions} compactions ran: the test did not exercise them");
}
