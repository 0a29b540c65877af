//! Scheduled checks and copies of a running log store: what the reference server runs in the
//! background besides its sweeps, and what an embedding server can run the same way.
//!
//! * [`verify_now`] reads every record back ([`LogStore::verify`]) and says what it found.
//! * [`backup_now`] copies the store ([`LogStore::backup`]) into a new directory of a backup
//!   folder, named for the instant (`notifeed-backup-20261202T061500.000Z`, to the millisecond), then removes the
//!   folder's older backups beyond the number kept. Only directories this module named are
//!   ever removed, and only after a new copy is complete.
//! * [`run_forever`] runs both on their intervals; the server spawns it.
//!
//! Both run beside writers and readers (sweeps wait for them). Both are blocking calls: an
//! async caller runs them on a blocking thread, as [`run_forever`] does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::SharedClock;
use crate::engine::log::{BACKUP_INCOMPLETE_FILE, BackupReport, LogStore, VerifyReport};
use crate::store::StoreError;

/// The name every scheduled backup directory starts with; the rest is its UTC instant.
pub const BACKUP_PREFIX: &str = "notifeed-backup-";

/// The instant in a backup directory's name: fixed width, so names sort as instants do.
const BACKUP_TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Where and how often to back up, and how many copies to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSchedule {
    /// The folder that holds the backups, one directory each. Created if missing.
    pub dir: PathBuf,
    /// How often to back up.
    pub every: Duration,
    /// How many complete backups to keep (at least 1): once a new one is complete, older ones
    /// beyond this count are removed.
    pub keep: usize,
}

/// What the server runs besides its sweeps.
#[derive(Clone)]
pub struct Maintenance {
    /// The store to check and copy.
    pub store: Arc<LogStore>,
    /// Names backups (and nothing else).
    pub clock: SharedClock,
    /// How often to run [`LogStore::verify`]; `None`: never.
    pub verify_every: Option<Duration>,
    /// Scheduled backups; `None`: none.
    pub backup: Option<BackupSchedule>,
}

/// Why a scheduled backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The backup folder could not be created or listed, or an old backup removed.
    #[error("backup folder {path}: {source}")]
    Folder {
        /// The folder or directory concerned.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A directory of that name exists already (two backups within one millisecond).
    #[error("backup directory {0} exists already")]
    Exists(PathBuf),
    /// The copy failed (see [`LogStore::backup`]); the directory keeps its
    /// `BACKUP_INCOMPLETE` marker, and the next complete backup removes it.
    #[error("backup into {path} failed: {source}")]
    Store {
        /// The backup directory.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
}

/// A complete scheduled backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupOutcome {
    /// The new backup's directory: open it with [`LogStore::open`] to restore.
    pub path: PathBuf,
    /// What was copied.
    pub report: BackupReport,
    /// Older backup directories removed: complete ones beyond [`BackupSchedule::keep`], and
    /// incomplete ones (earlier attempts cut short).
    pub removed: Vec<PathBuf>,
}

/// Runs [`LogStore::verify`] once.
///
/// # Errors
/// As [`LogStore::verify`]: [`StoreError::Corruption`] names the first bad record.
pub fn verify_now(store: &LogStore) -> Result<VerifyReport, StoreError> {
    store.verify()
}

/// Backs `store` up into a new directory of `schedule.dir` named for `now`, then removes the
/// backups that fall beyond `schedule.keep`. Removal only follows a complete copy, and only
/// touches directories named `notifeed-backup-<instant>` that are older than the new one; a
/// failed copy removes nothing.
///
/// # Errors
/// [`MaintenanceError::Exists`] when a backup of the same millisecond exists;
/// [`MaintenanceError::Store`] when the copy fails; [`MaintenanceError::Folder`] when the
/// folder cannot be created or listed, or an old backup removed (the new one is complete
/// then).
pub fn backup_now(
    store: &LogStore,
    schedule: &BackupSchedule,
    now: Timestamp,
) -> Result<BackupOutcome, MaintenanceError> {
    let folder = &schedule.dir;
    std::fs::create_dir_all(folder).map_err(|source| MaintenanceError::Folder { path: folder.clone(), source })?;
    let name = backup_name(now);
    let path = folder.join(&name);
    if path.exists() {
        return Err(MaintenanceError::Exists(path));
    }
    let report = store.backup(&path).map_err(|source| MaintenanceError::Store { path: path.clone(), source })?;
    let removed = prune(folder, &name, schedule.keep.max(1))?;
    Ok(BackupOutcome { path, report, removed })
}

