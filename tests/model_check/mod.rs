//! The model check: random sequences of operations, clock moves and reopens, run on an engine and
//! on [`ModelStore`](crate::model::ModelStore) side by side, comparing every answer.
//!
//! An engine adds `tests/model_check_<engine>.rs`:
//!
//! ```ignore
//! #![allow(clippy::unwrap_used, clippy::expect_used)]
//! mod conformance;
//! mod model;
//! mod model_check;
//! fn open(env: &conformance::Env) -> Result<Box<dyn notifeed::FeedStore>, notifeed::StoreError> { ... }
//! #[test]
//! fn engine_agrees_with_the_model() {
//!     model_check::check_engine_against_model(open);
//! }
//! ```
//!
//! # Comparing answers whose ids differ
//!
//! Ids are random, so the engine and the model give the same notification different ids. The
//! check keeps a bijection between them, grown only by `append`: when the model creates a new
//! notification, the engine must return an id it never returned before, and the two are bound;
//! when the model replaces one, the engine must return the id bound to the model's. Every other
//! answer is translated into model ids before comparison, and an unbound engine id is a failure.
//! Cursors and change tokens are opaque and may differ too (sequence numbers are per engine), so
//! the check keeps them in pairs and passes each side its own. Expirations that share an instant
//! are ordered by id in a change page, so such runs are compared as sets.
//!
//! The clock only moves forward and stays well within `expiry_log_retention`, where every
//! answer is exact; forgetting expirations is pinned by the conformance suite instead.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;

