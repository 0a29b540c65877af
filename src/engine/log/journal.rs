//! The commit journal of a `Durability::Always` store: one preallocated file to which each
//! group-commit batch appends a copy of the frames it wrote to its segments, and which is the
//! only file the batch syncs.
//!
//! Why: a batch writes to the segment of each window its records expire in, and a disk pays
//! for every place written in a sync, not for the bytes (benches/README.md, "Group commit and
//! the disk"). One contiguous copy synced costs about what one record synced costs, where a
//! `syncfs` over a batch's ~6 segment files cost twice that. The segments are synced later, at
//! a *checkpoint*: when the journal is full, at every `sync` request (so `FeedStore::sync`,
//! a clean close and compaction), and when a segment rolls. After a checkpoint the journal's
//! entries are dead, and a new generation starts at its beginning.
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
use super::segment::io_error;
use crate::StoreError;

/// The journal's file name in the store's directory.
pub(crate) const JOURNAL_FILE: &str = "commit.journal";
/// The journal format's version (byte 8 of a header slot).
pub(crate) const JOURNAL_VERSION: u8 = 1;
const MAGIC: [u8; 8] = *b"NFJRNL\0\0";
/// Header slot `g % 2` holds generation `g`: a torn write of one slot leaves the other.
const SLOT_STRIDE: u64 = 512;
const SLOT_LEN: usize = 24;
/// Where the entries begin.
pub(crate) const ENTRIES_START: u64 = 4096;
/// An entry's header: body length, crc32.
const ENTRY_HEADER_LEN: usize = 8;
/// A piece's header: segment id, offset in the segment, length.
const PIECE_HEADER_LEN: usize = 16;
/// The smallest journal the engine makes, whatever the configuration asks.
pub(crate) const MIN_JOURNAL_BYTES: u64 = 64 << 10;

fn encode_slot(generation: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(&MAGIC);
    slot[8] = JOURNAL_VERSION;
    slot[12..20].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&slot[..20]);
    slot[20..].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The generation a header slot holds, if it is whole.
fn decode_slot(bytes: &[u8]) -> Option<u64> {
    let slot = bytes.get(..SLOT_LEN)?;
    let crc = u32::from_le_bytes(slot[20..24].try_into().ok()?);
    if slot[..8] != MAGIC || slot[8] != JOURNAL_VERSION || crc32fast::hash(&slot[..20]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(slot[12..20].try_into().ok()?))
}

/// The current generation: the higher of the two whole slots (`None`: neither is whole, so no
/// entry is valid).
fn current_generation(header: &[u8]) -> Option<u64> {
    let at = |slot: u64| header.get(usize::try_from(slot * SLOT_STRIDE).ok()?..).and_then(decode_slot);
    at(0).max(at(1))
}

/// An entry's checksum: keyed by its generation and offset, so an entry of an earlier
/// generation, or one found at another offset, never passes.
fn entry_crc(generation: u64, at: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
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
    /// Where the next entry goes.
    next: u64,
    /// Entries end here.
    capacity: u64,
    /// The entry being built: a blank header, then its pieces.
    entry: Vec<u8>,
}

