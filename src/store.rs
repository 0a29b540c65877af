//! The store trait: what every engine promises.
//!
//! A *feed* is one user's notifications for one app, named by a [`FeedKey`]. A [`FeedStore`]
//! keeps any number of feeds; all methods take `&self`, so one store is shared across threads
//! (wrap it in an `Arc`).
//!
//! # Semantics every engine shares (pinned by the conformance suite in `tests/conformance/`)
//!
//! * **Sequence.** Each feed has a change sequence. Every mutation of a feed (append,
//!   replacement, state change, delete, group delete, eviction) takes the next number. A
//!   notification's *position* is the sequence of its last append or replacement: lists are
//!   ordered by position, newest first. State changes do not move a notification.
//! * **Replacement.** Appending with the `appNotificationId` of a *live* notification of the same
//!   feed replaces it: it keeps its `id` and `createdDateTime`, takes the new content, moves to the
//!   top and resets `readState` to `Unread` and `userActionState` to `NoInteraction`.
//! * **Expiration is exact.** A notification whose `expirationDateTime` is at or before the
//!   clock's now is gone for every read (`get`, `get_by_app_id`, `list`, `count`, `changes`,
//!   `update_state`, deletes) whether or not [`FeedStore::sweep_expired`] has reclaimed it.
//!   Its `appNotificationId` is free again: a later append creates a new notification.
//! * **Cap.** A feed holds at most [`StoreOptions::feed_capacity`] live notifications. An append
//!   that would exceed it evicts the live notification with the oldest position, and the
//!   eviction shows in `changes` with [`RemovalReason::Evicted`]. The eviction takes its
//!   sequence number before the appended notification takes its own.
//! * **Changes.** `changes(since)` returns what happened after the token: upserts (the current
//!   state of every live notification changed after it) and removals (explicit removals after
//!   it, by sequence; expirations after the token's time, by expiration time). See
//!   [`FeedStore::changes`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::contract::{ContractError, Limits};
use crate::model::{NewNotification, Notification, NotificationId, Platform, ReadState, UserActionState};

/// The name of a feed: one user's notifications for one app.
///
/// Opaque to the store. Valid keys are non-empty, at most [`FeedKey::MAX_BYTES`] bytes, and
/// hold no NUL byte (engines use NUL as a separator).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedKey(String);

impl FeedKey {
    /// The longest key, in bytes.
    pub const MAX_BYTES: usize = 256;

    /// Validates and wraps a key.
    ///
    /// # Errors
    /// [`StoreError::InvalidFeedKey`] when the key is empty, longer than 256 bytes, or holds NUL.
    pub fn new(key: impl Into<String>) -> Result<Self, StoreError> {
        let key = key.into();
        let why = if key.is_empty() {
            "is empty"
        } else if key.len() > Self::MAX_BYTES {
            "is longer than 256 bytes"
        } else if key.as_bytes().contains(&0) {
            "holds a NUL byte"
        } else {
            return Ok(Self(key));
        };
        Err(StoreError::InvalidFeedKey { reason: why })
    }

    /// The key for `user`'s feed of the app `target_host_name`, as the request handler forms it:
    /// `user` and the host name joined by `/`, the host name lower-cased.
    ///
    /// # Errors
    /// As [`FeedKey::new`].
    pub fn for_user_app(user: &str, target_host_name: &str) -> Result<Self, StoreError> {
        Self::new(format!("{}/{}", user, target_host_name.to_ascii_lowercase()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedKey({:?})", self.0)
    }
}

impl fmt::Display for FeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Options every engine honours. Engine configs embed one.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The contract's limits, enforced on append. Default: [`Limits::default`].
    pub limits: Limits,
    /// The most live notifications a feed holds; an append beyond it evicts the oldest.
    /// Bounds: at least 1. Default: 1,000.
    pub feed_capacity: usize,
    /// How many explicit removals (deletes, group deletes, evictions) a feed remembers for
    /// `changes`. A token older than the oldest forgotten removal is stale. Default: 1,000.
    pub removal_log_capacity: usize,
    /// How long expirations are remembered for `changes` after the notification expired.
    /// A token issued before a forgotten expiration is stale. Default: 7 days.
    pub expiry_log_retention: SignedDuration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            feed_capacity: 1_000,
            removal_log_capacity: 1_000,
            expiry_log_retention: SignedDuration::from_hours(7 * 24),
        }
    }
}

