//! Kill -9: a child process appends with `Durability::Always` from several threads and prints
//! each acknowledged notification; the parent kills it (SIGKILL) at a random moment, 50 times,
//! with small segments to force rotation. After each kill the store reopens and:
//! * every acknowledged notification is present, byte for byte;
//! * nothing unacknowledged appears half-written (every notification present is exactly what
//!   its writer would have written);
//! * the store accepts writes again.
//!
//! The child is this test binary itself, re-run with `--ignored` on `kill_child`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, Notification, StoreOptions};

const CHILD_DIR: &str = "NOTIFEED_KILL_CHILD_DIR";
const CHILD_ROUND: &str = "NOTIFEED_KILL_CHILD_ROUND";
const WRITERS: usize = 4;
const FEEDS: usize = 3;

fn config() -> LogConfig {
    LogConfig {
        options: StoreOptions { feed_capacity: notifeed::engine::log::MAX_FEED_CAPACITY, ..StoreOptions::default() },
        max_segment_bytes: 8 * 1024,
        ..LogConfig::default()
    }
}

fn clock() -> ManualClock {
    ManualClock::at_epoch_2026()
}

fn feed(n: usize) -> FeedKey {
    FeedKey::new(format!("user{n}/app.example")).unwrap()
}

/// What writer `t` appends as its `i`th notification of round `round`: fully determined by the
/// app id, so the parent can check any notification byte for byte.
fn generated(app: &str) -> NewNotification {
    let hours: i64 = app.bytes().map(i64::from).sum::<i64>() % 5 + 1;
    let mut new = NewNotification::raw("app.example", app, &format!("payload of {app} ").repeat(8))
        .expiring_at(clock().now() + SignedDuration::from_hours(24 * hours));
    if app.ends_with('0') {
        new = new.with_group("tens");
    }
    new
}

fn expected(app: &str) -> NewNotification {
    generated(app)
}

fn matches_generated(n: &Notification) -> bool {
    let want = expected(n.app_notification_id());
    n.payload() == want.payload
        && n.group_name() == want.group_name.as_deref()
        && Some(n.expiration) == want.expiration
        && n.target_host_name() == want.target_host_name
}

/// The child: appends forever from `WRITERS` threads, printing `ACK feed app id` after each
/// acknowledged append. Does nothing unless the parent set `NOTIFEED_KILL_CHILD_DIR`.
#[test]
#[ignore = "run by kill_nine_never_loses_an_acknowledged_append as its child process"]
fn kill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    let store = Arc::new(LogStore::open(Path::new(&dir), config(), Arc::new(clock())).unwrap());
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            let round = round.clone();
            std::thread::spawn(move || {
                for i in 0..1_000_000usize {
                    let f = (t + i) % FEEDS;
                    let app = format!("r{round}-t{t}-{i}");
                    let n = store.append(&feed(f), generated(&app)).unwrap();
                    println!("ACK {f} {app} {}", n.id);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A small deterministic generator (the seed is printed on failure through the round number).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn kill_nine_never_loses_an_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut random = 0x5eed_u64;
    let mut acked: HashMap<String, (usize, String)> = HashMap::new();
    for round in 0..50 {
        let kill_after = 1 + next_random(&mut random) % 40;
        let mut child = Command::new(&exe)
            .args(["kill_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        let mut killed = false;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                assert_eq!(parts.len(), 3, "round {round}: {line}");
                acked.insert(parts[1].to_owned(), (parts[0].parse().unwrap(), parts[2].to_owned()));
                seen += 1;
                if seen >= kill_after && !killed {
                    // SIGKILL while the writer threads are mid-append.
                    child.kill().unwrap();
                    killed = true;
                }
            }
        }
        child.wait().unwrap();
        assert!(killed, "round {round}: the child ended before {kill_after} acknowledgements");

        let store = LogStore::open(dir.path(), config(), Arc::new(clock())).unwrap();
        for (app, (f, id)) in &acked {
            let n = store.get_by_app_id(&feed(*f), app).unwrap();
            let n = n.unwrap_or_else(|| panic!("round {round}: acknowledged {app} is missing"));
            assert_eq!(&n.id.to_string(), id, "round {round}: {app}");
            assert!(matches_generated(&n), "round {round}: {app} differs from what was written");
        }
        let mut present = 0;
        for f in 0..FEEDS {
            let mut query = ListQuery { limit: 1000, ..ListQuery::default() };
            loop {
                let page = store.list(&feed(f), &query).unwrap();
                for n in &page.items {
                    assert!(matches_generated(n), "round {round}: {} is half-written", n.app_notification_id());
                    present += 1;
                }
                match page.next {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
        }
        assert!(present >= acked.len(), "round {round}");
        let probe = format!("probe-{round}");
        store.append(&feed(0), generated(&probe)).unwrap();
        acked.insert(
            probe,
            (0, store.get_by_app_id(&feed(0), &format!("probe-{round}")).unwrap().unwrap().id.to_string()),
        );
    }
}
