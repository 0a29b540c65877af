//! An online backup ([`LogStore::backup`]): a copy of the store, as of one instant, into a
//! new directory that [`LogStore::open`] opens like any data directory.
//!
//! The instant is taken under the writer's lock, which orders every write: each segment's
//! length and the watermark, after buffered records are written to the OS. Every operation
//! acknowledged before it is in the copy, none after it. Nothing below a captured length
//! changes afterwards while the store is not poisoned, and no segment goes away while the
//! sweep's lock is held (as for `verify.rs`), so the copy reads the files while writers go
//! on. What the copy leaves out, and why it may:
//! * the commit journal: it holds copies of records the segments hold too (their writes
//!   precede the journal's), and an open of the copy starts its own;
//! * the index snapshot: a cache; the copy's first open scans the segments;
//! * a segment's preallocated zeros: only its records are copied;
//! * the lock file.
//!
//! A copy that a crash or an error cut short keeps the file [`INCOMPLETE_FILE`], and an open
//! refuses it: it would otherwise open as a store missing whatever was not copied yet.

use std::io;
use std::path::Path;

use super::LogStore;
use super::segment::io_error;
use crate::StoreError;

/// The bytes copied at once.
const CHUNK: usize = 1 << 20;

/// The file a backup in progress keeps in its directory, made durable before any segment is
/// copied and removed (durably) after the last: an open refuses a directory that holds it.
pub(crate) const INCOMPLETE_FILE: &str = "BACKUP_INCOMPLETE";

/// What [`LogStore::backup`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Segment files copied.
    pub segments: u64,
    /// Bytes copied from them (headers and records).
    pub bytes: u64,
    /// The LSN the copy ends below: the next the store was to assign at the instant of the copy.
    pub next_lsn: u64,
}

pub(crate) fn backup(store: &LogStore, dest: &Path) -> Result<BackupReport, StoreError> {
    let _no_sweep = store.sweeping.lock();
    let outcome = copy(store, dest);
    // A store poisoned meanwhile may have cut bytes the copy was reading.
    if store.is_poisoned() {
        return Err(StoreError::Poisoned);
    }
    outcome
}

fn copy(store: &LogStore, dest: &Path) -> Result<BackupReport, StoreError> {
    let segments = &store.segments;
    let fs = segments.fs();
    fs.create_dir_all(dest).map_err(|e| io_error("creating", dest, e))?;
    if !fs.list(dest).map_err(|e| io_error("listing", dest, e))?.is_empty() {
        let source = io::Error::new(io::ErrorKind::AlreadyExists, "a backup goes to an empty directory");
        return Err(io_error("backing up to", dest, source));
    }
    let marker = dest.join(INCOMPLETE_FILE);
    fs.open(&marker, true).map_err(|e| io_error("creating", &marker, e))?;
    fs.sync_dir(dest).map_err(|e| io_error("syncing", dest, e))?;
    let (captured, watermark, next_lsn) = {
        let mut writer = segments.writer.lock();
        segments.check_poison()?;
        segments.flush_all(&mut writer)?;
        let mut captured: Vec<(u32, u64)> = writer.segments.iter().map(|(&id, s)| (id, s.len)).collect();
        captured.sort_unstable();
        (captured, writer.watermark, writer.next_lsn)
    };
    let mut report = BackupReport { next_lsn, ..BackupReport::default() };
    let mut buf = vec![0; CHUNK];
    for (id, len) in captured {
        let from = segments.path(id);
        let Some(name) = from.file_name() else { continue };
        let to = dest.join(name);
        let source = segments.file(id)?;
        let target = fs.open(&to, true).map_err(|e| io_error("creating", &to, e))?;
        let mut at = 0;
        while at < len {
            let n = usize::try_from(len - at).unwrap_or(usize::MAX).min(CHUNK);
            source.read_exact_at(&mut buf[..n], at).map_err(|e| io_error("reading", &from, e))?;
            target.write_all_at(&buf[..n], at).map_err(|e| io_error("writing", &to, e))?;
            at += n as u64;
        }
        target.sync_data().map_err(|e| io_error("syncing", &to, e))?;
        report.segments += 1;
        report.bytes += len;
    }
    watermark.store(fs, dest)?;
    // Everything above is durable (each file synced, the directory synced by the watermark's
    // rename): only now may the copy open.
    fs.remove_file(&marker).map_err(|e| io_error("removing", &marker, e))?;
    fs.sync_dir(dest).map_err(|e| io_error("syncing", dest, e))?;
    Ok(report)
}
