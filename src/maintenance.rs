//! Scheduled checks and copies of a running log store: what the reference server runs in the
//! background besides its sweeps, and what an embedding server can run the same way.
//!
//! * [`LogStore::verify`] reads every record back; [`run_until`] logs what it found.
//! * [`backup_now`] copies the store ([`LogStore::backup`]) into a new directory of a backup
//!   folder, named for the instant to the millisecond (`notifeed-backup-20261202T061500.000Z`),
//!   then removes the folder's older backups beyond the number kept. Only directories this
//!   module names are ever removed, only after a new copy is complete, and only once their
//!   lock is held.
//! * [`run_until`] runs both on their intervals, and each whenever it is asked
//!   ([`Maintenance::verify_requests`], [`Maintenance::backup_requests`]), until told to stop;
//!   the server spawns it.
//!
//! Both run beside writers and readers (sweeps wait for them). Both are blocking calls: an
//! async caller runs them on a blocking thread, as [`run_until`] does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::SharedClock;
use crate::engine::log::{BackupDirectory, BackupReport, LogStore};
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
    /// Once the folder holds `keep` complete backups (`keep` at least 2), refresh the oldest
    /// ([`LogStore::refresh_backup`], which writes only what the store wrote since it) and
    /// rename it for this backup's instant, instead of copying the store whole into a new
    /// directory and removing the oldest. The other copies stay usable meanwhile.
    pub refresh: bool,
}

/// What the server runs besides its sweeps.
#[derive(Clone)]
pub struct Maintenance {
    /// The store to check and copy.
    pub store: Arc<LogStore>,
    /// Names backups (and nothing else).
    pub clock: SharedClock,
    /// How often to run [`LogStore::verify`]; `None`: only when asked
    /// ([`Maintenance::verify_requests`]).
    pub verify_every: Option<Duration>,
    /// Asks for a verification now, between the scheduled ones or without a schedule
    /// (`notify_one`; the reference server does on `SIGUSR2`). A request made while one runs
    /// starts one more after it.
    pub verify_requests: Arc<tokio::sync::Notify>,
    /// Scheduled backups; `None`: none.
    pub backup: Option<BackupSchedule>,
    /// Asks for a backup now, between the scheduled ones (`notify_one`; the reference server
    /// does on `SIGUSR1`). Ignored without [`Maintenance::backup`].
    pub backup_requests: Arc<tokio::sync::Notify>,
}

