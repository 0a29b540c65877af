//! Feeds are independent of each other.

use notifeed::{Counts, ReadState, StateUpdate};

use super::{Fixture, Opener, Seen, feed, seen, visual};

/// The same app id in two feeds makes two notifications; ids of one feed are unknown in the
/// other; each feed's list and changes hold only its own.
pub fn feeds_are_isolated(open: Opener) {
    let mut s = Fixture::start(open);
    let (a, b) = (feed("a"), feed("b"));
    let in_a = s.add(&a, visual("same", "in a"));
    let in_b = s.add(&b, visual("same", "in b"));
    assert_ne!(in_a.id, in_b.id);
    let read = StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() };
    assert_eq!(s.update_state(&a, in_b.id, read).unwrap(), None);
    assert!(!s.delete(&a, in_b.id).unwrap());
    for _ in 0..2 {
        assert_eq!(s.get(&a, in_a.id).unwrap(), Some(in_a.clone()));
        assert_eq!(s.get(&a, in_b.id).unwrap(), None);
        assert_eq!(s.get(&b, in_a.id).unwrap(), None);
        assert_eq!(s.get_by_app_id(&b, "same").unwrap(), Some(in_b.clone()));
        assert_eq!(s.app_ids(&a), ["same"]);
        let (changes, _) = s.drain_changes(&b, None, 10);
        assert_eq!(seen(&changes), [Seen::Up(in_b.id)]);
        s.reopen();
    }
    assert!(s.delete_by_app_id(&a, "same").unwrap());
    s.reopen();
    assert_eq!(s.get(&b, in_b.id).unwrap(), Some(in_b));
    assert_eq!(s.get(&a, in_a.id).unwrap(), None);
}

/// Group deletes and counts see only their own feed, even when keys share a prefix.
pub fn group_delete_and_counts_are_per_feed(open: Opener) {
    let mut s = Fixture::start(open);
    let a = notifeed::FeedKey::new("user/app").unwrap();
    let prefix = notifeed::FeedKey::new("user/ap").unwrap();
    let longer = notifeed::FeedKey::new("user/app2").unwrap();
    for f in [&a, &prefix, &longer] {
        s.add(f, visual("x", "t").with_group("g"));
        s.add(f, visual("y", "t").with_group("g"));
    }
    let token = s.token_now(&prefix);
    assert_eq!(s.delete_group(&a, "g").unwrap(), 2);
    for _ in 0..2 {
        assert_eq!(s.count(&a).unwrap(), Counts::default());
        assert_eq!(s.count(&prefix).unwrap(), Counts { total: 2, unread: 2 });
        assert_eq!(s.count(&longer).unwrap(), Counts { total: 2, unread: 2 });
        assert!(s.changes(&prefix, Some(token), 10).unwrap().items.is_empty());
        s.reopen();
    }
}

/// Feed keys, app ids and group names are opaque: separators, Redis hash-tag braces, control
/// characters, non-ASCII text and the longest allowed keys are kept apart exactly.
pub fn odd_keys_app_ids_and_groups_are_kept_apart(open: Opener) {
    let mut s = Fixture::start(open);
    let long = "k".repeat(notifeed::FeedKey::MAX_BYTES);
    let names = [
        "a".to_owned(),
        "a/".to_owned(),
        "a/b".to_owned(),
        "a\u{1}".to_owned(),
        "{a}".to_owned(),
        "{a}:b".to_owned(),
        "a:b".to_owned(),
        "ü-🦀".to_owned(),
        " a ".to_owned(),
        long.clone(),
        long[1..].to_owned(),
    ];
    let keys: Vec<_> = names.iter().map(|n| notifeed::FeedKey::new(n.clone()).unwrap()).collect();
    let app_ids = ["x", "x ", "{x}", "x:y", "x/y", "ü", "\u{7f}", &"i".repeat(256)];
    for (i, key) in keys.iter().enumerate() {
        for app in app_ids {
            s.add(key, visual(app, &format!("{i}:{app}")).with_group(&format!("{{g}}:{}", i % 2)));
        }
    }
    for _ in 0..2 {
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(s.count(key).unwrap().total, app_ids.len() as u64, "feed {:?}", names[i]);
            for app in app_ids {
                let n = s.get_by_app_id(key, app).unwrap().unwrap();
                assert_eq!(super::title(&n), format!("{i}:{app}"));
                assert_eq!(s.get(key, n.id).unwrap(), Some(n.clone()));
            }
            let (changes, _) = s.drain_changes(key, None, 3);
            assert_eq!(changes.len(), app_ids.len());
        }
        s.reopen();
    }
    assert_eq!(s.delete_group(&keys[4], "{g}:0").unwrap(), app_ids.len() as u64);
    assert_eq!(s.delete_group(&keys[4], "{g}:1").unwrap(), 0);
    s.reopen();
    assert_eq!(s.count(&keys[4]).unwrap(), Counts::default());
    assert_eq!(s.count(&keys[5]).unwrap().total, app_ids.len() as u64);
    assert_eq!(s.count(&keys[0]).unwrap().total, app_ids.len() as u64);
}
