//! The validation rules of the Graph JSON contract (issue 2, section 2): required fields,
//! length limits, payload, platforms, priority, `displayTimeToLive`, expiration, fallback policy,
//! the HTTP status of each error kind, and how problems are collected. Every test uses an
//! explicit `now`; none reads the system clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::{SignedDuration, Timestamp};
use notifeed::contract::{ContractError, ContractErrorKind, Limits, parse_new_notification, validate};
use notifeed::model::{FallbackPolicy, NewNotification, Platform, Platforms, Priority, VisualContent};
use serde_json::{Value, json};

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// The smallest valid body: a visual notification.
fn base() -> Value {
    json!({
        "targetHostName": "contoso.app",
        "appNotificationId": "n1",
        "payload": { "visualContent": { "title": "Hello" } }
    })
}

/// `body` with the property at dotted `path` set to `value` (objects created on the way).
fn with(mut body: Value, path: &str, value: Value) -> Value {
    let mut node = &mut body;
    let segments: Vec<&str> = path.split('.').collect();
    for segment in &segments[..segments.len() - 1] {
        node = node.as_object_mut().unwrap().entry(*segment).or_insert_with(|| json!({}));
    }
    node.as_object_mut().unwrap().insert(segments[segments.len() - 1].to_owned(), value);
    body
}

/// `body` without the property at dotted `path`.
fn without(mut body: Value, path: &str) -> Value {
    let (parent, last) = path.rsplit_once('.').map_or(("", path), |(p, l)| (p, l));
    let pointer = if parent.is_empty() { String::new() } else { format!("/{}", parent.replace('.', "/")) };
    body.pointer_mut(&pointer).unwrap().as_object_mut().unwrap().remove(last);
    body
}

fn parse_with(body: &Value, limits: &Limits) -> Result<NewNotification, ContractError> {
    parse_new_notification(body.to_string().as_bytes(), limits, now())
}

fn parse(body: &Value) -> Result<NewNotification, ContractError> {
    parse_with(body, &Limits::default())
}

fn error(body: &Value) -> ContractError {
    parse(body).expect_err("the body should be rejected")
}

/// Asserts `err` has a problem on exactly `field` whose message contains `fragment`, and that
/// its display names the field.
fn assert_problem(err: &ContractError, field: &str, fragment: &str) {
    assert!(
        err.problems.iter().any(|p| p.field == field && p.message.contains(fragment)),
        "expected a problem `{field} …{fragment}…`, got: {err}"
    );
    assert!(err.to_string().contains(field), "the message should name {field}: {err}");
}

fn kb(n: usize) -> usize {
    n * 1024
}

// ---------------------------------------------------------------------------------------------
// Required fields
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_visual_notification_is_accepted() {
    let new = parse(&base()).unwrap();
    assert_eq!(new.target_host_name, "contoso.app");
    assert_eq!(new.app_notification_id, "n1");
    assert_eq!(new.payload.visual_content, Some(VisualContent { title: "Hello".into(), body: None }));
    assert_eq!(new.payload.raw_content, None);
}

#[test]
fn target_host_name_is_required() {
    let err = error(&without(base(), "targetHostName"));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.http_status(), 400);
    assert_eq!(err.to_string(), "targetHostName is required");
}

#[test]
fn target_host_name_must_not_be_empty() {
    let err = error(&with(base(), "targetHostName", json!("")));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "targetHostName", "must not be empty");
}

#[test]
fn app_notification_id_is_required() {
    let err = error(&without(base(), "appNotificationId"));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.to_string(), "appNotificationId is required");
}

#[test]
fn app_notification_id_must_not_be_empty() {
    let err = error(&with(base(), "appNotificationId", json!("")));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "appNotificationId", "must not be empty");
}

#[test]
fn payload_is_required() {
    let err = error(&without(base(), "payload"));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.to_string(), "payload is required");
}

#[test]
fn title_is_required_in_visual_content() {
    let err = error(&with(base(), "payload.visualContent", json!({ "body": "no title" })));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("payload.visualContent.title is required"), "{err}");
}

#[test]
fn empty_title_counts_as_missing() {
    let err = error(&with(base(), "payload.visualContent.title", json!("")));
    assert!(err.to_string().contains("payload.visualContent.title is required"), "{err}");
}

