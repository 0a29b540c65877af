//! Invalid input: rejected with `StoreError::Invalid`, nothing stored.

use jiff::SignedDuration;
use notifeed::{ContractErrorKind, Counts, FeedKey, NewNotification, Payload, StoreError, StoreOptions};

use super::{Fixture, Opener, at, feed, t0, title, visual};

/// Asserts `new` is rejected as `Invalid` with a problem naming `field`.
fn assert_rejected(s: &Fixture, f: &FeedKey, new: NewNotification, field: &str) {
    match s.append(f, new) {
        Err(StoreError::Invalid(error)) => {
            assert!(error.problems.iter().any(|p| p.field == field), "expected a problem with {field:?}, got {error}");
        }
        other => panic!("expected Invalid naming {field:?}, got {other:?}"),
    }
}

fn assert_feed_empty(s: &Fixture, f: &FeedKey) {
    assert_eq!(s.count(f).unwrap(), Counts::default());
    assert!(s.app_ids(f).is_empty());
    assert!(s.changes(f, None, 10).unwrap().items.is_empty());
}

/// A notification that breaks the contract is `Invalid`, names the field, and stores nothing.
pub fn invalid_notification_is_rejected_and_nothing_is_stored(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    assert_rejected(&s, &f, visual("a", ""), "payload.visualContent.title");
    assert_rejected(&s, &f, visual("", "t"), "appNotificationId");
    assert_rejected(&s, &f, NewNotification::visual("", "a", "t"), "targetHostName");
    assert_rejected(&s, &f, visual(&"x".repeat(257), "t"), "appNotificationId");
    assert_rejected(&s, &f, visual("a", "t").with_group(&"g".repeat(257)), "groupName");
    assert_rejected(&s, &f, visual("a", "t").with_group(""), "groupName");
    let mut no_payload = visual("a", "t");
    no_payload.payload = Payload::default();
    assert_rejected(&s, &f, no_payload, "payload");
    let mut no_platform = visual("a", "t");
    no_platform.platforms = notifeed::Platforms::NONE;
    assert_rejected(&s, &f, no_platform, "targetPolicy.platformTypes");
    let mut zero_ttl = visual("a", "t");
    zero_ttl.display_time_to_live = Some(0);
    assert_rejected(&s, &f, zero_ttl, "displayTimeToLive");
    assert_rejected(&s, &f, NewNotification::raw("contoso.com", "a", &"r".repeat(8 * 1024 + 1)), "payload.rawContent");
    match s.append(&f, NewNotification::raw("contoso.com", "a", &"r".repeat(8 * 1024)).with_group(&"g".repeat(256))) {
        Ok(_) => {}
        Err(e) => panic!("a notification at the limits is accepted: {e}"),
    }
    s.delete_by_app_id(&f, "a").unwrap();
    let mut too_large = visual("a", &"t".repeat(17 * 1024));
    too_large.payload.raw_content = None;
    match s.append(&f, too_large) {
        Err(StoreError::Invalid(error)) => assert_eq!(error.kind, ContractErrorKind::TooLarge),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    s.reopen();
    assert_eq!(s.count(&f).unwrap(), Counts::default());
    assert!(s.app_ids(&f).is_empty());
    let (changes, _) = s.drain_changes(&f, None, 10);
    assert_eq!(changes.len(), 1, "only the removal of the valid one: {changes:?}");
}

/// A rejected replacement leaves the original exactly as it was.
pub fn invalid_replacement_leaves_the_original_untouched(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let original = s.add(&f, visual("a", "original"));
    let token = s.token_now(&f);
    s.advance_secs(1);
    assert_rejected(&s, &f, visual("a", ""), "payload.visualContent.title");
    assert_rejected(&s, &f, visual("a", "t").expiring_at(at(0)), "expirationDateTime");
    for _ in 0..2 {
        assert_eq!(s.get_by_app_id(&f, "a").unwrap(), Some(original.clone()));
        assert_eq!(title(&original), "original");
        assert!(s.changes(&f, Some(token), 10).unwrap().items.is_empty());
        s.reopen();
    }
}

/// An expiration at or before now is rejected.
pub fn expiration_in_the_past_is_rejected(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    s.set_time(at(100));
    assert_rejected(&s, &f, visual("a", "t").expiring_at(at(100)), "expirationDateTime");
    assert_rejected(&s, &f, visual("a", "t").expiring_at(at(99)), "expirationDateTime");
    assert_rejected(&s, &f, visual("a", "t").expiring_at(t0() - SignedDuration::from_hours(48)), "expirationDateTime");
    s.reopen();
    assert_feed_empty(&s, &f);
    let ok = s.add(&f, visual("a", "t").expiring_at(at(100) + SignedDuration::from_nanos(1)));
    assert_eq!(ok.expiration, at(100) + SignedDuration::from_nanos(1));
}

/// An expiration beyond the maximum (30 days by default) is rejected, not clamped.
pub fn expiration_beyond_the_maximum_is_rejected(open: Opener) {
    let mut s = Fixture::start(open);
    let f = feed("a");
    let max = t0() + SignedDuration::from_hours(30 * 24);
    assert_rejected(&s, &f, visual("a", "t").expiring_at(max + SignedDuration::from_nanos(1)), "expirationDateTime");
    s.reopen();
    assert_feed_empty(&s, &f);
    assert_eq!(s.add(&f, visual("a", "t").expiring_at(max)).expiration, max);
}

/// The limits enforced are the store's `options.limits`.
pub fn limits_come_from_the_store_options(open: Opener) {
    let mut options = StoreOptions::default();
    options.limits.max_raw_content_bytes = 16;
    options.limits.max_group_name_bytes = 4;
    options.limits.max_expiration = SignedDuration::from_hours(1);
    let mut s = Fixture::start_with(open, options);
    let f = feed("a");
    assert_rejected(&s, &f, NewNotification::raw("contoso.com", "a", &"r".repeat(17)), "payload.rawContent");
    assert_rejected(&s, &f, visual("a", "t").with_group("12345"), "groupName");
    assert_rejected(&s, &f, visual("a", "t").expiring_at(at(3_601)), "expirationDateTime");
    s.reopen();
    assert_feed_empty(&s, &f);
    s.add(&f, NewNotification::raw("contoso.com", "a", &"r".repeat(16)).with_group("1234"));
    let default_expiration = s.add(&f, visual("b", "t"));
    assert_eq!(default_expiration.expiration, at(3_600), "an absent expiration gets the store's maximum");
    s.reopen();
    assert_eq!(s.count(&f).unwrap().total, 2);
}
