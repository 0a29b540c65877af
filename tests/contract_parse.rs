//! Parsing a posted body: what is JSON, what shape it must have, unknown and repeated
//! properties, values of the wrong JSON type, `null`, and `@odata.type` annotations. Also the
//! seed page's own example request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use notifeed::contract::{ContractError, ContractErrorKind, Limits, parse_new_notification};
use notifeed::model::{Platform, Platforms, Priority, VisualContent};
use serde_json::{Value, json};

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn base() -> Value {
    json!({
        "targetHostName": "contoso.app",
        "appNotificationId": "n1",
        "payload": { "visualContent": { "title": "Hello" } }
    })
}

fn with(mut body: Value, path: &str, value: Value) -> Value {
    let mut node = &mut body;
    let segments: Vec<&str> = path.split('.').collect();
    for segment in &segments[..segments.len() - 1] {
        node = node.as_object_mut().unwrap().entry(*segment).or_insert_with(|| json!({}));
    }
    node.as_object_mut().unwrap().insert(segments[segments.len() - 1].to_owned(), value);
    body
}

fn parse_bytes(body: &[u8]) -> Result<notifeed::NewNotification, ContractError> {
    parse_new_notification(body, &Limits::default(), now())
}

fn parse(body: &Value) -> Result<notifeed::NewNotification, ContractError> {
    parse_bytes(body.to_string().as_bytes())
}

fn error_of(body: &[u8]) -> ContractError {
    parse_bytes(body).expect_err("the body should be rejected")
}

/// The field and message of the first problem: the one the test provoked.
fn first_problem(err: &ContractError) -> (&str, &str) {
    (err.problems[0].field.as_str(), err.problems[0].message.as_str())
}

fn only_problem(err: &ContractError) -> (&str, &str) {
    assert_eq!(err.problems.len(), 1, "{err}");
    (err.problems[0].field.as_str(), err.problems[0].message.as_str())
}

// ---------------------------------------------------------------------------------------------
// What counts as a body
// ---------------------------------------------------------------------------------------------

#[test]
fn body_that_is_not_json_is_400() {
    let bodies: [&[u8]; 7] =
        [b"", b"{", b"not json", b"{\"a\":}", b"{} trailing", b"\xff\xfe{}", b"{\"targetHostName\":\"\xff\"}"];
    for body in bodies {
        let err = error_of(body);
        assert_eq!(err.kind, ContractErrorKind::NotJson, "{}", String::from_utf8_lossy(body));
        assert_eq!(err.http_status(), 400);
        assert_eq!(err.code(), "invalidRequest");
        assert!(err.to_string().starts_with("is not valid JSON"), "{err}");
    }
}

#[test]
fn body_with_surrounding_whitespace_is_json() {
    let body = format!("\n  {}  \r\n", base());
    assert!(parse_bytes(body.as_bytes()).is_ok());
}

#[test]
fn body_that_is_an_array_is_400() {
    for body in [json!([]), json!([base()]), json!([base(), base()])] {
        let err = error_of(body.to_string().as_bytes());
        assert_eq!(err.kind, ContractErrorKind::BodyIsArray);
        assert_eq!(err.http_status(), 400);
        assert!(err.to_string().contains("one notification per request"), "{err}");
    }
}

#[test]
fn body_that_is_not_an_object_is_a_contract_mismatch() {
    for (body, kind) in [("5", "a number"), ("\"text\"", "a string"), ("null", "null"), ("true", "a boolean")] {
        let err = error_of(body.as_bytes());
        assert_eq!(err.kind, ContractErrorKind::ContractMismatch, "{body}");
        assert_eq!(err.http_status(), 400);
        assert_eq!(err.to_string(), format!("must be a JSON object, not {kind}"));
    }
}

