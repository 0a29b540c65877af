//! `list` (order, filters, limit, cursor paging) and `count`.

use notifeed::{Counts, ListQuery, Platform, Platforms, ReadState, StateUpdate, UserActionState};

use super::{Fixture, Opener, feed, visual};

fn ids_of(items: &[notifeed::Notification]) -> Vec<String> {
    items.iter().map(|n| n.app_notification_id().to_owned()).collect()
}

/// Lists come newest first, and stay so after a reopen.
pub fn list_returns_newest_first(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..5 {
        s.add(&f, visual(&format!("n{i}"), "t"));
    }
    let expected = ["n4", "n3", "n2", "n1", "n0"];
    assert_eq!(ids_of(&s.list(&f, &ListQuery::default()).unwrap().items), expected);
    assert_eq!(s.list(&f, &ListQuery::default()).unwrap().next, None);
    s.reopen();
    assert_eq!(ids_of(&s.list(&f, &ListQuery::default()).unwrap().items), expected);
    s.add(&f, visual("n5", "t"));
    assert_eq!(s.app_ids(&f)[0], "n5", "a new append after reopen goes on top");
}

/// A feed that never existed lists empty, counts zero and has no changes.
pub fn list_of_unknown_feed_is_empty(open: Opener) {
    let mut s = Fixture::start(open);
    s.add(&feed("other"), visual("x", "x"));
    for _ in 0..2 {
        let page = s.list(&feed("never"), &ListQuery::default()).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next, None);
        assert_eq!(s.count(&feed("never")).unwrap(), Counts::default());
        let changes = s.changes(&feed("never"), None, 10).unwrap();
        assert!(changes.items.is_empty());
        assert!(!changes.more);
        s.reopen();
    }
}

/// The group filter returns only that group's notifications, newest first.
pub fn list_filters_by_group(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("a", "t").with_group("g1"));
    s.add(&f, visual("b", "t").with_group("g2"));
    s.add(&f, visual("c", "t"));
    s.add(&f, visual("d", "t").with_group("g1"));
    s.add(&f, visual("e", "t").with_group("G1"));
    for _ in 0..2 {
        let q = |g: &str| ListQuery { group: Some(g.into()), ..ListQuery::default() };
        assert_eq!(ids_of(&s.list(&f, &q("g1")).unwrap().items), ["d", "a"]);
        assert_eq!(ids_of(&s.list(&f, &q("g2")).unwrap().items), ["b"]);
        assert_eq!(ids_of(&s.list(&f, &q("G1")).unwrap().items), ["e"], "groups are case-sensitive");
        assert!(s.list(&f, &q("g3")).unwrap().items.is_empty());
        s.reopen();
    }
}

/// The platform filter returns notifications that target that platform.
pub fn list_filters_by_platform(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let mut ios = visual("ios", "t");
    ios.platforms = Platforms::of(&[Platform::Ios]);
    let mut web = visual("web", "t");
    web.platforms = Platforms::of(&[Platform::WebPush, Platform::Windows]);
    s.add(&f, ios);
    s.add(&f, web);
    s.add(&f, visual("all", "t"));
    for _ in 0..2 {
        let q = |p: Platform| ListQuery { platform: Some(p), ..ListQuery::default() };
        assert_eq!(ids_of(&s.list(&f, &q(Platform::Ios)).unwrap().items), ["all", "ios"]);
        assert_eq!(ids_of(&s.list(&f, &q(Platform::Windows)).unwrap().items), ["all", "web"]);
        assert_eq!(ids_of(&s.list(&f, &q(Platform::WebPush)).unwrap().items), ["all", "web"]);
        assert_eq!(ids_of(&s.list(&f, &q(Platform::Android)).unwrap().items), ["all"]);
        s.reopen();
    }
}

