//! `update_state`.

use notifeed::{ListQuery, NotificationId, ReadState, StateUpdate, UserActionState};

use super::{Fixture, Opener, at, feed, t0, upserts, visual};

/// `update_state` sets the given states, leaves the other one, updates `lastModifiedDateTime`
/// and keeps `createdDateTime`; the result is what `get` returns, before and after a reopen.
pub fn update_state_sets_read_and_action_state(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let n = s.add(&f, visual("a", "t"));
    s.advance_secs(30);
    let read = s
        .update_state(&f, n.id, StateUpdate { read_state: Some(ReadState::Read), user_action_state: None })
        .unwrap()
        .unwrap();
    assert_eq!(read.id, n.id);
    assert_eq!(read.read_state, ReadState::Read);
    assert_eq!(read.user_action_state, UserActionState::NoInteraction);
    assert_eq!(read.created, t0());
    assert_eq!(read.last_modified, at(30));
    assert_eq!(read.payload(), n.payload());
    assert_eq!(read.expiration, n.expiration);
    s.reopen();
    assert_eq!(s.get(&f, n.id).unwrap(), Some(read.clone()));
    s.advance_secs(1);
    let both = s
        .update_state(&f, n.id, StateUpdate { read_state: None, user_action_state: Some(UserActionState::Activated) })
        .unwrap()
        .unwrap();
    assert_eq!(both.read_state, ReadState::Read, "an absent read state is left as it was");
    assert_eq!(both.user_action_state, UserActionState::Activated);
    assert_eq!(both.last_modified, at(31));
    s.reopen();
    assert_eq!(s.get(&f, n.id).unwrap(), Some(both.clone()));
    assert_eq!(s.get_by_app_id(&f, "a").unwrap(), Some(both));
}

/// A state change does not move the notification in the list.
pub fn update_state_keeps_the_position(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    s.add(&f, visual("c", "t"));
    s.update_state(&f, a.id, StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() })
        .unwrap()
        .unwrap();
    assert_eq!(s.app_ids(&f), ["c", "b", "a"]);
    s.reopen();
    assert_eq!(s.app_ids(&f), ["c", "b", "a"]);
    let listed = s.list(&f, &ListQuery::default()).unwrap().items;
    assert_eq!(listed[2].read_state, ReadState::Read);
}

/// An unknown id, or an id of another feed, gives `None` and changes nothing.
pub fn update_state_of_unknown_id_is_none(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let other = s.add(&feed("b"), visual("a", "t"));
    let update = StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() };
    assert_eq!(s.update_state(&f, NotificationId::new_random(), update).unwrap(), None);
    assert_eq!(s.update_state(&f, other.id, update).unwrap(), None);
    s.reopen();
    assert_eq!(s.get(&feed("b"), other.id).unwrap(), Some(other.clone()));
    assert_eq!(s.get(&f, other.id).unwrap(), None);
    assert!(s.changes(&f, None, 10).unwrap().items.is_empty());
}

/// An update that changes no state still updates `lastModifiedDateTime` and shows in `changes`.
pub fn update_state_that_changes_nothing_still_counts_as_a_change(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let n = s.add(&f, visual("a", "t"));
    let token = s.token_now(&f);
    s.advance_secs(5);
    let same = s.update_state(&f, n.id, StateUpdate::default()).unwrap().unwrap();
    assert_eq!(same.last_modified, at(5));
    assert_eq!(same.read_state, n.read_state);
    assert_eq!(same.user_action_state, n.user_action_state);
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(upserts(&changes), vec![same.clone()]);
    assert_eq!(s.get(&f, n.id).unwrap(), Some(same));
}
