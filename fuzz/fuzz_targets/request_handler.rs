//! The request handler on arbitrary requests: method, path and query, headers, and bodies that
//! are raw bytes or notification-shaped JSON built from fuzzed fields, sent plain or compressed
//! (gzip, zlib or raw deflate, through flate2) under any `Content-Encoding`.
//!
//! A run is a short session over one fresh `LogStore` (on the in-memory file system) and one
//! handler, so later requests can use the subscription and notification ids earlier ones
//! created. Checked for every response: nothing panics; the status is one the contract allows
//! (issue 4's table plus the extension endpoints: 200, 201, 204, 400, 401, 403, 404, 405, 406,
//! 410, 413, 415; never 500 or 503 over a healthy store); `request-id` is set; 405 carries
//! `Allow`, 401 `WWW-Authenticate`, 406 `Retry-After`; every non-204 body is JSON, and an error
//! body has Graph's `error.code` and `error.message`.
#![no_main]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arbitrary::Arbitrary;
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use jiff::SignedDuration;
use libfuzzer_sys::fuzz_target;
use notifeed::config::{AppConfig, Config, DEMO_BEARER_TOKEN, Secret};
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::handler::{Handler, Request};
use notifeed::{FeedStore, ManualClock, SharedClock};

const ALLOWED: [u16; 12] = [200, 201, 204, 400, 401, 403, 404, 405, 406, 410, 413, 415];
const OTHER_TOKEN: &str = "other-app-token";
const BLOCKED_TOKEN: &str = "blocked-app-token";

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
    Put,
    Head,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Id {
    LastSubscription,
    LastNotification,
    Literal(String),
}

#[derive(Arbitrary, Debug)]
enum Prefix {
    None,
    Beta,
    V1,
}

#[derive(Arbitrary, Debug)]
enum Target {
    Health,
    Notifications,
    Notification(Id),
    Delta,
    Subscriptions,
    Subscription(Id),
    Literal(String),
}

