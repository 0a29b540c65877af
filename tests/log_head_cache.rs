//! The log engine's head cache (`LogConfig::head_cache_bytes`): a feed's newest page read
//! again comes from memory, yet every read returns what a store without the cache returns,
//! whatever changed in between; the cache keeps within its budget; a poisoned store does not
//! read it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{
    Clock, Cursor, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, NotificationId, Page, ReadState,
    StateUpdate, StoreError, StoreOptions,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn note(app: &str, group: Option<&str>, expires: Timestamp) -> NewNotification {
    let n = NewNotification::visual("app.example", app, &format!("title of {app}")).expiring_at(expires);
    match group {
        Some(g) => n.with_group(g),
        None => n,
    }
}

fn top() -> ListQuery {
    ListQuery::default()
}

fn open_in(dir: &Path, clock: &ManualClock, config: LogConfig) -> LogStore {
    LogStore::open(dir, config, Arc::new(clock.clone())).unwrap()
}

/// A store with the default configuration in `dir`, holding 30 notifications (app ids `a0`
/// to `a29`, expiring in 2 hours) in one feed; returns it, the feed and the expiration.
fn thirty_in_one_feed(dir: &Path, clock: &ManualClock) -> (LogStore, FeedKey, Timestamp) {
    let store = open_in(dir, clock, LogConfig::default());
    let f = feed("u/app");
    let expires = clock.now() + SignedDuration::from_hours(2);
    for i in 0..30 {
        store.append(&f, note(&format!("a{i}"), None, expires)).unwrap();
    }
    (store, f, expires)
}

#[test]
fn a_page_read_again_comes_from_the_head_cache() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let (store, f, expires) = thirty_in_one_feed(dir.path(), &clock);
    // The first read of the newest page only marks the feed; the second makes its head.
    let first = store.list(&f, &top()).unwrap();
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses, stats.head_cache_bytes), (0, 20, 0));
    assert_eq!(store.list(&f, &top()).unwrap().items, first.items);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (0, 40));
    assert!(stats.head_cache_bytes > 0);

    let again = store.list(&f, &top()).unwrap();
    assert_eq!(again.items, first.items);
    assert_eq!(again.next, first.next);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (20, 40));

    // One append shifts the page by one: only the new notification is read from the files.
    store.append(&f, note("newest", None, expires)).unwrap();
    let shifted = store.list(&f, &top()).unwrap();
    assert_eq!(shifted.items[0].app_notification_id(), "newest");
    assert_eq!(shifted.items[1..], first.items[..19]);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (39, 41));

    // A later page, or a filtered one, takes what it can from the head and replaces nothing.
    let second = store.list(&f, &ListQuery { cursor: shifted.next, ..top() }).unwrap();
    assert_eq!(second.items.len(), 11);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (39, 52), "no record of the second page in the head");
    let unread = store.list(&f, &ListQuery { read_state: Some(ReadState::Unread), ..top() }).unwrap();
    assert_eq!(unread.items, shifted.items);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (59, 52));
    let third = store.list(&f, &top()).unwrap();
    assert_eq!(third.items, shifted.items);
    assert_eq!(store.stats().head_cache_hits, 79);
}

#[test]
fn a_store_without_the_head_cache_reads_every_record_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let store = open_in(dir.path(), &clock, LogConfig { head_cache_bytes: 0, ..LogConfig::default() });
    let f = feed("u/app");
    for i in 0..5 {
        store.append(&f, note(&format!("a{i}"), None, clock.now() + SignedDuration::from_hours(2))).unwrap();
    }
    let first = store.list(&f, &top()).unwrap();
    assert_eq!(store.list(&f, &top()).unwrap().items, first.items);
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses, stats.head_cache_bytes), (0, 0, 0));
}

