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

mod forwarding_fs;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FileSystem};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};

/// Records every directory sync.
#[derive(Debug, Default)]
struct RecordingDirSyncs {
    synced_dirs: Mutex<Vec<PathBuf>>,
}

impl Hooks for RecordingDirSyncs {
    fn sync_dir(&self, dir: &Path, fs: &dyn FileSystem) -> io::Result<()> {
        self.synced_dirs.lock().unwrap().push(dir.to_path_buf());
        fs.sync_dir(dir)
    }
}

#[test]
fn a_data_directory_created_by_open_is_durable_before_a_write_is_acknowledged() {
    let fault = FaultFileSystem::new();
    let recording = Arc::new(RecordingDirSyncs::default());
    let fs = Arc::new(ForwardingFs::new(Arc::new(fault.clone()), Arc::clone(&recording)));
    // "/srv" exists; "/srv/notifeed" is created by the open.
    fault.create_dir_all(Path::new("/srv")).unwrap();
    let clock = ManualClock::at_epoch_2026();
    let dir = Path::new("/srv/notifeed");
    let store = LogStore::open_with_fs(dir, LogConfig::default(), Arc::new(clock.clone()), fs).unwrap();
    let f = FeedKey::new("user/app").unwrap();
    let expires = clock.now() + SignedDuration::from_mins(30);
    store.append(&f, NewNotification::visual("app.example", "a", "title").expiring_at(expires)).unwrap();
    let synced = recording.synced_dirs.lock().unwrap().clone();
    assert!(
        synced.iter().any(|d| d == Path::new("/srv")),
        "an acknowledged durable write lives in a directory whose own entry was never synced; synced: {synced:?}"
    );
}