use jiff::{SignedDuration, Timestamp};
use notifeed::{
    Change, ChangeToken, Clock, Cursor, FeedKey, FeedStore, ListQuery, NewNotification, Notification, NotificationId,
    Platform, Platforms, ReadState, RemovalReason, StateUpdate, StoreError, StoreOptions, UserActionState,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

use crate::conformance::{Env, Opener};
use crate::model;

/// Feeds, app ids and groups are drawn from small spaces so that replacements, group deletes and
/// evictions happen often.
const FEEDS: u8 = 2;
const APP_IDS: u8 = 5;
const GROUPS: u8 = 3;
/// The cap and removal log of the check: small, so evictions and stale tokens happen.
const FEED_CAPACITY: usize = 3;
const REMOVAL_LOG_CAPACITY: usize = 2;

/// One step of a run.
#[derive(Clone, Debug)]
pub enum Op {
    /// Append (or replace) in feed `feed` with app id `app`.
    Append {
        /// Which feed.
        feed: u8,
        /// Which app id.
        app: u8,
        /// Which group, if any.
        group: Option<u8>,
        /// Platform bits (0 is invalid).
        platforms: u8,
        /// Raw content instead of visual.
        raw: bool,
        /// The title or raw content; 0 is an empty (invalid) title.
        title: u8,
        /// The expiration.
        expiration: Expiration,
    },
    /// `get` of a known id (by index) or of an unknown one.
    Get {
        /// Which feed.
        feed: u8,
        /// Which id.
        pick: usize,
    },
    /// `get_by_app_id`.
    GetByAppId {
        /// Which feed.
        feed: u8,
        /// Which app id.
        app: u8,
    },
    /// `list` with filters, or resuming the feed's last list with its cursor.
    List {
        /// Which feed.
        feed: u8,
        /// Group filter.
        group: Option<u8>,
        /// Platform filter (index into `Platform::ALL`).
        platform: Option<u8>,
        /// Read-state filter: `true` is `Read`.
        read: Option<bool>,
        /// Action-state filter (index into `UserActionState::ALL`).
        action: Option<u8>,
        /// The limit.
        limit: usize,
        /// Continue the last list of this feed instead.
        resume: bool,
    },
    /// `count`.
    Count {
        /// Which feed.
        feed: u8,
    },
    /// `update_state`.
    UpdateState {
        /// Which feed.
        feed: u8,
        /// Which id.
        pick: usize,
        /// New read state: `true` is `Read`.
        read: Option<bool>,
        /// New action state (index into `UserActionState::ALL`).
        action: Option<u8>,
    },
    /// `delete`.
    Delete {
        /// Which feed.
        feed: u8,
        /// Which id.
        pick: usize,
    },
    /// `delete_by_app_id`.
    DeleteByAppId {
        /// Which feed.
        feed: u8,
        /// Which app id.
        app: u8,
    },
    /// `delete_group`.
    DeleteGroup {
        /// Which feed.
        feed: u8,
        /// Which group.
        group: u8,
    },
    /// `changes` from the start or from one of the feed's earlier tokens.
    Changes {
        /// Which feed.
        feed: u8,
        /// Which earlier token, or `None` for the start.
        token: Option<TokenPick>,
        /// The limit.
        limit: usize,
    },
    /// `sweep_expired`.
    Sweep,
    /// `sync`.
    Sync,
    /// Move the clock forward.
    Advance {
        /// By this many milliseconds.
        millis: u64,
    },
    /// Move the clock to the next expiration seen so far, exactly (if within two hours).
    AdvanceToNextExpiration,
    /// Move the clock to one nanosecond before the next expiration seen so far.
    AdvanceToJustBeforeNextExpiration,
    /// Drop both stores and open them again.
    Reopen,
}

/// Which of a feed's earlier change tokens to use.
#[derive(Clone, Copy, Debug)]
pub enum TokenPick {
    /// The first: the likeliest to be stale.
    Oldest,
    /// The last: what a client syncing in a loop uses.
    Latest,
    /// Any, by index.
    Any(usize),
}

/// The expiration of an appended notification.
#[derive(Clone, Copy, Debug)]
pub enum Expiration {
    /// None given: the maximum.
    Default,
    /// This many milliseconds after now (0 is invalid: not in the future).
    In(u32),
    /// At the k-th half hour after 2026-01-01T00:00:00Z: shared instants, sometimes in the past.
    AtHalfHour(u8),
}

fn expiration_strategy() -> impl Strategy<Value = Expiration> {
    prop_oneof![
        4 => Just(Expiration::Default),
        1 => Just(Expiration::In(0)),
        2 => (1u32..=5_000).prop_map(Expiration::In),
        3 => (1u32..=7_200_000).prop_map(Expiration::In),
        3 => (7_200_000u32..=86_400_000).prop_map(Expiration::In),
        3 => (0u8..=48).prop_map(Expiration::AtHalfHour),
    ]
}

/// `Some` a quarter of the time: filters that match nothing make dull lists.
fn rarely<S: Strategy + 'static>(inner: S) -> impl Strategy<Value = Option<S::Value>>
where
    S::Value: Clone,
{
    prop_oneof![3 => Just(None), 1 => inner.prop_map(Some)]
}

fn token_pick() -> impl Strategy<Value = TokenPick> {
    prop_oneof![Just(TokenPick::Oldest), Just(TokenPick::Latest), any::<usize>().prop_map(TokenPick::Any)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let feed = 0..FEEDS;
    // Appends favour the first feed, so it fills up and evicts; 1 in 20 is invalid by platform
    // or title.
    let append_feed = prop_oneof![3 => Just(0), 1 => Just(1)];
    let platforms = prop_oneof![19 => 1u8..16, 1 => Just(0u8)];
    let title = prop_oneof![19 => 1u8..4, 1 => Just(0u8)];
    let group = proptest::option::of(0..GROUPS);
    prop_oneof![
        20 => (append_feed, 0..APP_IDS, group, platforms, any::<bool>(), title, expiration_strategy())
            .prop_map(|(feed, app, group, platforms, raw, title, expiration)| Op::Append {
                feed, app, group, platforms, raw, title, expiration
            }),
        2 => (feed.clone(), any::<usize>()).prop_map(|(feed, pick)| Op::Get { feed, pick }),
        2 => (feed.clone(), 0..APP_IDS).prop_map(|(feed, app)| Op::GetByAppId { feed, app }),
        8 => (feed.clone(), rarely(0..GROUPS), rarely(0u8..4), rarely(any::<bool>()), rarely(0u8..4), 0usize..4,
              prop_oneof![1 => Just(false), 2 => Just(true)])
            .prop_map(|(feed, group, platform, read, action, limit, resume)| Op::List {
                feed, group, platform, read, action, limit, resume
            }),
        3 => feed.clone().prop_map(|feed| Op::Count { feed }),
        4 => (feed.clone(), any::<usize>(), proptest::option::of(any::<bool>()), proptest::option::of(0u8..4))
            .prop_map(|(feed, pick, read, action)| Op::UpdateState { feed, pick, read, action }),
        3 => (feed.clone(), any::<usize>()).prop_map(|(feed, pick)| Op::Delete { feed, pick }),
        3 => (feed.clone(), 0..APP_IDS).prop_map(|(feed, app)| Op::DeleteByAppId { feed, app }),
        3 => (feed.clone(), 0..GROUPS).prop_map(|(feed, group)| Op::DeleteGroup { feed, group }),
        6 => (feed, proptest::option::of(token_pick()), 0usize..6)
            .prop_map(|(feed, token, limit)| Op::Changes { feed, token, limit }),
        2 => Just(Op::Sweep),
        1 => Just(Op::Sync),
        2 => (1u64..=10).prop_map(|millis| Op::Advance { millis }),
        2 => (1_000u64..=3_600_000).prop_map(|millis| Op::Advance { millis }),
        3 => Just(Op::AdvanceToNextExpiration),
        1 => Just(Op::AdvanceToJustBeforeNextExpiration),
        2 => Just(Op::Reopen),
    ]
}

/// Runs 64 random cases (or `PROPTEST_CASES`) of at most 60 operations each on the engine opened
/// by `open` and on the model, and panics with the smallest failing sequence found.
pub fn check_engine_against_model(open: Opener) {
    check_engine_against_model_with(open, 64, 60);
}

/// As [`check_engine_against_model`] with the number of cases and the longest sequence given.
pub fn check_engine_against_model_with(open: Opener, cases: u32, max_ops: usize) {
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var("PROPTEST_CASES").is_err() {
        config.cases = cases;
    }
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op_strategy(), 1..=max_ops);
    let coverage = RefCell::new(Coverage::default());
    let result = runner.run(&strategy, |ops| {
        let mut run = Run::start(open);
        run.position = "the first change tokens, of the empty feeds".to_owned();
        for feed in 0..FEEDS {
            run.changes(feed, None, None, 1);
        }
        for (step, op) in ops.iter().enumerate() {
            run.position = format!("step {step} ({op:?})");
            run.apply(op);
        }
        run.position = "the final comparison after the last step".to_owned();
        run.compare_everything();
        run.reopen();
        run.position = "the final comparison after a reopen".to_owned();
        run.compare_everything();
        coverage.borrow_mut().add(&run.coverage);
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            panic!(
                "the engine disagrees with the model: {reason}\nsmallest failing sequence ({} ops):\n{ops:#?}",
                ops.len()
            )
        }
        Err(TestError::Abort(reason)) => panic!("the model check aborted: {reason}"),
    }
    let coverage = coverage.into_inner();
    eprintln!("model check coverage: {coverage:?}");
    if cases >= 32 && std::env::var("PROPTEST_CASES").is_err() {
        coverage.assert_everything_happened();
    }
}

/// How often the interesting cases happened over all runs, so the check proves it exercised them.
#[derive(Clone, Debug, Default)]
struct Coverage {
    replacements: u64,
    invalid_appends: u64,
    evictions: u64,
    group_deletes: u64,
    deletes: u64,
    expirations_reported: u64,
    stale_tokens: u64,
    resumed_lists: u64,
    swept: u64,
    exact_expiration_instants: u64,
    reopens: u64,
    read_counted: u64,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.replacements += other.replacements;
        self.invalid_appends += other.invalid_appends;
        self.evictions += other.evictions;
        self.group_deletes += other.group_deletes;
        self.deletes += other.deletes;
        self.expirations_reported += other.expirations_reported;
        self.stale_tokens += other.stale_tokens;
        self.resumed_lists += other.resumed_lists;
        self.swept += other.swept;
        self.exact_expiration_instants += other.exact_expiration_instants;
        self.reopens += other.reopens;
        self.read_counted += other.read_counted;
    }

    fn assert_everything_happened(&self) {
        let c = self;
        let counts = [
            c.replacements,
            c.invalid_appends,
            c.evictions,
            c.group_deletes,
            c.deletes,
            c.expirations_reported,
            c.stale_tokens,
            c.resumed_lists,
            c.swept,
            c.exact_expiration_instants,
            c.reopens,
            c.read_counted,
        ];
        assert!(counts.iter().all(|n| *n > 0), "the model check missed a case: {self:?}");
    }
}