/// Every page a query can ask for, on every feed, then each notification by id and by app id
/// (each as a page of at most one): what a reader of `store` can see.
fn every_page(store: &LogStore, feeds: &[FeedKey]) -> Vec<Result<Page, String>> {
    let mut pages = Vec::new();
    let one = |n: Result<Option<notifeed::Notification>, StoreError>| {
        n.map(|n| Page { items: n.into_iter().collect(), next: None }).map_err(|e| e.to_string())
    };
    for f in feeds {
        for n in store.list(f, &ListQuery { limit: 1000, ..top() }).unwrap().items {
            pages.push(one(store.get(f, n.id)));
        }
        for app in 0..40 {
            pages.push(one(store.get_by_app_id(f, &format!("a{app}"))));
        }
        let queries = [
            ListQuery { limit: 7, ..top() },
            top(),
            ListQuery { group: Some("g0".into()), ..top() },
            ListQuery { read_state: Some(ReadState::Read), ..top() },
        ];
        for query in queries {
            let mut cursor: Option<Cursor> = None;
            loop {
                let page = store.list(f, &ListQuery { cursor, ..query.clone() }).map_err(|e| e.to_string());
                cursor = page.as_ref().ok().and_then(|p| p.next);
                pages.push(page);
                if cursor.is_none() {
                    break;
                }
            }
        }
    }
    pages
}

/// Runs one random operation on both stores; panics if they answer differently.
fn same_operation(stores: [&LogStore; 2], clock: &ManualClock, feeds: &[FeedKey], rng: &mut ChaCha8Rng) {
    let f = &feeds[rng.random_range(0..feeds.len())];
    let app = format!("a{}", rng.random_range(0..40));
    let ids = |s: &LogStore| -> Vec<NotificationId> {
        s.list(f, &ListQuery { limit: 1000, ..top() }).unwrap().items.iter().map(|n| n.id).collect()
    };
    match rng.random_range(0..10) {
        // Appends (a repeated app id replaces), with expirations spread over several windows.
        0..=4 => {
            let expires = clock.now() + SignedDuration::from_mins(rng.random_range(1..240));
            let group = rng.random_bool(0.3).then_some(if rng.random_bool(0.5) { "g0" } else { "g1" });
            let new = note(&app, group, expires);
            let [a, b] = stores.map(|s| s.append(f, new.clone()).map(|n| n.app_notification_id().to_owned()));
            assert_eq!(a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string()));
        }
        5 => {
            // Ids differ between the stores: pick by rank in the feed, the same in both.
            let rank = rng.random_range(0..=20);
            let update = StateUpdate { read_state: Some(ReadState::Read), user_action_state: None };
            for s in stores {
                if let Some(id) = ids(s).get(rank) {
                    s.update_state(f, *id, update).unwrap();
                }
            }
        }
        6 => {
            let rank = rng.random_range(0..=20);
            for s in stores {
                if let Some(id) = ids(s).get(rank) {
                    assert!(s.delete(f, *id).unwrap());
                }
            }
        }
        7 => {
            let [a, b] = stores.map(|s| s.delete_group(f, "g1").unwrap());
            assert_eq!(a, b);
        }
        8 => {
            clock.set(clock.now() + SignedDuration::from_mins(rng.random_range(1..40)));
            for s in stores {
                s.sweep_expired().unwrap();
            }
        }
        _ => {
            let [a, b] = stores.map(|s| s.delete_by_app_id(f, &app).unwrap());
            assert_eq!(a, b);
        }
    }
}

/// Strips what differs between two stores given the same operations (ids, and the instants
/// kept as they were), keeping what a cache could get wrong: which notifications, in which
/// order, with which content and states.
fn comparable(pages: Vec<Result<Page, String>>) -> Vec<Result<Vec<String>, String>> {
    pages
        .into_iter()
        .map(|p| {
            p.map(|p| {
                p.items
                    .iter()
                    .map(|n| {
                        format!(
                            "{} {:?} {:?} {:?} {} {:?}",
                            n.app_notification_id(),
                            n.group_name(),
                            n.read_state,
                            n.user_action_state,
                            n.expiration,
                            n.payload()
                        )
                    })
                    .collect()
            })
        })
        .collect()
}

