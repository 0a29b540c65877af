//! The commit journal of a `Durability::Always` store: one preallocated file to which each
//! group-commit batch appends a copy of the frames it wrote to its segments, and which is the
//! only file the batch syncs.
//!
//! Why: a batch writes to the segment of each window its records expire in, and a disk pays
//! for every place written in a sync, not for the bytes (benches/README.md, "Group commit and
//! the disk"). One contiguous copy synced costs about what one record synced costs, where a
//! `syncfs` over a batch's ~6 segment files cost twice that. The segments are synced later, at
//! a *checkpoint*: when an entry does not fit, before a batch that would leave the descriptor
//! LRU no slot for a synced segment (`segment::Descriptors` says why), and at every `sync`
//! request (so `FeedStore::sync`, a clean close and compaction). After a checkpoint the journal's entries
//! are dead, and a new generation starts at its beginning. (A segment's roll also syncs every
//! segment written, but keeps the generation: replaying its entries only writes again what the
//! segments hold.)
//!
//! An open replays the journal before it reads any segment ([`replay`]): it writes every
//! piece of every valid entry of the current generation back to its segment (the same bytes
//! at the same offset: replay is idempotent, and a piece of a segment unlinked since is
//! skipped), syncs those segments, and only then scans them. So a crash or power loss that
//! kept the journal but lost unsynced segment pages loses no acknowledged record.
//!
//! The format is in FORMAT.md ("Commit journal").

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::{FileSystem, FsFile};
use super::record::SEGMENT_HEADER_LEN;
use super::segment::{io_error, leave_unsynced_marker};
use crate::StoreError;

/// The journal's file name in the store's directory.
pub(crate) const JOURNAL_FILE: &str = "commit.journal";
/// The journal format's version (byte 8 of a header slot).
pub(crate) const JOURNAL_VERSION: u8 = 1;
const MAGIC: [u8; 8] = *b"NFJRNL\0\0";
/// Header slot `g % 2` holds generation `g`: a torn write of one slot leaves the other.
const SLOT_STRIDE: u64 = 512;
const SLOT_LEN: usize = 32;
/// Where the entries begin.
pub(crate) const ENTRIES_START: u64 = 4096;
/// An entry's header: body length, crc32.
const ENTRY_HEADER_LEN: usize = 8;
/// A piece's header: segment id, offset in the segment, length.
const PIECE_HEADER_LEN: usize = 16;
/// The smallest journal the engine makes, whatever the configuration asks: room for 4 KiB of
/// entries (a batch whose entry does not fit syncs its segments instead).
pub(crate) const MIN_JOURNAL_BYTES: u64 = ENTRIES_START + 4096;
/// The largest: an entry's length is a `u32`, and the file is written full of zeros at open.
pub(crate) const MAX_JOURNAL_BYTES: u64 = 1 << 30;
/// Generations at or past this are not read (no store gets there: one per open and per
/// checkpoint), so that `generation + 1` never overflows.
const MAX_GENERATION: u64 = 1 << 62;

fn encode_slot(generation: u64, salt: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(&MAGIC);
    slot[8] = JOURNAL_VERSION;
    slot[12..20].copy_from_slice(&generation.to_le_bytes());
    slot[20..28].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&slot[..28]);
    slot[28..].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The generation and salt a header slot holds, if it is whole.
fn decode_slot(bytes: &[u8]) -> Option<(u64, u64)> {
    let slot = bytes.get(..SLOT_LEN)?;
    let crc = u32::from_le_bytes(slot[28..32].try_into().ok()?);
    if slot[..8] != MAGIC || slot[8] != JOURNAL_VERSION || crc32fast::hash(&slot[..28]) != crc {
        return None;
    }
    let generation = u64::from_le_bytes(slot[12..20].try_into().ok()?);
    (generation < MAX_GENERATION).then_some((generation, u64::from_le_bytes(slot[20..28].try_into().ok()?)))
}

/// The current generation and its salt: the higher generation of the two whole slots
/// (`None`: neither is whole, so no entry is valid).
fn current_generation(header: &[u8]) -> Option<(u64, u64)> {
    let at = |slot: u64| header.get(usize::try_from(slot * SLOT_STRIDE).ok()?..).and_then(decode_slot);
    at(0).max(at(1))
}

