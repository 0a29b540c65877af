//! [`RedisStore`]: the [`FeedStore`] on a Redis Cluster (cargo feature `redis`), for when one
//! machine is not enough.
//!
//! * `keys.rs`: where a feed lives: every key of a feed carries the hash tag `{feed}`, so one
//!   feed is one slot on one master; the key layout is written down there.
//! * `scripts.rs`: one atomic Lua script per operation.
//! * `durability.rs`: what an acknowledged write survives (`appendfsync`, `WAIT`).
//! * `connection.rs`: the connection pool and retries across redirections and failovers.
//!
//! Values are notifications sealed by [`crate::codec::seal_notification`] (format byte, crc32);
//! a value that fails its checksum is reported as [`StoreError::Corruption`], never returned.
//! Expiry is exact: every read filters by the injected clock's now, which the store passes to
//! the scripts (Redis `TIME` is never used). Sweeps find feeds through expiry buckets and cost
//! O(expired). Every key carries a Redis TTL so that a feed nobody writes to vanishes.

mod connection;
mod durability;
mod keys;
mod scripts;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use redis::Value;
use redis::cluster::{ClusterClient, ClusterConnection};

use crate::changes::{FeedHorizon, Planned, Sequenced, check_token, plan_page};
use crate::clock::{SharedClock, timestamp_to_nanos};
use crate::codec::{seal_notification, unseal_notification};
use crate::model::{NewNotification, Notification, NotificationId, ReadState};
use crate::store::{
    Change, ChangeToken, Changes, Counts, Durability, FeedKey, FeedStore, ListQuery, Page, RemovalReason, StateUpdate,
    StoreError, StoreOptions, SweepStats, clamp_change_limit, validate_for_append,
};
use connection::{Connections, RetryPolicy, backend};
use keys::{FeedKeys, Layout, group_prefix, id_text, nanos_text, parse_id_text, parse_time_text, time_text};
use scripts::Scripts;

