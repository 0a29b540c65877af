//! The conformance suite on the in-memory reference model: this validates the suite itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod model;

conformance_suite!(model::open);
