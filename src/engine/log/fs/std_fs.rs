//! The real file system: `pread`/`pwrite`, `fdatasync`, directory fsync, `flock`; reads of
//! bytes a file held when it was last mapped come from a read-only memory map instead of a
//! `pread` (see [`StdFile::read_exact_at`] and [`StdFile::read_with`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileSystem, FsFile, FsLock, VolumeSync};

/// The operating system's file system (Unix).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

/// A file grows by at most this much past its map before a read maps it again.
const REMAP_STEP: u64 = 1 << 20;
/// A file grows by at least this much past its map (or by as much as the map holds, when that
/// is between this and [`REMAP_STEP`]) before a read maps it again: a small file being
/// appended to is mapped again a few times as it doubles, not at every read of its newest
/// record.
const MIN_REMAP_STEP: u64 = 64 << 10;

#[derive(Debug)]
struct StdFile {
    file: File,
    /// A read-only map of the file's first `map.len()` bytes, made at the first read and again
    /// once reads reach past it by the step [`StdFile::remap_due`] sets.
    map: parking_lot::RwLock<Option<memmap2::Mmap>>,
}

impl StdFile {
    /// Maps the whole file as it is now, replacing the old map.
    fn remap(&self) -> io::Result<()> {
        let mut map = self.map.write();
        // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change or vanish under the
        // map when the file is written or truncated. The invariant the log engine keeps: bytes
        // it has published to readers (below a segment's flushed length) are never rewritten
        // and never truncated while the store runs. It only appends (preallocated zeros and the
        // records written over them lie at or above that length), cuts only zeros above it
        // (`set_len` on a handle drops that handle's map first; other handles of the file keep
        // maps that reads use only below the published length), cuts torn tails only during
        // recovery, before any reader exists, and unlinks whole files (a map of an unlinked
        // file stays valid; segment ids are never reused); reads only ask for published bytes.
        // One exception, after a failed sync poisoned the store: it overwrites with zeros
        // (never truncates) the bytes no sync covered, and with `Buffered` durability those may
        // be published. It lowers the published lengths first, so only a read already under
        // way can meet the zeros: it sees bytes change under it (its checksum then fails, an
        // error), a race the Rust memory model leaves undefined, as it does for another
        // program writing the file. The data directory is locked against other notifeed
        // processes. What remains: another program truncating a segment file of a running
        // store, or a disk read error on a mapped page, makes the read fault (SIGBUS, ending
        // the process) where `pread` would return an error. Measured to pay: see
        // benches/README.md (reads).
        #[allow(unsafe_code)]
        let mapped = unsafe { memmap2::Mmap::map(&self.file)? };
        *map = Some(mapped);
        Ok(())
    }

    /// Whether a read ending at `end`, past a map of `mapped_len` bytes, maps the file again.
    fn remap_due(end: u64, mapped_len: u64) -> bool {
        mapped_len == 0 || end >= mapped_len + mapped_len.clamp(MIN_REMAP_STEP, REMAP_STEP)
    }