#[derive(Arbitrary, Debug)]
enum QueryPart {
    /// The `$deltatoken` or `$skiptoken` of the last delta answer (as its link gave it).
    LastDeltaLink,
    Top(String),
    SkipToken(String),
    DeltaToken(String),
    FilterGroup(String),
    GroupName(String),
    Other(String, String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    DemoBearer,
    OtherBearer,
    BlockedBearer,
    LastSubscription,
    Literal(String),
}

#[derive(Arbitrary, Debug)]
struct Header {
    name: HeaderName,
    value: Value,
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    Authorization,
    UnsId,
    ContentType,
    ContentEncoding,
    Prefer,
    ClientRequestId,
    Host,
    IfModifiedSince,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(i64),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

/// Object keys: mostly the contract's own names, so the fuzzer reaches deep validation.
#[derive(Arbitrary, Debug)]
enum Key {
    TargetHostName,
    AppNotificationId,
    ExpirationDateTime,
    GroupName,
    Payload,
    RawContent,
    VisualContent,
    Title,
    Body,
    TargetPolicy,
    PlatformTypes,
    Priority,
    DisplayTimeToLive,
    FallbackPolicy,
    OdataType,
    ReadState,
    UserActionState,
    UserId,
    Other(String),
}

impl Key {
    fn name(&self) -> &str {
        match self {
            Key::TargetHostName => "targetHostName",
            Key::AppNotificationId => "appNotificationId",
            Key::ExpirationDateTime => "expirationDateTime",
            Key::GroupName => "groupName",
            Key::Payload => "payload",
            Key::RawContent => "rawContent",
            Key::VisualContent => "visualContent",
            Key::Title => "title",
            Key::Body => "body",
            Key::TargetPolicy => "targetPolicy",
            Key::PlatformTypes => "platformTypes",
            Key::Priority => "priority",
            Key::DisplayTimeToLive => "displayTimeToLive",
            Key::FallbackPolicy => "fallbackPolicy",
            Key::OdataType => "@odata.type",
            Key::ReadState => "readState",
            Key::UserActionState => "userActionState",
            Key::UserId => "userId",
            Key::Other(s) => s,
        }
    }
}

impl Json {
    fn value(&self, depth: usize) -> serde_json::Value {
        use serde_json::Value as V;
        if depth > 12 {
            return V::Null;
        }
        match self {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(*b),
            Json::Number(n) => V::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(V::Null, V::Number),
            Json::String(s) => V::String(s.clone()),
            Json::Array(items) => V::Array(items.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Object(fields) => {
                V::Object(fields.iter().map(|(k, j)| (k.name().to_owned(), j.value(depth + 1))).collect())
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum BodyContent {
    Empty,
    Raw(Vec<u8>),
    Json(Json),
    /// A valid seed notification with a fuzzed appNotificationId and group: reaches the store.
    Notification {
        app_id: String,
        group: Option<String>,
        title: String,
        expires_in_hours: Option<u16>,
    },
    /// A subscription request for a fuzzed user.
    Subscription {
        user: String,
    },
    /// `times` × 64 copies of `byte`: with gzip or deflate a tiny body that decodes past the
    /// limits (413).
    Repeated {
        byte: u8,
        times: u16,
    },
}

#[derive(Arbitrary, Debug)]
enum Coding {
    Plain,
    Gzip(u8),
    Zlib(u8),
    Deflate(u8),
    /// Compressed, then cut short.
    TruncatedGzip(u16),
}

#[derive(Arbitrary, Debug)]
struct FuzzRequest {
    method: Method,
    prefix: Prefix,
    target: Target,
    trailing_slash: bool,
    query: Vec<QueryPart>,
    /// The usual credentials (demo bearer and the last subscription), before `headers`.
    credentials: bool,
    headers: Vec<Header>,
    body: BodyContent,
    coding: Coding,
    /// Moves the clock forward by this many seconds first.
    advance: u16,
}

#[derive(Default)]
struct Session {
    subscription: Option<String>,
    notification: Option<String>,
    /// `$deltatoken=…` or `$skiptoken=…` from the last delta answer's link.
    delta: Option<String>,
}

impl Session {
    fn id(&self, id: &Id) -> String {
        match id {
            Id::LastSubscription => self.subscription.clone().unwrap_or_default(),
            Id::LastNotification => self.notification.clone().unwrap_or_default(),
            Id::Literal(s) => s.clone(),
        }
    }

    fn value(&self, v: &Value) -> String {
        match v {
            Value::DemoBearer => format!("Bearer {DEMO_BEARER_TOKEN}"),
            Value::OtherBearer => format!("Bearer {OTHER_TOKEN}"),
            Value::BlockedBearer => format!("Bearer {BLOCKED_TOKEN}"),
            Value::LastSubscription => self.subscription.clone().unwrap_or_default(),
            Value::Literal(s) => s.clone(),
        }
    }
}

fn compress(data: &[u8], coding: &Coding) -> (Vec<u8>, Option<&'static str>) {
    let level = |l: u8| Compression::new(u32::from(l % 10));
    let out = match coding {
        Coding::Plain => return (data.to_vec(), None),
        Coding::Gzip(l) => {
            let mut e = GzEncoder::new(Vec::new(), level(*l));
            let _ = e.write_all(data);
            (e.finish(), "gzip")
        }
        Coding::Zlib(l) => {
            let mut e = ZlibEncoder::new(Vec::new(), level(*l));
            let _ = e.write_all(data);
            (e.finish(), "deflate")
        }
        Coding::Deflate(l) => {
            let mut e = DeflateEncoder::new(Vec::new(), level(*l));
            let _ = e.write_all(data);
            (e.finish(), "deflate")
        }
        Coding::TruncatedGzip(n) => {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            let _ = e.write_all(data);
            let mut bytes = e.finish().unwrap_or_default();
            bytes.truncate(usize::from(*n));
            (Ok(bytes), "gzip")
        }
    };
    (out.0.unwrap_or_default(), Some(out.1))
}

fn build(r: &FuzzRequest, s: &Session) -> Request {
    let method = match &r.method {
        Method::Get => "GET".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Other(m) => m.clone(),
    };
    let mut path = match r.prefix {
        Prefix::None => String::new(),
        Prefix::Beta => "/beta".to_owned(),
        Prefix::V1 => "/v1.0".to_owned(),
    };
    match &r.target {
        Target::Health => path.push_str("/health"),
        Target::Notifications => path.push_str("/me/notifications"),
        Target::Notification(id) => path.push_str(&format!("/me/notifications/{}", s.id(id))),
        Target::Delta => path.push_str("/me/notifications/delta"),
        Target::Subscriptions => path.push_str("/subscriptions"),
        Target::Subscription(id) => path.push_str(&format!("/subscriptions/{}", s.id(id))),
        Target::Literal(p) => path.push_str(p),
    }
    if r.trailing_slash {
        path.push('/');
    }
    let parts: Vec<String> = r
        .query
        .iter()
        .map(|q| match q {
            QueryPart::LastDeltaLink => s.delta.clone().unwrap_or_default(),
            QueryPart::Top(v) => format!("$top={v}"),
            QueryPart::SkipToken(v) => format!("$skiptoken={v}"),
            QueryPart::DeltaToken(v) => format!("$deltatoken={v}"),
            QueryPart::FilterGroup(v) => format!("$filter=groupName eq '{v}'"),
            QueryPart::GroupName(v) => format!("groupName={v}"),
            QueryPart::Other(k, v) => format!("{k}={v}"),
            QueryPart::Raw(v) => v.clone(),
        })
        .collect();
    if !parts.is_empty() {
        path.push('?');
        path.push_str(&parts.join("&"));
    }
    let mut request = Request::new(&method, &path);
    if r.credentials {
        request = request.with_header("Authorization", &format!("Bearer {DEMO_BEARER_TOKEN}"));
        if let Some(sub) = &s.subscription {
            request = request.with_header("X-UNS-ID", sub);
        }
    }
    let data = match &r.body {
        BodyContent::Empty => Vec::new(),
        BodyContent::Raw(bytes) => bytes.clone(),
        BodyContent::Json(j) => j.value(0).to_string().into_bytes(),
        BodyContent::Notification { app_id, group, title, expires_in_hours } => {
            let mut v = serde_json::json!({
                "targetHostName": notifeed::config::DEMO_APP_HOST_NAME,
                "appNotificationId": app_id,
                "payload": { "visualContent": { "title": title } },
            });
            if let Some(g) = group {
                v["groupName"] = serde_json::Value::String(g.clone());
            }
            if let Some(h) = expires_in_hours {
                let at = jiff::Timestamp::from_second(1_767_225_600 + i64::from(*h) * 3600).unwrap_or_default();
                v["expirationDateTime"] = serde_json::Value::String(at.to_string());
            }
            v.to_string().into_bytes()
        }
        BodyContent::Subscription { user } => serde_json::json!({ "userId": user }).to_string().into_bytes(),
        BodyContent::Repeated { byte, times } => vec![*byte; usize::from(*times % 4096) * 64],
    };
    let (body, coding) = compress(&data, &r.coding);
    if let Some(c) = coding {
        request = request.with_header("Content-Encoding", c);
    }
    for h in &r.headers {
        let name = match &h.name {
            HeaderName::Authorization => "Authorization",
            HeaderName::UnsId => "X-UNS-ID",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::Prefer => "Prefer",
            HeaderName::ClientRequestId => "client-request-id",
            HeaderName::Host => "Host",
            HeaderName::IfModifiedSince => "If-Modified-Since",
            HeaderName::Other(n) => n.as_str(),
        };
        request = request.with_header(name, &s.value(&h.value));
    }
    request.with_body(body)
}

fn config() -> Config {
    let mut config = Config::default();
    let app = |id: &str, host: &str, token: &str| AppConfig {
        id: id.to_owned(),
        host_name: host.to_owned(),
        bearer_tokens: vec![Secret::new(token)],
    };
    config.apps.push(app("other", "other.example", OTHER_TOKEN));
    config.apps.push(app("blocked", "blocked.example", BLOCKED_TOKEN));
    config.blocked_callers.push("blocked".to_owned());
    // Long polls would wait in real time: the fuzzer gets answers at once.
    config.limits.max_wait_seconds = 0;
    config.limits.feed_capacity = 8;
    // Small buckets, so a session of 16 requests can be throttled (406) and refill as the
    // clock moves.
    config.rate_limits.caller_burst = 6;
    config.rate_limits.caller_per_second = 0.5;
    config.rate_limits.user_burst = 4;
    // The smallest request limit (1 KiB), so 413 is reachable as sent and once decoded.
    config.limits.max_request_bytes = 1024;
    config.rate_limits.user_per_second = 0.25;
    config
}

fn check(request: &Request, status: u16, response: &notifeed::handler::Response) {
    assert!(ALLOWED.contains(&status), "status {status} for {request:?}: {}", String::from_utf8_lossy(&response.body));
    assert!(response.header("request-id").is_some_and(|v| !v.is_empty()), "no request-id");
    assert!(response.header("client-request-id").is_some(), "no client-request-id");
    match status {
        405 => assert!(response.header("allow").is_some(), "405 without Allow"),
        406 => assert!(response.header("retry-after").is_some(), "406 without Retry-After"),
        _ => {}
    }
    if status == 204 {
        assert!(response.body.is_empty(), "204 with a body");
        return;
    }
    let body: serde_json::Value = match serde_json::from_slice(&response.body) {
        Ok(v) => v,
        Err(e) => panic!("status {status} with a body that is not JSON ({e}): {:?}", response.body),
    };
    if status >= 400 {
        assert!(body["error"]["code"].is_string(), "error body without error.code: {body}");
        assert!(body["error"]["message"].is_string(), "error body without error.message: {body}");
    }
    if status == 401 {
        // Two kinds of 401 in the table: credentials (with WWW-Authenticate) and an
        // `@odata.type` naming an invalid data type.
        let code = body["error"]["code"].as_str().unwrap_or_default();
        match code {
            "InvalidAuthenticationToken" => {
                assert!(response.header("www-authenticate").is_some(), "401 for credentials without WWW-Authenticate")
            }
            "invalidDataType" => {}
            other => panic!("401 with error code {other:?}"),
        }
    }
}

fuzz_target!(|requests: Vec<FuzzRequest>| {
    let clock = Arc::new(ManualClock::at_epoch_2026());
    let shared: SharedClock = clock.clone();
    let fs = FaultFileSystem::new();
    let mut log_config = LogConfig::default();
    log_config.options.removal_log_capacity = 2;
    let store = match LogStore::open_with_fs(Path::new("/db"), log_config, shared.clone(), Arc::new(fs)) {
        Ok(store) => Arc::new(store),
        Err(e) => panic!("a fresh store does not open: {e}"),
    };
    let handler = match Handler::new(store.clone() as Arc<dyn FeedStore>, shared, config(), None) {
        Ok(h) => h,
        Err(e) => panic!("the handler does not start: {e}"),
    };
    let mut session = Session::default();
    let mut statuses = Vec::new();
    for r in requests.iter().take(16) {
        clock.advance(SignedDuration::from_secs(i64::from(r.advance)));
        let request = build(r, &session);
        let response = handler.handle(request.clone());
        check(&request, response.status, &response);
        statuses.push((request.method.clone(), response.status));
        if response.status == 200
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&response.body)
        {
            let link = v["@odata.deltaLink"].as_str().or(v["@odata.nextLink"].as_str()).unwrap_or_default();
            if let Some((_, query)) = link.split_once('?') {
                session.delta = Some(query.to_owned());
            }
        }
        if response.status == 201 {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&response.body)
                && let Some(id) = v["id"].as_str()
            {
                if request.path().contains("subscriptions") {
                    session.subscription = Some(id.to_owned());
                } else {
                    session.notification = Some(id.to_owned());
                }
            }
        }
    }
    assert!(!store.is_poisoned(), "the store poisoned on the in-memory file system");
    if std::env::var_os("NOTIFEED_FUZZ_STATS").is_some() {
        eprintln!("statuses {statuses:?}");
    }
});