/// Why a scheduled backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The backup folder could not be created, synced or listed.
    #[error("backup folder {path}: {source}")]
    Folder {
        /// The folder or directory concerned.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The folder holds the store's directory, or lies inside it.
    #[error("backup folder {folder} and the store's directory {store} overlap")]
    Overlap {
        /// The folder, as configured.
        folder: PathBuf,
        /// The store's directory.
        store: PathBuf,
    },
    /// A directory of that name exists already (two backups within one millisecond).
    #[error("backup directory {0} exists already")]
    Exists(PathBuf),
    /// The copy failed (see [`LogStore::backup`]). Its directory was removed, unless
    /// `removed` is false: then it keeps its `BACKUP_INCOMPLETE` marker (no open accepts it)
    /// or holds at most its lock file ([`BackupDirectory::discard`]), and the next complete
    /// backup removes it.
    #[error("backup into {path} failed: {source}")]
    Store {
        /// The backup directory.
        path: PathBuf,
        /// What failed.
        source: StoreError,
        /// Whether the partial copy was removed.
        removed: bool,
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
    /// Older backup directories that were to go but could not be removed, with why; the next
    /// backup tries again.
    pub not_removed: Vec<(PathBuf, String)>,
}

/// Backs `store` up into a new directory of `schedule.dir` named for `now`, then removes the
/// backups that fall beyond `schedule.keep`. With `schedule.refresh`, once the folder holds
/// `keep` complete backups (`keep` at least 2), the oldest is refreshed instead
/// ([`LogStore::refresh_backup`]; it keeps its marker meanwhile, and one that fails is removed)
/// and then renamed for `now` (the folder synced), so that nothing is left to prune but copies
/// cut short.
///
/// * The folder must not hold the store's directory, nor lie inside it (checked on each call,
///   with symbolic links resolved).
/// * The folder is created if missing, durably (as a data directory is). The new directory is
///   created here (so its name is this call's alone) and made durable in the folder;
///   [`LogStore::backup`] then fills it. A copy that fails is removed, as pruning removes.
/// * Removal follows a complete copy only. It looks at directories named
///   `notifeed-backup-<instant>` older than the new one, never at symbolic links or other
///   names, and takes each one's lock first ([`BackupDirectory::claim`]): a directory a backup
///   is still copying into, or a store has open, or one that cannot be looked at, is left
///   alone and not counted. Of the rest, the complete ones beyond `keep` (the new one
///   included) go, and so do incomplete ones (copies an error or a crash cut short). Each is
///   marked incomplete, durably, before its files go ([`BackupDirectory::discard`]).
///
/// One server per folder: two stores backing up into one folder would count, and remove,
/// each other's backups.
///
/// # Errors
/// [`MaintenanceError::Overlap`] when the folder and the store's directory overlap;
/// [`MaintenanceError::Exists`] when a backup of the same millisecond exists;
/// [`MaintenanceError::Store`] when the copy fails; [`MaintenanceError::Folder`] when the
/// folder cannot be created durably, synced or listed. An old backup that cannot be removed
/// is not an error: it is listed in [`BackupOutcome::not_removed`].
pub fn backup_now(
    store: &LogStore,
    schedule: &BackupSchedule,
    now: Timestamp,
) -> Result<BackupOutcome, MaintenanceError> {
    let folder = &schedule.dir;
    let folder_error = |source| MaintenanceError::Folder { path: folder.clone(), source };
    if overlapping(store.dir(), folder).map_err(folder_error)? {
        return Err(MaintenanceError::Overlap { folder: folder.clone(), store: store.dir().to_path_buf() });
    }
    BackupDirectory::create_folder(folder).map_err(|e| folder_error(std::io::Error::other(e)))?;
    let name = backup_name(now);
    let path = folder.join(&name);
    let oldest =
        if schedule.refresh && schedule.keep >= 2 { oldest_to_refresh(folder, &name, schedule.keep)? } else { None };
    if let Some(oldest) = oldest {
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(MaintenanceError::Exists(path));
        }
        let report = removed_on_failure(&oldest, store.refresh_backup(&oldest))?;
        // Named for this instant only once it holds it: a crash before the rename leaves a
        // whole copy under its older name, which pruning takes for older than it is, never for
        // newer.
        std::fs::rename(&oldest, &path).map_err(|source| MaintenanceError::Folder { path: path.clone(), source })?;
        std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(folder_error)?;
        let (removed, not_removed) = prune(folder, &name, schedule.keep)?;
        return Ok(BackupOutcome { path, report, removed, not_removed });
    }
    match std::fs::create_dir(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(MaintenanceError::Exists(path)),
        Err(source) => return Err(MaintenanceError::Folder { path, source }),
    }
    // The backup makes its files and its directory durable; the directory's entry in the
    // folder is this call's to sync.
    std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(folder_error)?;
    let report = removed_on_failure(&path, store.backup(&path))?;
    let (removed, not_removed) = prune(folder, &name, schedule.keep.max(1))?;
    Ok(BackupOutcome { path, report, removed, not_removed })
}

/// `copied`, the outcome of a copy into `path`; when it failed, `path` is removed first (the
/// directory is this call's: created for it, or the oldest copy taken for a refresh; a holder
/// of its lock is not, and is left alone).
fn removed_on_failure(path: &Path, copied: Result<BackupReport, StoreError>) -> Result<BackupReport, MaintenanceError> {
    copied.map_err(|source| {
        let removed = match BackupDirectory::claim(path) {
            Ok(Some(ours)) => ours.discard().is_ok(),
            _ => false,
        };
        MaintenanceError::Store { path: path.to_path_buf(), source, removed }
    })
}

/// Whether `a` and `b` lie one inside the other (or are one directory), with symbolic links
/// and `..` resolved. Either may not exist yet: its longest existing ancestor is resolved and
/// the rest appended as written.
///
/// # Errors
/// When a path cannot be made absolute or resolved, or has a `..` past a missing directory.
pub fn overlapping(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (a, b) = (resolved(a)?, resolved(b)?);
    Ok(a.starts_with(&b) || b.starts_with(&a))
}

fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    for existing in absolute.ancestors() {
        if let Ok(real) = existing.canonicalize() {
            let rest = absolute.strip_prefix(existing).map_err(std::io::Error::other)?;
            if rest.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(std::io::Error::other("'..' past a directory that does not exist"));
            }
            return Ok(real.join(rest));
        }
    }
    Err(std::io::Error::other("no ancestor of the path exists"))
}