/// Both stores, and what maps the engine's answers onto the model's.
struct Run {
    open: Opener,
    engine_env: Env,
    model_env: Env,
    engine: Option<Box<dyn FeedStore>>,
    model: Option<Box<dyn FeedStore>>,
    /// Engine id to model id, and back.
    to_model: HashMap<NotificationId, NotificationId>,
    to_engine: HashMap<NotificationId, NotificationId>,
    /// Every id pair, in the order first seen: what `pick` chooses from.
    ids: Vec<(NotificationId, NotificationId)>,
    /// Every (engine, model) change token of each feed.
    tokens: Vec<Vec<(ChangeToken, ChangeToken)>>,
    /// The last list of each feed, with each side's next cursor.
    cursors: Vec<Option<(ListQuery, Cursor, Cursor)>>,
    /// Every expiration of an accepted append.
    expirations: BTreeSet<Timestamp>,
    /// The expiration of each notification (by model id), as last appended.
    expiration_of: HashMap<NotificationId, Timestamp>,
    coverage: Coverage,
    /// Where the run is, for failure messages.
    position: String,
}

fn feed_key(feed: u8) -> FeedKey {
    FeedKey::new(format!("user{feed}/contoso.com")).unwrap()
}

fn read_state(read: bool) -> ReadState {
    if read { ReadState::Read } else { ReadState::Unread }
}

