//! `GET /me/notifications/delta`: the changes since a token, as Graph delta queries return them,
//! with `Prefer: wait=N` long polling.
//!
//! Long polling: the handler counts the mutations it makes per watched feed ([`FeedSignals`]). A
//! delta request with `Prefer: wait` starts watching its feed *before* asking the store; when it
//! finds no change it waits on a condition variable until the count moves or N seconds pass, and
//! asks once more. Waiting
//! blocks the calling thread, so an async server runs the handler on a blocking pool.
//! Expirations do not wake a waiter early; they show at its next call.
//!
//! At most `limits.max_waiting_polls` requests wait at once (each holds a thread): a poll beyond
//! the cap is answered at once, as without `Prefer`, and gets no `Preference-Applied`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value, json};

use crate::handler::errors::HandlerError;
use crate::handler::odata::{QueryOptions, link};
use crate::handler::{FeedContext, Handler, Request, Response};
use crate::store::{Change, ChangeToken};

/// Mutations made through the handler, counted per feed while some request watches the feed,
/// to wake long polls. A feed nobody watches has no entry, so memory follows the requests
/// watching now, not every feed ever changed.
#[derive(Debug, Default)]
pub(crate) struct FeedSignals {
    counts: Mutex<HashMap<String, Watched>>,
    changed: Condvar,
    /// Set at shutdown: every wait returns at once, now and later.
    stopped: AtomicBool,
    /// How many requests are waiting now.
    waiting: AtomicUsize,
}

/// A watched feed: its mutations since the first watcher came, and how many watch it.
#[derive(Debug, Default)]
struct Watched {
    count: u64,
    watchers: usize,
}

/// A place among the waiting polls, given back on drop.
pub(crate) struct WaitingPlace<'a>(&'a AtomicUsize);

impl Drop for WaitingPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request watching a feed from the moment it was made; the watch ends on drop.
pub(crate) struct Watching<'a> {
    signals: &'a FeedSignals,
    feed: String,
    seen: u64,
}

impl Watching<'_> {
    /// Waits until the feed changed since the watch began, `deadline` passes, or
    /// [`FeedSignals::stop`] is called. Returns whether it changed.
    pub(crate) fn wait(&self, deadline: Instant) -> bool {
        let signals = self.signals;
        let mut counts = signals.counts.lock();
        let changed = |counts: &HashMap<String, Watched>| counts.get(&self.feed).is_some_and(|w| w.count != self.seen);
        loop {
            if changed(&counts) {
                return true;
            }
            if signals.stopped.load(Ordering::SeqCst) {
                return false;
            }
            if signals.changed.wait_until(&mut counts, deadline).timed_out() {
                return changed(&counts);
            }
        }
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let mut counts = self.signals.counts.lock();
        if let Some(watched) = counts.get_mut(&self.feed) {
            watched.watchers -= 1;
            if watched.watchers == 0 {
                counts.remove(&self.feed);
            }
        }
    }
}

impl FeedSignals {
    /// Starts watching `feed`: a mutation from now on ends [`Watching::wait`].
    pub(crate) fn watch(&self, feed: &str) -> Watching<'_> {
        let mut counts = self.counts.lock();
        let watched = counts.entry(feed.to_owned()).or_default();
        watched.watchers += 1;
        Watching { signals: self, feed: feed.to_owned(), seen: watched.count }
    }

    /// How many requests are waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// A place to wait, unless `max` requests already wait.
    pub(crate) fn take_place(&self, max: usize) -> Option<WaitingPlace<'_>> {
        self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).ok()?;
        Some(WaitingPlace(&self.waiting))
    }

    /// Records a mutation of `feed` and wakes its waiters; nothing when nobody watches it.
    pub(crate) fn bump(&self, feed: &str) {
        let mut counts = self.counts.lock();
        if let Some(watched) = counts.get_mut(feed) {
            watched.count += 1;
            self.changed.notify_all();
        }
    }

    /// Ends every wait, now and later (the server is shutting down).
    pub(crate) fn stop(&self) {
        let _counts = self.counts.lock();
        self.stopped.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }
}