/// An entry's checksum: keyed by its generation, the generation's random salt and the entry's
/// offset, so an entry of an earlier generation, one found at another offset, or one forged
/// inside a notification's content (stored verbatim in older entries; its author cannot know
/// the salt) never passes.
fn entry_crc((generation, salt): (u64, u64), at: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(&salt.to_le_bytes());
    h.update(&at.to_le_bytes());
    h.update(&(body.len() as u64).to_le_bytes());
    h.update(body);
    h.finalize()
}

/// The open journal, held in the writer's state (so under the segment writer's lock).
#[derive(Debug)]
pub(crate) struct Journal {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    generation: u64,
    salt: u64,
    /// Where the next entry goes.
    next: u64,
    /// Entries end here.
    capacity: u64,
    /// The entry being built: a blank header, then its pieces.
    entry: Vec<u8>,
}

impl Journal {
    /// Opens the journal of `dir` (creating it, sized to `capacity` bytes of zeros, at least
    /// [`MIN_JOURNAL_BYTES`]), after [`replay`] wrote it back, and starts a new generation,
    /// synced: no entry it held is valid any more, and whatever the page cache held of it that
    /// a failed sync left off the disk (a header slot, a discarded entry's zeroed header) is on
    /// the disk before any new entry is written. Durable on return (file, size, directory
    /// entry). Costs one write and one sync of the file.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn open(fs: &dyn FileSystem, dir: &Path, capacity: u64) -> Result<Self, StoreError> {
        let path = dir.join(JOURNAL_FILE);
        let capacity = capacity.clamp(MIN_JOURNAL_BYTES, MAX_JOURNAL_BYTES);
        let file = fs.open(&path, true).map_err(|e| io_error("opening", &path, e))?;
        let size = file.size().map_err(|e| io_error("reading the size of", &path, e))?;
        // Zeros up to the capacity, written (not a sparse extension), so that a later entry's
        // sync changes no file size and commits no metadata.
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut at = size.min(capacity);
        while at < capacity {
            let n = (capacity - at).min(ZEROS.len() as u64);
            file.write_all_at(&ZEROS[..n as usize], at).map_err(|e| io_error("writing", &path, e))?;
            at += n;
        }
        let mut header = vec![0u8; ENTRIES_START as usize];
        file.read_exact_at(&mut header, 0).map_err(|e| io_error("reading", &path, e))?;
        let generation = current_generation(&header).map_or(0, |(generation, _)| generation);
        let mut journal = Journal { file, path, generation, salt: 0, next: ENTRIES_START, capacity, entry: Vec::new() };
        journal.reset().map_err(|e| io_error("syncing", &journal.path, e))?;
        fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
        Ok(journal)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the current generation holds no entry.
    pub fn is_empty(&self) -> bool {
        self.next == ENTRIES_START
    }

    /// Starts an entry (dropping any unfinished one).
    pub fn begin(&mut self) {
        self.entry.clear();
        self.entry.extend_from_slice(&[0; ENTRY_HEADER_LEN]);
    }

    /// Adds to the entry `bytes`, written at `offset` of segment `segment`.
    pub fn add(&mut self, segment: u32, offset: u64, bytes: &[u8]) {
        self.entry.extend_from_slice(&segment.to_le_bytes());
        self.entry.extend_from_slice(&offset.to_le_bytes());
        self.entry.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.entry.extend_from_slice(bytes);
    }

    /// Whether the entry holds a piece and fits in what is left of the journal.
    pub fn fits(&self) -> bool {
        self.entry.len() > ENTRY_HEADER_LEN
            && self.entry.len() - ENTRY_HEADER_LEN <= u32::MAX as usize
            && self.next.saturating_add(self.entry.len() as u64) <= self.capacity
    }