fn action_state(action: u8) -> UserActionState {
    UserActionState::ALL[usize::from(action) % UserActionState::ALL.len()]
}

/// An error reduced to what must agree: the variant, and for `Invalid` the whole contract error.
fn classify(error: &StoreError) -> String {
    match error {
        StoreError::Invalid(contract) => format!("Invalid({contract:?})"),
        StoreError::StaleToken => "StaleToken".to_owned(),
        StoreError::InvalidToken { .. } => "InvalidToken".to_owned(),
        other => format!("unexpected error: {other}"),
    }
}

impl Run {
    fn start(open: Opener) -> Self {
        let options = StoreOptions {
            feed_capacity: FEED_CAPACITY,
            removal_log_capacity: REMOVAL_LOG_CAPACITY,
            ..StoreOptions::default()
        };
        let engine_env = Env::with_options(options.clone());
        let model_env = Env::with_clock_and_options(engine_env.clock.clone(), options);
        let engine = open(&engine_env).unwrap_or_else(|e| panic!("the engine does not open: {e}"));
        let model = model::open(&model_env).unwrap();
        Self {
            open,
            engine_env,
            model_env,
            engine: Some(engine),
            model: Some(model),
            to_model: HashMap::new(),
            to_engine: HashMap::new(),
            ids: Vec::new(),
            tokens: vec![Vec::new(); usize::from(FEEDS)],
            cursors: vec![None; usize::from(FEEDS)],
            expirations: BTreeSet::new(),
            expiration_of: HashMap::new(),
            coverage: Coverage::default(),
            position: String::new(),
        }
    }

    fn at(&self) -> &str {
        &self.position
    }

    fn engine(&self) -> &dyn FeedStore {
        self.engine.as_deref().unwrap()
    }

    fn model(&self) -> &dyn FeedStore {
        self.model.as_deref().unwrap()
    }

    fn now(&self) -> Timestamp {
        self.engine_env.clock.now()
    }

    fn reopen(&mut self) {
        self.coverage.reopens += 1;
        self.engine = None;
        self.model = None;
        self.engine = Some((self.open)(&self.engine_env).unwrap_or_else(|e| panic!("the engine does not reopen: {e}")));
        self.model = Some(model::open(&self.model_env).unwrap());
    }

