//! The request handler: Graph's notification endpoints over any [`FeedStore`], free of any HTTP
//! framework.
//!
//! A [`Request`] (method, path and query, headers, body bytes) goes in, a [`Response`] (status,
//! headers, body bytes) comes out; the server around it only moves bytes. With axum:
//!
//! ```ignore
//! async fn serve(State(handler): State<Arc<Handler>>, request: axum::extract::Request) -> axum::response::Response {
//!     let (parts, body) = request.into_parts();
//!     let body = axum::body::to_bytes(body, handler.max_request_bytes()).await;
//!     let request = Request::from_parts(parts.method.as_str(), &parts.uri.to_string(), /* headers */, body);
//!     let response = tokio::task::spawn_blocking(move || handler.handle(request)).await;
//!     /* copy status, headers and body into an axum response */
//! }
//! ```
//!
//! [`crate::server`] is that wrapper in full.
//!
//! # Endpoints
//! | Path | Methods |
//! |---|---|
//! | `/me/notifications` | `POST` (the seed), `GET` (`$top`, `$skiptoken`, `$filter=groupName eq '…'`), `DELETE ?groupName=` |
//! | `/me/notifications/{id}` | `GET`, `PATCH` (`readState`, `userActionState`), `DELETE` |
//! | `/me/notifications/delta` | `GET` (`$deltatoken`, `$skiptoken`, `$top`, `Prefer: wait=N`) |
//! | `/subscriptions` | `POST` `{"userId": …, "expirationDateTime": …}` |
//! | `/subscriptions/{id}` | `GET`, `DELETE` |
//! | `/health` | `GET` |
//!
//! Every `/me` request needs `Authorization: Bearer <token>` (the app) and `X-UNS-ID` (a
//! subscription of that app, naming the user); the feed is `(user, app host name)`, so an app
//! only ever sees its own feeds. Every response carries `request-id` and `client-request-id`.
//! Statuses come from one place, [`errors::HandlerError::status`].
//!
//! Checks run in this order: route and method (404, 405), `If-Modified-Since`/`If-Range` (400),
//! bearer token (401), blocked list (403), `X-UNS-ID` (403), throttling (406), `Content-Type`
//! and `Content-Encoding` (415), size (413), then the body (400, 401, 413) and
//! `targetHostName` (403). A body the transport stopped reading (over
//! [`Handler::max_request_bytes`]) gets the checks up to throttling, then 413.

mod auth;
mod delta;
pub mod encoding;
pub mod errors;
mod notifications;
mod odata;
mod routes;
mod subscriptions;
mod throttle;

use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

pub use auth::Caller;
pub use errors::HandlerError;
pub use subscriptions::{SUBSCRIPTIONS_FILE, Subscription};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::contract::Limits;
use crate::store::{FeedKey, FeedStore};

/// A request, as any HTTP server hands it over.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The method, such as `POST` (case-sensitive, as HTTP says).
    pub method: String,
    /// The path and the query string: `/me/notifications?$top=5`.
    pub path_and_query: String,
    /// The headers, names in any case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as received (still gzip- or deflate-encoded if `Content-Encoding` says so).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with a method and path, no headers and no body.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        Self { method: method.to_owned(), path_and_query: path_and_query.to_owned(), ..Self::default() }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name`, matched in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split_once('?').map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The query string, without the `?` (empty when none).
    pub fn query(&self) -> &str {
        self.path_and_query.split_once('?').map_or("", |(_, q)| q)
    }

    /// `http://<Host>` when the request names a plausible host, else empty (links are then
    /// relative).
    fn base_url(&self) -> String {
        match self.header("host").map(str::trim) {
            Some(host)
                if !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)) =>
            {
                format!("http://{host}")
            }
            _ => String::new(),
        }
    }
}

/// A response, for any HTTP server to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers (names as Graph spells them; HTTP treats them case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body and `Content-Type: application/json`.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new() }
    }

    /// The first value of header `name`, matched in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets header `name`, replacing any value it had.
    pub fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
    }
}

/// The caller, its subscription and the feed they name: what every `/me` endpoint acts on.
#[derive(Debug)]
pub(crate) struct FeedContext {
    subscription: Subscription,
    feed: FeedKey,
}

/// The request handler. Share one across threads (`Arc<Handler>`); every method takes `&self`.
pub struct Handler {
    store: Arc<dyn FeedStore>,
    clock: SharedClock,
    config: Config,
    limits: Limits,
    auth: auth::Authenticator,
    subscriptions: subscriptions::Subscriptions,
    throttle: throttle::Throttle,
    signals: delta::FeedSignals,
}

