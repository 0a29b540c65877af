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
    // Offered on ext4 from Linux 5.17 (where `syncfs` is as safe as `fdatasync`), else not.
    let offered = StdFileSystem.volume_sync(dir.path()).unwrap().is_some();
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
    if offered {
        assert_eq!((volume, segment), (1, 0), "three files, one syncfs and no fdatasync");
    } else {
        assert_eq!((volume, segment), (0, 3), "no trusted syncfs here: one fdatasync per file");
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
fn durable_writers_in_several_windows_lose_nothing_acknowledged_to_a_power_loss_after_volume_syncs() {
    let fs = FaultFileSystem::new();
    let dir = Path::new("/data");
    let counts = Arc::new(CountVolume::default());
    let watched = Arc::new(ForwardingFs::new(Arc::new(fs.clone()), Arc::new(VolumeHooks(Arc::clone(&counts)))));
    let clock = ManualClock::at_epoch_2026();
    // `Always`, small segments (rolls too), 8 writers whose appends expire in 6 windows, so
    // batches span several files and take the volume path.
    let config = LogConfig { index_snapshot: false, max_segment_bytes: 8192, ..LogConfig::default() };
    let store = Arc::new(LogStore::open_with_fs(dir, config.clone(), Arc::new(clock.clone()), watched).unwrap());
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let (store, clock) = (Arc::clone(&store), clock.clone());
            std::thread::spawn(move || {
                let f = FeedKey::new(format!("user{t}/app")).unwrap();
                (0..60i64)
                    .map(|i| store.append(&f, in_hours(&clock, 1 + (t + i) % 6, &format!("{t}-{i}"))).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acknowledged: Vec<(i64, Vec<_>)> =
        threads.into_iter().enumerate().map(|(t, h)| (t as i64, h.join().unwrap())).collect();
    assert!(*counts.volume_syncs.lock() > 0, "no batch spanned several files: the test did not test the volume path");
    // The power fails while the store is open (no close syncs anything more).
    let after = fs.crash(None);
    drop(store);
    let store = LogStore::open_with_fs(dir, config, Arc::new(clock.clone()), Arc::new(after)).unwrap();
    for (t, written) in &acknowledged {
        let f = FeedKey::new(format!("user{t}/app")).unwrap();
        for n in written {
            assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n), "acknowledged, then lost");
        }
    }
}

#[test]
fn a_failed_volume_sync_poisons_and_a_power_loss_keeps_what_earlier_volume_syncs_made_durable() {
    let fs = FaultFileSystem::new();
    let dir = Path::new("/data");
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig {
        durability: Durability::Buffered,
        write_buffer_bytes: 0,
        index_snapshot: false,
        ..LogConfig::default()
    };
    let f = FeedKey::new("user/app").unwrap();
    let store = LogStore::open_with_fs(dir, config.clone(), Arc::new(clock.clone()), Arc::new(fs.clone())).unwrap();
    // Made durable by one volume sync over two windows' files.
    let durable =
        [store.append(&f, in_hours(&clock, 2, "a")).unwrap(), store.append(&f, in_hours(&clock, 7, "b")).unwrap()];
    store.sync().unwrap();
    // Then a volume sync over both files fails part-way: whatever it reached, the store poisons.
    let unsynced =
        [store.append(&f, in_hours(&clock, 2, "c")).unwrap(), store.append(&f, in_hours(&clock, 7, "d")).unwrap()];
    fs.set_plan(FaultPlan { fail_sync: Some(1), volume_sync_keeps: 0b1010_1010, ..FaultPlan::default() });
    assert!(matches!(store.sync(), Err(StoreError::Io { .. })), "the volume sync failed");
    assert_eq!(fs.counts().1, 1, "two dirty files were one sync");
    assert!(matches!(store.append(&f, in_hours(&clock, 2, "e")), Err(StoreError::Poisoned)));
    let after = fs.crash(None);
    drop(store);

    let store = LogStore::open_with_fs(dir, config, Arc::new(clock.clone()), Arc::new(after)).unwrap();
    for n in &durable {
        assert_eq!(store.get(&f, n.id).unwrap().as_ref(), Some(n), "made durable by the first volume sync");
    }
    for n in &unsynced {
        let found = store.get(&f, n.id).unwrap();
        assert!(found.is_none() || found.as_ref() == Some(n), "never durable for sure: absent or intact, {found:?}");
    }
}
