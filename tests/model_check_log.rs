//! The model check on [`notifeed::engine::log::LogStore`]: random operations, clock moves and
//! reopens, every answer compared with the in-memory model. Small segments and a tiny buffered
//! write buffer make rotation and buffer flushes happen within short runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod model;
mod model_check;

use std::sync::Arc;

use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Durability, FeedStore, StoreError};

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let config = LogConfig { options: env.options.clone(), ..LogConfig::default() };
    Ok(Box::new(LogStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

fn open_buffered(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let config = LogConfig {
        options: env.options.clone(),
        durability: Durability::Buffered,
        write_buffer_bytes: 500,
        max_segment_bytes: 4096,
        ..LogConfig::default()
    };
    Ok(Box::new(LogStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

#[test]
fn engine_agrees_with_the_model() {
    model_check::check_engine_against_model(open);
}

#[test]
fn buffered_engine_with_small_segments_agrees_with_the_model() {
    model_check::check_engine_against_model(open_buffered);
}
