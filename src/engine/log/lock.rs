//! The lock file that keeps a second process (or a second store in this one) out of a data
//! directory.

use std::path::Path;
use std::sync::Arc;

use super::fs::{FileSystem, FsLock};
use super::segment::io_error;
use crate::StoreError;

/// The lock file's name in the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; released on drop.
#[derive(Debug)]
pub(crate) struct DirectoryLock {
    _held: Box<dyn FsLock>,
}

impl DirectoryLock {
    /// Locks `dir`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another holder has it; [`StoreError::Io`] when the lock
    /// file cannot be opened.
    pub fn acquire(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        match fs.try_lock(&path) {
            Ok(Some(held)) => Ok(Self { _held: held }),
            Ok(None) => Err(StoreError::Locked { path: path.display().to_string() }),
            Err(e) => Err(io_error("locking", &path, e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::StdFileSystem;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let first = DirectoryLock::acquire(&fs, dir.path()).unwrap();
        assert!(matches!(DirectoryLock::acquire(&fs, dir.path()), Err(StoreError::Locked { .. })));
        drop(first);
        assert!(DirectoryLock::acquire(&fs, dir.path()).is_ok());
    }
}
