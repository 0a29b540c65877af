//! Killing a master during a stream of appends acknowledged with `WAIT 1` loses none of them:
//! after its replica takes over, every acknowledged notification is present, and once the old
//! master rejoins (as a replica) appends are acknowledged again.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_cluster;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notifeed::engine::redis::{RedisConfig, RedisStore};
use notifeed::{FeedKey, FeedStore, ManualClock, NewNotification, Notification, StoreOptions};
use redis_cluster::{Cluster, wait_until};

#[test]
fn every_acknowledged_append_survives_a_master_failover() {
    let mut cluster = Cluster::start();
    let clock = ManualClock::at_epoch_2026();
    let config = RedisConfig {
        key_prefix: "failover".into(),
        min_replicas_acked: 1,
        replica_ack_timeout: Duration::from_millis(500),
        options: StoreOptions { feed_capacity: 1_000_000, ..StoreOptions::default() },
        ..RedisConfig::default()
    };
    let store = Arc::new(RedisStore::open(&cluster.urls(), config, Arc::new(clock)).unwrap());
    let feeds: Vec<FeedKey> = (0..12).map(|i| FeedKey::new(format!("user-{i}/app")).unwrap()).collect();
    let victim = cluster.master_of("failover:{user-0/app}:meta");
    let on_victim: Vec<bool> =
        feeds.iter().map(|f| cluster.master_of(&format!("failover:{{{}}}:meta", f.as_str())) == victim).collect();

    // One writer appends round-robin and records what was acknowledged, and when.
    let acked: Arc<Mutex<Vec<(FeedKey, Notification)>>> = Arc::default();
    let acked_on_victim_feeds = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, feeds, on_victim) = (store.clone(), feeds.clone(), on_victim.clone());
        let (acked, acked_on_victim_feeds, failed, stop) =
            (acked.clone(), acked_on_victim_feeds.clone(), failed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let which = i % feeds.len();
                let new = NewNotification::visual("app", &format!("n-{i}"), &format!("title {i}"));
                match store.append(&feeds[which], new) {
                    Ok(n) => {
                        acked.lock().unwrap().push((feeds[which].clone(), n));
                        if on_victim[which] {
                            acked_on_victim_feeds.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                i += 1;
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();

    wait_until(Duration::from_secs(60), "200 acknowledged appends", || acked_count() >= 200);
    let before_kill = acked_on_victim_feeds.load(Ordering::SeqCst);
    assert!(before_kill > 0, "some feeds live on the victim master");
    cluster.node(victim).kill();
    wait_until(Duration::from_secs(60), "a replica to take over the killed master's slots", || {
        let masters = cluster.master_ports();
        masters.len() == 3 && !masters.contains(&victim)
    });
    // The promoted replica has no replica of its own, so WAIT 1 cannot succeed on its slots until
    // the old master rejoins as its replica.
    cluster.node(victim).restart();
    cluster.wait_healthy();
    let after_rejoin = acked_on_victim_feeds.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(60), "appends to the failed-over feeds to be acknowledged again", || {
        acked_on_victim_feeds.load(Ordering::SeqCst) >= after_rejoin + 20
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let acked = acked.lock().unwrap();
    let mut missing = Vec::new();
    for (feed, n) in acked.iter() {
        match store.get(feed, n.id) {
            Ok(Some(found)) if &found == n => {}
            other => missing.push(format!("{feed}: {} -> {other:?}", n.app_notification_id())),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged appends lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "acknowledged {} appends ({} on the failed-over master's feeds), {} failed during the failover",
        acked.len(),
        acked_on_victim_feeds.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
}
