//! Exact expiration on every read path, app id reuse, sweeps.

use jiff::SignedDuration;
use notifeed::{Counts, FeedKey, ListQuery, NotificationId, ReadState, RemovalReason, StateUpdate};

use super::{Fixture, Opener, Seen, at, feed, seen, upserts, visual};

/// Whether `id` (with app id `app`) is visible through every read path.
fn visible_everywhere(s: &Fixture, f: &FeedKey, id: NotificationId, app: &str) -> bool {
    let by_id = s.get(f, id).unwrap().is_some();
    let by_app = s.get_by_app_id(f, app).unwrap().is_some();
    let listed = s.list_all(f, &ListQuery::default(), 1000).iter().any(|n| n.id == id);
    let grouped = ListQuery { group: Some("g".into()), ..ListQuery::default() };
    let listed_in_group = s.list_all(f, &grouped, 1000).iter().any(|n| n.id == id);
    let unread = ListQuery { read_state: Some(ReadState::Unread), ..ListQuery::default() };
    let listed_unread = s.list_all(f, &unread, 1000).iter().any(|n| n.id == id);
    let (changes, _) = s.drain_changes(f, None, 1000);
    let changed = upserts(&changes).iter().any(|n| n.id == id);
    let answers = [by_id, by_app, listed, listed_in_group, listed_unread, changed];
    assert!(answers.iter().all(|a| *a == by_id), "read paths disagree: {answers:?}");
    by_id
}

/// At the instant of `expirationDateTime` the notification is gone from every read path, and
/// stays gone after a reopen.
pub fn expired_notification_is_never_returned(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let n = s.add(&f, visual("x", "t").with_group("g").expiring_at(at(60)));
    s.add(&f, visual("keep", "t").with_group("g").expiring_at(at(120)));
    s.set_time(at(60) - SignedDuration::from_millis(1));
    assert!(visible_everywhere(&s, &f, n.id, "x"));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 2, unread: 2 });
    s.set_time(at(60));
    assert!(!visible_everywhere(&s, &f, n.id, "x"));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    s.reopen();
    assert!(!visible_everywhere(&s, &f, n.id, "x"));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    s.advance_secs(3_600);
    assert!(!visible_everywhere(&s, &f, n.id, "x"));
    assert_eq!(s.count(&f).unwrap(), Counts::default());
}

/// Expiration is compared at full (nanosecond) precision.
pub fn expiration_is_exact_to_the_nanosecond(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let expiration = at(10) + SignedDuration::from_nanos(1);
    let n = s.add(&f, visual("x", "t").with_group("g").expiring_at(expiration));
    assert_eq!(n.expiration, expiration);
    s.set_time(at(10));
    s.reopen();
    assert!(visible_everywhere(&s, &f, n.id, "x"));
    assert_eq!(s.get(&f, n.id).unwrap().map(|n| n.expiration), Some(expiration));
    s.set_time(expiration);
    assert!(!visible_everywhere(&s, &f, n.id, "x"));
}

/// Once expired, the app id is free: an append creates a new notification with a new id.
pub fn expired_app_id_is_free_again(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let old = s.add(&f, visual("x", "old").expiring_at(at(60)));
    let token = s.token_now(&f);
    s.set_time(at(60));
    let new = s.add(&f, visual("x", "new"));
    assert_ne!(new.id, old.id);
    assert_eq!(new.created, at(60));
    assert_eq!(s.count(&f).unwrap().total, 1);
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "x").unwrap(), Some(new.clone()));
    assert_eq!(s.get(&f, old.id).unwrap(), None);
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(old.id, RemovalReason::Expired), Seen::Up(new.id)]);
    assert!(s.sweep_expired().unwrap().expired <= 1, "the old notification is counted at most once");
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(old.id, RemovalReason::Expired), Seen::Up(new.id)]);
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "x").unwrap(), Some(new.clone()));
    assert_eq!(s.get(&f, new.id).unwrap(), Some(new));
    assert_eq!(s.get(&f, old.id).unwrap(), None);
}

