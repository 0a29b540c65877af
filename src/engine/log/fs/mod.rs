//! The file-system layer under the log engine.
//!
//! The engine does all of its I/O through [`FileSystem`] and [`FsFile`], so tests can swap the
//! real implementation ([`StdFileSystem`]) for a fault-injecting one ([`FaultFileSystem`]) that
//! fails the Nth write or sync, tears writes and drops unsynced data at a simulated crash.

mod fault;
mod std_fs;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fault::{FaultFileSystem, FaultPlan};
pub use std_fs::StdFileSystem;

/// An open file: positional reads and writes, and data sync.
pub trait FsFile: Send + Sync + Debug {
    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// The OS error; `UnexpectedEof` when the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Calls `f` with exactly `len` bytes at `offset`: borrowed from a memory map when the file
    /// has one covering them (no copy), otherwise read into a buffer first (the default).
    ///
    /// # Errors
    /// As [`FsFile::read_exact_at`]; `f` is not called then.
    fn read_with(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        read_copied(self, offset, len, f)
    }

    /// Writes all of `buf` at `offset`.
    ///
    /// # Errors
    /// The OS error. After an error, how much was written is unknown.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes the file's data durable (`fdatasync`).
    ///
    /// # Errors
    /// The OS error. A failed sync must never be retried: the data's fate is unknown.
    fn sync_data(&self) -> io::Result<()>;

    /// The file's length in bytes.
    ///
    /// # Errors
    /// The OS error.
    fn size(&self) -> io::Result<u64>;

    /// Truncates (or extends with zeros) the file to `len` bytes.
    ///
    /// # Errors
    /// The OS error.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// [`FsFile::read_with`] without a map: reads `len` bytes at `offset` into a buffer, then
/// calls `f` with them.
///
/// # Errors
/// As [`FsFile::read_exact_at`]; `f` is not called then.
pub(crate) fn read_copied<F: FsFile + ?Sized>(
    file: &F,
    offset: u64,
    len: usize,
    f: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    f(&buf);
    Ok(())
}

/// A handle on the file system that holds a data directory, which makes every file's written
/// data durable in one call: Linux's `syncfs`, which on ext4 is one journal commit and one
/// cache flush of the disk for any number of files, where `fdatasync` costs one of each per
/// file.
pub trait VolumeSync: Send + Sync + Debug {
    /// Makes durable all data written so far to every file of the file system (and writes back
    /// other programs' dirty data on it too). Reports, at most once each, the write-back errors
    /// of any file of the file system that this handle has not reported yet.
    ///
    /// # Errors
    /// The OS error. As with [`FsFile::sync_data`], a failed sync must never be retried.
    fn sync_volume(&self) -> io::Result<()>;
}

/// A held lock on a directory; dropping it releases the lock.
pub trait FsLock: Send + Sync + Debug {}

/// Everything the engine asks of the file system.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates `dir` and its parents if missing.
    ///
    /// # Errors
    /// The OS error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Opens `path` for reading and writing; creates it (empty) when `create` is true and it is
    /// missing.
    ///
    /// # Errors
    /// The OS error; `NotFound` when it is missing and `create` is false.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>>;

    /// The paths of the regular files in `dir`.
    ///
    /// # Errors
    /// The OS error.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;

    /// Removes a file.
    ///
    /// # Errors
    /// The OS error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes `dir`, which must be empty. Default: `Unsupported` (the engine removes
    /// directories only when a backup is discarded).
    ///
    /// # Errors
    /// The OS error; `DirectoryNotEmpty` when it holds anything.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let _ = dir;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Atomically renames `from` to `to`, replacing `to`.
    ///
    /// # Errors
    /// The OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes `dir`'s entries durable (fsync of the directory): needed after a create, rename or
    /// unlink.
    ///
    /// # Errors
    /// The OS error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Whether the engine may sync several files at once from several threads (group commit
    /// does, for a batch that touched several segments). Default: `true`. A test file system
    /// answers `false` so that "the Nth sync" stays one and the same operation from run to run.
    fn concurrent_syncs(&self) -> bool {
        true
    }

    /// A [`VolumeSync`] for the file system holding `dir`; `None` (the default) when the file
    /// system has no such call, or none that is as safe as syncing each file (which the engine
    /// then does).
    ///
    /// # Errors
    /// The OS error.
    fn volume_sync(&self, dir: &Path) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        let _ = dir;
        Ok(None)
    }

    /// Takes an exclusive lock on `path` (created if missing) without waiting; `None` when
    /// another holder has it.
    ///
    /// # Errors
    /// The OS error.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>>;

    /// The entries of `dir` that are not plain files: anything but a regular file with one
    /// link (a symbolic link, a directory, a file with a second hard link elsewhere). A backup
    /// writes into files it finds, so it refuses a directory holding any: it would write
    /// through them. Default: none, for a file system whose files are all plain.
    ///
    /// # Errors
    /// The OS error.
    fn entries_not_plain(&self, _dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}
