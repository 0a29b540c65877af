//! Append, replacement, `get` and `get_by_app_id`, `sync`.

use jiff::SignedDuration;
use notifeed::model::FallbackPolicy;
use notifeed::{
    ListQuery, NotificationId, Payload, Platform, Platforms, Priority, ReadState, StateUpdate, UserActionState,
    VisualContent,
};

use super::{Fixture, Opener, at, feed, t0, title, visual};

/// A new notification gets a fresh random id, the clock's time as created and last modified,
/// `Unread`/`NoInteraction`, the default priority and the maximum expiration.
pub fn appended_notification_gets_a_fresh_id_and_initial_state(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a1", "first"));
    s.advance_secs(1);
    let b = s.add(&f, visual("a2", "second"));
    assert_ne!(a.id, b.id);
    assert_eq!(a.created, t0());
    assert_eq!(a.last_modified, t0());
    assert_eq!(b.created, at(1));
    assert_eq!(a.read_state, ReadState::Unread);
    assert_eq!(a.user_action_state, UserActionState::NoInteraction);
    assert_eq!(a.priority, Priority::High);
    assert_eq!(a.platforms, Platforms::ALL);
    assert_eq!(a.expiration, t0() + SignedDuration::from_hours(30 * 24));
    assert_eq!(a.app_notification_id(), "a1");
    assert_eq!(a.target_host_name(), "contoso.com");
    assert_eq!(title(&a), "first");
    assert_eq!(s.get(&f, a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.get(&f, b.id).unwrap(), Some(b.clone()));
    s.reopen();
    assert_eq!(s.get(&f, a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.get(&f, b.id).unwrap(), Some(b.clone()));
    let c = s.add(&f, visual("a3", "third"));
    assert!(c.id != a.id && c.id != b.id, "ids stay fresh after a reopen");
}

/// Every field of a notification survives the store unchanged, including nanosecond times.
pub fn appended_notification_keeps_every_field(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let expiration = t0() + SignedDuration::new(3_600, 123_456_789);
    let mut new = visual("full", "Title ✓").with_group("group-1").expiring_at(expiration);
    new.payload = Payload {
        raw_content: Some("{\"k\":\"raw \\u0000 bytes\"}".into()),
        visual_content: Some(VisualContent { title: "Title ✓".into(), body: Some("Body\nwith lines".into()) }),
    };
    new.platforms = Platforms::of(&[Platform::Ios, Platform::WebPush]);
    new.priority = Some(Priority::Low);
    new.display_time_to_live = Some(60);
    new.fallback_policy = Some(FallbackPolicy {
        fallback_delay_seconds: 90,
        visual_content: VisualContent { title: "fallback".into(), body: None },
    });
    let raw_only = notifeed::NewNotification::raw("contoso.com", "raw", "data only");
    let stored = s.add(&f, new.clone());
    let raw = s.add(&f, raw_only);
    assert_eq!(stored.group_name(), Some("group-1"));
    assert_eq!(stored.payload(), new.payload);
    assert_eq!(stored.platforms, new.platforms);
    assert_eq!(stored.priority, Priority::Low);
    assert_eq!(stored.display_time_to_live, Some(60));
    assert_eq!(stored.expiration, expiration);
    assert_eq!(stored.fallback_policy(), new.fallback_policy.as_ref().map(Into::into));
    assert_eq!(raw.priority, Priority::None, "raw notifications default to priority None");
    assert_eq!(raw.payload().raw_content, Some("data only"));
    for _ in 0..2 {
        assert_eq!(s.get(&f, stored.id).unwrap(), Some(stored.clone()));
        assert_eq!(s.get_by_app_id(&f, "full").unwrap(), Some(stored.clone()));
        assert_eq!(s.get(&f, raw.id).unwrap(), Some(raw.clone()));
        let listed = s.list(&f, &ListQuery::default()).unwrap().items;
        assert_eq!(listed, vec![raw.clone(), stored.clone()]);
        s.reopen();
    }
}

/// A replacement keeps the id and `createdDateTime`, takes the new content (group, expiration,
/// payload), updates `lastModifiedDateTime` and resets both states.
pub fn replaced_notification_keeps_its_id_and_created(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let first = s.add(&f, visual("same", "old").with_group("g1").expiring_at(at(3_600)));
    s.advance_secs(10);
    let update = StateUpdate { read_state: Some(ReadState::Read), user_action_state: Some(UserActionState::Snoozed) };
    s.update_state(&f, first.id, update).unwrap().unwrap();
    s.advance_secs(5);
    let second = s.add(&f, visual("same", "new").with_group("g2").expiring_at(at(7_200)));
    assert_eq!(second.id, first.id);
    assert_eq!(second.created, t0());
    assert_eq!(second.last_modified, at(15));
    assert_eq!(title(&second), "new");
    assert_eq!(second.group_name(), Some("g2"));
    assert_eq!(second.expiration, at(7_200));
    assert_eq!(second.read_state, ReadState::Unread);
    assert_eq!(second.user_action_state, UserActionState::NoInteraction);
    for _ in 0..2 {
        assert_eq!(s.get(&f, first.id).unwrap(), Some(second.clone()));
        assert_eq!(s.get_by_app_id(&f, "same").unwrap(), Some(second.clone()));
        assert_eq!(s.count(&f).unwrap().total, 1);
        let old_group = ListQuery { group: Some("g1".into()), ..ListQuery::default() };
        assert!(s.list(&f, &old_group).unwrap().items.is_empty(), "the old group no longer lists it");
        let new_group = ListQuery { group: Some("g2".into()), ..ListQuery::default() };
        assert_eq!(s.list(&f, &new_group).unwrap().items, vec![second.clone()]);
        s.reopen();
    }
    // The old expiration no longer applies: at 3600 s it is still there.
    s.set_time(at(3_600));
    assert_eq!(s.get(&f, first.id).unwrap().map(|n| n.id), Some(first.id));
}

/// A replacement moves the notification to the top of the list.
pub fn replaced_notification_moves_to_the_top(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    for app in ["a", "b", "c"] {
        s.add(&f, visual(app, app));
        s.advance_secs(1);
    }
    assert_eq!(s.app_ids(&f), ["c", "b", "a"]);
    s.add(&f, visual("a", "again"));
    assert_eq!(s.app_ids(&f), ["a", "c", "b"]);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["a", "c", "b"]);
    s.add(&f, visual("b", "again"));
    assert_eq!(s.app_ids(&f), ["b", "a", "c"]);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["b", "a", "c"]);
}

