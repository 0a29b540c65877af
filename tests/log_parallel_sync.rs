//! Group commit syncs every segment a batch touched, and syncs them at the same time: a batch
//! whose records went to several expiration windows waits for about one `fdatasync`, not one
//! per file (what made 16 durable writers only twice as fast as one). This file system counts
//! syncs and makes each one wait (up to a generous limit) until another is in flight, so the
//! test sees whether they overlapped without timing anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forwarding_fs;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FsFile, StdFileSystem};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, Durability, FeedKey, FeedStore, ManualClock, NewNotification};
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
fn a_batch_over_three_windows_syncs_each_segment_once_and_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let config = LogConfig {
        durability: Durability::Buffered,
        window: SignedDuration::from_hours(1),
        index_snapshot: false,
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
