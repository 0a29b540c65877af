//! The conformance suite on `RedisStore`, on one real Redis Cluster (3 masters, 3 replicas)
//! shared by every scenario of this binary; each scenario's `Env.namespace` is its key prefix.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod redis_cluster;

use std::sync::Arc;

use notifeed::engine::redis::{RedisConfig, RedisStore};
use notifeed::{FeedStore, StoreError};

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let cluster = redis_cluster::shared();
    let config =
        RedisConfig { key_prefix: env.namespace.clone(), options: env.options.clone(), ..RedisConfig::default() };
    Ok(Box::new(RedisStore::open(&cluster.urls(), config, Arc::new(env.clock.clone()))?))
}

conformance_suite!(open);