/// `update_state`, `delete`, `delete_by_app_id` and `delete_group` do not see expired
/// notifications.
pub fn expired_notification_cannot_be_updated_or_deleted(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let n = s.add(&f, visual("x", "t").with_group("g").expiring_at(at(60)));
    s.set_time(at(60));
    let update = StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() };
    assert_eq!(s.update_state(&f, n.id, update).unwrap(), None);
    assert!(!s.delete(&f, n.id).unwrap());
    assert!(!s.delete_by_app_id(&f, "x").unwrap());
    assert_eq!(s.delete_group(&f, "g").unwrap(), 0);
    s.reopen();
    assert_eq!(s.update_state(&f, n.id, update).unwrap(), None);
    assert!(!s.delete(&f, n.id).unwrap());
    assert_eq!(s.delete_group(&f, "g").unwrap(), 0);
    assert_eq!(s.get(&f, n.id).unwrap(), None);
}

/// After a sweep and a reopen, nothing expired comes back; live notifications are untouched.
pub fn expired_notification_stays_gone_after_sweep_and_reopen(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let gone: Vec<_> = (0..5).map(|i| s.add(&f, visual(&format!("e{i}"), "t").expiring_at(at(60 + i)))).collect();
    let live = s.add(&f, visual("live", "t").expiring_at(at(3_600)));
    s.set_time(at(63));
    assert_eq!(s.count(&f).unwrap().total, 2);
    assert_eq!(s.sweep_expired().unwrap().expired, 4);
    s.reopen();
    for n in &gone[..4] {
        assert_eq!(s.get(&f, n.id).unwrap(), None);
    }
    assert_eq!(s.app_ids(&f), ["live", "e4"]);
    assert_eq!(s.sweep_expired().unwrap().expired, 0, "a second sweep finds nothing");
    s.set_time(at(64));
    assert_eq!(s.sweep_expired().unwrap().expired, 1);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["live"]);
    assert_eq!(s.get(&f, live.id).unwrap(), Some(live));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    s.set_time(at(7_200));
    s.reopen();
    assert!(s.app_ids(&f).is_empty());
}

/// A sweep reclaims the expired notifications of every feed, and counts each exactly once, also
/// across a reopen; a replaced notification counts once, with its new expiration.
pub fn sweep_counts_the_expired_of_every_feed_once(open: Opener) {
    let mut s = Fixture::start(open);
    s.add(&feed("a"), visual("x", "t").expiring_at(at(10)));
    s.add(&feed("a"), visual("y", "t").expiring_at(at(10)));
    s.add(&feed("b"), visual("x", "t").expiring_at(at(20)));
    s.add(&feed("b"), visual("z", "t").expiring_at(at(30)));
    s.add(&feed("b"), visual("z", "replaced").expiring_at(at(90)));
    assert_eq!(s.sweep_expired().unwrap().expired, 0);
    s.set_time(at(30));
    s.reopen();
    assert_eq!(s.sweep_expired().unwrap().expired, 3);
    assert_eq!(s.sweep_expired().unwrap().expired, 0);
    s.reopen();
    assert_eq!(s.sweep_expired().unwrap().expired, 0);
    assert_eq!(s.count(&feed("b")).unwrap().total, 1);
    s.set_time(at(90));
    assert_eq!(s.sweep_expired().unwrap().expired, 1);
    assert_eq!(s.count(&feed("b")).unwrap().total, 0);
}

/// Counts drop at the instant of expiration, with no sweep.
pub fn count_excludes_expired_before_any_sweep(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let read = s.add(&f, visual("a", "t").expiring_at(at(10)));
    s.add(&f, visual("b", "t").expiring_at(at(20)));
    s.add(&f, visual("c", "t").expiring_at(at(30)));
    s.update_state(&f, read.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
        .unwrap()
        .unwrap();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 3, unread: 2 });
    s.set_time(at(10));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 2, unread: 2 });
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 2, unread: 2 });
    s.set_time(at(20));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    s.set_time(at(30));
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts::default());
}
