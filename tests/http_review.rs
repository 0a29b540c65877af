//! Findings of the review of the HTTP handler and server (issue 4), each pinned by a test that
//! failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_common::{TestServer, demo_auth, open_log_store};
use notifeed::config::Config;
use notifeed::handler::{Handler, Request, Response};
use notifeed::{
    ChangeToken, Changes, Counts, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, Notification,
    NotificationId, Page, SharedClock, StateUpdate, StoreError, SweepStats, SystemClock,
};
use serde_json::{Value, json};

struct Fixture {
    handler: Handler,
    _store: Arc<dyn FeedStore>,
    _dir: tempfile::TempDir,
}

/// The handler over a `LogStore`, on a manual clock.
fn fixture(config: Config) -> Fixture {
    let shared: SharedClock = Arc::new(ManualClock::at_epoch_2026());
    let dir = tempfile::tempdir().unwrap();
    let store = open_log_store(dir.path(), &config, Arc::clone(&shared));
    let handler = Handler::new(Arc::clone(&store), shared, config, None).unwrap();
    Fixture { handler, _store: store, _dir: dir }
}

fn json_of(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

fn subscribe(handler: &Handler, auth: &str, user: &str) -> Response {
    handler.handle(
        Request::new("POST", "/subscriptions")
            .with_header("Authorization", auth)
            .with_body(json!({ "userId": user }).to_string()),
    )
}

fn delta_poll(handler: &Handler, uns: &str, link: &str, wait: &str) -> Response {
    handler.handle(
        Request::new("GET", link)
            .with_header("Authorization", &demo_auth())
            .with_header("X-UNS-ID", uns)
            .with_header("Prefer", wait),
    )
}

/// Spins (no sleeping) until `condition` holds; panics after a generous bound.
fn spin_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "condition never held");
        std::thread::yield_now();
    }
}

