//! `changes`: tokens, paging, removals of every cause, staleness.

use jiff::SignedDuration;
use notifeed::{ChangeToken, ReadState, RemovalReason, StateUpdate, StoreError, StoreOptions, UserActionState};

use super::{Fixture, Opener, Seen, at, feed, seen, upserts, visual};

use RemovalReason::{Deleted, Evicted, Expired, GroupDeleted};

fn read() -> StateUpdate {
    StateUpdate { read_state: Some(ReadState::Read), ..StateUpdate::default() }
}

/// From `None`, every live notification comes once, in the order of its last change, in its
/// current state.
pub fn changes_from_none_returns_every_live_notification_in_sequence_order(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    let c = s.add(&f, visual("c", "t"));
    let a = s.update_state(&f, a.id, read()).unwrap().unwrap();
    for _ in 0..2 {
        let page = s.changes(&f, None, 100).unwrap();
        assert!(!page.more);
        assert_eq!(upserts(&page.items), vec![b.clone(), c.clone(), a.clone()]);
        assert_eq!(page.items.len(), 3);
        s.reopen();
    }
}

/// A token returns only what changed after it: creations, replacements (same id, new content).
pub fn changes_since_a_token_returns_only_later_changes(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    let token = s.token_now(&f);
    s.reopen();
    let c = s.add(&f, visual("c", "t"));
    s.advance_secs(1);
    let a = s.add(&f, visual("a", "replaced"));
    for _ in 0..2 {
        let page = s.changes(&f, Some(token), 100).unwrap();
        assert!(!page.more);
        assert_eq!(upserts(&page.items), vec![c.clone(), a.clone()]);
        assert_eq!(page.items.len(), 2);
        let after = s.changes(&f, Some(page.next), 100).unwrap();
        assert!(after.items.is_empty());
        s.reopen();
    }
}

/// Several changes to one notification after a token show once, in the latest state.
pub fn changes_return_the_current_state_once(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let token = s.token_now(&f);
    let n = s.add(&f, visual("a", "t"));
    s.advance_secs(1);
    s.update_state(&f, n.id, read()).unwrap().unwrap();
    s.advance_secs(1);
    let last = s
        .update_state(&f, n.id, StateUpdate { user_action_state: Some(UserActionState::Dismissed), read_state: None })
        .unwrap()
        .unwrap();
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(token), 100);
    assert_eq!(upserts(&changes), vec![last]);
    assert_eq!(changes.len(), 1);
}

/// With nothing new, a page is empty, says no more, and its token serves the same again.
pub fn changes_with_nothing_new_are_empty(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    let token = s.token_now(&f);
    for _ in 0..2 {
        let page = s.changes(&f, Some(token), 10).unwrap();
        assert!(page.items.is_empty());
        assert!(!page.more);
        let again = s.changes(&f, Some(page.next), 10).unwrap();
        assert!(again.items.is_empty());
        assert!(!again.more);
        s.advance_secs(60);
        s.reopen();
    }
}

/// Paging the changes with a small limit returns every change exactly once, pages full until
/// the last, `more` exactly while changes remain; limit 0 counts as 1.
pub fn changes_pages_have_no_duplicates_and_no_gaps(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let all: Vec<_> = (0..10).map(|i| s.add(&f, visual(&format!("n{i}"), "t")).id).collect();
    for _ in 0..2 {
        for limit in [0, 1, 3, 4, 5, 10, 11] {
            let mut since = None;
            let mut got = Vec::new();
            let mut pages = 0;
            loop {
                let page = s.changes(&f, since, limit).unwrap();
                pages += 1;
                let expected_len = (10 - got.len()).min(limit.max(1));
                assert_eq!(page.items.len(), expected_len, "limit {limit}");
                got.extend(seen(&page.items));
                assert_eq!(page.more, got.len() < 10, "limit {limit}: more while changes remain");
                since = Some(page.next);
                if !page.more {
                    break;
                }
            }
            assert_eq!(got, all.iter().map(|id| Seen::Up(*id)).collect::<Vec<_>>(), "limit {limit}");
            assert_eq!(pages, 10usize.div_ceil(limit.max(1)));
            assert!(s.changes(&f, since, limit).unwrap().items.is_empty());
        }
        s.reopen();
    }
    let token = s.token_now(&f);
    let later: Vec<_> = (10..15).map(|i| s.add(&f, visual(&format!("n{i}"), "t")).id).collect();
    let (changes, _) = s.drain_changes(&f, Some(token), 2);
    assert_eq!(seen(&changes), later.iter().map(|id| Seen::Up(*id)).collect::<Vec<_>>());
}