#[test]
fn every_page_with_the_head_cache_equals_the_page_without_it_whatever_changed() {
    for seed in 0..4 {
        let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let clock = ManualClock::at_epoch_2026();
        // Small feeds (appends evict), short windows and segments (sweeps unlink, compaction
        // copies), a budget that holds a few heads (eviction runs).
        let base = LogConfig {
            options: StoreOptions { feed_capacity: 25, ..StoreOptions::default() },
            window: SignedDuration::from_mins(10),
            max_segment_bytes: 4096,
            compaction_dead_fraction: 0.1,
            ..LogConfig::default()
        };
        let cached = open_in(with.path(), &clock, LogConfig { head_cache_bytes: 24 << 10, ..base.clone() });
        let plain = open_in(without.path(), &clock, LogConfig { head_cache_bytes: 0, ..base });
        let feeds: Vec<FeedKey> = (0..6).map(|i| feed(&format!("u{i}/app"))).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for step in 0..400 {
            same_operation([&cached, &plain], &clock, &feeds, &mut rng);
            if step % 3 == 0 {
                let (a, b) = (every_page(&cached, &feeds), every_page(&plain, &feeds));
                assert_eq!(comparable(a), comparable(b), "seed {seed}, step {step}");
                assert!(cached.stats().head_cache_bytes <= 24 << 10);
            }
        }
        let stats = cached.stats();
        assert!(stats.head_cache_hits > 1000, "the cache served pages: {stats:?}");
        assert!(stats.segments_removed > 0, "sweeps or compaction removed segments: {stats:?}");
    }
}

#[test]
fn the_head_cache_keeps_within_its_budget_and_keeps_heads_read_often() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let budget = 64 << 10;
    let store = open_in(dir.path(), &clock, LogConfig { head_cache_bytes: budget, ..LogConfig::default() });
    let expires = clock.now() + SignedDuration::from_hours(2);
    let feeds: Vec<FeedKey> = (0..200).map(|i| feed(&format!("u{i}/app"))).collect();
    for f in &feeds {
        for i in 0..20 {
            store.append(f, note(&format!("a{i}"), None, expires)).unwrap();
        }
    }
    let hot = &feeds[0];
    store.list(hot, &top()).unwrap();
    store.list(hot, &top()).unwrap();
    for f in &feeds[1..] {
        // Twice: a feed gets its head at the second read.
        store.list(f, &top()).unwrap();
        store.list(f, &top()).unwrap();
        assert!(store.stats().head_cache_bytes <= budget as u64);
        // Read between every other feed's first read, the hot feed's head is never the one
        // evicted.
        let before = store.stats();
        store.list(hot, &top()).unwrap();
        let after = store.stats();
        assert_eq!(after.head_cache_hits - before.head_cache_hits, 20, "after {f}");
    }
    // Most feeds' heads were evicted: reading them all again misses most.
    let before = store.stats();
    for f in &feeds {
        store.list(f, &top()).unwrap();
    }
    let after = store.stats();
    assert!(after.head_cache_misses - before.head_cache_misses > 20 * 150, "{before:?} {after:?}");
}

#[test]
fn a_poisoned_store_reads_the_files_not_the_head_cache() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store =
        LogStore::open_with_fs(Path::new("/data"), LogConfig::default(), Arc::new(clock.clone()), Arc::new(fs.clone()))
            .unwrap();
    let f = feed("u/app");
    let expires = clock.now() + SignedDuration::from_hours(2);
    for i in 0..5 {
        store.append(&f, note(&format!("a{i}"), None, expires)).unwrap();
    }
    let page = store.list(&f, &top()).unwrap();
    store.list(&f, &top()).unwrap();
    store.list(&f, &top()).unwrap();
    assert_eq!(store.stats().head_cache_hits, 5);

    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    assert!(matches!(store.append(&f, note("failed", None, expires)), Err(StoreError::Io { .. })));
    assert!(store.is_poisoned());
    // The acknowledged records were synced, so the files still hold them; the page is read
    // from there.
    assert_eq!(store.list(&f, &top()).unwrap().items, page.items);
    assert_eq!(store.get(&f, page.items[0].id).unwrap().as_ref(), Some(&page.items[0]));
    assert_eq!(store.get_by_app_id(&f, "a1").unwrap().map(|n| n.id), Some(page.items[3].id));
    let stats = store.stats();
    assert_eq!((stats.head_cache_hits, stats.head_cache_misses), (5, 10), "nothing taken from the cache");
}

