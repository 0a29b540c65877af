//! The conformance suite: the behaviour every [`notifeed::FeedStore`] engine shares, pinned
//! scenario by scenario.
//!
//! An engine instantiates it in its own test file with one line:
//!
//! ```ignore
//! #![allow(clippy::unwrap_used, clippy::expect_used)]
//! mod conformance;
//! fn open(env: &conformance::Env) -> Result<Box<dyn notifeed::FeedStore>, notifeed::StoreError> { ... }
//! conformance_suite!(open);
//! ```
//!
//! Every scenario is a plain `pub fn name(open: Opener)` in one of the area modules. It makes a
//! fresh [`Env`] (a temporary directory, a unique namespace, a [`ManualClock`] standing at
//! 2026-01-01T00:00:00Z), opens a store, runs, then drops the store, reopens it with the same
//! `Env` and checks that the state survived.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod append_replace;
pub mod cap;
pub mod changes;
pub mod concurrency;
pub mod deletes;
pub mod errors;
pub mod expiry;
pub mod isolation;
pub mod list;
pub mod state;

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use notifeed::{
    Change, ChangeToken, Changes, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, Notification,
    NotificationId, RemovalReason, StoreError, StoreOptions,
};

/// Where and how a store under test lives. Reopening with the same `Env` must see the same data.
pub struct Env {
    /// A fresh temporary directory for file-based engines (removed when the `Env` is dropped).
    pub dir: PathBuf,
    /// A unique namespace (a key prefix) for server-based engines such as Redis.
    pub namespace: String,
    /// The clock the store reads; scenarios move it.
    pub clock: ManualClock,
    /// The options the store must honour.
    pub options: StoreOptions,
    _temporary: Arc<tempfile::TempDir>,
}

impl Env {
    /// A fresh environment with default options.
    pub fn new() -> Self {
        Self::with_options(StoreOptions::default())
    }

    /// A fresh environment with `options`.
    pub fn with_options(options: StoreOptions) -> Self {
        Self::with_clock_and_options(ManualClock::at_epoch_2026(), options)
    }

