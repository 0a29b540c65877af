//! The real file system: `pread`/`pwrite`, `fdatasync`, directory fsync, `flock`; reads of
//! bytes a file held when it was last mapped are copied from a read-only memory map instead of
//! a `pread` (see [`StdFile::read_exact_at`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileSystem, FsFile, FsLock};

/// The operating system's file system (Unix).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

/// A file grows by this much past its map before a read maps it again.
const REMAP_STEP: u64 = 1 << 20;

#[derive(Debug)]
struct StdFile {
    file: File,
    /// A read-only map of the file's first `map.len()` bytes, made once reads reach
    /// [`REMAP_STEP`] bytes past the current map.
    map: parking_lot::RwLock<Option<memmap2::Mmap>>,
}

impl StdFile {
    /// Maps the whole file as it is now, replacing the old map.
    fn remap(&self) -> io::Result<()> {
        let mut map = self.map.write();
        // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change or vanish under the
        // map when the file is written or truncated. The log engine only appends to its files
        // (it never rewrites a byte another read may see), and only truncates them through
        // `set_len` on this same handle, which drops the map first (the write lock excludes
        // readers meanwhile); reads only ask for bytes below what was written. The data
        // directory is locked against other notifeed processes; another program truncating a
        // segment file of a running store would make a read fault (SIGBUS), where `pread`
        // would return an error. Measured to pay: see benches/README.md (reads).
        #[allow(unsafe_code)]
        let mapped = unsafe { memmap2::Mmap::map(&self.file)? };
        *map = Some(mapped);
        Ok(())
    }
}

impl FsFile for StdFile {
    /// Copies from the map when it covers the range; otherwise `pread`s, and maps the file again
    /// once reads reach [`REMAP_STEP`] bytes past the map (so a growing file is not remapped
    /// for every read of its newest records).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        let mapped_len = {
            let map = self.map.read();
            match map.as_ref() {
                Some(m) if end <= m.len() as u64 => {
                    let start = usize::try_from(offset).map_err(io::Error::other)?;
                    buf.copy_from_slice(&m[start..start + buf.len()]);
                    return Ok(());
                }
                Some(m) => m.len() as u64,
                None => 0,
            }
        };
        self.file.read_exact_at(buf, offset)?;
        if end >= mapped_len + REMAP_STEP {
            self.remap()?;
        }
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // The map goes first: a read through it past the new end would fault.
        let mut map = self.map.write();
        *map = None;
        self.file.set_len(len)
    }
}

#[derive(Debug)]
struct StdLock(#[allow(dead_code)] File);

impl FsLock for StdLock {}

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path)?;
        Ok(Arc::new(StdFile { file, map: parking_lot::RwLock::new(None) }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(StdLock(file)))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