/// How a [`RedisStore`] connects and what it promises.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Prepended to every key (`<key_prefix>:{<feed>}:...`), so several stores or tenants share
    /// one cluster. Any text; `{`, `}` and `%` are escaped. Default: `notifeed`.
    pub key_prefix: String,
    /// The options every engine honours. Default: [`StoreOptions::default`].
    pub options: StoreOptions,
    /// What the masters' disks promise; see `durability.rs` and `docs/redis.md`. `Always` requires
    /// every master to run `appendonly yes` and `appendfsync always` and fails
    /// [`RedisStore::open`] otherwise. Default: [`Durability::Always`].
    pub durability: Durability,
    /// How many replicas must acknowledge each mutation (`WAIT`) before it returns; `0` waits
    /// for none. Bounds: at most the replicas per master. Default: 0.
    pub min_replicas_acked: usize,
    /// How long a mutation waits for `min_replicas_acked` replicas before it fails.
    /// Default: 1 second.
    pub replica_ack_timeout: Duration,
    /// The most connections in the pool (each is a cluster connection to every master).
    /// Bounds: at least 1. Default: 8.
    pub pool_size: u32,
    /// How many expiry buckets spread the sweep index over the cluster. Changing it on a
    /// populated store leaves old bucket entries unswept (reads stay exact; key TTLs still
    /// reclaim). Bounds: at least 1. Default: 64.
    pub expiry_buckets: u32,
    /// How long one call keeps retrying redirections, failovers and lost connections before it
    /// fails. Default: 15 seconds.
    pub retry_budget: Duration,
    /// The first pause between retries; it doubles up to one second. Default: 25 milliseconds.
    pub retry_backoff: Duration,
    /// How long to wait for a TCP connection to a node. Default: 2 seconds.
    pub connection_timeout: Duration,
    /// How long to wait for a node's reply before treating the connection as lost.
    /// Default: 5 seconds.
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "notifeed".to_owned(),
            options: StoreOptions::default(),
            durability: Durability::Always,
            min_replicas_acked: 0,
            replica_ack_timeout: Duration::from_secs(1),
            pool_size: 8,
            expiry_buckets: 64,
            retry_budget: Duration::from_secs(15),
            retry_backoff: Duration::from_millis(25),
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`FeedStore`] on a Redis Cluster.
///
/// Each feed lives in one hash slot, so each operation is one atomic Lua script on one master;
/// feeds spread over every master. Share one store between threads (it holds a connection
/// pool).
///
/// # Durability
/// Redis replication is asynchronous. What a returned mutation survives depends on
/// [`RedisConfig::durability`] (the master's own fsync) and [`RedisConfig::min_replicas_acked`]
/// (`WAIT` for replicas): see the module `durability.rs`, summarised in `docs/redis.md`.
pub struct RedisStore {
    connections: Connections,
    layout: Layout,
    config: RedisConfig,
    clock: SharedClock,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The pages the list scan reads at a time.
const LIST_CHUNK: usize = 128;
/// How often an append or state update re-reads after a concurrent change before giving up.
const MAX_CONFLICTS: usize = 64;

impl RedisStore {
    /// Connects to the cluster through any of `nodes` (`redis://host:port` URLs) and checks the
    /// masters' configuration against `config.durability`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when no node answers, the URLs are invalid, the masters do not
    /// back `Durability::Always`, or `config.options.feed_capacity` is 0.
    pub fn open<S: AsRef<str>>(nodes: &[S], config: RedisConfig, clock: SharedClock) -> Result<Self, StoreError> {
        if config.options.feed_capacity == 0 {
            return Err(backend("invalid configuration", "feed_capacity must be at least 1"));
        }
        let urls: Vec<&str> = nodes.iter().map(AsRef::as_ref).collect();
        // The crate's own retries stay short (its default waits grow to minutes); the store's
        // retry loop (`connection.rs`) owns the budget.
        let client = ClusterClient::builder(urls)
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(250)
            .connection_timeout(config.connection_timeout)
            .response_timeout(config.response_timeout)
            .build()
            .map_err(|e| backend("invalid cluster configuration", e))?;
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(config.connection_timeout.max(Duration::from_millis(100)))
            .build(client)
            .map_err(|e| backend("cannot connect to the cluster", e))?;
        let retry = RetryPolicy { budget: config.retry_budget, first_backoff: config.retry_backoff };
        let store = Self {
            connections: Connections::new(pool, retry),
            layout: Layout::new(&config.key_prefix, config.expiry_buckets),
            config,
            clock,
            scripts: Scripts::new(),
        };
        let mut conn = store.connections.get()?;
        durability::check_masters(&mut conn, store.config.durability)?;
        Ok(store)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Runs `script` for `feed` with the common arguments (see `scripts.rs`) and `args`.
    fn run(
        &self,
        conn: &mut ClusterConnection,
        script: &redis::Script,
        keys: &FeedKeys,
        now: Timestamp,
        args: &[&[u8]],
    ) -> Result<Value, StoreError> {
        let base = now.as_millisecond().max(0);
        let retention = self.config.options.expiry_log_retention;
        let cutoff = timestamp_to_nanos(now).saturating_sub(i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX));
        let retention_ms = retention.as_millis().max(0);
        let mut invocation = script.prepare_invoke();
        for key in keys.all() {
            invocation.key(key.as_str());
        }
        invocation.arg(base).arg(time_text(now)).arg(nanos_text(cutoff)).arg(retention_ms as i64);
        for arg in args {
            invocation.arg(*arg);
        }
        self.connections.retrying(conn, "running a script", |c| invocation.invoke::<Value>(c))
    }

    /// After a mutation on `conn`: wait for the configured replicas.
    fn acknowledge(&self, conn: &mut ClusterConnection, keys: &FeedKeys) -> Result<(), StoreError> {
        durability::await_replicas(conn, keys.meta(), self.config.min_replicas_acked, self.config.replica_ack_timeout)
    }

