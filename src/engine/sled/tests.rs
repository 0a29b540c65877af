//! Behaviour of [`SledStore`] that needs its insides (raw trees) or drives development before
//! the shared conformance suite; the suite in `tests/` pins the full contract.

use std::sync::Arc;

use jiff::SignedDuration;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::store::{Change, Cursor};

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    options: StoreOptions,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::at_epoch_2026(),
            options: StoreOptions::default(),
        }
    }

    fn open(&self) -> SledStore {
        let config = SledConfig { options: self.options.clone(), ..SledConfig::default() };
        SledStore::open(self.dir.path(), config, Arc::new(self.clock.clone())).unwrap()
    }

    fn in_secs(&self, seconds: i64) -> Timestamp {
        self.clock.now() + SignedDuration::from_secs(seconds)
    }
}

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn visual(app_id: &str) -> NewNotification {
    NewNotification::visual("app.example", app_id, "Title")
}

fn all_items(store: &SledStore, key: &FeedKey) -> Vec<Notification> {
    store.list(key, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap().items
}

fn app_ids(items: &[Notification]) -> Vec<&str> {
    items.iter().map(|n| n.app_notification_id()).collect()
}

#[test]
fn appended_notification_is_found_by_id_and_app_id() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let n = store.append(&f, visual("a")).unwrap();
    assert_eq!(store.get(&f, n.id).unwrap(), Some(n.clone()));
    assert_eq!(store.get_by_app_id(&f, "a").unwrap(), Some(n.clone()));
    assert_eq!(store.get(&feed("other"), n.id).unwrap(), None);
    assert_eq!(store.count(&f).unwrap(), Counts { total: 1, unread: 1 });
}

#[test]
fn replaced_notification_keeps_its_id_and_created_and_moves_to_top() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let first = store.append(&f, visual("a")).unwrap();
    store.append(&f, visual("b")).unwrap();
    store
        .update_state(&f, first.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
        .unwrap();
    fx.clock.advance_secs(5);
    let replaced = store.append(&f, NewNotification::visual("app.example", "a", "New title")).unwrap();
    assert_eq!(replaced.id, first.id);
    assert_eq!(replaced.created, first.created);
    assert_eq!(replaced.last_modified, fx.clock.now());
    assert_eq!(replaced.read_state, ReadState::Unread);
    assert_eq!(app_ids(&all_items(&store, &f)), ["a", "b"]);
    assert_eq!(store.count(&f).unwrap(), Counts { total: 2, unread: 2 });
}

#[test]
fn expired_notification_is_never_returned_even_unswept() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let short = store.append(&f, visual("short").expiring_at(fx.in_secs(10))).unwrap();
    store.append(&f, visual("long")).unwrap();
    fx.clock.advance_secs(10);
    assert_eq!(store.get(&f, short.id).unwrap(), None);
    assert_eq!(store.get_by_app_id(&f, "short").unwrap(), None);
    assert_eq!(app_ids(&all_items(&store, &f)), ["long"]);
    assert_eq!(store.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    assert!(!store.delete(&f, short.id).unwrap());
    let again = store.append(&f, visual("short")).unwrap();
    assert_ne!(again.id, short.id, "an expired app id is free again");
    let stats = store.sweep_expired().unwrap();
    assert_eq!(stats.expired, 1);
    assert_eq!(store.get(&f, again.id).unwrap(), Some(again));
    assert_eq!(store.count(&f).unwrap(), Counts { total: 2, unread: 2 });
}

#[test]
fn full_feed_evicts_oldest_live_and_reports_it_in_changes() {
    let mut fx = Fixture::new();
    fx.options.feed_capacity = 2;
    let store = fx.open();
    let f = feed("u/app");
    let a = store.append(&f, visual("a")).unwrap();
    store.append(&f, visual("b")).unwrap();
    let token = store.changes(&f, None, 100).unwrap().next;
    store.append(&f, visual("c")).unwrap();
    assert_eq!(app_ids(&all_items(&store, &f)), ["c", "b"]);
    let page = store.changes(&f, Some(token), 100).unwrap();
    assert_eq!(page.items[0], Change::Removed { id: a.id, reason: RemovalReason::Evicted });
    assert!(matches!(&page.items[1], Change::Upserted(n) if n.app_notification_id() == "c"));
    assert_eq!(page.items.len(), 2);
}

