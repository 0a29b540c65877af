//! Review finding (MEDIUM, availability after power loss): when a power cut interrupts the
//! `fdatasync` of a multi-record write, the disk may hold a later page of that write but not an
//! earlier one; recovery calls the resulting hole "corruption" and the store refuses to open,
//! although every record involved is unacknowledged.
//!
//! A group commit (and a `Buffered` flush or `sync`) writes all of a batch's frames for a
//! segment with one `pwrite`. Until its `fdatasync` returns, the kernel may persist the pages of
//! that write in any order; POSIX and Linux file systems promise no prefix. Recovery
//! (src/engine/log/recovery.rs, the `is_last && next.is_none()` rule) treats a bad frame as a
//! torn tail only when no valid frame follows it in the segment, so a hole in the middle of an
//! unsynced batch, followed by a complete later frame of the same batch, is reported as
//! mid-segment corruption: the default open refuses until an operator opts into salvage (which
//! then keeps the later unsynced frames and drops the earlier ones, a state that never existed).
//! The fault-injecting file system only models prefix-shaped losses, so the existing crash
//! tests cannot see this; this test builds the page-shaped crash image by hand.
//!
//! Fixed in format version 2: every frame records its *unsynced distance*, how far before it
//! the segment's durable prefix ended when it was sealed (FORMAT.md). A bad region followed by
//! valid frames is a torn write when the newest of them shows the region lay beyond the
//! durable prefix (no sync completed after it was written, or the region would be whole); the
//! open truncates there and reports how many valid, never-synced records it cut. A bad region
//! inside the durable prefix stays corruption (second test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification, Notification, StoreError};

const PAGE: usize = 4096;