    /// The model id of an engine id; an id the engine never returned from `append` is a failure.
    fn model_id(&self, engine_id: NotificationId) -> NotificationId {
        *self
            .to_model
            .get(&engine_id)
            .unwrap_or_else(|| panic!("{}: the engine returned an id it never assigned: {engine_id}", self.at()))
    }

    fn translate(&self, mut n: Notification) -> Notification {
        n.id = self.model_id(n.id);
        n
    }

    fn translate_change(&self, change: Change) -> Change {
        match change {
            Change::Upserted(n) => Change::Upserted(Box::new(self.translate(*n))),
            Change::Removed { id, reason } => Change::Removed { id: self.model_id(id), reason },
        }
    }

    /// Compares two results: the engine's (already translated) and the model's.
    fn agree<T: PartialEq + Debug>(
        &self,
        what: &str,
        engine: Result<T, StoreError>,
        model: Result<T, StoreError>,
    ) -> Option<T> {
        match (engine, model) {
            (Ok(e), Ok(m)) => {
                assert_eq!(e, m, "{}: {what}: the engine (left) and the model (right) disagree", self.at());
                Some(m)
            }
            (Err(e), Err(m)) => {
                assert_eq!(classify(&e), classify(&m), "{}: {what}: different errors", self.at());
                None
            }
            (e, m) => panic!("{}: {what}: the engine answered {e:?}, the model {m:?}", self.at()),
        }
    }

