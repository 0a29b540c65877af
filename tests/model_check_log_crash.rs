//! The model check on [`LogStore`] where every reopen is a power loss: random operations and
//! clock moves, each `Always` store ended by a crash of the fault-injecting file system instead
//! of a close, and every answer compared with the in-memory model. Each `Always` operation is
//! durable when it returns, so whatever the crash keeps, the reopened store must answer as the
//! model does.
//!
//! The crashes keep none or some bytes of each file's unsynced tail (the segments' records that
//! the commit journal covers until a checkpoint, above all), varying from one reopen to the
//! next. Between operations no name change is left unsynced (every file created or removed is
//! made durable in its directory before the call returns), and the test checks that too. Small
//! segments make files roll, and compaction runs on every sweep that finds a segment a quarter
//! dead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod model;
mod model_check;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{
    ChangeToken, Changes, Counts, FeedKey, FeedStore, ListQuery, NewNotification, Notification, NotificationId, Page,
    StateUpdate, StoreError, SweepStats,
};

thread_local! {
    /// Each run's machine (by its directory): what the last crash left.
    static MACHINES: RefCell<HashMap<PathBuf, FaultFileSystem>> = RefCell::new(HashMap::new());
    /// Crashes so far, which choose what the next one keeps.
    static CRASHES: RefCell<usize> = const { RefCell::new(0) };
    /// Each crash's name changes that no directory sync had made durable yet.
    static UNSYNCED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of each file's unsynced tail a crash keeps, in turn.
const TORN: [Option<usize>; 4] = [None, Some(1), Some(30), Some(5000)];

/// A log store that, when dropped, first records the power loss of its machine at that moment.
struct CrashedOnDrop {
    store: Option<LogStore>,
    fs: FaultFileSystem,
    dir: PathBuf,
}

impl CrashedOnDrop {
    fn store(&self) -> &LogStore {
        self.store.as_ref().expect("open until dropped")
    }
}

impl Drop for CrashedOnDrop {
    fn drop(&mut self) {
        let turn = CRASHES.with_borrow_mut(|n| {
            *n += 1;
            *n
        });
        UNSYNCED.with_borrow_mut(|u| u.push(self.fs.unsynced_name_changes()));
        let crashed = self.fs.crash(TORN[turn % TORN.len()]);
        MACHINES.with_borrow_mut(|m| m.insert(self.dir.clone(), crashed));
        // Its close runs on the machine that was lost; the next open sees the crashed one.
        self.store = None;
    }
}

fn open(env: &conformance::Env) -> Result<Box<dyn FeedStore>, StoreError> {
    let fs = MACHINES.with_borrow(|m| m.get(&env.dir).cloned()).unwrap_or_default();
    let config = LogConfig {
        options: env.options.clone(),
        max_segment_bytes: 2048,
        compaction_dead_fraction: 0.25,
        ..LogConfig::default()
    };
    let store = LogStore::open_with_fs(&env.dir, config, Arc::new(env.clock.clone()), Arc::new(fs.clone()))?;
    Ok(Box::new(CrashedOnDrop { store: Some(store), fs, dir: env.dir.clone() }))
}

#[test]
fn every_reopen_after_a_power_loss_agrees_with_the_model() {
    model_check::check_engine_against_model_with(open, 96, 60);
    let unsynced = UNSYNCED.take();
    assert!(unsynced.len() > 96, "every case reopens at least once: {}", unsynced.len());
    assert!(unsynced.iter().all(|&n| n == 0), "name changes left unsynced between operations: {unsynced:?}");
}

impl FeedStore for CrashedOnDrop {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        self.store().append(feed, new)
    }
    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        self.store().get(feed, id)
    }
    fn get_by_app_id(&self, feed: &FeedKey, app_id: &str) -> Result<Option<Notification>, StoreError> {
        self.store().get_by_app_id(feed, app_id)
    }
    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        self.store().list(feed, query)
    }
    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        self.store().count(feed)
    }
    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        self.store().update_state(feed, id, update)
    }
    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        self.store().delete(feed, id)
    }
    fn delete_by_app_id(&self, feed: &FeedKey, app_id: &str) -> Result<bool, StoreError> {
        self.store().delete_by_app_id(feed, app_id)
    }
    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        self.store().delete_group(feed, group)
    }
    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        self.store().changes(feed, since, limit)
    }
    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        self.store().sweep_expired()
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.store().sync()
    }
}
