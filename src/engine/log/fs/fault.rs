//! An in-memory file system that injects faults, for tests.
//!
//! Each file keeps two images: *live* (what reads see) and *durable* (what survives a crash,
//! updated by `sync_data`). Directory entries are durable only after `sync_dir` of their
//! directory. [`FaultFileSystem::crash`] returns the file system a machine would find after a
//! power loss: durable names and durable bytes, optionally with a torn piece of the unsynced
//! tail; [`FaultFileSystem::crash_keeping_name_changes`] also keeps a prefix of the name
//! changes not yet synced, as a file system that journals its metadata in order may. A
//! [`FaultPlan`] fails the Nth write, sync or file removal, or tears the Nth write.
//!
//! A failed sync behaves as Linux's write-back does: the bytes it did not make durable stay in
//! the live image (the page cache still serves them) but are *stranded*, marked clean, so no
//! later sync writes them, whichever handle syncs, until they are written again. A crash then
//! loses them although a later sync succeeded ("fsyncgate").

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileSystem, FsFile, FsLock, VolumeSync};

/// Which operation fails next. Counts start at 1 and are counted from [`FaultFileSystem::set_plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Fail the Nth `write_all_at` (nothing is written).
    pub fail_write: Option<u64>,
    /// Tear the Nth `write_all_at`: write only its first half, then fail.
    pub tear_write: Option<u64>,
    /// Fail the Nth `sync_data` (nothing becomes durable) or `sync_volume` (only the files
    /// `volume_sync_keeps` picks become durable).
    pub fail_sync: Option<u64>,
    /// Which files a failed `sync_volume` makes durable before it fails, as a real `syncfs`
    /// that fails part-way may: file number `i` (in order of creation) when bit `i % 64` is
    /// set. 0: none.
    pub volume_sync_keeps: u64,
    /// Fail every `sync_dir`.
    pub fail_sync_dir: bool,
    /// Fail the Nth `sync_dir` (nothing becomes durable).
    pub fail_sync_dir_at: Option<u64>,
    /// Fail the Nth `remove_file` (nothing is removed).
    pub fail_remove: Option<u64>,
}

#[derive(Debug, Default)]
struct MemFile {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Per live byte: left clean but not durable by a failed sync (empty: none).
    stranded: Vec<bool>,
}

impl MemFile {
    fn new(bytes: Vec<u8>) -> Self {
        MemFile { live: bytes.clone(), durable: bytes, stranded: Vec::new() }
    }

    /// A successful sync: every live byte becomes durable, but stranded ones, whose durable
    /// image stays what it was (zeros past its old end).
    fn sync(&mut self) {
        if self.stranded.is_empty() {
            self.durable.clone_from(&self.live);
            return;
        }
        let mut durable = self.live.clone();
        for (i, byte) in durable.iter_mut().enumerate() {
            if self.stranded.get(i).copied().unwrap_or(false) {
                *byte = self.durable.get(i).copied().unwrap_or(0);
            }
        }
        self.durable = durable;
    }

    /// A failed sync: every byte that is not durable becomes stranded.
    fn fail_sync(&mut self) {
        self.stranded.resize(self.live.len(), false);
        for (i, stranded) in self.stranded.iter_mut().enumerate() {
            if self.durable.get(i) != self.live.get(i) {
                *stranded = true;
            }
        }
    }

    /// A write of `start..end`: those bytes are dirty again.
    fn written(&mut self, start: usize, end: usize) {
        let end = end.min(self.stranded.len());
        if start < end {
            self.stranded[start..end].fill(false);
        }
    }
}

/// A change of a name that no `sync_dir` has made durable yet.
#[derive(Debug, Clone)]
enum NameChange {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename { from: PathBuf, to: PathBuf, id: usize },
}