/// When a mutation is durable. Engines document exactly what each level survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A mutation reaches the OS page cache (or the engine's own buffer) before the call returns;
    /// [`FeedStore::sync`] makes everything before it durable. Survives a process crash once
    /// written to the OS, not a power loss before the next sync.
    Buffered,
    /// A call returns only after its mutation is durable on disk (fdatasync'd, or the engine's
    /// equivalent). Survives power loss. The default.
    #[default]
    Always,
}

/// A filter on `list`, and the page to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only notifications of this group.
    pub group: Option<String>,
    /// Only notifications that target this platform.
    pub platform: Option<Platform>,
    /// Only notifications in this read state.
    pub read_state: Option<ReadState>,
    /// Only notifications in this action state.
    pub user_action_state: Option<UserActionState>,
    /// The most notifications to return. Bounds: `1..=1000` (larger values are treated as 1000,
    /// 0 as 1). Default: 20.
    pub limit: usize,
    /// Where to continue: the `next` cursor of the previous page.
    pub cursor: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self { group: None, platform: None, read_state: None, user_action_state: None, limit: 20, cursor: None }
    }
}

impl ListQuery {
    /// The most items any page holds.
    pub const MAX_LIMIT: usize = 1_000;

    /// The limit, clamped into `1..=1000`.
    pub fn effective_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `n` passes the filters (not the cursor).
    pub fn matches(&self, n: &Notification) -> bool {
        self.group.as_ref().is_none_or(|g| n.group_name() == Some(g.as_str()))
            && self.platform.is_none_or(|p| n.platforms.contains(p))
            && self.read_state.is_none_or(|r| n.read_state == r)
            && self.user_action_state.is_none_or(|a| n.user_action_state == a)
    }
}

/// A position in a feed's list: the page continues with notifications older than it.
///
/// Printed and parsed as opaque text (`p<position>`), so it travels in a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The position of the last notification returned.
    pub before_position: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.before_position)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        s.strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .map(|before_position| Cursor { before_position })
            .ok_or_else(|| StoreError::InvalidToken { token: s.chars().take(64).collect() })
    }
}

/// One page of a list, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The notifications, newest position first.
    pub items: Vec<Notification>,
    /// The cursor of the next page; `None` exactly when no further matching notification
    /// follows (so a full last page has no cursor).
    pub next: Option<Cursor>,
}

/// Exact counts of a feed's live notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    /// Live notifications.
    pub total: u64,
    /// Live notifications whose `readState` is `Unread`.
    pub unread: u64,
}

/// A change of state requested by a client; `None` leaves that state as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StateUpdate {
    /// The new `readState`.
    pub read_state: Option<ReadState>,
    /// The new `userActionState`.
    pub user_action_state: Option<UserActionState>,
}

/// Why a notification left its feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalReason {
    /// `delete` or `delete_by_app_id`.
    Deleted,
    /// `delete_group`.
    GroupDeleted,
    /// Its `expirationDateTime` passed.
    Expired,
    /// The feed was full and it was the oldest.
    Evicted,
}

impl RemovalReason {
    /// The name used in `@removed.reason` (`deleted`, `groupDeleted`, `expired`, `evicted`).
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Deleted => "deleted",
            RemovalReason::GroupDeleted => "groupDeleted",
            RemovalReason::Expired => "expired",
            RemovalReason::Evicted => "evicted",
        }
    }

    /// The stable number engines store.
    pub fn to_u8(self) -> u8 {
        match self {
            RemovalReason::Deleted => 1,
            RemovalReason::GroupDeleted => 2,
            RemovalReason::Expired => 3,
            RemovalReason::Evicted => 4,
        }
    }

    /// The inverse of [`RemovalReason::to_u8`].
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => RemovalReason::Deleted,
            2 => RemovalReason::GroupDeleted,
            3 => RemovalReason::Expired,
            4 => RemovalReason::Evicted,
            _ => return None,
        })
    }
}

/// One entry of a change page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The notification was created, replaced or changed state; this is its current state.
    Upserted(Box<Notification>),
    /// The notification left the feed.
    Removed {
        /// Its id.
        id: NotificationId,
        /// Why.
        reason: RemovalReason,
    },
}