    /// The (engine, model) ids `pick` names: three times in four a live notification of `feed`
    /// (the model says which are live), else any id ever seen in any feed, or an unknown one.
    fn pick(&self, feed: u8, pick: usize) -> (NotificationId, NotificationId) {
        let all = ListQuery { limit: ListQuery::MAX_LIMIT, ..ListQuery::default() };
        let live = self.model().list(&feed_key(feed), &all).map(|p| p.items).unwrap_or_default();
        if !pick.is_multiple_of(4) && !live.is_empty() {
            let m = live[(pick / 4) % live.len()].id;
            return (self.to_engine[&m], m);
        }
        if self.ids.is_empty() || pick % (self.ids.len() + 1) == self.ids.len() {
            let unknown = NotificationId::new_random();
            (unknown, unknown)
        } else {
            self.ids[pick % (self.ids.len() + 1)]
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { feed, app, group, platforms, raw, title, expiration } => {
                let app_id = format!("app-{app}");
                let mut new = if raw {
                    NewNotification::raw("contoso.com", &app_id, &format!("raw {title}"))
                } else {
                    let text = if title == 0 { String::new() } else { format!("title {title}") };
                    NewNotification::visual("contoso.com", &app_id, &text)
                };
                new.group_name = group.map(|g| format!("group-{g}"));
                new.platforms = Platforms::from_bits(platforms);
                new.expiration = match expiration {
                    Expiration::Default => None,
                    Expiration::In(millis) => Some(self.now() + SignedDuration::from_millis(i64::from(millis))),
                    Expiration::AtHalfHour(k) => {
                        Some(crate::conformance::t0() + SignedDuration::from_mins(30 * i64::from(k)))
                    }
                };
                self.append(feed, new);
            }
            Op::Get { feed, pick } => {
                let (e, m) = self.pick(feed, pick);
                let f = feed_key(feed);
                let engine = self.engine().get(&f, e).map(|n| n.map(|n| self.translate(n)));
                self.agree("get", engine, self.model().get(&f, m));
            }
            Op::GetByAppId { feed, app } => {
                let (f, app) = (feed_key(feed), format!("app-{app}"));
                let engine = self.engine().get_by_app_id(&f, &app).map(|n| n.map(|n| self.translate(n)));
                self.agree("get_by_app_id", engine, self.model().get_by_app_id(&f, &app));
            }
            Op::List { feed, group, platform, read, action, limit, resume } => {
                let fresh = ListQuery {
                    group: group.map(|g| format!("group-{g}")),
                    platform: platform.map(|p| Platform::ALL[usize::from(p) % Platform::ALL.len()]),
                    read_state: read.map(read_state),
                    user_action_state: action.map(action_state),
                    limit,
                    cursor: None,
                };
                let slot = usize::from(feed);
                let (engine_query, model_query) = match (&self.cursors[slot], resume) {
                    (Some((query, engine_cursor, model_cursor)), true) => {
                        self.coverage.resumed_lists += 1;
                        (
                            ListQuery { cursor: Some(*engine_cursor), limit, ..query.clone() },
                            ListQuery { cursor: Some(*model_cursor), limit, ..query.clone() },
                        )
                    }
                    _ => (fresh.clone(), fresh),
                };
                let f = feed_key(feed);
                let engine = self.engine().list(&f, &engine_query);
                let model = self.model().list(&f, &model_query);
                let (engine, model) = match (engine, model) {
                    (Ok(e), Ok(m)) => (e, m),
                    (e, m) => panic!("{}: list: the engine answered {e:?}, the model {m:?}", self.at()),
                };
                let items: Vec<Notification> = engine.items.into_iter().map(|n| self.translate(n)).collect();
                assert_eq!(items, model.items, "{}: list {model_query:?}: engine (left), model (right)", self.at());
                assert_eq!(
                    engine.next.is_some(),
                    model.next.is_some(),
                    "{}: list {model_query:?}: whether a next page exists",
                    self.at()
                );
                self.cursors[slot] = match (engine.next, model.next) {
                    (Some(e), Some(m)) => Some((ListQuery { cursor: None, ..model_query }, e, m)),
                    _ => None,
                };
            }
            Op::Count { feed } => {
                let f = feed_key(feed);
                let counts = self.agree("count", self.engine().count(&f), self.model().count(&f));
                self.coverage.read_counted += u64::from(counts.is_some_and(|c| c.unread < c.total));
            }
            Op::UpdateState { feed, pick, read, action } => {
                let (e, m) = self.pick(feed, pick);
                let update =
                    StateUpdate { read_state: read.map(read_state), user_action_state: action.map(action_state) };
                let f = feed_key(feed);
                let engine = self.engine().update_state(&f, e, update).map(|n| n.map(|n| self.translate(n)));
                self.agree("update_state", engine, self.model().update_state(&f, m, update));
            }
            Op::Delete { feed, pick } => {
                let (e, m) = self.pick(feed, pick);
                let f = feed_key(feed);
                self.agree("delete", self.engine().delete(&f, e), self.model().delete(&f, m));
            }
            Op::DeleteByAppId { feed, app } => {
                let (f, app) = (feed_key(feed), format!("app-{app}"));
                self.agree(
                    "delete_by_app_id",
                    self.engine().delete_by_app_id(&f, &app),
                    self.model().delete_by_app_id(&f, &app),
                );
            }
            Op::DeleteGroup { feed, group } => {
                let (f, group) = (feed_key(feed), format!("group-{group}"));
                self.agree(
                    "delete_group",
                    self.engine().delete_group(&f, &group),
                    self.model().delete_group(&f, &group),
                );
            }
            Op::Changes { feed, token, limit } => {
                let slot = usize::from(feed);
                let tokens = &self.tokens[slot];
                let (engine_since, model_since) = match token {
                    Some(pick) if !tokens.is_empty() => {
                        let i = match pick {
                            TokenPick::Oldest => 0,
                            TokenPick::Latest => tokens.len() - 1,
                            TokenPick::Any(i) => i % tokens.len(),
                        };
                        let (e, m) = tokens[i];
                        (Some(e), Some(m))
                    }
                    _ => (None, None),
                };
                self.changes(feed, engine_since, model_since, limit);
            }
            Op::Sweep => {
                // An engine may reclaim an expired notification before the sweep (when its app id
                // is reused), so it may count fewer than the model, never more.
                let engine = self.engine().sweep_expired().map(|s| s.expired);
                let model = self.model().sweep_expired().map(|s| s.expired);
                match (engine, model) {
                    (Ok(e), Ok(m)) => {
                        assert!(e <= m, "{}: sweep_expired counted {e} expired, the model only {m}", self.at());
                        self.coverage.swept += m;
                    }
                    (e, m) => panic!("{}: sweep_expired: the engine answered {e:?}, the model {m:?}", self.at()),
                }
            }
            Op::Sync => {
                self.agree("sync", self.engine().sync(), self.model().sync());
            }
            Op::Advance { millis } => {
                self.engine_env.clock.advance(SignedDuration::from_millis(i64::try_from(millis).unwrap()));
            }
            Op::AdvanceToNextExpiration => {
                if let Some(next) = self.next_expiration(SignedDuration::ZERO) {
                    self.engine_env.clock.set(next);
                    self.coverage.exact_expiration_instants += 1;
                }
            }
            Op::AdvanceToJustBeforeNextExpiration => {
                if let Some(before) = self.next_expiration(SignedDuration::from_nanos(1)) {
                    self.engine_env.clock.set(before);
                }
            }
            Op::Reopen => self.reopen(),
        }
    }

