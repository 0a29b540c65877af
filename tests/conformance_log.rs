//! The conformance suite, run against [`notifeed::engine::log::LogStore`] with its defaults
//! (`Durability::Always`, one-hour windows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::sync::Arc;

use notifeed::engine::log::{LogConfig, LogStore};

fn open(env: &conformance::Env) -> Result<Box<dyn notifeed::FeedStore>, notifeed::StoreError> {
    let config = LogConfig { options: env.options.clone(), ..LogConfig::default() };
    Ok(Box::new(LogStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

conformance_suite!(open);