#[test]
fn get_and_lookups_by_app_id_take_a_notification_from_its_feed_head_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let (store, f, expires) = thirty_in_one_feed(dir.path(), &clock);
    // Neither `get` nor a lookup makes a head: with none, both read the files.
    let newest = store.get_by_app_id(&f, "a29").unwrap().unwrap();
    assert_eq!(store.get(&f, newest.id).unwrap().as_ref(), Some(&newest));
    assert_eq!((store.stats().head_cache_hits, store.stats().head_cache_misses), (0, 2));
    store.list(&f, &top()).unwrap();
    let page = store.list(&f, &top()).unwrap(); // the second read makes the head: a29..a10
    let counts = |s: &LogStore| (s.stats().head_cache_hits, s.stats().head_cache_misses);
    assert_eq!(counts(&store), (0, 42));

    // In the head: taken from it, equal to what the files hold.
    assert_eq!(store.get(&f, page.items[5].id).unwrap().as_ref(), Some(&page.items[5]));
    assert_eq!(store.get_by_app_id(&f, "a10").unwrap().as_ref(), page.items.last());
    assert_eq!(counts(&store), (2, 42));
    // Older than the head: read from the files.
    let old = store.get_by_app_id(&f, "a3").unwrap().unwrap();
    assert_eq!(store.get(&f, old.id).unwrap().as_ref(), Some(&old));
    assert_eq!(counts(&store), (2, 44));

    // A changed notification has a new record, so its cached copy is never matched again.
    let update = StateUpdate { read_state: Some(ReadState::Read), user_action_state: None };
    store.update_state(&f, page.items[5].id, update).unwrap();
    let changed = store.get(&f, page.items[5].id).unwrap().unwrap();
    assert_eq!(changed.read_state, ReadState::Read);
    assert_eq!(counts(&store), (2, 45));
    let replaced = store.append(&f, note("a10", Some("g"), expires)).unwrap();
    assert_eq!(replaced.id, page.items[19].id, "a repeated app id replaces");
    let found = store.get_by_app_id(&f, "a10").unwrap().unwrap();
    assert_eq!((found.group_name(), found.id), (Some("g"), replaced.id));
    assert!(store.delete(&f, page.items[0].id).unwrap());
    assert_eq!(store.get(&f, page.items[0].id).unwrap(), None);

    // Without the cache, nothing is counted.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = open_in(plain_dir.path(), &clock, LogConfig { head_cache_bytes: 0, ..LogConfig::default() });
    let n = plain.append(&f, note("a0", None, expires)).unwrap();
    plain.list(&f, &top()).unwrap();
    plain.list(&f, &top()).unwrap();
    assert_eq!(plain.get(&f, n.id).unwrap().as_ref(), Some(&n));
    assert_eq!(counts(&plain), (0, 0));
}

#[test]
fn a_head_replaced_after_an_append_is_kept_in_a_budget_of_one_head_and_a_half() {
    let clock = ManualClock::at_epoch_2026();
    let expires = clock.now() + SignedDuration::from_hours(2);
    let f = feed("u/app");
    let fill = |store: &LogStore| {
        for i in 10..40 {
            store.append(&f, note(&format!("a{i}"), None, expires)).unwrap();
        }
    };
    // The bytes one head of 20 of these notifications takes.
    let dir = tempfile::tempdir().unwrap();
    let measuring = open_in(dir.path(), &clock, LogConfig::default());
    fill(&measuring);
    measuring.list(&f, &top()).unwrap();
    measuring.list(&f, &top()).unwrap();
    let one_head = measuring.stats().head_cache_bytes as usize;

    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), &clock, LogConfig { head_cache_bytes: one_head * 3 / 2, ..LogConfig::default() });
    fill(&store);
    store.list(&f, &top()).unwrap();
    store.list(&f, &top()).unwrap();
    store.append(&f, note("a40", None, expires)).unwrap();
    // This page replaces the head it read (19 hits, 1 miss); the old head must not count
    // against the budget when the new one is placed, or the new one is evicted at once.
    store.list(&f, &top()).unwrap();
    let before = store.stats();
    store.list(&f, &top()).unwrap();
    let after = store.stats();
    assert_eq!(after.head_cache_hits - before.head_cache_hits, 20, "{before:?} {after:?}");
    assert!(after.head_cache_bytes as usize <= one_head * 3 / 2);
}