    /// A fresh environment (own directory and namespace) that shares `clock`.
    pub fn with_clock_and_options(clock: ManualClock, options: StoreOptions) -> Self {
        let temporary = tempfile::Builder::new().prefix("notifeed-conformance-").tempdir().unwrap();
        Self {
            dir: temporary.path().to_path_buf(),
            namespace: format!("notifeed-test-{}", uuid::Uuid::new_v4().simple()),
            clock,
            options,
            _temporary: Arc::new(temporary),
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// How a suite opens (and reopens) the engine under test.
pub type Opener = fn(&Env) -> Result<Box<dyn FeedStore>, StoreError>;

/// Instantiates every conformance scenario as one `#[test]` for the engine opened by `$opener`.
#[macro_export]
macro_rules! conformance_suite {
    ($opener:path) => {
        $crate::conformance_scenarios!($opener;
            append_replace::appended_notification_gets_a_fresh_id_and_initial_state,
            append_replace::appended_notification_keeps_every_field,
            append_replace::replaced_notification_keeps_its_id_and_created,
            append_replace::replaced_notification_moves_to_the_top,
            append_replace::get_of_unknown_id_or_app_id_is_none,
            append_replace::get_by_app_id_finds_the_live_notification,
            append_replace::sync_succeeds_and_keeps_everything,
            list::list_returns_newest_first,
            list::list_of_unknown_feed_is_empty,
            list::list_filters_by_group,
            list::list_filters_by_platform,
            list::list_filters_by_read_state,
            list::list_filters_by_action_state,
            list::list_filters_combine,
            list::list_pages_have_no_duplicates_and_no_gaps,
            list::filtered_list_pages_have_no_duplicates_and_no_gaps,
            list::list_next_is_none_when_the_page_is_the_last,
            list::list_limit_zero_is_treated_as_one,
            list::list_cursor_survives_reopen,
            list::list_cursor_is_stable_under_state_changes,
            list::count_is_exact_total_and_unread,
            state::update_state_sets_read_and_action_state,
            state::update_state_keeps_the_position,
            state::update_state_of_unknown_id_is_none,
            state::update_state_that_changes_nothing_still_counts_as_a_change,
            deletes::delete_removes_and_reports_whether_it_did,
            deletes::delete_by_app_id_removes_and_frees_the_app_id,
            deletes::delete_group_removes_only_that_group_and_counts,
            deletes::delete_of_unknown_id_is_false,
            expiry::expired_notification_is_never_returned,
            expiry::expiration_is_exact_to_the_nanosecond,
            expiry::expired_app_id_is_free_again,
            expiry::expired_notification_cannot_be_updated_or_deleted,
            expiry::expired_notification_stays_gone_after_sweep_and_reopen,
            expiry::sweep_counts_the_expired_of_every_feed_once,
            expiry::count_excludes_expired_before_any_sweep,
            cap::full_feed_evicts_the_oldest,
            cap::eviction_goes_by_position_not_creation,
            cap::replacement_in_a_full_feed_evicts_nothing,
            cap::expired_notifications_do_not_count_against_the_cap,
            cap::cap_is_per_feed,
            cap::evicted_app_id_is_free_again,
            changes::changes_from_none_returns_every_live_notification_in_sequence_order,
            changes::changes_since_a_token_returns_only_later_changes,
            changes::changes_return_the_current_state_once,
            changes::changes_with_nothing_new_are_empty,
            changes::changes_pages_have_no_duplicates_and_no_gaps,
            changes::changes_report_deletes_with_their_reason,
            changes::changes_report_evictions,
            changes::changes_report_expirations_before_sweep,
            changes::changes_report_expirations_after_sweep,
            changes::changes_report_expirations_first_oldest_first,
            changes::expiration_is_reported_exactly_once,
            changes::changes_from_none_include_remembered_removals,
            changes::change_token_survives_reopen,
            changes::token_behind_forgotten_removals_is_stale,
            changes::token_within_removal_log_is_served,
            changes::token_ahead_of_the_feed_is_stale,
            changes::token_behind_forgotten_expirations_is_stale,
            changes::expiration_pages_end_at_a_time_boundary,
            changes::swept_expirations_survive_reopen_when_nothing_else_remains,
            changes::sequence_keeps_growing_after_the_feed_empties_and_reopens,
            changes::replaced_notification_expires_only_at_its_new_time,
            errors::invalid_notification_is_rejected_and_nothing_is_stored,
            errors::invalid_replacement_leaves_the_original_untouched,
            errors::expiration_in_the_past_is_rejected,
            errors::expiration_beyond_the_maximum_is_rejected,
            errors::limits_come_from_the_store_options,
            isolation::feeds_are_isolated,
            isolation::group_delete_and_counts_are_per_feed,
            isolation::odd_keys_app_ids_and_groups_are_kept_apart,
            concurrency::concurrent_appends_are_all_kept,
        );
    };
}

/// Expands to one `#[test]` per scenario; used by [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_scenarios {
    ($opener:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$module::$name($opener);
            }
        )*
    };
}

/// 2026-01-01T00:00:00Z, where every scenario's clock starts.
pub fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// `seconds` after [`t0`].
pub fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

/// A feed key.
pub fn feed(name: &str) -> FeedKey {
    FeedKey::new(format!("user-{name}/contoso.com")).unwrap()
}

/// A visual notification with the app id `app` and the title `title`.
pub fn visual(app: &str, title: &str) -> NewNotification {
    NewNotification::visual("contoso.com", app, title)
}

/// A scenario's store, with its environment: reopen it at will.
pub struct Fixture {
    /// The environment (clock, options, directory, namespace).
    pub env: Env,
    open: Opener,
    store: Option<Box<dyn FeedStore>>,
}

impl Fixture {
    /// Opens a store on a fresh default environment.
    pub fn start(open: Opener) -> Self {
        Self::start_with(open, StoreOptions::default())
    }

