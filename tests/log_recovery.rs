//! Recovery on the real file system, through the public API only:
//! * torn tail: the last segment cut at every offset inside its last records opens, keeps
//!   exactly a prefix of the appends, and accepts writes again;
//! * bit flip: a byte flipped anywhere in a sealed segment makes the open refuse with the
//!   segment, and a flip in the last segment never yields altered data;
//! * no resurrection: deleted, replaced, group-deleted and evicted notifications stay gone
//!   after their windows are swept and the store reopens;
//! * injected faults: a failed write or sync poisons the store, and after a simulated crash the
//!   state is exactly the acknowledged operations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use notifeed::engine::log::fs::{FaultFileSystem, FaultPlan};
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{
    Clock, FeedKey, FeedStore, ListQuery, ManualClock, NewNotification, Notification, StoreError, StoreOptions,
};

fn feed(name: &str) -> FeedKey {
    FeedKey::new(name).unwrap()
}

fn hours(h: i64) -> Timestamp {
    ManualClock::at_epoch_2026().now() + SignedDuration::from_mins(h * 60)
}

fn note(app: &str, expires: Timestamp) -> NewNotification {
    NewNotification::raw("app.example", app, &format!("content of {app}")).expiring_at(expires)
}

fn open(dir: &Path, clock: &ManualClock, config: LogConfig) -> Result<LogStore, StoreError> {
    LogStore::open(dir, config, Arc::new(clock.clone()))
}

fn all(store: &LogStore, f: &FeedKey) -> Vec<Notification> {
    store.list(f, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap().items
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn torn_tail_keeps_exactly_a_prefix_at_every_offset() {
    let original = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let written: Vec<Notification> = {
        let store = open(original.path(), &clock, LogConfig::default()).unwrap();
        (0..8).map(|i| store.append(&f, note(&format!("a{i}"), hours(5))).unwrap()).collect()
    };
    let last = segments(original.path()).pop().unwrap();
    let full = std::fs::read(&last).unwrap();
    let record = full.len() / 9;
    let mut previous_kept = 0;
    for cut in (full.len() - 3 * record)..=full.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let path = dir.path().join(last.file_name().unwrap());
        std::fs::write(&path, &full[..cut]).unwrap();
        // A tail torn by a power loss, before the clean close that made it whole listed the
        // segment's synced length (below which nothing may be torn).
        std::fs::remove_file(dir.path().join("SYNCED")).unwrap();
        let store = open(dir.path(), &clock, LogConfig::default()).unwrap();
        let mut present = all(&store, &f);
        present.reverse();
        let kept = present.len();
        assert_eq!(present, written[..kept], "cut at {cut}: not a prefix");
        assert!(kept >= previous_kept, "cut at {cut}: a longer file kept less");
        assert!(kept >= 5, "cut at {cut}: only the last three records may go");
        previous_kept = kept;
        store.append(&f, note("after", hours(5))).unwrap();
        drop(store);
        let again = open(dir.path(), &clock, LogConfig::default()).unwrap();
        assert_eq!(all(&again, &f).len(), kept + 1, "cut at {cut}");
    }
    assert_eq!(previous_kept, 8);
}

#[test]
fn bit_flips_are_refused_or_never_returned() {
    let original = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let f = feed("u/app");
    let config = || LogConfig { max_segment_bytes: 4096, ..LogConfig::default() };
    let written: Vec<Notification> = {
        let store = open(original.path(), &clock, config()).unwrap();
        (0..80).map(|i| store.append(&f, note(&format!("a{i}"), hours(5))).unwrap()).collect()
    };
    let files = segments(original.path());
    assert!(files.len() >= 2, "small segments roll");
    for (file_no, path) in files.iter().enumerate() {
        let sealed = file_no + 1 < files.len();
        let bytes = std::fs::read(path).unwrap();
        for i in (0..bytes.len()).step_by(7) {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            let mut bad = bytes.clone();
            bad[i] ^= 0x41;
            std::fs::write(dir.path().join(path.file_name().unwrap()), &bad).unwrap();
            match open(dir.path(), &clock, config()) {
                Err(StoreError::Corruption { location, .. }) => {
                    assert!(location.contains(path.file_name().unwrap().to_str().unwrap()), "{location}");
                }
                Err(other) => panic!("flip at {i}: {other}"),
                Ok(store) => {
                    assert!(!sealed, "a flip at {i} of sealed {path:?} went unnoticed");
                    for n in all(&store, &f) {
                        assert!(written.contains(&n), "flip at {i} returned altered data");
                    }
                }
            }
        }
    }
}

#[test]
fn removed_notifications_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_epoch_2026();
    let options = StoreOptions { feed_capacity: 2, ..StoreOptions::default() };
    let config = || LogConfig { options: options.clone(), ..LogConfig::default() };
    let (deleted, grouped, capped) = (feed("u/deleted"), feed("u/grouped"), feed("u/capped"));
    {
        let store = open(dir.path(), &clock, config()).unwrap();
        let d = store.append(&deleted, note("d", hours(6))).unwrap();
        store.delete(&deleted, d.id).unwrap();
        store.append(&deleted, note("r", hours(6))).unwrap();
        store.append(&deleted, note("r", hours(1))).unwrap();
        store.append(&grouped, note("g1", hours(1)).with_group("g")).unwrap();
        store.append(&grouped, note("g2", hours(6)).with_group("g")).unwrap();
        store.delete_group(&grouped, "g").unwrap();
        store.append(&capped, note("c1", hours(6))).unwrap();
        store.append(&capped, note("c2", hours(6))).unwrap();
        store.append(&capped, note("c3", hours(1))).unwrap();
    }
    for h in [2, 7] {
        clock.set(hours(h));
        open(dir.path(), &clock, config()).unwrap().sweep_expired().unwrap();
        let store = open(dir.path(), &clock, config()).unwrap();
        assert!(all(&store, &deleted).is_empty(), "at {h} h");
        assert!(all(&store, &grouped).is_empty(), "at {h} h");
        let capped_apps: Vec<String> =
            all(&store, &capped).into_iter().map(|n| n.app_notification_id().to_owned()).collect();
        assert_eq!(capped_apps, if h < 6 { vec!["c2"] } else { vec![] as Vec<&str> }, "at {h} h");
    }
}

