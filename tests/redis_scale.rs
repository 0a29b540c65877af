//! 100,000 appends over 10,000 feeds spread over all three masters, and every one reads back.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_cluster;

use std::sync::Arc;
use std::time::Instant;

use notifeed::engine::redis::{RedisConfig, RedisStore};
use notifeed::{Durability, FeedKey, FeedStore, ManualClock, NewNotification};
use redis_cluster::Cluster;

const FEEDS: usize = 10_000;
const PER_FEED: usize = 10;
const WRITERS: usize = 4;

#[test]
fn hundred_thousand_appends_over_ten_thousand_feeds_spread_over_every_master() {
    let cluster = Cluster::start();
    // This test measures spread, not fsync: let the servers fsync once a second.
    for node in &cluster.nodes {
        redis_cluster::cli(node.port, &["config", "set", "appendfsync", "everysec"]);
    }
    let clock = ManualClock::at_epoch_2026();
    let config = RedisConfig { key_prefix: "scale".into(), durability: Durability::Buffered, ..RedisConfig::default() };
    let store = Arc::new(RedisStore::open(&cluster.urls(), config, Arc::new(clock)).unwrap());
    let feed = |i: usize| FeedKey::new(format!("user-{i}/app.example")).unwrap();

    let start = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let store = &store;
            scope.spawn(move || {
                for round in 0..PER_FEED {
                    for i in (writer..FEEDS).step_by(WRITERS) {
                        let new = NewNotification::visual("app.example", &format!("n-{round}"), "hello");
                        store.append(&feed(i), new).unwrap();
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed();
    eprintln!(
        "{} appends over {FEEDS} feeds with {WRITERS} writers in {elapsed:?} ({:.0} appends/s, debug build)",
        FEEDS * PER_FEED,
        (FEEDS * PER_FEED) as f64 / elapsed.as_secs_f64()
    );

    // Every feed holds its ten notifications.
    for i in 0..FEEDS {
        let counts = store.count(&feed(i)).unwrap();
        assert_eq!(counts.total, PER_FEED as u64, "feed {i}");
        assert_eq!(counts.unread, PER_FEED as u64, "feed {i}");
    }
    assert!(store.get_by_app_id(&feed(4_242), "n-7").unwrap().is_some());

    let memory: u64 = cluster
        .master_ports()
        .iter()
        .filter_map(|&p| {
            let info = redis_cluster::cli(p, &["info", "memory"]);
            info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum();
    eprintln!("used_memory over the masters: {memory} bytes ({} per notification)", memory / (FEEDS * PER_FEED) as u64);

    // Spread: the masters split the slots about evenly, so each holds about a third of the keys.
    let per_master = cluster.keys_per_master();
    let total: u64 = per_master.iter().map(|(_, n)| n).sum();
    eprintln!("keys per master: {per_master:?}");
    assert_eq!(per_master.len(), 3);
    for (port, keys) in per_master {
        let share = keys as f64 / total as f64;
        assert!((0.28..=0.39).contains(&share), "master {port} holds {share:.3} of the keys");
    }
}
