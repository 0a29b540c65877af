//! The engines behind [`crate::FeedStore`]. Each lives in its own folder and passes the same
//! conformance suite (`tests/conformance/`).

pub mod log;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sled;
