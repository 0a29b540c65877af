//! Regression (found by the `record_decoder` fuzz target): a frame of a few bytes made the
//! decoder allocate 1 MiB.
//!
//! A record body carries its own counts: the length of each string and the number of ids of a
//! group delete. Both were trusted to size an allocation before the bytes they count were read:
//! serde reserved room for up to 1 MiB of ids from the count alone, and bincode allocated a
//! string of the claimed length (up to the 1 MiB decode limit) before finding the body too short.
//! A 30-byte frame with a valid checksum (a torn write can leave one, and so can bit rot that
//! happens to pass) thus cost 1 MiB per frame during recovery. Now the ids are reserved for at
//! most 256 at a time and the codec's limit follows the input's length, so decoding allocates
//! at most a small multiple of the frame. This test caps the heap around an open of such a
//! segment and around a decode of such a string.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::path::Path;
use std::sync::Arc;

use cap::Cap;
use notifeed::engine::log::fs::{FaultFileSystem, FileSystem};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{ManualClock, SharedClock};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Heap growth allowed: far below the 1 MiB the bug allocated, far above what opening a store
/// of one small segment needs.
const ALLOWANCE: usize = 256 << 10;

/// The cap is process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A segment (format of `src/engine/log/FORMAT.md`: 40-byte header with a salt, here 0) holding
/// one frame of `kind` with `frame_body`, its checksum correct.
fn segment_with(frame_body: &[u8], kind: u8) -> Vec<u8> {
    let segment_id = 1u64;
    let salt = 0u64;
    let mut h = [0u8; 40];
    h[..8].copy_from_slice(b"NFEEDLOG");
    h[8] = 1;
    h[12..20].copy_from_slice(&segment_id.to_le_bytes());
    h[20..28].copy_from_slice(&0i64.to_le_bytes());
    h[28..36].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&h[..36]);
    h[36..].copy_from_slice(&crc.to_le_bytes());
    let mut frame = vec![0; 4];
    frame.extend_from_slice(&(frame_body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&[kind, 0, 0, 0]);
    frame.extend_from_slice(&7u64.to_le_bytes());
    frame.extend_from_slice(frame_body);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment_id.to_le_bytes());
    hasher.update(&salt.to_le_bytes());
    hasher.update(&frame[4..]);
    let crc = hasher.finalize();
    frame[..4].copy_from_slice(&crc.to_le_bytes());
    let mut file = h.to_vec();
    file.extend_from_slice(&frame);
    file
}

#[test]
fn tiny_frames_with_huge_counts_are_rejected_without_large_allocations() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Group delete (kind 5): feed "user/app", then an id count of 2^39 (varint 253, u64) and
    // nothing after it.
    let mut group_delete = vec![8];
    group_delete.extend_from_slice(b"user/app");
    group_delete.push(253);
    group_delete.extend_from_slice(&(1u64 << 39).to_le_bytes());
    // Delete (kind 4): a feed string claiming 1,000,000 bytes (varint 252, u32) and nothing after.
    let mut delete = vec![252];
    delete.extend_from_slice(&1_000_000u32.to_le_bytes());

    // Expired (kind 6) and Removals (kind 7, after its forgotten-through varint 0): the same
    // huge list count (found again by the fuzz smoke run once these record kinds existed).
    let mut expired = vec![8];
    expired.extend_from_slice(b"user/app");
    expired.push(253);
    expired.extend_from_slice(&(1u64 << 39).to_le_bytes());
    let mut removals = vec![8];
    removals.extend_from_slice(b"user/app");
    removals.push(0);
    removals.push(253);
    removals.extend_from_slice(&(1u64 << 39).to_le_bytes());

    for (kind, body) in [(5u8, group_delete), (4u8, delete), (6u8, expired), (7u8, removals)] {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/db");
        fs.create_dir_all(dir).unwrap();
        let file = fs.open(&dir.join("0000000001.seg"), true).unwrap();
        file.write_all_at(&segment_with(&body, kind), 0).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        drop(file);
        let clock: SharedClock = Arc::new(ManualClock::at_epoch_2026());

        let base = ALLOCATOR.allocated();
        ALLOCATOR.set_limit(base + ALLOWANCE).unwrap();
        // No commit journal: this in-memory file system would hold its megabytes of zeros on
        // the heap, which is not what this test measures.
        let config = LogConfig { journal_bytes: 0, ..LogConfig::default() };
        let opened = LogStore::open_with_fs(dir, config, clock, Arc::new(fs.clone()));
        let peak_ok = opened.is_ok();
        ALLOCATOR.set_limit(usize::MAX).unwrap();

        // The bad frame is the segment's last: a torn tail, cut by the open.
        let store = opened.unwrap();
        assert!(peak_ok);
        assert_eq!(store.recovery_report().torn_tails.len(), 1, "kind {kind}");
        assert_eq!(store.recovery_report().records, 0, "kind {kind}");
    }
}

#[test]
fn a_string_claiming_more_than_the_input_fails_within_a_small_allowance() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut claim = vec![252];
    claim.extend_from_slice(&1_000_000u32.to_le_bytes());
    let base = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(base + ALLOWANCE).unwrap();
    let decoded = notifeed::codec::decode::<String>(&claim);
    ALLOCATOR.set_limit(usize::MAX).unwrap();
    assert!(decoded.is_err());
}