impl std::fmt::Debug for Handler {
    /// Prints the configuration (tokens redacted), not the store.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler over `store`, reading time from `clock`, configured by `config`. Subscriptions
    /// are kept in `data_dir/subscriptions.json` (see the `subscriptions` module) or, with
    /// `None`, in memory only.
    ///
    /// # Errors
    /// [`HandlerError::Internal`] when the subscription file exists but cannot be read or
    /// parsed.
    pub fn new(
        store: Arc<dyn FeedStore>,
        clock: SharedClock,
        config: Config,
        data_dir: Option<&Path>,
    ) -> Result<Self, HandlerError> {
        Ok(Self {
            store,
            clock,
            limits: config.contract_limits(),
            auth: auth::Authenticator::new(&config),
            subscriptions: subscriptions::Subscriptions::open(data_dir)?,
            throttle: throttle::Throttle::new(&config.rate_limits),
            signals: delta::FeedSignals::default(),
            config,
        })
    }

    /// The largest body a transport should buffer; beyond it, call
    /// [`Handler::handle_oversized`] instead of reading the rest.
    pub fn max_request_bytes(&self) -> usize {
        self.config.limits.max_request_bytes
    }

    /// Answers a request. Never panics; every failure is a Graph error response. May block: a
    /// delta request with `Prefer: wait=N` waits up to N seconds, and store calls do I/O.
    pub fn handle(&self, mut request: Request) -> Response {
        let now = self.clock.now();
        let result = self.dispatch(&mut request, now);
        self.finish(&request, result, now)
    }

    /// Ends every `Prefer: wait` long poll now and answers later ones without waiting: call it
    /// when the server starts shutting down, so in-flight requests finish promptly.
    pub fn stop_waiting(&self) {
        self.signals.stop();
    }