/// The `wait=N` preference of a `Prefer` header (`Prefer: wait=10`, or among others:
/// `Prefer: respond-async, wait=10`).
fn preferred_wait(prefer: Option<&str>) -> Option<u64> {
    prefer?.split([',', ';']).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("wait").then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

impl Handler {
    pub(crate) fn delta(&self, request: &Request, ctx: &FeedContext, now: Timestamp) -> Result<Response, HandlerError> {
        let query = QueryOptions::parse(request.query());
        query.only(&["$top", "$skiptoken", "$deltatoken"])?;
        let top = query.top(100)?;
        let token_text = match (query.get("$skiptoken"), query.get("$deltatoken")) {
            (Some(_), Some(_)) => {
                return Err(HandlerError::BadRequest {
                    field: "$skiptoken".into(),
                    problem: "and $deltatoken cannot both be given".into(),
                });
            }
            (a, b) => a.or(b),
        };
        let since = token_text
            .map(|t| {
                t.parse::<ChangeToken>().map_err(|_| HandlerError::BadRequest {
                    field: "$deltatoken".into(),
                    problem: format!(
                        "{:?} is not a delta token issued by this server",
                        t.chars().take(64).collect::<String>()
                    ),
                })
            })
            .transpose()?;
        let mut wait =
            preferred_wait(request.header("prefer")).map(|w| w.min(u64::from(self.config.limits.max_wait_seconds)));
        // Watch before asking the store: a mutation between the two ends the wait at once.
        let watching = wait.filter(|s| *s > 0).map(|_| self.signals.watch(ctx.feed.as_str()));
        let mut changes = self.store.changes(&ctx.feed, since, top)?;
        let mut now = now;
        if let (Some(seconds), Some(watching)) = (wait.filter(|_| changes.items.is_empty() && !changes.more), &watching)
        {
            match self.signals.take_place(self.config.limits.max_waiting_polls) {
                Some(_place) => {
                    let deadline = Instant::now() + Duration::from_secs(seconds);
                    watching.wait(deadline);
                    now = self.clock.now();
                    changes = self.store.changes(&ctx.feed, since, top)?;
                }
                // Too many waiting already: answer now, and say the preference was not applied.
                None => wait = None,
            }
        }
        let value: Vec<Value> = changes
            .items
            .iter()
            .map(|change| match change {
                Change::Upserted(n) => n.to_graph_json(now),
                Change::Removed { id, reason } => {
                    json!({ "id": id.to_string(), "@removed": { "reason": reason.as_str() } })
                }
            })
            .collect();
        let token = changes.next.to_string();
        let base = request.base_url();
        let mut body = Map::new();
        body.insert("@odata.context".into(), Value::String("$metadata#Collection(notification)".into()));
        body.insert("value".into(), Value::Array(value));
        let path = "/me/notifications/delta";
        let (key, option) =
            if changes.more { ("@odata.nextLink", "$skiptoken") } else { ("@odata.deltaLink", "$deltatoken") };
        let mut options = vec![];
        if query.get("$top").is_some() {
            options.push(("$top", top.to_string()));
        }
        options.push((option, token));
        body.insert(key.into(), Value::String(link(&base, path, &options)));
        let mut response = Response::json(200, &Value::Object(body));
        if let Some(seconds) = wait {
            response.set_header("Preference-Applied", format!("wait={seconds}"));
        }
        Ok(response)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn wait_preference_is_found_among_others() {
        assert_eq!(preferred_wait(Some("wait=10")), Some(10));
        assert_eq!(preferred_wait(Some("respond-async, WAIT = 5")), Some(5));
        assert_eq!(preferred_wait(Some("return=minimal")), None);
        assert_eq!(preferred_wait(Some("wait=x")), None);
        assert_eq!(preferred_wait(None), None);
    }

    #[test]
    fn wait_returns_at_once_when_the_feed_changed_since_it_was_read() {
        let signals = FeedSignals::default();
        let watching = signals.watch("f");
        signals.bump("f");
        // The deadline is far away: only the change can end this wait quickly.
        assert!(watching.wait(Instant::now() + Duration::from_secs(3600)));
        assert!(!signals.watch("g").wait(Instant::now()));
    }

    #[test]
    fn feeds_nobody_waits_on_leave_nothing_behind() {
        let signals = FeedSignals::default();
        for i in 0..1000 {
            signals.bump(&format!("user{i}/app.example"));
        }
        assert_eq!(signals.counts.lock().len(), 0);
        let first = signals.watch("f");
        let second = signals.watch("f");
        signals.bump("f");
        drop(first);
        // The other watcher still sees the change.
        assert!(second.wait(Instant::now()));
        drop(second);
        assert_eq!(signals.counts.lock().len(), 0);
    }

    #[test]
    fn stop_ends_current_and_later_waits() {
        let signals = std::sync::Arc::new(FeedSignals::default());
        let other = std::sync::Arc::clone(&signals);
        let waiter = std::thread::spawn(move || other.watch("f").wait(Instant::now() + Duration::from_secs(3600)));
        signals.stop();
        assert!(!waiter.join().unwrap());
        assert!(!signals.watch("f").wait(Instant::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn waiter_wakes_when_another_thread_bumps_the_feed() {
        let signals = std::sync::Arc::new(FeedSignals::default());
        let watching = signals.watch("f");
        let other = std::sync::Arc::clone(&signals);
        let bumper = std::thread::spawn(move || other.bump("f"));
        assert!(watching.wait(Instant::now() + Duration::from_secs(3600)));
        bumper.join().unwrap();
    }
}
