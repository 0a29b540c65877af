//! Concurrency: 8 threads append to overlapping feeds (group-committed, `Durability::Always`)
//! while 8 threads read. Afterwards, and after a reopen, every append is present exactly once,
//! and each writer's appends to a feed are in the order it made them (LSN order per feed).
//! Readers never see a page out of order or with duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::SignedDuration;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, StoreOptions};

const WRITERS: usize = 8;
const READERS: usize = 8;
const PER_WRITER: usize = 60;
const FEEDS: usize = 3;

fn feed(n: usize) -> FeedKey {
    FeedKey::new(format!("user{n}/app.example")).unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        options: StoreOptions { feed_capacity: notifeed::engine::log::MAX_FEED_CAPACITY, ..StoreOptions::default() },
        max_segment_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

fn check(store: &LogStore) {
    for f in 0..FEEDS {
        let page = store.list(&feed(f), &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
        let apps: Vec<String> = page.items.iter().map(|n| n.app_notification_id().to_owned()).collect();
        let unique: HashSet<&String> = apps.iter().collect();
        assert_eq!(unique.len(), apps.len(), "feed {f} has duplicates");
        // Newest first: per writer, indexes must be strictly decreasing.
        let mut last: HashMap<usize, usize> = HashMap::new();
        for app in &apps {
            let (w, i) = app.split_once('-').unwrap();
            let (w, i): (usize, usize) = (w[1..].parse().unwrap(), i.parse().unwrap());
            if let Some(prev) = last.insert(w, i) {
                assert!(i < prev, "feed {f}: writer {w} appended {i} after {prev}");
            }
        }
        let expected: usize = (0..WRITERS).map(|w| (0..PER_WRITER).filter(|i| (w + i) % FEEDS == f).count()).sum();
        assert_eq!(apps.len(), expected, "feed {f}");
    }
}

#[test]
fn concurrent_appends_are_all_present_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let expires = clock.now() + SignedDuration::from_hours(5);
    let store = Arc::new(LogStore::open(dir.path(), config(), Arc::new(clock.clone())).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut pages = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let f = feed((r + pages as usize) % FEEDS);
                    let page = store.list(&f, &ListQuery { limit: 50, ..ListQuery::default() }).unwrap();
                    let positions: Vec<_> = page.items.iter().map(|n| n.id).collect();
                    let unique: HashSet<_> = positions.iter().collect();
                    assert_eq!(unique.len(), positions.len());
                    for n in &page.items {
                        assert_eq!(store.get(&f, n.id).unwrap().map(|m| m.id), Some(n.id));
                    }
                    store.changes(&f, None, 100).unwrap();
                    pages += 1;
                }
                pages
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    let app = format!("w{w}-{i}");
                    let new = NewNotification::visual("app.example", &app, "t").expiring_at(expires);
                    store.append(&feed((w + i) % FEEDS), new).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    check(&store);
    drop(store);
    let store = LogStore::open(dir.path(), config(), Arc::new(clock)).unwrap();
    check(&store);
}