    fn append(&mut self, feed: u8, new: NewNotification) {
        let f = feed_key(feed);
        let engine = self.engine().append(&f, new.clone());
        let model = self.model().append(&f, new);
        match (engine, model) {
            (Ok(e), Ok(m)) => {
                match self.to_engine.get(&m.id) {
                    Some(bound) => {
                        self.coverage.replacements += 1;
                        assert_eq!(
                            e.id,
                            *bound,
                            "{}: the model replaced a notification, the engine did not keep its id",
                            self.at()
                        );
                    }
                    None => {
                        assert!(
                            !self.to_model.contains_key(&e.id),
                            "{}: the model created a notification, the engine reused id {}",
                            self.at(),
                            e.id
                        );
                        self.to_model.insert(e.id, m.id);
                        self.to_engine.insert(m.id, e.id);
                        self.ids.push((e.id, m.id));
                    }
                }
                self.expirations.insert(m.expiration);
                self.expiration_of.insert(m.id, m.expiration);
                assert_eq!(self.translate(e), m, "{}: append: engine (left), model (right)", self.at());
            }
            (e, m) => {
                self.coverage.invalid_appends += 1;
                self.agree("append", e.map(|_| ()), m.map(|_| ()));
            }
        }
    }

    fn changes(&mut self, feed: u8, engine_since: Option<ChangeToken>, model_since: Option<ChangeToken>, limit: usize) {
        let f = feed_key(feed);
        let engine = self.engine().changes(&f, engine_since, limit);
        let model = self.model().changes(&f, model_since, limit);
        let (engine, model) = match (engine, model) {
            (Ok(e), Ok(m)) => (e, m),
            (e, m) => {
                self.coverage.stale_tokens += u64::from(matches!(m, Err(StoreError::StaleToken)));
                self.agree("changes", e.map(|_| ()), m.map(|_| ()));
                return;
            }
        };
        for change in &model.items {
            match change {
                Change::Removed { reason: RemovalReason::Evicted, .. } => self.coverage.evictions += 1,
                Change::Removed { reason: RemovalReason::GroupDeleted, .. } => self.coverage.group_deletes += 1,
                Change::Removed { reason: RemovalReason::Deleted, .. } => self.coverage.deletes += 1,
                Change::Removed { reason: RemovalReason::Expired, .. } => self.coverage.expirations_reported += 1,
                _ => {}
            }
        }
        let items: Vec<Change> = engine.items.into_iter().map(|c| self.translate_change(c)).collect();
        let engine_times: Vec<Timestamp> = self.expired_prefix(&items).into_iter().map(|(t, _)| t).collect();
        assert!(
            engine_times.is_sorted(),
            "{}: changes: expirations come oldest first, got {engine_times:?}",
            self.at()
        );
        assert_eq!(
            self.expirations_in_id_order(items),
            self.expirations_in_id_order(model.items),
            "{}: changes since {model_since:?} (model token), limit {limit}: engine (left), model (right)",
            self.at()
        );
        assert_eq!(engine.more, model.more, "{}: changes: whether more are ready", self.at());
        self.tokens[usize::from(feed)].push((engine.next, model.next));
    }

