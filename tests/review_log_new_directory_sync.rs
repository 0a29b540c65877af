//! Review finding (LOW): when `LogStore::open` creates the data directory, the new directory's
//! entry in its parent is never fsync'd, so a power loss soon after the first acknowledged
//! `Always` write can take the whole directory (and every acknowledged record in it) away.
//!
//! `LogStore::open_with_fs` (src/engine/log/mod.rs) calls `fs.create_dir_all(dir)` and then only
//! ever syncs `dir` itself (after creating segments, the watermark, unlinks). A directory is a
//! file too: its own directory entry is durable only after an fsync of its parent (see
//! fsync(2): "Calling fsync() does not necessarily ensure that the entry in the directory
//! containing the file has also reached disk. For that an explicit fsync() on a file
//! descriptor for the directory is also needed."). The fault-injecting file system treats
//! directories as always durable, so the crash tests cannot see it; this test records the
//! directory syncs instead.
//!
//! Fix: in `open_with_fs`, when `dir` (or any ancestor) did not exist, sync each newly created
//! directory's parent, from the top down, before the open returns (so before any write can be
//! acknowledged).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FileSystem, FsFile, FsLock};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

/// Records every directory sync.
#[derive(Debug, Clone, Default)]
struct RecordingFs {
    inner: FaultFileSystem,
    synced_dirs: Arc<Mutex<Vec<PathBuf>>>,
}

impl FileSystem for RecordingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        self.inner.open(path, create)
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
        self.synced_dirs.lock().unwrap().push(dir.to_path_buf());
        self.inner.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>> {
        self.inner.try_lock(path)
    }
}

#[test]
fn a_data_directory_created_by_open_is_durable_before_a_write_is_acknowledged() {
    let fs = RecordingFs::default();
    // "/srv" exists; "/srv/notifeed" is created by the open.
    fs.inner.create_dir_all(Path::new("/srv")).unwrap();
    let clock = ManualClock::at_epoch_2026();
    let dir = Path::new("/srv/notifeed");
    let store =
        LogStore::open_with_fs(dir, LogConfig::default(), Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    let f = FeedKey::new("user/app").unwrap();
    let expires = clock.now() + SignedDuration::from_mins(30);
    store.append(&f, NewNotification::visual("app.example", "a", "title").expiring_at(expires)).unwrap();
    let synced = fs.synced_dirs.lock().unwrap().clone();
    assert!(
        synced.iter().any(|d| d == Path::new("/srv")),
        "an acknowledged durable write lives in a directory whose own entry was never synced; synced: {synced:?}"
    );
}