/// The directory name of a backup taken at `at`.
pub fn backup_name(at: Timestamp) -> String {
    format!("{BACKUP_PREFIX}{}", at.strftime(BACKUP_TIME_FORMAT))
}

/// Whether `name` is exactly one [`backup_name`] gives.
fn is_backup_name(name: &str) -> bool {
    let parsed = name
        .strip_prefix(BACKUP_PREFIX)
        .and_then(|instant| jiff::fmt::strtime::parse(BACKUP_TIME_FORMAT, instant).ok())
        .and_then(|t| t.to_datetime().ok())
        .and_then(|t| jiff::tz::TimeZone::UTC.to_timestamp(t).ok());
    parsed.is_some_and(|t| backup_name(t) == name)
}

/// The backup directories of `folder` older than `newest`, newest first.
fn older_backups(folder: &Path, newest: &str) -> Result<Vec<String>, MaintenanceError> {
    let folder_error = |source| MaintenanceError::Folder { path: folder.into(), source };
    let mut older = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(folder_error)? {
        let entry = entry.map_err(folder_error)?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        // Names of one format sort as their instants do. `file_type` does not follow a
        // symbolic link, so a link is never taken for a directory.
        if is_backup_name(&name) && name.as_str() < newest && entry.file_type().is_ok_and(|t| t.is_dir()) {
            older.push(name);
        }
    }
    older.sort_unstable_by(|a, b| b.cmp(a));
    Ok(older)
}

/// The oldest complete backup of `folder`, when it holds `keep` complete ones older than
/// `newest` (so that a new one would have it removed). Directories in use, or that cannot be
/// looked at, are not counted, as pruning does not count them.
fn oldest_to_refresh(folder: &Path, newest: &str, keep: usize) -> Result<Option<PathBuf>, MaintenanceError> {
    let mut complete = Vec::new();
    for name in older_backups(folder, newest)? {
        let path = folder.join(&name);
        if let Ok(Some(claimed)) = BackupDirectory::claim(&path)
            && claimed.is_complete()
        {
            complete.push(path);
        }
    }
    Ok(if complete.len() >= keep { complete.pop() } else { None })
}

/// Removes, from `folder`, backups older than `newest` (a complete one, just made), as
/// [`backup_now`] says. Returns the directories removed, and those that could not be (with
/// why).
#[allow(clippy::type_complexity)]
fn prune(folder: &Path, newest: &str, keep: usize) -> Result<(Vec<PathBuf>, Vec<(PathBuf, String)>), MaintenanceError> {
    let older = older_backups(folder, newest)?;
    let mut complete_kept = 1; // the new one
    let (mut removed, mut not_removed) = (Vec::new(), Vec::new());
    for name in older {
        let path = folder.join(&name);
        // In use (locked), or not readable: neither counted nor removed.
        let Ok(Some(claimed)) = BackupDirectory::claim(&path) else { continue };
        if claimed.is_complete() && complete_kept < keep {
            complete_kept += 1;
            continue;
        }
        match claimed.discard() {
            Ok(()) => removed.push(path),
            Err(e) => not_removed.push((path, e.to_string())),
        }
    }
    Ok((removed, not_removed))
}

/// Runs `maintenance`'s verifications and backups on their intervals and when asked, each on a
/// blocking thread, logging one line per run on stderr, until `stop` holds `true` (or its
/// sender is dropped). The first scheduled run of each comes one interval after the start; a
/// verification without a schedule runs only when asked. A run in progress when
/// `stop` changes is finished before this returns, so a caller that awaits it and then syncs
/// or closes the store does so after the last backup.
pub async fn run_until(maintenance: Maintenance, stop: tokio::sync::watch::Receiver<bool>) {
    let verify = {
        let store = Arc::clone(&maintenance.store);
        let requests = Some(Arc::clone(&maintenance.verify_requests));
        every_interval("the verification task", maintenance.verify_every, stop.clone(), requests, move || {
            match store.verify() {
                Ok(r) => eprintln!(
                    "notifeed: verify found {} records in {} segments ({} bytes) sound, {} notifications readable",
                    r.records, r.segments, r.bytes, r.notifications
                ),
                Err(e) => eprintln!("notifeed: VERIFY FAILED: {e}"),
            }
        })
    };
    let backup = maintenance.backup.clone().map(|schedule| {
        let store = Arc::clone(&maintenance.store);
        let clock = Arc::clone(&maintenance.clock);
        let requests = Some(Arc::clone(&maintenance.backup_requests));
        every_interval("the backup task", Some(schedule.every), stop.clone(), requests, move || {
            match backup_now(&store, &schedule, clock.now()) {
                Ok(done) => {
                    eprintln!(
                        "notifeed: backed up {} segments ({} bytes) into {}; removed {} older backups",
                        done.report.segments,
                        done.report.bytes,
                        done.path.display(),
                        done.removed.len()
                    );
                    for (path, why) in done.not_removed {
                        eprintln!("notifeed: could not remove the old backup {}: {why}", path.display());
                    }
                }
                Err(e) => eprintln!("notifeed: BACKUP FAILED: {e}"),
            }
        })
    });
    tokio::join!(verify, async move {
        if let Some(b) = backup {
            b.await
        }
    });
}

