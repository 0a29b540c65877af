//! The log engine's record and segment decoders on arbitrary bytes.
//!
//! Two shapes of input:
//! * `Raw`: bytes straight into the frame and segment-header decoders, stepping through them as
//!   recovery does.
//! * `Segment`: a segment file built from fuzzed frames whose checksums are made correct (so the
//!   fuzzer reaches the body decoder), bodies either raw or encoded from fuzzed records and then
//!   damaged, plus a raw tail; the file is then opened by a `LogStore` (over the in-memory file
//!   system) in both recovery modes, queried, and reopened.
//!
//! Checked: nothing panics; decoding one frame never makes the Rust heap grow by more than a
//! small multiple of that frame's length (the global allocator is capped around each decode);
//! an open that succeeded is followed by a clean reopen of the same records.
#![no_main]

use std::alloc::System;
use std::path::Path;
use std::sync::Arc;

use arbitrary::Arbitrary;
use cap::Cap;
use libfuzzer_sys::fuzz_target;
use notifeed::codec::StoredNotification;
use notifeed::engine::log::fs::{FaultFileSystem, FileSystem};
use notifeed::engine::log::fuzzing;
use notifeed::engine::log::{LogConfig, LogStore, RecoveryMode};
use notifeed::{FeedKey, FeedStore, ListQuery, ManualClock, SharedClock};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Heap growth allowed while decoding a frame of `len` bytes: the decoded record (at most as
/// large as its body, plus fixed-size parts), the codec's limit (at most 16 × the input), its
/// re-encoding, and error messages.
fn allowance(len: usize) -> usize {
    16 * len + (64 << 10)
}

/// Decodes the frame at the start of `bytes` with the heap capped; an allocation beyond the cap
/// aborts (libFuzzer reports it as a crash naming the allocation).
fn decode_capped(bytes: &[u8], segment_id: u64) -> Result<fuzzing::Decoded, String> {
    let len = fuzzing::claimed_len(bytes).map_or(bytes.len(), |claimed| claimed.min(bytes.len()));
    let base = ALLOCATOR.allocated();
    let _ = ALLOCATOR.set_limit(base.saturating_add(allowance(len)));
    let decoded = fuzzing::decode_record(bytes, segment_id);
    let _ = ALLOCATOR.set_limit(usize::MAX);
    if let Ok(d) = &decoded {
        assert!(d.frame_len <= bytes.len(), "a frame longer than its bytes decoded");
        assert!(d.frame_len <= fuzzing::MAX_BODY_LEN + 20, "a frame above the maximum decoded");
    }
    decoded
}

#[derive(Arbitrary, Debug)]
struct FuzzNotification {
    id: [u8; 16],
    app_notification_id: String,
    group_name: Option<String>,
    raw_content: Option<String>,
    visual_content: Option<(String, Option<String>)>,
    platforms: u8,
    priority: u8,
    display_time_to_live: Option<u32>,
    /// Seconds after 2026-01-01 (the store's clock).
    expires_in: i32,
    fallback: Option<(u32, String, Option<String>)>,
    read_state: u8,
    user_action_state: u8,
}

impl FuzzNotification {
    fn stored(self) -> StoredNotification {
        let base = 1_767_225_600_000_000_000i64; // 2026-01-01T00:00:00Z
        StoredNotification {
            id: self.id,
            target_host_name: "fuzz.example".into(),
            app_notification_id: self.app_notification_id,
            group_name: self.group_name,
            raw_content: self.raw_content,
            visual_content: self.visual_content,
            platforms: self.platforms,
            priority: self.priority,
            display_time_to_live: self.display_time_to_live,
            expiration: base.saturating_add(i64::from(self.expires_in).saturating_mul(1_000_000_000)),
            fallback: self.fallback,
            created: base,
            last_modified: base,
            read_state: self.read_state,
            user_action_state: self.user_action_state,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Upsert { feed: u8, position: u64, evicted: Option<[u8; 16]>, notification: FuzzNotification },
    Delete { feed: u8, id: [u8; 16] },
    GroupDelete { feed: u8, ids: Vec<[u8; 16]> },
}

/// Damage applied to an encoded body (its checksum is computed after).
#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    Truncate(u16),
    Overwrite { at: u16, bytes: Vec<u8> },
    Append(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct FuzzFrame {
    kind: u8,
    reserved: [u8; 3],
    lsn: u64,
    body: Body,
    damage: Damage,
    /// Flip one bit of the finished frame (breaking its checksum or header).
    flip: Option<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw { segment_id: u64, bytes: Vec<u8> },
    Segment { segment_id: u8, window: i8, frames: Vec<FuzzFrame>, tail: Vec<u8>, salvage: bool },
}

fn feed_name(n: u8) -> String {
    format!("user{}/fuzz.example", n % 4)
}

fn body_bytes(body: Body) -> Vec<u8> {
    let encoded = match body {
        Body::Raw(bytes) => Ok(bytes),
        Body::Upsert { feed, position, evicted, notification } => {
            fuzzing::upsert_body(&feed_name(feed), position, evicted, notification.stored())
        }
        Body::Delete { feed, id } => fuzzing::delete_body(&feed_name(feed), id),
        Body::GroupDelete { feed, ids } => fuzzing::group_delete_body(&feed_name(feed), ids),
    };
    encoded.unwrap_or_default()
}

fn damaged(mut body: Vec<u8>, damage: Damage) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Truncate(n) => body.truncate(usize::from(n)),
        Damage::Overwrite { at, bytes } => {
            for (i, b) in bytes.into_iter().enumerate() {
                if let Some(slot) = body.get_mut(usize::from(at) + i) {
                    *slot = b;
                }
            }
        }
        Damage::Append(bytes) => body.extend_from_slice(&bytes),
    }
    body
}

/// Steps through `bytes` frame by frame from `start`, as recovery's scan does.
fn scan(bytes: &[u8], start: usize, segment_id: u64) -> Vec<String> {
    let mut feeds = Vec::new();
    let mut offset = start;
    while offset < bytes.len() {
        match decode_capped(&bytes[offset..], segment_id) {
            Ok(d) => {
                assert!(d.frame_len >= 20);
                feeds.push(d.feed);
                offset += d.frame_len;
            }
            Err(_) => offset += 1,
        }
    }
    feeds
}

fn open(fs: &FaultFileSystem, salvage: bool) -> Result<LogStore, notifeed::StoreError> {
    let clock: SharedClock = Arc::new(ManualClock::at_epoch_2026());
    let mode = if salvage { RecoveryMode::Salvage } else { RecoveryMode::TolerateTornTail };
    // No index snapshot: the reopen below must scan again, so both opens decode every record
    // (clean reopens through the snapshot are store_model's business).
    let config = LogConfig { recovery_mode: mode, index_snapshot: false, ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/db"), config, clock, Arc::new(fs.clone()))
}

fn query(store: &LogStore, feeds: &[String]) {
    for feed in feeds {
        let Ok(key) = FeedKey::new(feed.clone()) else { continue };
        let _ = store.list(&key, &ListQuery { limit: 1000, ..ListQuery::default() });
        let _ = store.count(&key);
        let _ = store.changes(&key, None, 1000);
    }
}

fn segment(segment_id: u8, window: i8, frames: Vec<FuzzFrame>, tail: Vec<u8>, salvage: bool) {
    let id = u32::from(segment_id);
    let mut file = fuzzing::segment_header(u64::from(id), i64::from(window)).to_vec();
    for f in frames {
        let body = damaged(body_bytes(f.body), f.damage);
        let mut frame = fuzzing::frame(u64::from(id), f.kind, f.reserved, f.lsn, &body);
        if let Some((at, bit)) = f.flip {
            let at = usize::from(at) % frame.len();
            frame[at] ^= 1 << (bit % 8);
        }
        file.extend_from_slice(&frame);
    }
    file.extend_from_slice(&tail);
    let _ = fuzzing::decode_segment_header(&file);
    let feeds = scan(&file, 32, u64::from(id));

    let fs = FaultFileSystem::new();
    let dir = Path::new("/db");
    if fs.create_dir_all(dir).is_err() {
        return;
    }
    let path = dir.join(fuzzing::segment_file_name(id));
    let Ok(handle) = fs.open(&path, true) else { return };
    if handle.write_all_at(&file, 0).is_err() || handle.sync_data().is_err() || fs.sync_dir(dir).is_err() {
        return;
    }
    drop(handle);
    let first = match open(&fs, salvage) {
        Ok(store) => {
            query(&store, &feeds);
            let report = store.recovery_report().clone();
            drop(store);
            report
        }
        Err(_) => return,
    };
    // What an open accepted (after cutting a torn tail) opens again, with nothing left to cut.
    let store = match open(&fs, salvage) {
        Ok(store) => store,
        Err(e) => panic!("a store that opened does not reopen: {e}"),
    };
    let second = store.recovery_report();
    // Salvage keeps a bad region that a plausible frame follows; once the open cut that frame
    // as a torn tail, the bad region before it is the tail, and the reopen cuts it: allowed,
    // as long as only bytes the first open reported lost are cut.
    let within_lost = |t: &notifeed::engine::log::TornTail| {
        first
            .lost
            .iter()
            .any(|l| l.segment == t.segment && l.offset <= t.offset && t.offset + t.bytes_dropped <= l.offset + l.len)
    };
    assert!(
        second.torn_tails.iter().all(|t| salvage && within_lost(t)),
        "the reopen cut a torn tail the first open did not report lost: first {first:?}, second {second:?}"
    );
    assert_eq!(second.records, first.records, "the reopen replayed a different number of records");
    query(&store, &feeds);
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw { segment_id, bytes } => {
            let _ = fuzzing::decode_segment_header(&bytes);
            let _ = scan(&bytes, 0, segment_id);
        }
        Input::Segment { segment_id, window, frames, tail, salvage } => {
            segment(segment_id, window, frames, tail, salvage)
        }
    }
});
