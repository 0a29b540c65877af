//! Properties of the contract: what `to_graph_json` prints parses back as the same notification,
//! and no input, however malformed, panics the parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::{SignedDuration, Timestamp};
use notifeed::contract::{ContractErrorKind, Limits, parse_new_notification, validate};
use notifeed::model::{
    FallbackPolicy, NewNotification, Notification, NotificationId, Payload, Platform, Platforms, Priority,
    VisualContent,
};
use proptest::prelude::*;
use serde_json::Value;

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Any text of `min..=max` characters (control characters, NUL and astral planes included),
/// with the shortest allowed text made common.
fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), min..=min).prop_map(String::from_iter),
        4 => prop::collection::vec(any::<char>(), min..=max).prop_map(String::from_iter),
    ]
}

fn visual() -> impl Strategy<Value = VisualContent> {
    (text(1, 40), prop::option::of(text(0, 80))).prop_map(|(title, body)| VisualContent { title, body })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        text(0, 200).prop_map(|raw| Payload { raw_content: Some(raw), visual_content: None }),
        visual().prop_map(|v| Payload { raw_content: None, visual_content: Some(v) }),
        (text(0, 200), visual()).prop_map(|(raw, v)| Payload { raw_content: Some(raw), visual_content: Some(v) }),
    ]
}

fn priority() -> impl Strategy<Value = Option<Priority>> {
    prop::option::of(prop::sample::select(vec![Priority::None, Priority::High, Priority::Low]))
}

/// Any notification the default limits accept at [`now`]. Every string is at most 64
/// characters (256 bytes) where the limit is 256 bytes, and the total stays under 16 KiB.
fn valid_new_notification() -> impl Strategy<Value = NewNotification> {
    let thirty_days_in_nanos = 30 * 86_400 * 1_000_000_000_i64;
    (
        (text(1, 64), text(1, 64), prop::option::of(text(1, 64)), payload()),
        (1_u8..=15, priority(), prop::option::of(1..=i32::MAX as u32)),
        // At least a second ahead: a notification with under a second to live prints a
        // displayTimeToLive of 0, which is not a valid input.
        prop::option::of(1_000_000_000..=thirty_days_in_nanos),
        prop::option::of((60_u32..=600, visual())),
    )
        .prop_map(|((host, app_id, group, payload), (bits, priority, ttl), ahead, fallback)| {
            let mut platforms = Platforms::from_bits(bits);
            if fallback.is_some() {
                platforms = Platforms::from_bits(platforms.bits() | Platforms::of(&[Platform::Ios]).bits());
            }
            NewNotification {
                target_host_name: host,
                app_notification_id: app_id,
                group_name: group,
                payload,
                platforms,
                priority,
                display_time_to_live: ttl,
                expiration: ahead.map(|nanos| now() + SignedDuration::from_nanos(nanos)),
                fallback_policy: fallback
                    .map(|(delay, toast)| FallbackPolicy { fallback_delay_seconds: delay, visual_content: toast }),
            }
        })
}

/// What a client that posts back a notification's JSON asks for: the same notification with the
/// contract's defaults spelled out (priority, expiration) and the display time it has left.
fn spelled_out(new: &NewNotification, expiration: Timestamp) -> NewNotification {
    let to_expiration = expiration.duration_since(now()).as_secs();
    let display = new.display_time_to_live.map_or(to_expiration, |ttl| i64::from(ttl).min(to_expiration));
    NewNotification {
        priority: Some(new.effective_priority()),
        expiration: Some(expiration),
        display_time_to_live: Some(u32::try_from(display).unwrap()),
        ..new.clone()
    }
}

/// The properties only a stored notification has; a post may not carry them.
const STORED_ONLY: [&str; 5] = ["id", "createdDateTime", "lastModifiedDateTime", "readState", "userActionState"];

