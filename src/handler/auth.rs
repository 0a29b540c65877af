//! Who is calling: bearer tokens to apps, and the blocked list.

use std::collections::{HashMap, HashSet};

use crate::config::Config;
use crate::handler::errors::HandlerError;

/// An authenticated app service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The app's id (from the config).
    pub app_id: String,
    /// The app's host name, lower-cased: the only `targetHostName` it may use.
    pub host_name: String,
}

/// Resolves `Authorization: Bearer <token>` to a [`Caller`].
pub(crate) struct Authenticator {
    /// Token → caller. Tokens are only kept here, never logged.
    by_token: HashMap<String, Caller>,
    blocked: HashSet<String>,
}

impl std::fmt::Debug for Authenticator {
    /// Never prints a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("tokens", &self.by_token.len()).field("blocked", &self.blocked).finish()
    }
}

impl Authenticator {
    pub(crate) fn new(config: &Config) -> Self {
        let mut by_token = HashMap::new();
        for app in &config.apps {
            let caller = Caller { app_id: app.id.clone(), host_name: app.host_name.to_ascii_lowercase() };
            for token in &app.bearer_tokens {
                by_token.insert(token.expose().to_owned(), caller.clone());
            }
        }
        Self { by_token, blocked: config.blocked_callers.iter().cloned().collect() }
    }

    /// The caller of a request with this `Authorization` header value.
    ///
    /// # Errors
    /// [`HandlerError::Unauthenticated`] when the header is missing, not a bearer token, or an
    /// unknown token; [`HandlerError::Blocked`] when the app is on the blocked list.
    pub(crate) fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, HandlerError> {
        let value =
            authorization.ok_or(HandlerError::Unauthenticated { reason: "the Authorization header is missing" })?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(HandlerError::Unauthenticated {
                reason: "the Authorization header must be \"Bearer <token>\"",
            });
        }
        let caller = self
            .by_token
            .get(token.trim())
            .ok_or(HandlerError::Unauthenticated { reason: "the bearer token is not valid" })?;
        if self.blocked.contains(&caller.app_id) {
            return Err(HandlerError::Blocked { app_id: caller.app_id.clone() });
        }
        Ok(caller.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let config = Config::from_toml(
            "blocked_callers = [\"bad\"]\n\
             [[apps]]\nid = \"good\"\nhost_name = \"Good.Example\"\nbearer_tokens = [\"t1\", \"t2\"]\n\
             [[apps]]\nid = \"bad\"\nhost_name = \"bad.example\"\nbearer_tokens = [\"t3\"]\n",
        )
        .unwrap();
        Authenticator::new(&config)
    }

    #[test]
    fn any_token_of_an_app_authenticates_it_with_any_scheme_case() {
        let a = authenticator();
        let caller = a.authenticate(Some("Bearer t1")).unwrap();
        assert_eq!(caller, Caller { app_id: "good".into(), host_name: "good.example".into() });
        assert_eq!(a.authenticate(Some("bEARER  t2")).unwrap().app_id, "good");
    }

    #[test]
    fn missing_wrong_scheme_and_unknown_tokens_are_unauthenticated() {
        let a = authenticator();
        for header in [None, Some("Basic t1"), Some("Bearer nope"), Some("Bearer"), Some("")] {
            assert!(matches!(a.authenticate(header), Err(HandlerError::Unauthenticated { .. })), "{header:?}");
        }
    }

    #[test]
    fn debug_print_shows_no_token() {
        let printed = format!("{:?}", authenticator());
        assert!(!printed.contains("t1") && !printed.contains("t3"), "{printed}");
    }

    #[test]
    fn blocked_app_is_refused_even_with_a_valid_token() {
        assert!(matches!(authenticator().authenticate(Some("Bearer t3")), Err(HandlerError::Blocked { .. })));
    }
}
