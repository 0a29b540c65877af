//! The engines behind [`crate::FeedStore`]. Each lives in its own folder and passes the same
//! conformance suite (`tests/conformance/`).

pub mod log;
pub mod sled;
