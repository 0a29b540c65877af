//! Segment files: one or more per expiration window, named by segment id, each starting with
//! the header of `FORMAT.md`; and a bounded LRU of open descriptors.
//!
//! A record goes to the *active* (last) segment of its window. The active segment rolls to a
//! new one when it would exceed the configured size; the old one is synced first, so a torn
//! tail can only ever be in the last segment of a window.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::fs::{FileSystem, FsFile, VolumeSync};
use super::record::{self, SEGMENT_HEADER_LEN};
use super::watermark::Watermark;
use crate::StoreError;

/// The file a failed sync leaves in the data directory (empty, never synced: it only has to
/// outlive the process until the next open in the same boot): the next open writes again the
/// bytes no completed sync covered before it syncs them (FORMAT.md, invariant 8), then removes
/// it. Best effort: creating it may fail too (no space, a read-only file system).
pub(crate) const UNSYNCED_FILE: &str = "UNSYNCED";

/// Leaves [`UNSYNCED_FILE`] in `dir` after a failed sync (best effort: errors are ignored), so
/// the next open writes again what no completed sync covered before it syncs it: a failed sync
/// leaves pages marked clean in the page cache, which a later sync would skip.
pub(crate) fn leave_unsynced_marker(fs: &dyn FileSystem, dir: &Path) {
    let _ = fs.open(&dir.join(UNSYNCED_FILE), true);
}

/// The file name of segment `id`.
pub(crate) fn segment_file_name(id: u32) -> String {
    format!("{id:010}.seg")
}