impl NameChange {
    /// What is left of it once a `sync_dir` of `dir` made its part there durable: nothing, or
    /// the half of a rename across directories that lies in the other one.
    fn left_after_sync_of(self, dir: &Path) -> Option<Self> {
        let inside = |path: &Path| path.parent() == Some(dir);
        match self {
            Self::Link(ref path, _) | Self::Unlink(ref path) if inside(path) => None,
            Self::Rename { from, to, id } => match (inside(&from), inside(&to)) {
                (true, true) => None,
                (true, false) => Some(Self::Link(to, id)),
                (false, true) => Some(Self::Unlink(from)),
                (false, false) => Some(Self::Rename { from, to, id }),
            },
            other => Some(other),
        }
    }

    fn apply(&self, names: &mut HashMap<PathBuf, usize>) {
        match self {
            Self::Link(path, id) => {
                names.insert(path.clone(), *id);
            }
            Self::Unlink(path) => {
                names.remove(path);
            }
            Self::Rename { from, to, id } => {
                names.remove(from);
                names.insert(to.clone(), *id);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    files: Vec<MemFile>,
    live_names: HashMap<PathBuf, usize>,
    durable_names: HashMap<PathBuf, usize>,
    /// Name changes since the last `sync_dir` of their directory, in the order made.
    unsynced: Vec<NameChange>,
    dirs: HashSet<PathBuf>,
    locks: HashSet<PathBuf>,
    plan: FaultPlan,
    writes: u64,
    syncs: u64,
    removes: u64,
    dir_syncs: u64,
}

/// The fault-injecting, crash-simulating in-memory file system. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct FaultFileSystem {
    state: Arc<Mutex<State>>,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

impl FaultFileSystem {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `plan` and restarts the write and sync counts.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.state.lock();
        s.plan = plan;
        s.writes = 0;
        s.syncs = 0;
        s.removes = 0;
        s.dir_syncs = 0;
    }

    /// How many `write_all_at` calls, and `sync_data` and `sync_volume` calls, happened since
    /// the last plan.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.writes, s.syncs)
    }

    /// The file system found after a power loss now: only durable directory entries, each file
    /// holding its durable bytes plus, when `torn_tail_bytes` is set, up to that many bytes of
    /// its unsynced writes, counted from the first byte where they differ from the durable
    /// content (an append past the durable end, or an overwrite of preallocated zeros). Locks
    /// are released. The returned value shares nothing with `self`.
    ///
    /// Directories are created and removed at once for good, with one exception: a directory
    /// that still has a durable entry (removed without a `sync_dir` since) is there again.
    pub fn crash(&self, torn_tail_bytes: Option<usize>) -> FaultFileSystem {
        self.crash_keeping_name_changes(torn_tail_bytes, 0)
    }

    /// How many name changes (a file created, removed or renamed) no `sync_dir` has made
    /// durable yet.
    pub fn unsynced_name_changes(&self) -> usize {
        self.state.lock().unsynced.len()
    }

    /// [`FaultFileSystem::crash`], but the first `kept` of the name changes not yet made
    /// durable survive too, as a file system that writes its metadata in order (ext4's journal)
    /// may leave them: a crash at any point sees some prefix of them.
    pub fn crash_keeping_name_changes(&self, torn_tail_bytes: Option<usize>, kept: usize) -> FaultFileSystem {
        let s = self.state.lock();
        let mut durable_names = s.durable_names.clone();
        for change in s.unsynced.iter().take(kept) {
            change.apply(&mut durable_names);
        }
        let mut files = Vec::new();
        let mut names = HashMap::new();
        for (path, &id) in &durable_names {
            let f = &s.files[id];
            let mut bytes = f.durable.clone();
            if let Some(extra) = torn_tail_bytes {
                let common = f.live.len().min(bytes.len());
                let first = f.live.iter().zip(&bytes).position(|(a, b)| a != b).unwrap_or(common);
                let first = if first == common && f.live.len() <= bytes.len() { f.live.len() } else { first };
                let end = (first + extra).min(f.live.len());
                if end > first {
                    if bytes.len() < end {
                        bytes.resize(end, 0);
                    }
                    bytes[first..end].copy_from_slice(&f.live[first..end]);
                }
            }
            names.insert(path.clone(), files.len());
            files.push(MemFile::new(bytes));
        }
        // A directory removed since its entries' removal was last made durable comes back
        // with them (directories themselves are not crash-simulated).
        let mut dirs = s.dirs.clone();
        for path in names.keys() {
            dirs.extend(path.ancestors().skip(1).map(Path::to_path_buf));
        }
        let state = State { files, live_names: names.clone(), durable_names: names, dirs, ..State::default() };
        FaultFileSystem { state: Arc::new(Mutex::new(state)) }
    }

    /// The live bytes of `path`, if it exists.
    pub fn read_all(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        s.live_names.get(path).map(|&id| s.files[id].live.clone())
    }

    /// Replaces the live and durable bytes of `path` (to simulate bit rot).
    pub fn overwrite(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.state.lock();
        if let Some(&id) = s.live_names.get(path) {
            s.files[id] = MemFile::new(bytes);
        }
    }
}

#[derive(Debug)]
struct MemHandle {
    state: Arc<Mutex<State>>,
    id: usize,
}

impl FsFile for MemHandle {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.state.lock();
        let live = &s.files[self.id].live;
        let start = usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let end = start.checked_add(buf.len()).filter(|&e| e <= live.len());
        match end {
            Some(end) => {
                buf.copy_from_slice(&live[start..end]);
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        s.writes += 1;
        let n = s.writes;
        if s.plan.fail_write == Some(n) {
            return Err(injected("write failed"));
        }
        let torn = s.plan.tear_write == Some(n);
        let take = if torn { buf.len() / 2 } else { buf.len() };
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let f = &mut s.files[self.id];
        if f.live.len() < start + take {
            f.live.resize(start + take, 0);
        }
        f.live[start..start + take].copy_from_slice(&buf[..take]);
        f.written(start, start + take);
        if torn { Err(injected("write torn")) } else { Ok(()) }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        s.syncs += 1;
        if s.plan.fail_sync == Some(s.syncs) {
            s.files[self.id].fail_sync();
            return Err(injected("sync failed"));
        }
        s.files[self.id].sync();
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.state.lock().files[self.id].live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let f = &mut self.state.lock().files[self.id];
        f.live.resize(len, 0);
        f.stranded.truncate(len);
        Ok(())
    }
}

/// `sync_volume` of the in-memory file system: one sync (counted and failed as the plan says)
/// that makes every file's live bytes durable, or, when it fails, those of the files the plan
/// picks. Names still need `sync_dir`.
#[derive(Debug)]
struct MemVolume {
    state: Arc<Mutex<State>>,
}

impl VolumeSync for MemVolume {
    fn sync_volume(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        s.syncs += 1;
        let failed = s.plan.fail_sync == Some(s.syncs);
        let keeps = if failed { s.plan.volume_sync_keeps } else { u64::MAX };
        for (i, f) in s.files.iter_mut().enumerate() {
            if keeps & (1 << (i % 64)) != 0 {
                f.sync();
            } else {
                f.fail_sync();
            }
        }
        if failed { Err(injected("volume sync failed")) } else { Ok(()) }
    }
}

#[derive(Debug)]
struct MemLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl FsLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.path);
    }
}