/// Deletes show as `deleted`, group deletes as `groupDeleted` (oldest position first), in the
/// order they happened, also after a reopen.
pub fn changes_report_deletes_with_their_reason(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    let c = s.add(&f, visual("c", "t").with_group("g"));
    let d = s.add(&f, visual("d", "t").with_group("g"));
    let e = s.add(&f, visual("e", "t").with_group("g"));
    s.add(&f, visual("c", "replaced, now newer than d").with_group("g"));
    let token = s.token_now(&f);
    assert!(s.delete(&f, a.id).unwrap());
    assert!(s.delete_by_app_id(&f, "b").unwrap());
    s.update_state(&f, e.id, read()).unwrap().unwrap();
    assert_eq!(s.delete_group(&f, "g").unwrap(), 3);
    let expected = [Seen::Gone(a.id, Deleted), Seen::Gone(b.id, Deleted)]
        .into_iter()
        .chain([d.id, e.id, c.id].map(|id| Seen::Gone(id, GroupDeleted)))
        .collect::<Vec<_>>();
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, Some(token), 100);
        assert_eq!(seen(&changes), expected);
        let (paged, _) = s.drain_changes(&f, Some(token), 2);
        assert_eq!(seen(&paged), expected, "paging splits no removal");
        s.reopen();
    }
}

/// An eviction shows as `evicted`; a notification created after the token and removed before
/// the read shows only as its removal.
pub fn changes_report_evictions(open: Opener) {
    let mut s = Fixture::start_with(open, StoreOptions { feed_capacity: 2, ..StoreOptions::default() });
    let f = feed("a");
    let token = s.token_now(&f);
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    let c = s.add(&f, visual("c", "t"));
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, Some(token), 100);
        assert_eq!(seen(&changes), [Seen::Up(b.id), Seen::Gone(a.id, Evicted), Seen::Up(c.id)]);
        s.reopen();
    }
}

/// An expiration after the token shows as `expired` at the instant of expiration, before any
/// sweep, and again to the same token after a reopen.
pub fn changes_report_expirations_before_sweep(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t").expiring_at(at(60)));
    let b = s.add(&f, visual("b", "t").expiring_at(at(120)));
    let token = s.token_now(&f);
    s.set_time(at(60) - SignedDuration::from_nanos(1));
    assert!(s.changes(&f, Some(token), 10).unwrap().items.is_empty());
    s.set_time(at(60));
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, Some(token), 10);
        assert_eq!(seen(&changes), [Seen::Gone(a.id, Expired)]);
        s.reopen();
    }
    s.set_time(at(120));
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(a.id, Expired), Seen::Gone(b.id, Expired)]);
}

/// A swept expiration still shows as `expired`, also after a reopen.
pub fn changes_report_expirations_after_sweep(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t").expiring_at(at(60)));
    let b = s.add(&f, visual("b", "t"));
    let token = s.token_now(&f);
    s.set_time(at(61));
    assert_eq!(s.sweep_expired().unwrap().expired, 1);
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, Some(token), 10);
        assert_eq!(seen(&changes), [Seen::Gone(a.id, Expired)]);
        let (from_start, _) = s.drain_changes(&f, None, 10);
        assert_eq!(seen(&from_start), [Seen::Up(b.id)], "from the start, only live notifications");
        s.reopen();
        assert_eq!(s.sweep_expired().unwrap().expired, 0);
    }
}