    /// Calls `f` with the mapped bytes `offset..offset + len` when the map covers them;
    /// otherwise returns the map's length.
    fn with_mapped(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<Result<(), u64>> {
        let map = self.map.read();
        match map.as_ref() {
            Some(m) if offset.saturating_add(len as u64) <= m.len() as u64 => {
                let start = usize::try_from(offset).map_err(io::Error::other)?;
                f(&m[start..start + len]);
                Ok(Ok(()))
            }
            Some(m) => Ok(Err(m.len() as u64)),
            None => Ok(Err(0)),
        }
    }
}

impl FsFile for StdFile {
    /// Copies from the map when it covers the range; otherwise `pread`s, and maps the file
    /// (again) when it has no map yet or the read reaches past the map by a step that grows
    /// with the map up to [`REMAP_STEP`] (so a growing file is not remapped for every read of
    /// its newest records).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        let mapped_len = match self.with_mapped(offset, buf.len(), &mut |bytes| buf.copy_from_slice(bytes))? {
            Ok(()) => return Ok(()),
            Err(mapped_len) => mapped_len,
        };
        self.file.read_exact_at(buf, offset)?;
        if Self::remap_due(end, mapped_len) {
            // A map is only a faster path: a file that cannot be mapped (no address space or
            // map slots left, a file system without mmap) is read with `pread` instead, and
            // the read that already succeeded does not fail.
            let _mapped = self.remap().is_ok();
        }
        Ok(())
    }

    /// Borrows from the map when it covers the range (no copy); otherwise as
    /// [`StdFile::read_exact_at`] into a buffer.
    fn read_with(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        if self.with_mapped(offset, len, f)?.is_ok() {
            return Ok(());
        }
        super::read_copied(self, offset, len, f)
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

/// `syncfs` through a descriptor of the data directory, on a file system and kernel where it
/// can stand in for `fdatasync` (see [`syncfs_is_trusted`]).
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct StdVolume(File);

#[cfg(target_os = "linux")]
impl VolumeSync for StdVolume {
    /// `syncfs`, then a check that the file system is still writable: on a read-only (for
    /// instance an ext4 that aborted and remounted itself read-only) file system `syncfs`
    /// returns success without writing anything, where `fdatasync` fails.
    fn sync_volume(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.0)?;
        let flags = rustix::fs::fstatvfs(&self.0)?.f_flag;
        if flags.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            return Err(io::Error::from(rustix::io::Errno::ROFS));
        }
        Ok(())
    }
}

/// ext4's file-system magic number (`EXT4_SUPER_MAGIC`, which ext2 and ext3 share).
const EXT4_SUPER_MAGIC: i64 = 0xEF53;