#[test]
fn changes_report_expirations_by_time_whether_swept_or_not() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let x = store.append(&f, visual("x").expiring_at(fx.in_secs(10))).unwrap();
    let y = store.append(&f, visual("y").expiring_at(fx.in_secs(20))).unwrap();
    let token = store.changes(&f, None, 100).unwrap().next;
    fx.clock.advance_secs(10);
    let unswept = store.changes(&f, Some(token), 100).unwrap();
    assert_eq!(unswept.items, vec![Change::Removed { id: x.id, reason: RemovalReason::Expired }]);
    fx.clock.advance_secs(10);
    store.sweep_expired().unwrap();
    let swept = store.changes(&f, Some(token), 100).unwrap();
    assert_eq!(
        swept.items,
        vec![
            Change::Removed { id: x.id, reason: RemovalReason::Expired },
            Change::Removed { id: y.id, reason: RemovalReason::Expired }
        ]
    );
    assert!(store.changes(&f, Some(swept.next), 100).unwrap().items.is_empty());
}

#[test]
fn forgotten_expirations_make_older_tokens_stale() {
    let mut fx = Fixture::new();
    fx.options.expiry_log_retention = SignedDuration::from_secs(60);
    let store = fx.open();
    let f = feed("u/app");
    store.append(&f, visual("x").expiring_at(fx.in_secs(10))).unwrap();
    let token = store.changes(&f, None, 100).unwrap().next;
    fx.clock.advance_secs(30);
    store.sweep_expired().unwrap();
    assert_eq!(store.changes(&f, Some(token), 100).unwrap().items.len(), 1);
    fx.clock.advance_secs(60);
    store.sweep_expired().unwrap();
    assert!(matches!(store.changes(&f, Some(token), 100), Err(StoreError::StaleToken)));
    let fresh = store.changes(&f, None, 100).unwrap();
    assert!(fresh.items.is_empty());
}

#[test]
fn removal_log_keeps_only_its_capacity_and_older_tokens_go_stale() {
    let mut fx = Fixture::new();
    fx.options.removal_log_capacity = 2;
    let store = fx.open();
    let f = feed("u/app");
    let token = store.changes(&f, None, 100).unwrap().next;
    let ids: Vec<_> = (0..3).map(|i| store.append(&f, visual(&format!("n{i}"))).unwrap().id).collect();
    let after_appends = store.changes(&f, Some(token), 100).unwrap().next;
    for id in &ids {
        assert!(store.delete(&f, *id).unwrap());
    }
    assert!(matches!(store.changes(&f, Some(after_appends), 100), Err(StoreError::StaleToken)));
    let all = store.changes(&f, None, 100).unwrap();
    assert_eq!(
        all.items,
        vec![
            Change::Removed { id: ids[1], reason: RemovalReason::Deleted },
            Change::Removed { id: ids[2], reason: RemovalReason::Deleted }
        ]
    );
}

#[test]
fn group_delete_removes_only_live_members_of_the_group() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    store.append(&f, visual("a").with_group("g")).unwrap();
    store.append(&f, visual("b").with_group("h")).unwrap();
    store.append(&f, visual("c").with_group("g")).unwrap();
    store.append(&f, visual("d").with_group("g").expiring_at(fx.in_secs(1))).unwrap();
    fx.clock.advance_secs(1);
    assert_eq!(store.delete_group(&f, "g").unwrap(), 2);
    assert_eq!(app_ids(&all_items(&store, &f)), ["b"]);
    assert_eq!(store.delete_group(&f, "g").unwrap(), 0);
    assert_eq!(store.delete_group(&feed("nobody"), "g").unwrap(), 0);
}

#[test]
fn list_pages_newest_first_with_filters_and_cursor() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    for i in 0..5 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        store.append(&f, visual(&format!("n{i}")).with_group(group)).unwrap();
    }
    let query = ListQuery { group: Some("even".into()), limit: 2, ..ListQuery::default() };
    let first = store.list(&f, &query).unwrap();
    assert_eq!(app_ids(&first.items), ["n4", "n2"]);
    let cursor: Cursor = first.next.unwrap().to_string().parse().unwrap();
    let second = store.list(&f, &ListQuery { cursor: Some(cursor), ..query.clone() }).unwrap();
    assert_eq!(app_ids(&second.items), ["n0"]);
    assert_eq!(second.next, None);
}

#[test]
fn state_and_sequence_survive_reopen() {
    let fx = Fixture::new();
    let f = feed("u/app");
    let (n, token) = {
        let store = fx.open();
        let n = store.append(&f, visual("a")).unwrap();
        store.delete(&f, n.id).unwrap();
        let n = store.append(&f, visual("b")).unwrap();
        (n, store.changes(&f, None, 100).unwrap().next)
    };
    let store = fx.open();
    assert_eq!(store.get(&f, n.id).unwrap(), Some(n));
    assert_eq!(token.sequence, 3);
    let c = store.append(&f, visual("c")).unwrap();
    let page = store.changes(&f, Some(token), 100).unwrap();
    assert_eq!(page.items, vec![Change::Upserted(Box::new(c))]);
    assert!(page.next.sequence > SEQUENCE_LEASE_BLOCK, "after a reopen sequences start above the lease");
}