#[test]
fn deeply_nested_json_is_rejected() {
    // Past serde_json's recursion limit (128 levels): not JSON we accept, and no stack overflow.
    for depth in [200, 100_000] {
        let body = format!("{{\"payload\":{{\"rawContent\":{}{}}}}}", "[".repeat(depth), "]".repeat(depth));
        let err = error_of(body.as_bytes());
        assert_eq!(err.kind, ContractErrorKind::NotJson, "depth {depth}");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
    let objects = format!("{}{}", "{\"a\":".repeat(1000), "}".repeat(1000));
    assert_eq!(error_of(objects.as_bytes()).kind, ContractErrorKind::NotJson);
}

#[test]
fn nesting_of_127_levels_is_parsed_then_rejected_for_its_type() {
    // Two objects and 125 arrays: 127 levels, the deepest serde_json accepts.
    let nested = |arrays: usize| {
        let raw = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
        format!(
            r#"{{"targetHostName":"h","appNotificationId":"a","payload":{{"visualContent":{{"title":"t"}},"rawContent":{raw}}}}}"#
        )
    };
    let err = error_of(nested(125).as_bytes());
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(only_problem(&err).0, "payload.rawContent");
    assert_eq!(error_of(nested(126).as_bytes()).kind, ContractErrorKind::NotJson);
}

// ---------------------------------------------------------------------------------------------
// Unknown and repeated properties
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_property_is_a_contract_mismatch_naming_the_field() {
    let cases = [
        ("title", "title"),
        ("payload.content", "payload.content"),
        ("payload.visualContent.subtitle", "payload.visualContent.subtitle"),
        ("targetPolicy.platforms", "targetPolicy.platforms"),
        ("fallbackPolicy.delay", "fallbackPolicy.delay"),
        ("fallbackPolicy.endpointFallback.url", "fallbackPolicy.endpointFallback.url"),
        ("fallbackPolicy.endpointFallback.visualContent.image", "fallbackPolicy.endpointFallback.visualContent.image"),
        // Names are case-sensitive camelCase, and stored-only properties are not part of a post.
        ("TargetHostName", "TargetHostName"),
        ("id", "id"),
        ("readState", "readState"),
    ];
    for (path, field) in cases {
        let err = parse(&with(base(), path, json!("x"))).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::ContractMismatch, "{path}");
        assert_eq!(err.http_status(), 400);
        let (reported, message) = first_problem(&err);
        assert_eq!(reported, field);
        assert!(message.contains("unknown field"), "{message}");
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[test]
fn annotation_other_than_odata_type_is_an_unknown_property() {
    let mut body = base();
    body.as_object_mut().unwrap().insert("@odata.context".into(), json!("$metadata#users('')/notifications/$entity"));
    let err = parse(&body).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(only_problem(&err).0, "@odata.context");
}

#[test]
fn every_structural_problem_is_reported_in_one_error() {
    let body = json!({
        "targetHostName": 5,
        "appNotificationId": "n1",
        "subtitle": "x",
        "payload": { "visualContent": { "title": "Hello", "image": "i.png" }, "rawContent": ["r"] },
        "targetPolicy": { "platformTypes": ["ios", 5, "android", 6] },
        "fallbackPolicy": ["iOS"],
        "priority": "Urgent",
    });
    let err = parse(&body).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    for field in [
        "targetHostName",
        "subtitle",
        "payload.visualContent.image",
        "payload.rawContent",
        "targetPolicy.platformTypes[1]",
        "fallbackPolicy",
        "priority",
    ] {
        assert_eq!(fields.iter().filter(|f| **f == field).count(), 1, "{field} in {fields:?}");
    }
    // The removed values are not reported a second time as missing.
    assert_eq!(fields.len(), 7, "{err}");
}

#[test]
fn list_with_a_bad_element_is_not_also_reported_as_missing() {
    let endpoint =
        json!({ "platformTypes": ["iOS", 5], "fallbackDelayInSeconds": 60, "visualContent": { "title": "t" } });
    let err = parse(&with(base(), "fallbackPolicy.endpointFallback", endpoint)).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(only_problem(&err).0, "fallbackPolicy.endpointFallback.platformTypes[1]");
}

#[test]
fn structural_problems_are_bounded() {
    let mut body = base();
    for i in 0..100 {
        body.as_object_mut().unwrap().insert(format!("unknown{i:03}"), json!(i));
    }
    let err = parse(&body).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(err.problems.len(), 32);
}

#[test]
fn repeated_property_is_a_contract_mismatch_naming_it() {
    let root =
        br#"{"targetHostName":"h","appNotificationId":"a","appNotificationId":"b","payload":{"rawContent":"r"}}"#;
    let err = error_of(root);
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    let (field, message) = only_problem(&err);
    assert_eq!(field, "appNotificationId");
    assert!(message.contains("more than once"), "{message}");

    let nested =
        br#"{"targetHostName":"h","appNotificationId":"a","payload":{"visualContent":{"title":"x","title":"y"}}}"#;
    let err = error_of(nested);
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(only_problem(&err).0, "payload.visualContent.title");
}

// ---------------------------------------------------------------------------------------------
// Values of the wrong JSON type
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_json_type_is_a_contract_mismatch_naming_the_path() {
    let cases = [
        ("targetHostName", json!(5), "targetHostName"),
        ("appNotificationId", json!(17), "appNotificationId"),
        ("groupName", json!(["g"]), "groupName"),
        ("payload", json!("text"), "payload"),
        ("payload.rawContent", json!({ "k": 1 }), "payload.rawContent"),
        ("payload.visualContent", json!("Hello"), "payload.visualContent"),
        ("payload.visualContent.title", json!(5), "payload.visualContent.title"),
        ("payload.visualContent.body", json!(false), "payload.visualContent.body"),
        ("targetPolicy", json!(["ios"]), "targetPolicy"),
        // serde would read an array as a struct's fields in order; the contract wants objects.
        ("targetPolicy", json!([["ios"]]), "targetPolicy"),
        ("payload", json!(["raw content"]), "payload"),
        ("payload.visualContent", json!(["title", "body"]), "payload.visualContent"),
        ("fallbackPolicy", json!([null]), "fallbackPolicy"),
        ("fallbackPolicy.endpointFallback", json!([["iOS"], 60, { "title": "t" }]), "fallbackPolicy.endpointFallback"),
        (
            "fallbackPolicy.endpointFallback.visualContent",
            json!(["t"]),
            "fallbackPolicy.endpointFallback.visualContent",
        ),
        ("targetPolicy.platformTypes", json!("ios"), "targetPolicy.platformTypes"),
        ("targetPolicy.platformTypes", json!(["ios", 5]), "targetPolicy.platformTypes[1]"),
        ("priority", json!(1), "priority"),
        ("expirationDateTime", json!(true), "expirationDateTime"),
        ("fallbackPolicy", json!(1), "fallbackPolicy"),
        (
            "fallbackPolicy.endpointFallback.platformTypes",
            json!([null]),
            "fallbackPolicy.endpointFallback.platformTypes[0]",
        ),
    ];
    for (path, value, field) in cases {
        let err = parse(&with(base(), path, value.clone())).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::ContractMismatch, "{path} = {value}");
        let (reported, message) = first_problem(&err);
        assert_eq!(reported, field, "{path} = {value}");
        assert!(message.starts_with("invalid type"), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// null
// ---------------------------------------------------------------------------------------------

#[test]
fn null_optional_properties_count_as_absent() {
    let body = json!({
        "targetHostName": "contoso.app",
        "appNotificationId": "n1",
        "groupName": null,
        "payload": { "rawContent": null, "visualContent": { "title": "Hello", "body": null } },
        "targetPolicy": { "platformTypes": null },
        "priority": null,
        "displayTimeToLive": null,
        "expirationDateTime": null,
        "fallbackPolicy": null,
    });
    let new = parse(&body).unwrap();
    assert_eq!(new.group_name, None);
    assert_eq!(new.payload.raw_content, None);
    assert_eq!(new.payload.visual_content, Some(VisualContent { title: "Hello".into(), body: None }));
    assert_eq!(new.platforms, Platforms::ALL);
    assert_eq!(new.priority, None);
    assert_eq!(new.display_time_to_live, None);
    assert_eq!(new.expiration, None);
    assert_eq!(new.fallback_policy, None);
}

#[test]
fn null_in_a_platform_list_is_a_contract_mismatch() {
    let err = parse(&with(base(), "targetPolicy.platformTypes", json!(["ios", null]))).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::ContractMismatch);
    assert_eq!(only_problem(&err).0, "targetPolicy.platformTypes[1]");
}

// ---------------------------------------------------------------------------------------------
// @odata.type
// ---------------------------------------------------------------------------------------------

/// A body with every object the contract knows, each annotated with its own `@odata.type`.
fn fully_typed(spell: impl Fn(&str) -> String) -> Value {
    json!({
        "@odata.type": spell("microsoft.graph.notification"),
        "targetHostName": "contoso.app",
        "appNotificationId": "n1",
        "payload": {
            "@odata.type": spell("microsoft.graph.payloadTypes"),
            "rawContent": "r",
            "visualContent": { "@odata.type": spell("microsoft.graph.visualProperties"), "title": "Hello" }
        },
        "targetPolicy": { "@odata.type": spell("microsoft.graph.targetPolicyEndpoints"), "platformTypes": ["ios"] },
        "fallbackPolicy": {
            "@odata.type": spell("microsoft.graph.fallbackPolicy"),
            "endpointFallback": {
                "@odata.type": spell("microsoft.graph.fallbackPolicyProperties"),
                "platformTypes": ["iOS"],
                "fallbackDelayInSeconds": 60,
                "visualContent": { "@odata.type": spell("microsoft.graph.visualProperties"), "title": "Toast" }
            }
        }
    })
}

/// Where each annotation sits in [`fully_typed`].
const ANNOTATED: [&str; 7] = [
    "@odata.type",
    "payload.@odata.type",
    "payload.visualContent.@odata.type",
    "targetPolicy.@odata.type",
    "fallbackPolicy.@odata.type",
    "fallbackPolicy.endpointFallback.@odata.type",
    "fallbackPolicy.endpointFallback.visualContent.@odata.type",
];

#[test]
fn odata_type_is_accepted_at_every_level_with_or_without_hash_in_any_case() {
    let spellings: [&dyn Fn(&str) -> String; 4] =
        [&|t| format!("#{t}"), &|t| t.to_owned(), &|t| format!("#{}", t.to_uppercase()), &|t| {
            t.to_lowercase().replace("graph", "Graph")
        }];
    for spell in spellings {
        let body = fully_typed(spell);
        let new = parse(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(new.payload.raw_content.as_deref(), Some("r"));
        assert_eq!(new.platforms, Platforms::of(&[Platform::Ios]));
        assert_eq!(new.fallback_policy.unwrap().visual_content.title, "Toast");
    }
}

/// `body` with the `@odata.type` at dotted `at` (the annotation's own name has a dot).
fn retyped(mut body: Value, at: &str, value: Value) -> Value {
    let parent = at.strip_suffix("@odata.type").unwrap().trim_end_matches('.');
    let pointer = if parent.is_empty() { String::new() } else { format!("/{}", parent.replace('.', "/")) };
    body.pointer_mut(&pointer).unwrap().as_object_mut().unwrap().insert("@odata.type".into(), value);
    body
}

#[test]
fn odata_type_naming_another_type_is_401() {
    for at in ANNOTATED {
        let body = retyped(fully_typed(|t| format!("#{t}")), at, json!("#microsoft.graph.user"));
        let err = parse(&body).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::InvalidDataType, "{at}");
        assert_eq!(err.http_status(), 401);
        assert_eq!(err.code(), "invalidDataType");
        let (field, message) = only_problem(&err);
        assert_eq!(field, at);
        assert!(message.contains("microsoft.graph.user"), "{message}");
    }
}

#[test]
fn odata_type_of_a_sibling_object_is_401() {
    // The payload is not a notification, and a visual content is not a target policy.
    let body = retyped(base(), "payload.@odata.type", json!("#microsoft.graph.notification"));
    assert_eq!(parse(&body).unwrap_err().kind, ContractErrorKind::InvalidDataType);
    let body = with(
        base(),
        "targetPolicy",
        json!({ "@odata.type": "microsoft.graph.visualProperties", "platformTypes": ["ios"] }),
    );
    assert_eq!(parse(&body).unwrap_err().kind, ContractErrorKind::InvalidDataType);
}

#[test]
fn odata_type_that_is_misspelled_or_not_a_string_is_401() {
    for value in [
        json!("##microsoft.graph.notification"),
        json!("#microsoft.graph.notifications"),
        json!("microsoft.graph.notification "),
        json!("graph.notification"),
        json!(""),
        json!(null),
        json!(5),
        json!({ "name": "microsoft.graph.notification" }),
    ] {
        let err = parse(&retyped(base(), "@odata.type", value.clone())).unwrap_err();
        assert_eq!(err.kind, ContractErrorKind::InvalidDataType, "{value}");
    }
}

#[test]
fn invalid_data_type_is_reported_before_other_mismatches() {
    let body = with(retyped(base(), "@odata.type", json!("#microsoft.graph.user")), "unknown", json!(1));
    assert_eq!(parse(&body).unwrap_err().kind, ContractErrorKind::InvalidDataType);
}

// ---------------------------------------------------------------------------------------------
// The seed page's example
// ---------------------------------------------------------------------------------------------

#[test]
fn seed_example_request_parses() {
    // As on the seed page, with a non-empty targetHostName and the expiration moved to the future.
    let body = br#"{
        "targetHostName": "graphnotifications.sample.windows.com",
        "appNotificationId": "testDirectToastNotification",
        "expirationDateTime": "2026-01-30T23:59:00.000Z",
        "payload": {
            "visualContent": {
                "title": "Hello World!",
                "body": "Notifications are Great!"
            }
        },
        "targetPolicy": {
            "platformTypes": [
                "windows",
                "ios",
                "android"
            ]
        },
        "priority": "High",
        "groupName": "TestGroup",
        "displayTimeToLive": "60"
    }"#;
    let new = parse_bytes(body).unwrap();
    assert_eq!(new.target_host_name, "graphnotifications.sample.windows.com");
    assert_eq!(new.app_notification_id, "testDirectToastNotification");
    assert_eq!(new.expiration, Some("2026-01-30T23:59:00Z".parse().unwrap()));
    assert_eq!(
        new.payload.visual_content,
        Some(VisualContent { title: "Hello World!".into(), body: Some("Notifications are Great!".into()) })
    );
    assert_eq!(new.payload.raw_content, None);
    assert_eq!(new.platforms, Platforms::of(&[Platform::Windows, Platform::Ios, Platform::Android]));
    assert_eq!(new.priority, Some(Priority::High));
    assert_eq!(new.group_name.as_deref(), Some("TestGroup"));
    assert_eq!(new.display_time_to_live, Some(60));
    assert_eq!(new.fallback_policy, None);
}

#[test]
fn seed_example_with_its_original_past_expiration_is_rejected() {
    let body = with(base(), "expirationDateTime", json!("2019-10-30T23:59:00.000Z"));
    let err = parse(&body).unwrap_err();
    assert_eq!(err.kind, ContractErrorKind::InvalidPayload);
    assert_eq!(only_problem(&err).0, "expirationDateTime");
}
