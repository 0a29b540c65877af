//! The handler called directly (no transport) over a `LogStore`, with a `ManualClock`: everything that depends on
//! time is pinned exactly — subscription expiry, notification expiry in list and delta,
//! `displayTimeToLive` counting down, throttle refill and `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::sync::Arc;

use http_common::{demo_auth, demo_host, open_log_store};
use notifeed::config::Config;
use notifeed::handler::{Handler, Request, Response};
use notifeed::{FeedStore, ManualClock, SharedClock};
use serde_json::{Value, json};

struct Fixture {
    clock: ManualClock,
    handler: Handler,
    store: Arc<dyn FeedStore>,
    _dir: tempfile::TempDir,
}

/// The handler over a `LogStore`, both on one manual clock.
fn fixture(config: Config) -> Fixture {
    let clock = ManualClock::at_epoch_2026();
    let shared: SharedClock = Arc::new(clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = open_log_store(dir.path(), &config, Arc::clone(&shared));
    let handler = Handler::new(Arc::clone(&store), shared, config, None).unwrap();
    Fixture { clock, handler, store, _dir: dir }
}

fn json_of(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

impl Fixture {
    fn subscribe(&self, body: Value) -> Response {
        self.handler.handle(
            Request::new("POST", "/subscriptions")
                .with_header("Authorization", &demo_auth())
                .with_body(body.to_string()),
        )
    }

    fn call(&self, method: &str, path: &str, uns: &str, body: Option<Value>) -> Response {
        let mut request =
            Request::new(method, path).with_header("authorization", &demo_auth()).with_header("x-uns-id", uns);
        if let Some(b) = body {
            request = request.with_body(b.to_string());
        }
        self.handler.handle(request)
    }
}

fn notification(app_id: &str, expiration: &str) -> Value {
    json!({
        "targetHostName": demo_host(),
        "appNotificationId": app_id,
        "expirationDateTime": expiration,
        "displayTimeToLive": 60,
        "payload": { "visualContent": { "title": "Hello World!" } }
    })
}

#[test]
fn subscription_stops_working_at_the_exact_instant_it_expires() {
    let f = fixture(Config::default());
    let created = f.subscribe(json!({ "userId": "ivy", "expirationDateTime": "2026-01-01T01:00:00Z" }));
    assert_eq!(created.status, 201);
    let uns = json_of(&created)["id"].as_str().unwrap().to_owned();
    let post = |id: &str| f.call("POST", "/me/notifications", &uns, Some(notification(id, "2026-01-02T00:00:00Z")));
    f.clock.advance_secs(3599);
    assert_eq!(post("a").status, 201);
    f.clock.advance_secs(1);
    let refused = post("b");
    assert_eq!(refused.status, 403);
    assert!(json_of(&refused)["error"]["message"].as_str().unwrap().contains("expired"));
}

#[test]
fn display_time_to_live_counts_down_and_expired_notifications_vanish_into_delta() {
    let f = fixture(Config::default());
    let uns = json_of(&f.subscribe(json!({ "userId": "jack" })))["id"].as_str().unwrap().to_owned();
    let token =
        json_of(&f.call("GET", "/me/notifications/delta", &uns, None))["@odata.deltaLink"].as_str().unwrap().to_owned();
    let created = f.call("POST", "/me/notifications", &uns, Some(notification("short", "2026-01-01T00:10:00Z")));
    assert_eq!(created.status, 201);
    let created = json_of(&created);
    assert_eq!(created["displayTimeToLive"], 60);
    assert_eq!(created["expirationDateTime"], "2026-01-01T00:10:00Z");
    let id = created["id"].as_str().unwrap().to_owned();
    // Links are relative without a Host header.
    assert!(token.starts_with("/me/notifications/delta?$deltatoken="), "{token}");

    f.clock.advance_secs(45);
    let got = json_of(&f.call("GET", &format!("/me/notifications/{id}"), &uns, None));
    assert_eq!(got["displayTimeToLive"], 15);

    // One nanosecond before expiration it is listed; at expiration it is gone everywhere.
    f.clock.set("2026-01-01T00:09:59.999999999Z".parse().unwrap());
    assert_eq!(json_of(&f.call("GET", "/me/notifications", &uns, None))["value"].as_array().unwrap().len(), 1);
    f.clock.set("2026-01-01T00:10:00Z".parse().unwrap());
    assert_eq!(json_of(&f.call("GET", "/me/notifications", &uns, None))["value"], json!([]));
    assert_eq!(f.call("GET", &format!("/me/notifications/{id}"), &uns, None).status, 404);
    // The delta since before the post says it expired (the upsert is no longer reported).
    let delta = json_of(&f.call("GET", &token, &uns, None));
    assert_eq!(delta["value"], json!([{ "id": id, "@removed": { "reason": "expired" } }]));
    // Sweeping changes nothing a reader sees.
    f.store.sweep_expired().unwrap();
    assert_eq!(json_of(&f.call("GET", &token, &uns, None))["value"], delta["value"]);
}

#[test]
fn throttle_refills_exactly_with_the_clock() {
    let config =
        Config::from_toml("[rate_limits]\nuser_per_second = 0.1\nuser_burst = 2\ncaller_burst = 1000\n").unwrap();
    let f = fixture(config);
    let uns = json_of(&f.subscribe(json!({ "userId": "kim" })))["id"].as_str().unwrap().to_owned();
    let post = |id: &str| f.call("POST", "/me/notifications", &uns, Some(notification(id, "2026-01-02T00:00:00Z")));
    assert_eq!(post("a").status, 201);
    assert_eq!(post("b").status, 201);
    let throttled = post("c");
    assert_eq!(throttled.status, 406);
    assert_eq!(throttled.header("Retry-After"), Some("10"));
    f.clock.advance_secs(4);
    assert_eq!(post("c").header("retry-after"), Some("6"));
    f.clock.advance_secs(6);
    assert_eq!(post("c").status, 201);
    // Reads count against the same bucket.
    assert_eq!(f.call("GET", "/me/notifications", &uns, None).status, 406);
}

#[test]
fn replacement_keeps_the_id_and_health_needs_no_token() {
    let f = fixture(Config::default());
    let uns = json_of(&f.subscribe(json!({ "userId": "lee" })))["id"].as_str().unwrap().to_owned();
    let first = json_of(&f.call("POST", "/me/notifications", &uns, Some(notification("same", "2026-01-02T00:00:00Z"))));
    f.clock.advance_secs(5);
    let second =
        json_of(&f.call("POST", "/me/notifications", &uns, Some(notification("same", "2026-01-03T00:00:00Z"))));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["expirationDateTime"], "2026-01-03T00:00:00Z");
    let health = f.handler.handle(Request::new("GET", "/health"));
    assert_eq!((health.status, json_of(&health)["status"].clone()), (200, json!("ok")));
    assert!(health.header("request-id").is_some());
}

#[test]
fn a_subscription_file_survives_a_new_handler() {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at_epoch_2026());
    let config = Config::default();
    let store = open_log_store(dir.path(), &config, Arc::clone(&clock));
    let handler = Handler::new(Arc::clone(&store), Arc::clone(&clock), config.clone(), Some(dir.path())).unwrap();
    let created = handler.handle(
        Request::new("POST", "/subscriptions")
            .with_header("Authorization", &demo_auth())
            .with_body(r#"{"userId":"mo"}"#),
    );
    let uns = json_of(&created)["id"].as_str().unwrap().to_owned();
    drop(handler);
    let handler = Handler::new(store, clock, config, Some(dir.path())).unwrap();
    let reply = handler
        .handle(Request::new("GET", &format!("/subscriptions/{uns}")).with_header("Authorization", &demo_auth()));
    assert_eq!(reply.status, 200);
    assert_eq!(json_of(&reply)["userId"], "mo");
}

#[test]
fn stop_waiting_ends_a_long_poll_whether_it_started_before_or_after() {
    let f = Arc::new(fixture(Config::default()));
    let uns = json_of(&f.subscribe(json!({ "userId": "ned" })))["id"].as_str().unwrap().to_owned();
    let link =
        json_of(&f.call("GET", "/me/notifications/delta", &uns, None))["@odata.deltaLink"].as_str().unwrap().to_owned();
    let poll = {
        let (f, uns, link) = (Arc::clone(&f), uns.clone(), link.clone());
        std::thread::spawn(move || {
            f.handler.handle(
                Request::new("GET", &link)
                    .with_header("Authorization", &demo_auth())
                    .with_header("X-UNS-ID", &uns)
                    .with_header("Prefer", "wait=3600"),
            )
        })
    };
    f.handler.stop_waiting();
    // Only stop_waiting can end this hour-long poll.
    let reply = poll.join().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(json_of(&reply)["value"], json!([]));
}