#[test]
fn null_required_field_counts_as_missing() {
    for field in ["targetHostName", "appNotificationId", "payload"] {
        let err = error(&with(base(), field, Value::Null));
        assert_eq!(err.kind, ContractErrorKind::ContractMismatch, "{field}");
        assert_problem(&err, field, "is required");
    }
    let err = error(&with(base(), "payload.visualContent.title", Value::Null));
    assert_problem(&err, "payload.visualContent.title", "is required");
}

#[test]
fn body_of_visual_content_is_optional_and_kept() {
    let new = parse(&with(base(), "payload.visualContent.body", json!("World"))).unwrap();
    assert_eq!(new.payload.visual_content.unwrap().body.as_deref(), Some("World"));
}

// ---------------------------------------------------------------------------------------------
// Length limits
// ---------------------------------------------------------------------------------------------

#[test]
fn default_limits_are_sixteen_kib_eight_kib_256_bytes_and_thirty_days() {
    let limits = Limits::default();
    assert_eq!(limits.max_notification_bytes, 16 * 1024);
    assert_eq!(limits.max_raw_content_bytes, 8 * 1024);
    assert_eq!(limits.max_app_notification_id_bytes, 256);
    assert_eq!(limits.max_group_name_bytes, 256);
    assert_eq!(limits.max_target_host_name_bytes, 256);
    assert_eq!(limits.max_expiration, SignedDuration::from_hours(30 * 24));
}

#[test]
fn app_notification_id_of_256_bytes_is_accepted_and_257_rejected() {
    assert!(parse(&with(base(), "appNotificationId", json!("a".repeat(256)))).is_ok());
    let err = error(&with(base(), "appNotificationId", json!("a".repeat(257))));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "appNotificationId", "at most 256 bytes");
}

#[test]
fn group_name_of_256_bytes_is_accepted_and_257_rejected() {
    let new = parse(&with(base(), "groupName", json!("g".repeat(256)))).unwrap();
    assert_eq!(new.group_name.unwrap().len(), 256);
    let err = error(&with(base(), "groupName", json!("g".repeat(257))));
    assert_problem(&err, "groupName", "at most 256 bytes");
}

#[test]
fn group_name_must_not_be_empty_when_present() {
    let err = error(&with(base(), "groupName", json!("")));
    assert_problem(&err, "groupName", "must not be empty");
}

#[test]
fn target_host_name_of_256_bytes_is_accepted_and_257_rejected() {
    assert!(parse(&with(base(), "targetHostName", json!("h".repeat(256)))).is_ok());
    let err = error(&with(base(), "targetHostName", json!("h".repeat(257))));
    assert_problem(&err, "targetHostName", "at most 256 bytes");
}

#[test]
fn length_limits_count_bytes_not_characters() {
    // 'é' is two bytes in UTF-8: 128 of them are 256 bytes, 129 are 258.
    assert!(parse(&with(base(), "groupName", json!("é".repeat(128)))).is_ok());
    let err = error(&with(base(), "groupName", json!("é".repeat(129))));
    assert_problem(&err, "groupName", "at most 256 bytes");
}

#[test]
fn raw_content_of_eight_kib_is_accepted_and_one_byte_more_rejected() {
    let raw = |n: usize| with(base(), "payload", json!({ "rawContent": "r".repeat(n) }));
    assert!(parse(&raw(kb(8))).is_ok());
    let err = error(&raw(kb(8) + 1));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_eq!(err.http_status(), 400);
    assert_problem(&err, "payload.rawContent", "at most 8192 bytes");
}

#[test]
fn notification_of_sixteen_kib_is_accepted_and_one_byte_more_is_413() {
    // Everything but the title: "contoso.app" (11) + "n1" (2) + body.
    let body_bytes = kb(16) - 13 - 5;
    let sized = |title: usize| {
        with(base(), "payload.visualContent", json!({ "title": "t".repeat(title), "body": "b".repeat(body_bytes) }))
    };
    assert!(parse(&sized(5)).is_ok());
    let err = error(&sized(6));
    assert_eq!(err.kind, ContractErrorKind::TooLarge);
    assert_eq!(err.http_status(), 413);
    assert_eq!(err.code(), "payloadTooLarge");
    assert!(err.to_string().contains("at most 16384"), "{err}");
}

