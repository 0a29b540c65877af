//! Review finding (LOW, fixed): the open allocates whatever size the `INDEX` file claims before any
//! check, so a damaged snapshot whose size is absurd aborts the process (allocation failure)
//! instead of being rejected and scanned around, as `LogConfig::index_snapshot` and FORMAT.md
//! promise ("never a source of truth: an open uses it only if it passes every check below, and
//! otherwise scans the segments as if it were absent").
//!
//! Scenario: a clean close writes `INDEX`; on the next open the file system reports the file
//! as 2^62 bytes long (a damaged inode, a bogus sparse extension). `snapshot::load` does
//! `vec![0; size]` with that size: the allocation fails and Rust aborts the process; this test
//! dies with SIGABRT ("memory allocation of ... bytes failed") instead of opening by a scan. On a
//! file system that overcommits, a merely large size (tens of GiB) is read in full before the
//! checksum runs. `Watermark::load` already caps its read (`.min(LEN + 1)`); the snapshot does
//! not, and recovery's per-segment reads are bounded by `max_segment_bytes`.
//!
//! Fix: read the 24-byte header first; reject the snapshot (as `Rejected`) unless the file size
//! equals `HEADER_LEN + body length`, and allocate with `try_reserve_exact` (rejecting on
//! failure), or checksum and decode the body in chunks; optionally cap the body length by what
//! the segments' total size can plausibly index.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forwarding_fs;

use std::io;
use std::path::Path;
use std::sync::Arc;

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FsFile};
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

/// The fault file system, except that `INDEX` claims to be 2^62 bytes long and cannot be read.
#[derive(Debug)]
struct HugeIndex;

#[derive(Debug)]
struct HugeFile(Arc<dyn FsFile>);

impl FsFile for HugeFile {
    fn read_exact_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::other("unreadable"))
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(1 << 62)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Hooks for HugeIndex {
    fn opened(&self, path: &Path, file: Arc<dyn FsFile>) -> io::Result<Arc<dyn FsFile>> {
        if path.file_name().is_some_and(|n| n == "INDEX") {
            return Ok(Arc::new(HugeFile(file)));
        }
        Ok(file)
    }
}

#[test]
fn a_snapshot_with_an_absurd_size_is_rejected_and_the_open_scans() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let dir = Path::new("/data");
    let store = LogStore::open_with_fs(
        dir,
        LogConfig { index_snapshot: true, ..LogConfig::default() },
        Arc::new(clock.clone()),
        Arc::new(fs.clone()),
    )
    .unwrap();
    let later = clock.now() + SignedDuration::from_hours(5);
    let n = store.append(&f, NewNotification::visual("h", "n", "t").expiring_at(later)).unwrap();
    store.close().unwrap();
    assert!(fs.read_all(&dir.join("INDEX")).is_some());

    let store = LogStore::open_with_fs(
        dir,
        LogConfig { index_snapshot: true, ..LogConfig::default() },
        Arc::new(clock.clone()),
        Arc::new(ForwardingFs::new(Arc::new(fs), Arc::new(HugeIndex))),
    )
    .unwrap();
    assert!(matches!(store.recovery_report().index_snapshot, IndexSnapshot::Rejected { .. }));
    assert_eq!(store.get(&f, n.id).unwrap().map(|got| got.id), Some(n.id));
}