#[test]
fn a_lost_buffered_write_never_lets_its_sequence_be_given_out_again() {
    let fx = Fixture::new();
    let f = feed("u/app");
    let config =
        SledConfig { durability: Durability::Buffered, flush_every_milliseconds: None, ..SledConfig::default() };
    let store = SledStore::open(fx.dir.path(), config.clone(), Arc::new(fx.clock.clone())).unwrap();
    store.append(&f, visual("a")).unwrap();
    store.sync().unwrap();
    store.append(&f, visual("lost")).unwrap();
    let token = store.changes(&f, None, 100).unwrap().next;
    // Simulate the crash that loses the unflushed append: put the durable state back.
    let sequence_before = token.sequence - 1;
    let catalog = store.trees.tree(TreeName::Catalog);
    catalog.insert(keys::STORE_SEQUENCE_KEY, values::encode_u64(sequence_before)).unwrap();
    let number = read::feed_number(&store.trees, &f).unwrap().unwrap();
    let mut meta = read::meta(&store.trees, number).unwrap();
    meta.sequence = sequence_before;
    store.trees.tree(TreeName::FeedMeta).insert(keys::feed_prefix(number), meta.encode()).unwrap();
    drop(store);
    let store = SledStore::open(fx.dir.path(), config, Arc::new(fx.clock.clone())).unwrap();
    let after = store.append(&f, visual("after")).unwrap();
    let page = store.changes(&f, Some(token), 100).unwrap();
    assert!(
        page.items.contains(&Change::Upserted(Box::new(after))),
        "a change after the restart reaches the reader whose token saw the lost sequence"
    );
}

#[test]
fn second_open_of_one_directory_is_locked() {
    let fx = Fixture::new();
    let _store = fx.open();
    let config = SledConfig { lock_wait: Duration::from_millis(50), ..SledConfig::default() };
    let again = SledStore::open(fx.dir.path(), config, Arc::new(fx.clock.clone()));
    assert!(matches!(again, Err(StoreError::Locked { .. })), "{again:?}");
}

#[test]
fn corrupt_stored_value_is_corruption_for_get_and_list_never_data() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let n = store.append(&f, visual("a")).unwrap();
    let number = read::feed_number(&store.trees, &f).unwrap().unwrap();
    let key = keys::notification_key(number, n.id);
    let raw = store.trees.tree(TreeName::Notifications);
    let mut value = raw.get(key).unwrap().unwrap().to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    raw.insert(key, value).unwrap();
    let expected_location = format!("sled tree notifications, key {}", keys::hex(&key));
    match store.get(&f, n.id) {
        Err(StoreError::Corruption { location, .. }) => assert_eq!(location, expected_location),
        other => panic!("get returned {other:?}"),
    }
    match store.list(&f, &ListQuery::default()) {
        Err(StoreError::Corruption { location, .. }) => assert_eq!(location, expected_location),
        other => panic!("list returned {other:?}"),
    }
    assert!(matches!(store.get_by_app_id(&f, "a"), Err(StoreError::Corruption { .. })));
}

#[test]
fn buffered_store_makes_writes_durable_on_sync() {
    let fx = Fixture::new();
    let f = feed("u/app");
    let config =
        SledConfig { durability: Durability::Buffered, flush_every_milliseconds: None, ..SledConfig::default() };
    let n = {
        let store = SledStore::open(fx.dir.path(), config, Arc::new(fx.clock.clone())).unwrap();
        let n = store.append(&f, visual("a")).unwrap();
        store.sync().unwrap();
        n
    };
    assert_eq!(fx.open().get(&f, n.id).unwrap(), Some(n));
}

#[test]
fn invalid_notification_writes_nothing() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let bad = visual("").expiring_at(fx.in_secs(-1));
    assert!(matches!(store.append(&f, bad), Err(StoreError::Invalid(_))));
    assert_eq!(read::feed_number(&store.trees, &f).unwrap(), None);
    assert_eq!(store.changes(&f, None, 10).unwrap().next.sequence, 0);
}

