//! `Notification::to_graph_json`: the response shape. camelCase names, canonical enum
//! spellings, `displayTimeToLive` as the remaining whole seconds (never negative), and RFC 3339
//! UTC timestamps. Time is explicit everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::{SignedDuration, Timestamp};
use notifeed::contract::{Limits, parse_new_notification, validate};
use notifeed::model::{
    FallbackPolicy, NewNotification, Notification, NotificationId, Platform, Platforms, Priority, ReadState,
    UserActionState, VisualContent,
};
use serde_json::{Value, json};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn now() -> Timestamp {
    at("2026-01-01T00:00:00Z")
}

fn id() -> NotificationId {
    NotificationId::from_bytes([
        0x11, 0x90, 0x81, 0xf2, 0xf1, 0x9d, 0x4f, 0xa8, 0x81, 0x7c, 0x7e, 0x01, 0x09, 0x2c, 0x0f, 0x7d,
    ])
}

/// `new` stored at `now` with its resolved expiration.
fn stored(new: NewNotification) -> Notification {
    let expiration = validate(&new, &Limits::default(), now()).unwrap();
    Notification::from_new(id(), new, expiration, now())
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn graph_json_uses_camel_case_names() {
    let mut new = NewNotification::visual("contoso.app", "n1", "Hello").with_group("g");
    new.payload.raw_content = Some("r".into());
    new.platforms = Platforms::of(&[Platform::Ios]);
    new.fallback_policy = Some(FallbackPolicy {
        fallback_delay_seconds: 60,
        visual_content: VisualContent { title: "t".into(), body: None },
    });
    let json = stored(new).to_graph_json(now());
    assert_eq!(
        keys(&json),
        [
            "appNotificationId",
            "createdDateTime",
            "displayTimeToLive",
            "expirationDateTime",
            "fallbackPolicy",
            "groupName",
            "id",
            "lastModifiedDateTime",
            "payload",
            "priority",
            "readState",
            "targetHostName",
            "targetPolicy",
            "userActionState",
        ]
    );
    assert_eq!(keys(&json["payload"]), ["rawContent", "visualContent"]);
    assert_eq!(keys(&json["targetPolicy"]), ["platformTypes"]);
    assert_eq!(keys(&json["fallbackPolicy"]), ["endpointFallback"]);
    assert_eq!(
        keys(&json["fallbackPolicy"]["endpointFallback"]),
        ["fallbackDelayInSeconds", "platformTypes", "visualContent"]
    );
    assert_eq!(json["id"], "119081f2-f19d-4fa8-817c-7e01092c0f7d");
    assert_eq!(json["targetHostName"], "contoso.app");
    assert_eq!(json["appNotificationId"], "n1");
    assert_eq!(json["groupName"], "g");
    assert_eq!(
        json["fallbackPolicy"]["endpointFallback"],
        json!({ "platformTypes": ["iOS"], "fallbackDelayInSeconds": 60, "visualContent": { "title": "t" } })
    );
}

#[test]
fn absent_optional_parts_are_null_or_left_out() {
    let json = stored(NewNotification::raw("h", "a", "data")).to_graph_json(now());
    assert_eq!(json["groupName"], Value::Null);
    assert_eq!(json["payload"], json!({ "rawContent": "data" }));
    assert!(json.get("fallbackPolicy").is_none());
    let visual = stored(NewNotification::visual("h", "a", "Hello")).to_graph_json(now());
    assert_eq!(visual["payload"], json!({ "visualContent": { "title": "Hello" } }));
}

#[test]
fn empty_strings_are_printed_as_stored() {
    let mut new = NewNotification::visual("h", "a", "t");
    new.payload.visual_content = Some(VisualContent { title: "t".into(), body: Some(String::new()) });
    new.payload.raw_content = Some(String::new());
    let json = stored(new).to_graph_json(now());
    assert_eq!(json["payload"], json!({ "rawContent": "", "visualContent": { "title": "t", "body": "" } }));
}

#[test]
fn graph_json_prints_canonical_enum_spellings() {
    let body = br#"{"targetHostName":"h","appNotificationId":"a","payload":{"rawContent":"r"},
        "targetPolicy":{"platformTypes":["WEBPUSH","ios","Android","WINDOWS"]},"priority":"low"}"#;
    let new = parse_new_notification(body, &Limits::default(), now()).unwrap();
    let mut notification = stored(new);
    let json = notification.to_graph_json(now());
    assert_eq!(json["targetPolicy"]["platformTypes"], json!(["windows", "iOS", "android", "webPush"]));
    assert_eq!(json["priority"], "Low");
    assert_eq!(json["readState"], "Unread");
    assert_eq!(json["userActionState"], "NoInteraction");

    notification.read_state = ReadState::Read;
    let spellings = [
        (UserActionState::Activated, "Activated"),
        (UserActionState::Dismissed, "Dismissed"),
        (UserActionState::Snoozed, "Snoozed"),
        (UserActionState::NoInteraction, "NoInteraction"),
    ];
    for (state, text) in spellings {
        notification.user_action_state = state;
        let json = notification.to_graph_json(now());
        assert_eq!(json["readState"], "Read");
        assert_eq!(json["userActionState"], text);
    }
}

#[test]
fn default_priority_is_printed() {
    assert_eq!(stored(NewNotification::visual("h", "a", "t")).to_graph_json(now())["priority"], "High");
    assert_eq!(stored(NewNotification::raw("h", "a", "r")).to_graph_json(now())["priority"], "None");
    let mut low = NewNotification::visual("h", "a", "t");
    low.priority = Some(Priority::Low);
    assert_eq!(stored(low).to_graph_json(now())["priority"], "Low");
}