/// Property names the contract knows, to steer arbitrary JSON into the parser's deeper paths.
const NAMES: [&str; 17] = [
    "targetHostName",
    "appNotificationId",
    "groupName",
    "payload",
    "rawContent",
    "visualContent",
    "title",
    "body",
    "targetPolicy",
    "platformTypes",
    "priority",
    "displayTimeToLive",
    "expirationDateTime",
    "fallbackPolicy",
    "endpointFallback",
    "fallbackDelayInSeconds",
    "@odata.type",
];

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text(0, 12).prop_map(Value::String),
        prop::sample::select(vec![
            "ios",
            "WINDOWS",
            "low",
            "60",
            "-1",
            "2026-01-02T00:00:00Z",
            "2026-01-02T00:00:00",
            "#microsoft.graph.notification",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        let name = prop_oneof![4 => prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned), 1 => text(0, 8)];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name, inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Checks the parser's answer to `body` is well-formed: an accepted body passes `validate`
/// too, and a rejection names at least one problem and has one of the contract's statuses.
fn check_answer(body: &[u8]) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    match parse_new_notification(body, &limits, now()) {
        Ok(new) => prop_assert!(validate(&new, &limits, now()).is_ok()),
        Err(err) => {
            prop_assert!(!err.problems.is_empty());
            prop_assert!(matches!(err.http_status(), 400 | 401 | 413));
            prop_assert!(!err.to_string().is_empty());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn graph_json_parses_back_as_the_same_notification(new in valid_new_notification()) {
        let limits = Limits::default();
        let expiration = validate(&new, &limits, now()).unwrap();
        let notification = Notification::from_new(NotificationId::new_random(), new.clone(), expiration, now());
        let mut json = notification.to_graph_json(now());
        for name in STORED_ONLY {
            prop_assert!(json.as_object_mut().unwrap().remove(name).is_some(), "{name} missing");
        }
        let reparsed = parse_new_notification(json.to_string().as_bytes(), &limits, now());
        prop_assert_eq!(reparsed, Ok(spelled_out(&new, expiration)));
    }

    #[test]
    fn spelled_out_notification_is_stored_the_same(new in valid_new_notification()) {
        let limits = Limits::default();
        let expiration = validate(&new, &limits, now()).unwrap();
        let spelled = spelled_out(&new, expiration);
        prop_assert_eq!(validate(&spelled, &limits, now()), Ok(expiration));
        let id = NotificationId::new_random();
        prop_assert_eq!(
            Notification::from_new(id, spelled, expiration, now()).to_graph_json(now()),
            Notification::from_new(id, new, expiration, now()).to_graph_json(now())
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_answer(&body)?;
    }

    #[test]
    fn arbitrary_json_never_panics_the_parser(body in arbitrary_json()) {
        check_answer(body.to_string().as_bytes())?;
    }

    #[test]
    fn valid_body_with_one_property_replaced_never_panics_the_parser(
        new in valid_new_notification(),
        name in prop::sample::select(NAMES.to_vec()),
        value in arbitrary_json(),
    ) {
        let notification = Notification::from_new(NotificationId::new_random(), new, now() + SignedDuration::from_hours(1), now());
        let mut json = notification.to_graph_json(now());
        for stored in STORED_ONLY {
            json.as_object_mut().unwrap().remove(stored);
        }
        json.as_object_mut().unwrap().insert(name.to_owned(), value);
        check_answer(json.to_string().as_bytes())?;
    }

    #[test]
    fn valid_body_with_bytes_changed_never_panics_the_parser(
        new in valid_new_notification(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0_u8..3), 1..8),
    ) {
        let notification = Notification::from_new(NotificationId::new_random(), new, now() + SignedDuration::from_hours(1), now());
        let mut body = notification.to_graph_json(now()).to_string().into_bytes();
        for (at, byte, how) in edits {
            let i = at.index(body.len().max(1)).min(body.len());
            match how {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => { body.remove(i); }
                _ => body.push(byte),
            }
        }
        check_answer(&body)?;
    }
}

#[test]
fn printed_stored_only_properties_are_refused_in_a_post() {
    // The round trip above strips them; this pins that it has to.
    let notification = Notification::from_new(
        NotificationId::new_random(),
        NewNotification::raw("h", "a", "r"),
        now() + SignedDuration::from_hours(1),
        now(),
    );
    let err =
        parse_new_notification(notification.to_graph_json(now()).to_string().as_bytes(), &Limits::default(), now())
            .unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
}