#[test]
fn fallback_toast_counts_toward_the_size_limit() {
    let body = with(
        base(),
        "fallbackPolicy.endpointFallback",
        json!({ "platformTypes": ["iOS"], "fallbackDelayInSeconds": 60, "visualContent": { "title": "f".repeat(kb(16)) } }),
    );
    assert_eq!(error(&body).kind, ContractErrorKind::TooLarge);
}

#[test]
fn limits_are_configurable() {
    let tight = Limits {
        max_notification_bytes: 1024,
        max_raw_content_bytes: 10,
        max_app_notification_id_bytes: 4,
        max_group_name_bytes: 3,
        max_target_host_name_bytes: 5,
        max_expiration: SignedDuration::from_hours(1),
    };
    let body = json!({
        "targetHostName": "hostname",
        "appNotificationId": "12345",
        "groupName": "four",
        "payload": { "rawContent": "eleven byte", "visualContent": { "title": "t".repeat(1100) } },
        "expirationDateTime": "2026-01-01T01:00:01Z",
    });
    let err = parse_with(&body, &tight).unwrap_err();
    assert_problem(&err, "targetHostName", "at most 5 bytes");
    assert_problem(&err, "appNotificationId", "at most 4 bytes");
    assert_problem(&err, "groupName", "at most 3 bytes");
    assert_problem(&err, "payload.rawContent", "at most 10 bytes");
    assert!(err.problems.iter().any(|p| p.field == "expirationDateTime"), "{err}");
    assert!(err.problems.iter().any(|p| p.message.contains("at most 1024")), "{err}");

    // And looser limits accept what the defaults refuse.
    let loose = Limits { max_notification_bytes: kb(64), max_raw_content_bytes: kb(32), ..Limits::default() };
    let big_raw = with(base(), "payload", json!({ "rawContent": "r".repeat(kb(20)) }));
    assert!(parse(&big_raw).is_err());
    assert!(parse_with(&big_raw, &loose).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Payload: raw and/or visual, at least one valid
// ---------------------------------------------------------------------------------------------

#[test]
fn payload_without_raw_or_visual_content_is_invalid_payload() {
    for payload in [json!({}), json!({ "rawContent": null, "visualContent": null })] {
        let err = error(&with(base(), "payload", payload));
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
        assert_eq!(err.code(), "invalidPayload");
        assert_problem(&err, "payload", "is invalid: it needs rawContent or visualContent");
    }
}

#[test]
fn raw_only_payload_is_accepted() {
    let new = parse(&with(base(), "payload", json!({ "rawContent": "{\"k\":1}" }))).unwrap();
    assert_eq!(new.payload.raw_content.as_deref(), Some("{\"k\":1}"));
    assert_eq!(new.payload.visual_content, None);
}

#[test]
fn raw_and_visual_content_are_both_kept() {
    let new = parse(&with(base(), "payload.rawContent", json!("data"))).unwrap();
    assert_eq!(new.payload.raw_content.as_deref(), Some("data"));
    assert_eq!(new.payload.visual_content.unwrap().title, "Hello");
}

#[test]
fn invalid_visual_content_is_reported_even_beside_valid_raw_content() {
    let err = error(&with(base(), "payload", json!({ "rawContent": "data", "visualContent": {} })));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "payload.visualContent.title", "is required");
}

#[test]
fn payload_whose_parts_are_all_invalid_is_an_invalid_payload() {
    let err =
        error(&with(base(), "payload", json!({ "rawContent": "r".repeat(kb(9)), "visualContent": { "title": "" } })));
    assert_problem(&err, "payload", "neither rawContent nor visualContent is valid");
    assert_problem(&err, "payload.rawContent", "at most");
    assert_problem(&err, "payload.visualContent.title", "is required");
}

// ---------------------------------------------------------------------------------------------
// Platforms
// ---------------------------------------------------------------------------------------------

#[test]
fn platform_types_accept_any_case_and_print_canonical() {
    let body = with(base(), "targetPolicy.platformTypes", json!(["IOS", "Windows", "webpush"]));
    let new = parse(&body).unwrap();
    assert_eq!(new.platforms, Platforms::of(&[Platform::Ios, Platform::Windows, Platform::WebPush]));
    let printed: Vec<&str> = new.platforms.iter().map(Platform::as_str).collect();
    assert_eq!(printed, ["windows", "iOS", "webPush"]);
    let android = parse(&with(base(), "targetPolicy.platformTypes", json!(["aNdRoId"]))).unwrap();
    assert_eq!(android.platforms, Platforms::of(&[Platform::Android]));
}

#[test]
fn platform_types_default_to_all_four() {
    let absent = parse(&base()).unwrap();
    let empty_policy = parse(&with(base(), "targetPolicy", json!({}))).unwrap();
    let null_policy = parse(&with(base(), "targetPolicy", Value::Null)).unwrap();
    let null_list = parse(&with(base(), "targetPolicy.platformTypes", Value::Null)).unwrap();
    for new in [absent, empty_policy, null_policy, null_list] {
        assert_eq!(new.platforms, Platforms::ALL);
        assert_eq!(new.platforms.iter().count(), 4);
    }
}

#[test]
fn repeated_platform_is_counted_once() {
    let new = parse(&with(base(), "targetPolicy.platformTypes", json!(["ios", "iOS", "IOS"]))).unwrap();
    assert_eq!(new.platforms, Platforms::of(&[Platform::Ios]));
}

#[test]
fn unknown_platform_is_rejected_naming_its_position() {
    let err = error(&with(base(), "targetPolicy.platformTypes", json!(["ios", "linux"])));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "targetPolicy.platformTypes[1]", "linux");
}