#[test]
fn injected_faults_poison_and_a_crash_keeps_exactly_the_acknowledged() {
    let plans = [
        FaultPlan { fail_write: Some(1), ..FaultPlan::default() },
        FaultPlan { tear_write: Some(1), ..FaultPlan::default() },
        FaultPlan { fail_sync: Some(1), ..FaultPlan::default() },
        FaultPlan { fail_write: Some(3), ..FaultPlan::default() },
    ];
    for plan in plans {
        let fs = FaultFileSystem::new();
        let clock = ManualClock::at_epoch_2026();
        let f = feed("u/app");
        let store = LogStore::open_with_fs(
            Path::new("/data"),
            LogConfig::default(),
            Arc::new(clock.clone()),
            Arc::new(fs.clone()),
        )
        .unwrap();
        let mut acked = Vec::new();
        fs.set_plan(plan.clone());
        assert!(store.check_health().is_ok());
        let mut failed = false;
        for i in 0..6 {
            match store.append(&f, note(&format!("a{i}"), hours(5 + i))) {
                Ok(n) => {
                    assert!(!failed, "{plan:?}: a write succeeded after a failure");
                    acked.push(n);
                }
                Err(StoreError::Io { .. }) if !failed => failed = true,
                Err(StoreError::Poisoned) if failed => {}
                Err(other) => panic!("{plan:?}: {other}"),
            }
        }
        assert!(failed, "{plan:?}: the fault never fired");
        assert!(matches!(store.check_health(), Err(StoreError::Poisoned)), "{plan:?}");
        drop(store);
        let crashed = fs.crash(Some(9));
        let store =
            LogStore::open_with_fs(Path::new("/data"), LogConfig::default(), Arc::new(clock), Arc::new(crashed))
                .unwrap();
        assert!(store.check_health().is_ok(), "{plan:?}: reopening recovers");
        let mut present = all(&store, &f);
        present.reverse();
        assert_eq!(present, acked, "{plan:?}");
    }
}
