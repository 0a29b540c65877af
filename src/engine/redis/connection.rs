//! The connection pool and the retry policy for cluster redirections and failovers.
//!
//! The `redis` crate's cluster connection already follows `MOVED` and `ASK` redirections and
//! refreshes its slot map; it gives up after a few quick attempts. A failover takes longer (the
//! replica is promoted after `cluster-node-timeout`), so every command the store sends goes
//! through [`Connections::retrying`], which retries errors the crate classes as retryable
//! (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY`, dropped or
//! refused connections, timeouts) with exponential backoff until the configured budget is spent.
//!
//! A retried mutation may have been applied before its reply was lost. The store's mutating
//! scripts are guarded (an append or state update carries the version it read, and answers
//! `retry` when it no longer matches), so a resent mutation never applies twice on top of itself;
//! at worst a resent delete reports `false` for the notification its first attempt deleted.

use std::time::{Duration, Instant};

use r2d2::{Pool, PooledConnection};
use redis::RetryMethod;
use redis::cluster::{ClusterClient, ClusterConnection};

use crate::store::StoreError;

/// How long to keep retrying and how to back off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) budget: Duration,
    pub(crate) first_backoff: Duration,
}

/// A pool of cluster connections.
pub(crate) struct Connections {
    pool: Pool<ClusterClient>,
    retry: RetryPolicy,
}

pub(crate) fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { engine: "redis", detail: format!("{what}: {e}") }
}

fn retryable(e: &redis::RedisError) -> bool {
    !matches!(e.retry_method(), RetryMethod::NoRetry)
}

impl Connections {
    pub(crate) fn new(pool: Pool<ClusterClient>, retry: RetryPolicy) -> Self {
        Self { pool, retry }
    }

    /// A connection from the pool, waiting (and retrying) while the cluster is unreachable.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when no connection could be made within the retry budget.
    pub(crate) fn get(&self) -> Result<PooledConnection<ClusterClient>, StoreError> {
        let start = Instant::now();
        let mut backoff = self.retry.first_backoff;
        loop {
            match self.pool.get() {
                Ok(conn) => return Ok(conn),
                Err(_) if start.elapsed() + backoff < self.retry.budget => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(backend("no connection to the cluster", e)),
            }
        }
    }

    /// Runs `op` on `conn`, retrying retryable errors with backoff within the budget.
    ///
    /// # Errors
    /// [`StoreError::Backend`] with `what` and the last error.
    pub(crate) fn retrying<T>(
        &self,
        conn: &mut ClusterConnection,
        what: &str,
        mut op: impl FnMut(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let mut backoff = self.retry.first_backoff;
        loop {
            match op(conn) {
                Ok(value) => return Ok(value),
                Err(e) if retryable(&e) && start.elapsed() + backoff < self.retry.budget => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(backend(what, e)),
            }
        }
    }
}
