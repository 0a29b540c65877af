//! Every error the request handler can answer with, and the one place each becomes an HTTP
//! status and Graph's error body:
//!
//! ```json
//! {"error": {"code": "invalidPayload", "message": "payload.visualContent.title is required",
//!            "innerError": {"request-id": "…", "date": "2026-01-01T00:00:00Z"}}}
//! ```

use jiff::Timestamp;
use serde_json::json;

use crate::contract::ContractError;
use crate::handler::Response;
use crate::model::format_timestamp;
use crate::store::StoreError;

/// Why a request failed. [`HandlerError::status`] gives each variant its one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The body breaks the notification contract (400, 401 for `@odata.type`, 413).
    #[error("the body {0}")]
    Contract(#[from] ContractError),
    /// No route has this path. 404.
    #[error("no resource at {path}")]
    NoRoute {
        /// The path asked for.
        path: String,
    },
    /// The path exists but not with this method. 405 with `Allow`.
    #[error("method {method} is not supported on this path; allowed: {}", allow.join(", "))]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the path supports.
        allow: &'static [&'static str],
    },
    /// A header the API refuses (`If-Modified-Since`, `If-Range`). 400.
    #[error("the header {name} is not supported")]
    UnsupportedHeader {
        /// The header.
        name: &'static str,
    },
    /// A `Content-Encoding` other than gzip, deflate or identity. 415.
    #[error("Content-Encoding {encoding:?} is not supported; use gzip or deflate")]
    UnsupportedEncoding {
        /// The encoding named.
        encoding: String,
    },
    /// A `Content-Type` other than JSON. 415.
    #[error("Content-Type {content_type:?} is not supported; use application/json")]
    UnsupportedContentType {
        /// The type named.
        content_type: String,
    },
    /// The body is larger than the limit, as sent or once decoded. 413.
    #[error("the body is larger than {limit} bytes{}", if *.decoded { " once decoded" } else { "" })]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// Whether the limit was hit while decoding gzip/deflate.
        decoded: bool,
    },
    /// The body claims an encoding but is not valid in it. 400.
    #[error("the body is not valid {encoding}: {detail}")]
    BadEncoding {
        /// The encoding.
        encoding: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// No bearer token, or one no app has. 401 with `WWW-Authenticate`.
    #[error("{reason}")]
    Unauthenticated {
        /// What was wrong with the credentials (never the token itself).
        reason: &'static str,
    },
    /// The caller is on the blocked list. 403.
    #[error("the caller {app_id} is blocked")]
    Blocked {
        /// The caller's app id.
        app_id: String,
    },
    /// The caller may not act for this user or app. 403.
    #[error("{reason}")]
    Forbidden {
        /// Why, naming the header or field.
        reason: String,
    },
    /// A token bucket is empty. 406 with `Retry-After`.
    #[error("too many requests for this {scope}; retry after {retry_after_seconds} seconds")]
    Throttled {
        /// `caller` or `user`.
        scope: &'static str,
        /// Whole seconds until a request would pass.
        retry_after_seconds: u64,
    },
    /// A malformed query option, header value or request field. 400.
    #[error("{field} {problem}")]
    BadRequest {
        /// The query option, header or field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No such live notification, or no such subscription of this app. 404.
    #[error("{what} {id} was not found")]
    NotFound {
        /// `notification` or `subscription`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The delta token is older than what the feed remembers. 410.
    #[error(
        "the delta token is too old: list /me/notifications again, then call /me/notifications/delta without a token for a fresh one"
    )]
    ResyncRequired,
    /// The store failed. 500 (503 when poisoned).
    #[error("storage error: {0}")]
    Store(StoreError),
    /// Something else on the server failed (the subscription file). 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(c) => HandlerError::Contract(c),
            StoreError::StaleToken => HandlerError::ResyncRequired,
            StoreError::InvalidToken { token } => {
                HandlerError::BadRequest { field: "token".into(), problem: format!("{token:?} is not a valid token") }
            }
            StoreError::InvalidFeedKey { reason } => HandlerError::BadRequest {
                field: "the user and host name".into(),
                problem: format!("form a feed key that {reason}"),
            },
            other => HandlerError::Store(other),
        }
    }
}

