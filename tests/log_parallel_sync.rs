//! Group commit makes every segment a batch touched durable before it answers, with as few
//! waits on the disk as it can: a batch whose records went to several expiration windows is
//! synced with one `syncfs` (`LogConfig::volume_sync`, the default), or, without it, with one
//! `fdatasync` per file, all at the same time. For the second, this file system counts syncs
//! and makes each one wait (up to a generous limit) until another is in flight, so the test
//! sees whether they overlapped without timing anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forwarding_fs;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan, FileSystem, FsFile, StdFileSystem, VolumeSync};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};
use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct Syncs {
    /// Whether segment syncs wait for company (only around the batch under test).
    armed: bool,
    in_flight: usize,
    most_at_once: usize,
    per_file: HashMap<PathBuf, usize>,
}

#[derive(Debug, Default)]
struct Watch {
    syncs: Mutex<Syncs>,
    changed: Condvar,
}

impl Hooks for Watch {
    fn sync_data(&self, path: &Path, file: &dyn FsFile) -> io::Result<()> {
        let mut s = self.syncs.lock();
        s.in_flight += 1;
        s.most_at_once = s.most_at_once.max(s.in_flight);
        *s.per_file.entry(path.to_path_buf()).or_default() += 1;
        self.changed.notify_all();
        if s.armed && path.extension().is_some_and(|e| e == "seg") {
            // Wait for company until two syncs have overlapped once: a second sync in flight
            // proves they run at the same time. The limit only bounds a failing run.
            let _ =
                self.changed.wait_while_for(&mut s, |s| s.in_flight < 2 && s.most_at_once < 2, Duration::from_secs(10));
        }
        s.in_flight -= 1;
        drop(s);
        file.sync_data()
    }
}

#[test]
fn without_volume_sync_a_batch_over_three_windows_syncs_each_segment_once_and_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig {
        durability: Durability::Buffered,
        window: SignedDuration::from_hours(1),
        index_snapshot: false,
        volume_sync: false,
        ..LogConfig::default()
    };
    let f = FeedKey::new("user/app").unwrap();
    let watch = Arc::new(Watch::default());
    let fs = Arc::new(ForwardingFs::new(Arc::new(StdFileSystem), Arc::clone(&watch)));
    let store = LogStore::open_with_fs(dir.path(), config.clone(), Arc::new(clock.clone()), fs).unwrap();
    let mut written = Vec::new();
    for hours in [2, 5, 9] {
        let expires = clock.now() + SignedDuration::from_hours(hours);
        written.push(
            store
                .append(&f, NewNotification::visual("app.example", &format!("in {hours} h"), "t").expiring_at(expires))
                .unwrap(),
        );
    }
    // Segment creation synced each new file once (header); the batch's sync is what follows.
    let before: HashMap<PathBuf, usize> = watch.syncs.lock().per_file.clone();
    *watch.syncs.lock() = Syncs { armed: true, ..Syncs::default() };
    store.sync().unwrap();
    let s = watch.syncs.lock();
    let segments: Vec<_> = s.per_file.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "seg")).collect();
    assert_eq!(segments.len(), 3, "one sync per touched segment: {:?} (before: {before:?})", s.per_file);
    assert!(segments.iter().all(|(_, n)| **n == 1), "{:?}", s.per_file);
    assert!(s.most_at_once >= 2, "the segments' syncs never overlapped");
    drop(s);
    drop(store);

    let store = LogStore::open(dir.path(), config, Arc::new(clock.clone())).unwrap();
    for n in &written {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
}

/// Counts `sync_volume` calls and segment `sync_data` calls, forwarding both.
#[derive(Debug, Default)]
struct CountVolume {
    volume_syncs: Mutex<usize>,
    segment_syncs: Mutex<usize>,
}

#[derive(Debug)]
struct CountedVolume {
    inner: Arc<dyn VolumeSync>,
    hooks: Arc<CountVolume>,
}

impl VolumeSync for CountedVolume {
    fn sync_volume(&self) -> io::Result<()> {
        *self.hooks.volume_syncs.lock() += 1;
        self.inner.sync_volume()
    }
}

#[derive(Debug)]
struct VolumeHooks(Arc<CountVolume>);