/// The directory name of a backup taken at `at`.
pub fn backup_name(at: Timestamp) -> String {
    format!("{BACKUP_PREFIX}{}", at.strftime(BACKUP_TIME_FORMAT))
}

/// Whether `name` is one [`backup_name`] gives.
fn is_backup_name(name: &str) -> bool {
    name.strip_prefix(BACKUP_PREFIX).is_some_and(|instant| {
        jiff::fmt::strtime::parse(BACKUP_TIME_FORMAT, instant).is_ok_and(|t| t.to_datetime().is_ok())
    })
}

/// Removes, from `folder`, backups older than `newest` (a complete one, just made): complete
/// ones beyond the `keep` newest, and every incomplete one.
fn prune(folder: &Path, newest: &str, keep: usize) -> Result<Vec<PathBuf>, MaintenanceError> {
    let listing =
        std::fs::read_dir(folder).map_err(|source| MaintenanceError::Folder { path: folder.into(), source })?;
    let mut older = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| MaintenanceError::Folder { path: folder.into(), source })?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        // Names of one format sort as their instants do.
        if is_backup_name(&name) && name.as_str() < newest && entry.file_type().is_ok_and(|t| t.is_dir()) {
            older.push(name);
        }
    }
    older.sort_unstable_by(|a, b| b.cmp(a));
    let mut complete_kept = 1; // the new one
    let mut removed = Vec::new();
    for name in older {
        let path = folder.join(&name);
        let complete = !path.join(BACKUP_INCOMPLETE_FILE).exists();
        if complete && complete_kept < keep {
            complete_kept += 1;
            continue;
        }
        std::fs::remove_dir_all(&path).map_err(|source| MaintenanceError::Folder { path: path.clone(), source })?;
        removed.push(path);
    }
    Ok(removed)
}

/// Runs `maintenance`'s verifications and backups on their intervals, forever (until the task
/// is dropped), each on a blocking thread, logging one line per run on stderr. The first run
/// of each comes one interval after the start.
pub async fn run_forever(maintenance: Maintenance) {
    let verify = maintenance.verify_every.map(|every| {
        let store = Arc::clone(&maintenance.store);
        every_interval(every, move || match verify_now(&store) {
            Ok(r) => eprintln!(
                "notifeed: verify found {} records in {} segments ({} bytes) sound, {} notifications readable",
                r.records, r.segments, r.bytes, r.notifications
            ),
            Err(e) => eprintln!("notifeed: VERIFY FAILED: {e}"),
        })
    });
    let backup = maintenance.backup.clone().map(|schedule| {
        let store = Arc::clone(&maintenance.store);
        let clock = Arc::clone(&maintenance.clock);
        every_interval(schedule.every, move || match backup_now(&store, &schedule, clock.now()) {
            Ok(done) => eprintln!(
                "notifeed: backed up {} segments ({} bytes) into {}; removed {} older backups",
                done.report.segments,
                done.report.bytes,
                done.path.display(),
                done.removed.len()
            ),
            Err(e) => eprintln!("notifeed: BACKUP FAILED: {e}"),
        })
    });
    match (verify, backup) {
        (Some(v), Some(b)) => {
            tokio::join!(v, b);
        }
        (Some(v), None) => v.await,
        (None, Some(b)) => b.await,
        (None, None) => std::future::pending().await,
    }
}