/// Expirations come first, oldest expiration first, then the sequenced changes.
pub fn changes_report_expirations_first_oldest_first(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let x = s.add(&f, visual("x", "t").expiring_at(at(30)));
    let y = s.add(&f, visual("y", "t").expiring_at(at(20)));
    let z = s.add(&f, visual("z", "t").expiring_at(at(25)));
    let token = s.token_now(&f);
    let w = s.add(&f, visual("w", "t"));
    s.set_time(at(22));
    s.sweep_expired().unwrap();
    s.set_time(at(40));
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, Some(token), 10);
        assert_eq!(
            seen(&changes),
            [Seen::Gone(y.id, Expired), Seen::Gone(z.id, Expired), Seen::Gone(x.id, Expired), Seen::Up(w.id)]
        );
        s.reopen();
    }
}

/// A token that has seen an expiration does not see it again, before or after a sweep and a
/// reopen; an older token still does.
pub fn expiration_is_reported_exactly_once(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t").expiring_at(at(60)));
    let token0 = s.token_now(&f);
    s.set_time(at(60));
    let (changes, token1) = s.drain_changes(&f, Some(token0), 10);
    assert_eq!(seen(&changes), [Seen::Gone(a.id, Expired)]);
    assert!(s.changes(&f, Some(token1), 10).unwrap().items.is_empty());
    s.advance_secs(30);
    s.sweep_expired().unwrap();
    s.reopen();
    assert!(s.changes(&f, Some(token1), 10).unwrap().items.is_empty());
    let (again, _) = s.drain_changes(&f, Some(token0), 10);
    assert_eq!(seen(&again), [Seen::Gone(a.id, Expired)]);
}

/// From `None`, the remembered explicit removals come too, in sequence order; expirations do not.
pub fn changes_from_none_include_remembered_removals(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    let b = s.add(&f, visual("b", "t"));
    s.add(&f, visual("c", "t").expiring_at(at(10)));
    assert!(s.delete(&f, a.id).unwrap());
    s.set_time(at(10));
    for _ in 0..2 {
        let (changes, _) = s.drain_changes(&f, None, 10);
        assert_eq!(seen(&changes), [Seen::Up(b.id), Seen::Gone(a.id, Deleted)]);
        s.reopen();
    }
}

/// A token, as text, survives a reopen and serves exactly what happened after it.
pub fn change_token_survives_reopen(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let a = s.add(&f, visual("a", "t"));
    s.add(&f, visual("b", "t"));
    let text = s.token_now(&f).to_string();
    s.reopen();
    let token: ChangeToken = text.parse().unwrap();
    assert!(s.changes(&f, Some(token), 10).unwrap().items.is_empty());
    let c = s.add(&f, visual("c", "t"));
    s.delete(&f, a.id).unwrap();
    s.reopen();
    let (changes, next) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Up(c.id), Seen::Gone(a.id, Deleted)]);
    s.reopen();
    assert!(s.changes(&f, Some(next), 10).unwrap().items.is_empty());
}

fn small_removal_log() -> StoreOptions {
    StoreOptions { removal_log_capacity: 2, ..StoreOptions::default() }
}

/// When the feed forgets a removal a token has not seen, the token is stale; a fresh start
/// works.
pub fn token_behind_forgotten_removals_is_stale(open: Opener) {
    let mut s = Fixture::start_with(open, small_removal_log());
    let f = feed("a");
    let ids: Vec<_> = (0..4).map(|i| s.add(&f, visual(&format!("n{i}"), "t")).id).collect();
    let token = s.token_now(&f);
    for id in &ids[..3] {
        assert!(s.delete(&f, *id).unwrap());
    }
    for _ in 0..2 {
        assert!(matches!(s.changes(&f, Some(token), 10), Err(StoreError::StaleToken)));
        let (fresh, next) = s.drain_changes(&f, None, 10);
        assert_eq!(
            seen(&fresh),
            [Seen::Up(ids[3]), Seen::Gone(ids[1], Deleted), Seen::Gone(ids[2], Deleted)],
            "the removal log keeps the last two"
        );
        assert!(s.changes(&f, Some(next), 10).unwrap().items.is_empty());
        s.reopen();
    }
}

