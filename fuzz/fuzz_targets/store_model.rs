//! Model-based fuzzing of the log engine: an arbitrary sequence of store operations, clock
//! moves, syncs, sweeps, reopens, simulated crashes and injected I/O failures, applied to a
//! `LogStore` over the fault-injecting in-memory file system and to the plain in-memory model
//! (`common/model.rs`, a copy of the conformance suite's reference model). Every answer is
//! compared.
//!
//! The input first chooses the durability: `Always` (with a commit journal of 8 KiB, so that it
//! checkpoints every few records, or with none), or `Buffered` with a write buffer of 0,
//! 200 bytes (about one record), 1,500 bytes or 64 KiB (more than a segment).
//!
//! With `Always` every acknowledged mutation must survive a crash. An injected write or sync
//! failure fails one operation and poisons the store: its outcome is unknown (the record may or
//! may not have reached the file), so at the next reopen (clean, or after a crash that keeps
//! only synced bytes, optionally with a torn piece of the unsynced tail and some of the name
//! changes no directory sync covered, kept in order) the store must equal
//! the model either without that operation or with it, applied at the time it was attempted.
//! Until then the poisoned store must refuse every mutation and answer reads as the model
//! without it.
//!
//! With `Buffered` a clean reopen (drop, which syncs) must keep every acknowledged mutation,
//! as with `Always`. A *lossy* reopen (after a crash, after the store was poisoned, since a
//! poisoned store drops its buffers, or with a fault still armed while it closes) must keep
//! everything acknowledged up to the last durable point (a successful `sync`, a sweep that
//! counted expirations, which syncs every file, or the previous reopen), and may lose later
//! mutations: each segment file keeps a prefix of its records. See [`World::reopen_lossy`] for
//! the oracle. A crash captures the file system before the store is dropped, so nothing the
//! store would write while closing reaches it. A read may flush the buffer it needs: a
//! poisoned store refuses such a read (`Poisoned`), and an armed fault may fail it (and poison
//! the store).
//!
//! The clock stays within `expiry_log_retention`, so the engine forgets nothing the model
//! remembers, even after a sweep unlinked segments and the store restarted: removals are
//! carried forward by `Removals` records, and `Expired` records outlive the retention
//! (FORMAT.md). Every answer is compared there too (fuzz/README.md: the tolerance that was
//! here is gone).
#![no_main]

#[path = "common/model.rs"]
mod model;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{
    Change, ChangeToken, Clock, Cursor, Durability, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification,
    Notification, NotificationId, Platform, Platforms, ReadState, SharedClock, StateUpdate, StoreError, StoreOptions,
    UserActionState,
};

use model::ModelStore;

const FEEDS: u8 = 2;
const APPS: u8 = 5;
const GROUPS: u8 = 3;
const FEED_CAPACITY: usize = 4;
const REMOVAL_LOG_CAPACITY: usize = 3;
/// A power loss keeps a prefix of each file's records, not of the operations (the log module
/// documentation), so it can keep a later append and lose an earlier delete in another segment,
/// leaving two live notifications with one `appNotificationId` in the files. A write that failed
/// part-way through writing the buffers of several segments (the store poisons; finding 9) left
/// the same kind of state; such a flush is now cut back. A scanning open now deletes the older
/// of such a pair
/// (`RecoveryReport::duplicate_app_ids_removed`), so no reopen shows one: this is off. With it
/// set, the weak check of a lossy reopen would not check such a pair against the models, nor
/// `get_by_app_id` against the list for such an app id.
const TOLERATE_DUPLICATE_APP_IDS_AFTER_LOSS: bool = false;
/// The clock never moves more than this from the start (retention is 7 days).
const MAX_CLOCK_SECONDS: i64 = 6 * 24 * 3600;

/// One run: the durability, then the operations.
#[derive(Arbitrary, Debug)]
struct Input {
    mode: Mode,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// With a commit journal of the smallest size (8 KiB), so that batches checkpoint every
    /// few records, or with none (each batch syncs its segments).
    Always {
        journal: bool,
    },
    /// `write_buffer_bytes` is `BUFFER_SIZES[buffer % 4]`; bit 2 turns the volume sync off.
    Buffered {
        buffer: u8,
    },
}

/// Write buffers for `Durability::Buffered`: none (every batch reaches the OS before the call
/// returns), about one record, a few records, and more than a segment (only rolls, syncs,
/// reads, sweeps and the close write it).
const BUFFER_SIZES: [usize; 4] = [0, 200, 1500, 64 << 10];

impl Mode {
    fn always(self) -> bool {
        matches!(self, Mode::Always { .. })
    }

    /// `LogConfig::volume_sync`: on with `Always`; with `Buffered`, off when bit 2 of `buffer`
    /// is set (bits 0 and 1 pick the buffer).
    fn volume_sync(self) -> bool {
        match self {
            Mode::Always { .. } => true,
            Mode::Buffered { buffer } => buffer & 4 == 0,
        }
    }