    /// Reads one notification by id or app id: `(notification, change sequence text)`, live or
    /// not.
    fn read_one(
        &self,
        conn: &mut ClusterConnection,
        keys: &FeedKeys,
        now: Timestamp,
        by_app: Option<&str>,
        id: Option<NotificationId>,
    ) -> Result<Option<(Notification, Vec<u8>)>, StoreError> {
        let reply = match (by_app, id) {
            (Some(app), _) => self.run(conn, &self.scripts.get_by_app, keys, now, &[app.as_bytes()])?,
            (None, Some(id)) => self.run(conn, &self.scripts.get, keys, now, &[id_text(id).as_bytes()])?,
            (None, None) => return Ok(None),
        };
        let items = array(reply, keys.meta())?;
        let [id, sealed, seq] = match <[Value; 3]>::try_from(items) {
            Ok(triple) => triple,
            Err(items) if items.is_empty() => return Ok(None),
            Err(items) => return Err(corrupt(keys.meta(), format!("lookup answered {} values", items.len()))),
        };
        let id = bytes(&id).ok_or_else(|| corrupt(keys.meta(), "lookup answered no id"))?;
        let location = format!("{} id {}", keys.all()[1], String::from_utf8_lossy(id));
        let sealed = bytes(&sealed).ok_or_else(|| corrupt(&location, "the index names a missing notification"))?;
        let notification = decode(sealed, &location)?;
        let seq = bytes(&seq).ok_or_else(|| corrupt(&location, "the notification has no change sequence"))?.to_vec();
        Ok(Some((notification, seq)))
    }

    fn get_live(
        &self,
        feed: &FeedKey,
        by_app: Option<&str>,
        id: Option<NotificationId>,
    ) -> Result<Option<Notification>, StoreError> {
        let now = self.clock.now();
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        let found = self.read_one(&mut conn, &keys, now, by_app, id)?;
        Ok(found.map(|(n, _)| n).filter(|n| !n.is_expired(now)))
    }

    /// Records that `feed` holds a notification expiring at `expiration`, for sweeps.
    fn note_expiration(
        &self,
        conn: &mut ClusterConnection,
        feed: &FeedKey,
        expiration: Timestamp,
    ) -> Result<(), StoreError> {
        let bucket = self.layout.bucket_of(feed);
        let ms = expiration.as_millisecond();
        self.connections.retrying(conn, "indexing an expiration", |c| {
            redis::cmd("ZADD").arg(&bucket).arg("LT").arg(ms).arg(feed.as_str()).query::<Value>(c)
        })?;
        Ok(())
    }

    fn remove(&self, feed: &FeedKey, script: &redis::Script, what: &[u8]) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        let capacity = self.config.options.removal_log_capacity.to_string();
        let reply = self.run(&mut conn, script, &keys, now, &[what, capacity.as_bytes()])?;
        let removed = int(&reply).ok_or_else(|| corrupt(keys.meta(), format!("a delete answered {reply:?}")))?;
        if removed > 0 {
            self.acknowledge(&mut conn, &keys)?;
        }
        Ok(u64::try_from(removed).unwrap_or(0))
    }

    /// Sweeps one feed found in `bucket`; returns (expired, bytes) and re-files the feed.
    fn sweep_feed(
        &self,
        conn: &mut ClusterConnection,
        bucket: &str,
        member: &[u8],
        now: Timestamp,
    ) -> Result<(u64, u64, Option<i64>), StoreError> {
        let forget = |conn: &mut ClusterConnection| {
            self.connections.retrying(conn, "updating an expiry bucket", |c| {
                redis::cmd("ZREM").arg(bucket).arg(member).query::<Value>(c)
            })
        };
        let Some(feed) = std::str::from_utf8(member).ok().and_then(|m| FeedKey::new(m).ok()) else {
            forget(conn)?;
            return Ok((0, 0, None));
        };
        let keys = self.layout.feed(&feed);
        let reply = array(self.run(conn, &self.scripts.sweep_feed, &keys, now, &[])?, keys.meta())?;
        let (expired, bytes_freed, next) = match reply.as_slice() {
            [n, b, next] => (int(n).unwrap_or(0), int(b).unwrap_or(0), bytes(next).and_then(parse_time_text)),
            _ => return Err(corrupt(keys.meta(), "the sweep answered an unexpected shape")),
        };
        let next_ms = next.map(|nanos| nanos.div_euclid(1_000_000));
        match next_ms {
            None => {
                forget(conn)?;
            }
            Some(ms) => {
                self.connections.retrying(conn, "updating an expiry bucket", |c| {
                    redis::cmd("ZADD").arg(bucket).arg(ms).arg(member).query::<Value>(c)
                })?;
            }
        }
        if expired > 0 {
            self.acknowledge(conn, &keys)?;
        }
        Ok((u64::try_from(expired).unwrap_or(0), u64::try_from(bytes_freed).unwrap_or(0), next_ms))
    }
}