impl Hooks for VolumeHooks {
    fn sync_data(&self, path: &Path, file: &dyn FsFile) -> io::Result<()> {
        if path.extension().is_some_and(|e| e == "seg") {
            *self.0.segment_syncs.lock() += 1;
        }
        file.sync_data()
    }

    fn volume_sync(&self, dir: &Path, fs: &dyn FileSystem) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        let inner = fs.volume_sync(dir)?;
        Ok(inner.map(|inner| Arc::new(CountedVolume { inner, hooks: Arc::clone(&self.0) }) as Arc<dyn VolumeSync>))
    }
}

fn in_hours(clock: &ManualClock, hours: i64, text: &str) -> NewNotification {
    NewNotification::visual("app.example", text, "t").expiring_at(clock.now() + SignedDuration::from_hours(hours))
}

#[test]
fn with_volume_sync_a_batch_over_three_windows_is_one_syncfs_and_a_batch_in_one_window_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { durability: Durability::Buffered, index_snapshot: false, ..LogConfig::default() };
    assert!(config.volume_sync, "on by default");
    let f = FeedKey::new("user/app").unwrap();
    let counts = Arc::new(CountVolume::default());
    let fs = Arc::new(ForwardingFs::new(Arc::new(StdFileSystem), Arc::new(VolumeHooks(Arc::clone(&counts)))));
    let store = LogStore::open_with_fs(dir.path(), config.clone(), Arc::new(clock.clone()), fs).unwrap();
    let mut written = Vec::new();
    for hours in [2, 5, 9] {
        written.push(store.append(&f, in_hours(&clock, hours, &format!("in {hours} h"))).unwrap());
    }
    let segment_syncs_before = *counts.segment_syncs.lock();
    store.sync().unwrap();
    let (volume, segment) = (*counts.volume_syncs.lock(), *counts.segment_syncs.lock() - segment_syncs_before);
    if cfg!(target_os = "linux") {
        assert_eq!((volume, segment), (1, 0), "three files, one syncfs and no fdatasync");
    } else {
        assert_eq!((volume, segment), (0, 3), "no syncfs here: one fdatasync per file");
    }
    // A batch that wrote to one file syncs that file.
    written.push(store.append(&f, in_hours(&clock, 2, "again in 2 h")).unwrap());
    store.sync().unwrap();
    assert_eq!(*counts.volume_syncs.lock(), volume, "one file: no syncfs");
    assert_eq!(*counts.segment_syncs.lock() - segment_syncs_before, segment + 1, "one file: its fdatasync");
    drop(store);

    let store = LogStore::open(dir.path(), config, Arc::new(clock.clone())).unwrap();
    for n in &written {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n));
    }
}

#[test]
fn a_failed_volume_sync_poisons_and_a_crash_keeps_exactly_the_acknowledged_appends() {
    let fs = FaultFileSystem::new();
    let dir = Path::new("/data");
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig { index_snapshot: false, ..LogConfig::default() };
    let f = FeedKey::new("user/app").unwrap();
    let store = LogStore::open_with_fs(dir, config.clone(), Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    // Durable (`Always`) appends to two windows, acknowledged one by one (each synced its file).
    let acknowledged =
        vec![store.append(&f, in_hours(&clock, 2, "a")).unwrap(), store.append(&f, in_hours(&clock, 7, "b")).unwrap()];
    // A `Buffered`-style batch over two windows needs the store's `sync`: reopen buffered.
    drop(store);
    let buffered = LogConfig { durability: Durability::Buffered, write_buffer_bytes: 0, ..config.clone() };
    let store = LogStore::open_with_fs(dir, buffered, Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    let lost =
        [store.append(&f, in_hours(&clock, 2, "c")).unwrap(), store.append(&f, in_hours(&clock, 7, "d")).unwrap()];
    fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
    assert!(matches!(store.sync(), Err(StoreError::Io { .. })), "the volume sync failed");
    assert_eq!(fs.counts().1, 1, "two dirty files were one sync");
    assert!(matches!(store.append(&f, in_hours(&clock, 2, "e")), Err(StoreError::Poisoned)));
    drop(store);

    let after = fs.crash(None);
    let store = LogStore::open_with_fs(dir, config, Arc::new(clock.clone()), Arc::new(after)).unwrap();
    for n in &acknowledged {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n), "acknowledged and synced");
    }
    for n in &lost {
        assert_eq!(store.get(&f, n.id).unwrap(), None, "never made durable");
    }
}