/// The read-state filter follows state updates.
pub fn list_filters_by_read_state(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    let c = s.add(&f, visual("c", "t"));
    for n in [&a, &c] {
        s.update_state(&f, n.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
            .unwrap()
            .unwrap();
    }
    for _ in 0..2 {
        let q = |r: ReadState| ListQuery { read_state: Some(r), ..ListQuery::default() };
        assert_eq!(ids_of(&s.list(&f, &q(ReadState::Read)).unwrap().items), ["c", "a"]);
        assert_eq!(ids_of(&s.list(&f, &q(ReadState::Unread)).unwrap().items), ["b"]);
        s.reopen();
    }
}

/// The action-state filter follows state updates.
pub fn list_filters_by_action_state(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    s.add(&f, visual("c", "t"));
    for (id, action) in [(a.id, UserActionState::Dismissed), (b.id, UserActionState::Activated)] {
        let update = StateUpdate { user_action_state: Some(action), ..StateUpdate::default() };
        s.update_state(&f, id, update).unwrap().unwrap();
    }
    for _ in 0..2 {
        let q = |a: UserActionState| ListQuery { user_action_state: Some(a), ..ListQuery::default() };
        assert_eq!(ids_of(&s.list(&f, &q(UserActionState::Dismissed)).unwrap().items), ["a"]);
        assert_eq!(ids_of(&s.list(&f, &q(UserActionState::Activated)).unwrap().items), ["b"]);
        assert_eq!(ids_of(&s.list(&f, &q(UserActionState::NoInteraction)).unwrap().items), ["c"]);
        assert!(s.list(&f, &q(UserActionState::Snoozed)).unwrap().items.is_empty());
        s.reopen();
    }
}

/// Filters combine with AND.
pub fn list_filters_combine(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let mut ios_g1 = visual("ios-g1", "t").with_group("g1");
    ios_g1.platforms = Platforms::of(&[Platform::Ios]);
    let read_g1 = s.add(&f, visual("read-g1", "t").with_group("g1"));
    s.add(&f, ios_g1);
    s.add(&f, visual("all-g2", "t").with_group("g2"));
    s.add(&f, visual("unread-g1", "t").with_group("g1"));
    s.update_state(&f, read_g1.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        let q = ListQuery {
            group: Some("g1".into()),
            platform: Some(Platform::Android),
            read_state: Some(ReadState::Unread),
            user_action_state: Some(UserActionState::NoInteraction),
            ..ListQuery::default()
        };
        assert_eq!(ids_of(&s.list(&f, &q).unwrap().items), ["unread-g1"]);
        let q = ListQuery { group: Some("g1".into()), platform: Some(Platform::Ios), ..ListQuery::default() };
        assert_eq!(ids_of(&s.list(&f, &q).unwrap().items), ["unread-g1", "ios-g1", "read-g1"]);
        s.reopen();
    }
}

/// Paging through a feed with any limit returns every notification exactly once, in order.
pub fn list_pages_have_no_duplicates_and_no_gaps(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..23 {
        s.add(&f, visual(&format!("n{i:02}"), "t"));
    }
    let expected: Vec<String> = (0..23).rev().map(|i| format!("n{i:02}")).collect();
    for _ in 0..2 {
        for limit in [1, 2, 5, 7, 22, 23, 24, 1000] {
            assert_eq!(ids_of(&s.list_all(&f, &ListQuery::default(), limit)), expected, "limit {limit}");
        }
        s.reopen();
    }
}

/// Paging with a filter returns every match exactly once, and pages are full until the last.
pub fn filtered_list_pages_have_no_duplicates_and_no_gaps(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..30 {
        let group = if i % 3 == 0 { "three" } else { "other" };
        s.add(&f, visual(&format!("n{i:02}"), "t").with_group(group));
    }
    let expected: Vec<String> = (0..30).rev().filter(|i| i % 3 == 0).map(|i| format!("n{i:02}")).collect();
    let q = ListQuery { group: Some("three".into()), ..ListQuery::default() };
    for _ in 0..2 {
        for limit in [1, 3, 4, 10, 11] {
            assert_eq!(ids_of(&s.list_all(&f, &q, limit)), expected, "limit {limit}");
        }
        s.reopen();
    }
}

/// `next` is `None` exactly when no further matching notification follows, even when the last
/// page is full.
pub fn list_next_is_none_when_the_page_is_the_last(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..4 {
        s.add(&f, visual(&format!("n{i}"), "t"));
    }
    for _ in 0..2 {
        let first = s.list(&f, &ListQuery { limit: 2, ..ListQuery::default() }).unwrap();
        assert_eq!(ids_of(&first.items), ["n3", "n2"]);
        let cursor = first.next.expect("a second page exists");
        let second = s.list(&f, &ListQuery { limit: 2, cursor: Some(cursor), ..ListQuery::default() }).unwrap();
        assert_eq!(ids_of(&second.items), ["n1", "n0"]);
        assert_eq!(second.next, None, "a full last page has no next cursor");
        let all = s.list(&f, &ListQuery { limit: 4, ..ListQuery::default() }).unwrap();
        assert_eq!(all.items.len(), 4);
        assert_eq!(all.next, None);
        s.reopen();
    }
}

/// A limit of 0 is treated as 1.
pub fn list_limit_zero_is_treated_as_one(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    for _ in 0..2 {
        let page = s.list(&f, &ListQuery { limit: 0, ..ListQuery::default() }).unwrap();
        assert_eq!(ids_of(&page.items), ["b"]);
        assert!(page.next.is_some());
        s.reopen();
    }
}

/// A cursor taken before a reopen continues the list after it; its text form round-trips.
pub fn list_cursor_survives_reopen(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for i in 0..6 {
        s.add(&f, visual(&format!("n{i}"), "t"));
    }
    let first = s.list(&f, &ListQuery { limit: 4, ..ListQuery::default() }).unwrap();
    let text = first.next.unwrap().to_string();
    s.reopen();
    let cursor: notifeed::Cursor = text.parse().unwrap();
    let second = s.list(&f, &ListQuery { limit: 4, cursor: Some(cursor), ..ListQuery::default() }).unwrap();
    assert_eq!(ids_of(&second.items), ["n1", "n0"]);
    assert_eq!(second.next, None);
}

/// State changes between pages do not move notifications, so paging sees each exactly once.
pub fn list_cursor_is_stable_under_state_changes(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let all: Vec<_> = (0..6).map(|i| s.add(&f, visual(&format!("n{i}"), "t"))).collect();
    let first = s.list(&f, &ListQuery { limit: 3, ..ListQuery::default() }).unwrap();
    assert_eq!(ids_of(&first.items), ["n5", "n4", "n3"]);
    for n in &all {
        s.update_state(&f, n.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
            .unwrap()
            .unwrap();
    }
    s.reopen();
    let second = s.list(&f, &ListQuery { limit: 3, cursor: first.next, ..ListQuery::default() }).unwrap();
    assert_eq!(ids_of(&second.items), ["n2", "n1", "n0"]);
    assert!(second.items.iter().all(|n| n.read_state == ReadState::Read));
    assert_eq!(s.app_ids(&f), ["n5", "n4", "n3", "n2", "n1", "n0"]);
}

/// Counts are exact: total and unread follow appends, replacements, state changes and deletes.
pub fn count_is_exact_total_and_unread(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    assert_eq!(s.count(&f).unwrap(), Counts { total: 0, unread: 0 });
    let all: Vec<_> = (0..5).map(|i| s.add(&f, visual(&format!("n{i}"), "t"))).collect();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 5, unread: 5 });
    for n in &all[..3] {
        s.update_state(&f, n.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
            .unwrap()
            .unwrap();
    }
    assert_eq!(s.count(&f).unwrap(), Counts { total: 5, unread: 2 });
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 5, unread: 2 });
    s.add(&f, visual("n0", "replaced: unread again"));
    assert_eq!(s.count(&f).unwrap(), Counts { total: 5, unread: 3 });
    s.delete(&f, all[1].id).unwrap();
    s.delete(&f, all[4].id).unwrap();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 3, unread: 2 });
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts { total: 3, unread: 2 });
    for n in &all {
        s.update_state(&f, n.id, StateUpdate { read_state: Some(ReadState::Unread), ..StateUpdate::default() })
            .unwrap();
    }
    assert_eq!(s.count(&f).unwrap(), Counts { total: 3, unread: 3 });
}
