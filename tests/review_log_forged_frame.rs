//! Review finding (MEDIUM, adversarial): a notification whose content embeds a checksum-valid
//! frame turns a crash-torn write of that notification into "corruption": the open refuses.
//!
//! Recovery (src/engine/log/recovery.rs, `next_valid_frame` / `plausible_frame_at`) decides
//! between a torn tail and corruption by scanning the rest of the segment, byte by byte, for any
//! offset where a frame passes its crc32. The crc32 is keyed only by the segment id, which is a
//! small sequential number (the first segment of a fresh store is 1), so anyone who can post a
//! notification can put a complete, valid frame inside its `rawContent` (an ASCII-only one is
//! found by trying a few LSNs). When a crash tears that notification's (unacknowledged) record
//! after the embedded frame, the scan finds the embedded frame, classifies the tear as
//! mid-segment corruption and the default open refuses: one crafted request plus a power loss
//! makes the store unopenable without salvage. In salvage mode the forged frame is replayed as
//! a real record (a delete, or an append into any feed with attacker-chosen content).
//!
//! Fix: make frames unforgeable by content: put a random per-segment salt (say 8 bytes, chosen
//! at creation) in the segment header and fold it into every frame's crc32 instead of (or as
//! well as) the segment id; content written through the API can then never pass as a frame.
//! Additionally, never resynchronise *inside* the extent of the last good frame's successor:
//! a candidate frame must start after a frame boundary that the scan can justify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

/// A complete `Delete` frame (format of `FORMAT.md`) for `segment_id`, every byte ASCII.
fn forged_delete_frame(segment_id: u64) -> Vec<u8> {
    let feed = b"x/forged";
    let mut body = vec![feed.len() as u8];
    body.extend_from_slice(feed);
    body.extend_from_slice(b"AAAAAAAAAAAAAAAA");
    for attempt in 0u64.. {
        let mut tail = Vec::new();
        tail.extend_from_slice(&(body.len() as u32).to_le_bytes());
        tail.extend_from_slice(&[4, 0, 0, 0]);
        for i in 0..8 {
            tail.push(b'0' + ((attempt >> (6 * i)) & 63) as u8);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&segment_id.to_le_bytes());
        h.update(&tail);
        h.update(&body);
        let crc = h.finalize().to_le_bytes();
        if crc.iter().all(|b| *b < 0x80) {
            let mut frame = crc.to_vec();
            frame.extend_from_slice(&tail);
            frame.extend_from_slice(&body);
            return frame;
        }
    }
    unreachable!()
}

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> Result<LogStore, StoreError> {
    LogStore::open_with_fs(Path::new("/data"), LogConfig::default(), Arc::new(clock.clone()), Arc::new(fs.clone()))
}

#[test]
fn a_torn_write_of_a_notification_embedding_a_frame_is_still_a_torn_tail() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let expires = clock.now() + SignedDuration::from_mins(30);
    let f = FeedKey::new("user/app").unwrap();
    // Buffered with no engine buffer: each call reaches the OS, and only `sync` makes it durable.
    let config = LogConfig { durability: Durability::Buffered, write_buffer_bytes: 0, ..LogConfig::default() };
    let store =
        LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    let acked = store.append(&f, NewNotification::visual("app.example", "kept", "title").expiring_at(expires)).unwrap();
    store.sync().unwrap();
    let segment = Path::new("/data/0000000001.seg");
    let durable = fs.read_all(segment).unwrap();

    let forged = forged_delete_frame(1);
    let content = String::from_utf8(forged.clone()).unwrap() + &"z".repeat(200);
    // The write reaches the OS and is never synced: a crash may keep any prefix of it. (A
    // failed sync no longer leaves it there: the store cuts what no sync covered.)
    let crafted = NewNotification::raw("app.example", "crafted", &content).expiring_at(expires);
    store.append(&f, crafted).unwrap();
    let live = fs.read_all(segment).unwrap();
    let at = live.windows(forged.len()).position(|w| w == forged.as_slice()).unwrap();
    // Where the unsynced write starts: at the end of the durable bytes (a buffered store writes
    // no zeros ahead of its records), or where it first differs from them (zeros written ahead).
    let base = live.iter().zip(&durable).position(|(a, b)| a != b).unwrap_or(durable.len());
    let torn_at = at + forged.len() + 10 - base;
    assert!(base + torn_at < live.len(), "the tear is inside the crafted record");
    let crashed = fs.crash(Some(torn_at));
    drop(store);

    let reopened = open(&crashed, &clock);
    let store = match reopened {
        Ok(store) => store,
        Err(e) => panic!("a torn, unacknowledged write made the store refuse to open: {e}"),
    };
    assert_eq!(store.recovery_report().torn_tails.len(), 1);
    assert_eq!(store.get(&f, acked.id).unwrap().as_ref(), Some(&acked));
    assert!(store.get_by_app_id(&f, "crafted").unwrap().is_none());
}
