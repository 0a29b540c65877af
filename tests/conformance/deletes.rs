//! `delete`, `delete_by_app_id` and `delete_group`.

use notifeed::{Counts, ListQuery, NotificationId};

use super::{Fixture, Opener, feed, visual};

/// `delete` removes a live notification and says so; a second delete finds nothing.
pub fn delete_removes_and_reports_whether_it_did(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    assert!(s.delete(&f, a.id).unwrap());
    assert!(!s.delete(&f, a.id).unwrap());
    assert_eq!(s.get(&f, a.id).unwrap(), None);
    assert_eq!(s.get_by_app_id(&f, "a").unwrap(), None);
    assert_eq!(s.app_ids(&f), ["b"]);
    s.reopen();
    assert!(!s.delete(&f, a.id).unwrap());
    assert_eq!(s.get(&f, a.id).unwrap(), None);
    assert_eq!(s.get(&f, b.id).unwrap(), Some(b.clone()));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 1, unread: 1 });
    assert!(s.delete(&f, b.id).unwrap());
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts::default());
    assert!(s.list(&f, &ListQuery::default()).unwrap().items.is_empty());
}

/// `delete_by_app_id` removes the notification; the app id is then free and a new append gets a
/// new id.
pub fn delete_by_app_id_removes_and_frees_the_app_id(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    assert!(s.delete_by_app_id(&f, "a").unwrap());
    assert!(!s.delete_by_app_id(&f, "a").unwrap());
    s.reopen();
    assert_eq!(s.get(&f, a.id).unwrap(), None);
    assert!(!s.delete_by_app_id(&f, "a").unwrap());
    let again = s.add(&f, visual("a", "again"));
    assert_ne!(again.id, a.id, "a deleted app id starts a new notification");
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "a").unwrap(), Some(again));
    assert_eq!(s.get(&f, a.id).unwrap(), None);
}

/// `delete_group` removes every live notification of the group and nothing else, returning how
/// many it removed; a second call removes none.
pub fn delete_group_removes_only_that_group_and_counts(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..3 {
        s.add(&f, visual(&format!("g{i}"), "t").with_group("g"));
        s.add(&f, visual(&format!("h{i}"), "t").with_group("h"));
    }
    s.add(&f, visual("none", "t"));
    assert_eq!(s.delete_group(&f, "g").unwrap(), 3);
    assert_eq!(s.delete_group(&f, "g").unwrap(), 0);
    assert_eq!(s.delete_group(&f, "missing").unwrap(), 0);
    assert_eq!(s.delete_group(&feed("other"), "h").unwrap(), 0);
    s.reopen();
    assert_eq!(s.delete_group(&f, "g").unwrap(), 0);
    assert_eq!(s.app_ids(&f), ["none", "h2", "h1", "h0"]);
    assert_eq!(s.get_by_app_id(&f, "g1").unwrap(), None);
    assert_eq!(s.count(&f).unwrap().total, 4);
    assert_eq!(s.delete_group(&f, "h").unwrap(), 3);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["none"]);
}

/// Deleting an id that never existed, or exists only in another feed, is `false`.
pub fn delete_of_unknown_id_is_false(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let elsewhere = s.add(&feed("b"), visual("x", "t"));
    assert!(!s.delete(&f, NotificationId::new_random()).unwrap());
    assert!(!s.delete(&f, elsewhere.id).unwrap());
    assert!(!s.delete_by_app_id(&f, "x").unwrap());
    s.reopen();
    assert_eq!(s.get(&feed("b"), elsewhere.id).unwrap(), Some(elsewhere));
    assert!(s.changes(&f, None, 10).unwrap().items.is_empty(), "a failed delete records nothing");
}