    /// Writes the entry and syncs the journal: on success every piece in it is durable (a
    /// replay would write it back). Call only when [`Journal::fits`].
    ///
    /// # Errors
    /// The OS error. The entry's fate is then unknown: [`Journal::discard`] it, and poison.
    pub fn commit(&mut self) -> io::Result<()> {
        let body_len = (self.entry.len() - ENTRY_HEADER_LEN) as u32;
        let crc = entry_crc((self.generation, self.salt), self.next, &self.entry[ENTRY_HEADER_LEN..]);
        self.entry[..4].copy_from_slice(&body_len.to_le_bytes());
        self.entry[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&self.entry, self.next)?;
        self.file.sync_data()?;
        self.next += self.entry.len() as u64;
        Ok(())
    }

    /// After a failed [`Journal::commit`]: overwrites the entry's header with zeros (best
    /// effort), so that a reopen in the same boot, which reads the page cache, does not replay
    /// what no writer was told is durable.
    pub fn discard(&mut self) {
        let _ = self.file.write_all_at(&[0; ENTRY_HEADER_LEN], self.next);
    }

    /// Starts a new generation at the journal's beginning: every entry written so far stops
    /// being valid. Call only once every segment they cover is synced (a checkpoint).
    ///
    /// # Errors
    /// The OS error; the old generation may then still be current, whose replay only writes
    /// back bytes the segments already hold.
    pub fn reset(&mut self) -> io::Result<()> {
        let generation = self.generation + 1;
        if generation >= MAX_GENERATION {
            return Err(io::Error::other("the commit journal's generations are exhausted"));
        }
        let salt = u64::from_le_bytes(crate::NotificationId::new_random().to_bytes()[..8].try_into().unwrap_or([9; 8]));
        self.file.write_all_at(&encode_slot(generation, salt), (generation % 2) * SLOT_STRIDE)?;
        self.file.sync_data()?;
        (self.generation, self.salt) = (generation, salt);
        self.next = ENTRIES_START;
        Ok(())
    }
}

/// What [`replay`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Valid entries found.
    pub entries: u64,
    /// Pieces written back to their segments.
    pub pieces: u64,
    /// Pieces whose segment no longer exists (unlinked after they were journaled).
    pub skipped: u64,
}

/// Replays the journal of `dir`, if there is one: writes every piece of each valid entry of
/// the current generation, in order, back into its segment file (`segment_path` names it),
/// skipping segments that no longer exist, and syncs every segment written. The entries stop
/// at the first that is not whole (a torn write, or the end of the generation). The journal
/// itself is left as it is ([`Journal::open`] or [`remove`] ends its generation). At most
/// [`REPLAY_OPEN_FILES`] segments are held open at once (one is synced and closed to make
/// room). A failed sync leaves `UNSYNCED`, as the scan's does, so the next open writes again
/// what that sync may have stranded.
///
/// # Errors
/// [`StoreError::Io`]; [`StoreError::Corruption`] when a whole entry (its crc32 passes) does
/// not parse or places a piece outside a segment's records, which no writer produces.
pub(crate) fn replay(
    fs: &dyn FileSystem,
    dir: &Path,
    segment_path: impl Fn(u32) -> PathBuf,
) -> Result<Replayed, StoreError> {
    let path = dir.join(JOURNAL_FILE);
    let file = match fs.open(&path, false) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(io_error("opening", &path, e)),
    };
    let size = file.size().map_err(|e| io_error("reading the size of", &path, e))?;
    if size < ENTRIES_START {
        return Ok(Replayed::default());
    }
    let mut header = vec![0u8; ENTRIES_START as usize];
    file.read_exact_at(&mut header, 0).map_err(|e| io_error("reading", &path, e))?;
    let Some(key) = current_generation(&header) else { return Ok(Replayed::default()) };
    let corrupt = |at: u64, detail: &str| StoreError::Corruption {
        location: format!("{} offset {at}", path.display()),
        detail: detail.to_owned(),
    };
    let mut replayed = Replayed::default();
    let mut segments =
        ReplayTargets { fs, dir, segment_path: &segment_path, open: BTreeMap::new(), missing: Vec::new() };
    // Entry by entry (a journal of a checkpointed store holds none valid: one read).
    let mut at = ENTRIES_START;
    let mut body = Vec::new();
    while at + ENTRY_HEADER_LEN as u64 <= size {
        let mut header = [0u8; ENTRY_HEADER_LEN];
        file.read_exact_at(&mut header, at).map_err(|e| io_error("reading", &path, e))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = at + ENTRY_HEADER_LEN as u64;
        if len == 0 || start + u64::from(len) > size {
            break;
        }
        body.resize(len as usize, 0);
        file.read_exact_at(&mut body, start).map_err(|e| io_error("reading", &path, e))?;
        if entry_crc(key, at, &body) != crc {
            break;
        }
        replayed.entries += 1;
        let mut p = 0;
        while p < body.len() {
            let here = start + p as u64;
            let Some(piece) = body.get(p..p + PIECE_HEADER_LEN) else {
                return Err(corrupt(here, "a journal entry ends inside a piece's header"));
            };
            let segment = u32::from_le_bytes([piece[0], piece[1], piece[2], piece[3]]);
            let mut offset = [0u8; 8];
            offset.copy_from_slice(&piece[4..12]);
            let offset = u64::from_le_bytes(offset);
            let n = u32::from_le_bytes([piece[12], piece[13], piece[14], piece[15]]) as usize;
            let from = p + PIECE_HEADER_LEN;
            let Some(data) = from.checked_add(n).and_then(|to| body.get(from..to)) else {
                return Err(corrupt(here, "a journal piece runs past its entry"));
            };
            if offset < SEGMENT_HEADER_LEN as u64
                || offset.checked_add(n as u64).is_none_or(|end| end > u64::from(u32::MAX))
            {
                return Err(corrupt(here, "a journal piece lies outside a segment's records"));
            }
            if segments.write(segment, offset, data)? {
                replayed.pieces += 1;
            } else {
                replayed.skipped += 1;
            }
            p = from + n;
        }
        at = start + u64::from(len);
    }
    segments.sync_all()?;
    Ok(replayed)
}

