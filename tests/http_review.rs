//! Findings of the review of the HTTP handler and server (issue 4), each pinned by a test that
//! failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_common::{demo_auth, open_log_store};
use notifeed::config::Config;
use notifeed::handler::{Handler, Request, Response};
use notifeed::{FeedStore, ManualClock, SharedClock};
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
