//! Regression (found by the `record_decoder` fuzz target): a record whose LSN is near
//! `u64::MAX` made recovery overflow.
//!
//! Recovery computes the last sequence of every record as `LSN + span - 1` and the next LSN as
//! `LSN + span`. A frame with a valid checksum and an LSN of `u64::MAX` (bit rot that passes
//! the checksum, or a file written by something else) overflowed that sum: a panic in debug
//! builds, and in release a next LSN that wrapped to a small number, so sequences went
//! backwards. Now a record ending beyond 2^62 (FORMAT.md, `record::MAX_LSN`) is a bad record:
//! a torn tail when it ends its segment, corruption otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use notifeed::engine::log::fs::{FaultFileSystem, FileSystem};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{FeedKey, FeedStore, ManualClock, NewNotification, SharedClock, StoreError};

const SEGMENT_ID: u64 = 1;

/// The segment's salt (FORMAT.md: random when a segment is created; any value for a test).
const SALT: u64 = 0x5EED;

/// A 40-byte segment header (FORMAT.md) for the window ending at `i64::MAX`.
fn header() -> Vec<u8> {
    let mut h = [0u8; 40];
    h[..8].copy_from_slice(b"NFEEDLOG");
    h[8] = 1;
    h[12..20].copy_from_slice(&SEGMENT_ID.to_le_bytes());
    h[20..28].copy_from_slice(&i64::MAX.to_le_bytes());
    h[28..36].copy_from_slice(&SALT.to_le_bytes());
    let crc = crc32fast::hash(&h[..36]);
    h[36..].copy_from_slice(&crc.to_le_bytes());
    h.to_vec()
}

/// A group delete of three ids in feed `user/app.example` at `lsn`, with a valid checksum.
fn group_delete_frame(lsn: u64) -> Vec<u8> {
    // The body is bincode of `GroupDeleteBody { feed, ids }`: a struct encodes as its fields.
    let body = notifeed::codec::encode(&("user/app.example".to_owned(), vec![[1u8; 16], [2; 16], [3; 16]])).unwrap();
    let mut frame = vec![0; 4];
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&[5, 0, 0, 0]);
    frame.extend_from_slice(&lsn.to_le_bytes());
    frame.extend_from_slice(&body);
    let mut h = crc32fast::Hasher::new();
    h.update(&SEGMENT_ID.to_le_bytes());
    h.update(&SALT.to_le_bytes());
    h.update(&frame[4..]);
    let crc = h.finalize();
    frame[..4].copy_from_slice(&crc.to_le_bytes());
    frame
}

fn store_with(file: &[u8]) -> (FaultFileSystem, Result<LogStore, StoreError>) {
    let fs = FaultFileSystem::new();
    let dir = Path::new("/db");
    fs.create_dir_all(dir).unwrap();
    let f = fs.open(&dir.join("0000000001.seg"), true).unwrap();
    f.write_all_at(file, 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(dir).unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at_epoch_2026());
    let store = LogStore::open_with_fs(dir, LogConfig::default(), clock, Arc::new(fs.clone()));
    (fs, store)
}

#[test]
fn a_last_record_with_an_lsn_near_the_maximum_is_a_torn_tail_and_sequences_stay_small() {
    let mut file = header();
    file.extend_from_slice(&group_delete_frame(7));
    file.extend_from_slice(&group_delete_frame(u64::MAX));
    let (_fs, store) = store_with(&file);
    let store = store.unwrap();
    assert_eq!(store.recovery_report().records, 1);
    assert_eq!(store.recovery_report().torn_tails.len(), 1);
    // The next sequence follows the good record (LSN 7, span 3), not a wrapped one.
    let feed = FeedKey::new("user/app.example").unwrap();
    store.append(&feed, NewNotification::visual("app.example", "a", "t")).unwrap();
    let changes = store.changes(&feed, None, 10).unwrap();
    assert_eq!(changes.next.sequence, 10);
}

#[test]
fn a_record_with_an_lsn_near_the_maximum_followed_by_a_good_one_is_corruption() {
    let mut file = header();
    file.extend_from_slice(&group_delete_frame(u64::MAX - 1));
    file.extend_from_slice(&group_delete_frame(7));
    let (_fs, store) = store_with(&file);
    match store {
        Err(StoreError::Corruption { detail, .. }) => assert!(detail.contains("beyond the largest LSN"), "{detail}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}