#[test]
fn concurrent_writers_lose_nothing_and_sequences_stay_unique() {
    let fx = Fixture::new();
    let store = Arc::new(fx.open());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let f = feed(if t % 2 == 0 { "u/even" } else { "u/odd" });
                for i in 0..25 {
                    store.append(&f, visual(&format!("t{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for name in ["u/even", "u/odd"] {
        let f = feed(name);
        assert_eq!(store.count(&f).unwrap().total, 50);
        let changes = store.changes(&f, None, 1000).unwrap();
        assert_eq!(changes.items.len(), 50);
        let ids: std::collections::HashSet<_> = all_items(&store, &f).iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), 50);
    }
    let even = store.changes(&feed("u/even"), None, 1000).unwrap().next.sequence;
    let odd = store.changes(&feed("u/odd"), None, 1000).unwrap().next.sequence;
    assert_eq!(even.max(odd), 100, "one store-wide counter gave out exactly 100 sequences");
}

#[test]
fn a_foreign_layout_version_is_refused_on_open() {
    let fx = Fixture::new();
    {
        let store = fx.open();
        let catalog = store.trees.tree(TreeName::Catalog);
        catalog.insert(keys::LAYOUT_VERSION_KEY, values::encode_u64(99)).unwrap();
        catalog.flush().unwrap();
    }
    let config = SledConfig { options: fx.options.clone(), ..SledConfig::default() };
    match SledStore::open(fx.dir.path(), config, Arc::new(fx.clock.clone())) {
        Err(StoreError::Corruption { detail, .. }) => assert!(detail.contains("layout version 99"), "{detail}"),
        other => panic!("open gave {other:?}"),
    }
}

#[test]
fn sweep_larger_than_one_chunk_reclaims_everything_once() {
    let fx = Fixture::new();
    let config = SledConfig { durability: Durability::Buffered, ..SledConfig::default() };
    let store = SledStore::open(fx.dir.path(), config, Arc::new(fx.clock.clone())).unwrap();
    let feeds = [feed("u/a"), feed("u/b")];
    let tokens: Vec<_> = feeds.iter().map(|f| store.changes(f, None, 10).unwrap().next).collect();
    let total = sweep::CHUNK_ENTRIES + 88;
    for i in 0..total {
        let expires = fx.in_secs(1 + (i % 7) as i64);
        store.append(&feeds[i % 2], visual(&format!("n{i}")).expiring_at(expires)).unwrap();
    }
    store.append(&feeds[0], visual("stays")).unwrap();
    fx.clock.advance_secs(10);
    assert_eq!(store.sweep_expired().unwrap().expired, total as u64);
    assert_eq!(store.sweep_expired().unwrap().expired, 0);
    assert_eq!(store.count(&feeds[0]).unwrap().total, 1);
    assert_eq!(store.count(&feeds[1]).unwrap().total, 0);
    let mut expired = 0;
    for (f, token) in feeds.iter().zip(tokens) {
        let page = store.changes(f, Some(token), 1000).unwrap();
        expired +=
            page.items.iter().filter(|c| matches!(c, Change::Removed { reason: RemovalReason::Expired, .. })).count();
    }
    assert_eq!(expired, total);
    let now = keys::time_upper_bound(timestamp_to_nanos(fx.clock.now()));
    assert!(store.trees.tree(TreeName::Expiry).range(..=now).next().is_none(), "nothing expired is left indexed");
    assert_eq!(store.trees.tree(TreeName::Expiry).len(), 1, "only the live notification stays indexed");
}

#[test]
fn corrupt_feed_meta_stops_mutations_and_changes_with_corruption() {
    let fx = Fixture::new();
    let store = fx.open();
    let f = feed("u/app");
    let n = store.append(&f, visual("a")).unwrap();
    let number = read::feed_number(&store.trees, &f).unwrap().unwrap();
    let key = keys::feed_prefix(number);
    let raw = store.trees.tree(TreeName::FeedMeta);
    let mut value = raw.get(key).unwrap().unwrap().to_vec();
    value[7] ^= 0x80;
    raw.insert(key, value.clone()).unwrap();
    assert!(matches!(store.append(&f, visual("b")), Err(StoreError::Corruption { .. })));
    assert!(matches!(store.delete(&f, n.id), Err(StoreError::Corruption { .. })));
    assert!(matches!(store.changes(&f, None, 10), Err(StoreError::Corruption { .. })));
    assert_eq!(raw.get(key).unwrap().unwrap().to_vec(), value, "a failed operation writes nothing");
    assert_eq!(store.get(&f, n.id).unwrap(), Some(n), "reads that do not need the meta still work");
}

#[test]
fn a_poisoned_store_reports_unhealthy_and_refuses_writes_until_reopened() {
    let fx = Fixture::new();
    let f = feed("u/app");
    {
        let store = fx.open();
        let kept = store.append(&f, visual("a")).unwrap();
        assert!(store.check_health().is_ok());
        // What a failed commit or flush does (neither can be made to fail from here).
        store.poisoned.store(true, Ordering::SeqCst);
        assert!(matches!(store.check_health(), Err(StoreError::Poisoned)));
        assert!(matches!(store.append(&f, visual("b")), Err(StoreError::Poisoned)));
        assert!(matches!(store.delete(&f, kept.id), Err(StoreError::Poisoned)));
        assert!(matches!(store.sync(), Err(StoreError::Poisoned)));
        assert!(matches!(store.sweep_expired(), Err(StoreError::Poisoned)));
    }
    let store = fx.open();
    assert!(store.check_health().is_ok());
    assert_eq!(app_ids(&all_items(&store, &f)), ["a"]);
}
