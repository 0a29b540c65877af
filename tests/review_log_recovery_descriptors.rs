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

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FileSystem, FsFile, FsLock};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    peak: Mutex<usize>,
}

/// Counts the file handles alive at once.
#[derive(Debug, Clone, Default)]
struct CountingFs {
    inner: FaultFileSystem,
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct CountedFile {
    inner: Arc<dyn FsFile>,
    counts: Arc<Counts>,
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FsFile for CountedFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl FileSystem for CountingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let inner = self.inner.open(path, create)?;
        let now = self.counts.open.fetch_add(1, Ordering::SeqCst) + 1;
        let mut peak = self.counts.peak.lock().unwrap();
        *peak = (*peak).max(now);
        Ok(Arc::new(CountedFile { inner, counts: Arc::clone(&self.counts) }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>> {
        self.inner.try_lock(path)
    }
}

#[test]
fn reopening_a_store_with_many_windows_keeps_descriptors_bounded() {
    const WINDOWS: i64 = 200;
    const MAX_OPEN: usize = 8;
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let config =
        || LogConfig { window: SignedDuration::from_secs(1), max_open_files: MAX_OPEN, ..LogConfig::default() };
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
    let counting = CountingFs { inner: fs, counts: Arc::default() };
    let store =
        LogStore::open_with_fs(Path::new("/data"), config(), Arc::new(clock.clone()), Arc::new(counting.clone()))
            .unwrap();
    assert_eq!(store.count(&f).unwrap().total, WINDOWS as u64);
    let peak = *counting.counts.peak.lock().unwrap();
    assert!(
        peak <= MAX_OPEN + 2,
        "{peak} files open at once during recovery of {WINDOWS} segments (max_open_files {MAX_OPEN}, plus the lock \
         and the watermark)"
    );
}
