//! Every row of the seed's status table (issue 4), over real HTTP against the axum app, and
//! afterwards the feed holds exactly the notifications that got 201.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use http_common::{TestServer, demo_auth, demo_host, seed_example};
use notifeed::config::Config;
use notifeed::{FeedKey, ListQuery};
use serde_json::json;

const CONFIG: &str = r#"
blocked_callers = ["blocked"]

[[apps]]
id = "demo"
host_name = "demo.notifeed.local"
bearer_tokens = ["notifeed-demo-token"]

[[apps]]
id = "other"
host_name = "other.example"
bearer_tokens = ["other-token"]

[[apps]]
id = "blocked"
host_name = "blocked.example"
bearer_tokens = ["blocked-token"]
"#;

fn post_raw(server: &TestServer, uns: &str, extra: &[(&str, &str)], body: Vec<u8>) -> http_common::Reply {
    let auth = demo_auth();
    let mut headers = vec![("Authorization", auth.as_str()), ("X-UNS-ID", uns), ("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    server.send("POST", "/me/notifications", &headers, Some(body))
}

#[test]
fn every_row_of_the_status_table() {
    let server = TestServer::start(Config::from_toml(CONFIG).unwrap());
    let uns = server.subscribe("alice@contoso.com");
    let mut accepted = Vec::new();

    // 201: the seed's example, in Graph's shape, with Location and the request ids.
    let reply = server.send(
        "POST",
        "/me/notifications/",
        &[
            ("Authorization", &demo_auth()),
            ("X-UNS-ID", &uns),
            ("Content-Type", "application/json"),
            ("client-request-id", "71e62feb-8d72-4912-8b2c-4cee9d89e781"),
        ],
        Some(seed_example(demo_host(), "testDirectToastNotification").to_string().into_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(body["@odata.context"], "$metadata#users('alice%40contoso.com')/notifications/$entity");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("location").unwrap(), format!("{}/me/notifications/{id}", server.base));
    assert!((59..=60).contains(&body["displayTimeToLive"].as_i64().unwrap()), "{body}");
    assert_eq!(body["groupName"], "TestGroup");
    assert_eq!(body["priority"], "High");
    assert_eq!(
        body["payload"],
        json!({"visualContent": {"title": "Hello World!", "body": "Notifications are Great!"}})
    );
    assert!(body["expirationDateTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(reply.header("client-request-id"), Some("71e62feb-8d72-4912-8b2c-4cee9d89e781"));
    assert!(reply.header("request-id").is_some_and(|v| v.len() == 36));
    accepted.push(id);

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("array body", vec![], b"[{}]".to_vec(), 400, "invalidRequest"),
        ("not JSON", vec![], b"hello".to_vec(), 400, "invalidRequest"),
        (
            "wrong type",
            vec![],
            json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {"rawContent": 5}}).to_string().into_bytes(),
            400,
            "invalidRequest",
        ),
        (
            "unknown property",
            vec![],
            json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {"rawContent": "x"}, "audience": 1})
                .to_string()
                .into_bytes(),
            400,
            "invalidRequest",
        ),
        (
            "neither raw nor visual",
            vec![],
            json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {}}).to_string().into_bytes(),
            400,
            "invalidPayload",
        ),
        (
            "title missing",
            vec![],
            json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {"visualContent": {"body": "b"}}})
                .to_string()
                .into_bytes(),
            400,
            "invalidPayload",
        ),
        (
            "expiration in the past",
            vec![],
            json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {"rawContent": "x"},
                   "expirationDateTime": "2019-10-30T23:59:00.000Z"})
            .to_string()
            .into_bytes(),
            400,
            "invalidPayload",
        ),
        (
            "invalid @odata.type",
            vec![],
            json!({"@odata.type": "#microsoft.graph.activity", "targetHostName": demo_host(), "appNotificationId": "a",
                   "payload": {"rawContent": "x"}})
            .to_string()
            .into_bytes(),
            401,
            "invalidDataType",
        ),
        ("If-Modified-Since", vec![("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT")], b"{}".to_vec(), 400, "invalidRequest"),
        ("If-Range", vec![("If-Range", "\"etag\"")], b"{}".to_vec(), 400, "invalidRequest"),
        ("Content-Encoding br", vec![("Content-Encoding", "br")], b"{}".to_vec(), 415, "unsupportedMediaType"),
        ("over the size limit", vec![], vec![b' '; 65 * 1024], 413, "payloadTooLarge"),
    ];
    for (name, extra, body, status, code) in cases {
        let reply = post_raw(&server, &uns, &extra, body);
        assert_eq!(reply.status, status, "{name}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.error_code(), code, "{name}");
        let error = &reply.json()["error"];
        assert_eq!(error["innerError"]["request-id"].as_str(), reply.header("request-id"), "{name}");
        assert!(error["innerError"]["date"].as_str().is_some(), "{name}");
        assert_eq!(reply.header("client-request-id"), reply.header("request-id"), "{name}: a new id is echoed");
    }

    // The message names the offending field.
    let reply = post_raw(
        &server,
        &uns,
        &[],
        json!({"targetHostName": demo_host(), "appNotificationId": "a", "payload": {"visualContent": {"body": "b"}}})
            .to_string()
            .into_bytes(),
    );
    assert!(reply.error_message().contains("payload.visualContent.title"), "{}", reply.error_message());

    // 405 with Allow, on each path.
    for (method, path, allow) in [
        ("PUT", "/me/notifications", "GET, POST, DELETE"),
        ("POST", "/me/notifications/delta", "GET"),
        ("PUT", "/me/notifications/00000000-0000-0000-0000-000000000000", "GET, PATCH, DELETE"),
        ("GET", "/subscriptions", "POST"),
        ("OPTIONS", "/me/notifications", "GET, POST, DELETE"),
    ] {
        let reply = server.send(method, path, &[("Authorization", &demo_auth())], None);
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(reply.error_code(), "methodNotAllowed");
    }

    // 401 with WWW-Authenticate: missing or unknown token.
    for auth in [None, Some("Bearer wrong"), Some("Basic bm90aWZlZWQ=")] {
        let mut headers = vec![("X-UNS-ID", uns.as_str()), ("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let body = seed_example(demo_host(), "no-auth").to_string().into_bytes();
        let reply = server.send("POST", "/me/notifications", &headers, Some(body));
        assert_eq!(reply.status, 401, "{auth:?}");
        assert!(reply.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{auth:?}");
    }

    // 403: blocked caller.
    let body = seed_example("blocked.example", "blocked").to_string().into_bytes();
    let reply = server.send(
        "POST",
        "/me/notifications",
        &[("Authorization", "Bearer blocked-token"), ("X-UNS-ID", &uns), ("Content-Type", "application/json")],
        Some(body),
    );
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "accessDenied"));
    assert!(reply.error_message().contains("blocked"));

    // 403: the subscription belongs to another app; unknown subscription; missing header.
    let body = seed_example("other.example", "other").to_string().into_bytes();
    let reply = server.send(
        "POST",
        "/me/notifications",
        &[("Authorization", "Bearer other-token"), ("X-UNS-ID", &uns), ("Content-Type", "application/json")],
        Some(body.clone()),
    );
    assert_eq!(reply.status, 403, "{}", reply.error_message());
    for uns_header in [Some("00000000-0000-0000-0000-000000000000"), None] {
        let mut headers = vec![("Authorization", "Bearer other-token"), ("Content-Type", "application/json")];
        if let Some(u) = uns_header {
            headers.push(("X-UNS-ID", u));
        }
        let reply = server.send("POST", "/me/notifications", &headers, Some(body.clone()));
        assert_eq!(reply.status, 403, "{uns_header:?}");
        assert!(reply.error_message().contains("X-UNS-ID"), "{}", reply.error_message());
    }
    // 403: a targetHostName of another app.
    let reply = server.post(&uns, &seed_example("other.example", "x"));
    assert_eq!(reply.status, 403);
    assert!(reply.error_message().contains("targetHostName"));

    // 404 for unknown paths.
    assert_eq!(server.send("GET", "/nothing/here", &[], None).status, 404);

    // The store holds exactly the accepted notification.
    let feed = FeedKey::for_user_app("alice@contoso.com", demo_host()).unwrap();
    let page = server.store.list(&feed, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
    let ids: Vec<String> = page.items.iter().map(|n| n.id.to_string()).collect();
    assert_eq!(ids, accepted);
    let other = FeedKey::for_user_app("alice@contoso.com", "other.example").unwrap();
    assert_eq!(server.store.count(&other).unwrap().total, 0);
}

#[test]
fn throttled_requests_get_406_with_retry_after() {
    let config = Config::from_toml(
        "[rate_limits]\ncaller_per_second = 0.001\ncaller_burst = 1000\nuser_per_second = 0.001\nuser_burst = 3\n",
    )
    .unwrap();
    let server = TestServer::start(config);
    let alice = server.subscribe("alice");
    let bob = server.subscribe("bob");
    for i in 0..3 {
        assert_eq!(server.post(&alice, &seed_example(demo_host(), &format!("n{i}"))).status, 201);
    }
    let reply = server.post(&alice, &seed_example(demo_host(), "n3"));
    assert_eq!(reply.status, 406);
    assert_eq!(reply.error_code(), "throttled");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    // Another user of the same app still passes: the user bucket is per user.
    assert_eq!(server.post(&bob, &seed_example(demo_host(), "b0")).status, 201);
    let feed = FeedKey::for_user_app("alice", demo_host()).unwrap();
    assert_eq!(server.store.count(&feed).unwrap().total, 3);

    // Per caller: a burst of 2 for the whole app.
    let config = Config::from_toml("[rate_limits]\ncaller_per_second = 0.001\ncaller_burst = 2\n").unwrap();
    let server = TestServer::start(config);
    let alice = server.subscribe("alice"); // takes the first token
    assert_eq!(server.post(&alice, &seed_example(demo_host(), "n0")).status, 201);
    let reply = server.post(&alice, &seed_example(demo_host(), "n1"));
    assert_eq!(reply.status, 406);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.error_message().contains("caller"), "{}", reply.error_message());
}
