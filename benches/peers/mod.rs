//! Every engine the benches compare, behind [`crate::workload::Peer`].
//!
//! The peers (what a user would pick instead of notifeed) and notifeed's own engines, each in
//! its own module. [`all`] lists them in the order results are printed.

pub mod fjall;
pub mod notifeed;
pub mod raw_floor;
pub mod redb;
pub mod sled_raw;
pub mod sqlite;

use crate::workload::PeerSpec;

/// Every engine present in this build, the raw floor first.
pub fn all() -> Vec<PeerSpec> {
    let mut specs = vec![
        PeerSpec { name: "raw-floor", open: raw_floor::open },
        PeerSpec { name: "sqlite-wal", open: sqlite::open },
        PeerSpec { name: "sled", open: sled_raw::open },
        PeerSpec { name: "redb", open: redb::open },
        PeerSpec { name: "fjall", open: fjall::open },
    ];
    specs.extend(notifeed::engines());
    specs
}

/// Only the engines named in `NOTIFEED_BENCH_ENGINES` (comma-separated), or all of them. The
/// [`variants`] run only when named.
pub fn selected() -> Vec<PeerSpec> {
    let wanted = std::env::var("NOTIFEED_BENCH_ENGINES").unwrap_or_default();
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if wanted.is_empty() {
        return all();
    }
    all().into_iter().chain(variants()).filter(|spec| wanted.contains(&spec.name)).collect()
}

/// Engines that run only when `NOTIFEED_BENCH_ENGINES` names them: the raw floor with group
/// commit, and notifeed's variants.
pub fn variants() -> Vec<PeerSpec> {
    let mut specs = vec![PeerSpec { name: "raw-floor-gc", open: raw_floor::open_group_commit }];
    specs.extend(notifeed::variants());
    specs
}