/// The segment id named by `path`, if it is a segment file.
pub(crate) fn parse_segment_file_name(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes `buf` at `at` of segment `s`'s file; when that reaches past the zeros written ahead,
/// extends the file with zeros (up to `ahead` bytes past the records, never past `max`) in the
/// same write, and records the new size in `s.allocated`.
fn write_preallocating(
    file: &dyn FsFile,
    s: &mut SegmentState,
    buf: &[u8],
    at: u64,
    (max, ahead): (u64, u64),
) -> std::io::Result<()> {
    let end = at + buf.len() as u64;
    if end <= s.allocated || ahead == 0 {
        file.write_all_at(buf, at)?;
        s.allocated = s.allocated.max(end);
        return Ok(());
    }
    let target = (end + ahead).min(max).max(end);
    let mut extended = Vec::with_capacity((target - at) as usize);
    extended.extend_from_slice(buf);
    extended.resize((target - at) as usize, 0);
    file.write_all_at(&extended, at)?;
    s.allocated = target;
    Ok(())
}

/// Cuts the zeros written ahead of segment `id`'s records and syncs the new size, so the file
/// holds exactly its records (at a roll, a sweep and a clean close).
///
/// # Errors
/// The OS error.
fn trim(file: &dyn FsFile, s: &mut SegmentState) -> std::io::Result<()> {
    if s.allocated <= s.len {
        return Ok(());
    }
    file.set_len(s.len)?;
    file.sync_data()?;
    s.allocated = s.len;
    if s.pending.is_empty() {
        // The sync covered every record written to the file.
        s.dirty = false;
        s.synced_len = s.len;
    }
    Ok(())
}

pub(crate) fn io_error(operation: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io { operation, path: path.display().to_string(), source }
}

/// What the writer knows about one segment.
#[derive(Clone, Debug)]
pub(crate) struct SegmentState {
    /// Its expiration window.
    pub window: i64,
    /// The random salt its frames' checksums are keyed with.
    pub salt: u64,
    /// Bytes written (header included): where the next record goes.
    pub len: u64,
    /// The file's size: `len` plus zeros written ahead of the records (preallocation), so that
    /// syncing a record into them does not change the file's size and commits no metadata.
    pub allocated: u64,
    /// Bytes known durable: the length at its last successful sync (at least the header). Each
    /// frame records how far before it this ended (FORMAT.md, "unsynced distance").
    pub synced_len: u64,
    /// The highest LSN of a removal-bearing record in it (0 when none).
    pub max_removal_lsn: u64,
    /// The latest expiration listed by an `Expired` record in it (`i64::MIN` when none).
    pub max_expiration: i64,
    /// Bytes of its notification records that a later record superseded (replaced, changed,
    /// deleted, evicted): what compaction could drop. An estimate kept as records are written
    /// and rebuilt on open.
    pub dead_bytes: u64,
    /// Written since its last sync.
    pub dirty: bool,
    /// Bytes at the end (`len - pending.len()..len`) still in the engine's buffer, not yet
    /// written to the OS (buffered durability only).
    pub pending: Vec<u8>,
}

/// The state only the commit leader (and the sweep) touches, under one mutex.
#[derive(Debug)]
pub(crate) struct WriterState {
    /// The next LSN to assign.
    pub next_lsn: u64,
    /// The highest LSN assigned, or at an open the highest a feed may report (below
    /// `next_lsn`, which an open moves up to the lease): what a snapshot and a sweep record as
    /// handed out, so the feeds of every later open, by snapshot or scan, report the same.
    pub assigned_through: u64,
    /// The next segment id to create.
    pub next_segment_id: u32,
    /// The active segment of each window.
    pub active: HashMap<i64, u32>,
    /// Every segment.
    pub segments: HashMap<u32, SegmentState>,
    /// The persisted floors; `lsn_floor` is also the LSN lease: no LSN at or above it is
    /// assigned before it is raised durably.
    pub watermark: Watermark,
    /// Empty between batches: a batch gathers its frames per segment here (kept for its
    /// capacity, so a batch allocates no list of its own).
    pub batch_buffers: Vec<(u32, u64, Vec<u8>)>,
    /// The commit journal of an `Always` store (`None`: each batch syncs its segments).
    pub journal: Option<super::journal::Journal>,
    /// What this session last wrote to the synced-lengths file (empty before it first does): a
    /// checkpoint that lists lengths writes the file only when they differ.
    pub listed: Vec<super::synced_lengths::SyncedLength>,
}

impl WriterState {
    /// The watermark to make durable before unlinking segments: the LSN lease and floors raised
    /// to everything assigned so far, and expirations listed up to `forgotten_expiration` marked
    /// as forgotten (removals are carried forward, never forgotten by unlinking).
    ///
    /// `unlinking`: the end of the last window a sweep unlinks (every segment of a window
    /// ending at or before it, all of which exist now), which recovery finishes unlinking if
    /// the sweep is cut short; `None` (compaction: a copy and its source may both survive)
    /// keeps the last sweep's.
    pub fn watermark_before_unlink(&self, forgotten_expiration: i64, unlinking: Option<i64>) -> Watermark {
        let w = self.watermark;
        let (unlinking_windows_through, unlinking_ids_below) = match unlinking {
            Some(through) => (through, self.next_segment_id),
            None => (w.unlinking_windows_through, w.unlinking_ids_below),
        };
        Watermark {
            lsn_floor: w.lsn_floor.max(self.next_lsn),
            sequence_floor: w.sequence_floor.max(self.assigned_through),
            segment_id_floor: w.segment_id_floor.max(self.next_segment_id),
            expirations_unlinked_through: w.expirations_unlinked_through.max(forgotten_expiration),
            removals_unlinked_through: w.removals_unlinked_through,
            unlinking_windows_through,
            unlinking_ids_below,
        }
    }

    /// The segments written since their last sync.
    pub fn dirty_segments(&self) -> Vec<u32> {
        self.segments.iter().filter(|(_, s)| s.dirty).map(|(&id, _)| id).collect()
    }
}

/// A small LRU of open file descriptors, which closes a segment that holds bytes no sync has
/// covered only when every descriptor it holds is of such a segment.
///
/// Why: Linux reports a failed background write-back of a file's pages to a later `fdatasync`
/// of it (on any descriptor, since 4.17: "errseq: Always report a writeback error once") only
/// while the file's inode stays in memory, and it may drop an inode that no descriptor holds
/// open once its pages are clean, which a failed write-back makes them (that commit's message
/// names this case). A segment written and not yet synced (with the commit journal, until the
/// next checkpoint; with `Buffered`, until the next sync: a `sync`, a roll, a sweep, or the
/// one a write runs first, see `commit::write_requests`) therefore keeps its descriptor
/// open while a clean one can be closed instead, so its sync reports such a failure instead
/// of succeeding over lost pages. The set of such segments mirrors their `dirty` flags,
/// which live under the writer's lock that readers opening a file do not take.
#[derive(Debug)]
struct Descriptors {
    capacity: usize,
    tick: u64,
    open: HashMap<u32, (Arc<dyn FsFile>, u64)>,
    /// The segments written since their last sync (their `dirty` flag, kept here for the LRU).
    unsynced: HashSet<u32>,
}

/// What readers know of one segment; shared with [`SegmentReader`]s, which keep it for the
/// reads of one call.
#[derive(Debug)]
pub(crate) struct Published {
    /// The window whose records it holds.
    window: i64,
    /// The checksum key of its frames ([`record::frame_key`] of its id and salt).
    key: u128,
    /// How many of its bytes the OS has: reads below this need no flush. A cut after a failed
    /// sync lowers it before it overwrites anything.
    flushed: AtomicU64,
}

impl Published {
    fn new(id: u32, window: i64, salt: u64, flushed: u64) -> Arc<Self> {
        Arc::new(Published { window, key: record::frame_key(u64::from(id), salt), flushed: AtomicU64::new(flushed) })
    }
}

/// What the engine has done since it opened, counted where it happens (read by
/// `LogStore::stats`). Relaxed: each count is exact on its own; several read together may
/// straddle one operation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records framed and written (to the OS or the engine's buffer).
    pub records: AtomicU64,
    /// Their frames' bytes.
    pub record_bytes: AtomicU64,
    /// Batches of the group commit that held at least one record.
    pub batches: AtomicU64,
    /// Records those batches held.
    pub batched_records: AtomicU64,
    /// `fdatasync` calls of the write path: a new segment's header, a segment's sync, a
    /// commit journal entry or generation.
    pub file_syncs: AtomicU64,
    /// `syncfs` calls (one for several segments).
    pub volume_syncs: AtomicU64,
    /// Checkpoints: every written segment synced (and the journal's generation restarted).
    pub checkpoints: AtomicU64,
    /// Segment files created.
    pub segments_created: AtomicU64,
    /// Segment files removed (by sweeps and compaction).
    pub segments_removed: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The segment files of one store.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// Per segment, what readers need: see [`Published`].
    shared: RwLock<HashMap<u32, Arc<Published>>>,
    descriptors: Mutex<Descriptors>,
    /// The writer's state; lock order: a feed lock, then this.
    pub writer: Mutex<WriterState>,
    /// Set by the first failed write or sync; from then on nothing touches the files but the
    /// cut that overwrites with zeros what no sync covered ([`Segments::roll_back`]).
    pub poisoned: AtomicBool,
    /// Segments roll at this size: zeros are never written past it.
    max_segment_bytes: u64,
    /// How far ahead of its records a segment's file is extended with zeros (0: never).
    preallocate_bytes: u64,
    /// Syncs a batch that touched several files in one call, when set.
    volume: Option<Arc<dyn VolumeSync>>,
    /// What the engine did since it opened.
    pub counters: Counters,
}

