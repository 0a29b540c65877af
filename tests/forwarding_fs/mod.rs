//! A file system for tests that forwards every call to another one, and lets a test watch or
//! change the few calls it cares about: implement [`Hooks`] for those, and the rest pass
//! through.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notifeed::engine::log::fs::{FileSystem, FsFile, FsLock, VolumeSync};

/// What a test puts between the log engine and the file system it forwards to. Every hook
/// defaults to forwarding.
pub trait Hooks: Send + Sync + Debug + 'static {
    /// A file was opened: return it, or a file that stands in for it.
    fn opened(&self, _path: &Path, file: Arc<dyn FsFile>) -> io::Result<Arc<dyn FsFile>> {
        Ok(file)
    }

    /// The last handle of a file opened at `path` was dropped.
    fn closed(&self, _path: &Path) {}

    /// `write_all_at` of the file at `path`.
    fn write_all_at(&self, _path: &Path, file: &dyn FsFile, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }

    /// `sync_data` of the file at `path`.
    fn sync_data(&self, _path: &Path, file: &dyn FsFile) -> io::Result<()> {
        file.sync_data()
    }

    /// `sync_dir` of `dir`.
    fn sync_dir(&self, dir: &Path, fs: &dyn FileSystem) -> io::Result<()> {
        fs.sync_dir(dir)
    }

    /// `volume_sync` of `dir`: the inner file system's handle, or one that stands in for it.
    fn volume_sync(&self, dir: &Path, fs: &dyn FileSystem) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        fs.volume_sync(dir)
    }

    /// Whether the engine may sync several files at once.
    fn concurrent_syncs(&self, fs: &dyn FileSystem) -> bool {
        fs.concurrent_syncs()
    }
}

/// `inner` with `hooks` in between.
#[derive(Debug)]
pub struct ForwardingFs<H: Hooks> {
    /// Where calls go.
    pub inner: Arc<dyn FileSystem>,
    /// What watches them.
    pub hooks: Arc<H>,
}

impl<H: Hooks> ForwardingFs<H> {
    /// `inner` watched by `hooks`.
    pub fn new(inner: Arc<dyn FileSystem>, hooks: Arc<H>) -> Self {
        Self { inner, hooks }
    }
}

#[derive(Debug)]
struct ForwardingFile<H: Hooks> {
    inner: Arc<dyn FsFile>,
    path: PathBuf,
    hooks: Arc<H>,
}

impl<H: Hooks> FsFile for ForwardingFile<H> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.hooks.write_all_at(&self.path, &*self.inner, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.hooks.sync_data(&self.path, &*self.inner)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl<H: Hooks> Drop for ForwardingFile<H> {
    fn drop(&mut self) {
        self.hooks.closed(&self.path);
    }
}

impl<H: Hooks> FileSystem for ForwardingFs<H> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let file = self.inner.open(path, create)?;
        let file: Arc<dyn FsFile> =
            Arc::new(ForwardingFile { inner: file, path: path.to_path_buf(), hooks: Arc::clone(&self.hooks) });
        self.hooks.opened(path, file)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.hooks.sync_dir(dir, &*self.inner)
    }
    fn concurrent_syncs(&self) -> bool {
        self.hooks.concurrent_syncs(&*self.inner)
    }
    fn volume_sync(&self, dir: &Path) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        self.hooks.volume_sync(dir, &*self.inner)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>> {
        self.inner.try_lock(path)
    }
}
