//! The model check on [`notifeed::engine::sled::SledStore`]: random operations, clock moves and
//! reopens, every answer compared with the in-memory model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod model;
mod model_check;

use std::sync::Arc;

use notifeed::engine::sled::{SledConfig, SledStore};
use notifeed::{FeedStore, StoreError};

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let config = SledConfig { options: env.options.clone(), ..SledConfig::default() };
    Ok(Box::new(SledStore::open(&env.dir, config, Arc::new(env.clock.clone()))?))
}

#[test]
fn engine_agrees_with_the_model() {
    model_check::check_engine_against_model(open);
}
