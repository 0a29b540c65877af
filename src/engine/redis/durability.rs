//! What an acknowledged write survives on Redis, and the checks that back the promise.
//!
//! Redis replication is asynchronous: a master acknowledges a script before any replica has it.
//! Two independent knobs decide what an acknowledged mutation survives:
//!
//! * [`Durability`] — the master's own disk:
//!   * [`Durability::Always`]: [`super::RedisStore::open`] verifies that every master runs with
//!     `appendonly yes` and `appendfsync always`, so Redis fsyncs its append-only file before it
//!     replies. An acknowledged write survives a crash or power loss of its master *when that
//!     master comes back* (no failover happened in between). Open fails otherwise.
//!   * [`Durability::Buffered`]: no check. The master holds the write in memory; its disk follows
//!     the server's `appendfsync` (with `everysec`, a master crash loses up to about a second of
//!     writes). [`crate::FeedStore::sync`] cannot force another connection's writes to disk in
//!     Redis: it only checks that every master answers.
//! * `min_replicas_acked` ([`super::RedisConfig::min_replicas_acked`]) — the replicas: after each
//!   mutation, the store sends `WAIT n timeout` to the feed's master over the connection that
//!   wrote, and succeeds only when `n` replicas acknowledged the write. An acknowledged write then
//!   survives the loss of its master *with* a failover to one of those replicas (the replica has
//!   it in memory; it reaches the replica's disk by the replica's own `appendfsync`). When fewer
//!   replicas acknowledge in time, the call fails with [`StoreError::Backend`]: the write *was*
//!   applied on the master and may or may not survive a failover. With `0` (the default) a
//!   failover can lose the writes its master acknowledged last.
//!
//! Neither knob makes Redis a consensus store: a network partition that isolates a master with
//! its clients can still lose writes acknowledged by that master alone (see the Redis Cluster
//! specification, "Write safety").

use std::time::Duration;

use redis::cluster::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisError, Value};

use crate::store::{Durability, StoreError};

fn backend(detail: String) -> StoreError {
    StoreError::Backend { engine: "redis", detail }
}

/// Waits until `replicas` replicas acknowledged every write of this connection to the master of
/// `key`'s slot.
///
/// # Errors
/// [`StoreError::Backend`] when fewer replicas acknowledged within `timeout`, or `WAIT` failed.
pub(crate) fn await_replicas(
    conn: &mut ClusterConnection,
    key: &str,
    replicas: usize,
    timeout: Duration,
) -> Result<(), StoreError> {
    if replicas == 0 {
        return Ok(());
    }
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut wait = redis::cmd("WAIT");
    wait.arg(replicas).arg(timeout_ms);
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)));
    let acked = match conn.route_command(&wait, route) {
        Ok(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
        Ok(other) => return Err(backend(format!("WAIT answered {other:?}"))),
        Err(e) => return Err(wait_failed(replicas, &e)),
    };
    if acked < replicas {
        return Err(backend(format!(
            "the write was applied on the master but acknowledged by only {acked} of {replicas} replicas \
             within {timeout_ms} ms; it may be lost if the master fails over"
        )));
    }
    Ok(())
}

fn wait_failed(replicas: usize, e: &RedisError) -> StoreError {
    backend(format!(
        "the write was applied on the master but WAIT for {replicas} replicas failed ({e}); \
         it may be lost if the master fails over"
    ))
}

/// Checks that every master's configuration backs `durability` (see the module doc).
///
/// # Errors
/// [`StoreError::Backend`] naming the setting to change, when a master runs without
/// `appendonly yes` / `appendfsync always` under [`Durability::Always`], or when the settings
/// cannot be read (`CONFIG` disabled).
pub(crate) fn check_masters(conn: &mut ClusterConnection, durability: Durability) -> Result<(), StoreError> {
    if durability != Durability::Always {
        return Ok(());
    }
    for (setting, wanted) in [("appendonly", "yes"), ("appendfsync", "always")] {
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg(setting);
        let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let answer = conn.route_command(&get, all).map_err(|e| {
            backend(format!(
                "cannot verify `{setting} {wanted}` on every master for Durability::Always ({e}); \
                 use Durability::Buffered to run without the check"
            ))
        })?;
        let mut found = Vec::new();
        values_after(&answer, setting.as_bytes(), &mut found);
        if found.is_empty() || found.iter().any(|v| !v.eq_ignore_ascii_case(wanted.as_bytes())) {
            let seen: Vec<String> = found.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            return Err(backend(format!(
                "Durability::Always needs `{setting} {wanted}` on every master, found {seen:?}; \
                 configure the servers (redis.conf or CONFIG SET) or use Durability::Buffered"
            )));
        }
    }
    Ok(())
}

/// Collects every value that follows the name `name` in a `CONFIG GET` answer, however the
/// per-node answers are nested.
fn values_after(value: &Value, name: &[u8], out: &mut Vec<Vec<u8>>) {
    match value {
        Value::Array(items) | Value::Set(items) => {
            for pair in items.windows(2) {
                if let [Value::BulkString(k), Value::BulkString(v)] = pair
                    && k.eq_ignore_ascii_case(name)
                {
                    out.push(v.clone());
                }
            }
            for item in items {
                values_after(item, name, out);
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                match (k, v) {
                    (Value::BulkString(k), Value::BulkString(v)) if k.eq_ignore_ascii_case(name) => out.push(v.clone()),
                    _ => {
                        values_after(k, name, out);
                        values_after(v, name, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks that every master answers `PING`: what [`crate::FeedStore::sync`] can do on Redis.
///
/// # Errors
/// [`StoreError::Backend`] when a master does not answer.
pub(crate) fn ping_masters(conn: &mut ClusterConnection) -> Result<(), StoreError> {
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    conn.route_command(&redis::cmd("PING"), all)
        .map(|_| ())
        .map_err(|e| backend(format!("a master did not answer PING: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_found_in_nested_answers() {
        let node = |v: &str| {
            Value::Array(vec![Value::BulkString(b"appendfsync".to_vec()), Value::BulkString(v.as_bytes().to_vec())])
        };
        let answer = Value::Map(vec![
            (Value::BulkString(b"127.0.0.1:1".to_vec()), node("always")),
            (Value::BulkString(b"127.0.0.1:2".to_vec()), node("everysec")),
        ]);
        let mut found = Vec::new();
        values_after(&answer, b"appendfsync", &mut found);
        assert_eq!(found, vec![b"always".to_vec(), b"everysec".to_vec()]);
    }
}