/// Where a change reader stands: everything up to `sequence`, and every expiration up to `time`.
///
/// Printed and parsed as opaque text (`s<sequence>.t<nanoseconds>`), so it travels in a URL and
/// survives restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChangeToken {
    /// The feed sequence the reader has seen up to, inclusive.
    pub sequence: u64,
    /// The time up to which (inclusive) the reader has seen expirations, in Unix nanoseconds.
    pub expired_through_nanos: i64,
}

impl fmt::Display for ChangeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}.t{}", self.sequence, self.expired_through_nanos)
    }
}

impl FromStr for ChangeToken {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::InvalidToken { token: s.chars().take(64).collect() };
        let (seq, time) = s.split_once('.').ok_or_else(bad)?;
        let sequence = seq.strip_prefix('s').and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let expired_through_nanos = time.strip_prefix('t').and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        Ok(ChangeToken { sequence, expired_through_nanos })
    }
}

/// A page of changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The changes, expirations first (by expiration time), then the rest by sequence.
    pub items: Vec<Change>,
    /// The token to pass next time.
    pub next: ChangeToken,
    /// Whether more changes are ready now: call again with `next` at once.
    pub more: bool,
}

/// What a sweep did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SweepStats {
    /// Expired notifications reclaimed by this sweep. Each expired notification is counted by at
    /// most one sweep: by the first after it expired, unless the engine reclaimed it earlier
    /// (say, when its `appNotificationId` was reused).
    pub expired: u64,
    /// Files removed (segments, for the log engine).
    pub files_removed: u64,
    /// Bytes of storage given back.
    pub bytes_reclaimed: u64,
    /// Bytes of live data copied (compaction); zero for pure expiry.
    pub bytes_rewritten: u64,
    /// How long the sweep took.
    pub duration: Duration,
}

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The feed key is not valid.
    #[error("invalid feed key: it {reason}")]
    InvalidFeedKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The notification breaks the contract; nothing was written.
    #[error("invalid notification: {0}")]
    Invalid(#[from] ContractError),
    /// A cursor or change token could not be parsed.
    #[error("invalid cursor or change token {token:?}")]
    InvalidToken {
        /// The token (at most 64 characters of it).
        token: String,
    },
    /// The change token is older than the changes the feed still remembers: list the feed again
    /// from the start and take a fresh token from `changes(feed, None, ..)`.
    #[error("the change token is too old; resync the feed from list and start over with a fresh token")]
    StaleToken,
    /// An I/O operation failed.
    #[error("I/O error while {operation} {path}: {source}")]
    Io {
        /// What the engine was doing (`writing`, `syncing`, `opening`, …).
        operation: &'static str,
        /// The file or directory involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Stored data failed its checksum or could not be decoded. Never returned as data.
    #[error("corruption in {location}: {detail}")]
    Corruption {
        /// Where: a file and offset, or a key.
        location: String,
        /// What failed.
        detail: String,
    },
    /// An earlier write or sync failed, so the store refuses to mutate until it is reopened
    /// (reopening recovers from the files). Failed syncs are never retried.
    #[error("the store is poisoned by an earlier I/O failure; reopen it to recover")]
    Poisoned,
    /// Another process holds the data directory.
    #[error("the data directory {path} is locked by another process")]
    Locked {
        /// The lock file.
        path: String,
    },
    /// The backing engine (sled, Redis) reported an error.
    #[error("{engine} error: {detail}")]
    Backend {
        /// Which engine.
        engine: &'static str,
        /// Its message.
        detail: String,
    },
}

/// The contract of a notification feed store. Implemented by [`crate::engine::log::LogStore`]
/// (the default), [`crate::engine::sled::SledStore`], and the Redis engine.
///
/// Every method that takes a feed touches only that feed. "Durable" below refers to the engine's
/// durability setting: with the log engine's `Always` (its default), a mutation is on disk when
/// the call returns; with `Buffered`, after the next [`FeedStore::sync`].
///
/// Costs use *n* for the live notifications of the feed (at most the feed capacity), *k* for the
/// page size, and *e* for expired notifications.
pub trait FeedStore: Send + Sync {
    /// Appends `new` to `feed`, or replaces the live notification with the same
    /// `appNotificationId` (keeping its id, moving it to the top, resetting its states).
    /// Evicts the oldest live notification when the feed is full. Returns the stored
    /// notification.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when `new` breaks the [`Limits`] (nothing is written),
    /// [`StoreError::Poisoned`], [`StoreError::Io`], [`StoreError::Backend`].
    ///
    /// Durable on return per the engine's durability setting. Cost: O(log n) plus the write.
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError>;

    /// The live notification with this id, or `None`.
    ///
    /// # Errors
    /// [`StoreError::Corruption`] when its record fails the checksum; I/O and backend errors.
    ///
    /// Cost: O(log n) plus one read.
    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError>;

    /// The live notification with this `appNotificationId`, or `None`.
    ///
    /// # Errors
    /// As [`FeedStore::get`]. Cost: O(log n) plus one read.
    fn get_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError>;

    /// A page of live notifications matching `query`, newest position first.
    ///
    /// # Errors
    /// As [`FeedStore::get`]. Cost: O(n) index scan at worst plus k reads.
    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError>;

    /// Exact counts of live notifications.
    ///
    /// # Errors
    /// I/O and backend errors. Cost: O(n) at worst.
    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError>;

    /// Sets the read and/or action state of a live notification and returns it, or `None` when
    /// there is no such live notification. An update that changes nothing still counts as a
    /// change (it updates `lastModifiedDateTime`).
    ///
    /// # Errors
    /// As [`FeedStore::append`], less `Invalid`. Durable as `append`. Cost: O(log n) plus the
    /// write.
    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError>;

    /// Deletes a live notification; `false` when there was none.
    ///
    /// # Errors
    /// As [`FeedStore::update_state`]. Durable as `append`.
    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError>;

    /// Deletes the live notification with this `appNotificationId`; `false` when there was none.
    ///
    /// # Errors
    /// As [`FeedStore::update_state`]. Durable as `append`.
    fn delete_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError>;

    /// Deletes every live notification of `group`, atomically, and returns how many. Each
    /// removal takes its own sequence number, oldest position first.
    ///
    /// # Errors
    /// As [`FeedStore::update_state`]. Durable as `append`. Cost: O(n).
    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError>;

    /// The changes after `since` (from the beginning when `None`), at most `limit` entries
    /// (clamped to `1..=1000`), and the token to continue from.
    ///
    /// * Upserts: every live notification whose last change has a sequence after
    ///   `since.sequence`, by sequence, in its current state.
    /// * Explicit removals (delete, group delete, eviction) with a sequence after
    ///   `since.sequence`.
    /// * Expirations: every notification whose expiration lies after `since.expired_through` and
    ///   at or before now, whether or not it was swept. Expirations come first, oldest first.
    ///
    /// With `since = None` the page starts at the beginning of what the feed remembers: all live
    /// notifications and the remembered removals. The token survives restarts.
    ///
    /// # Errors
    /// [`StoreError::StaleToken`] when the feed has forgotten removals the token has not seen
    /// (see [`StoreOptions::removal_log_capacity`] and [`StoreOptions::expiry_log_retention`]):
    /// the client must list the feed again. I/O, corruption and backend errors.
    ///
    /// Cost: O(n + removals remembered) plus the reads of the page.
    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError>;

    /// Reclaims expired notifications of every feed.
    ///
    /// # Errors
    /// I/O and backend errors; the store poisons on a failed write. Cost: O(e), independent of
    /// live data.
    fn sweep_expired(&self) -> Result<SweepStats, StoreError>;

    /// Makes every mutation acknowledged so far durable.
    ///
    /// # Errors
    /// [`StoreError::Io`] (the store then poisons), [`StoreError::Poisoned`].
    fn sync(&self) -> Result<(), StoreError>;

    /// Whether the store takes writes, as a health check asks it: no I/O, O(1). The default
    /// says yes; an engine that poisons says no once poisoned.
    ///
    /// # Errors
    /// [`StoreError::Poisoned`] once a failed write or sync has poisoned the store (until it
    /// is reopened).
    fn check_health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Clamps a change-page limit into `1..=1000`.
pub fn clamp_change_limit(limit: usize) -> usize {
    limit.clamp(1, ListQuery::MAX_LIMIT)
}

/// The expiration time of `new` resolved against `now`, plus validation: what every engine calls
/// first in `append`.
///
/// # Errors
/// [`StoreError::Invalid`] with every broken rule.
pub fn validate_for_append(new: &NewNotification, limits: &Limits, now: Timestamp) -> Result<Timestamp, StoreError> {
    Ok(crate::contract::validate(new, limits, now)?)
}