/// At most this many segment files are held open by a replay.
pub(crate) const REPLAY_OPEN_FILES: usize = 32;

/// The segments a replay writes to: open ones (to sync at the end), and ids found missing.
struct ReplayTargets<'a, F: Fn(u32) -> PathBuf> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    segment_path: &'a F,
    open: BTreeMap<u32, Arc<dyn FsFile>>,
    missing: Vec<u32>,
}

impl<F: Fn(u32) -> PathBuf> ReplayTargets<'_, F> {
    /// Writes `data` at `offset` of segment `id`; `false` when the segment no longer exists.
    fn write(&mut self, id: u32, offset: u64, data: &[u8]) -> Result<bool, StoreError> {
        if self.missing.contains(&id) {
            return Ok(false);
        }
        if !self.open.contains_key(&id) {
            if self.open.len() >= REPLAY_OPEN_FILES
                && let Some((&other, _)) = self.open.iter().next()
            {
                self.sync_and_close(other)?;
            }
            let path = (self.segment_path)(id);
            match self.fs.open(&path, false) {
                Ok(file) => {
                    self.open.insert(id, file);
                }
                // Unlinked since (its window expired, or compaction replaced it).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.missing.push(id);
                    return Ok(false);
                }
                Err(e) => return Err(io_error("opening", &path, e)),
            }
        }
        let Some(file) = self.open.get(&id) else { return Ok(false) };
        file.write_all_at(data, offset).map_err(|e| io_error("writing", &(self.segment_path)(id), e))?;
        Ok(true)
    }

    fn sync_and_close(&mut self, id: u32) -> Result<(), StoreError> {
        let Some(file) = self.open.remove(&id) else { return Ok(()) };
        if let Err(e) = file.sync_data() {
            // As the scan's failed syncs: the next open writes again what this one stranded.
            leave_unsynced_marker(self.fs, self.dir);
            return Err(io_error("syncing", &(self.segment_path)(id), e));
        }
        Ok(())
    }

    fn sync_all(&mut self) -> Result<(), StoreError> {
        while let Some((&id, _)) = self.open.iter().next() {
            self.sync_and_close(id)?;
        }
        Ok(())
    }
}