    /// How long a server shutting down waits for requests in flight
    /// (`shutdown_grace_seconds`).
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.shutdown_grace_seconds)
    }

    /// How many delta requests are waiting (`Prefer: wait`) right now; at most
    /// `limits.max_waiting_polls`.
    pub fn waiting_polls(&self) -> usize {
        self.signals.waiting()
    }

    /// Answers a request whose body the transport stopped reading because it exceeded
    /// [`Handler::max_request_bytes`]: the checks that come before the body in the usual order
    /// (route and method, headers, token, `X-UNS-ID`, throttling), then 413, with the usual
    /// headers.
    pub fn handle_oversized(&self, request: &Request) -> Response {
        let now = self.clock.now();
        let result = self
            .check_before_body(request, now)
            .and_then(|()| Err(HandlerError::BodyTooLarge { limit: self.max_request_bytes(), decoded: false }));
        self.finish(request, result, now)
    }

    /// What [`Handler::dispatch`] checks before it reads a body.
    fn check_before_body(&self, request: &Request, now: Timestamp) -> Result<(), HandlerError> {
        let route = Self::route(request)?;
        if route == routes::Route::Health {
            return Ok(());
        }
        Self::refuse_conditional_headers(request)?;
        let caller = self.auth.authenticate(request.header("authorization"))?;
        match route {
            routes::Route::Subscriptions | routes::Route::Subscription(_) => {
                self.throttle.admit(&caller.app_id, None, now)
            }
            _ => self.feed_context(request, &caller, now).map(drop),
        }
    }

    /// The route of the request, if its method is allowed there.
    fn route(request: &Request) -> Result<routes::Route, HandlerError> {
        let route = routes::Route::of(request.path())
            .ok_or_else(|| HandlerError::NoRoute { path: request.path().chars().take(256).collect() })?;
        let allow = route.allow();
        if !allow.contains(&request.method.as_str()) {
            return Err(HandlerError::MethodNotAllowed { method: request.method.chars().take(32).collect(), allow });
        }
        Ok(route)
    }

    fn refuse_conditional_headers(request: &Request) -> Result<(), HandlerError> {
        for name in ["If-Modified-Since", "If-Range"] {
            if request.header(name).is_some() {
                return Err(HandlerError::UnsupportedHeader { name });
            }
        }
        Ok(())
    }

    /// The response to `request` failing with `error` before the handler could run (for
    /// transports: a body that could not be read), with the usual headers and error body.
    pub fn error_response(&self, request: &Request, error: HandlerError) -> Response {
        self.finish(request, Err(error), self.clock.now())
    }

    fn finish(&self, request: &Request, result: Result<Response, HandlerError>, now: Timestamp) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut response = result.unwrap_or_else(|e| e.to_response(&request_id, now));
        // Echo the caller's id when it is a sane header value; else use ours, as Graph does.
        let client_request_id = request
            .header("client-request-id")
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| request_id.clone(), str::to_owned);
        response.set_header("request-id", request_id);
        response.set_header("client-request-id", client_request_id);
        response
    }

    fn dispatch(&self, request: &mut Request, now: Timestamp) -> Result<Response, HandlerError> {
        let route = Self::route(request)?;
        if route == routes::Route::Health {
            // A store that must be reopened is out of service: a load balancer should stop
            // sending it traffic.
            // No token is needed here, so the reason is a fixed text, never an error's detail.
            let reason = match self.store.check_health() {
                Ok(()) => return Ok(Response::json(200, &serde_json::json!({ "status": "ok" }))),
                Err(crate::StoreError::Poisoned) => {
                    "the store is poisoned by a failed write or sync; restart to recover"
                }
                Err(_) => "the store is unavailable",
            };
            return Ok(Response::json(503, &serde_json::json!({ "status": "unavailable", "reason": reason })));
        }
        Self::refuse_conditional_headers(request)?;
        let caller = self.auth.authenticate(request.header("authorization"))?;
        match route {
            routes::Route::Subscriptions => self.create_subscription(request, &caller, now),
            routes::Route::Subscription(id) => self.subscription(request, &caller, &id, now),
            feed_route => {
                let ctx = self.feed_context(request, &caller, now)?;
                let method = request.method.clone();
                match (feed_route, method.as_str()) {
                    (routes::Route::Notifications, "POST") => self.post_notification(request, &ctx, now),
                    (routes::Route::Notifications, "GET") => self.list_notifications(request, &ctx, now),
                    (routes::Route::Notifications, _) => self.delete_group(request, &ctx),
                    (routes::Route::Delta, _) => self.delta(request, &ctx, now),
                    (routes::Route::Notification(id), "GET") => self.get_notification(&ctx, &id, now),
                    (routes::Route::Notification(id), "PATCH") => self.patch_notification(request, &ctx, &id, now),
                    (routes::Route::Notification(id), _) => self.delete_notification(&ctx, &id),
                    (other, _) => Err(HandlerError::NoRoute { path: format!("{other:?}") }),
                }
            }
        }
    }

    /// Resolves `X-UNS-ID` to the caller's subscription and feed, and throttles.
    fn feed_context(&self, request: &Request, caller: &Caller, now: Timestamp) -> Result<FeedContext, HandlerError> {
        let id = request.header("x-uns-id").map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| {
            HandlerError::Forbidden {
                reason:
                    "the X-UNS-ID header is missing: create a subscription with POST /subscriptions and pass its id"
                        .into(),
            }
        })?;
        let subscription = self.subscriptions.get(id, now).ok_or_else(|| HandlerError::Forbidden {
            reason: "X-UNS-ID names no live subscription (unknown or expired)".into(),
        })?;
        if subscription.app_id != caller.app_id {
            return Err(HandlerError::Forbidden {
                reason: "X-UNS-ID names a subscription of another app: the caller may not act for this user".into(),
            });
        }
        // The feed is (user, the subscription's host name): if the configuration has since given
        // the app another host name, that host name may now be another app's.
        if !subscription.app_host_name.eq_ignore_ascii_case(&caller.host_name) {
            return Err(HandlerError::Forbidden {
                reason: "X-UNS-ID names a subscription made for a host name this app no longer has: create a new one"
                    .into(),
            });
        }
        self.throttle.admit(&caller.app_id, Some(&subscription.user_id), now)?;
        let feed = FeedKey::for_user_app(&subscription.user_id, &subscription.app_host_name)?;
        Ok(FeedContext { subscription, feed })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{ChangeToken, Changes, Counts, ListQuery, Page, StateUpdate, StoreError, SweepStats};
    use crate::{NewNotification, Notification, NotificationId};

    /// A store that fails every call: these tests cover what the handler answers before (or
    /// instead of) touching a store. Its health check reports `Poisoned` when `poisoned`.
    struct FailingStore {
        poisoned: bool,
    }

    fn fail<T>() -> Result<T, StoreError> {
        Err(StoreError::Backend { engine: "test", detail: "unreachable in these tests".into() })
    }

    impl FeedStore for FailingStore {
        fn append(&self, _: &FeedKey, _: NewNotification) -> Result<Notification, StoreError> {
            fail()
        }
        fn get(&self, _: &FeedKey, _: NotificationId) -> Result<Option<Notification>, StoreError> {
            fail()
        }
        fn get_by_app_id(&self, _: &FeedKey, _: &str) -> Result<Option<Notification>, StoreError> {
            fail()
        }
        fn list(&self, _: &FeedKey, _: &ListQuery) -> Result<Page, StoreError> {
            fail()
        }
        fn count(&self, _: &FeedKey) -> Result<Counts, StoreError> {
            fail()
        }
        fn update_state(
            &self,
            _: &FeedKey,
            _: NotificationId,
            _: StateUpdate,
        ) -> Result<Option<Notification>, StoreError> {
            fail()
        }
        fn delete(&self, _: &FeedKey, _: NotificationId) -> Result<bool, StoreError> {
            fail()
        }
        fn delete_by_app_id(&self, _: &FeedKey, _: &str) -> Result<bool, StoreError> {
            fail()
        }
        fn delete_group(&self, _: &FeedKey, _: &str) -> Result<u64, StoreError> {
            fail()
        }
        fn changes(&self, _: &FeedKey, _: Option<ChangeToken>, _: usize) -> Result<Changes, StoreError> {
            fail()
        }
        fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
            fail()
        }
        fn sync(&self) -> Result<(), StoreError> {
            fail()
        }
        fn check_health(&self) -> Result<(), StoreError> {
            if self.poisoned { Err(StoreError::Poisoned) } else { Ok(()) }
        }
    }

    fn handler_over(store: FailingStore) -> Handler {
        let clock: SharedClock = Arc::new(ManualClock::at_epoch_2026());
        Handler::new(Arc::new(store), clock, Config::default(), None).unwrap()
    }

    fn handler() -> Handler {
        handler_over(FailingStore { poisoned: false })
    }

    fn subscribed(h: &Handler) -> String {
        let auth = format!("Bearer {}", crate::config::DEMO_BEARER_TOKEN);
        let r = h.handle(
            Request::new("POST", "/subscriptions").with_header("Authorization", &auth).with_body(r#"{"userId":"u"}"#),
        );
        assert_eq!(r.status, 201);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    #[test]
    fn health_is_200_until_the_store_is_poisoned_then_503() {
        let r = handler().handle(Request::new("GET", "/health"));
        assert_eq!(r.status, 200);
        let r = handler_over(FailingStore { poisoned: true }).handle(Request::new("GET", "/health"));
        assert_eq!(r.status, 503);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], "unavailable");
        assert!(v["reason"].as_str().unwrap().contains("poisoned"), "{v}");
    }

    #[test]
    fn client_request_id_is_echoed_only_when_it_is_a_sane_header_value() {
        let h = handler();
        let r = h.handle(Request::new("GET", "/health").with_header("Client-Request-Id", "abc-123"));
        assert_eq!(r.header("client-request-id"), Some("abc-123"));
        let r = h.handle(Request::new("GET", "/health").with_header("client-request-id", "bad value\r\nx: y"));
        assert_eq!(r.header("client-request-id"), r.header("request-id"));
        assert_ne!(r.header("request-id"), None);
    }

    #[test]
    fn store_failures_become_500_with_graph_error_body() {
        let h = handler();
        let uns = subscribed(&h);
        let auth = format!("Bearer {}", crate::config::DEMO_BEARER_TOKEN);
        let r = h.handle(
            Request::new("GET", "/me/notifications").with_header("Authorization", &auth).with_header("X-UNS-ID", &uns),
        );
        assert_eq!(r.status, 500);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "generalException");
    }

    #[test]
    fn oversized_and_unreadable_bodies_carry_the_request_ids() {
        let h = handler();
        let uns = subscribed(&h);
        let auth = format!("Bearer {}", crate::config::DEMO_BEARER_TOKEN);
        let request = Request::new("POST", "/me/notifications")
            .with_header("client-request-id", "c1")
            .with_header("Authorization", &auth)
            .with_header("X-UNS-ID", &uns);
        let r = h.handle_oversized(&request);
        assert_eq!((r.status, r.header("client-request-id")), (413, Some("c1")));
        let r = h.error_response(
            &request,
            HandlerError::BadRequest { field: "the body".into(), problem: "could not be read".into() },
        );
        assert_eq!((r.status, r.header("client-request-id")), (400, Some("c1")));
    }

    #[test]
    fn request_splits_path_and_query_and_finds_headers_in_any_case() {
        let r = Request::new("GET", "/me/notifications?$top=1").with_header("X-UNS-ID", "s");
        assert_eq!((r.path(), r.query(), r.header("x-uns-id")), ("/me/notifications", "$top=1", Some("s")));
        assert_eq!(Request::new("GET", "/health").query(), "");
        let hosted = Request::new("GET", "/").with_header("Host", "example.org:8080");
        assert_eq!(hosted.base_url(), "http://example.org:8080");
        let hostile = Request::new("GET", "/").with_header("Host", "evil.example/path?");
        assert_eq!(hostile.base_url(), "");
    }
}