impl Segments {
    /// Segments restored by recovery.
    pub fn new(
        dir: &Path,
        fs: Arc<dyn FileSystem>,
        max_open_files: usize,
        (max_segment_bytes, preallocate_bytes): (u64, u64),
        writer: WriterState,
    ) -> Self {
        let shared = writer.segments.iter().map(|(&id, s)| (id, Published::new(id, s.window, s.salt, s.len))).collect();
        Self {
            dir: dir.to_path_buf(),
            fs,
            shared: RwLock::new(shared),
            descriptors: Mutex::new(Descriptors {
                capacity: max_open_files.max(1),
                tick: 0,
                open: HashMap::new(),
                unsynced: writer.dirty_segments().into_iter().collect(),
            }),
            writer: Mutex::new(writer),
            poisoned: AtomicBool::new(false),
            max_segment_bytes,
            preallocate_bytes,
            volume: None,
            counters: Counters::default(),
        }
    }

    /// Syncs a batch that touched several segment files with `volume` (one call), instead of
    /// one `fdatasync` per file.
    pub fn with_volume_sync(mut self, volume: Option<Arc<dyn VolumeSync>>) -> Self {
        self.volume = volume;
        self
    }

    /// The path of segment `id`.
    pub fn path(&self, id: u32) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file system.
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The checksum key of segment `id`'s frames (`None` once it was removed).
    pub fn frame_key(&self, id: u32) -> Option<u128> {
        self.shared.read().get(&id).map(|p| p.key)
    }

    /// The window of segment `id` (`None` once it was removed).
    pub fn window_of(&self, id: u32) -> Option<i64> {
        self.shared.read().get(&id).map(|p| p.window)
    }

    /// An open descriptor of segment `id`, from the LRU or freshly opened.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be opened.
    pub fn file(&self, id: u32) -> Result<Arc<dyn FsFile>, StoreError> {
        let mut d = self.descriptors.lock();
        d.tick += 1;
        let tick = d.tick;
        if let Some((file, used)) = d.open.get_mut(&id) {
            *used = tick;
            return Ok(Arc::clone(file));
        }
        let path = self.path(id);
        let file = self.fs.open(&path, false).map_err(|e| io_error("opening", &path, e))?;
        if d.open.len() >= d.capacity {
            // The least recently used of the synced segments, else of all (see `Descriptors`).
            let Descriptors { open, unsynced, .. } = &*d;
            let oldest = |synced_only: bool| {
                let candidates = open.iter().filter(|(id, _)| !(synced_only && unsynced.contains(*id)));
                candidates.min_by_key(|(_, (_, used))| *used).map(|(&k, _)| k)
            };
            if let Some(victim) = oldest(true).or_else(|| oldest(false)) {
                d.open.remove(&victim);
            }
        }
        d.open.insert(id, (Arc::clone(&file), tick));
        Ok(file)
    }

    /// How many segments hold bytes written since their last sync, and how many descriptors
    /// the LRU keeps open at most: while the first stays below the second, the LRU closes no
    /// descriptor of such a segment (see [`Descriptors`]).
    pub fn unsynced_and_capacity(&self) -> (usize, usize) {
        let d = self.descriptors.lock();
        (d.unsynced.len(), d.capacity)
    }

    /// How many descriptors the LRU holds open.
    pub fn open_descriptors(&self) -> usize {
        self.descriptors.lock().open.len()
    }

