//! Where time comes from.
//!
//! Every engine reads the time through a [`Clock`], never from the system directly, so that
//! expiration is exact and testable: tests drive a [`ManualClock`] forward (or backward) and
//! observe precisely which notifications are alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
///
/// Implementations must be cheap (`now` is called on every operation) and thread-safe.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to: the clock of tests and simulations.
///
/// Clones share the same time, so a test keeps one handle and gives another to the store.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { nanos: Arc::new(AtomicI64::new(timestamp_to_nanos(start))) }
    }

    /// A clock standing at 2026-01-01T00:00:00Z, a fixed and readable starting point for tests.
    pub fn at_epoch_2026() -> Self {
        Self::new(Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// Moves the clock to `to`, which may lie before the current time.
    pub fn set(&self, to: Timestamp) {
        self.nanos.store(timestamp_to_nanos(to), Ordering::SeqCst);
    }

    /// Moves the clock by `by`, which may be negative.
    pub fn advance(&self, by: SignedDuration) {
        let delta = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(delta, Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_secs(&self, seconds: i64) {
        self.advance(SignedDuration::from_secs(seconds));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        nanos_to_timestamp(self.nanos.load(Ordering::SeqCst))
    }
}

/// A shared clock handle, as engines hold it.
pub type SharedClock = Arc<dyn Clock>;

/// Nanoseconds since the Unix epoch, saturating at the bounds of `i64` (years 1677..=2262).
pub fn timestamp_to_nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_nanosecond() < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`timestamp_to_nanos`].
pub fn nanos_to_timestamp(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::at_epoch_2026();
        let b = a.clone();
        let start = a.now();
        b.advance_secs(90);
        assert_eq!(a.now().duration_since(start), SignedDuration::from_secs(90));
        a.advance_secs(-30);
        assert_eq!(b.now().duration_since(start), SignedDuration::from_secs(60));
    }

    #[test]
    fn nanos_round_trip() {
        let t = Timestamp::from_nanosecond(1_767_225_600_123_456_789).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(nanos_to_timestamp(timestamp_to_nanos(t)), t);
    }
}
