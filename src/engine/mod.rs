//! The engines behind [`crate::FeedStore`]. Each lives in its own folder and passes the same
//! conformance suite (`tests/conformance/`).

#[cfg(feature = "redis")]
pub mod redis;
