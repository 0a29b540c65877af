//! The conformance suite on [`notifeed::engine::sled::SledStore`] with `Durability::Buffered`
//! and sled's background flusher off: every reopen relies on the flush sled does when the
//! store is dropped, and reads must see writes that were never flushed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::sync::Arc;

use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::{Durability, FeedStore, StoreError};

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let config = SledConfig {
        options: env.options.clone(),
        durability: Durability::Buffered,
        flush_every_milliseconds: None,
        ..SledConfig::default()
    };
    Ok(Box::new(SledStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

conformance_suite!(open);