impl FileSystem for FaultFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        for a in dir.ancestors() {
            s.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let mut s = self.state.lock();
        let id = match s.live_names.get(path) {
            Some(&id) => id,
            None if create => {
                let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
                if !s.dirs.contains(&parent) {
                    return Err(io::Error::from(io::ErrorKind::NotFound));
                }
                s.files.push(MemFile::default());
                let id = s.files.len() - 1;
                s.live_names.insert(path.to_path_buf(), id);
                s.unsynced.push(NameChange::Link(path.to_path_buf(), id));
                id
            }
            None => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        Ok(Arc::new(MemHandle { state: Arc::clone(&self.state), id }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let s = self.state.lock();
        if !s.dirs.contains(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(s.live_names.keys().filter(|p| p.parent() == Some(dir)).cloned().collect())
    }

    fn concurrent_syncs(&self) -> bool {
        // Syncs run one after another, so a plan's "Nth sync" is deterministic.
        false
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.removes += 1;
        if s.plan.fail_remove == Some(s.removes) {
            return Err(injected("remove failed"));
        }
        s.live_names.remove(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.unsynced.push(NameChange::Unlink(path.to_path_buf()));
        Ok(())
    }

    /// Removed at once for good, but see [`FaultFileSystem::crash`] for the entries still durable in it.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        let inside = |p: &Path| p.parent() == Some(dir);
        if s.live_names.keys().any(|p| inside(p)) || s.dirs.iter().any(|p| inside(p)) {
            return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
        }
        if !s.dirs.remove(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        let id = s.live_names.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.live_names.insert(to.to_path_buf(), id);
        s.unsynced.push(NameChange::Rename { from: from.to_path_buf(), to: to.to_path_buf(), id });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.dir_syncs += 1;
        if s.plan.fail_sync_dir || s.plan.fail_sync_dir_at == Some(s.dir_syncs) {
            return Err(injected("directory sync failed"));
        }
        let State { live_names, durable_names, unsynced, .. } = &mut *s;
        durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, &id) in live_names.iter() {
            if p.parent() == Some(dir) {
                durable_names.insert(p.clone(), id);
            }
        }
        *unsynced = std::mem::take(unsynced).into_iter().filter_map(|c| c.left_after_sync_of(dir)).collect();
        Ok(())
    }

    fn volume_sync(&self, _dir: &Path) -> io::Result<Option<Arc<dyn VolumeSync>>> {
        Ok(Some(Arc::new(MemVolume { state: Arc::clone(&self.state) })))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn FsLock>>> {
        let mut s = self.state.lock();
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(MemLock { state: Arc::clone(&self.state), path: path.to_path_buf() })))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_bytes_and_synced_names() {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let a = fs.open(&dir.join("a"), true).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let b = fs.open(&dir.join("b"), true).unwrap();
        b.write_all_at(b"x", 0).unwrap();
        b.sync_data().unwrap();
        let after = fs.crash(None);
        assert_eq!(after.read_all(&dir.join("a")), Some(b"hello".to_vec()));
        assert_eq!(after.read_all(&dir.join("b")), None, "name never synced");
        let torn = fs.crash(Some(3));
        assert_eq!(torn.read_all(&dir.join("a")), Some(b"hello wo".to_vec()));
    }

    #[test]
    fn a_crash_may_keep_any_prefix_of_the_unsynced_name_changes_in_order() {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        for name in ["a", "b"] {
            let f = fs.open(&dir.join(name), true).unwrap();
            f.write_all_at(name.as_bytes(), 0).unwrap();
            f.sync_data().unwrap();
        }
        fs.sync_dir(dir).unwrap();
        assert_eq!(fs.unsynced_name_changes(), 0);
        fs.remove_file(&dir.join("a")).unwrap();
        fs.rename(&dir.join("b"), &dir.join("c")).unwrap();
        fs.open(&dir.join("d"), true).unwrap();
        assert_eq!(fs.unsynced_name_changes(), 3);
        let names = |kept| {
            let after = fs.crash_keeping_name_changes(None, kept);
            let mut names = after.list(dir).unwrap();
            names.sort();
            names.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["a", "b"]);
        assert_eq!(names(1), ["b"]);
        assert_eq!(names(2), ["c"], "a rename is kept whole or not at all");
        assert_eq!(names(3), ["c", "d"]);
        assert_eq!(fs.crash_keeping_name_changes(None, 2).read_all(&dir.join("c")), Some(b"b".to_vec()));
        fs.sync_dir(dir).unwrap();
        assert_eq!(fs.unsynced_name_changes(), 0);
        assert_eq!(fs.crash(None).list(dir).unwrap().len(), 2);
    }

    #[test]
    fn a_rename_across_directories_is_durable_half_by_half() {
        let fs = FaultFileSystem::new();
        let (a, b) = (Path::new("/a"), Path::new("/b"));
        fs.create_dir_all(a).unwrap();
        fs.create_dir_all(b).unwrap();
        fs.open(&a.join("x"), true).unwrap();
        fs.sync_dir(a).unwrap();
        fs.rename(&a.join("x"), &b.join("x")).unwrap();
        fs.sync_dir(a).unwrap();
        assert_eq!(fs.unsynced_name_changes(), 1, "the new name is not durable yet");
        assert!(fs.crash(None).read_all(&b.join("x")).is_none());
        assert!(fs.crash_keeping_name_changes(None, 1).read_all(&b.join("x")).is_some());
        fs.sync_dir(b).unwrap();
        assert_eq!(fs.unsynced_name_changes(), 0);
        fs.remove_file(&b.join("x")).unwrap();
        fs.sync_dir(b).unwrap();
        assert!(fs.crash_keeping_name_changes(None, 1).read_all(&b.join("x")).is_none(), "nothing replays");
        fs.set_plan(FaultPlan { fail_sync_dir_at: Some(2), ..FaultPlan::default() });
        fs.sync_dir(a).unwrap();
        assert!(fs.sync_dir(b).is_err());
        fs.sync_dir(b).unwrap();
    }

    #[test]
    fn plan_fails_the_nth_removal_and_a_directory_goes_only_when_empty() {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/d/e");
        fs.create_dir_all(dir).unwrap();
        fs.open(&dir.join("a"), true).unwrap();
        fs.open(&dir.join("b"), true).unwrap();
        fs.sync_dir(dir).unwrap();
        fs.set_plan(FaultPlan { fail_remove: Some(2), ..FaultPlan::default() });
        fs.remove_file(&dir.join("a")).unwrap();
        assert!(fs.remove_file(&dir.join("b")).is_err());
        assert!(fs.read_all(&dir.join("b")).is_some(), "a failed removal removes nothing");
        assert_eq!(fs.remove_dir(dir).unwrap_err().kind(), io::ErrorKind::DirectoryNotEmpty);
        assert_eq!(fs.remove_dir(Path::new("/d")).unwrap_err().kind(), io::ErrorKind::DirectoryNotEmpty);
        fs.remove_file(&dir.join("b")).unwrap();
        fs.remove_dir(dir).unwrap();
        assert_eq!(fs.list(dir).unwrap_err().kind(), io::ErrorKind::NotFound);
        // Its files' removals were never synced: after a crash they, and it, are back.
        assert_eq!(fs.crash(None).list(dir).unwrap().len(), 2);
    }

    #[test]
    fn plan_fails_the_nth_write_and_sync() {
        let fs = FaultFileSystem::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.open(Path::new("/d/f"), true).unwrap();
        fs.set_plan(FaultPlan { fail_write: Some(2), fail_sync: Some(1), ..FaultPlan::default() });
        assert!(f.write_all_at(b"ab", 0).is_ok());
        assert!(f.write_all_at(b"cd", 2).is_err());
        assert!(f.sync_data().is_err());
        assert_eq!(fs.read_all(Path::new("/d/f")), Some(b"ab".to_vec()));
        assert_eq!(fs.crash(None).read_all(Path::new("/d/f")), None);
    }

    #[test]
    fn volume_sync_makes_every_file_durable_as_one_sync_and_fails_as_planned() {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let (a, b) = (fs.open(&dir.join("a"), true).unwrap(), fs.open(&dir.join("b"), true).unwrap());
        fs.sync_dir(dir).unwrap();
        let volume = fs.volume_sync(dir).unwrap().unwrap();
        fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
        a.write_all_at(b"aa", 0).unwrap();
        b.write_all_at(b"bb", 0).unwrap();
        assert!(volume.sync_volume().is_err(), "the first sync fails");
        assert_eq!(fs.crash(None).read_all(&dir.join("a")), Some(Vec::new()), "nothing durable");
        // A failure part-way: file 1 ("b") reached the disk, file 0 ("a") did not. (Written
        // again first: the failure above stranded them.)
        a.write_all_at(b"aa", 0).unwrap();
        b.write_all_at(b"bb", 0).unwrap();
        fs.set_plan(FaultPlan { fail_sync: Some(1), volume_sync_keeps: 0b10, ..FaultPlan::default() });
        assert!(volume.sync_volume().is_err());
        let partial = fs.crash(None);
        assert_eq!(partial.read_all(&dir.join("a")), Some(Vec::new()));
        assert_eq!(partial.read_all(&dir.join("b")), Some(b"bb".to_vec()));
        // What the failed syncs left is stranded: a later sync writes it only once rewritten.
        fs.set_plan(FaultPlan::default());
        volume.sync_volume().unwrap();
        assert_eq!(fs.counts().1, 1, "each volume sync is one sync");
        assert_eq!(fs.crash(None).read_all(&dir.join("a")), Some(vec![0, 0]), "stranded: the size, not the bytes");
        a.write_all_at(b"aa", 0).unwrap();
        volume.sync_volume().unwrap();
        let after = fs.crash(None);
        assert_eq!(after.read_all(&dir.join("a")), Some(b"aa".to_vec()));
        assert_eq!(after.read_all(&dir.join("b")), Some(b"bb".to_vec()));
    }

    #[test]
    fn bytes_a_failed_sync_left_are_stranded_until_written_again() {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let f = fs.open(&dir.join("f"), true).unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_all_at(b"durable ", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"stranded", 8).unwrap();
        fs.set_plan(FaultPlan { fail_sync: Some(1), ..FaultPlan::default() });
        assert!(f.sync_data().is_err());
        // Reads still see them (the page cache), and a later sync, on another handle too,
        // succeeds without making them durable.
        assert_eq!(fs.read_all(&dir.join("f")), Some(b"durable stranded".to_vec()));
        f.write_all_at(b"!", 16).unwrap();
        fs.open(&dir.join("f"), false).unwrap().sync_data().unwrap();
        assert_eq!(fs.crash(None).read_all(&dir.join("f")), Some(b"durable \0\0\0\0\0\0\0\0!".to_vec()));
        // Written again (the same bytes), they are dirty and the next sync writes them.
        f.write_all_at(b"stranded", 8).unwrap();
        f.sync_data().unwrap();
        assert_eq!(fs.crash(None).read_all(&dir.join("f")), Some(b"durable stranded!".to_vec()));
    }

    #[test]
    fn torn_write_keeps_half() {
        let fs = FaultFileSystem::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.open(Path::new("/d/f"), true).unwrap();
        fs.set_plan(FaultPlan { tear_write: Some(1), ..FaultPlan::default() });
        assert!(f.write_all_at(b"abcd", 0).is_err());
        assert_eq!(fs.read_all(Path::new("/d/f")), Some(b"ab".to_vec()));
    }

    #[test]
    fn second_lock_is_refused_until_the_first_drops() {
        let fs = FaultFileSystem::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let first = fs.try_lock(Path::new("/d/LOCK")).unwrap();
        assert!(first.is_some());
        assert!(fs.try_lock(Path::new("/d/LOCK")).unwrap().is_none());
        drop(first);
        assert!(fs.try_lock(Path::new("/d/LOCK")).unwrap().is_some());
    }
}
