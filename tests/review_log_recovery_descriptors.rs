//! Review finding (MEDIUM): recovery opens every segment file at once, so a store with more
//! segments than the process's descriptor limit (`ulimit -n`, often 1024) can no longer be
//! opened ("Too many open files").
//!
//! The issue requires open descriptors to stay bounded (an LRU, `LogConfig::max_open_files`)
//! "whatever the number of windows", and the running store honours it. But `recovery::recover`
//! (src/engine/log/recovery.rs) first opens each segment and keeps its handle in `headers`
//! (`headers.push((id, window, path, file, len))`), and only then scans them one by one. The
//! peak is one descriptor per segment. With 30-day expirations and the default 1-hour window
//! there are up to 720 windows before any roll; a shorter window or a large store (64 MiB
//! segments) passes 1024 easily, and the store then fails to reopen after a restart, which is
//! the worst time to find out.
//!
//! Fix: keep only `(id, window, path, len)` from the header pass and drop the handle (or read
//! the header and scan in one pass per file, keeping at most one file open), reopening each
//! file for its scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forwarding_fs;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FsFile};
use notifeed::engine::log::{IndexSnapshot, LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

/// Counts the file handles alive at once.
#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    peak: Mutex<usize>,
}

impl Hooks for Counts {
    fn opened(&self, _path: &Path, file: Arc<dyn FsFile>) -> io::Result<Arc<dyn FsFile>> {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        let mut peak = self.peak.lock().unwrap();
        *peak = (*peak).max(now);
        Ok(file)
    }

    fn closed(&self, _path: &Path) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn reopening_a_store_with_many_windows_keeps_descriptors_bounded() {
    // Both ways an open can rebuild the index: a scan of every record, and the index snapshot
    // a clean close wrote (which checksums every segment).
    for index_snapshot in [false, true] {
        reopen_keeps_descriptors_bounded(index_snapshot);
    }
}

fn reopen_keeps_descriptors_bounded(index_snapshot: bool) {
    const WINDOWS: i64 = 200;
    const MAX_OPEN: usize = 8;
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config = || LogConfig {
        window: SignedDuration::from_secs(1),
        max_open_files: MAX_OPEN,
        index_snapshot,
        ..LogConfig::default()
    };
    let f = FeedKey::new("user/app").unwrap();
    {
        let store = LogStore::open_with_fs(Path::new("/data"), config(), Arc::new(clock.clone()), Arc::new(fs.clone()))
            .unwrap();
        for s in 0..WINDOWS {
            let expires = clock.now() + SignedDuration::from_secs(60 + s);
            store.append(&f, NewNotification::visual("h", &format!("n{s}"), "t").expiring_at(expires)).unwrap();
        }
        assert!(store.open_descriptors() <= MAX_OPEN);
    }
    let counts = Arc::new(Counts::default());
    let counting = Arc::new(ForwardingFs::new(Arc::new(fs), Arc::clone(&counts)));
    let store = LogStore::open_with_fs(Path::new("/data"), config(), Arc::new(clock.clone()), counting).unwrap();
    assert_eq!(store.recovery_report().index_snapshot == IndexSnapshot::Loaded, index_snapshot);
    assert_eq!(store.count(&f).unwrap().total, WINDOWS as u64);
    let peak = *counts.peak.lock().unwrap();
    assert!(
        peak <= MAX_OPEN + 2,
        "{peak} files open at once during recovery of {WINDOWS} segments (max_open_files {MAX_OPEN}, plus the lock \
         and the watermark; snapshot {index_snapshot})"
    );
}