    /// Refuses when poisoned.
    ///
    /// # Errors
    /// [`StoreError::Poisoned`].
    pub fn check_poison(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) { Err(StoreError::Poisoned) } else { Ok(()) }
    }

    /// Poisons the store when `result` is an I/O failure.
    pub fn poison_on_error<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Io { .. } | StoreError::Corruption { .. }) = &result {
            // IMPORTANT 0: poison before anyone learns of the failure, so no later batch writes
            // or syncs (a failed sync is never retried).
            self.poisoned.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Creates segment `id` for `window`: header written and synced, directory synced.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store poisons.
    pub fn create(&self, writer: &mut WriterState, window: i64) -> Result<u32, StoreError> {
        self.check_poison()?;
        let created = self.create_unchecked(writer, window);
        self.poison_on_error(created)
    }

    fn create_unchecked(&self, writer: &mut WriterState, window: i64) -> Result<u32, StoreError> {
        let id = writer.next_segment_id;
        writer.next_segment_id = id.checked_add(1).ok_or_else(|| StoreError::Corruption {
            location: self.dir.display().to_string(),
            detail: "segment ids exhausted".into(),
        })?;
        let path = self.path(id);
        let file = self.fs.open(&path, true).map_err(|e| io_error("creating", &path, e))?;
        let salt = u64::from_le_bytes(crate::NotificationId::new_random().to_bytes()[..8].try_into().unwrap_or([7; 8]));
        let header = record::encode_segment_header(u64::from(id), window, salt);
        file.write_all_at(&header, 0).map_err(|e| io_error("writing", &path, e))?;
        // IMPORTANT 1: the header is durable before any record is appended after it.
        Counters::add(&self.counters.file_syncs, 1);
        if let Err(e) = file.sync_data() {
            self.mark_unsynced();
            return Err(io_error("syncing", &path, e));
        }
        // IMPORTANT 2: the directory entry is durable before any record in the file is
        // acknowledged.
        self.fs.sync_dir(&self.dir).map_err(|e| io_error("syncing", &self.dir, e))?;
        writer.segments.insert(
            id,
            SegmentState {
                window,
                salt,
                len: SEGMENT_HEADER_LEN as u64,
                allocated: SEGMENT_HEADER_LEN as u64,
                synced_len: SEGMENT_HEADER_LEN as u64,
                max_removal_lsn: 0,
                max_expiration: i64::MIN,
                dead_bytes: 0,
                dirty: false,
                pending: Vec::new(),
            },
        );
        writer.active.insert(window, id);
        self.shared.write().insert(id, Published::new(id, window, salt, SEGMENT_HEADER_LEN as u64));
        Counters::add(&self.counters.segments_created, 1);
        Ok(id)
    }

    /// Forgets segment `id` (after its file was unlinked).
    pub fn forget(&self, writer: &mut WriterState, id: u32) {
        if let Some(s) = writer.segments.remove(&id) {
            Counters::add(&self.counters.segments_removed, 1);
            if writer.active.get(&s.window) == Some(&id) {
                writer.active.remove(&s.window);
            }
        }
        self.shared.write().remove(&id);
        let mut d = self.descriptors.lock();
        d.open.remove(&id);
        d.unsynced.remove(&id);
    }

    /// Appends `buf` at the end (`at`) of segment `id`: straight to the OS when `buffer_limit`
    /// is 0, else into the engine's buffer, written to the OS once it holds `buffer_limit`
    /// bytes.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store must poison.
    pub fn append(
        &self,
        writer: &mut WriterState,
        id: u32,
        at: u64,
        buf: &[u8],
        buffer_limit: usize,
    ) -> Result<(), StoreError> {
        self.check_poison()?;
        let appended = self.append_unchecked(writer, id, at, buf, buffer_limit);
        self.poison_on_error(appended)
    }

    fn append_unchecked(
        &self,
        writer: &mut WriterState,
        id: u32,
        at: u64,
        buf: &[u8],
        buffer_limit: usize,
    ) -> Result<(), StoreError> {
        let max = self.max_segment_bytes;
        let Some(s) = writer.segments.get_mut(&id) else { return Ok(()) };
        if !s.dirty {
            self.descriptors.lock().unsynced.insert(id);
        }
        s.dirty = true;
        if buffer_limit == 0 && s.pending.is_empty() {
            let file = self.file(id)?;
            write_preallocating(&*file, s, buf, at, (max, self.preallocate_bytes))
                .map_err(|e| io_error("writing", &self.path(id), e))?;
            s.len = at + buf.len() as u64;
            self.publish(id, s.len);
            return Ok(());
        }
        if s.pending.capacity() == 0 {
            s.pending.reserve(buffer_limit.max(buf.len()) + record::FRAME_HEADER_LEN + 1024);
        }
        s.pending.extend_from_slice(buf);
        s.len = at + buf.len() as u64;
        if s.pending.len() >= buffer_limit {
            self.flush_all(writer)?;
        }
        Ok(())
    }

    /// Writes the engine's buffered bytes to the OS: every segment's, not one segment's, in
    /// order of segment id. A process crash then keeps every record written before the last
    /// flush, whatever its window, and loses only later ones: once a flush completes, the
    /// records the OS holds are a prefix of the operations (a flush of one segment alone could
    /// keep an append in one window and lose the earlier delete it depends on in another).
    ///
    /// A write that fails poisons the store and *rolls the flush back*: every segment it wrote
    /// (the failed one included) is cut back to its length before the flush (zeroed from
    /// there, see [`Segments::roll_back`]), so the files again hold a prefix of the
    /// operations, the one up to the previous flush (a failed flush
    /// that kept the segments written before the failure would keep a later append in one
    /// window and lose an earlier delete in another: fuzz finding 9). The cut is best effort: if
    /// it fails too, or a crash strikes during a flush, a prefix of each file is kept, as a
    /// power loss does (the module documentation).
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store must poison.
    pub fn flush_all(&self, writer: &mut WriterState) -> Result<(), StoreError> {
        self.check_poison()?;
        let mut buffered: Vec<(u32, u64, u64)> = writer
            .segments
            .iter()
            .filter(|(_, s)| !s.pending.is_empty())
            .map(|(&other, s)| (other, s.len - s.pending.len() as u64, s.len))
            .collect();
        if buffered.is_empty() {
            return Ok(());
        }
        buffered.sort_unstable();
        for (i, &(other, _, _)) in buffered.iter().enumerate() {
            let flushed = self.flush_unchecked(writer, other);
            if flushed.is_err() {
                // Poison first: no reader may flush again or trust the published lengths.
                let failed = self.poison_on_error(flushed);
                self.roll_back(&buffered[..=i]);
                return failed;
            }
        }
        // Published only once every buffer is written, so no reader ever reads bytes that a
        // roll-back would cut.
        for &(other, _, len) in &buffered {
            self.publish(other, len);
        }
        Ok(())
    }

    /// [`leave_unsynced_marker`] in the data directory.
    fn mark_unsynced(&self) {
        leave_unsynced_marker(&*self.fs, &self.dir);
    }

    /// Cuts each `(segment, from, to)`: its bytes `from..to` become zeros, which recovery reads
    /// as the end of the segment's records (space written ahead of them), and its published
    /// length falls to `from`, so a read of a record the cut removed asks for a flush, which the
    /// poisoned store refuses. Zeros rather than a shorter file: a reader may be reading that
    /// region through a memory map (of this handle, or of one the descriptor cache has since
    /// replaced), and a map over a truncated region faults (SIGBUS); over zeros it reads bytes
    /// whose checksum fails, an error. Errors are ignored: the store is poisoned already, and
    /// an open recovers from whatever the files hold.
    fn roll_back(&self, cuts: &[(u32, u64, u64)]) {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        for &(id, from, to) in cuts {
            if let Some(p) = self.shared.read().get(&id) {
                p.flushed.fetch_min(from, Ordering::SeqCst);
            }
            let Ok(file) = self.file(id) else { continue };
            // From the end backwards: whatever stops the cut part-way leaves records, then
            // zeros to the end (a clean end of the segment), never zeros before records.
            let mut end = to;
            while end > from {
                let n = (end - from).min(ZEROS.len() as u64);
                if file.write_all_at(&ZEROS[..n as usize], end - n).is_err() {
                    break;
                }
                end -= n;
            }
        }
    }

    fn flush_unchecked(&self, writer: &mut WriterState, id: u32) -> Result<(), StoreError> {
        let Some(s) = writer.segments.get_mut(&id) else { return Ok(()) };
        if s.pending.is_empty() {
            return Ok(());
        }
        let file = self.file(id)?;
        let at = s.len - s.pending.len() as u64;
        let pending = std::mem::take(&mut s.pending);
        let written = write_preallocating(&*file, s, &pending, at, (self.max_segment_bytes, self.preallocate_bytes));
        s.pending = pending;
        written.map_err(|e| io_error("writing", &self.path(id), e))?;
        // Keep the buffer's memory for the next records (freed when the segment is synced).
        s.pending.clear();
        Ok(())
    }

    /// Flushes and syncs segment `id` if it was written since its last sync.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store must poison (a failed sync is never retried).
    pub fn sync(&self, writer: &mut WriterState, id: u32) -> Result<(), StoreError> {
        if !writer.segments.get(&id).is_some_and(|s| s.dirty) {
            return Ok(());
        }
        self.flush_all(writer)?;
        let file = self.poison_on_error(self.file(id))?;
        Counters::add(&self.counters.file_syncs, 1);
        let synced = file.sync_data().map_err(|e| io_error("syncing", &self.path(id), e));
        self.cut_back_on_failed_sync(writer, synced)?;
        self.mark_synced(writer, &[id]);
        Ok(())
    }

    /// Poisons the store when `synced` (a sync's outcome) failed, and then cuts every segment
    /// back to the length its last successful sync made durable (`synced_len`), so the files
    /// hold only bytes known to be on disk.
    ///
    /// Why: after a failed `fdatasync`, Linux marks the pages it could not write clean and
    /// keeps them in the page cache, and a descriptor opened later (the next open's) is not
    /// told of the error. Without the cut, a reopen in the same boot would read those pages,
    /// serve their records and build on them, and a power loss would then take them away
    /// (PostgreSQL's "fsyncgate"). Nothing cut was acknowledged as durable: `Always` calls
    /// return after their sync, and `Buffered` promises durability only through a successful
    /// sync. The cut zeroes those bytes ([`Segments::roll_back`]); it is best effort (its errors
    /// are ignored: the store is poisoned already), and a crash before it leaves what a crash
    /// would.
    pub(crate) fn cut_back_on_failed_sync<T>(
        &self,
        writer: &mut WriterState,
        synced: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if synced.is_ok() {
            return synced;
        }
        let failed = self.poison_on_error(synced);
        self.mark_unsynced();
        let cut: Vec<(u32, u64, u64)> = writer
            .segments
            .iter()
            .filter(|(_, s)| s.len > s.synced_len)
            .map(|(&id, s)| (id, s.synced_len, s.len))
            .collect();
        self.roll_back(&cut);
        failed
    }

    /// Flushes and syncs every segment of `ids` written since its last sync. One file gets one
    /// `fdatasync`. Several files get one [`VolumeSync::sync_volume`] when the store has one
    /// (on ext4, one journal commit and disk flush for all of them); otherwise their syncs run
    /// in parallel (one thread each beyond the first), which the file system partly overlaps.
    ///
    /// # Errors
    /// [`StoreError::Io`] from the first flush or sync that failed; the store is poisoned
    /// (a failed sync is never retried), and no segment is marked clean.
    pub fn sync_many(&self, writer: &mut WriterState, ids: &[u32]) -> Result<(), StoreError> {
        let dirty: Vec<u32> =
            ids.iter().copied().filter(|id| writer.segments.get(id).is_some_and(|s| s.dirty)).collect();
        if dirty.len() <= 1 {
            return dirty.iter().try_for_each(|&id| self.sync(writer, id));
        }
        if let Some(volume) = &self.volume {
            self.flush_all(writer)?;
            Counters::add(&self.counters.volume_syncs, 1);
            let synced = volume.sync_volume().map_err(|e| io_error("syncing the file system of", &self.dir, e));
            self.cut_back_on_failed_sync(writer, synced)?;
            self.mark_synced(writer, &dirty);
            return Ok(());
        }
        if !self.fs.concurrent_syncs() {
            return dirty.iter().try_for_each(|&id| self.sync(writer, id));
        }
        self.flush_all(writer)?;
        let mut files = Vec::with_capacity(dirty.len());
        for &id in &dirty {
            files.push((id, self.poison_on_error(self.file(id))?));
        }
        Counters::add(&self.counters.file_syncs, files.len() as u64);
        let outcomes: Vec<(u32, std::io::Result<()>)> = std::thread::scope(|scope| {
            let mut spawned = Vec::new();
            let mut inline = Vec::new();
            for (id, file) in &files[1..] {
                let builder = std::thread::Builder::new().name("notifeed-sync".into());
                match builder.spawn_scoped(scope, move || file.sync_data()) {
                    Ok(handle) => spawned.push((*id, handle)),
                    // No thread to be had: sync it here, one after another.
                    Err(_) => inline.push((*id, file)),
                }
            }
            let mut outcomes = vec![(files[0].0, files[0].1.sync_data())];
            outcomes.extend(inline.into_iter().map(|(id, file)| (id, file.sync_data())));
            for (id, handle) in spawned {
                let outcome = handle.join().unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
                outcomes.push((id, outcome));
            }
            outcomes
        });
        for (id, outcome) in outcomes {
            let synced = outcome.map_err(|e| io_error("syncing", &self.path(id), e));
            self.cut_back_on_failed_sync(writer, synced)?;
        }
        self.mark_synced(writer, &dirty);
        Ok(())
    }

    /// Records that the segments `ids` are durable up to their length.
    fn mark_synced(&self, writer: &mut WriterState, ids: &[u32]) {
        let mut d = self.descriptors.lock();
        for id in ids {
            d.unsynced.remove(id);
            if let Some(s) = writer.segments.get_mut(id) {
                s.dirty = false;
                s.synced_len = s.len;
                s.pending = Vec::new();
            }
        }
    }

    /// Cuts the zeros written ahead of the records of every segment of `ids` (flushing the
    /// engine's buffers first), so each file holds exactly its records. Returns the bytes cut.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store is poisoned.
    pub fn trim_preallocated(&self, writer: &mut WriterState, ids: &[u32]) -> Result<u64, StoreError> {
        self.check_poison()?;
        let mut cut = 0;
        if !ids.is_empty() {
            self.flush_all(writer)?;
        }
        for &id in ids {
            let needs = writer.segments.get(&id).is_some_and(|s| s.allocated > s.len);
            if !needs {
                continue;
            }
            let file = self.poison_on_error(self.file(id))?;
            let Some(s) = writer.segments.get_mut(&id) else { continue };
            let before = s.allocated;
            let trimmed =
                trim(&*file, s).map(|()| before - s.allocated).map_err(|e| io_error("truncating", &self.path(id), e));
            cut += self.cut_back_on_failed_sync(writer, trimmed)?;
            if writer.segments.get(&id).is_some_and(|s| !s.dirty) {
                self.descriptors.lock().unsynced.remove(&id);
            }
        }
        Ok(cut)
    }

    fn publish(&self, id: u32, len: u64) {
        if let Some(p) = self.shared.read().get(&id) {
            p.flushed.store(len, Ordering::Release);
        }
    }

    /// Reads `len` bytes at `offset` of segment `id`.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn read(&self, id: u32, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let file = self.file(id)?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| io_error("reading", &self.path(id), e))?;
        Ok(buf)
    }

    /// A reader for the reads of one call (a page of a feed): it looks each segment up once.
    pub fn reader(&self) -> SegmentReader<'_> {
        SegmentReader { segments: self, held: Default::default(), next: 0 }
    }
}