/// Unknown ids and app ids give `None`.
pub fn get_of_unknown_id_or_app_id_is_none(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    assert_eq!(s.get(&f, NotificationId::new_random()).unwrap(), None);
    assert_eq!(s.get_by_app_id(&f, "nope").unwrap(), None);
    s.add(&f, visual("x", "x"));
    s.reopen();
    assert_eq!(s.get(&f, NotificationId::new_random()).unwrap(), None);
    assert_eq!(s.get_by_app_id(&f, "nope").unwrap(), None);
    assert_eq!(s.get_by_app_id(&f, "X").unwrap(), None, "app ids are case-sensitive");
}

/// `get_by_app_id` returns the current version of the notification with that app id.
pub fn get_by_app_id_finds_the_live_notification(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let x = s.add(&f, visual("x", "one"));
    let y = s.add(&f, visual("y", "two"));
    assert_eq!(s.get_by_app_id(&f, "x").unwrap(), Some(x.clone()));
    assert_eq!(s.get_by_app_id(&f, "y").unwrap(), Some(y.clone()));
    s.advance_secs(2);
    let x2 = s.add(&f, visual("x", "three"));
    s.reopen();
    assert_eq!(s.get_by_app_id(&f, "x").unwrap(), Some(x2));
    assert_eq!(s.get_by_app_id(&f, "y").unwrap(), Some(y));
}

/// `sync` succeeds and everything written before it is there after a reopen.
pub fn sync_succeeds_and_keeps_everything(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "a"));
    s.sync().unwrap();
    let b = s.add(&f, visual("b", "b"));
    s.delete(&f, a.id).unwrap();
    s.sync().unwrap();
    s.reopen();
    assert_eq!(s.get(&f, a.id).unwrap(), None);
    assert_eq!(s.get(&f, b.id).unwrap(), Some(b));
    s.sync().unwrap();
}