    /// Opens a store on a fresh environment with `options`.
    pub fn start_with(open: Opener, options: StoreOptions) -> Self {
        let env = Env::with_options(options);
        let store = open(&env).unwrap();
        Self { env, open, store: Some(store) }
    }

    /// Drops the store and opens it again on the same environment.
    pub fn reopen(&mut self) {
        self.store = None;
        self.store = Some((self.open)(&self.env).unwrap());
    }

    /// The clock.
    pub fn clock(&self) -> &ManualClock {
        &self.env.clock
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_secs(&self, seconds: i64) {
        self.env.clock.advance_secs(seconds);
    }

    /// Sets the clock to `to`.
    pub fn set_time(&self, to: Timestamp) {
        self.env.clock.set(to);
    }

    /// Appends, expecting success.
    pub fn add(&self, feed: &FeedKey, new: NewNotification) -> Notification {
        self.append(feed, new).unwrap()
    }

    /// Every matching notification, page by page with `page_size`, checking each page's size.
    pub fn list_all(&self, feed: &FeedKey, query: &ListQuery, page_size: usize) -> Vec<Notification> {
        let mut query = ListQuery { limit: page_size, cursor: None, ..query.clone() };
        let mut all = Vec::new();
        loop {
            let page = self.list(feed, &query).unwrap();
            assert!(page.items.len() <= page_size, "a page holds at most its limit");
            if page.next.is_some() {
                assert_eq!(page.items.len(), page_size, "only the last page may be short");
            }
            all.extend(page.items);
            match page.next {
                Some(cursor) => query.cursor = Some(cursor),
                None => return all,
            }
            assert!(all.len() <= 100_000, "paging does not end");
        }
    }

    /// The app ids of every live notification of `feed`, newest first.
    pub fn app_ids(&self, feed: &FeedKey) -> Vec<String> {
        self.list_all(feed, &ListQuery::default(), 1000)
            .into_iter()
            .map(|n| n.app_notification_id().to_owned())
            .collect()
    }

    /// Every change after `since`, page by page with `limit`, and the final token.
    pub fn drain_changes(
        &self,
        feed: &FeedKey,
        since: Option<ChangeToken>,
        limit: usize,
    ) -> (Vec<Change>, ChangeToken) {
        let mut since = since;
        let mut all = Vec::new();
        for _ in 0..10_000 {
            let Changes { items, next, more } = self.changes(feed, since, limit).unwrap();
            assert!(items.len() <= limit.max(1) || items.iter().all(is_expiration), "page over its limit");
            all.extend(items);
            since = Some(next);
            if !more {
                return (all, next);
            }
        }
        panic!("change paging does not end");
    }

    /// A fresh token that has seen everything so far.
    pub fn token_now(&self, feed: &FeedKey) -> ChangeToken {
        self.drain_changes(feed, None, 1000).1
    }
}

impl Deref for Fixture {
    type Target = dyn FeedStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_deref().unwrap()
    }
}

/// Whether a change is an expiration.
pub fn is_expiration(change: &Change) -> bool {
    matches!(change, Change::Removed { reason: RemovalReason::Expired, .. })
}

/// A change with its notification reduced to the id: what scenarios compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Upserted (created, replaced or changed state).
    Up(NotificationId),
    /// Removed for this reason.
    Gone(NotificationId, RemovalReason),
}

/// The changes, reduced.
pub fn seen(changes: &[Change]) -> Vec<Seen> {
    changes
        .iter()
        .map(|c| match c {
            Change::Upserted(n) => Seen::Up(n.id),
            Change::Removed { id, reason } => Seen::Gone(*id, *reason),
        })
        .collect()
}

/// The upserted notifications among the changes.
pub fn upserts(changes: &[Change]) -> Vec<Notification> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upserted(n) => Some((**n).clone()),
            Change::Removed { .. } => None,
        })
        .collect()
}

/// The title of a visual notification.
pub fn title(n: &Notification) -> &str {
    n.payload().visual_content.map_or("", |v| v.title)
}