/// Calls `job` on a blocking thread every `every` (the first time one interval after the
/// start; `None`: never on a schedule), and whenever `requests` is notified, one run at a
/// time, until `stop` holds `true`; a run in progress is finished first. A request made during
/// a run starts one more after it; the interval then counts from that one. A run that panics
/// is logged as `what` and the next runs on time. The server's sweeper runs this way too.
pub(crate) async fn every_interval(
    what: &'static str,
    every: Option<Duration>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    requests: Option<Arc<tokio::sync::Notify>>,
    job: impl Fn() + Send + Sync + 'static,
) {
    let job = Arc::new(job);
    let mut interval = every.map(|every| {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    if let Some(interval) = interval.as_mut() {
        interval.tick().await;
    }
    loop {
        // Biased: when a tick and the stop are both ready, the stop wins, so no run starts
        // once it is asked.
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = async {
                match interval.as_mut() {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending().await,
                }
            } => {}
            () = async {
                match &requests {
                    Some(requests) => requests.notified().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(interval) = interval.as_mut() {
                    interval.reset();
                }
            }
        }
        let job = Arc::clone(&job);
        if let Err(e) = tokio::task::spawn_blocking(move || job()).await {
            eprintln!("notifeed: {what} failed: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::{BACKUP_INCOMPLETE_FILE, LogConfig};
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
        for other in [
            "notifeed-backup-",
            "notifeed-backup-latest",
            "backup-20261202T061500.000Z",
            "notifeed-backup-20261202T061500.5Z",
            "notifeed-backup-20261202T061500.000000Z",
            "notifeed-backup-20261202T061500.000Z.old",
            "log",
            "",
        ] {
            assert!(!is_backup_name(other), "{other}");
        }
    }

    #[test]
    fn a_backup_opens_with_the_store_s_notifications_and_older_ones_beyond_keep_go() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 2, refresh: false };
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
    fn with_refresh_the_oldest_of_keep_complete_copies_is_refreshed_and_renamed_for_the_new_instant() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 2, refresh: true };
        let times = ["2026-12-02T06:01:00Z", "2026-12-02T06:02:00Z", "2026-12-02T06:03:00Z", "2026-12-02T06:04:00Z"];
        let mut made = Vec::new();
        for (i, when) in times.iter().enumerate() {
            live.append(&feed(), NewNotification::raw("app.example", &format!("n{i}"), &"x".repeat(2000))).unwrap();
            let outcome = backup_now(&live, &schedule, at(when)).unwrap();
            assert_eq!(outcome.path, folder.join(backup_name(at(when))));
            assert!(outcome.removed.is_empty(), "{outcome:?}");
            made.push(outcome);
        }
        // The first two are new copies; the next two refresh the oldest (nothing to prune),
        // writing exactly what the store appended since that copy (segments only grow here).
        assert_eq!(made[0].report.bytes_written, made[0].report.bytes);
        for (refreshed, earlier) in [(&made[2], &made[0]), (&made[3], &made[1])] {
            let since = refreshed.report.bytes - earlier.report.bytes;
            assert!(since > 0 && refreshed.report.bytes_written == since, "{:?}", refreshed.report);
        }
        assert_eq!(names(&folder), vec![backup_name(at(times[2])), backup_name(at(times[3]))]);
        for (outcome, held) in [(&made[2], 3), (&made[3], 4)] {
            let copy = store(&outcome.path);
            assert_eq!(copy.list(&feed(), &ListQuery::default()).unwrap().items.len(), held);
        }
        // Refresh needs two copies: one stays usable while the other is refreshed.
        let one = BackupSchedule { keep: 1, ..schedule };
        let outcome = backup_now(&live, &one, at("2026-12-02T06:05:00Z")).unwrap();
        assert_eq!(outcome.report.bytes_written, outcome.report.bytes, "a new copy");
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
        // A directory a crash left empty before its marker was durable: not complete.
        let old_empty = folder.join(backup_name(at("2026-11-30T00:00:00Z")));
        for d in [&old_incomplete, &newer, &foreign, &old_empty] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old_incomplete.join(BACKUP_INCOMPLETE_FILE), b"").unwrap();
        std::fs::write(&named_file, b"not a directory").unwrap();
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 5, refresh: false };
        let outcome = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        assert_eq!(outcome.removed, vec![old_incomplete, old_empty]);
        assert!(outcome.not_removed.is_empty());
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
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1, refresh: false };
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

    #[test]
    fn a_directory_whose_lock_is_held_is_left_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1, refresh: false };
        let first = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        // As if a store were open on the first copy, or a backup still copying into it.
        let held = BackupDirectory::claim(&first.path).unwrap().expect("free");
        assert!(BackupDirectory::claim(&first.path).unwrap().is_none());
        let second = backup_now(&live, &schedule, at("2026-12-02T01:00:00Z")).unwrap();
        assert!(second.removed.is_empty() && first.path.is_dir());
        drop(held);
        let third = backup_now(&live, &schedule, at("2026-12-02T02:00:00Z")).unwrap();
        assert_eq!(third.removed, vec![second.path.clone(), first.path.clone()]);
    }

    #[test]
    fn a_backup_holding_anything_but_files_is_reported_and_never_emptied_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1, refresh: false };
        let first = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        // Someone keeps a directory of their own, and a link to one, inside the first copy.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("keep"), b"x").unwrap();
        std::fs::create_dir(first.path.join("notes")).unwrap();
        std::os::unix::fs::symlink(&theirs, first.path.join("link")).unwrap();
        let second = backup_now(&live, &schedule, at("2026-12-02T01:00:00Z")).unwrap();
        assert!(second.removed.is_empty());
        assert_eq!(second.not_removed.len(), 1);
        assert_eq!(second.not_removed[0].0, first.path);
        assert!(second.not_removed[0].1.contains("removing"), "{:?}", second.not_removed);
        // Our files went; theirs stayed, and what the link points at was never touched.
        let mut left: Vec<_> = std::fs::read_dir(&first.path).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, ["link", "notes"]);
        assert!(theirs.join("keep").is_file());
        assert!(!BackupDirectory::claim(&first.path).unwrap().unwrap().is_complete());
    }

    #[test]
    fn a_copy_that_fails_is_removed_and_the_older_backups_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("log");
        let live = store(&store_dir);
        live.append(&feed(), NewNotification::raw("app.example", "n0", "data")).unwrap();
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1, refresh: false };
        let first = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z")).unwrap();
        // A byte of the record's body flipped under the running store: the copy checks every
        // record, so it fails.
        let segment = std::fs::read_dir(&store_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[40 + 20 + 10] ^= 1; // segment header, frame header, then into the body
        std::fs::write(&segment, &bytes).unwrap();
        let failed = backup_now(&live, &schedule, at("2026-12-02T01:00:00Z"));
        assert!(
            matches!(failed, Err(MaintenanceError::Store { source: StoreError::Corruption { .. }, removed: true, .. })),
            "{failed:?}"
        );
        assert_eq!(names(&folder), vec![backup_name(at("2026-12-02T00:00:00Z"))]);
        assert!(first.path.is_dir());
    }

    #[test]
    fn a_folder_that_holds_the_store_or_lies_inside_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("log");
        let live = store(&store_dir);
        for folder in [dir.path().to_path_buf(), store_dir.clone(), store_dir.join("backups")] {
            let schedule =
                BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 1, refresh: false };
            let refused = backup_now(&live, &schedule, at("2026-12-02T00:00:00Z"));
            assert!(matches!(refused, Err(MaintenanceError::Overlap { .. })), "{}: {refused:?}", folder.display());
        }
        assert!(!store_dir.join("backups").exists(), "nothing is created inside the store");
    }

    #[test]
    fn incomplete_copies_never_count_toward_keep_even_with_a_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let live = store(&dir.path().join("log"));
        let folder = dir.path().join("backups");
        let schedule = BackupSchedule { dir: folder.clone(), every: Duration::from_secs(60), keep: 2, refresh: false };
        let complete = backup_now(&live, &schedule, at("2026-12-01T00:00:00Z")).unwrap();
        // A whole copy (watermark and all) whose marker is back: as a removal cut short leaves it.
        let marked = backup_now(&live, &schedule, at("2026-12-01T01:00:00Z")).unwrap();
        std::fs::write(marked.path.join(BACKUP_INCOMPLETE_FILE), b"").unwrap();
        let newest = backup_now(&live, &schedule, at("2026-12-01T02:00:00Z")).unwrap();
        assert_eq!(newest.removed, vec![marked.path.clone()]);
        assert!(complete.path.is_dir(), "the complete copy is the second one kept");
    }

    /// A job that counts its runs, says when one starts, and then waits until it is released
    /// (or the releasing end is dropped); with a runtime to schedule it on.
    struct HeldJob {
        runtime: tokio::runtime::Runtime,
        runs: Arc<std::sync::atomic::AtomicUsize>,
        has_started: std::sync::mpsc::Receiver<()>,
        release: std::sync::mpsc::Sender<()>,
    }

    impl HeldJob {
        fn new() -> (Self, impl Fn() + Send + Sync + 'static) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (started, has_started) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let released = parking_lot::Mutex::new(released);
            let counted = Arc::clone(&runs);
            let job = move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = started.send(());
                let _ = released.lock().recv();
            };
            (Self { runtime, runs, has_started, release }, job)
        }
    }

    #[test]
    fn stopping_waits_for_the_run_in_progress_and_starts_no_other() {
        let (held, job) = HeldJob::new();
        let HeldJob { runtime, has_started, release, runs } = held;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut task =
            runtime.spawn(every_interval("the test job", Some(Duration::from_millis(1)), stopping, None, job));
        has_started.recv().unwrap();
        stop.send(true).unwrap();
        // The run in progress holds the task: it cannot end before the job is released.
        let early = runtime.block_on(async { tokio::time::timeout(Duration::from_millis(200), &mut task).await });
        assert!(early.is_err(), "the task ended while its job was running");
        // Dropped, not sent: a run started after the stop would not wait.
        drop(release);
        runtime.block_on(task).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1, "a run started after the stop");
    }

    #[test]
    fn a_request_runs_the_job_now_and_one_made_during_a_run_runs_it_once_more() {
        let (held, job) = HeldJob::new();
        let HeldJob { runtime, has_started, release, runs } = held;
        let requests = Arc::new(tokio::sync::Notify::new());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        // An hour between scheduled runs: every run here is a request's.
        let every = Some(Duration::from_secs(3600));
        let task = runtime.spawn(every_interval("the test job", every, stopping, Some(Arc::clone(&requests)), job));
        requests.notify_one();
        has_started.recv().unwrap();
        // Two requests during the run: one more run after it, not two.
        requests.notify_one();
        requests.notify_one();
        release.send(()).unwrap();
        has_started.recv().unwrap();
        release.send(()).unwrap();
        drop(release);
        stop.send(true).unwrap();
        runtime.block_on(task).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn without_a_schedule_the_job_runs_only_when_asked() {
        let (held, job) = HeldJob::new();
        let HeldJob { runtime, has_started, release, runs } = held;
        let requests = Arc::new(tokio::sync::Notify::new());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let task = runtime.spawn(every_interval("the test job", None, stopping, Some(Arc::clone(&requests)), job));
        // Nothing runs unasked (a task that treated "no schedule" as "now" would start at once).
        assert!(has_started.recv_timeout(Duration::from_millis(300)).is_err(), "a run nobody asked for");
        requests.notify_one();
        has_started.recv().unwrap();
        release.send(()).unwrap();
        requests.notify_one();
        has_started.recv().unwrap();
        stop.send(true).unwrap();
        drop(release);
        runtime.block_on(task).unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn overlap_is_judged_on_resolved_paths() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("log")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(data.join("log"), &link).unwrap();
        let yes = [
            (data.join("log"), data.clone()),
            (data.join("log"), data.join("log")),
            (data.join("log"), data.join("log/not-yet/deeper")),
            (data.join("log"), elsewhere.join("../data/log/x")),
            (data.join("log"), link.join("backups")),
            (link.clone(), data.join("log")),
        ];
        for (a, b) in yes {
            assert!(overlapping(&a, &b).unwrap(), "{} {}", a.display(), b.display());
        }
        let no = [
            (data.join("log"), elsewhere.clone()),
            (data.join("log"), data.join("logs")),
            (data.join("log"), dir.path().join("missing/backups")),
        ];
        for (a, b) in no {
            assert!(!overlapping(&a, &b).unwrap(), "{} {}", a.display(), b.display());
        }
        assert!(overlapping(&data, &dir.path().join("missing/../data")).is_err(), "'..' past a missing directory");
    }
}
