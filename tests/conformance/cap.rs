//! The per-feed cap (`StoreOptions::feed_capacity`) and eviction.

use notifeed::{RemovalReason, StoreOptions};

use super::{Fixture, Opener, Seen, at, feed, seen, visual};

fn capacity(n: usize) -> StoreOptions {
    StoreOptions { feed_capacity: n, ..StoreOptions::default() }
}

/// An append to a full feed evicts the live notification with the oldest position, and the
/// eviction shows in `changes` as `Evicted` just before the new notification.
pub fn full_feed_evicts_the_oldest(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(3));
    let f = feed("a");
    let first = s.add(&f, visual("n0", "t"));
    s.add(&f, visual("n1", "t"));
    s.add(&f, visual("n2", "t"));
    let token = s.token_now(&f);
    let fourth = s.add(&f, visual("n3", "t"));
    assert_eq!(s.app_ids(&f), ["n3", "n2", "n1"]);
    assert_eq!(s.get(&f, first.id).unwrap(), None);
    assert_eq!(s.count(&f).unwrap().total, 3);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["n3", "n2", "n1"]);
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(first.id, RemovalReason::Evicted), Seen::Up(fourth.id)]);
    s.add(&f, visual("n4", "t"));
    s.reopen();
    assert_eq!(s.app_ids(&f), ["n4", "n3", "n2"]);
}

/// Eviction follows position: a notification replaced recently is not the oldest.
pub fn eviction_goes_by_position_not_creation(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(3));
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    s.add(&f, visual("c", "t"));
    s.add(&f, visual("a", "replaced"));
    s.reopen();
    s.add(&f, visual("d", "t"));
    assert_eq!(s.app_ids(&f), ["d", "a", "c"]);
    assert_eq!(s.get(&f, b.id).unwrap(), None);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["d", "a", "c"]);
}

/// Replacing in a full feed evicts nothing.
pub fn replacement_in_a_full_feed_evicts_nothing(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(2));
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    let token = s.token_now(&f);
    let a = s.add(&f, visual("a", "again"));
    s.add(&f, visual("b", "again"));
    s.add(&f, visual("a", "and again"));
    s.reopen();
    assert_eq!(s.app_ids(&f), ["a", "b"]);
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert!(seen(&changes).iter().all(|c| matches!(c, Seen::Up(_))), "no removal: {changes:?}");
    assert_eq!(s.get_by_app_id(&f, "a").unwrap().map(|n| n.id), Some(a.id));
}

/// Expired notifications are not live, so they do not count against the cap (swept or not).
pub fn expired_notifications_do_not_count_against_the_cap(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(2));
    let f = feed("a");
    s.add(&f, visual("short", "t").expiring_at(at(10)));
    let long = s.add(&f, visual("long", "t"));
    s.set_time(at(10));
    let token = s.token_now(&f);
    s.add(&f, visual("new", "t"));
    assert_eq!(s.app_ids(&f), ["new", "long"]);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["new", "long"]);
    assert_eq!(s.get(&f, long.id).unwrap(), Some(long));
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert!(!seen(&changes).iter().any(|c| matches!(c, Seen::Gone(..))), "nothing evicted: {changes:?}");
}

/// The cap counts each feed on its own.
pub fn cap_is_per_feed(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(2));
    for name in ["a", "b", "c"] {
        s.add(&feed(name), visual("x", "t"));
        s.add(&feed(name), visual("y", "t"));
    }
    s.reopen();
    for name in ["a", "b", "c"] {
        assert_eq!(s.app_ids(&feed(name)), ["y", "x"]);
    }
    s.add(&feed("b"), visual("z", "t"));
    s.reopen();
    assert_eq!(s.app_ids(&feed("a")), ["y", "x"]);
    assert_eq!(s.app_ids(&feed("b")), ["z", "y"]);
}

/// An evicted notification's app id is free: appending it again creates a new notification.
pub fn evicted_app_id_is_free_again(open: Opener) {
    let mut s = Fixture::start_with(open, capacity(2));
    let f = feed("a");
    let first = s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    s.add(&f, visual("c", "t"));
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "a").unwrap(), None);
    let again = s.add(&f, visual("a", "again"));
    assert_ne!(again.id, first.id);
    assert_eq!(s.app_ids(&f), ["a", "c"]);
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "a").unwrap(), Some(again));
}
