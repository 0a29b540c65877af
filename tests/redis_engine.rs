//! Behaviour of `RedisStore` that the conformance suite does not reach: key layout on the
//! cluster, corruption detection, sweeps through the expiry buckets, key TTLs, durability checks.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_cluster;

use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::redis::{RedisConfig, RedisStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, StoreError};

/// The durability test changes a master's configuration for a moment; every other test holds
/// this lock for reading while it opens a store.
static SERVER_CONFIG: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn open_with(clock: &ManualClock, config: RedisConfig) -> RedisStore {
    let _config = SERVER_CONFIG.read().unwrap_or_else(|e| e.into_inner());
    let cluster = redis_cluster::shared();
    RedisStore::open(&cluster.urls(), config, Arc::new(clock.clone())).unwrap()
}

fn config() -> RedisConfig {
    RedisConfig { key_prefix: format!("t-{}", uuid::Uuid::new_v4().simple()), ..RedisConfig::default() }
}

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

#[test]
fn appended_notification_reads_back_and_survives_a_new_store() {
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = open_with(&clock, config.clone());
    let f = feed("alice/app.example");
    let a = store.append(&f, NewNotification::visual("app.example", "a-1", "one").with_group("g")).unwrap();
    let b = store.append(&f, NewNotification::visual("app.example", "a-2", "two")).unwrap();
    drop(store);
    let store = open_with(&clock, config);
    assert_eq!(store.get(&f, a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.get_by_app_id(&f, "a-2").unwrap(), Some(b.clone()));
    let page = store.list(&f, &ListQuery::default()).unwrap();
    assert_eq!(page.items, vec![b, a]);
    assert_eq!(store.count(&f).unwrap().total, 2);
}

#[test]
fn corrupted_value_is_reported_never_returned() {
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = open_with(&clock, config.clone());
    let f = feed("bob/app");
    let n = store.append(&f, NewNotification::visual("app", "x", "hello")).unwrap();
    // Flip one byte of the stored value behind the store's back.
    let notes = format!("{}:{{bob/app}}:notes", config.key_prefix);
    let field = n.id.0.simple().to_string();
    let cluster = redis_cluster::shared();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut value: Vec<u8> = redis::cmd("HGET").arg(&notes).arg(&field).query(&mut conn).unwrap();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    let _: () = redis::cmd("HSET").arg(&notes).arg(&field).arg(value).query(&mut conn).unwrap();
    assert!(matches!(store.get(&f, n.id), Err(StoreError::Corruption { .. })));
    assert!(matches!(store.list(&f, &ListQuery::default()), Err(StoreError::Corruption { .. })));
}

#[test]
fn sweep_reclaims_exactly_the_expired_across_every_master() {
    let clock = ManualClock::at_epoch_2026();
    let store = open_with(&clock, RedisConfig { expiry_buckets: 8, ..config() });
    let start = clock.now();
    let feeds: Vec<FeedKey> = (0..30).map(|i| feed(&format!("user-{i}/app"))).collect();
    for (i, f) in feeds.iter().enumerate() {
        let soon = start + SignedDuration::from_secs(60 + i as i64);
        store.append(f, NewNotification::visual("app", "short", "s").expiring_at(soon)).unwrap();
        store.append(f, NewNotification::visual("app", "long", "l")).unwrap();
    }
    assert_eq!(store.sweep_expired().unwrap().expired, 0);
    clock.set(start + SignedDuration::from_secs(60 + 14));
    let first = store.sweep_expired().unwrap();
    assert_eq!(first.expired, 15, "exactly the 15 notifications expiring at or before now");
    assert!(first.bytes_reclaimed > 0);
    assert_eq!(store.sweep_expired().unwrap().expired, 0, "nothing is swept twice");
    clock.advance_secs(3600);
    assert_eq!(store.sweep_expired().unwrap().expired, 15);
    for f in &feeds {
        assert_eq!(store.count(f).unwrap().total, 1);
        assert!(store.get_by_app_id(f, "short").unwrap().is_none());
    }
}

#[test]
fn feed_keys_carry_a_ttl_so_abandoned_feeds_vanish() {
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = open_with(&clock, config.clone());
    let f = feed("carol/app");
    let expiration = clock.now() + SignedDuration::from_hours(1);
    store.append(&f, NewNotification::visual("app", "x", "hello").expiring_at(expiration)).unwrap();
    let cluster = redis_cluster::shared();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let ttl: i64 =
        redis::cmd("PTTL").arg(format!("{}:{{carol/app}}:notes", config.key_prefix)).query(&mut conn).unwrap();
    let retention = config.options.expiry_log_retention.as_millis() as i64;
    let hour = 3_600_000;
    // Latest expiration (1 h) + retention + one minute, minus the milliseconds since the write.
    assert!(ttl > hour + retention && ttl <= hour + retention + 60_000, "ttl {ttl}");
}

#[test]
fn always_durability_is_refused_without_fsync_always_on_the_masters() {
    // The test cluster runs `appendfsync always`, so Always opens; flip one master to
    // `everysec` for a moment and Always is refused with a message naming the setting.
    let cluster = redis_cluster::shared();
    let _exclusive = SERVER_CONFIG.write().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::at_epoch_2026();
    assert!(RedisStore::open(&cluster.urls(), config(), Arc::new(clock.clone())).is_ok());
    let master = cluster.master_ports()[0];
    redis_cluster::cli(master, &["config", "set", "appendfsync", "everysec"]);
    let refused = RedisStore::open(&cluster.urls(), config(), Arc::new(clock.clone()));
    let buffered = RedisStore::open(
        &cluster.urls(),
        RedisConfig { durability: Durability::Buffered, ..config() },
        Arc::new(clock),
    );
    redis_cluster::cli(master, &["config", "set", "appendfsync", "always"]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("appendfsync always"), "{message}");
    assert!(buffered.is_ok());
}

#[test]
fn a_feed_only_read_for_changes_still_carries_a_ttl() {
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = open_with(&clock, config.clone());
    store.changes(&feed("dave/app"), None, 10).unwrap();
    let cluster = redis_cluster::shared();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{}:{{dave/app}}:meta", config.key_prefix)).query(&mut conn).unwrap();
    let retention = config.options.expiry_log_retention.as_millis() as i64;
    assert!(ttl > retention && ttl <= retention + 60_000, "ttl {ttl}");
}

#[test]
fn token_of_a_feed_whose_keys_expired_is_stale_and_sequences_keep_rising() {
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = open_with(&clock, config.clone());
    let f = feed("erin/app");
    store.append(&f, NewNotification::visual("app", "x", "hello")).unwrap();
    let token = store.changes(&f, None, 10).unwrap().next;
    // The feed is abandoned and its keys expire (Redis TTLs run on real time: drop them here).
    let cluster = redis_cluster::shared();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    for suffix in ["meta", "notes", "index", "positions", "changed", "apps", "expiring", "unread"] {
        let _: i64 =
            redis::cmd("DEL").arg(format!("{}:{{erin/app}}:{suffix}", config.key_prefix)).query(&mut conn).unwrap();
    }
    clock.advance(config.options.expiry_log_retention + SignedDuration::from_hours(24 * 31));
    store.append(&f, NewNotification::visual("app", "y", "again")).unwrap();
    assert!(matches!(store.changes(&f, Some(token), 10), Err(StoreError::StaleToken)));
    let fresh = store.changes(&f, None, 10).unwrap();
    assert!(fresh.next.sequence > token.sequence, "{} after {}", fresh.next.sequence, token.sequence);
    assert_eq!(fresh.items.len(), 1);
}

#[test]
fn concurrent_appends_of_one_app_id_leave_one_notification() {
    let clock = ManualClock::at_epoch_2026();
    let store = open_with(&clock, config());
    let f = feed("frank/app");
    let first = store.append(&f, NewNotification::visual("app", "same", "v0")).unwrap();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let (store, f) = (&store, &f);
            scope.spawn(move || {
                for i in 0..25 {
                    let n = store.append(f, NewNotification::visual("app", "same", &format!("w{writer}-{i}"))).unwrap();
                    assert_eq!(n.id, first.id, "a replacement keeps the id");
                }
            });
        }
    });
    assert_eq!(store.count(&f).unwrap().total, 1);
    let page = store.list(&f, &ListQuery::default()).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, first.id);
    assert_eq!(page.items[0].created, first.created);
    let changes = store.changes(&f, None, 1000).unwrap();
    assert_eq!(changes.items.len(), 1, "one live notification, no removals");
}