#[test]
fn empty_platform_list_is_rejected() {
    let err = error(&with(base(), "targetPolicy.platformTypes", json!([])));
    assert_problem(&err, "targetPolicy.platformTypes", "at least one platform");
}

// ---------------------------------------------------------------------------------------------
// Priority
// ---------------------------------------------------------------------------------------------

#[test]
fn priority_accepts_any_case() {
    for (text, expected) in
        [("high", Priority::High), ("LOW", Priority::Low), ("None", Priority::None), ("nOnE", Priority::None)]
    {
        let new = parse(&with(base(), "priority", json!(text))).unwrap();
        assert_eq!(new.priority, Some(expected), "{text}");
        assert_eq!(new.effective_priority(), expected, "{text}");
    }
}

#[test]
fn priority_defaults_to_high_for_visual_and_none_for_raw() {
    let visual = parse(&base()).unwrap();
    assert_eq!(visual.priority, None);
    assert_eq!(visual.effective_priority(), Priority::High);
    let raw = parse(&with(base(), "payload", json!({ "rawContent": "r" }))).unwrap();
    assert_eq!(raw.effective_priority(), Priority::None);
    let both = parse(&with(base(), "payload.rawContent", json!("r"))).unwrap();
    assert_eq!(both.effective_priority(), Priority::High);
    let explicit_null = parse(&with(base(), "priority", Value::Null)).unwrap();
    assert_eq!(explicit_null.effective_priority(), Priority::High);
}

#[test]
fn unknown_priority_is_rejected() {
    let err = error(&with(base(), "priority", json!("Urgent")));
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "priority", "Urgent");
}

// ---------------------------------------------------------------------------------------------
// displayTimeToLive
// ---------------------------------------------------------------------------------------------

#[test]
fn display_time_to_live_accepts_number() {
    assert_eq!(parse(&with(base(), "displayTimeToLive", json!(60))).unwrap().display_time_to_live, Some(60));
}

#[test]
fn display_time_to_live_accepts_numeric_string() {
    assert_eq!(parse(&with(base(), "displayTimeToLive", json!("60"))).unwrap().display_time_to_live, Some(60));
}

#[test]
fn display_time_to_live_is_optional() {
    assert_eq!(parse(&base()).unwrap().display_time_to_live, None);
    assert_eq!(parse(&with(base(), "displayTimeToLive", Value::Null)).unwrap().display_time_to_live, None);
}

#[test]
fn display_time_to_live_accepts_the_positive_int32_bounds() {
    for value in [json!(1), json!("1"), json!(2_147_483_647), json!("2147483647")] {
        let new = parse(&with(base(), "displayTimeToLive", value.clone())).unwrap();
        assert!(new.display_time_to_live.is_some(), "{value}");
    }
    assert_eq!(
        parse(&with(base(), "displayTimeToLive", json!(2_147_483_647))).unwrap().display_time_to_live,
        Some(2_147_483_647)
    );
}