fn open(fs: &FaultFileSystem, clock: &ManualClock) -> Result<LogStore, StoreError> {
    // No preallocated zeros: the pages' arithmetic below counts on the file ending at its
    // records.
    let config = LogConfig { durability: Durability::Buffered, preallocate_bytes: Some(0), ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

/// What every test here starts from: one feed, notifications expiring in 30 minutes, and the
/// first segment's path.
struct Setup {
    fs: FaultFileSystem,
    clock: ManualClock,
    feed: FeedKey,
    segment: &'static Path,
}

impl Setup {
    fn new() -> Self {
        Setup {
            fs: FaultFileSystem::new(),
            clock: ManualClock::at_epoch_2026(),
            feed: FeedKey::new("user/app").unwrap(),
            segment: Path::new("/data/0000000001.seg"),
        }
    }

    fn expires(&self) -> jiff::Timestamp {
        self.clock.now() + SignedDuration::from_mins(30)
    }

    /// A notification of about 8 KB.
    fn big(&self, app: &str) -> NewNotification {
        NewNotification::raw("app.example", app, &"x".repeat(8000)).expiring_at(self.expires())
    }

    fn small(&self, app: &str) -> NewNotification {
        NewNotification::visual("app.example", app, "title").expiring_at(self.expires())
    }

    /// Appends and syncs one small notification, then two big ones gathered in the engine's
    /// buffer and written to the OS at once (by a read that needs them), never synced: the
    /// power fails before a sync would have made them durable. (A failed sync no longer leaves
    /// them in the files: the store cuts what no sync covered.) Returns the synced notification
    /// and the segment's bytes after the synced one.
    fn unsynced_batch(&self, store: &LogStore) -> (Notification, Vec<u8>) {
        let kept = store.append(&self.feed, self.small("synced")).unwrap();
        store.sync().unwrap();
        let durable = self.fs.read_all(self.segment).unwrap();
        store.append(&self.feed, self.big("unsynced-1")).unwrap();
        store.append(&self.feed, self.big("unsynced-2")).unwrap();
        assert!(store.get_by_app_id(&self.feed, "unsynced-2").unwrap().is_some(), "the read wrote the buffer");
        (kept, durable)
    }
}

#[test]
fn a_hole_inside_an_unsynced_batch_is_a_torn_tail_not_corruption() {
    let t = Setup::new();
    let (fs, clock, f, segment) = (&t.fs, &t.clock, &t.feed, t.segment);
    let store = open(fs, clock).unwrap();
    let (kept, durable) = t.unsynced_batch(&store);
    let durable_len = durable.len();
    let mut image = fs.read_all(segment).unwrap();
    // The power fails here, before the close would sync the batch.
    let crashed = fs.crash(None);
    drop(store);
    assert!(image.len() > durable_len + 2 * 8000);

    // The disk kept the whole write except one page inside the first unsynced record.
    let hole = durable_len.div_ceil(PAGE) * PAGE;
    let first_record_end = durable_len + (image.len() - durable_len) / 2;
    assert!(hole + PAGE <= first_record_end, "the missing page lies inside the first unsynced record");
    image[hole..hole + PAGE].fill(0);
    crashed.overwrite(segment, image);

    let store = match open(&crashed, clock) {
        Ok(store) => store,
        Err(e) => panic!("a power loss during an unacknowledged write made the store refuse to open: {e}"),
    };
    assert_eq!(store.get(f, kept.id).unwrap().as_ref(), Some(&kept));
    assert!(store.get_by_app_id(f, "unsynced-1").unwrap().is_none());
    assert!(store.get_by_app_id(f, "unsynced-2").unwrap().is_none(), "nothing after the hole is kept");
    let torn = &store.recovery_report().torn_tails;
    assert_eq!(torn.len(), 1);
    assert_eq!(torn[0].offset, durable_len as u64);
    assert_eq!(torn[0].valid_records_dropped, 1, "the second unsynced record was cut with the hole");
    drop(store);
    let again = open(&crashed, clock).unwrap();
    assert!(again.recovery_report().torn_tails.is_empty());
    assert_eq!(again.get(f, kept.id).unwrap().as_ref(), Some(&kept));
}

#[test]
fn a_hole_in_the_synced_prefix_is_still_corruption() {
    let t = Setup::new();
    let (fs, clock, f, segment) = (&t.fs, &t.clock, &t.feed, t.segment);
    let store = open(fs, clock).unwrap();
    store.append(f, t.big("synced-1")).unwrap();
    store.append(f, t.big("synced-2")).unwrap();
    store.sync().unwrap();
    let synced_len = fs.read_all(segment).unwrap().len();
    // A later write, sealed after the sync: it proves the region before it was durable.
    store.append(f, t.small("later")).unwrap();
    store.sync().unwrap();
    let mut image = fs.read_all(segment).unwrap();
    drop(store);

    let hole = PAGE * 2;
    assert!(hole + PAGE <= synced_len, "the damaged page lies in the synced prefix");
    image[hole..hole + PAGE].fill(0);
    let crashed = fs.crash(None);
    crashed.overwrite(segment, image);
    match open(&crashed, clock) {
        Err(StoreError::Corruption { location, .. }) => assert!(location.contains("0000000001.seg"), "{location}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(store) => panic!("damage to synced records opened as {:?}", store.recovery_report()),
    }
}

#[test]
fn a_hole_in_an_unsynced_write_over_preallocated_zeros_is_a_torn_tail() {
    let t = Setup::new();
    let (fs, clock, f, segment) = (&t.fs, &t.clock, &t.feed, t.segment);
    let config =
        LogConfig { durability: Durability::Buffered, preallocate_bytes: Some(64 << 10), ..LogConfig::default() };
    assert!(config.preallocate_bytes() >= 32 << 10, "the unsynced records must fit in the zeros written ahead");
    let open = |fs: &FaultFileSystem| {
        LogStore::open_with_fs(Path::new("/data"), config.clone(), Arc::new(clock.clone()), Arc::new(fs.clone()))
    };
    let store = open(fs).unwrap();
    let (kept, durable) = t.unsynced_batch(&store);
    let mut image = fs.read_all(segment).unwrap();
    // The power fails here, before the close would sync the batch.
    let crashed = fs.crash(None);
    drop(store);
    assert_eq!(image.len(), durable.len(), "the records went into zeros written ahead");

    // The records start where the image first differs from the synced bytes; the page holding
    // the first one's start still has the synced zeros, the rest of the write reached the disk.
    let start = image.iter().zip(&durable).position(|(a, b)| a != b).unwrap();
    let hole = start / PAGE * PAGE;
    assert!(hole + PAGE < start + 8000, "the missing page lies inside the first unsynced record");
    image[hole..hole + PAGE].copy_from_slice(&durable[hole..hole + PAGE]);
    crashed.overwrite(segment, image);

    let store = open(&crashed).unwrap_or_else(|e| panic!("the open refused: {e}"));
    assert_eq!(store.get(f, kept.id).unwrap().as_ref(), Some(&kept));
    assert!(store.get_by_app_id(f, "unsynced-1").unwrap().is_none());
    assert!(store.get_by_app_id(f, "unsynced-2").unwrap().is_none());
    let torn = &store.recovery_report().torn_tails;
    assert_eq!(torn.len(), 1, "{:?}", store.recovery_report());
    assert_eq!(torn[0].offset, start as u64);
    assert_eq!(torn[0].valid_records_dropped, 1);
}