#[test]
fn a_feed_keeps_working_while_its_slot_migrates_to_another_master() {
    let _config = SERVER_CONFIG.read().unwrap_or_else(|e| e.into_inner());
    let cluster = redis_cluster::shared();
    let clock = ManualClock::at_epoch_2026();
    let config = config();
    let store = RedisStore::open(&cluster.urls(), config.clone(), Arc::new(clock.clone())).unwrap();
    let f = feed("grace/app");
    let before: Vec<_> =
        (0..5).map(|i| store.append(&f, NewNotification::visual("app", &format!("b{i}"), "t")).unwrap()).collect();

    let meta = format!("{}:{{grace/app}}:meta", config.key_prefix);
    let slot = redis_cluster::cli(cluster.nodes[0].port, &["cluster", "keyslot", &meta]).trim().to_owned();
    let source = cluster.master_of(&meta);
    let target = *cluster.master_ports().iter().find(|&&p| p != source).unwrap();
    let id_of = |port: u16| redis_cluster::cli(port, &["cluster", "myid"]).trim().to_owned();
    let (source_id, target_id) = (id_of(source), id_of(target));

    // 1. Open the migration. Until it is closed, Redis answers a script over the slot's keys
    // with TRYAGAIN (some keys on each side, or missing on the importing node) or ASK: calls
    // made now keep retrying and complete once the move is done.
    redis_cluster::cli(target, &["cluster", "setslot", &slot, "importing", &source_id]);
    redis_cluster::cli(source, &["cluster", "setslot", &slot, "migrating", &target_id]);
    let (during, read_back, moved) = std::thread::scope(|scope| {
        let during = scope.spawn(|| store.append(&f, NewNotification::visual("app", "during", "t")));
        // 2. Move every key of the slot.
        let keys = redis_cluster::cli(source, &["cluster", "getkeysinslot", &slot, "1000"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        assert!(keys.len() >= 5, "the feed's keys are in the slot: {keys:?}");
        let port = target.to_string();
        let mut migrate = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        migrate.extend(keys.iter().copied());
        let answer = redis_cluster::cli(source, &migrate);
        assert_eq!(answer.trim(), "OK", "MIGRATE answered {answer}");
        let read_back = scope.spawn(|| store.get(&f, before[0].id));
        // 3. Close it on every node: from now on the old master answers MOVED.
        for node in &cluster.nodes {
            redis_cluster::cli(node.port, &["cluster", "setslot", &slot, "node", &target_id]);
        }
        let moved = store.append(&f, NewNotification::visual("app", "moved", "t")).unwrap();
        (during.join().unwrap().unwrap(), read_back.join().unwrap().unwrap(), moved)
    });
    assert_eq!(cluster.master_of(&meta), target);

    assert_eq!(read_back.as_ref(), Some(&before[0]));
    // `during` retried while the slot moved, so it may land before or after `moved`.
    let page = store.list(&f, &ListQuery::default()).unwrap();
    let mut listed: Vec<_> = page.items.iter().map(|n| n.id).collect();
    let mut expected: Vec<_> = before.iter().chain([&during, &moved]).map(|n| n.id).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    for n in before.iter().chain([&during, &moved]) {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
}