#[test]
fn long_polls_beyond_the_waiting_cap_answer_at_once_without_waiting() {
    let config = Config::from_toml("[limits]\nmax_waiting_polls = 1\nmax_wait_seconds = 3600\n").unwrap();
    let f = Arc::new(fixture(config));
    let uns = json_of(&subscribe(&f.handler, &demo_auth(), "ann"))["id"].as_str().unwrap().to_owned();
    let link = json_of(&delta_poll(&f.handler, &uns, "/me/notifications/delta", "wait=0"))["@odata.deltaLink"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first poll takes the only waiting place for up to an hour.
    let first = {
        let (f, uns, link) = (Arc::clone(&f), uns.clone(), link.clone());
        std::thread::spawn(move || delta_poll(&f.handler, &uns, &link, "wait=3600"))
    };
    spin_until(|| f.handler.waiting_polls() == 1);
    // The second gets its (empty) answer now, and is told its preference was not applied.
    let second = delta_poll(&f.handler, &uns, &link, "wait=3600");
    assert_eq!(second.status, 200);
    assert_eq!(json_of(&second)["value"], json!([]));
    assert_eq!(second.header("Preference-Applied"), None);
    assert_eq!(f.handler.waiting_polls(), 1);
    f.handler.stop_waiting();
    let first = first.join().unwrap();
    assert_eq!((first.status, first.header("Preference-Applied")), (200, Some("wait=3600")));
    assert_eq!(f.handler.waiting_polls(), 0);
}

const TWO_APPS: &str = "[[apps]]\nid = \"demo\"\nhost_name = \"demo.notifeed.local\"\nbearer_tokens = [\"notifeed-demo-token\"]\n\
                        [[apps]]\nid = \"other\"\nhost_name = \"other.example\"\nbearer_tokens = [\"other-token\"]\n";

#[test]
fn an_app_holds_at_most_max_per_app_live_subscriptions() {
    let config = Config::from_toml(&format!("{TWO_APPS}[subscriptions]\nmax_per_app = 2\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let shared: SharedClock = Arc::new(clock.clone());
    let store = open_log_store(dir.path(), &config, Arc::clone(&shared));
    let handler = Handler::new(store, shared, config, Some(dir.path())).unwrap();
    let first = subscribe(&handler, &demo_auth(), "u1");
    assert_eq!(first.status, 201);
    assert_eq!(subscribe(&handler, &demo_auth(), "u2").status, 201);
    let refused = subscribe(&handler, &demo_auth(), "u3");
    assert_eq!(refused.status, 403);
    assert_eq!(json_of(&refused)["error"]["code"], "accessDenied");
    assert!(json_of(&refused)["error"]["message"].as_str().unwrap().contains("max_per_app"), "{refused:?}");
    // The file holds only the two accepted ones.
    let file = std::fs::read_to_string(dir.path().join(notifeed::handler::SUBSCRIPTIONS_FILE)).unwrap();
    assert_eq!(file.matches("\"userId\"").count(), 2, "{file}");
    // Another app has its own allowance.
    assert_eq!(subscribe(&handler, "Bearer other-token", "u3").status, 201);
    // Ending one frees a place.
    let id = json_of(&first)["id"].as_str().unwrap().to_owned();
    let ended = handler
        .handle(Request::new("DELETE", &format!("/subscriptions/{id}")).with_header("Authorization", &demo_auth()));
    assert_eq!(ended.status, 204);
    assert_eq!(subscribe(&handler, &demo_auth(), "u3").status, 201);
    assert_eq!(subscribe(&handler, &demo_auth(), "u4").status, 403);
    // Expired ones do not count: the default lifetime is 720 hours.
    clock.advance_secs(720 * 3600);
    assert_eq!(subscribe(&handler, &demo_auth(), "u4").status, 201);
}

#[test]
fn a_subscription_made_for_a_host_name_the_app_no_longer_has_opens_no_feed() {
    // Yesterday demo served a.example; today the config gives a.example to another app.
    let before = "[[apps]]\nid = \"demo\"\nhost_name = \"a.example\"\nbearer_tokens = [\"notifeed-demo-token\"]\n";
    let after = "[[apps]]\nid = \"demo\"\nhost_name = \"b.example\"\nbearer_tokens = [\"notifeed-demo-token\"]\n\
                 [[apps]]\nid = \"other\"\nhost_name = \"a.example\"\nbearer_tokens = [\"other-token\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let shared: SharedClock = Arc::new(ManualClock::at_epoch_2026());
    let before = Config::from_toml(before).unwrap();
    let store = open_log_store(dir.path(), &before, Arc::clone(&shared));
    let handler = Handler::new(Arc::clone(&store), Arc::clone(&shared), before, Some(dir.path())).unwrap();
    let stale = json_of(&subscribe(&handler, &demo_auth(), "zoe"))["id"].as_str().unwrap().to_owned();
    drop(handler);

    let handler = Handler::new(store, shared, Config::from_toml(after).unwrap(), Some(dir.path())).unwrap();
    let theirs = json_of(&subscribe(&handler, "Bearer other-token", "zoe"))["id"].as_str().unwrap().to_owned();
    let posted = handler.handle(
        Request::new("POST", "/me/notifications")
            .with_header("Authorization", "Bearer other-token")
            .with_header("X-UNS-ID", &theirs)
            .with_body(
                json!({
                    "targetHostName": "a.example",
                    "appNotificationId": "private",
                    "payload": { "visualContent": { "title": "for other's eyes only" } }
                })
                .to_string(),
            ),
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    // demo's old subscription names (zoe, a.example): now the other app's feed.
    let listed = handler.handle(
        Request::new("GET", "/me/notifications")
            .with_header("Authorization", &demo_auth())
            .with_header("X-UNS-ID", &stale),
    );
    assert_eq!(listed.status, 403, "{}", String::from_utf8_lossy(&listed.body));
    assert!(!String::from_utf8_lossy(&listed.body).contains("for other's eyes only"));
}

/// A `LogStore` whose `list` panics: a store bug the server must still answer in Graph's shape.
struct PanicsOnList(Arc<dyn FeedStore>);

impl FeedStore for PanicsOnList {
    fn append(&self, f: &FeedKey, n: NewNotification) -> Result<Notification, StoreError> {
        self.0.append(f, n)
    }
    fn get(&self, f: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        self.0.get(f, id)
    }
    fn get_by_app_id(&self, f: &FeedKey, id: &str) -> Result<Option<Notification>, StoreError> {
        self.0.get_by_app_id(f, id)
    }
    fn list(&self, _: &FeedKey, _: &ListQuery) -> Result<Page, StoreError> {
        panic!("a store bug")
    }
    fn count(&self, f: &FeedKey) -> Result<Counts, StoreError> {
        self.0.count(f)
    }
    fn update_state(
        &self,
        f: &FeedKey,
        id: NotificationId,
        u: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        self.0.update_state(f, id, u)
    }
    fn delete(&self, f: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        self.0.delete(f, id)
    }
    fn delete_by_app_id(&self, f: &FeedKey, id: &str) -> Result<bool, StoreError> {
        self.0.delete_by_app_id(f, id)
    }
    fn delete_group(&self, f: &FeedKey, g: &str) -> Result<u64, StoreError> {
        self.0.delete_group(f, g)
    }
    fn changes(&self, f: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        self.0.changes(f, since, limit)
    }
    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        self.0.sweep_expired()
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.0.sync()
    }
}

#[test]
fn a_handler_that_fails_still_answers_500_with_request_ids_and_a_graph_error() {
    let config = Config::default();
    let clock: SharedClock = Arc::new(SystemClock);
    let dir = tempfile::tempdir().unwrap();
    let inner = open_log_store(dir.path(), &config, Arc::clone(&clock));
    let server = TestServer::start_with(config, Arc::new(PanicsOnList(inner)), clock, dir);
    let uns = server.subscribe("pat");
    let reply = server.send(
        "GET",
        "/me/notifications",
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("client-request-id", "c-42")],
        None,
    );
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("client-request-id"), Some("c-42"));
    let request_id = reply.header("request-id").expect("a request-id").to_owned();
    assert_eq!(reply.error_code(), "generalException");
    assert_eq!(reply.json()["error"]["innerError"]["request-id"], request_id.as_str());
    // The server still serves.
    assert_eq!(server.send("GET", "/health", &[], None).status, 200);
}

#[test]
fn shutdown_ends_within_the_grace_period_even_with_a_stalled_request() {
    use std::io::{BufRead, BufReader, Write};
    let config = Config::from_toml("shutdown_grace_seconds = 1\n").unwrap();
    let server = TestServer::start(config);
    let uns = server.subscribe("sam");
    // A client sends headers, sees that the server reads its body (100 Continue), then stalls.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stalled,
        "POST /me/notifications HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\nX-UNS-ID: {uns}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        demo_auth()
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(&stalled).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    stalled.write_all(b"{").unwrap();
    // Stopping the server (SIGTERM's path) must not wait for that client forever.
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    assert!(stopped.recv_timeout(Duration::from_secs(120)).is_ok(), "shutdown waited for the stalled client");
    drop(stalled);
}

#[test]
fn an_oversized_body_is_checked_for_route_method_and_token_before_its_size() {
    let server = TestServer::start(Config::default());
    let uns = server.subscribe("oz");
    let big = vec![b' '; 65 * 1024];
    let auth = demo_auth();
    // Wrong method: 405 with Allow, as with a small body.
    let reply = server.send("PUT", "/me/notifications", &[("Authorization", &auth)], Some(big.clone()));
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET, POST, DELETE")));
    // Unknown path: 404.
    assert_eq!(server.send("POST", "/nowhere", &[], Some(big.clone())).status, 404);
    // No token: 401 with WWW-Authenticate.
    let reply = server.send("POST", "/me/notifications", &[("X-UNS-ID", &uns)], Some(big.clone()));
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").is_some());
    // Another app's (unknown) subscription: 403.
    let reply =
        server.send("POST", "/me/notifications", &[("Authorization", &auth), ("X-UNS-ID", "nope")], Some(big.clone()));
    assert_eq!(reply.status, 403);
    // All in order: 413, with the request ids.
    let reply = server.send(
        "POST",
        "/me/notifications",
        &[("Authorization", &auth), ("X-UNS-ID", &uns), ("client-request-id", "big-1")],
        Some(big),
    );
    assert_eq!((reply.status, reply.error_code().as_str()), (413, "payloadTooLarge"));
    assert_eq!(reply.header("client-request-id"), Some("big-1"));
}

#[test]
fn a_subscription_lifetime_beyond_what_a_timestamp_holds_is_refused_at_start_up() {
    // Accepted before, this made every POST /subscriptions overflow (panic) adding it to now.
    let err = Config::from_toml("[subscriptions]\nmax_lifetime_hours = 4000000000\n").unwrap_err();
    assert!(err.to_string().contains("subscriptions.max_lifetime_hours"), "{err}");
    // Ten years is still fine, and works.
    let config = Config::from_toml("[subscriptions]\nmax_lifetime_hours = 87600\n").unwrap();
    let f = fixture(config);
    let created = f.handler.handle(
        Request::new("POST", "/subscriptions")
            .with_header("Authorization", &demo_auth())
            .with_body(r#"{"userId":"tia","expirationDateTime":"2035-12-29T00:00:00Z"}"#),
    );
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
}

#[test]
fn no_feed_route_lets_an_app_read_or_change_another_apps_notifications() {
    let f = fixture(Config::from_toml(TWO_APPS).unwrap());
    let h = &f.handler;
    let mine = json_of(&subscribe(h, &demo_auth(), "alice"))["id"].as_str().unwrap().to_owned();
    let theirs = json_of(&subscribe(h, "Bearer other-token", "alice"))["id"].as_str().unwrap().to_owned();
    let call = |auth: &str, uns: &str, method: &str, path: &str, body: Option<&str>| {
        let mut request = Request::new(method, path).with_header("Authorization", auth).with_header("X-UNS-ID", uns);
        if let Some(body) = body {
            request = request.with_body(body.to_owned());
        }
        h.handle(request)
    };
    let posted = call(
        &demo_auth(),
        &mine,
        "POST",
        "/me/notifications",
        Some(
            r#"{"targetHostName":"demo.notifeed.local","appNotificationId":"a","groupName":"g","payload":{"rawContent":"secret"}}"#,
        ),
    );
    assert_eq!(posted.status, 201);
    let id = json_of(&posted)["id"].as_str().unwrap().to_owned();
    let by_id = format!("/me/notifications/{id}");
    let patch = Some(r#"{"readState":"Read"}"#);
    let routes: [(&str, &str, Option<&str>); 6] = [
        ("GET", "/me/notifications", None),
        ("GET", &by_id, None),
        ("PATCH", &by_id, patch),
        ("DELETE", &by_id, None),
        ("DELETE", "/me/notifications?groupName=g", None),
        ("GET", "/me/notifications/delta", None),
    ];
    // With demo's subscription: refused on every route.
    for (method, path, body) in routes {
        let reply = call("Bearer other-token", &mine, method, path, body);
        assert_eq!(reply.status, 403, "{method} {path}");
    }
    // With its own subscription for the same user: its own (empty) feed only.
    for (method, path, body) in routes {
        let reply = call("Bearer other-token", &theirs, method, path, body);
        assert!(!String::from_utf8_lossy(&reply.body).contains("secret"), "{method} {path}");
        assert!(matches!(reply.status, 200 | 404), "{method} {path}: {}", reply.status);
    }
    // demo's notification is untouched.
    let got = call(&demo_auth(), &mine, "GET", &by_id, None);
    assert_eq!((got.status, json_of(&got)["readState"].as_str()), (200, Some("Unread")));
    // And a subscription id is usable only by its app, also on /subscriptions.
    let other = [("Authorization", "Bearer other-token")];
    for method in ["GET", "DELETE"] {
        let mut request = Request::new(method, &format!("/subscriptions/{mine}"));
        request.headers = other.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(h.handle(request).status, 404);
    }
}
