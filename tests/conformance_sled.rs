//! The conformance suite on [`notifeed::engine::sled::SledStore`], one store directory per
//! scenario (the suite's `Env::dir`), reopened on the same directory and clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::sync::Arc;

use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::{FeedStore, StoreError};

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let config = SledConfig { options: env.options.clone(), ..SledConfig::default() };
    Ok(Box::new(SledStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

conformance_suite!(open);
