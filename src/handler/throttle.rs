//! Token buckets per caller and per user. Time comes from the injectable clock: nothing here
//! sleeps, a refused request learns how long to wait (`Retry-After`).

use std::collections::HashMap;

use jiff::Timestamp;
use parking_lot::Mutex;

use crate::config::RateLimits;
use crate::handler::errors::HandlerError;

/// Beyond this many buckets, full (idle) buckets are forgotten: a full bucket is the same as no
/// bucket.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Timestamp,
}

/// One family of buckets (callers, or users) sharing a rate and a burst.
#[derive(Debug)]
struct Buckets {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst: f64::from(burst), buckets: Mutex::new(HashMap::new()) }
    }

    /// The tokens of `key`'s bucket at `now`, refilled; a clock that went back refills nothing.
    fn level(&self, bucket: Option<&Bucket>, now: Timestamp) -> f64 {
        match bucket {
            None => self.burst,
            Some(b) => {
                let elapsed = now.duration_since(b.updated).as_secs_f64().max(0.0);
                (b.tokens + elapsed * self.per_second).min(self.burst)
            }
        }
    }

    /// Seconds until a bucket at `level` holds one token, rounded up, at least 1.
    fn retry_after(&self, level: f64) -> u64 {
        let seconds = ((1.0 - level) / self.per_second).ceil();
        if seconds.is_finite() && seconds >= 1.0 { seconds as u64 } else { 1 }
    }
}

/// Rate limits for callers (apps) and users.
#[derive(Debug)]
pub(crate) struct Throttle {
    callers: Buckets,
    users: Buckets,
}

impl Throttle {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            callers: Buckets::new(limits.caller_per_second, limits.caller_burst),
            users: Buckets::new(limits.user_per_second, limits.user_burst),
        }
    }

    /// Takes one token from the caller's bucket and, when the request targets a user, one from
    /// the user's. Takes nothing when either is empty.
    ///
    /// # Errors
    /// [`HandlerError::Throttled`] naming the empty bucket and when to retry.
    pub(crate) fn admit(&self, caller: &str, user: Option<&str>, now: Timestamp) -> Result<(), HandlerError> {
        // Lock order: callers, then users (everywhere), so two requests never deadlock.
        let mut callers = self.callers.buckets.lock();
        let caller_level = self.callers.level(callers.get(caller), now);
        if caller_level < 1.0 {
            return Err(HandlerError::Throttled {
                scope: "caller",
                retry_after_seconds: self.callers.retry_after(caller_level),
            });
        }
        if let Some(user) = user {
            let mut users = self.users.buckets.lock();
            let user_level = self.users.level(users.get(user), now);
            if user_level < 1.0 {
                return Err(HandlerError::Throttled {
                    scope: "user",
                    retry_after_seconds: self.users.retry_after(user_level),
                });
            }
            prune(&self.users, &mut users, now);
            users.insert(user.to_owned(), Bucket { tokens: user_level - 1.0, updated: now });
        }
        prune(&self.callers, &mut callers, now);
        callers.insert(caller.to_owned(), Bucket { tokens: caller_level - 1.0, updated: now });
        Ok(())
    }
}

fn prune(family: &Buckets, buckets: &mut HashMap<String, Bucket>, now: Timestamp) {
    if buckets.len() > PRUNE_ABOVE {
        buckets.retain(|_, b| family.level(Some(b), now) < family.burst);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn throttle(caller_burst: u32, user_burst: u32) -> Throttle {
        Throttle::new(&RateLimits { caller_per_second: 0.5, caller_burst, user_per_second: 0.25, user_burst })
    }

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn caller_bucket_empties_after_burst_and_refills_with_time() {
        let t = throttle(3, 100);
        for _ in 0..3 {
            t.admit("app", None, t0()).unwrap();
        }
        let err = t.admit("app", None, t0()).unwrap_err();
        assert!(matches!(err, HandlerError::Throttled { scope: "caller", retry_after_seconds: 2 }), "{err:?}");
        // Half a token after one second: still refused, one more second to wait.
        let one = t0() + SignedDuration::from_secs(1);
        assert!(matches!(t.admit("app", None, one), Err(HandlerError::Throttled { retry_after_seconds: 1, .. })));
        t.admit("app", None, t0() + SignedDuration::from_secs(2)).unwrap();
        // Another caller has its own bucket.
        t.admit("other", None, t0()).unwrap();
    }

    #[test]
    fn user_bucket_is_shared_across_callers_and_refusal_takes_no_caller_token() {
        let t = throttle(2, 1);
        t.admit("a", Some("alice"), t0()).unwrap();
        let err = t.admit("b", Some("alice"), t0()).unwrap_err();
        assert!(matches!(err, HandlerError::Throttled { scope: "user", retry_after_seconds: 4 }), "{err:?}");
        // "b" lost nothing: it still has its full burst of 2 for other users.
        t.admit("b", Some("bob"), t0()).unwrap();
        t.admit("b", None, t0()).unwrap();
        assert!(t.admit("b", None, t0()).is_err());
    }

    #[test]
    fn clock_going_back_refills_nothing() {
        let t = throttle(1, 10);
        t.admit("a", None, t0()).unwrap();
        assert!(t.admit("a", None, t0() - SignedDuration::from_secs(100)).is_err());
    }
}