#[test]
fn display_time_to_live_must_be_a_positive_int32() {
    let bad = [
        json!(0),
        json!("0"),
        json!(-1),
        json!("-60"),
        json!(2_147_483_648_u64),
        json!("2147483648"),
        json!(u64::MAX),
        json!(1.5),
        json!("1.5"),
        json!(1e3),
        json!("abc"),
        json!(""),
    ];
    for value in bad {
        let err = error(&with(base(), "displayTimeToLive", value.clone()));
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload, "{value}");
        assert_problem(&err, "displayTimeToLive", "positive whole number");
    }
}

#[test]
fn display_time_to_live_of_the_wrong_json_type_is_a_contract_mismatch() {
    for value in [json!(true), json!([60]), json!({ "seconds": 60 })] {
        let err = error(&with(base(), "displayTimeToLive", value.clone()));
        assert_eq!(err.kind, ContractErrorKind::ContractMismatch, "{value}");
        assert_problem(&err, "displayTimeToLive", "whole number of seconds");
    }
}

#[test]
fn validate_rejects_display_time_to_live_outside_positive_int32() {
    for ttl in [0, 2_147_483_648, u32::MAX] {
        let new = NewNotification { display_time_to_live: Some(ttl), ..NewNotification::visual("h", "a", "t") };
        let err = validate(&new, &Limits::default(), now()).unwrap_err();
        assert_problem(&err, "displayTimeToLive", "positive");
    }
    let ok = NewNotification { display_time_to_live: Some(2_147_483_647), ..NewNotification::visual("h", "a", "t") };
    assert!(validate(&ok, &Limits::default(), now()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// expirationDateTime
// ---------------------------------------------------------------------------------------------

fn expiring(text: &str) -> Result<NewNotification, ContractError> {
    parse(&with(base(), "expirationDateTime", json!(text)))
}

#[test]
fn expiration_accepts_zero_to_nine_fractional_digits() {
    let start: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    for digits in 0..=9_u32 {
        let fraction = &"123456789"[..digits as usize];
        let text =
            if digits == 0 { "2026-01-02T00:00:00Z".to_owned() } else { format!("2026-01-02T00:00:00.{fraction}Z") };
        // ".1" is 100 ms, ".12" is 120 ms, …, ".123456789" is 123456789 ns.
        let nanos = if digits == 0 { 0 } else { fraction.parse::<i64>().unwrap() * 10_i64.pow(9 - digits) };
        assert_eq!(expiring(&text).unwrap().expiration, Some(start + SignedDuration::from_nanos(nanos)), "{text}");
    }
    // .NET's seven digits, as Graph's own clients send them.
    assert_eq!(expiring("2026-01-02T00:00:00.0000000Z").unwrap().expiration, Some(start));
}

#[test]
fn expiration_accepts_any_number_of_fractional_digits_truncated_to_nanoseconds() {
    let expected: Timestamp = "2026-01-02T00:00:00.123456789Z".parse().unwrap();
    assert_eq!(expiring("2026-01-02T00:00:00.1234567891Z").unwrap().expiration, Some(expected));
    assert_eq!(expiring("2026-01-02T00:00:00.12345678999999999999Z").unwrap().expiration, Some(expected));
    let err = expiring("2026-01-02T00:00:00.Z").unwrap_err();
    assert_problem(&err, "expirationDateTime", "RFC 3339");
}

#[test]
fn expiration_accepts_offsets_and_means_the_same_instant_in_utc() {
    let utc: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    assert_eq!(expiring("2026-01-02T01:30:00+01:30").unwrap().expiration, Some(utc));
    assert_eq!(expiring("2026-01-01T19:00:00-05:00").unwrap().expiration, Some(utc));
    assert_eq!(expiring("2026-01-02T00:00:00+00:00").unwrap().expiration, Some(utc));
    assert_eq!(expiring("2026-01-02t00:00:00z").unwrap().expiration, Some(utc));
}

#[test]
fn expiration_without_offset_is_rejected() {
    for text in ["2026-01-02T00:00:00", "2026-01-02T00:00:00.5", "2026-01-02"] {
        let err = expiring(text).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload, "{text}");
        assert_problem(&err, "expirationDateTime", "with offset");
    }
}

#[test]
fn expiration_that_is_not_a_date_is_rejected() {
    for text in ["tomorrow", "", "2026-13-01T00:00:00Z", "2026-01-02T24:00:01Z", "1767312000"] {
        let err = expiring(text).unwrap_err();
        assert_problem(&err, "expirationDateTime", "is not an RFC 3339 date-time");
    }
}

#[test]
fn expiration_that_is_not_a_string_is_a_contract_mismatch() {
    let err = error(&with(base(), "expirationDateTime", json!(1_767_312_000)));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_problem(&err, "expirationDateTime", "expected a string");
}

#[test]
fn expiration_must_be_strictly_in_the_future() {
    for text in ["2026-01-01T00:00:00Z", "2025-12-31T23:59:59.999999999Z", "2019-10-30T23:59:00.000Z"] {
        let err = expiring(text).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload, "{text}");
        assert_problem(&err, "expirationDateTime", "must be in the future");
    }
    let next: Timestamp = "2026-01-01T00:00:00.000000001Z".parse().unwrap();
    assert_eq!(expiring("2026-01-01T00:00:00.000000001Z").unwrap().expiration, Some(next));
}

#[test]
fn expiration_beyond_thirty_days_is_rejected_not_clamped() {
    let latest = now() + SignedDuration::from_hours(30 * 24);
    assert_eq!(latest.to_string(), "2026-01-31T00:00:00Z");
    let at_max = expiring("2026-01-31T00:00:00Z").unwrap();
    assert_eq!(at_max.expiration, Some(latest));
    assert_eq!(validate(&at_max, &Limits::default(), now()), Ok(latest));

    let err = expiring("2026-01-31T00:00:00.000000001Z").unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_problem(&err, "expirationDateTime", "at most 30 days ahead");
    let far = NewNotification::visual("h", "a", "t").expiring_at("2027-01-01T00:00:00Z".parse().unwrap());
    assert!(validate(&far, &Limits::default(), now()).is_err());
}

#[test]
fn absent_expiration_defaults_to_the_maximum() {
    let new = parse(&base()).unwrap();
    assert_eq!(new.expiration, None);
    assert_eq!(validate(&new, &Limits::default(), now()), Ok(now() + SignedDuration::from_hours(720)));
    let null = parse(&with(base(), "expirationDateTime", Value::Null)).unwrap();
    assert_eq!(null.expiration, None);
    let hour = Limits { max_expiration: SignedDuration::from_hours(1), ..Limits::default() };
    assert_eq!(validate(&new, &hour, now()), Ok(now() + SignedDuration::from_hours(1)));
}

#[test]
fn maximum_expiration_is_configurable() {
    let hour = Limits { max_expiration: SignedDuration::from_hours(1), ..Limits::default() };
    let body = |text: &str| with(base(), "expirationDateTime", json!(text));
    assert!(parse_with(&body("2026-01-01T01:00:00Z"), &hour).is_ok());
    let err = parse_with(&body("2026-01-01T01:00:01Z"), &hour).unwrap_err();
    assert_problem(&err, "expirationDateTime", "latest allowed: 2026-01-01T01:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// fallbackPolicy
// ---------------------------------------------------------------------------------------------

fn fallback(endpoint: Value) -> Value {
    with(with(base(), "payload", json!({ "rawContent": "r" })), "fallbackPolicy.endpointFallback", endpoint)
}

fn endpoint() -> Value {
    json!({ "platformTypes": ["iOS"], "fallbackDelayInSeconds": 120, "visualContent": { "title": "Open me", "body": "b" } })
}

#[test]
fn fallback_policy_is_parsed() {
    let new = parse(&fallback(endpoint())).unwrap();
    assert_eq!(
        new.fallback_policy,
        Some(FallbackPolicy {
            fallback_delay_seconds: 120,
            visual_content: VisualContent { title: "Open me".into(), body: Some("b".into()) }
        })
    );
}

#[test]
fn fallback_platform_types_accept_ios_in_any_case() {
    assert!(parse(&fallback(with(endpoint(), "platformTypes", json!(["ios"])))).is_ok());
    assert!(parse(&fallback(with(endpoint(), "platformTypes", json!(["IOS"])))).is_ok());
}

#[test]
fn fallback_delay_accepts_sixty_to_six_hundred_seconds() {
    for delay in [json!(60), json!(600), json!("300")] {
        assert!(parse(&fallback(with(endpoint(), "fallbackDelayInSeconds", delay.clone()))).is_ok(), "{delay}");
    }
}

#[test]
fn fallback_delay_outside_sixty_to_six_hundred_is_rejected() {
    let field = "fallbackPolicy.endpointFallback.fallbackDelayInSeconds";
    for delay in [json!(59), json!(601), json!(0), json!(-60), json!(4_294_967_356_i64)] {
        let err = error(&fallback(with(endpoint(), "fallbackDelayInSeconds", delay.clone())));
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload, "{delay}");
        assert_problem(&err, field, "between 60 and 600");
    }
    for delay in [json!(60.5), json!("soon")] {
        let err = error(&fallback(with(endpoint(), "fallbackDelayInSeconds", delay.clone())));
        assert_problem(&err, field, "whole number");
    }
    let err = error(&fallback(without(endpoint(), "fallbackDelayInSeconds")));
    assert_problem(&err, field, "is required");
}

#[test]
fn fallback_is_ios_only() {
    let field = "fallbackPolicy.endpointFallback.platformTypes";
    for platforms in [json!(["android"]), json!(["iOS", "windows"]), json!([])] {
        let err = error(&fallback(with(endpoint(), "platformTypes", platforms.clone())));
        assert_eq!(err.kind, ContractErrorKind::InvalidPayload, "{platforms}");
        assert_problem(&err, field, "only iOS");
    }
    let err = error(&fallback(with(endpoint(), "platformTypes", json!(["symbian"]))));
    assert_problem(&err, &format!("{field}[0]"), "symbian");
    let err = error(&fallback(without(endpoint(), "platformTypes")));
    assert_problem(&err, field, "is required");
}

#[test]
fn fallback_visual_content_is_required() {
    let err = error(&fallback(without(endpoint(), "visualContent")));
    assert_problem(&err, "fallbackPolicy.endpointFallback.visualContent", "is required");
    let err = error(&fallback(with(endpoint(), "visualContent", json!({ "body": "b" }))));
    assert_problem(&err, "fallbackPolicy.endpointFallback.visualContent.title", "is required");
    let err = error(&fallback(with(endpoint(), "visualContent", json!({ "title": "" }))));
    assert_problem(&err, "fallbackPolicy.endpointFallback.visualContent.title", "must not be empty");
}

#[test]
fn fallback_policy_needs_its_endpoint_fallback() {
    let err = error(&with(base(), "fallbackPolicy", json!({})));
    assert_problem(&err, "fallbackPolicy.endpointFallback", "is required");
    assert!(parse(&with(base(), "fallbackPolicy", Value::Null)).unwrap().fallback_policy.is_none());
}

#[test]
fn fallback_requires_the_target_policy_to_include_ios() {
    let body = with(fallback(endpoint()), "targetPolicy.platformTypes", json!(["windows", "android"]));
    let err = error(&body);
    assert_problem(&err, "targetPolicy.platformTypes", "must include iOS");
    let with_ios = with(fallback(endpoint()), "targetPolicy.platformTypes", json!(["windows", "ios"]));
    assert!(parse(&with_ios).is_ok());
}

#[test]
fn validate_checks_a_fallback_policy_built_in_rust() {
    let toast = VisualContent { title: "t".into(), body: None };
    let mut new = NewNotification::raw("h", "a", "r");
    new.fallback_policy = Some(FallbackPolicy { fallback_delay_seconds: 30, visual_content: toast.clone() });
    assert_problem(
        &validate(&new, &Limits::default(), now()).unwrap_err(),
        "fallbackPolicy.endpointFallback.fallbackDelayInSeconds",
        "between 60 and 600",
    );
    new.fallback_policy = Some(FallbackPolicy { fallback_delay_seconds: 60, visual_content: toast });
    assert!(validate(&new, &Limits::default(), now()).is_ok());
    new.platforms = Platforms::of(&[Platform::Android]);
    assert_problem(
        &validate(&new, &Limits::default(), now()).unwrap_err(),
        "targetPolicy.platformTypes",
        "must include iOS",
    );
}

// ---------------------------------------------------------------------------------------------
// Error kinds, statuses, and collecting problems
// ---------------------------------------------------------------------------------------------

#[test]
fn every_error_kind_has_its_http_status_and_code() {
    let limits = Limits::default();
    let cases: [(&[u8], ContractErrorKind, u16, &str); 6] = [
        (b"{", ContractErrorKind::NotJson, 400, "invalidRequest"),
        (b"[]", ContractErrorKind::BodyIsArray, 400, "invalidRequest"),
        (br#"{"unknown": 1}"#, ContractErrorKind::ContractMismatch, 400, "invalidRequest"),
        (
            br#"{"targetHostName":"h","appNotificationId":"a","payload":{}}"#,
            ContractErrorKind::InvalidPayload,
            400,
            "invalidPayload",
        ),
        (br##"{"@odata.type":"#microsoft.graph.user"}"##, ContractErrorKind::InvalidDataType, 401, "invalidDataType"),
        (&[], ContractErrorKind::NotJson, 400, "invalidRequest"),
    ];
    for (body, kind, status, code) in cases {
        let err = parse_new_notification(body, &limits, now()).unwrap_err();
        assert_eq!(
            (err.kind, err.http_status(), err.code()),
            (kind, status, code),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(!err.problems.is_empty());
    }
    let too_large = NewNotification::raw("h", "a", "").with_group("g");
    let mut too_large = too_large;
    too_large.payload.visual_content = Some(VisualContent { title: "t".repeat(kb(17)), body: None });
    let err = validate(&too_large, &limits, now()).unwrap_err();
    assert_eq!((err.kind, err.http_status(), err.code()), (ContractErrorKind::TooLarge, 413, "payloadTooLarge"));
}

#[test]
fn every_broken_rule_is_reported_in_one_error() {
    let body = json!({
        "targetHostName": "contoso.app",
        "appNotificationId": "",
        "groupName": "g".repeat(300),
        "payload": { "visualContent": { "body": "no title" } },
        "targetPolicy": { "platformTypes": ["ios", "linux"] },
        "priority": "Urgent",
        "displayTimeToLive": 0,
        "expirationDateTime": "2025-01-01T00:00:00Z",
    });
    let err = error(&body);
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    for field in [
        "appNotificationId",
        "groupName",
        "payload.visualContent.title",
        "targetPolicy.platformTypes[1]",
        "priority",
        "displayTimeToLive",
        "expirationDateTime",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    assert_eq!(err.to_string().matches("; ").count(), err.problems.len() - 1, "{err}");
}

#[test]
fn every_missing_required_field_is_reported_in_one_error() {
    let err = error(&json!({}));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.to_string(), "targetHostName is required; appNotificationId is required; payload is required");
}

#[test]
fn each_field_is_reported_once() {
    let err = error(&with(base(), "payload.visualContent", json!({})));
    let title_problems = err.problems.iter().filter(|p| p.field == "payload.visualContent.title").count();
    assert_eq!(title_problems, 1, "{err}");
    let err = error(&without(base(), "targetHostName"));
    assert_eq!(err.problems.len(), 1, "{err}");
}

#[test]
fn most_severe_kind_wins_and_every_problem_is_kept() {
    // A mismatch (missing field) beside a rule violation: ContractMismatch, both listed.
    let err = error(&with(without(base(), "appNotificationId"), "priority", json!("Urgent")));
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.problems.len(), 2, "{err}");
    // A rule violation beside an oversize notification: InvalidPayload, both listed.
    let body = with(with(base(), "priority", json!("Urgent")), "payload.visualContent.body", json!("b".repeat(kb(17))));
    let err = error(&body);
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_eq!(err.problems.len(), 2, "{err}");
}

#[test]
fn validate_applies_the_same_rules_to_a_notification_built_in_rust() {
    let mut new = NewNotification::visual("", "", "");
    new.group_name = Some(String::new());
    new.platforms = Platforms::NONE;
    let err = validate(&new, &Limits::default(), now()).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    for field in [
        "targetHostName",
        "appNotificationId",
        "groupName",
        "payload.visualContent.title",
        "targetPolicy.platformTypes",
    ] {
        assert!(err.problems.iter().any(|p| p.field == field), "{field}: {err}");
    }
    let ok = NewNotification::raw("h", "a", "r");
    assert_eq!(validate(&ok, &Limits::default(), now()), Ok(now() + SignedDuration::from_hours(720)));
}
