//! The conformance suite, run against [`notifeed::engine::log::LogStore`] with
//! `Durability::Buffered`, a tiny write buffer (so reads of buffered records flush it) and
//! small segments (so windows roll).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::sync::Arc;

use notifeed::Durability;
use notifeed::engine::log::{LogConfig, LogStore};

fn open(env: &conformance::Env) -> Result<Box<dyn notifeed::FeedStore>, notifeed::StoreError> {
    let config = LogConfig {
        options: env.options.clone(),
        durability: Durability::Buffered,
        write_buffer_bytes: 700,
        max_segment_bytes: 4096,
        ..LogConfig::default()
    };
    Ok(Box::new(LogStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

conformance_suite!(open);