fn corrupt(location: impl Into<String>, detail: impl Into<String>) -> StoreError {
    StoreError::Corruption { location: location.into(), detail: detail.into() }
}

fn decode(sealed: &[u8], location: &str) -> Result<Notification, StoreError> {
    unseal_notification(sealed).map_err(|e| corrupt(location, e.to_string()))
}

fn array(value: Value, location: &str) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(location, format!("expected a list, got {other:?}"))),
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => bytes(other).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok()),
    }
}

/// A sequence as Redis prints a score or a counter.
fn sequence(value: &Value) -> Option<u64> {
    int(value).and_then(|n| u64::try_from(n).ok())
}

impl FeedStore for RedisStore {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        let now = self.clock.now();
        let expiration = validate_for_append(&new, &self.config.options.limits, now)?;
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        // IMPORTANT: 1. file the feed in its expiry bucket *before* the notification exists, so
        // a crash in between leaves at worst a bucket entry for nothing (a sweep drops it), never
        // a notification no sweep can find.
        self.note_expiration(&mut conn, feed, expiration)?;
        let app_id = new.app_notification_id.clone();
        let group = new.group_name.as_deref().map(group_prefix).unwrap_or_default();
        let capacity = self.config.options.feed_capacity.to_string();
        let removal_capacity = self.config.options.removal_log_capacity.to_string();
        let exp_text = time_text(expiration);
        for attempt in 0..MAX_CONFLICTS {
            // 2. Build the value. The first attempt assumes the app id is new (the common case,
            // one round trip); when the script finds a live notification with it, read that one
            // and replace it.
            let existing = if attempt == 0 { None } else { self.read_one(&mut conn, &keys, now, Some(&app_id), None)? };
            let (notification, mode, expected_id, expected_seq) = match existing {
                Some((old, seq)) if !old.is_expired(now) => {
                    let mut n = Notification::from_new(old.id, new.clone(), expiration, now);
                    n.created = old.created;
                    (n, "replace", id_text(old.id), seq)
                }
                _ => {
                    let n = Notification::from_new(NotificationId::new_random(), new.clone(), expiration, now);
                    (n, "new", String::new(), Vec::new())
                }
            };
            let sealed = seal_notification(&notification).map_err(|e| backend("encoding a notification", e))?;
            let id = id_text(notification.id);
            // 3. One script applies it, unless the feed changed since step 2.
            let reply = self.run(
                &mut conn,
                &self.scripts.append,
                &keys,
                now,
                &[
                    capacity.as_bytes(),
                    removal_capacity.as_bytes(),
                    app_id.as_bytes(),
                    mode.as_bytes(),
                    expected_id.as_bytes(),
                    &expected_seq,
                    id.as_bytes(),
                    &sealed,
                    exp_text.as_bytes(),
                    group.as_bytes(),
                ],
            )?;
            let reply = array(reply, keys.meta())?;
            match reply.first().and_then(bytes) {
                Some(b"ok") => {
                    // 4. Only then wait for replicas: the call returns once they have it.
                    self.acknowledge(&mut conn, &keys)?;
                    return Ok(notification);
                }
                Some(b"retry") => continue,
                _ => return Err(corrupt(keys.meta(), format!("append answered {reply:?}"))),
            }
        }
        Err(backend("append", format!("the feed changed under {MAX_CONFLICTS} attempts in a row")))
    }

    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        self.get_live(feed, None, Some(id))
    }

    fn get_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError> {
        self.get_live(feed, Some(app_notification_id), None)
    }

    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        let now = self.clock.now();
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        let limit = query.effective_limit();
        let chunk = (limit + 1).clamp(LIST_CHUNK, ListQuery::MAX_LIMIT);
        let chunk_text = chunk.to_string();
        let mut before = query.cursor.map(|c| c.before_position);
        let mut matched: Vec<(u64, Notification)> = Vec::new();
        loop {
            let bound = before.map_or_else(|| "+inf".to_owned(), |p| format!("({p}"));
            let reply =
                self.run(&mut conn, &self.scripts.list_chunk, &keys, now, &[bound.as_bytes(), chunk_text.as_bytes()])?;
            let rows = array(reply, keys.meta())?;
            let read = rows.len() / 3;
            for row in rows.chunks_exact(3) {
                let id = bytes(&row[0]).map(String::from_utf8_lossy).unwrap_or_default();
                let location = format!("{} id {id}", keys.all()[1]);
                let position = sequence(&row[1]).ok_or_else(|| corrupt(&location, "position is not a sequence"))?;
                before = Some(position);
                let sealed = bytes(&row[2]).ok_or_else(|| corrupt(&location, "positioned but missing"))?;
                let n = decode(sealed, &location)?;
                if !n.is_expired(now) && query.matches(&n) {
                    matched.push((position, n));
                    if matched.len() > limit {
                        break;
                    }
                }
            }
            if matched.len() > limit || read < chunk {
                break;
            }
        }
        let more = matched.len() > limit;
        matched.truncate(limit);
        let next = if more { matched.last().map(|(p, _)| crate::store::Cursor { before_position: *p }) } else { None };
        Ok(Page { items: matched.into_iter().map(|(_, n)| n).collect(), next })
    }

    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        let now = self.clock.now();
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        let reply = array(self.run(&mut conn, &self.scripts.count, &keys, now, &[])?, keys.meta())?;
        match reply.as_slice() {
            [total, unread] => Ok(Counts {
                total: int(total).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                unread: int(unread).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            }),
            _ => Err(corrupt(keys.meta(), "count answered an unexpected shape")),
        }
    }

    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        let now = self.clock.now();
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        for _ in 0..MAX_CONFLICTS {
            let Some((mut n, seq)) = self.read_one(&mut conn, &keys, now, None, Some(id))? else {
                return Ok(None);
            };
            if n.is_expired(now) {
                return Ok(None);
            }
            if let Some(read_state) = update.read_state {
                n.read_state = read_state;
            }
            if let Some(action) = update.user_action_state {
                n.user_action_state = action;
            }
            n.last_modified = now;
            let sealed = seal_notification(&n).map_err(|e| backend("encoding a notification", e))?;
            let unread: &[u8] = if n.read_state == ReadState::Unread { b"1" } else { b"0" };
            let id_text = id_text(id);
            let reply = self.run(
                &mut conn,
                &self.scripts.update_state,
                &keys,
                now,
                &[id_text.as_bytes(), &seq, &sealed, unread],
            )?;
            let reply = array(reply, keys.meta())?;
            match reply.first().and_then(bytes) {
                Some(b"ok") => {
                    self.acknowledge(&mut conn, &keys)?;
                    return Ok(Some(n));
                }
                Some(b"gone") => return Ok(None),
                Some(b"retry") => continue,
                _ => return Err(corrupt(keys.meta(), format!("update answered {reply:?}"))),
            }
        }
        Err(backend("update_state", format!("the feed changed under {MAX_CONFLICTS} attempts in a row")))
    }

    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        Ok(self.remove(feed, &self.scripts.delete, id_text(id).as_bytes())? > 0)
    }

    fn delete_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError> {
        Ok(self.remove(feed, &self.scripts.delete_by_app, app_notification_id.as_bytes())? > 0)
    }

    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        self.remove(feed, &self.scripts.delete_group, group_prefix(group).as_bytes())
    }

    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        let now = self.clock.now();
        let now_nanos = timestamp_to_nanos(now);
        let keys = self.layout.feed(feed);
        let mut conn = self.connections.get()?;
        let want = (clamp_change_limit(limit) + 1).to_string();
        let since_seq = since.map(|t| t.sequence.to_string()).unwrap_or_default();
        let since_time = nanos_text(since.map_or(i64::MIN, |t| t.expired_through_nanos));
        let reply = self.run(
            &mut conn,
            &self.scripts.changes,
            &keys,
            now,
            &[since_seq.as_bytes(), since_time.as_bytes(), want.as_bytes(), want.as_bytes()],
        )?;
        let location = keys.meta();
        let mut parts = array(reply, location)?.into_iter();
        let mut next = || parts.next().ok_or_else(|| corrupt(location, "changes answered too few parts"));
        let latest = sequence(&next()?).ok_or_else(|| corrupt(location, "no latest sequence"))?;
        let forgotten_removals = sequence(&next()?).ok_or_else(|| corrupt(location, "no forgotten removals"))?;
        let forgotten_expirations =
            bytes(&next()?).and_then(parse_time_text).ok_or_else(|| corrupt(location, "no forgotten expirations"))?;
        let upserts = array(next()?, location)?;
        let removals = array(next()?, location)?;
        let expirations = array(next()?, location)?;
        let horizon = FeedHorizon {
            latest_sequence: latest,
            forgotten_removals_through: forgotten_removals,
            forgotten_expirations_through: forgotten_expirations,
        };
        if let Some(token) = since {
            check_token(token, &horizon)?;
        }
        let mut sequenced = Vec::with_capacity(upserts.len() / 3 + removals.len() / 2);
        for row in upserts.chunks_exact(3) {
            let seq = sequence(&row[0]).ok_or_else(|| corrupt(location, "an upsert without sequence"))?;
            let id = bytes(&row[1]).map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            let sealed = bytes(&row[2]).map(<[u8]>::to_vec);
            sequenced.push((seq, Sequenced::Upsert((id, sealed))));
        }
        for row in removals.chunks_exact(2) {
            let member = bytes(&row[0]).unwrap_or_default();
            let seq = sequence(&row[1]).ok_or_else(|| corrupt(location, "a removal without sequence"))?;
            let parsed = member.split_last_chunk::<2>().and_then(|(id, [colon, reason])| {
                let reason = RemovalReason::from_u8(reason.checked_sub(b'0')?)?;
                (*colon == b':').then_some(())?;
                Some((parse_id_text(id)?, reason))
            });
            let (id, reason) = parsed.ok_or_else(|| {
                corrupt(keys.all()[5].as_str(), format!("bad removal {:?}", String::from_utf8_lossy(member)))
            })?;
            sequenced.push((seq, Sequenced::Removed(id, reason)));
        }
        let mut expired = Vec::with_capacity(expirations.len());
        for member in &expirations {
            let member = bytes(member).unwrap_or_default();
            let parsed = (member.len() == 52)
                .then(|| Some((parse_time_text(&member[..20])?, parse_id_text(&member[20..])?)))
                .flatten();
            let entry = parsed.ok_or_else(|| {
                corrupt(keys.all()[9].as_str(), format!("bad expiration {:?}", String::from_utf8_lossy(member)))
            })?;
            expired.push(entry);
        }
        let (page, token, more) = plan_page(since, now_nanos, &horizon, expired, sequenced, limit);
        let mut items = Vec::with_capacity(page.len());
        for planned in page {
            items.push(match planned {
                Planned::Removed(id, reason) => Change::Removed { id, reason },
                Planned::Upsert((id, sealed)) => {
                    let location = format!("{} id {id}", keys.all()[1]);
                    let sealed = sealed.ok_or_else(|| corrupt(&location, "changed but missing"))?;
                    Change::Upserted(Box::new(decode(&sealed, &location)?))
                }
            });
        }
        Ok(Changes { items, next: token, more })
    }

    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        let started = Instant::now();
        let now = self.clock.now();
        let now_ms = now.as_millisecond();
        let mut conn = self.connections.get()?;
        let mut stats = SweepStats::default();
        for n in 0..self.layout.bucket_count() {
            let bucket = self.layout.bucket(n);
            // Feeds whose earliest expiration lies within this millisecond but after now stay
            // due; `done` keeps each feed to one visit per sweep.
            let mut done = std::collections::HashSet::new();
            let mut still_due = 0usize;
            loop {
                let due: Vec<Vec<u8>> = self.connections.retrying(&mut conn, "reading an expiry bucket", |c| {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(&bucket)
                        .arg("-inf")
                        .arg(now_ms)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(still_due + 256)
                        .query(c)
                })?;
                let fresh: Vec<Vec<u8>> = due.into_iter().filter(|m| !done.contains(m)).collect();
                if fresh.is_empty() {
                    break;
                }
                for member in fresh {
                    let (expired, bytes_freed, next_ms) = self.sweep_feed(&mut conn, &bucket, &member, now)?;
                    stats.expired += expired;
                    stats.bytes_reclaimed += bytes_freed;
                    if next_ms.is_some_and(|ms| ms <= now_ms) {
                        still_due += 1;
                    }
                    done.insert(member);
                }
            }
        }
        stats.duration = started.elapsed();
        Ok(stats)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut conn = self.connections.get()?;
        durability::ping_masters(&mut conn)
    }
}