/// Removes the journal of `dir` if there is one (a `Buffered` store keeps none), once
/// [`replay`] has written it back. Durable on return.
///
/// # Errors
/// [`StoreError::Io`].
pub(crate) fn remove(fs: &dyn FileSystem, dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(JOURNAL_FILE);
    match fs.remove_file(&path) {
        Ok(()) => fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("removing", &path, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::FaultFileSystem;

    /// Where the test pieces go: past a segment header.
    const AT: u64 = SEGMENT_HEADER_LEN as u64;

    fn segment_path(id: u32) -> PathBuf {
        PathBuf::from(format!("/db/{id}.seg"))
    }

    fn setup_with(segments: u32) -> (FaultFileSystem, Journal) {
        let fs = FaultFileSystem::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        for id in 1..=segments {
            fs.open(&segment_path(id), true).unwrap().write_all_at(&[0; 128], 0).unwrap();
        }
        let journal = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES).unwrap();
        (fs, journal)
    }

    fn setup() -> (FaultFileSystem, Journal) {
        setup_with(2)
    }

    fn commit(journal: &mut Journal, pieces: &[(u32, u64, &[u8])]) {
        journal.begin();
        for &(segment, offset, bytes) in pieces {
            journal.add(segment, offset, bytes);
        }
        assert!(journal.fits());
        journal.commit().unwrap();
    }

    fn segment(fs: &FaultFileSystem, id: u32) -> Vec<u8> {
        fs.read_all(&segment_path(id)).unwrap()
    }

    fn at(from: u64, len: usize) -> std::ops::Range<usize> {
        from as usize..from as usize + len
    }

    #[test]
    fn replay_writes_back_every_piece_of_the_current_generation_in_order() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, AT, b"abc"), (2, AT, b"xy")]);
        commit(&mut journal, &[(1, AT + 1, b"BC")]);
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 2, pieces: 3, skipped: 0 });
        assert_eq!(&segment(&fs, 1)[at(AT, 3)], b"aBC");
        assert_eq!(&segment(&fs, 2)[at(AT, 2)], b"xy");
    }

    #[test]
    fn entries_of_an_earlier_generation_are_not_replayed() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, AT, b"old1")]);
        commit(&mut journal, &[(1, AT + 4, b"old2")]);
        journal.reset().unwrap();
        commit(&mut journal, &[(2, AT, b"new!")]);
        // The old generation's second entry lies right after the new one (same length as the
        // first): whole, where an entry would start, but keyed by the old generation.
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 1, pieces: 1, skipped: 0 });
        assert_eq!(&segment(&fs, 1)[at(AT, 8)], &[0; 8]);
        // Every open starts a generation of its own, with a salt of its own.
        let reopened = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES).unwrap();
        assert_eq!(reopened.generation, journal.generation + 1);
        assert_ne!(reopened.salt, journal.salt);
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap().entries, 0);
        let again = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES).unwrap();
        assert_eq!(again.generation, reopened.generation + 1);
    }

    #[test]
    fn a_torn_slot_leaves_the_other_generation_and_a_piece_of_a_removed_segment_is_skipped() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, AT, b"kept"), (3, AT, b"gone")]);
        let path = Path::new("/db").join(JOURNAL_FILE);
        let mut bytes = fs.read_all(&path).unwrap();
        // A reset whose slot write tore: the newer slot is garbage, the older one rules.
        let newer = ((journal.generation + 1) % 2 * SLOT_STRIDE) as usize;
        bytes[newer..newer + SLOT_LEN].copy_from_slice(&[0xAB; SLOT_LEN]);
        fs.overwrite(&path, bytes);
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 1, pieces: 1, skipped: 1 });
        assert!(fs.read_all(&segment_path(3)).is_none(), "replay creates no segment");
        assert_eq!(&segment(&fs, 1)[at(AT, 4)], b"kept");
    }

    #[test]
    fn a_whole_entry_that_does_not_parse_is_corruption_and_a_flipped_one_ends_the_replay() {
        for (offset, claimed, detail) in [
            (AT, 100, "runs past its entry"),
            (8, 5, "outside a segment's records"),
            (u64::from(u32::MAX), 5, "outside"),
            (u64::MAX - 2, 5, "outside"),
        ] {
            let (fs, mut journal) = setup();
            // A piece that no writer makes, under a valid crc32.
            journal.begin();
            journal.entry.extend_from_slice(&1u32.to_le_bytes());
            journal.entry.extend_from_slice(&offset.to_le_bytes());
            journal.entry.extend_from_slice(&(claimed as u32).to_le_bytes());
            journal.entry.extend_from_slice(b"short");
            journal.commit().unwrap();
            match replay(&fs, Path::new("/db"), segment_path) {
                Err(StoreError::Corruption { detail: d, .. }) => assert!(d.contains(detail), "{d}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(segment(&fs, 1), vec![0; 128], "nothing was written");
        }

        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, AT, b"one")]);
        commit(&mut journal, &[(1, AT + 3, b"two")]);
        let path = Path::new("/db").join(JOURNAL_FILE);
        let mut bytes = fs.read_all(&path).unwrap();
        let second = ENTRIES_START as usize + ENTRY_HEADER_LEN + PIECE_HEADER_LEN + 3;
        bytes[second + ENTRY_HEADER_LEN + PIECE_HEADER_LEN] ^= 1;
        fs.overwrite(&path, bytes);
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap().entries, 1);
        assert_eq!(&segment(&fs, 1)[at(AT, 6)], b"one\0\0\0");
    }

    #[test]
    fn a_slot_past_the_last_generation_is_not_read() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, AT, b"kept")]);
        // A whole slot (valid crc32) naming a generation no store reaches.
        let path = Path::new("/db").join(JOURNAL_FILE);
        let mut bytes = fs.read_all(&path).unwrap();
        let other = ((journal.generation + 1) % 2 * SLOT_STRIDE) as usize;
        bytes[other..other + SLOT_LEN].copy_from_slice(&encode_slot(u64::MAX, 7));
        fs.overwrite(&path, bytes);
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap().entries, 1, "the real slot rules");
        let reopened = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES).unwrap();
        assert_eq!(reopened.generation, journal.generation + 1);
    }

    #[test]
    fn an_entry_keyed_without_the_generations_salt_is_not_replayed() {
        let (fs, mut journal) = setup();
        // What someone who knows the generation and the offset but not the salt can forge.
        journal.begin();
        journal.add(1, AT, b"forged");
        let body = journal.entry[ENTRY_HEADER_LEN..].to_vec();
        let crc = entry_crc((journal.generation, 0), ENTRIES_START, &body);
        journal.entry[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        journal.entry[4..8].copy_from_slice(&crc.to_le_bytes());
        journal.file.write_all_at(&journal.entry, ENTRIES_START).unwrap();
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap(), Replayed::default());
        assert_eq!(segment(&fs, 1), vec![0; 128]);
    }

    #[test]
    fn a_replay_over_more_segments_than_it_keeps_open_writes_and_syncs_them_all() {
        let count = REPLAY_OPEN_FILES as u32 * 2 + 3;
        let (fs, mut journal) = setup_with(count);
        // One entry touching every segment, then one touching them again in reverse.
        let ids: Vec<u32> = (1..=count).collect();
        let first: Vec<(u32, u64, &[u8])> = ids.iter().map(|&id| (id, AT, &b"first"[..])).collect();
        commit(&mut journal, &first);
        let second: Vec<(u32, u64, &[u8])> = ids.iter().rev().map(|&id| (id, AT + 5, &b"+2"[..])).collect();
        commit(&mut journal, &second);
        let crashed = fs.crash(None);
        let replayed = replay(&crashed, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 2, pieces: u64::from(count) * 2, skipped: 0 });
        // Durable: a second power loss keeps what the replay wrote.
        let again = crashed.crash(None);
        for id in ids {
            assert_eq!(&segment(&again, id)[at(AT, 7)], b"first+2", "segment {id}");
        }
    }

    #[test]
    fn an_entry_that_does_not_fit_is_refused_and_an_empty_one_never_fits() {
        let (_fs, mut journal) = setup();
        journal.begin();
        assert!(!journal.fits(), "an entry with no piece");
        journal.add(1, AT, &vec![7; MIN_JOURNAL_BYTES as usize]);
        assert!(!journal.fits(), "an entry larger than the journal");
    }
}
