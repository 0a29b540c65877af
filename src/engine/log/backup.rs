//! An online backup ([`LogStore::backup`]): a copy of the store, as of one instant, into a
//! new directory that [`LogStore::open`] opens like any data directory; and its refresh
//! ([`LogStore::refresh_backup`]), which brings an earlier copy up to a new instant by writing
//! only the pieces of its files that differ (segments are append-only, so about what the
//! store wrote since), and removing the segments the store no longer has.
//!
//! The instant is taken under the writer's lock, which orders every write (each batch holds
//! it from its first write to its last): each segment's length and the watermark, after
//! buffered records are written to the OS. Every operation acknowledged before it is in the
//! copy, none after it. Nothing below a captured length changes afterwards while the store
//! is not poisoned, and no segment goes away while the sweep's lock is held (as for
//! `verify.rs`), so the copy reads the files while writers go on. It reads with `pread`, and
//! checks every record it copies as `verify` does. What the copy leaves out, and why it may:
//! * the commit journal: it holds copies of records the segments hold too (a batch writes its
//!   segments before its journal entry), and an open of the copy starts its own;
//! * the index snapshot: a cache; the copy's first open scans the segments;
//! * a segment's preallocated zeros: only its records are copied.
//!
//! The copy holds `dest`'s lock while it runs, so no other backup or store uses `dest`
//! meanwhile. A copy that a crash or an error cut short keeps the file [`INCOMPLETE_FILE`],
//! made durable before the first segment is copied, and an open refuses it: it would
//! otherwise open as a store missing whatever was not copied yet.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::FileSystem;
use super::lock::{DirectoryLock, LOCK_FILE};
use super::segment::{io_error, segment_file_name};
use super::verify::{Failure, capture, check_segment, reading_a_cut};
use super::{LogStore, create_dir_durably};
use crate::StoreError;

/// The most bytes copied at once: more than the longest frame, as `verify` needs.
const CHUNK: usize = 2 << 20;

/// The file a backup in progress keeps in its directory, made durable before any segment is
/// copied and removed (durably) after the last: an open refuses a directory that holds it.
pub(crate) const INCOMPLETE_FILE: &str = "BACKUP_INCOMPLETE";

/// What [`LogStore::backup`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Segment files copied.
    pub segments: u64,
    /// Bytes copied from them (headers and records), each checked as
    /// [`LogStore::verify`](super::LogStore::verify) checks it.
    pub bytes: u64,
    /// Bytes written to the copy's segment files: all of [`BackupReport::bytes`] for a new
    /// copy; for [`LogStore::refresh_backup`](super::LogStore::refresh_backup), only the
    /// pieces (of up to 2 MiB) that the copy did not hold already.
    pub bytes_written: u64,
    /// Segment files of an earlier copy removed by a refresh: the store no longer has them.
    pub segments_removed: u64,
    /// The LSN the copy ends below: the next the store was to assign at the instant of the copy.
    pub next_lsn: u64,
}

/// A backup directory, locked so that nothing copies into it or opens it meanwhile: what a
/// job that removes old backups needs before it removes one (`crate::maintenance` prunes its
/// folder this way).
#[derive(Debug)]
pub struct BackupDirectory {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    complete: bool,
    _lock: DirectoryLock,
}

impl BackupDirectory {
    /// Takes `dir`'s lock on the real file system, as [`LogStore::backup`] and
    /// [`LogStore::open`] do, so that no backup runs into it and no store opens it while it is
    /// held, and says whether it holds a complete copy. `None` when another holder has the
    /// lock: a backup in progress, or a store opened on the copy.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the lock file cannot be opened, or the directory listed.
    pub fn claim(dir: &Path) -> Result<Option<Self>, StoreError> {
        Self::claim_on(std_fs(), dir)
    }