/// Whether `syncfs` on a file system of type `magic` under a kernel of release `release` (as
/// `uname -r` prints it) makes data durable and reports errors as reliably as `fdatasync` of
/// each file. Only ext4 on Linux 5.17 or later:
/// * before 5.8, `syncfs` reports no write-back error at all; before 5.17 it drops the file
///   system's own sync errors (a failed journal commit or disk-cache flush);
/// * ext4's `syncfs` flushes the disk cache even when a sync only overwrote data in place
///   (preallocated zeros, the engine's usual case); XFS adds that flush only in `fsync`, so
///   its `syncfs` can leave such data in a volatile disk cache;
/// * overlayfs's `syncfs` does not report the upper layer's write-back errors, and plain
///   FUSE's does not reach the server; other file systems are not known to be safe.
pub(crate) fn syncfs_is_trusted(magic: i64, release: &str) -> bool {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().ok());
    let version = match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => return false,
    };
    magic == EXT4_SUPER_MAGIC && version >= (5, 17)
}

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

    fn entries_not_plain(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // `DirEntry::metadata` does not follow a symbolic link.
            let meta = entry.metadata()?;
            let linked_elsewhere = std::os::unix::fs::MetadataExt::nlink(&meta) > 1;
            if !meta.file_type().is_file() || linked_elsewhere {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    /// `syncfs` where it is trusted (ext4, Linux 5.17 or later) and a first `syncfs`
    /// at open succeeds; `None` elsewhere. The first call finds a sandbox that refuses the
    /// call (the engine then syncs each file), and takes any write-back error the file system
    /// had before the store opened, so that error does not poison the new store's first batch.
    fn volume_sync(&self, dir: &Path) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        #[cfg(target_os = "linux")]
        {
            let file = File::open(dir)?;
            // `f_type` is a C long: i64 here, i32 on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            let magic = i64::from(rustix::fs::fstatfs(&file)?.f_type);
            let uname = rustix::system::uname();
            if !syncfs_is_trusted(magic, &uname.release().to_string_lossy()) {
                return Ok(None);
            }
            if rustix::fs::syncfs(&file).is_err() {
                return Ok(None);
            }
            Ok(Some(Arc::new(StdVolume(file))))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dir;
            Ok(None)
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn bytes_at(file: &dyn FsFile, offset: u64, len: usize) -> Vec<u8> {
        let mut copied = vec![0; len];
        file.read_exact_at(&mut copied, offset).unwrap();
        let mut borrowed = Vec::new();
        file.read_with(offset, len, &mut |b| borrowed = b.to_vec()).unwrap();
        assert_eq!(copied, borrowed, "read_exact_at and read_with disagree at {offset}+{len}");
        copied
    }

    #[test]
    fn reads_see_every_byte_written_as_the_file_grows_past_its_map_and_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let file = StdFileSystem.open(&dir.path().join("f"), true).unwrap();
        let pattern = |i: usize| (i * 7 % 251) as u8;
        let mut written = 0usize;
        // Grow in steps around the remap thresholds; after each, read the old and new bytes.
        for step in [100usize, 10, 64 << 10, 1, 200 << 10, 3 << 20] {
            let chunk: Vec<u8> = (written..written + step).map(pattern).collect();
            file.write_all_at(&chunk, written as u64).unwrap();
            written += step;
            for (offset, len) in [(0, 10), (written - step, step), (written - 1, 1), (written / 2, written / 4)] {
                let expected: Vec<u8> = (offset..offset + len).map(pattern).collect();
                assert_eq!(bytes_at(&*file, offset as u64, len), expected, "{len} bytes at {offset}");
            }
        }
        // Cut: the map goes; a read past the end fails, a read below it still sees the bytes.
        file.set_len(1000).unwrap();
        let mut past = vec![0; 10];
        assert!(file.read_exact_at(&mut past, 995).is_err());
        assert!(file.read_with(995, 10, &mut |_| panic!("called past the end")).is_err());
        assert_eq!(bytes_at(&*file, 990, 10), (990..1000).map(pattern).collect::<Vec<_>>());
    }

    #[test]
    fn syncfs_is_trusted_only_on_ext4_from_linux_5_17() {
        assert!(syncfs_is_trusted(0xEF53, "6.18.44-fc-v669"));
        assert!(syncfs_is_trusted(0xEF53, "5.17.0"));
        assert!(!syncfs_is_trusted(0xEF53, "5.16.20"), "drops journal-commit and flush errors");
        assert!(!syncfs_is_trusted(0xEF53, "5.10.0-28-amd64"));
        assert!(!syncfs_is_trusted(0xEF53, "4.19.0"), "reports no write-back error");
        assert!(!syncfs_is_trusted(0x5846_5342, "6.8.0"), "XFS: no disk flush for data in place");
        assert!(!syncfs_is_trusted(0x794C_7630, "6.8.0"), "overlayfs: upper errors unreported");
        assert!(!syncfs_is_trusted(0x6573_5546, "6.8.0"), "FUSE");
        assert!(!syncfs_is_trusted(0xEF53, ""), "an unreadable release");
        assert!(!syncfs_is_trusted(0xEF53, "6"), "no minor version");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_volume_sync_is_offered_exactly_where_syncfs_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::open(dir.path()).unwrap();
        #[allow(clippy::useless_conversion)]
        let magic = i64::from(rustix::fs::fstatfs(&file).unwrap().f_type);
        let trusted = syncfs_is_trusted(magic, &rustix::system::uname().release().to_string_lossy());
        let volume = StdFileSystem.volume_sync(dir.path()).unwrap();
        assert_eq!(volume.is_some(), trusted, "file system {magic:#x}");
        if let Some(volume) = volume {
            volume.sync_volume().unwrap();
        }
    }

    #[test]
    fn the_remap_step_grows_with_the_map_up_to_its_cap() {
        assert!(StdFile::remap_due(1, 0), "an unmapped file is mapped at its first read");
        assert!(!StdFile::remap_due(1000 + (64 << 10) - 1, 1000));
        assert!(StdFile::remap_due(1000 + (64 << 10), 1000));
        assert!(!StdFile::remap_due((512 << 10) * 2 - 1, 512 << 10));
        assert!(StdFile::remap_due((512 << 10) * 2, 512 << 10));
        assert!(!StdFile::remap_due((100 << 20) + (1 << 20) - 1, 100 << 20));
        assert!(StdFile::remap_due((100 << 20) + (1 << 20), 100 << 20));
    }
}
