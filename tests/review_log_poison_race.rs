//! Review finding (HIGH): a writer queued behind a batch whose fsync fails is still written,
//! fsync'd again and acknowledged: the failed sync is retried and the store is poisoned too late.
//!
//! `LogStore::submit` (src/engine/log/mod.rs) checks the poison flag *before* queuing, and sets
//! it only *after* `GroupCommit::submit` has returned the batch failure to each writer. A writer
//! that queued while the failing batch was being written (it passed `check_poison` because the
//! flag was not set yet) becomes the leader of the next batch as soon as the failure is
//! published, and `write_batch` runs for it: it appends after the failed batch's bytes, and
//! `sync`s every segment still marked dirty, which is the very file whose `fdatasync` just
//! failed. On Linux a second `fdatasync` after a failed one reports success even though the
//! pages of the failed write may never reach the disk ("fsyncgate"), so the queued writer is
//! told its record is durable while the bytes before it in the same file may be garbage or a
//! hole after a power loss. Recovery then sees a bad frame followed by valid frames, which is
//! corruption: the open refuses, and the acknowledged record is reachable only with salvage.
//! With a failed or torn *write* instead of a sync, the next batch overwrites the torn frames
//! from the same offset and can leave complete stale frames of the failed batch after its own,
//! which makes the directory unopenable even without a crash.
//!
//! The test makes the race deterministic: the first `fdatasync` after arming blocks until a
//! second writer (another feed) is parked in the commit queue (its thread sleeps, as
//! `/proc/<tid>/stat` shows), then fails. The second writer must not be acknowledged, and no
//! `fdatasync` may reach the file system after the failed one.
//!
//! Fix: poison inside the leader, before the batch result is published, and refuse to run a
//! batch on a poisoned store. In `LogStore::submit`, wrap the execute closure:
//! `|requests| { if self.is_poisoned() { return Err(poisoned failure) } let r = write_batch(..);
//! if r.is_err() { self.poisoned.store(true, SeqCst) } r }`, so every writer of this and of
//! every later batch learns the failure and nothing touches the files again until reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod forwarding_fs;

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, mpsc};

use forwarding_fs::{ForwardingFs, Hooks};
use jiff::SignedDuration;
use notifeed::engine::log::fs::{FaultFileSystem, FsFile};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    trapped: bool,
    released: bool,
    failed: bool,
    syncs_after_failure: u64,
    /// Writes of anything but zeros after the failure.
    writes_after_failure: u64,
}

/// Blocks (then fails) the first `sync_data` after it is armed, and counts what reaches the
/// files after that failure.
#[derive(Debug, Default)]
struct Gate(Mutex<GateState>, Condvar);

impl Hooks for Gate {
    fn write_all_at(&self, _path: &Path, file: &dyn FsFile, buf: &[u8], offset: u64) -> io::Result<()> {
        {
            let mut s = self.0.lock().unwrap();
            // The failed sync's cut writes zeros over what no sync covered (a write of no
            // data): anything else would be a batch written after the failure.
            if s.failed && buf.iter().any(|&b| b != 0) {
                s.writes_after_failure += 1;
            }
        }
        file.write_all_at(buf, offset)
    }

    fn sync_data(&self, _path: &Path, file: &dyn FsFile) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        if s.armed && !s.trapped {
            s.trapped = true;
            self.1.notify_all();
            while !s.released {
                s = self.1.wait(s).unwrap();
            }
            s.failed = true;
            return Err(io::Error::other("injected: fdatasync failed (EIO)"));
        }
        if s.failed {
            s.syncs_after_failure += 1;
        }
        drop(s);
        file.sync_data()
    }
}

/// Whether the thread whose `/proc/thread-self` link is `task` is asleep (parked on a futex).
fn is_sleeping(task: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(task).join("stat")) else { return false };
    // "tid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
}

#[test]
fn a_writer_queued_behind_a_failed_fsync_is_not_acknowledged_and_the_sync_is_not_retried() {
    let gate = Arc::new(Gate::default());
    let fs = Arc::new(ForwardingFs::new(Arc::new(FaultFileSystem::new()), Arc::clone(&gate)));
    let clock = ManualClock::at_epoch_2026();
    let expires = clock.now() + SignedDuration::from_mins(30);
    let store = Arc::new(
        LogStore::open_with_fs(Path::new("/data"), LogConfig::default(), Arc::new(clock.clone()), fs).unwrap(),
    );
    let a = FeedKey::new("user-a/app").unwrap();
    let b = FeedKey::new("user-b/app").unwrap();
    let note = |app: &str| NewNotification::visual("app.example", app, "title").expiring_at(expires);
    // Both feeds' records go to the same window, whose segment now exists.
    store.append(&a, note("a0")).unwrap();
    store.append(&b, note("b0")).unwrap();

    gate.0.lock().unwrap().armed = true;
    let leader = {
        let store = Arc::clone(&store);
        let a = a.clone();
        let n = note("a1");
        std::thread::spawn(move || store.append(&a, n))
    };
    // Wait until the leader is inside the (to be failed) fdatasync of its batch.
    {
        let Gate(lock, cv) = &*gate;
        let mut s = lock.lock().unwrap();
        while !s.trapped {
            s = cv.wait(s).unwrap();
        }
    }
    assert!(!store.is_poisoned());
    let (tx, rx) = mpsc::channel();
    let follower = {
        let store = Arc::clone(&store);
        let b = b.clone();
        let n = note("b1");
        std::thread::spawn(move || {
            tx.send(std::fs::read_link("/proc/thread-self").unwrap()).unwrap();
            store.append(&b, n)
        })
    };
    let task = rx.recv().unwrap();
    // The follower passed the poison check (the flag is not set yet) and is parked in the commit
    // queue, waiting for the leader's batch to finish.
    while !is_sleeping(&task) {
        std::thread::yield_now();
    }
    {
        let Gate(lock, cv) = &*gate;
        lock.lock().unwrap().released = true;
        cv.notify_all();
    }
    let led = leader.join().unwrap();
    assert!(matches!(led, Err(StoreError::Io { .. })), "the failed batch's writer learns the failure: {led:?}");
    let queued = follower.join().unwrap();
    let s = gate.0.lock().unwrap();
    assert_eq!(
        (s.syncs_after_failure, s.writes_after_failure),
        (0, 0),
        "after a failed fdatasync no record may be written and nothing synced until reopen (queued writer got {queued:?})"
    );
    assert!(queued.is_err(), "a writer queued behind a failed fdatasync was acknowledged as durable: {queued:?}");
    assert!(store.is_poisoned());
}