    /// The next expiration seen so far less `before`, if it lies ahead and within two hours.
    fn next_expiration(&self, before: SignedDuration) -> Option<Timestamp> {
        let now = self.now();
        let target = self.expirations.iter().map(|t| *t - before).find(|t| *t > now)?;
        (target <= now + SignedDuration::from_hours(2)).then_some(target)
    }

    /// The leading expirations of a page: (expiration, model id).
    fn expired_prefix(&self, items: &[Change]) -> Vec<(Timestamp, NotificationId)> {
        items
            .iter()
            .take_while(|c| is_expiration(c))
            .map(|c| match c {
                Change::Removed { id, .. } => (self.expiration_of[id], *id),
                Change::Upserted(n) => (n.expiration, n.id),
            })
            .collect()
    }

    /// The page with the expirations of each instant in model-id order: within an instant they
    /// come in id order, and ids differ between engine and model.
    fn expirations_in_id_order(&self, mut items: Vec<Change>) -> Vec<Change> {
        let prefix = self.expired_prefix(&items);
        let mut sorted = prefix.clone();
        sorted.sort();
        for (slot, (_, id)) in items.iter_mut().zip(sorted) {
            *slot = Change::Removed { id, reason: RemovalReason::Expired };
        }
        items
    }

    /// Lists the whole feed page by page, each side following its own cursors.
    fn page_through(&mut self, f: &FeedKey, limit: usize) {
        let mut engine_query = ListQuery { limit, ..ListQuery::default() };
        let mut model_query = engine_query.clone();
        for _ in 0..=FEED_CAPACITY {
            let engine = self.engine().list(f, &engine_query);
            let model = self.model().list(f, &model_query);
            let (engine, model) = match (engine, model) {
                (Ok(e), Ok(m)) => (e, m),
                (e, m) => panic!("{}: list: the engine answered {e:?}, the model {m:?}", self.at()),
            };
            let items: Vec<Notification> = engine.items.into_iter().map(|n| self.translate(n)).collect();
            assert_eq!(items, model.items, "{}: list page {model_query:?}: engine (left), model (right)", self.at());
            match (engine.next, model.next) {
                (Some(e), Some(m)) => {
                    self.coverage.resumed_lists += 1;
                    engine_query.cursor = Some(e);
                    model_query.cursor = Some(m);
                }
                (None, None) => return,
                (e, m) => panic!("{}: list: next cursor {e:?} from the engine, {m:?} from the model", self.at()),
            }
        }
        panic!("{}: paging through a feed of at most {FEED_CAPACITY} does not end", self.at());
    }

    /// Everything observable about every feed, compared in full.
    fn compare_everything(&mut self) {
        for feed in 0..FEEDS {
            let f = feed_key(feed);
            let counts = self.agree("count", self.engine().count(&f), self.model().count(&f));
            self.coverage.read_counted += u64::from(counts.is_some_and(|c| c.unread < c.total));
            let all = ListQuery { limit: ListQuery::MAX_LIMIT, ..ListQuery::default() };
            let engine = self
                .engine()
                .list(&f, &all)
                .map(|p| p.items.into_iter().map(|n| self.translate(n)).collect::<Vec<_>>());
            self.agree("list of everything", engine, self.model().list(&f, &all).map(|p| p.items));
            self.page_through(&f, 2);
            self.changes(feed, None, None, 1000);
            let tokens = self.tokens[usize::from(feed)].clone();
            for (engine_token, model_token) in tokens {
                self.changes(feed, Some(engine_token), Some(model_token), 1000);
            }
        }
        for pair in self.ids.clone() {
            for feed in 0..FEEDS {
                let f = feed_key(feed);
                let engine = self.engine().get(&f, pair.0).map(|n| n.map(|n| self.translate(n)));
                self.agree("get", engine, self.model().get(&f, pair.1));
            }
        }
    }
}

/// Whether a change is an expiration.
fn is_expiration(change: &Change) -> bool {
    matches!(change, Change::Removed { reason: RemovalReason::Expired, .. })
}
