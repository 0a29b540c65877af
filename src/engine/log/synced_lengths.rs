//! The synced-lengths file: each segment's synced length, as a clean close or a checkpoint of
//! the commit journal found it, so that a later open judges damage below it as corruption
//! (refused) and never as a torn tail (cut).
//!
//! Why: the open tells a write that a power loss interrupted from damage to synced records by
//! the unsynced distance of the frames after the bad one (FORMAT.md, invariant 3). The newest
//! records of a window's last segment have no later frame to vouch for them, so damage to them
//! would be cut as a torn tail, with every record after it: for a `Buffered` store, everything
//! written to that window since its last sync. A clean close syncs every segment first, then
//! writes this file. So does a checkpoint of the commit journal (`commit::checkpoint`): after
//! a power loss, each of an `Always` store's acknowledged records is then vouched for by this
//! file (those the last checkpoint synced) or by the journal (those written since, which the
//! open writes back). From then on each length the file lists is a durable prefix of its
//! segment for as long as the segment exists (bytes below a synced length are never
//! rewritten), whatever the store does after the next open. Each entry names its segment by
//! id *and* salt (the random number in the segment's header): an id is not reused while the
//! watermark's floor holds, but an open that lost the watermark (salvage) may hand one out
//! again, and the new segment then has another salt, so the entry does not apply to it.
//!
//! Layout (FORMAT.md, "Synced-lengths file"): version byte 1, a u32 count, that many
//! (u32 segment id, u64 salt, u64 length) entries, then a crc32 of everything before it;
//! little-endian.
//! Written atomically (temporary file, sync, rename, directory sync). A file that is missing,
//! of another version, or fails its checksum is ignored: the open then judges by the frames
//! alone, as before the file existed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::fs::FileSystem;
use super::segment::{WriterState, io_error};
use crate::StoreError;

/// The file's name.
pub(crate) const SYNCED_FILE: &str = "SYNCED";
pub(crate) const TEMPORARY_FILE: &str = "SYNCED.tmp";
const VERSION: u8 = 1;
/// The most entries read (a segment id is a u32): bounds what a damaged count may allocate.
const MAX_ENTRIES: usize = 1 << 24;
/// Bytes of one entry.
const ENTRY: usize = 4 + 8 + 8;

/// One segment's entry: its id, its salt, and the length a clean close found synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyncedLength {
    pub id: u32,
    pub salt: u64,
    pub len: u64,
}

/// The entries of a file, by segment id.
pub(crate) type SyncedLengths = HashMap<u32, SyncedLength>;

/// What `lengths` says of the segment `id` whose header holds `salt`: the length below which
/// nothing is torn, 0 when it says nothing of that segment.
pub(crate) fn synced_length(lengths: &SyncedLengths, id: u32, salt: u64) -> u64 {
    lengths.get(&id).filter(|e| e.salt == salt).map_or(0, |e| e.len)
}

/// Every segment's synced length as `writer` knows it, by id: what a clean close, and a
/// checkpoint of the commit journal, write once every segment is synced.
pub(crate) fn listing(writer: &WriterState) -> Vec<SyncedLength> {
    let mut listed: Vec<SyncedLength> =
        writer.segments.iter().map(|(&id, s)| SyncedLength { id, salt: s.salt, len: s.synced_len }).collect();
    listed.sort_unstable_by_key(|e| e.id);
    listed
}

fn encode(lengths: &[SyncedLength]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + 4 + lengths.len() * ENTRY + 4);
    b.push(VERSION);
    b.extend_from_slice(&u32::try_from(lengths.len()).unwrap_or(u32::MAX).to_le_bytes());
    for e in lengths {
        b.extend_from_slice(&e.id.to_le_bytes());
        b.extend_from_slice(&e.salt.to_le_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<SyncedLengths> {
    let (body, crc) = b.split_last_chunk::<4>()?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    let (&version, rest) = body.split_first()?;
    let (count, mut entries) = rest.split_first_chunk::<4>()?;
    let count = usize::try_from(u32::from_le_bytes(*count)).ok()?;
    if version != VERSION || count > MAX_ENTRIES || entries.len() != count * ENTRY {
        return None;
    }
    let mut lengths = HashMap::with_capacity(count);
    while let Some((id, rest)) = entries.split_first_chunk::<4>() {
        let (salt, rest) = rest.split_first_chunk::<8>()?;
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let id = u32::from_le_bytes(*id);
        lengths.insert(id, SyncedLength { id, salt: u64::from_le_bytes(*salt), len: u64::from_le_bytes(*len) });
        entries = rest;
    }
    Some(lengths)
}

/// Writes `lengths` as `dir`'s synced-lengths file, atomically. The caller has synced every
/// segment up to the length listed.
///
/// # Errors
/// [`StoreError::Io`]. A failure leaves the previous file, or a temporary file that opens
/// ignore: either way no length claimed is untrue.
pub(crate) fn write(fs: &Arc<dyn FileSystem>, dir: &Path, lengths: &[SyncedLength]) -> Result<(), StoreError> {
    super::replace_file_durably(fs, dir, TEMPORARY_FILE, SYNCED_FILE, &encode(lengths))
}

/// The lengths `dir`'s synced-lengths file lists; empty when there is none or it is not
/// valid (see the module documentation).
///
/// # Errors
/// [`StoreError::Io`] when the file exists but cannot be read.
pub(crate) fn load(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<SyncedLengths, StoreError> {
    let path = dir.join(SYNCED_FILE);
    let file = match fs.open(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_error("opening", &path, e)),
    };
    let size = file.size().map_err(|e| io_error("reading", &path, e))?;
    if size > (MAX_ENTRIES * ENTRY + 9) as u64 {
        return Ok(HashMap::new());
    }
    let mut bytes = vec![0; size as usize];
    file.read_exact_at(&mut bytes, 0).map_err(|e| io_error("reading", &path, e))?;
    Ok(decode(&bytes).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::FaultFileSystem;

    #[test]
    fn lengths_round_trip_and_a_damaged_or_missing_file_claims_nothing() {
        let fault = FaultFileSystem::new();
        let dir = Path::new("/s");
        fault.create_dir_all(dir).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        assert!(load(&fs, dir).unwrap().is_empty());
        let entry = |id, salt, len| SyncedLength { id, salt, len };
        let lengths = [entry(1, 9, 40), entry(7, u64::MAX, 1 << 33), entry(u32::MAX, 0, 12_345)];
        write(&fs, dir, &lengths).unwrap();
        let loaded = load(&fs, dir).unwrap();
        assert_eq!(loaded, lengths.iter().map(|e| (e.id, *e)).collect());
        // An entry speaks only of the segment with its id and salt.
        assert_eq!(synced_length(&loaded, 7, u64::MAX), 1 << 33);
        assert_eq!(synced_length(&loaded, 7, 8), 0);
        assert_eq!(synced_length(&loaded, 2, 9), 0);
        // It survives a power loss once written.
        fault.crash(None);
        assert_eq!(load(&fs, dir).unwrap(), loaded);
        // Every flipped byte, and every cut, makes the file claim nothing.
        let image = encode(&lengths);
        for at in 0..image.len() {
            let mut damaged = image.clone();
            damaged[at] ^= 0x01;
            assert_eq!(decode(&damaged), None, "flip at {at}");
            assert_eq!(decode(&image[..at]), None, "cut at {at}");
        }
        write(&fs, dir, &[]).unwrap();
        assert!(load(&fs, dir).unwrap().is_empty());
    }
}
