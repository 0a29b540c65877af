//! Shared by the `http_*` tests: a server on an ephemeral port, a real HTTP client, and the
//! seed's example notification.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use notifeed::config::{Config, DEMO_APP_HOST_NAME, DEMO_BEARER_TOKEN};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::handler::Handler;
use notifeed::{FeedStore, SharedClock, SystemClock};
use serde_json::{Value, json};

/// The demo app's `Authorization` header value.
pub fn demo_auth() -> String {
    format!("Bearer {DEMO_BEARER_TOKEN}")
}

/// A reply: status, headers (names lower-case), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The Graph error code of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// The axum app on an ephemeral port, over any store, with the system clock.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn FeedStore>,
    pub data_dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), notifeed::server::ServerError>>>,
}

impl TestServer {
    /// Starts a server with `config` over a fresh `LogStore` (the binary's default engine) in a
    /// temporary data directory, with the system clock.
    pub fn start(config: Config) -> Self {
        let clock: SharedClock = Arc::new(SystemClock);
        let data_dir = tempfile::tempdir().unwrap();
        let store = open_log_store(data_dir.path(), &config, Arc::clone(&clock));
        Self::start_with(config, store, clock, data_dir)
    }

    /// Starts a server over `store`, keeping subscriptions in `data_dir`.
    pub fn start_with(
        config: Config,
        store: Arc<dyn FeedStore>,
        clock: SharedClock,
        data_dir: tempfile::TempDir,
    ) -> Self {
        let handler = Arc::new(Handler::new(Arc::clone(&store), clock, config, Some(data_dir.path())).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(notifeed::server::run(
            listener,
            handler,
            Arc::clone(&store),
            notifeed::server::Background::sweeping(Duration::from_secs(3600)),
            async move {
                let _ = rx.await;
            },
        ));
        Self { base, store, data_dir, runtime: Some(runtime), shutdown: Some(tx), task: Some(task) }
    }

    /// Sends a request; `body` `None` sends none.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        send(&self.base, method, path, headers, body)
    }

    /// Creates a subscription of the demo app for `user`; returns its id.
    pub fn subscribe(&self, user: &str) -> String {
        let body = json!({ "userId": user }).to_string().into_bytes();
        let reply = self.send(
            "POST",
            "/subscriptions",
            &[("Authorization", &demo_auth()), ("Content-Type", "application/json")],
            Some(body),
        );
        assert_eq!(reply.status, 201, "{:?}", String::from_utf8_lossy(&reply.body));
        reply.json()["id"].as_str().unwrap().to_owned()
    }

    /// Posts `body` as the demo app to the feed of subscription `uns`.
    pub fn post(&self, uns: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            "/me/notifications",
            &[("Authorization", &demo_auth()), ("X-UNS-ID", uns), ("Content-Type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    /// GETs `path` as the demo app on the feed of `uns`.
    pub fn get(&self, uns: &str, path: &str) -> Reply {
        self.send("GET", path, &[("Authorization", &demo_auth()), ("X-UNS-ID", uns)], None)
    }

    /// Stops the server (graceful shutdown, then the store's sync).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let (Some(tx), Some(task), Some(runtime)) = (self.shutdown.take(), self.task.take(), self.runtime.take()) {
            let _ = tx.send(());
            runtime.block_on(task).unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_inner();
        }
    }
}

/// A `LogStore` in `data_dir/log`, configured as the binary configures it.
pub fn open_log_store(data_dir: &std::path::Path, config: &Config, clock: SharedClock) -> Arc<dyn FeedStore> {
    let log_config = LogConfig { options: config.store_options(), ..LogConfig::default() };
    Arc::new(LogStore::open(&data_dir.join("log"), log_config, clock).unwrap())
}

/// Sends one request with ureq; statuses are never errors.
pub fn send(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(format!("{base}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let result = match body {
        None => agent.run(builder.body(()).unwrap()),
        Some(bytes) => agent.run(builder.body(bytes).unwrap()),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_vec().unwrap();
    Reply { status, headers, body }
}

/// The seed's example notification for `host`, with an expiration one day ahead.
pub fn seed_example(host: &str, app_notification_id: &str) -> Value {
    let expiration = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    json!({
        "targetHostName": host,
        "appNotificationId": app_notification_id,
        "expirationDateTime": expiration.to_string(),
        "payload": {
            "visualContent": {
                "title": "Hello World!",
                "body": "Notifications are Great!"
            }
        },
        "targetPolicy": {
            "platformTypes": ["windows", "ios", "android"]
        },
        "priority": "High",
        "groupName": "TestGroup",
        "displayTimeToLive": "60"
    })
}

/// The demo host name.
pub fn demo_host() -> &'static str {
    DEMO_APP_HOST_NAME
}
