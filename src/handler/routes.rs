//! The paths the handler serves and the methods each allows.

/// A resource the handler knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/health`
    Health,
    /// `/me/notifications`
    Notifications,
    /// `/me/notifications/delta`
    Delta,
    /// `/me/notifications/{id}`
    Notification(String),
    /// `/subscriptions`
    Subscriptions,
    /// `/subscriptions/{id}`
    Subscription(String),
}

impl Route {
    /// Finds the route of `path` (without the query). A trailing `/` and a leading `/beta` or
    /// `/v1.0` (Graph's version segments) are ignored.
    pub(crate) fn of(path: &str) -> Option<Route> {
        let path = path.strip_prefix("/beta").or_else(|| path.strip_prefix("/v1.0")).unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        Some(match segments.as_slice() {
            ["health"] => Route::Health,
            ["me", "notifications"] => Route::Notifications,
            ["me", "notifications", "delta"] => Route::Delta,
            ["me", "notifications", id] if !id.is_empty() => Route::Notification((*id).to_owned()),
            ["subscriptions"] => Route::Subscriptions,
            ["subscriptions", id] if !id.is_empty() => Route::Subscription((*id).to_owned()),
            _ => return None,
        })
    }

    /// The methods the route supports, for `Allow`.
    pub(crate) fn allow(&self) -> &'static [&'static str] {
        match self {
            Route::Health | Route::Delta => &["GET"],
            Route::Notifications => &["GET", "POST", "DELETE"],
            Route::Notification(_) => &["GET", "PATCH", "DELETE"],
            Route::Subscriptions => &["POST"],
            Route::Subscription(_) => &["GET", "DELETE"],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn seed_path_with_trailing_slash_and_version_prefix_routes() {
        assert_eq!(Route::of("/me/notifications/"), Some(Route::Notifications));
        assert_eq!(Route::of("/beta/me/notifications"), Some(Route::Notifications));
        assert_eq!(Route::of("/me/notifications/delta"), Some(Route::Delta));
        assert_eq!(Route::of("/me/notifications/abc"), Some(Route::Notification("abc".into())));
        assert_eq!(Route::of("/subscriptions/s1/"), Some(Route::Subscription("s1".into())));
        assert_eq!(Route::of("/me/notifications/a/b"), None);
        assert_eq!(Route::of("/"), None);
        assert_eq!(Route::of("/me//notifications"), None);
    }
}