impl Journal {
    /// Opens the journal of `dir` (creating it, sized to `capacity` bytes of zeros, at least
    /// [`MIN_JOURNAL_BYTES`]), after [`replay`] wrote back the `replayed` entries. It starts a
    /// new generation when the replay found entries, so that none is replayed again, or when
    /// no generation is recorded; a journal with no valid entry (a clean close checkpoints)
    /// goes on in its generation and is not written. Durable on return (file, size and
    /// directory entry).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn open(fs: &dyn FileSystem, dir: &Path, capacity: u64, replayed: u64) -> Result<Self, StoreError> {
        let path = dir.join(JOURNAL_FILE);
        let capacity = capacity.max(MIN_JOURNAL_BYTES);
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
        let recorded = current_generation(&header);
        let mut journal =
            Journal { file, path, generation: recorded.unwrap_or(0), next: ENTRIES_START, capacity, entry: Vec::new() };
        if at > size.min(capacity) || recorded.is_none() || replayed > 0 {
            journal.reset().map_err(|e| io_error("syncing", &journal.path, e))?;
            fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
        }
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
        self.entry.len() > ENTRY_HEADER_LEN && self.next.saturating_add(self.entry.len() as u64) <= self.capacity
    }

    /// Writes the entry and syncs the journal: on success every piece in it is durable (a
    /// replay would write it back). Call only when [`Journal::fits`].
    ///
    /// # Errors
    /// The OS error. The entry's fate is then unknown: [`Journal::discard`] it, and poison.
    pub fn commit(&mut self) -> io::Result<()> {
        let body_len = (self.entry.len() - ENTRY_HEADER_LEN) as u32;
        let crc = entry_crc(self.generation, self.next, &self.entry[ENTRY_HEADER_LEN..]);
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
        self.file.write_all_at(&encode_slot(generation), (generation % 2) * SLOT_STRIDE)?;
        self.file.sync_data()?;
        self.generation = generation;
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
/// skipping segments that no longer exist, then syncs every segment written. The entries stop
/// at the first that is not whole (a torn write, or the end of the generation). The journal
/// itself is left as it is ([`Journal::open`] or [`remove`] ends its generation).
///
/// # Errors
/// [`StoreError::Io`]; [`StoreError::Corruption`] when a whole entry (its crc32 passes) does
/// not parse, which no writer produces.
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
    let Some(generation) = current_generation(&header) else { return Ok(Replayed::default()) };
    let corrupt = |at: usize, detail: &str| StoreError::Corruption {
        location: format!("{} offset {at}", path.display()),
        detail: detail.to_owned(),
    };
    let mut replayed = Replayed::default();
    let mut written: BTreeMap<u32, Option<Arc<dyn FsFile>>> = BTreeMap::new();
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
        if entry_crc(generation, at, &body) != crc {
            break;
        }
        let start = start as usize;
        replayed.entries += 1;
        let mut p = 0;
        while p < body.len() {
            let Some(piece) = body.get(p..p + PIECE_HEADER_LEN) else {
                return Err(corrupt(start + p, "a journal entry ends inside a piece's header"));
            };
            let segment = u32::from_le_bytes([piece[0], piece[1], piece[2], piece[3]]);
            let mut offset = [0u8; 8];
            offset.copy_from_slice(&piece[4..12]);
            let offset = u64::from_le_bytes(offset);
            let n = u32::from_le_bytes([piece[12], piece[13], piece[14], piece[15]]) as usize;
            let from = p + PIECE_HEADER_LEN;
            let Some(data) = from.checked_add(n).and_then(|to| body.get(from..to)) else {
                return Err(corrupt(start + p, "a journal piece runs past its entry"));
            };
            let target = match written.get(&segment) {
                Some(file) => file.clone(),
                None => {
                    let seg_path = segment_path(segment);
                    let file = match fs.open(&seg_path, false) {
                        Ok(file) => Some(file),
                        // Unlinked since (its window expired, or compaction replaced it).
                        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                        Err(e) => return Err(io_error("opening", &seg_path, e)),
                    };
                    written.insert(segment, file.clone());
                    file
                }
            };
            match target {
                Some(file) => {
                    file.write_all_at(data, offset).map_err(|e| io_error("writing", &segment_path(segment), e))?;
                    replayed.pieces += 1;
                }
                None => replayed.skipped += 1,
            }
            p = from + n;
        }
        at = start as u64 + u64::from(len);
    }
    for (segment, file) in written {
        if let Some(file) = file {
            file.sync_data().map_err(|e| io_error("syncing", &segment_path(segment), e))?;
        }
    }
    Ok(replayed)
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

    fn segment_path(id: u32) -> PathBuf {
        PathBuf::from(format!("/db/{id}.seg"))
    }

    fn setup() -> (FaultFileSystem, Journal) {
        let fs = FaultFileSystem::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        for id in [1, 2] {
            fs.open(&segment_path(id), true).unwrap().write_all_at(&[0; 64], 0).unwrap();
        }
        let journal = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES, 0).unwrap();
        (fs, journal)
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

    #[test]
    fn replay_writes_back_every_piece_of_the_current_generation_in_order() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, 8, b"abc"), (2, 0, b"xy")]);
        commit(&mut journal, &[(1, 9, b"BC")]);
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 2, pieces: 3, skipped: 0 });
        assert_eq!(&segment(&fs, 1)[8..11], b"aBC");
        assert_eq!(&segment(&fs, 2)[..2], b"xy");
    }

    #[test]
    fn entries_of_an_earlier_generation_are_not_replayed() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, 8, b"old1")]);
        commit(&mut journal, &[(1, 12, b"old2")]);
        journal.reset().unwrap();
        commit(&mut journal, &[(2, 0, b"new!")]);
        // The old generation's second entry lies right after the new one (same length as the
        // first): whole, where an entry would start, but keyed by the old generation.
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 1, pieces: 1, skipped: 0 });
        assert_eq!(&segment(&fs, 1)[8..16], &[0; 8]);
        // A reopen that replayed starts a generation of its own; one that found nothing goes on.
        let reopened = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES, replayed.entries).unwrap();
        assert_eq!(reopened.generation, journal.generation + 1);
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap().entries, 0);
        let again = Journal::open(&fs, Path::new("/db"), MIN_JOURNAL_BYTES, 0).unwrap();
        assert_eq!(again.generation, reopened.generation);
    }

    #[test]
    fn a_torn_slot_leaves_the_other_generation_and_a_piece_of_a_removed_segment_is_skipped() {
        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, 8, b"kept"), (3, 0, b"gone")]);
        let path = Path::new("/db").join(JOURNAL_FILE);
        let mut bytes = fs.read_all(&path).unwrap();
        // A reset whose slot write tore: the newer slot is garbage, the older one rules.
        let newer = ((journal.generation + 1) % 2 * SLOT_STRIDE) as usize;
        bytes[newer..newer + SLOT_LEN].copy_from_slice(&[0xAB; SLOT_LEN]);
        fs.overwrite(&path, bytes);
        let replayed = replay(&fs, Path::new("/db"), segment_path).unwrap();
        assert_eq!(replayed, Replayed { entries: 1, pieces: 1, skipped: 1 });
        assert!(fs.read_all(&segment_path(3)).is_none(), "replay creates no segment");
        assert_eq!(&segment(&fs, 1)[8..12], b"kept");
    }

    #[test]
    fn a_whole_entry_that_does_not_parse_is_corruption_and_a_flipped_one_ends_the_replay() {
        let (fs, mut journal) = setup();
        // A piece claiming more bytes than its entry holds, under a valid crc32.
        journal.begin();
        journal.entry.extend_from_slice(&1u32.to_le_bytes());
        journal.entry.extend_from_slice(&8u64.to_le_bytes());
        journal.entry.extend_from_slice(&100u32.to_le_bytes());
        journal.entry.extend_from_slice(b"short");
        journal.commit().unwrap();
        let refused = replay(&fs, Path::new("/db"), segment_path);
        assert!(matches!(refused, Err(StoreError::Corruption { .. })), "{refused:?}");

        let (fs, mut journal) = setup();
        commit(&mut journal, &[(1, 8, b"one")]);
        commit(&mut journal, &[(1, 11, b"two")]);
        let path = Path::new("/db").join(JOURNAL_FILE);
        let mut bytes = fs.read_all(&path).unwrap();
        let second = ENTRIES_START as usize + ENTRY_HEADER_LEN + PIECE_HEADER_LEN + 3;
        bytes[second + ENTRY_HEADER_LEN + PIECE_HEADER_LEN] ^= 1;
        fs.overwrite(&path, bytes);
        assert_eq!(replay(&fs, Path::new("/db"), segment_path).unwrap().entries, 1);
        assert_eq!(&segment(&fs, 1)[8..14], b"one\0\0\0");
    }

    #[test]
    fn an_entry_that_does_not_fit_is_refused_and_an_empty_one_never_fits() {
        let (_fs, mut journal) = setup();
        journal.begin();
        assert!(!journal.fits(), "an entry with no piece");
        journal.add(1, 0, &vec![7; MIN_JOURNAL_BYTES as usize]);
        assert!(!journal.fits(), "an entry larger than the journal");
    }
}