    fn buffer(self) -> Option<usize> {
        match self {
            Mode::Always { .. } => None,
            Mode::Buffered { buffer } => Some(BUFFER_SIZES[usize::from(buffer % 4)]),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Append { feed: u8, app: u8, group: Option<u8>, platforms: u8, raw: bool, title: u8, expires_in: Option<u16> },
    Get { feed: u8, pick: u8 },
    GetByAppId { feed: u8, app: u8 },
    List { feed: u8, group: Option<u8>, platform: Option<u8>, read: Option<bool>, limit: u8, resume: bool },
    Count { feed: u8 },
    UpdateState { feed: u8, pick: u8, read: Option<bool>, action: Option<u8> },
    Delete { feed: u8, pick: u8 },
    DeleteByAppId { feed: u8, app: u8 },
    DeleteGroup { feed: u8, group: u8 },
    Changes { feed: u8, token: Option<u8>, limit: u8 },
    Advance { seconds: u16 },
    AdvanceToNextExpiration,
    Sync,
    Sweep,
    Reopen,
    /// A power loss: `kept_name_changes` (modulo one more than their number) picks how many
    /// of the name changes no directory sync made durable yet survive, in order.
    Crash { torn_tail_bytes: Option<u16>, kept_name_changes: u8 },
    Fault(Fault),
    Verify,
    Backup,
}

#[derive(Arbitrary, Debug, Clone)]
enum Fault {
    FailWrite(u8),
    TearWrite(u8),
    FailSync(u8),
    FailSyncDir,
    FailRemove(u8),
}

fn feed_key(feed: u8) -> FeedKey {
    FeedKey::new(format!("user{}/app.example", feed % FEEDS)).unwrap_or_else(|e| panic!("feed key: {e}"))
}

fn read_state(read: bool) -> ReadState {
    if read { ReadState::Read } else { ReadState::Unread }
}

fn action_state(a: u8) -> UserActionState {
    match a % 4 {
        0 => UserActionState::NoInteraction,
        1 => UserActionState::Activated,
        2 => UserActionState::Dismissed,
        _ => UserActionState::Snoozed,
    }
}

/// A name for an error kind: errors are compared by kind.
fn kind(e: &StoreError) -> String {
    match e {
        StoreError::Invalid(c) => format!("Invalid({c})"),
        StoreError::StaleToken => "StaleToken".into(),
        StoreError::Poisoned => "Poisoned".into(),
        other => format!("{other}"),
    }
}

/// What a whole store answers, feed by feed: compared after every reopen.
#[derive(Debug, PartialEq)]
struct Snapshot {
    feeds: Vec<FeedSnapshot>,
}

#[derive(Debug, PartialEq)]
struct FeedSnapshot {
    list: Vec<Notification>,
    total: u64,
    unread: u64,
    by_app: Vec<Option<NotificationId>>,
    /// The whole changes feed, in its order: two candidates that read the same (a replacement
    /// by identical content, kept in one and lost in the other) differ only in where the
    /// upsert falls among the removals.
    changes: Vec<Change>,
}

fn snapshot(store: &dyn FeedStore) -> Result<Snapshot, StoreError> {
    let mut feeds = Vec::new();
    for feed in 0..FEEDS {
        let f = feed_key(feed);
        let list = store.list(&f, &ListQuery { limit: 1000, ..ListQuery::default() })?.items;
        let counts = store.count(&f)?;
        let mut by_app = Vec::new();
        for app in 0..APPS {
            by_app.push(store.get_by_app_id(&f, &format!("app-{app}"))?.map(|n| n.id));
        }
        let changes = store.changes(&f, None, 1000)?.items;
        feeds.push(FeedSnapshot { list, total: counts.total, unread: counts.unread, by_app, changes });
    }
    Ok(Snapshot { feeds })
}

/// An operation whose outcome an injected failure left unknown, with the time it was tried.
struct Uncertain {
    op: Op,
    at: Timestamp,
    /// How many ids `pick` chose from then.
    ids_len: usize,
}

/// An acknowledged mutation since the last durable point (buffered durability only), as it was
/// applied to the model: replayed on the durable model to build what a lossy reopen may keep.
struct Acknowledged {
    op: Op,
    at: Timestamp,
    /// The id the engine gave a new notification.
    created: Option<NotificationId>,
    /// How many ids `pick` chose from then.
    ids_len: usize,
    /// It changed the store (a no-op, such as deleting an unknown id, is kept in every
    /// candidate of a lossy reopen).
    effective: bool,
}

/// A lossy reopen tries every subset of the effective mutations since the durable point when
/// there are at most this many (else only their prefixes).
const MAX_SUBSET_MUTATIONS: usize = 8;

struct World {
    clock: ManualClock,
    fs: FaultFileSystem,
    engine: Option<LogStore>,
    model: ModelStore,
    /// Every id the engine returned, for `pick`.
    ids: Vec<NotificationId>,
    /// Per feed: (engine token, model token) pairs from earlier `changes`.
    tokens: Vec<Vec<(ChangeToken, ChangeToken)>>,
    /// Per feed: the last list query with a next page, and the (engine, model) cursors.
    cursors: Vec<Option<(ListQuery, Cursor, Cursor)>>,
    /// Armed fault plan (until an operation fails or the store reopens).
    armed: bool,
    uncertain: Option<Uncertain>,
    /// A sweep unlinked segments (or failed) since the last reopen.
    unlinked: bool,
    /// The store reopened after a sweep unlinked segments (where the engine once forgot
    /// removals the model remembers; stats only).
    reopened_after_unlink: bool,
    step: usize,
    expirations: Vec<Timestamp>,
    stats: Stats,
    /// A sweep failed: the next sweep's count may be lower than the model's (the failed one
    /// may have counted some expirations, durably, before it failed).
    sweep_count_unknown: bool,
    mode: Mode,
    /// Backups made so far (each goes to a directory of its own).
    backups: usize,
    /// What the next crash keeps of the unsynced name changes (see [`Op::Crash`]).
    kept_name_changes: u8,
    /// Buffered durability: the model at the last durable point, and the mutations
    /// acknowledged since.
    durable: ModelStore,
    since_durable: Vec<Acknowledged>,
    /// A lossy reopen kept a state no model can follow (see [`World::reopen_lossy`]): the run
    /// ends there.
    diverged: bool,
}

/// What a run exercised; printed per run when `NOTIFEED_FUZZ_STATS` is set (to check the
/// target reaches its interesting paths: `-runs=0` over the corpus).
#[derive(Debug, Default)]
struct Stats {
    failures: u32,
    resolved_with: u32,
    resolved_without: u32,
    crashes: u32,
    /// Crashes that kept some name changes no directory sync had made durable.
    crashes_keeping_name_changes: u32,
    reopens: u32,
    reopened_after_unlink: bool,
    appends: u32,
    evictions_or_replacements: u32,
    /// `write_buffer_bytes` of a buffered run.
    #[expect(dead_code, reason = "printed through Debug")]
    buffered: Option<usize>,
    /// Buffered runs: reopens that could lose acknowledged mutations (crash, poisoned store,
    /// fault armed at close), and what they kept.
    lossy_reopens: u32,
    kept_everything: u32,
    /// Kept a shorter prefix of the mutations since the durable point (some were lost).
    kept_a_prefix: u32,
    /// Kept a subset of them that is no prefix (records went to several files, which kept
    /// different amounts).
    kept_a_subset: u32,
    /// Kept no prefix (per-file prefixes): checked by the weaker oracle, and the run ended.
    kept_per_file_prefixes: u32,
    /// Lossy reopens that left two live notifications with one app id (tolerated, see
    /// [`TOLERATE_DUPLICATE_APP_IDS_AFTER_LOSS`]).
    duplicate_app_ids: u32,
    /// Reads a buffered store refused (poisoned, or a fault failed the flush they needed).
    reads_refused: u32,
}

/// Totals over every run of this process, printed with the per-run stats.
static TOTAL_RUNS: AtomicU64 = AtomicU64::new(0);
static TOTAL_BUFFERED_RUNS: AtomicU64 = AtomicU64::new(0);
static TOTAL_BUFFERED_CRASHES: AtomicU64 = AtomicU64::new(0);
static TOTAL_LOSSY_REOPENS: AtomicU64 = AtomicU64::new(0);
static TOTAL_LOST_SOME: AtomicU64 = AtomicU64::new(0);
static TOTAL_SUBSET: AtomicU64 = AtomicU64::new(0);
static TOTAL_PER_FILE: AtomicU64 = AtomicU64::new(0);

fn config(mode: Mode) -> LogConfig {
    LogConfig {
        durability: if mode.always() { Durability::Always } else { Durability::Buffered },
        journal_bytes: if matches!(mode, Mode::Always { journal: true }) { 1 } else { 0 },
        write_buffer_bytes: mode.buffer().unwrap_or(0),
        options: StoreOptions {
            feed_capacity: FEED_CAPACITY,
            removal_log_capacity: REMOVAL_LOG_CAPACITY,
            ..StoreOptions::default()
        },
        window: SignedDuration::from_secs(600),
        // Off by default; on here, so that clean reopens load it (and crashes scan).
        index_snapshot: true,
        max_segment_bytes: 4096,
        // Few, so the descriptor LRU turns over; with the journal or `Buffered`, up to 3
        // segments may then hold unsynced bytes before a write syncs them first (IMPORTANT
        // 19), so journal entries over several segments, and unsynced records in several
        // windows for a power loss to keep or lose, build up between syncs.
        max_open_files: if matches!(mode, Mode::Always { journal: false }) { 2 } else { 4 },
        // Both ways of syncing a batch over several files: one volume sync, or each file.
        volume_sync: mode.volume_sync(),
        ..LogConfig::default()
    }
}

fn open(fs: &FaultFileSystem, clock: &ManualClock, mode: Mode) -> LogStore {
    let shared: SharedClock = Arc::new(clock.clone());
    match LogStore::open_with_fs(Path::new("/db"), config(mode), shared, Arc::new(fs.clone())) {
        Ok(store) => store,
        Err(e) => panic!("the store does not open: {e}"),
    }
}

impl World {
    fn new(mode: Mode) -> Self {
        let clock = ManualClock::at_epoch_2026();
        let fs = FaultFileSystem::new();
        let engine = Some(open(&fs, &clock, mode));
        let model = ModelStore::new(clock.clone(), config(mode).options);
        let durable = model.fork();
        World {
            clock,
            fs,
            engine,
            model,
            ids: Vec::new(),
            tokens: vec![Vec::new(); usize::from(FEEDS)],
            cursors: vec![None; usize::from(FEEDS)],
            armed: false,
            uncertain: None,
            unlinked: false,
            reopened_after_unlink: false,
            step: 0,
            expirations: Vec::new(),
            stats: Stats { buffered: mode.buffer(), ..Stats::default() },
            sweep_count_unknown: false,
            mode,
            durable,
            since_durable: Vec::new(),
            diverged: false,
            backups: 0,
            kept_name_changes: 0,
        }
    }

    fn engine(&self) -> &LogStore {
        self.engine.as_ref().unwrap_or_else(|| panic!("no engine"))
    }

    fn poisoned(&self) -> bool {
        self.engine().is_poisoned()
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn pick(&self, pick: u8) -> NotificationId {
        self.pick_among(pick, self.ids.len())
    }

    /// `pick` among the first `ids_len` ids (as it chose when that many were known).
    fn pick_among(&self, pick: u8, ids_len: usize) -> NotificationId {
        let n = ids_len.min(self.ids.len()) + 1;
        match self.ids.get(usize::from(pick) % n) {
            Some(id) => *id,
            None => NotificationId::from_bytes([0xEE; 16]),
        }
    }

    fn new_notification(&self, op: &Op) -> Option<(u8, NewNotification)> {
        let Op::Append { feed, app, group, platforms, raw, title, expires_in } = *op else { return None };
        let app_id = format!("app-{}", app % APPS);
        let mut new = if raw {
            NewNotification::raw("app.example", &app_id, &format!("raw {title}"))
        } else {
            let text = if title == 0 { String::new() } else { format!("title {title}") };
            NewNotification::visual("app.example", &app_id, &text)
        };
        new.group_name = group.map(|g| format!("group-{}", g % GROUPS));
        new.platforms = Platforms::from_bits(platforms);
        new.expiration = expires_in.map(|s| self.now() + SignedDuration::from_secs(i64::from(s)));
        Some((feed, new))
    }

    /// Applies a mutation to `model` (the engine already answered `engine_id` for a new
    /// notification, when it did).
    fn apply_to_model(
        &self,
        model: &ModelStore,
        op: &Op,
        engine_id: Option<NotificationId>,
        ids_len: usize,
    ) -> Result<String, StoreError> {
        let choose = |p: &u8| self.pick_among(*p, ids_len);
        match op {
            Op::Append { .. } => {
                let (feed, new) = self.new_notification(op).unwrap_or_else(|| unreachable!());
                model.take_id(engine_id);
                let r = model.append(&feed_key(feed), new).map(|n| format!("{n:?}"));
                model.take_id(None);
                r
            }
            Op::UpdateState { feed, pick, read, action } => {
                let update =
                    StateUpdate { read_state: read.map(read_state), user_action_state: action.map(action_state) };
                model.update_state(&feed_key(*feed), choose(pick), update).map(|n| format!("{n:?}"))
            }
            Op::Delete { feed, pick } => model.delete(&feed_key(*feed), choose(pick)).map(|b| b.to_string()),
            Op::DeleteByAppId { feed, app } => {
                model.delete_by_app_id(&feed_key(*feed), &format!("app-{}", app % APPS)).map(|b| b.to_string())
            }
            Op::DeleteGroup { feed, group } => {
                model.delete_group(&feed_key(*feed), &format!("group-{}", group % GROUPS)).map(|n| n.to_string())
            }
            Op::Sweep => model.sweep_expired().map(|s| s.expired.to_string()),
            Op::Sync => Ok(String::new()),
            _ => unreachable!("not a mutation: {op:?}"),
        }
    }

    /// Runs a mutation on the engine; returns its answer as text (compared with the model's),
    /// and the id of a notification it created.
    fn run_on_engine(&self, op: &Op) -> (Result<String, StoreError>, Option<NotificationId>) {
        let e = self.engine();
        match op {
            Op::Append { .. } => {
                let (feed, new) = self.new_notification(op).unwrap_or_else(|| unreachable!());
                match e.append(&feed_key(feed), new) {
                    Ok(n) => (Ok(format!("{n:?}")), Some(n.id)),
                    Err(err) => (Err(err), None),
                }
            }
            Op::UpdateState { feed, pick, read, action } => {
                let update =
                    StateUpdate { read_state: read.map(read_state), user_action_state: action.map(action_state) };
                (e.update_state(&feed_key(*feed), self.pick(*pick), update).map(|n| format!("{n:?}")), None)
            }
            Op::Delete { feed, pick } => (e.delete(&feed_key(*feed), self.pick(*pick)).map(|b| b.to_string()), None),
            Op::DeleteByAppId { feed, app } => {
                (e.delete_by_app_id(&feed_key(*feed), &format!("app-{}", app % APPS)).map(|b| b.to_string()), None)
            }
            Op::DeleteGroup { feed, group } => {
                (e.delete_group(&feed_key(*feed), &format!("group-{}", group % GROUPS)).map(|n| n.to_string()), None)
            }
            Op::Sweep => match e.sweep_expired() {
                Ok(s) => (
                    Ok(s.expired.to_string()),
                    if s.files_removed > 0 { Some(NotificationId::from_bytes([0; 16])) } else { None },
                ),
                Err(err) => (Err(err), None),
            },
            Op::Sync => (e.sync().map(|()| String::new()), None),
            _ => unreachable!("not a mutation: {op:?}"),
        }
    }

    fn mutate(&mut self, op: &Op) {
        let was_poisoned = self.poisoned();
        let (engine, created) = self.run_on_engine(op);
        if was_poisoned {
            match engine {
                Err(StoreError::Poisoned) => return,
                other => panic!("step {}: a poisoned store answered {op:?} with {other:?}", self.step),
            }
        }
        if matches!(op, Op::Sweep) && created.is_some() {
            self.unlinked = true;
        }
        let created = if matches!(op, Op::Append { .. }) { created } else { None };
        match engine {
            Err(err) if !matches!(err, StoreError::Invalid(_)) => {
                assert!(self.armed, "step {}: {op:?} failed with no fault armed: {err}", self.step);
                assert!(self.poisoned(), "step {}: {op:?} failed ({err}) without poisoning the store", self.step);
                self.armed = false;
                if matches!(op, Op::Sweep) {
                    self.unlinked = true;
                }
                self.uncertain = Some(Uncertain { op: op.clone(), at: self.now(), ids_len: self.ids.len() });
                self.stats.failures += 1;
            }
            engine => {
                if let Some(id) = created {
                    assert!(
                        !self.model.knows(id) || self.model_replaces(op),
                        "step {}: the engine reused id {id}",
                        self.step
                    );
                }
                let ids_len = self.ids.len();
                let model = self.apply_to_model(&self.model, op, created, ids_len);
                if !self.mode.always() {
                    // A sync, and a sweep that counted expirations (it syncs every file before
                    // it returns), make every earlier mutation durable.
                    let counted = |r: &Result<String, StoreError>| {
                        r.as_ref().ok().and_then(|c| c.parse::<u64>().ok()).is_some_and(|c| c > 0)
                    };
                    let durable_now = match op {
                        Op::Sync => engine.is_ok(),
                        Op::Sweep => counted(&engine),
                        _ => false,
                    };
                    if durable_now {
                        self.durable = self.model.fork();
                        self.since_durable.clear();
                    } else {
                        let effective = match (op, &engine) {
                            (_, Err(_)) => false,
                            (Op::UpdateState { .. }, Ok(answer)) => answer != "None",
                            (Op::Delete { .. } | Op::DeleteByAppId { .. }, Ok(answer)) => answer == "true",
                            (Op::DeleteGroup { .. }, Ok(answer)) => answer != "0",
                            _ => true,
                        };
                        let at = self.now();
                        self.since_durable.push(Acknowledged { op: op.clone(), at, created, ids_len, effective });
                    }
                }
                let e = engine.map_err(|e| kind(&e));
                let m = model.map_err(|e| kind(&e));
                if matches!(op, Op::Sweep) && std::mem::take(&mut self.sweep_count_unknown) {
                    // A failed sweep may have counted some expirations before it failed.
                    let count = |r: &Result<String, String>| r.as_ref().ok().and_then(|c| c.parse::<u64>().ok());
                    assert!(
                        count(&e).zip(count(&m)).is_some_and(|(e, m)| e <= m),
                        "step {}: the first sweep after a failed one: engine {e:?}, model {m:?}",
                        self.step
                    );
                    return;
                }
                assert_eq!(e, m, "step {}: {op:?}: engine (left), model (right)", self.step);
                if let Some(id) = created {
                    self.stats.appends += 1;
                    if self.ids.contains(&id) {
                        self.stats.evictions_or_replacements += 1;
                    } else {
                        self.ids.push(id);
                    }
                }
                if let Op::Append { .. } = op
                    && let Some((_, new)) = self.new_notification(op)
                    && let Some(at) = new.expiration
                {
                    self.expirations.push(at);
                }
            }
        }
    }

    /// Whether `op` (an append) replaces a live notification in the model.
    fn model_replaces(&self, op: &Op) -> bool {
        let Op::Append { feed, app, .. } = *op else { return false };
        matches!(self.model.get_by_app_id(&feed_key(feed), &format!("app-{}", app % APPS)), Ok(Some(_)))
    }

    fn reopen(&mut self, crash: Option<Option<u16>>) {
        self.stats.reopens += 1;
        self.stats.crashes += u32::from(crash.is_some());
        let buffered = !self.mode.always();
        // Buffered: the mutations acknowledged since the last durable point may be lost when the
        // machine stops, when the store is poisoned (it drops its buffers) and when a fault is
        // armed while it closes (its closing sync may fail).
        let lossy = buffered && (crash.is_some() || self.poisoned() || self.armed);
        if buffered && crash.is_some() {
            TOTAL_BUFFERED_CRASHES.fetch_add(1, Ordering::Relaxed);
        }
        let engine = self.engine.take();
        match crash {
            Some(torn) => {
                // The machine stops now: nothing the store would write while closing (a
                // buffered store's last flush and sync) reaches the disk.
                let unsynced = self.fs.unsynced_name_changes();
                let kept = usize::from(self.kept_name_changes) % (unsynced + 1);
                self.stats.crashes_keeping_name_changes += u32::from(kept > 0);
                let crashed = self.fs.crash_keeping_name_changes(torn.map(usize::from), kept);
                self.kept_name_changes = 0;
                drop(engine);
                self.fs = crashed;
            }
            // A clean close, with the fault plan still armed.
            None => drop(engine),
        }
        self.fs.set_plan(FaultPlan::default());
        self.armed = false;
        self.engine = Some(open(&self.fs, &self.clock, self.mode));
        if self.unlinked {
            self.reopened_after_unlink = true;
            self.unlinked = false;
        }
        self.cursors = vec![None; usize::from(FEEDS)];
        if self.uncertain.as_ref().is_some_and(|u| matches!(u.op, Op::Sweep)) {
            self.sweep_count_unknown = true;
        }
        if lossy {
            self.reopen_lossy(crash);
        } else {
            self.check_reopened(crash);
        }
        // What an open replays is durable (FORMAT.md, invariant 8).
        self.durable = self.model.fork();
        self.since_durable.clear();
    }

    /// After a reopen that keeps every acknowledged mutation: the store equals the model, with
    /// or without the failed operation (if any), decided at the time it was tried.
    fn check_reopened(&mut self, crash: Option<Option<u16>>) {
        let engine_now =
            snapshot(self.engine()).unwrap_or_else(|e| panic!("step {}: reading after reopen: {e}", self.step));
        let model_now = snapshot(&self.model).unwrap_or_else(|e| panic!("model: {e}"));
        let Some(uncertain) = self.uncertain.take() else {
            assert!(
                engine_now == model_now,
                "step {}: after reopen (crash: {crash:?}) the store differs from the acknowledged operations:\nengine {engine_now:#?}\nmodel {model_now:#?}",
                self.step
            );
            return;
        };
        // Which happened is decided at the time the operation was tried, when what it wrote is
        // visible (a notification it appended may have expired since). Nothing changed after it:
        // the store was poisoned until this reopen.
        let now = self.now();
        self.clock.set(uncertain.at);
        let with = self.model.fork();
        let created = match &uncertain.op {
            Op::Append { .. } => {
                let (feed, new) = self.new_notification_at(&uncertain.op);
                self.engine().get_by_app_id(&feed_key(feed), &new.app_notification_id).ok().flatten().map(|n| n.id)
            }
            _ => None,
        };
        let created = created.filter(|id| !self.model.knows(*id));
        let _ = self.apply_to_model(&with, &uncertain.op, created, uncertain.ids_len);
        let engine_then =
            snapshot(self.engine()).unwrap_or_else(|e| panic!("step {}: reading after reopen: {e}", self.step));
        let without_then = snapshot(&self.model).unwrap_or_else(|e| panic!("model: {e}"));
        let with_then = snapshot(&with).unwrap_or_else(|e| panic!("model: {e}"));
        self.clock.set(now);
        if engine_then == without_then && engine_then == with_then {
            // Reads cannot tell (a replacement by identical content changes only sequences):
            // the earlier tokens could, so they are dropped.
            self.tokens = vec![Vec::new(); usize::from(FEEDS)];
        }
        if engine_then == without_then {
            self.stats.resolved_without += 1;
            assert!(
                engine_now == model_now,
                "step {}: after reopen (crash: {crash:?}) the store differs from the acknowledged operations (without the failed {:?}):\nengine {engine_now:#?}\nmodel {model_now:#?}",
                self.step,
                uncertain.op
            );
            return;
        }
        self.stats.resolved_with += 1;
        assert!(
            engine_then == with_then,
            "step {}: after reopen (crash: {crash:?}) the store is neither without nor with the failed {:?} (at its time):\nengine {engine_then:#?}\nwithout {without_then:#?}\nwith {with_then:#?}",
            self.step,
            uncertain.op
        );
        let model_with = snapshot(&with).unwrap_or_else(|e| panic!("model: {e}"));
        assert!(
            engine_now == model_with,
            "step {}: after reopen (crash: {crash:?}) the store differs from the acknowledged operations and the failed {:?}:\nengine {engine_now:#?}\nmodel {model_with:#?}",
            self.step,
            uncertain.op
        );
        if let Some(id) = created {
            self.ids.push(id);
        }
        self.model = with;
    }

    /// Whether a buffered store may refuse this read: a read flushes the buffer that holds the
    /// record it needs, which a poisoned store refuses and an armed fault may fail (poisoning the
    /// store: the mutations acknowledged since the last durable point may then be lost, which
    /// the next reopen checks).
    fn read_refused(&mut self, e: &StoreError) -> bool {
        if self.mode.always() {
            return false;
        }
        let refused = match e {
            StoreError::Poisoned => self.poisoned(),
            StoreError::Io { .. } => self.armed && self.poisoned(),
            _ => false,
        };
        if refused {
            if matches!(e, StoreError::Io { .. }) {
                self.armed = false;
            }
            self.stats.reads_refused += 1;
        }
        refused
    }

    /// The oracle of a lossy reopen (buffered durability).
    ///
    /// The candidates are the durable model with the first `j` mutations acknowledged since
    /// (`j` = all of them, down to none), each also with the failed operation (if any) applied
    /// at its time. The store must equal one of them at the time of every mutation since the
    /// durable point, of the failed operation, and now (so a notification appended then and
    /// expired since decides between candidates too). The first that matches becomes the model.
    ///
    /// None matches when the records since the durable point went to several files and the
    /// files kept different amounts: each file keeps a prefix of its records, but together they
    /// need not be a prefix of the operations, and since a record holds its notification's
    /// whole state, a later record may survive the loss of an earlier one. The model cannot
    /// follow such a state, so this weaker check runs, and the run ends:
    /// * every notification of the ids known is, in the store, as one candidate has it (present
    ///   in one of its acknowledged versions, or absent where a candidate lacks it): nothing
    ///   half-written or resurrected, and nothing acknowledged before the durable point lost;
    /// * a mutation that changed several notifications which no other mutation since touched
    ///   (an eviction with its append, a group delete) is there whole or not at all;
    /// * counts and lookups by app id agree with the list.
    fn reopen_lossy(&mut self, crash: Option<Option<u16>>) {
        self.stats.lossy_reopens += 1;
        TOTAL_LOSSY_REOPENS.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let uncertain = self.uncertain.take();
        let mut times: BTreeSet<Timestamp> = self.since_durable.iter().map(|a| a.at).collect();
        times.extend(uncertain.as_ref().map(|u| u.at));
        times.insert(now);
        let mut engine_at = Vec::new();
        for t in &times {
            self.clock.set(*t);
            let snap =
                snapshot(self.engine()).unwrap_or_else(|e| panic!("step {}: reading after reopen: {e}", self.step));
            engine_at.push((*t, snap));
        }
        let mut prefixes = vec![self.durable.fork()];
        for a in &self.since_durable {
            let m = prefixes.last().unwrap_or_else(|| unreachable!()).fork();
            self.clock.set(a.at);
            let _ = self.apply_to_model(&m, &a.op, a.created, a.ids_len);
            prefixes.push(m);
        }
        self.clock.set(now);
        let k = prefixes.len() - 1;
        assert_eq!(
            snapshot(&prefixes[k]).ok(),
            snapshot(&self.model).ok(),
            "the target's bookkeeping: replaying the mutations since the durable point does not give the model"
        );
        // (mutations kept, the failed operation applied, the id it created, the model)
        let mut candidates: Vec<(Vec<bool>, bool, Option<NotificationId>, ModelStore)> = Vec::new();
        for j in (0..=k).rev() {
            let kept: Vec<bool> = (0..k).map(|i| i < j).collect();
            let prefix = prefixes[j].fork();
            self.add_candidates(&mut candidates, kept, prefix, uncertain.as_ref());
        }
        let mut found = self.matching(&candidates, &engine_at);
        let effective: Vec<usize> = (0..k).filter(|&i| self.since_durable[i].effective).collect();
        if found.is_none() && effective.len() <= MAX_SUBSET_MUTATIONS {
            // Subsets of the effective mutations (every no-op kept), most kept first.
            let mut masks: Vec<u32> = (0..1u32 << effective.len()).collect();
            masks.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
            let tried = candidates.len();
            for mask in masks {
                let mut kept = vec![true; k];
                for (bit, &i) in effective.iter().enumerate() {
                    kept[i] = mask & (1 << bit) != 0;
                }
                if self.prefix_shaped(&kept) {
                    continue;
                }
                let model = self.durable.fork();
                for (a, keep) in self.since_durable.iter().zip(&kept) {
                    if *keep {
                        self.clock.set(a.at);
                        let _ = self.apply_to_model(&model, &a.op, a.created, a.ids_len);
                    }
                }
                self.add_candidates(&mut candidates, kept, model, uncertain.as_ref());
            }
            found = self.matching(&candidates[tried..], &engine_at).map(|i| i + tried);
        }
        self.clock.set(now);
        // The open repaired two live notifications with one app id (a per-file loss): it wrote
        // the lost delete again, under a new sequence, so no model's sequences follow the store
        // even when its notifications read like one (finding 12: `changes` then ordered that
        // removal after later upserts). The weak check below judges such a reopen.
        let repaired = &self.engine().recovery_report().duplicate_app_ids_removed;
        if !repaired.is_empty() {
            if std::env::var_os("NOTIFEED_FUZZ_DEBUG").is_some() {
                eprintln!("step {}: the open repaired duplicate app ids: {repaired:?}", self.step);
            }
            found = None;
        }
        if let Some(i) = found {
            let (kept, with, created, model) = candidates.swap_remove(i);
            if std::env::var_os("NOTIFEED_FUZZ_DEBUG").is_some() {
                let ops: Vec<_> = self.since_durable.iter().map(|a| &a.op).collect();
                let failed = uncertain.as_ref().map(|u| &u.op);
                eprintln!(
                    "step {}: lossy reopen kept {kept:?} of {ops:?}, failed {failed:?} applied: {with}",
                    self.step
                );
            }
            if with {
                self.stats.resolved_with += 1;
            } else if uncertain.is_some() {
                self.stats.resolved_without += 1;
            }
            let lost = kept.iter().zip(&self.since_durable).any(|(keep, a)| !keep && a.effective);
            if uncertain.is_some() || kept.iter().any(|k| *k) {
                // Another candidate may read the same (a replacement by identical content
                // changes only sequences); earlier tokens could tell them apart, so they are
                // dropped.
                self.tokens = vec![Vec::new(); usize::from(FEEDS)];
            }
            if !lost {
                self.stats.kept_everything += 1;
            } else {
                if self.prefix_shaped(&kept) {
                    self.stats.kept_a_prefix += 1;
                    TOTAL_LOST_SOME.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.kept_a_subset += 1;
                    TOTAL_SUBSET.fetch_add(1, Ordering::Relaxed);
                }
                // The model's tokens from after the durable point name sequences it will now
                // give out again; the engine's do not (its LSN lease).
                self.tokens = vec![Vec::new(); usize::from(FEEDS)];
            }
            self.ids.extend(created);
            self.model = model;
            return;
        }
        if std::env::var_os("NOTIFEED_FUZZ_DEBUG").is_some() {
            eprintln!("since durable: {:?}", self.since_durable.iter().map(|a| (&a.op, a.at)).collect::<Vec<_>>());
            eprintln!("uncertain: {:?}", uncertain.as_ref().map(|u| (&u.op, u.at)));
            for (kept, with, _, c) in &candidates {
                for (t, e) in &engine_at {
                    self.clock.set(*t);
                    if let Ok(m) = snapshot(c)
                        && *e != m
                    {
                        eprintln!("candidate {kept:?} with {with}: differs at {t}:\nengine {e:#?}\nmodel {m:#?}");
                        break;
                    }
                }
            }
            self.clock.set(now);
        }
        self.stats.kept_per_file_prefixes += 1;
        TOTAL_PER_FILE.fetch_add(1, Ordering::Relaxed);
        self.diverged = true;
        let step = self.step;
        // Every version a notification had after some mutation since the durable point.
        let models: Vec<&ModelStore> =
            candidates.iter().filter(|(kept, ..)| self.prefix_shaped(kept)).map(|(.., c)| c).collect();
        let mut ids: BTreeSet<NotificationId> = self.ids.iter().copied().collect();
        ids.extend(candidates.iter().filter_map(|(_, _, created, _)| *created));
        let engine = self.engine.as_ref().unwrap_or_else(|| panic!("no engine"));
        let version = |store: &dyn FeedStore, f: &FeedKey, id: NotificationId| {
            store.get(f, id).unwrap_or_else(|e| panic!("step {step}: get {id} after reopen: {e}"))
        };
        for feed in 0..FEEDS {
            let f = feed_key(feed);
            let listed = engine
                .list(&f, &ListQuery { limit: 1000, ..ListQuery::default() })
                .unwrap_or_else(|e| panic!("step {step}: list after reopen: {e}"))
                .items;
            let mut feed_ids = ids.clone();
            feed_ids.extend(listed.iter().map(|n| n.id));
            // App ids two live notifications hold (tolerated, see the constant): the later one
            // was appended after the earlier was removed, and the removal was lost. No model
            // holds both, so neither is checked against the models.
            let duplicated: BTreeSet<&str> = listed
                .iter()
                .map(|n| n.app_notification_id())
                .filter(|app| listed.iter().filter(|n| n.app_notification_id() == *app).count() > 1)
                .collect();
            for id in feed_ids {
                let e = version(engine, &f, id);
                if TOLERATE_DUPLICATE_APP_IDS_AFTER_LOSS
                    && e.as_ref().is_some_and(|n| duplicated.contains(n.app_notification_id()))
                {
                    continue;
                }
                let allowed: Vec<Option<Notification>> = models.iter().map(|m| version(*m, &f, id)).collect();
                assert!(
                    allowed.contains(&e),
                    "step {step}: after a lossy reopen (crash: {crash:?}), feed {feed} has notification {id} as {e:#?}, which no prefix of the mutations since the last durable point has:\n{allowed:#?}"
                );
            }
            for n in &listed {
                assert_eq!(
                    version(engine, &f, n.id).as_ref(),
                    Some(n),
                    "step {step}: get and list disagree after reopen"
                );
            }
            let counts = engine.count(&f).unwrap_or_else(|e| panic!("step {step}: count after reopen: {e}"));
            let unread = listed.iter().filter(|n| n.read_state == ReadState::Unread).count();
            assert_eq!(
                (counts.total, counts.unread),
                (listed.len() as u64, unread as u64),
                "step {step}: counts and list disagree after reopen"
            );
            for app in 0..APPS {
                let app = format!("app-{app}");
                let holders = listed.iter().filter(|n| n.app_notification_id() == app).count();
                if holders > 1 && TOLERATE_DUPLICATE_APP_IDS_AFTER_LOSS {
                    self.stats.duplicate_app_ids += 1;
                    continue;
                }
                assert!(holders <= 1, "step {step}: {holders} live notifications with app id {app} after reopen");
                let by_app = engine
                    .get_by_app_id(&f, &app)
                    .unwrap_or_else(|e| panic!("step {step}: get_by_app_id after reopen: {e}"))
                    .map(|n| n.id);
                let in_list = listed.iter().find(|n| n.app_notification_id() == app).map(|n| n.id);
                assert_eq!(by_app, in_list, "step {step}: get_by_app_id {app} and list disagree after reopen");
            }
        }
        // Each mutation since the durable point is whole or absent, where that can be told: for
        // the notifications it changed that nothing else since changed.
        let state_of = |m: &dyn FeedStore| -> Vec<Option<Notification>> {
            let mut out = Vec::new();
            for feed in 0..FEEDS {
                for id in &ids {
                    out.push(version(m, &feed_key(feed), *id));
                }
            }
            out
        };
        let states: Vec<Vec<Option<Notification>>> = prefixes.iter().map(|p| state_of(p)).collect();
        let engine_state = state_of(engine);
        // The notifications the open deleted as the older of two with one app id (finding 10):
        // that delete stands for the lost delete that preceded the kept append, so it can make
        // a lost mutation look applied in part (a lost group delete whose members were re-used
        // by later appends); their absence is judged above, against the versions, not here.
        let feed_ids: Vec<(u8, NotificationId)> =
            (0..FEEDS).flat_map(|feed| ids.iter().map(move |id| (feed, *id))).collect();
        let resolved: BTreeSet<usize> = engine
            .recovery_report()
            .duplicate_app_ids_removed
            .iter()
            .filter_map(|(key, id)| {
                feed_ids.iter().position(|(feed, other)| feed_key(*feed).as_str() == key.as_str() && other == id)
            })
            .collect();
        let mut changed: Vec<BTreeSet<usize>> =
            states.windows(2).map(|w| (0..w[0].len()).filter(|&i| w[0][i] != w[1][i]).collect()).collect();
        if let Some((_, _, _, with)) = candidates.iter().find(|(kept, with, _, _)| kept.iter().all(|k| *k) && *with) {
            let last = &states[k];
            let with = state_of(with);
            changed.push((0..last.len()).filter(|&i| last[i] != with[i]).collect());
        }
        for (j, own) in changed.iter().enumerate().take(k) {
            let others: BTreeSet<usize> =
                changed.iter().enumerate().filter(|(i, _)| *i != j).flat_map(|(_, c)| c.iter().copied()).collect();
            let own: Vec<usize> = own.difference(&others).filter(|i| !resolved.contains(i)).copied().collect();
            if own.len() < 2 {
                continue;
            }
            let all_before = own.iter().all(|&i| engine_state[i] == states[j][i]);
            let all_after = own.iter().all(|&i| engine_state[i] == states[j + 1][i]);
            assert!(
                all_before || all_after,
                "step {step}: after a lossy reopen (crash: {crash:?}), {:?} is there in part",
                self.since_durable[j].op
            );
        }
    }

    /// Whether the effective mutations `kept` (of those since the durable point) are a prefix.
    fn prefix_shaped(&self, kept: &[bool]) -> bool {
        let effective: Vec<bool> =
            kept.iter().zip(&self.since_durable).filter(|(_, a)| a.effective).map(|(k, _)| *k).collect();
        effective.windows(2).all(|w| w[0] || !w[1])
    }

    /// Adds `model` (after the mutations `kept`) as a candidate of a lossy reopen, and the same
    /// with the failed operation (if any) applied at its time.
    fn add_candidates(
        &self,
        candidates: &mut Vec<(Vec<bool>, bool, Option<NotificationId>, ModelStore)>,
        kept: Vec<bool>,
        model: ModelStore,
        uncertain: Option<&Uncertain>,
    ) {
        if let Some(u) = uncertain {
            let with = model.fork();
            self.clock.set(u.at);
            let created = match &u.op {
                Op::Append { .. } => {
                    let (feed, new) = self.new_notification_at(&u.op);
                    self.engine().get_by_app_id(&feed_key(feed), &new.app_notification_id).ok().flatten().map(|n| n.id)
                }
                _ => None,
            };
            let created = created.filter(|id| !with.knows(*id));
            let _ = self.apply_to_model(&with, &u.op, created, u.ids_len);
            candidates.push((kept.clone(), false, None, model));
            candidates.push((kept, true, created, with));
        } else {
            candidates.push((kept, false, None, model));
        }
    }

    /// The first candidate that equals the store at every time of `engine_at`, and holds as
    /// many notifications not yet swept: candidates that differ only in which expired
    /// notifications a sweep counted look the same through every read, but not to the next
    /// sweep.
    fn matching(
        &self,
        candidates: &[(Vec<bool>, bool, Option<NotificationId>, ModelStore)],
        engine_at: &[(Timestamp, Snapshot)],
    ) -> Option<usize> {
        let indexed = self.engine().index_stats().notifications;
        candidates.iter().position(|(.., c)| {
            c.indexed() == indexed
                && engine_at.iter().all(|(t, e)| {
                    self.clock.set(*t);
                    snapshot(c).is_ok_and(|m| *e == m)
                })
        })
    }

    /// The feed and notification of an uncertain append (the clock already set to its time).
    fn new_notification_at(&self, op: &Op) -> (u8, NewNotification) {
        self.new_notification(op).unwrap_or_else(|| unreachable!())
    }

    fn list(&mut self, feed: u8, group: Option<u8>, platform: Option<u8>, read: Option<bool>, limit: u8, resume: bool) {
        let fresh = ListQuery {
            group: group.map(|g| format!("group-{}", g % GROUPS)),
            platform: platform.map(|p| Platform::ALL[usize::from(p) % Platform::ALL.len()]),
            read_state: read.map(read_state),
            user_action_state: None,
            limit: usize::from(limit % 6),
            cursor: None,
        };
        let slot = usize::from(feed % FEEDS);
        let (eq, mq) = match (&self.cursors[slot], resume) {
            (Some((q, ec, mc)), true) => {
                (ListQuery { cursor: Some(*ec), ..q.clone() }, ListQuery { cursor: Some(*mc), ..q.clone() })
            }
            _ => (fresh.clone(), fresh),
        };
        let f = feed_key(feed);
        let (e, m) = match (self.engine().list(&f, &eq), self.model.list(&f, &mq)) {
            (Err(e), _) if self.read_refused(&e) => return,
            (Ok(e), Ok(m)) => (e, m),
            (e, m) => panic!("step {}: list: engine {e:?}, model {m:?}", self.step),
        };
        assert_eq!(e.items, m.items, "step {}: list {mq:?}: engine (left), model (right)", self.step);
        assert_eq!(e.next.is_some(), m.next.is_some(), "step {}: list {mq:?}: whether a next page exists", self.step);
        self.cursors[slot] = match (e.next, m.next) {
            (Some(ec), Some(mc)) => Some((ListQuery { cursor: None, ..mq }, ec, mc)),
            _ => None,
        };
    }

    fn changes(&mut self, feed: u8, token: Option<u8>, limit: u8) {
        let slot = usize::from(feed % FEEDS);
        let pair = token.and_then(|t| {
            let tokens = &self.tokens[slot];
            (!tokens.is_empty()).then(|| tokens[usize::from(t) % tokens.len()])
        });
        let limit = usize::from(limit % 8);
        let f = feed_key(feed);
        let e = self.engine().changes(&f, pair.map(|p| p.0), limit);
        let m = self.model.changes(&f, pair.map(|p| p.1), limit);
        match (e, m) {
            (Err(e), _) if self.read_refused(&e) => {}
            (Ok(e), Ok(m)) => {
                assert_eq!(
                    e.items, m.items,
                    "step {}: changes since {pair:?} limit {limit}: engine (left), model (right)",
                    self.step
                );
                assert_eq!(e.more, m.more, "step {}: changes: whether more are ready", self.step);
                self.tokens[slot].push((e.next, m.next));
            }
            (e, m) => {
                let e = e.map(|_| ()).map_err(|e| kind(&e));
                let m = m.map(|_| ()).map_err(|e| kind(&e));
                assert_eq!(e, m, "step {}: changes since {pair:?}: engine (left), model (right)", self.step);
            }
        }
    }

    fn step(&mut self, op: &Op) {
        self.step += 1;
        match op {
            Op::Append { .. }
            | Op::UpdateState { .. }
            | Op::Delete { .. }
            | Op::DeleteByAppId { .. }
            | Op::DeleteGroup { .. }
            | Op::Sweep
            | Op::Sync => self.mutate(op),
            Op::Get { feed, pick } => {
                let f = feed_key(*feed);
                let id = self.pick(*pick);
                let e = self.engine().get(&f, id);
                if let Err(err) = &e
                    && self.read_refused(err)
                {
                    return;
                }
                let e = e.map_err(|e| kind(&e));
                let m = self.model.get(&f, id).map_err(|e| kind(&e));
                assert_eq!(e, m, "step {}: get {id}: engine (left), model (right)", self.step);
            }
            Op::GetByAppId { feed, app } => {
                let (f, app) = (feed_key(*feed), format!("app-{}", app % APPS));
                let e = self.engine().get_by_app_id(&f, &app);
                if let Err(err) = &e
                    && self.read_refused(err)
                {
                    return;
                }
                let e = e.map_err(|e| kind(&e));
                let m = self.model.get_by_app_id(&f, &app).map_err(|e| kind(&e));
                assert_eq!(e, m, "step {}: get_by_app_id {app}: engine (left), model (right)", self.step);
            }
            Op::List { feed, group, platform, read, limit, resume } => {
                self.list(*feed, *group, *platform, *read, *limit, *resume)
            }
            Op::Count { feed } => {
                let f = feed_key(*feed);
                let e = self.engine().count(&f);
                if let Err(err) = &e
                    && self.read_refused(err)
                {
                    return;
                }
                let e = e.map_err(|e| kind(&e));
                let m = self.model.count(&f).map_err(|e| kind(&e));
                assert_eq!(e, m, "step {}: count: engine (left), model (right)", self.step);
            }
            Op::Changes { feed, token, limit } => self.changes(*feed, *token, *limit),
            Op::Advance { seconds } => self.advance_to(self.now() + SignedDuration::from_secs(i64::from(*seconds))),
            Op::AdvanceToNextExpiration => {
                let now = self.now();
                if let Some(next) = self.expirations.iter().filter(|t| **t > now).min().copied() {
                    self.advance_to(next);
                }
            }
            Op::Reopen => self.reopen(None),
            Op::Crash { torn_tail_bytes, kept_name_changes } => {
                self.kept_name_changes = *kept_name_changes;
                self.reopen(Some(*torn_tail_bytes));
            }
            Op::Verify => self.verify(),
            Op::Backup => self.backup(),
            Op::Fault(fault) => {
                if self.armed || self.poisoned() {
                    return;
                }
                let n = |k: &u8| Some(u64::from(k % 4) + 1);
                let plan = match fault {
                    Fault::FailWrite(k) => FaultPlan { fail_write: n(k), ..FaultPlan::default() },
                    Fault::TearWrite(k) => FaultPlan { tear_write: n(k), ..FaultPlan::default() },
                    // The high bits pick which files a failed volume sync (`syncfs`) still
                    // made durable: file i when bit i % 6 of k / 4 is set.
                    Fault::FailSync(k) => {
                        let pattern = u64::from(k / 4);
                        let keeps = (0..64).filter(|i| pattern >> (i % 6) & 1 == 1).fold(0u64, |m, i| m | 1 << i);
                        FaultPlan { fail_sync: n(k), volume_sync_keeps: keeps, ..FaultPlan::default() }
                    }
                    Fault::FailSyncDir => FaultPlan { fail_sync_dir: true, ..FaultPlan::default() },
                    Fault::FailRemove(k) => FaultPlan { fail_remove: n(k), ..FaultPlan::default() },
                };
                self.fs.set_plan(plan);
                self.armed = true;
            }
        }
    }

    /// The scrub finds nothing wrong in a store that is not poisoned (whatever crashes, torn
    /// tails and reopens came before), and holds at least every notification the model holds
    /// live (it also counts expired ones no sweep has taken yet).
    fn verify(&mut self) {
        let verified = self.engine().verify();
        match verified {
            Err(StoreError::Poisoned) if self.poisoned() => self.stats.reads_refused += 1,
            // A buffered record's flush, failed by the armed fault: the store is poisoned.
            Err(StoreError::Io { .. }) if self.armed && self.poisoned() => {
                self.armed = false;
                self.stats.reads_refused += 1;
            }
            Err(e) => panic!("step {}: verify: {e}", self.step),
            Ok(report) => {
                let live: u64 = (0..FEEDS).map(|f| self.model.count(&feed_key(f)).map_or(0, |c| c.total)).sum();
                assert!(report.notifications >= live, "step {}: verify {report:?}, model holds {live}", self.step);
            }
        }
    }

    /// A backup opens as a store that answers exactly as this one does now (skipped while a
    /// fault is armed: the copy's own open would meet it).
    fn backup(&mut self) {
        if self.armed {
            return;
        }
        self.backups += 1;
        let dir = format!("/backup/{}", self.backups);
        match self.engine().backup(Path::new(&dir)) {
            Err(StoreError::Poisoned) if self.poisoned() => self.stats.reads_refused += 1,
            Err(e) => panic!("step {}: backup: {e}", self.step),
            Ok(_) => {
                let shared: SharedClock = Arc::new(self.clock.clone());
                let copy = LogStore::open_with_fs(Path::new(&dir), config(self.mode), shared, Arc::new(self.fs.clone()))
                    .unwrap_or_else(|e| panic!("step {}: the backup does not open: {e}", self.step));
                let (e, c) = (snapshot(self.engine()), snapshot(&copy));
                assert_eq!(e.ok(), c.ok(), "step {}: store (left), its backup (right)", self.step);
            }
        }
    }

    fn advance_to(&mut self, to: Timestamp) {
        let start = ManualClock::at_epoch_2026().now();
        if to.duration_since(start).as_secs() <= MAX_CLOCK_SECONDS {
            self.clock.set(to);
        }
    }
}

fuzz_target!(|input: Input| {
    let mut world = World::new(input.mode);
    TOTAL_RUNS.fetch_add(1, Ordering::Relaxed);
    if !input.mode.always() {
        TOTAL_BUFFERED_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    for op in input.ops.iter().take(64) {
        if world.diverged {
            break;
        }
        world.step(op);
    }
    // The end of every run: a crash, and the acknowledged (with buffered durability: the
    // durable) operations are all there.
    if !world.diverged {
        world.reopen(Some(None));
    }
    if std::env::var_os("NOTIFEED_FUZZ_STATS").is_some() {
        world.stats.reopened_after_unlink = world.reopened_after_unlink;
        eprintln!("stats {:?}", world.stats);
        let total = |c: &AtomicU64| c.load(Ordering::Relaxed);
        eprintln!(
            "totals: runs {}, buffered runs {}, buffered crashes {}, lossy reopens {}: lost a suffix {}, kept a non-prefix subset {}, unmatched (weak check, run ended) {}",
            total(&TOTAL_RUNS),
            total(&TOTAL_BUFFERED_RUNS),
            total(&TOTAL_BUFFERED_CRASHES),
            total(&TOTAL_LOSSY_REOPENS),
            total(&TOTAL_LOST_SOME),
            total(&TOTAL_SUBSET),
            total(&TOTAL_PER_FILE),
        );
    }
});