/// A segment a [`SegmentReader`] looked up: its id, what readers know of it, its file.
type HeldSegment = (u32, Arc<Published>, Arc<dyn FsFile>);

/// Reads records for one call. It keeps what it looked up of each segment it read (its
/// [`Published`] state and file handle), so the reads of a page that fall in the same few
/// segments take no lock of the segment table or of the descriptor cache after the first.
/// Keep one only for the reads of one call: it holds the file handles (and maps) of up to 4
/// segments open until it is dropped, beyond the descriptor cache's bound (so concurrent
/// calls may hold up to 4 descriptors each more than `max_open_files`), and a segment removed
/// meanwhile stays readable through it. A caller holding the lock of the feed it reads never
/// meets that: a sweep or a compaction removes or repoints every entry in a segment, under
/// each feed's write lock, before it forgets the segment.
pub(crate) struct SegmentReader<'a> {
    segments: &'a Segments,
    /// The segments looked up last (a page's records lie in a few: one per window its feed's
    /// notifications expire in), replaced in turn; inline, so a reader allocates nothing.
    held: [Option<HeldSegment>; 4],
    /// The slot of `held` the next segment looked up replaces.
    next: usize,
}

impl SegmentReader<'_> {
    /// Calls `f` with the frame key of segment `id` and its `len` bytes at `offset`, written to
    /// the OS first if they are still in the engine's buffer; borrowed from the file's memory
    /// map when it covers them (see [`FsFile::read_with`]). `None` when the segment is gone.
    ///
    /// # Errors
    /// [`StoreError::Io`] (a failed flush poisons the store); [`StoreError::Poisoned`] when a
    /// cut after a failed sync overlapped the read.
    pub fn read_with<R>(
        &mut self,
        id: u32,
        offset: u64,
        len: usize,
        f: impl FnOnce(u128, &[u8]) -> R,
    ) -> Result<Option<R>, StoreError> {
        let segments = self.segments;
        let at = match self.held.iter().position(|h| h.as_ref().is_some_and(|(held, _, _)| *held == id)) {
            Some(at) => at,
            None => {
                let Some(published) = segments.shared.read().get(&id).cloned() else { return Ok(None) };
                let file = segments.file(id)?;
                let at = self.next;
                self.next = (self.next + 1) % self.held.len();
                self.held[at] = Some((id, published, file));
                at
            }
        };
        // Filled by the lookup above whenever it is not a hit.
        let Some((_, published, file)) = &self.held[at] else { return Ok(None) };
        let end = offset + len as u64;
        if published.flushed.load(Ordering::Acquire) < end {
            let mut writer = segments.writer.lock();
            segments.flush_all(&mut writer)?;
        }
        let key = published.key;
        let mut f = Some(f);
        let mut out = None;
        file.read_with(offset, len, &mut |bytes| out = f.take().map(|f| f(key, bytes)))
            .map_err(|e| io_error("reading", &segments.path(id), e))?;
        // A cut (after a failed sync: `cut_back_on_failed_sync`) lowers the published length
        // before it overwrites anything, so a read it may have overlapped finds the length
        // lowered now, and its result (which may mix old bytes and zeros, even past its
        // checksum) is not used. A read that finds it unchanged ended before the cut began (the
        // fence keeps the reads of the bytes before the load of the length).
        std::sync::atomic::fence(Ordering::Acquire);
        if published.flushed.load(Ordering::SeqCst) < end {
            return Err(StoreError::Poisoned);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::FaultFileSystem;

    fn segments(max_open: usize) -> Segments {
        let fs = FaultFileSystem::new();
        let dir = Path::new("/data");
        fs.create_dir_all(dir).unwrap();
        let writer = WriterState {
            next_lsn: 1,
            assigned_through: 0,
            next_segment_id: 1,
            active: HashMap::new(),
            segments: HashMap::new(),
            watermark: Watermark::default(),
            batch_buffers: Vec::new(),
            journal: None,
            listed: Vec::new(),
        };
        Segments::new(dir, Arc::new(fs), max_open, (64 << 20, 64 << 10), writer)
    }

    #[test]
    fn segment_file_names_round_trip() {
        assert_eq!(parse_segment_file_name(Path::new(&segment_file_name(42))), Some(42));
        assert_eq!(parse_segment_file_name(Path::new("LOCK")), None);
        assert_eq!(parse_segment_file_name(Path::new("12.seg")), None);
    }

    #[test]
    fn created_segment_starts_with_its_header() {
        let s = segments(4);
        let mut w = s.writer.lock();
        let id = s.create(&mut w, 17).unwrap();
        drop(w);
        let bytes = s.read(id, 0, SEGMENT_HEADER_LEN).unwrap();
        assert!(matches!(record::decode_segment_header(&bytes), Ok((i, 17, _)) if i == u64::from(id)));
        assert_eq!(s.window_of(id), Some(17));
    }

    #[test]
    fn a_read_that_a_cut_overlapped_is_refused_not_returned() {
        let s = segments(4);
        let mut w = s.writer.lock();
        let id = s.create(&mut w, 17).unwrap();
        let at = SEGMENT_HEADER_LEN as u64;
        s.append(&mut w, id, at, b"record bytes", 0).unwrap();
        drop(w);
        // Undisturbed, the read returns what the closure made of the bytes.
        assert_eq!(
            s.reader().read_with(id, at, 12, |_, bytes| bytes.to_vec()).unwrap(),
            Some(b"record bytes".to_vec())
        );
        // A cut that begins while the read is under way (its first step: the published length
        // falls) makes the read's result unusable.
        let overlapped = s.reader().read_with(id, at, 12, |_, bytes| {
            if let Some(p) = s.shared.read().get(&id) {
                p.flushed.fetch_min(at, Ordering::SeqCst);
            }
            bytes.to_vec()
        });
        assert!(matches!(overlapped, Err(StoreError::Poisoned)), "{overlapped:?}");
    }

    #[test]
    fn one_reader_reads_more_segments_than_it_holds_and_each_read_gets_its_own_segment() {
        // Descriptors for 2 files, a reader that holds 4 segments, 6 segments read in turn twice.
        let s = segments(2);
        let at = SEGMENT_HEADER_LEN as u64;
        let mut w = s.writer.lock();
        let ids: Vec<u32> = (0..6)
            .map(|window| {
                let id = s.create(&mut w, window).unwrap();
                s.append(&mut w, id, at, format!("segment {id}").as_bytes(), 0).unwrap();
                id
            })
            .collect();
        drop(w);
        let mut reader = s.reader();
        for id in ids.iter().chain(&ids).chain(ids.iter().rev()) {
            let expected = format!("segment {id}");
            let got = reader.read_with(*id, at, expected.len(), |key, bytes| (key, bytes.to_vec())).unwrap();
            assert_eq!(got, Some((s.frame_key(*id).unwrap(), expected.into_bytes())), "segment {id}");
        }
        // A segment forgotten since it was held is still read through the reader that holds it,
        // and is gone for a new one.
        let last = ids[ids.len() - 1];
        s.forget(&mut s.writer.lock(), last);
        assert!(reader.read_with(last, at, 1, |_, b| b.to_vec()).unwrap().is_some());
        assert_eq!(s.reader().read_with(last, at, 1, |_, b| b.to_vec()).unwrap(), None);
    }

    #[test]
    fn a_cut_overwrites_with_zeros_from_the_end_and_keeps_the_file_length() {
        let s = segments(4);
        let mut w = s.writer.lock();
        let id = s.create(&mut w, 17).unwrap();
        let at = SEGMENT_HEADER_LEN as u64;
        let record = vec![7u8; 100 << 10];
        s.append(&mut w, id, at, &record, 0).unwrap();
        let len = w.segments.get(&id).unwrap().len;
        drop(w);
        let size = s.file(id).unwrap().size().unwrap();
        s.roll_back(&[(id, at + 10, len)]);
        assert_eq!(s.file(id).unwrap().size().unwrap(), size, "no shorter file: a map over it would fault");
        let bytes = s.read(id, at, record.len()).unwrap();
        assert_eq!(&bytes[..10], &record[..10]);
        assert!(bytes[10..].iter().all(|&b| b == 0));
        // Reads of the cut bytes now ask for a flush, which the (poisoned) store refuses.
        s.poisoned.store(true, Ordering::SeqCst);
        assert!(matches!(s.reader().read_with(id, at, 20, |_, b| b.to_vec()), Err(StoreError::Poisoned)));
    }

    #[test]
    fn the_lru_closes_synced_segments_before_one_holding_unsynced_bytes() {
        // Descriptors for 2 files; segment `written` holds bytes no sync covered.
        let s = segments(2);
        let at = SEGMENT_HEADER_LEN as u64;
        let mut w = s.writer.lock();
        let ids: Vec<u32> = (0..5).map(|window| s.create(&mut w, window).unwrap()).collect();
        let written = ids[0];
        s.append(&mut w, written, at, b"unsynced", 0).unwrap();
        drop(w);
        let held = |id: u32| s.descriptors.lock().open.contains_key(&id);
        // Every other segment is opened in turn, each used more recently than `written`.
        for &id in &ids[1..] {
            s.file(id).unwrap();
            assert!(held(written), "segment {written} was closed to open {id}");
            assert!(s.open_descriptors() <= 2);
        }
        // Once synced, it is closed like any other.
        s.sync(&mut s.writer.lock(), written).unwrap();
        for &id in &ids[1..] {
            s.file(id).unwrap();
        }
        assert!(!held(written));
        // When every descriptor held is of an unsynced segment, the bound still holds.
        let mut w = s.writer.lock();
        for &id in &ids {
            s.append(&mut w, id, at, b"unsynced", 0).unwrap();
            assert!(s.open_descriptors() <= 2);
        }
    }

    #[test]
    fn open_descriptors_stay_bounded_by_the_lru() {
        let s = segments(3);
        let mut w = s.writer.lock();
        let ids: Vec<u32> = (0..10).map(|window| s.create(&mut w, window).unwrap()).collect();
        drop(w);
        for &id in &ids {
            s.file(id).unwrap();
            assert!(s.open_descriptors() <= 3);
        }
        assert_eq!(s.open_descriptors(), 3);
    }
}
