//! Review finding (HIGH): an acknowledged `delete_group` of more than about 65,500 members is
//! written as a frame that recovery cannot read; the next open truncates it as a "torn tail" and
//! every deleted notification comes back (had other records followed it in the segment, the
//! open would refuse instead, as mid-segment corruption).
//!
//! A group delete is one `GroupDelete` record holding every member's 16-byte id
//! (src/engine/log/mod.rs, `delete_group`). Frames may claim at most 1 MiB of body
//! (`record::MAX_BODY_LEN` = `codec::MAX_DECODE_BYTES`, checked by `record::claimed_len` when
//! reading), and `record::encode_frame` relies on `codec::encode` to refuse larger bodies
//! ("codec::encode refuses bodies above MAX_DECODE_BYTES"). It does not: bincode's
//! `with_limit` only bounds *decoding*, so the engine writes, syncs and acknowledges a frame
//! whose length field exceeds the limit. `StoreOptions::feed_capacity` has no upper bound (the
//! engine's own concurrency test uses 100,000), so a group that large is reachable. On reopen,
//! `decode_frame` fails with "body length exceeds the maximum", no valid frame follows, and the
//! frame is cut as a torn tail: an acknowledged, durable operation is silently undone.
//!
//! Fix: check the body length in `LogStore::write` (or in `codec::encode`, which documents the
//! check) *before* queuing, and either split a large group delete into several records
//! committed in the same batch (recovery already replays them in LSN order; each shadows its
//! members) or bound `feed_capacity` at open so a group delete always fits. An oversized body
//! must be refused up front with a non-corruption error, never written.
//!
//! Resolution (branch `logfix`): splitting would break "one operation = one record" (a crash
//! between the parts could leave half a group delete), so the open bounds `feed_capacity` by
//! `log::MAX_FEED_CAPACITY` (50,000: a whole-feed group delete is then at most ~782 KiB) and
//! refuses more with a clear configuration error; `codec::encode` now refuses any body above
//! the bound, so an oversized frame can never be written. This test pins both halves: the open
//! refuses the old 100,000 capacity, and a group delete of the largest possible group, in the
//! feed with the longest key, survives a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore, MAX_FEED_CAPACITY};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification, StoreError, StoreOptions};

fn open(fs: &FaultFileSystem, clock: &ManualClock, feed_capacity: usize) -> Result<LogStore, StoreError> {
    // Buffered only to keep 50,000 appends fast on the in-memory file system (each of its
    // syncs copies the file); the group delete is made durable by `sync` before the reopen.
    let config = LogConfig {
        durability: Durability::Buffered,
        options: StoreOptions { feed_capacity, ..StoreOptions::default() },
        ..LogConfig::default()
    };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

#[test]
fn a_feed_capacity_whose_group_delete_cannot_fit_one_record_is_refused_at_open() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    for capacity in [MAX_FEED_CAPACITY + 1, 100_000] {
        match open(&fs, &clock, capacity) {
            Ok(_) => panic!("feed_capacity {capacity} accepted: a whole-feed group delete would exceed 1 MiB"),
            Err(e @ StoreError::Backend { .. }) => {
                assert!(e.to_string().contains("feed_capacity"), "unclear error: {e}");
            }
            Err(e) => panic!("refused with an unexpected error: {e}"),
        }
    }
    assert!(open(&fs, &clock, MAX_FEED_CAPACITY).is_ok());
}

#[test]
fn an_acknowledged_delete_of_the_largest_possible_group_survives_a_reopen() {
    let members = MAX_FEED_CAPACITY as u64;
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let store = open(&fs, &clock, MAX_FEED_CAPACITY).unwrap();
    // The longest feed key (256 bytes) makes the largest group-delete body.
    let f = FeedKey::new(format!("user/{}", "k".repeat(251))).unwrap();
    let expires = clock.now() + SignedDuration::from_hours(2);
    for i in 0..members {
        let new = NewNotification::visual("h", &format!("n{i}"), "t").with_group("big").expiring_at(expires);
        store.append(&f, new).unwrap();
    }
    assert_eq!(store.count(&f).unwrap().total, members);
    match store.delete_group(&f, "big") {
        Ok(n) => assert_eq!(n, members),
        Err(e) => panic!("the group delete was refused: {e}"),
    }
    assert_eq!(store.count(&f).unwrap().total, 0);
    store.sync().unwrap();
    drop(store);
    let store = match open(&fs, &clock, MAX_FEED_CAPACITY) {
        Ok(store) => store,
        Err(e) => panic!("the store cannot be reopened after the group delete: {e}"),
    };
    assert!(
        store.recovery_report().torn_tails.is_empty(),
        "an acknowledged record was cut as a torn tail: {:?}",
        store.recovery_report()
    );
    assert_eq!(store.count(&f).unwrap().total, 0, "the acknowledged group delete did not survive the reopen");
}