    /// [`BackupDirectory::claim`] on the file system `fs` (that of a store opened with
    /// [`LogStore::open_with_fs`], whose backups it holds).
    ///
    /// # Errors
    /// As [`BackupDirectory::claim`].
    pub fn claim_on(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Option<Self>, StoreError> {
        let lock = match DirectoryLock::acquire(&fs, dir) {
            Ok(lock) => lock,
            Err(StoreError::Locked { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let complete = is_complete(fs.as_ref(), dir)?;
        Ok(Some(Self { fs, path: dir.to_path_buf(), complete, _lock: lock }))
    }

    /// Whether the directory holds a complete copy: no
    /// [`INCOMPLETE_FILE`](super::BACKUP_INCOMPLETE_FILE) and a watermark file, both looked for
    /// among its regular files (every copy writes the watermark before it removes the marker,
    /// so a directory a crash left empty, before the marker was made durable, is not
    /// complete; a symbolic link named `WATERMARK` does not count).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Removes the directory and the files in it, its lock held throughout, so that a removal
    /// that a failure or a crash (a power loss too) cuts short never leaves a copy with some
    /// segments gone: the [`INCOMPLETE_FILE`](super::BACKUP_INCOMPLETE_FILE) marker is made
    /// durable first; then every other file but the lock file goes, and that is made durable
    /// (and checked) before the marker goes; then the lock file and the directory. What a cut leaves is refused by every open
    /// (the marker), or holds at most the lock file (an open would make it a new, empty
    /// store); neither counts as complete, and the next pruning removes it. Only regular files
    /// are removed: anything else in the directory (no backup makes one; a symbolic link is
    /// never followed) is left, and so is the directory, with the error saying so.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the marker cannot be made durable (nothing is removed then), a
    /// file cannot be removed or the directory listed or synced (the marker stays then), or
    /// the lock file or the directory cannot be removed (the marker is gone then, and every
    /// other file).
    pub fn discard(self) -> Result<(), StoreError> {
        let (fs, dir) = (self.fs.as_ref(), &self.path);
        let marker = dir.join(INCOMPLETE_FILE);
        let lock = dir.join(LOCK_FILE);
        let sync_dir = || fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e));
        // The files but the marker and the lock file, listed whole before any goes.
        let others = || -> Result<Vec<PathBuf>, StoreError> {
            let mut files = fs.list(dir).map_err(|e| io_error("listing", dir, e))?;
            files.retain(|path| *path != marker && *path != lock);
            Ok(files)
        };
        fs.open(&marker, true).and_then(|f| f.sync_data()).map_err(|e| io_error("creating", &marker, e))?;
        sync_dir()?;
        for path in others()? {
            fs.remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
        }
        sync_dir()?;
        if let Some(left) = others()?.first() {
            return Err(io_error("removing", left, io::Error::other("it is still there")));
        }
        fs.remove_file(&marker).map_err(|e| io_error("removing", &marker, e))?;
        match fs.remove_file(&lock) {
            // A file system whose locks are no files (the fault-injecting one) has none.
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error("removing", &lock, e)),
            _ => {}
        }
        fs.remove_dir(dir).map_err(|e| io_error("removing", dir, e))
    }

    /// Creates `dir` and each missing ancestor, every one made durable in its parent, as
    /// [`LogStore::open`] creates a data directory: a folder that is to receive backups.
    ///
    /// # Errors
    /// [`StoreError::Io`] when a directory cannot be created or synced.
    pub fn create_folder(dir: &Path) -> Result<(), StoreError> {
        create_dir_durably(&std_fs(), dir)
    }
}

fn std_fs() -> Arc<dyn FileSystem> {
    Arc::new(super::fs::StdFileSystem)
}

/// No [`INCOMPLETE_FILE`] and a watermark file, both looked for among `dir`'s regular files.
fn is_complete(fs: &dyn FileSystem, dir: &Path) -> Result<bool, StoreError> {
    let files = fs.list(dir).map_err(|e| io_error("listing", dir, e))?;
    let present = |name: &str| files.contains(&dir.join(name));
    Ok(!present(INCOMPLETE_FILE) && present(super::watermark::WATERMARK_FILE))
}

pub(crate) fn backup(store: &LogStore, dest: &Path) -> Result<BackupReport, StoreError> {
    reading_a_cut(store, || copy(store, dest, false))
}

pub(crate) fn refresh(store: &LogStore, dest: &Path) -> Result<BackupReport, StoreError> {
    reading_a_cut(store, || copy(store, dest, true))
}

/// The files a store writes in its directory besides its segments, the watermark and the lock:
/// an opened copy may hold them, and a refresh removes them (they describe the files as that
/// store left them, not as the copy makes them).
fn files_of_an_opened_store() -> [&'static str; 8] {
    [
        super::synced_lengths::SYNCED_FILE,
        super::synced_lengths::TEMPORARY_FILE,
        super::journal::JOURNAL_FILE,
        super::snapshot::SNAPSHOT_FILE,
        super::snapshot::TEMPORARY_FILE,
        super::segment::UNSYNCED_FILE,
        super::watermark::TEMPORARY_FILE,
        // Left by a refresh cut short (below), and refreshed over.
        INCOMPLETE_FILE,
    ]
}

/// Copies the store into `dest`: an empty directory, or with `refresh` one holding an earlier
/// copy (of any store, complete or cut short, opened since or not). A refresh compares what
/// `dest` holds with what it is to hold, and writes only the pieces that differ, cuts files
/// that are too long, and removes what the store no longer has.
fn copy(store: &LogStore, dest: &Path, refresh: bool) -> Result<BackupReport, StoreError> {
    let segments = &store.segments;
    let fs = segments.fs();
    create_dir_durably(fs, dest)?;
    // Held while copying: no other backup, and no store, uses `dest` meanwhile.
    let _lock = DirectoryLock::acquire(fs, dest)?;
    let lock_file = dest.join(LOCK_FILE);
    // Nothing to write through: no link, directory or file with another name elsewhere.
    if let Some(odd) = fs.entries_not_plain(dest).map_err(|e| io_error("listing", dest, e))?.first() {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "a backup writes only into plain files");
        return Err(io_error("backing up to", odd, source));
    }
    let mut held: Vec<PathBuf> = fs.list(dest).map_err(|e| io_error("listing", dest, e))?;
    held.retain(|p| *p != lock_file);
    if !refresh && !held.is_empty() {
        let source = io::Error::new(io::ErrorKind::AlreadyExists, "a backup goes to an empty directory");
        return Err(io_error("backing up to", dest, source));
    }
    let watermark_file = dest.join(super::watermark::WATERMARK_FILE);
    let is_segment = |p: &Path| super::segment::parse_segment_file_name(p).is_some();
    let opened_store_files: Vec<PathBuf> = files_of_an_opened_store().iter().map(|name| dest.join(name)).collect();
    if let Some(other) =
        held.iter().find(|p| !is_segment(p) && **p != watermark_file && !opened_store_files.contains(p))
    {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "a refresh goes to a directory holding a copy only");
        return Err(io_error("refreshing a backup with", other, source));
    }
    let marker = dest.join(INCOMPLETE_FILE);
    // What `dest` holds is compared, and kept where equal, only in a copy that the last backup
    // or refresh into it completed, and that no store opened on it left `UNSYNCED` in: bytes
    // an interrupted copy (or a store whose sync failed) wrote may be in the page cache only,
    // and a sync from another descriptor does not make them durable.
    let unsynced = dest.join(super::segment::UNSYNCED_FILE);
    let trusted = refresh && !held.contains(&marker) && !held.contains(&unsynced);
    let mark = || -> Result<(), StoreError> {
        fs.open(&marker, true).map_err(|e| io_error("creating", &marker, e))?;
        fs.sync_dir(dest).map_err(|e| io_error("syncing", dest, e))
    };
    // A refresh takes the instant before it changes the copy, so that a store poisoned
    // meanwhile leaves the earlier copy as it was; a new copy is marked first, so that no
    // failure leaves an empty directory that would open as an empty store.
    if !refresh {
        mark()?;
    }
    let cut = capture(segments)?;
    if refresh {
        mark()?;
    }
    // The marker is durable: whatever changes now, no open accepts the copy until it is whole.
    for path in held.iter().filter(|p| opened_store_files.contains(p) && **p != marker) {
        fs.remove_file(path).map_err(|e| io_error("removing", path, e))?;
    }
    let mut report = BackupReport { next_lsn: cut.next_lsn, ..BackupReport::default() };
    let mut buf = Vec::new();
    let mut held_piece = Vec::new();
    for (&id, c) in &cut.segments {
        let from = segments.path(id);
        let to = dest.join(segment_file_name(id));
        let source = segments.file(id)?;
        let target = fs.open(&to, true).map_err(|e| io_error("creating", &to, e))?;
        let held_len = if refresh { target.size().map_err(|e| io_error("reading", &to, e))? } else { 0 };
        let comparable = if trusted { held_len } else { 0 };
        // Each piece read is checked (as `verify` checks it) and then written where `dest`
        // does not hold it already: the copy never holds a record that fails its checksum (a
        // store opened by salvage, whose files keep the regions it lost, is refused).
        let mut failed_at_dest = false;
        let mut written = 0;
        // The end of what was compared or written: `check_segment` reads the unconsumed tail
        // of each chunk again at the start of the next, and that part is handled once.
        let mut done = 0u64;
        let mut copy_piece = |at: u64, piece: &mut [u8]| -> io::Result<()> {
            source.read_exact_at(piece, at)?;
            let end = at + piece.len() as u64;
            let skip = done.saturating_sub(at).min(piece.len() as u64) as usize;
            let (at, piece) = (at + skip as u64, &piece[skip..]);
            done = done.max(end);
            // The part of the piece below what `dest` holds, compared before it is written.
            let held_end = end.min(comparable.max(at));
            let mut from_here = 0;
            if held_end > at {
                let n = (held_end - at) as usize;
                held_piece.resize(n, 0);
                target.read_exact_at(&mut held_piece, at).inspect_err(|_| failed_at_dest = true)?;
                if held_piece[..] == piece[..n] {
                    from_here = n;
                }
            }
            if from_here < piece.len() {
                written += (piece.len() - from_here) as u64;
                target
                    .write_all_at(&piece[from_here..], at + from_here as u64)
                    .inspect_err(|_| failed_at_dest = true)?;
            }
            Ok(())
        };
        let checked = check_segment(&mut copy_piece, (id, c), &[], CHUNK, &mut buf).map_err(|f| match f {
            Failure::Io(e) if failed_at_dest => io_error("copying to", &to, e),
            Failure::Io(e) => io_error("reading", &from, e),
            Failure::Bad { offset, detail } => {
                StoreError::Corruption { location: format!("{} offset {offset}", from.display()), detail }
            }
        })?;
        if held_len > c.len {
            target.set_len(c.len).map_err(|e| io_error("cutting", &to, e))?;
        }
        // Synced even when nothing was written: what `dest` held may include writes no sync
        // covered (a store opened on the copy and killed leaves no marker).
        target.sync_data().map_err(|e| io_error("syncing", &to, e))?;
        report.segments += 1;
        report.bytes += checked.bytes;
        report.bytes_written += written;
    }
    // What the store no longer has (a sweep unlinked it, a compaction replaced it) goes.
    for path in held.iter().filter(|p| is_segment(p)) {
        let kept = super::segment::parse_segment_file_name(path).is_some_and(|id| cut.segments.contains_key(&id));
        if !kept {
            fs.remove_file(path).map_err(|e| io_error("removing", path, e))?;
            report.segments_removed += 1;
        }
    }
    // A cut after a failed sync may have zeroed bytes the copy read: then it must not open.
    segments.check_poison()?;
    cut.watermark.store(fs, dest)?;
    // Everything above is durable (each file synced, the directory synced by the watermark's
    // rename, which also makes the removals durable): only now may the copy open.
    fs.remove_file(&marker).map_err(|e| io_error("removing", &marker, e))?;
    fs.sync_dir(dest).map_err(|e| io_error("syncing", dest, e))?;
    Ok(report)
}