/// A token that has seen every forgotten removal is served.
pub fn token_within_removal_log_is_served(open: Opener) {
    let mut s = Fixture::start_with(open, small_removal_log());
    let f = feed("a");
    let ids: Vec<_> = (0..4).map(|i| s.add(&f, visual(&format!("n{i}"), "t")).id).collect();
    let token0 = s.token_now(&f);
    s.delete(&f, ids[0]).unwrap();
    let token1 = s.token_now(&f);
    s.delete(&f, ids[1]).unwrap();
    assert_eq!(s.delete_group(&f, "none").unwrap(), 0);
    let (changes, _) = s.drain_changes(&f, Some(token0), 10);
    assert_eq!(seen(&changes), [Seen::Gone(ids[0], Deleted), Seen::Gone(ids[1], Deleted)]);
    s.delete(&f, ids[2]).unwrap();
    for _ in 0..2 {
        assert!(matches!(s.changes(&f, Some(token0), 10), Err(StoreError::StaleToken)));
        let (changes, _) = s.drain_changes(&f, Some(token1), 10);
        assert_eq!(seen(&changes), [Seen::Gone(ids[1], Deleted), Seen::Gone(ids[2], Deleted)]);
        s.reopen();
    }
}

/// A token ahead of the feed (from another store or a lost state) is stale.
pub fn token_ahead_of_the_feed_is_stale(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("a", "t"));
    let token = s.token_now(&f);
    let ahead = ChangeToken { sequence: token.sequence + 1_000_000, ..token };
    for _ in 0..2 {
        assert!(matches!(s.changes(&f, Some(ahead), 10), Err(StoreError::StaleToken)));
        assert!(matches!(s.changes(&feed("empty"), Some(ahead), 10), Err(StoreError::StaleToken)));
        assert!(s.changes(&f, Some(token), 10).unwrap().items.is_empty());
        s.reopen();
    }
}

/// Expirations are remembered for `expiry_log_retention`: within it an old token sees the
/// expiration; once it is forgotten (and swept), a token that had not seen it is stale, while a
/// token that had seen it is still served.
pub fn token_behind_forgotten_expirations_is_stale(open: Opener) {
    let retention = SignedDuration::from_hours(24);
    let mut s = Fixture::start_with(open, StoreOptions { expiry_log_retention: retention, ..StoreOptions::default() });
    let f = feed("a");
    let a = s.add(&f, visual("a", "t").expiring_at(at(60)));
    let b = s.add(&f, visual("b", "t"));
    let before = s.token_now(&f);
    s.set_time(at(61));
    let after = s.token_now(&f);
    s.sweep_expired().unwrap();
    s.set_time(at(60) + retention - SignedDuration::from_secs(1));
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(before), 10);
    assert_eq!(seen(&changes), [Seen::Gone(a.id, Expired)], "still remembered within the retention");
    s.set_time(at(60) + retention + SignedDuration::from_hours(1));
    s.sweep_expired().unwrap();
    for _ in 0..2 {
        assert!(matches!(s.changes(&f, Some(before), 10), Err(StoreError::StaleToken)));
        assert!(s.changes(&f, Some(after), 10).unwrap().items.is_empty(), "this token saw the expiration");
        let (fresh, _) = s.drain_changes(&f, None, 10);
        assert_eq!(seen(&fresh), [Seen::Up(b.id)]);
        s.reopen();
    }
}