#[test]
fn display_time_to_live_counts_down_from_sixty_to_fifty_nine_after_250_ms() {
    let mut new = NewNotification::visual("h", "a", "t");
    new.display_time_to_live = Some(60);
    let notification = stored(new);
    assert_eq!(notification.to_graph_json(now())["displayTimeToLive"], 60);
    assert_eq!(notification.to_graph_json(now() + SignedDuration::from_millis(250))["displayTimeToLive"], 59);
    assert_eq!(notification.to_graph_json(now() + SignedDuration::from_millis(59_999))["displayTimeToLive"], 0);
}

#[test]
fn display_time_to_live_is_never_negative() {
    let mut new = NewNotification::visual("h", "a", "t").expiring_at(at("2026-01-01T00:10:00Z"));
    new.display_time_to_live = Some(60);
    let notification = stored(new);
    for later in ["2026-01-01T00:01:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z", "2027-01-01T00:00:00Z"] {
        assert_eq!(notification.to_graph_json(at(later))["displayTimeToLive"], 0, "{later}");
    }
}

#[test]
fn display_time_to_live_counts_from_the_last_modification() {
    let mut new = NewNotification::visual("h", "a", "t");
    new.display_time_to_live = Some(60);
    let mut notification = stored(new);
    notification.last_modified = now() + SignedDuration::from_secs(30);
    assert_eq!(notification.to_graph_json(now() + SignedDuration::from_secs(40))["displayTimeToLive"], 50);
}

#[test]
fn display_time_to_live_never_outlasts_the_expiration() {
    let mut new = NewNotification::visual("h", "a", "t").expiring_at(at("2026-01-01T00:00:30Z"));
    new.display_time_to_live = Some(3600);
    assert_eq!(stored(new).to_graph_json(now())["displayTimeToLive"], 30);
}

#[test]
fn display_time_to_live_without_a_value_is_the_time_to_expiration() {
    let notification = stored(NewNotification::visual("h", "a", "t").expiring_at(at("2026-01-02T00:00:00.5Z")));
    assert_eq!(notification.to_graph_json(now())["displayTimeToLive"], 86_400);
    let default = stored(NewNotification::visual("h", "a", "t"));
    assert_eq!(default.to_graph_json(now())["displayTimeToLive"], 30 * 86_400);
}

#[test]
fn expiration_date_time_is_rfc3339_utc_with_the_shortest_exact_fraction() {
    let cases = [
        ("2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("2026-01-02T00:00:00.000Z", "2026-01-02T00:00:00Z"),
        ("2026-01-02T00:00:36.250Z", "2026-01-02T00:00:36.25Z"),
        ("2026-01-02T00:00:00.123456789Z", "2026-01-02T00:00:00.123456789Z"),
        ("2026-01-02T01:00:00+01:00", "2026-01-02T00:00:00Z"),
    ];
    for (posted, printed) in cases {
        let body = format!(
            r#"{{"targetHostName":"h","appNotificationId":"a","payload":{{"rawContent":"r"}},"expirationDateTime":"{posted}"}}"#
        );
        let new = parse_new_notification(body.as_bytes(), &Limits::default(), now()).unwrap();
        assert_eq!(stored(new).to_graph_json(now())["expirationDateTime"], printed, "{posted}");
    }
    let default = stored(NewNotification::raw("h", "a", "r")).to_graph_json(now());
    assert_eq!(default["expirationDateTime"], "2026-01-31T00:00:00Z");
}

#[test]
fn created_and_last_modified_are_rfc3339_utc() {
    let mut notification = stored(NewNotification::raw("h", "a", "r"));
    notification.last_modified = at("2026-01-01T00:00:01.5Z");
    let json = notification.to_graph_json(now());
    assert_eq!(json["createdDateTime"], "2026-01-01T00:00:00Z");
    assert_eq!(json["lastModifiedDateTime"], "2026-01-01T00:00:01.5Z");
}

#[test]
fn seed_example_round_trip_shows_fifty_nine_seconds() {
    let posted_at = at("2026-01-10T12:00:00Z");
    let body = br#"{"targetHostName":"graphnotifications.sample.windows.com","appNotificationId":"testDirectToastNotification",
        "expirationDateTime":"2026-01-30T23:59:00.000Z","payload":{"visualContent":{"title":"Hello World!","body":"Notifications are Great!"}},
        "targetPolicy":{"platformTypes":["windows","ios","android"]},"priority":"High","groupName":"TestGroup","displayTimeToLive":"60"}"#;
    let new = parse_new_notification(body, &Limits::default(), posted_at).unwrap();
    let expiration = validate(&new, &Limits::default(), posted_at).unwrap();
    let notification = Notification::from_new(id(), new, expiration, posted_at);
    let json = notification.to_graph_json(posted_at + SignedDuration::from_millis(250));
    assert_eq!(json["displayTimeToLive"], 59);
    assert_eq!(json["expirationDateTime"], "2026-01-30T23:59:00Z");
    assert_eq!(json["groupName"], "TestGroup");
    assert_eq!(json["id"], "119081f2-f19d-4fa8-817c-7e01092c0f7d");
    assert_eq!(json["priority"], "High");
    assert_eq!(
        json["payload"],
        json!({ "visualContent": { "title": "Hello World!", "body": "Notifications are Great!" } })
    );
    assert_eq!(json["targetPolicy"]["platformTypes"], json!(["windows", "iOS", "android"]));
}