/// Calls `job` on a blocking thread every `every`, one run at a time.
async fn every_interval(every: Duration, job: impl Fn() + Send + Sync + 'static) {
    let job = Arc::new(job);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let job = Arc::clone(&job);
        if let Err(e) = tokio::task::spawn_blocking(move || job()).await {
            eprintln!("notifeed: a maintenance task failed: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::LogConfig;
    use crate::{FeedKey, FeedStore, ListQuery, ManualClock, NewNotification};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn store(dir: &Path) -> LogStore {
        let clock = Arc::new(ManualClock::new(at("2026-12-02T06:00:00Z")));
        LogStore::open(dir, LogConfig::default(), clock).unwrap()
    }

    fn feed() -> FeedKey {
        FeedKey::new("user/app.example").unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn backup_names_sort_as_their_instants_and_are_recognised() {
        let earlier = backup_name(at("2026-12-02T06:15:00.5Z"));
        let later = backup_name(at("2026-12-02T06:15:01Z"));
        assert_eq!(earlier, "notifeed-backup-20261202T061500.500Z");
        assert_eq!(later, "notifeed-backup-20261202T061501.000Z");
        assert!(earlier < later);
        assert!(is_backup_name(&earlier) && is_backup_name(&later));
        for other in ["notifeed-backup-", "notifeed-backup-latest", "backup-20261202T061500.000Z", "log", ""] {
            assert!(!is_backup_name(other), "{other}");
        }
    }

    #[test]
    fn a_backup_opens_with_the_store_s_notifications_and_older_ones_beyond_keep_go() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 2 };
        let mut made = Vec::new();
        for (i, when) in ["2026-12-02T06:01:00Z", "2026-12-02T06:02:00Z", "2026-12-02T06:03:00Z"].iter().enumerate() {
            live.append(&feed(), NewNotification::raw("app.example", &format!("n{i}"), "data")).unwrap();
            let outcome = backup_now(&live, &schedule, at(when)).unwrap();
            assert_eq!(outcome.path, folder.join(backup_name(at(when))));
            made.push(outcome);
        }
        assert_eq!((made[0].removed.len(), made[1].removed.len()), (0, 0));
        assert_eq!(made[2].removed, vec![made[0].path.clone()]);
        assert_eq!(
            names(&folder),
            vec![backup_name(at("2026-12-02T06:02:00Z")), backup_name(at("2026-12-02T06:03:00Z"))]
        );
        // The newest copy holds the three appends; the one before it, two.
        for (outcome, held) in [(&made[1], 2), (&made[2], 3)] {
            let copy = store(&outcome.path);
            assert_eq!(copy.list(&feed(), &ListQuery::default()).unwrap().items.len(), held);
        }
    }

    #[test]
    fn pruning_removes_older_incomplete_copies_and_never_touches_other_names_or_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let old_incomplete = folder.join(backup_name(at("2026-12-01T00:00:00Z")));
        let newer = folder.join(backup_name(at("2026-12-03T00:00:00Z")));
        let foreign = folder.join("keep-me");
        let named_file = folder.join(backup_name(at("2026-11-01T00:00:00Z")));
        for d in [&old_incomplete, &newer, &foreign] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old_incomplete.join(BACKUP_INCOMPLETE_FILE), b"").unwrap();
        std::fs::write(&named_file, b"not a directory").unwrap();
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 5 };
        let outcome = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        assert_eq!(outcome.removed, vec![old_incomplete]);
        let mut expected = vec![
            outcome.path.file_name().unwrap().to_str().unwrap().to_owned(),
            backup_name(at("2026-11-01T00:00:00Z")),
            backup_name(at("2026-12-03T00:00:00Z")),
            "keep-me".to_owned(),
        ];
        expected.sort();
        assert_eq!(names(&folder), expected);
    }

    #[test]
    fn a_backup_that_cannot_start_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1 };
        let first = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        // The same instant: its directory exists, so nothing is copied or removed.
        let again = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z"));
        assert!(matches!(again, Err(MaintenanceError::Exists(ref p)) if *p == first.path), "{again:?}");
        // A folder that cannot be created (a file has its name).
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let blocked = BackupSchedule { dir: dir.path().join("file"), ..schedule };
        let failed = backup_now(&live, &blocked, at("2026-12-02T01:00:00Z"));
        assert!(matches!(failed, Err(MaintenanceError::Folder { .. })), "{failed:?}");
        assert_eq!(names(&folder), vec![backup_name(at("2026-12-02T00:00:00Z"))]);
    }
}