impl HandlerError {
    /// The HTTP status of this error: the only place statuses are chosen.
    pub fn status(&self) -> u16 {
        match self {
            HandlerError::Contract(c) => c.http_status(),
            HandlerError::NoRoute { .. } | HandlerError::NotFound { .. } => 404,
            HandlerError::MethodNotAllowed { .. } => 405,
            HandlerError::UnsupportedHeader { .. }
            | HandlerError::BadEncoding { .. }
            | HandlerError::BadRequest { .. } => 400,
            HandlerError::UnsupportedEncoding { .. } | HandlerError::UnsupportedContentType { .. } => 415,
            HandlerError::BodyTooLarge { .. } => 413,
            HandlerError::Unauthenticated { .. } => 401,
            HandlerError::Blocked { .. } | HandlerError::Forbidden { .. } => 403,
            HandlerError::Throttled { .. } => 406,
            HandlerError::ResyncRequired => 410,
            HandlerError::Store(StoreError::Poisoned) => 503,
            HandlerError::Store(_) | HandlerError::Internal(_) => 500,
        }
    }

    /// The Graph error code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            HandlerError::Contract(c) => c.code(),
            HandlerError::NoRoute { .. } => "notFound",
            HandlerError::NotFound { .. } => "itemNotFound",
            HandlerError::MethodNotAllowed { .. } => "methodNotAllowed",
            HandlerError::UnsupportedHeader { .. }
            | HandlerError::BadEncoding { .. }
            | HandlerError::BadRequest { .. } => "invalidRequest",
            HandlerError::UnsupportedEncoding { .. } | HandlerError::UnsupportedContentType { .. } => {
                "unsupportedMediaType"
            }
            HandlerError::BodyTooLarge { .. } => "payloadTooLarge",
            HandlerError::Unauthenticated { .. } => "InvalidAuthenticationToken",
            HandlerError::Blocked { .. } | HandlerError::Forbidden { .. } => "accessDenied",
            HandlerError::Throttled { .. } => "throttled",
            HandlerError::ResyncRequired => "resyncRequired",
            HandlerError::Store(StoreError::Poisoned) => "serviceNotAvailable",
            HandlerError::Store(_) | HandlerError::Internal(_) => "generalException",
        }
    }

    /// The response: status, the headers this error demands (`Allow`, `WWW-Authenticate`,
    /// `Retry-After`) and Graph's error body.
    pub fn to_response(&self, request_id: &str, now: Timestamp) -> Response {
        let body = json!({
            "error": {
                "code": self.code(),
                "message": self.to_string(),
                "innerError": { "request-id": request_id, "date": format_timestamp(now) },
            }
        });
        let mut response = Response::json(self.status(), &body);
        match self {
            HandlerError::MethodNotAllowed { allow, .. } => response.set_header("Allow", allow.join(", ")),
            HandlerError::Unauthenticated { .. } => {
                response.set_header("WWW-Authenticate", "Bearer realm=\"notifeed\"".to_owned());
            }
            HandlerError::Throttled { retry_after_seconds, .. } => {
                response.set_header("Retry-After", retry_after_seconds.to_string());
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_graph_shape_and_names_the_request() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let r = HandlerError::UnsupportedHeader { name: "If-Range" }.to_response("rid-1", now);
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "invalidRequest");
        assert_eq!(v["error"]["message"], "the header If-Range is not supported");
        assert_eq!(v["error"]["innerError"]["request-id"], "rid-1");
        assert_eq!(v["error"]["innerError"]["date"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn throttled_carries_retry_after_and_method_not_allowed_carries_allow() {
        let now = Timestamp::UNIX_EPOCH;
        let r = HandlerError::Throttled { scope: "user", retry_after_seconds: 3 }.to_response("r", now);
        assert_eq!((r.status, r.header("retry-after")), (406, Some("3")));
        let r = HandlerError::MethodNotAllowed { method: "PUT".into(), allow: &["GET", "POST"] }.to_response("r", now);
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));
        let r = HandlerError::Unauthenticated { reason: "no token" }.to_response("r", now);
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    }

    #[test]
    fn stale_token_maps_to_gone() {
        assert_eq!(HandlerError::from(StoreError::StaleToken).status(), 410);
        assert_eq!(HandlerError::from(StoreError::Poisoned).status(), 503);
    }
}