/// When expirations alone overflow a page, the page ends after the last expiration of one
/// instant (never splitting an instant), and the next page continues.
pub fn expiration_pages_end_at_a_time_boundary(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let e10: Vec<_> = (0..2).map(|i| s.add(&f, visual(&format!("a{i}"), "t").expiring_at(at(10))).id).collect();
    let e20: Vec<_> = (0..2).map(|i| s.add(&f, visual(&format!("b{i}"), "t").expiring_at(at(20))).id).collect();
    let e30 = s.add(&f, visual("c", "t").expiring_at(at(30))).id;
    let token = s.token_now(&f);
    let w = s.add(&f, visual("w", "t")).id;
    s.set_time(at(40));
    s.reopen();
    let first = s.changes(&f, Some(token), 3).unwrap();
    assert!(first.more);
    let mut got = seen(&first.items);
    assert_eq!(got.len(), 4, "the instant at 20 s is not split: {got:?}");
    got[..2].sort_by_key(|c| format!("{c:?}"));
    got[2..].sort_by_key(|c| format!("{c:?}"));
    let mut want: Vec<_> = e10.iter().chain(&e20).map(|id| Seen::Gone(*id, Expired)).collect();
    want[..2].sort_by_key(|c| format!("{c:?}"));
    want[2..].sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);
    s.reopen();
    let second = s.changes(&f, Some(first.next), 3).unwrap();
    assert!(!second.more);
    assert_eq!(seen(&second.items), [Seen::Gone(e30, Expired), Seen::Up(w)]);
}

/// Swept expirations are remembered across a reopen even when nothing else of the feed (or the
/// store) remains: an old token still sees them, and is not stale.
pub fn swept_expirations_survive_reopen_when_nothing_else_remains(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let short = s.add(&f, visual("short", "t").expiring_at(at(0) + SignedDuration::from_millis(1)));
    let long = s.add(&f, visual("long", "t").expiring_at(at(3_600)));
    let token = s.token_now(&f);
    s.set_time(at(3_600));
    assert_eq!(s.sweep_expired().unwrap().expired, 2);
    for _ in 0..2 {
        s.reopen();
        let (changes, next) = s.drain_changes(&f, Some(token), 10);
        assert_eq!(seen(&changes), [Seen::Gone(short.id, Expired), Seen::Gone(long.id, Expired)]);
        assert!(s.changes(&f, Some(next), 10).unwrap().items.is_empty());
        s.advance_secs(86_400);
        assert_eq!(s.sweep_expired().unwrap().expired, 0);
    }
}

/// The feed's sequence keeps growing after the feed empties (by deletes, or by expiry and a
/// sweep) and the store reopens: a token from before still sees every later change.
pub fn sequence_keeps_growing_after_the_feed_empties_and_reopens(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let x = s.add(&f, visual("x", "t"));
    let y = s.add(&f, visual("y", "t").expiring_at(at(60)));
    let token = s.token_now(&f);
    assert!(s.delete(&f, x.id).unwrap());
    s.set_time(at(60));
    assert_eq!(s.sweep_expired().unwrap().expired, 1);
    s.reopen();
    let z = s.add(&f, visual("z", "t"));
    let (changes, next) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(y.id, Expired), Seen::Gone(x.id, Deleted), Seen::Up(z.id)]);
    assert!(s.delete(&f, z.id).unwrap());
    s.reopen();
    let w = s.add(&f, visual("w", "t"));
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(next), 10);
    assert_eq!(seen(&changes), [Seen::Gone(z.id, Deleted), Seen::Up(w.id)]);
}

/// A replacement's new expiration is the only one: the old instant passes without an
/// expiration, before and after a sweep; the new one is reported once it comes.
pub fn replaced_notification_expires_only_at_its_new_time(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.add(&f, visual("x", "old").expiring_at(at(60)));
    let token = s.token_now(&f);
    let replaced = s.add(&f, visual("x", "new").expiring_at(at(120)));
    s.set_time(at(60));
    assert_eq!(s.sweep_expired().unwrap().expired, 0);
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Up(replaced.id)]);
    assert_eq!(s.get(&f, replaced.id).unwrap(), Some(replaced.clone()));
    s.set_time(at(120));
    s.reopen();
    let (changes, _) = s.drain_changes(&f, Some(token), 10);
    assert_eq!(seen(&changes), [Seen::Gone(replaced.id, Expired)]);
    assert_eq!(s.sweep_expired().unwrap().expired, 1);
}
