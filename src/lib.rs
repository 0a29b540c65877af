//! # notifeed
//!
//! The storage engine behind a notification service: every user's notification feed, as the
//! Microsoft Graph notification feed store (`POST /me/notifications`) keeps it. An append-only,
//! per-user log with exact expiration, an index by `appNotificationId`, and a change feed that
//! devices sync from, behind one small trait.
//!
//! The layers, in the order data flows through them:
//!
//! 1. [`model`]: the notification as posted ([`NewNotification`]) and as stored
//!    ([`Notification`]).
//! 2. [`contract`]: Graph's JSON contract, its validation and [`Limits`]; every error knows its
//!    HTTP status.
//! 3. [`store`]: the [`FeedStore`] trait every engine implements, and [`changes`], the change-page
//!    planner they share. Time comes from a [`clock::Clock`].
//! 4. [`engine`]: the engines. [`engine::log::LogStore`], our segmented log (the default: its
//!    on-disk format is in `src/engine/log/FORMAT.md`); [`engine::sled::SledStore`] on sled; and
//!    `engine::redis::RedisStore` on a Redis Cluster (cargo feature `redis`). [`codec`] is the one
//!    place values are encoded for disk.
//! 5. [`handler`]: Graph's HTTP endpoints over any store, free of any HTTP framework, configured
//!    by [`config`]; [`server`] wraps it in axum for the `notifeed` binary, and runs
//!    [`maintenance`] (scheduled verification and backups of the log engine) beside it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod changes;
pub mod clock;
pub mod codec;
pub mod config;
pub mod contract;
pub mod engine;
pub mod handler;
pub mod maintenance;
pub mod model;
pub mod server;
pub mod store;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use contract::{ContractError, ContractErrorKind, Limits, parse_new_notification};
pub use model::{
    FallbackPolicy, FallbackPolicyRef, NewNotification, Notification, NotificationId, Payload, PayloadRef, Platform,
    Platforms, Priority, ReadState, UserActionState, VisualContent, VisualContentRef,
};
pub use store::{
    Change, ChangeToken, Changes, Counts, Cursor, Durability, FeedKey, FeedStore, ListQuery, Page, RemovalReason,
    StateUpdate, StoreError, StoreOptions, SweepStats,
};

/// The README's code examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
