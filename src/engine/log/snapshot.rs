//! The index snapshot: the whole in-memory index, written at a clean close and read by the next
//! open instead of scanning every record. It is a disposable cache, never a source of truth:
//!
//! * It is written only after everything was synced, by a store that is not poisoned and lost
//!   nothing to salvage, as `INDEX.tmp`, synced, renamed to `INDEX`, directory synced.
//! * It names every segment file with its length and the crc32 of its whole content. The open
//!   uses it only when the directory holds exactly those files with exactly those bytes (it
//!   reads and checksums every segment, which costs far less than decoding every record), and
//!   only when its own checksum passes; otherwise it reports why and scans as before.
//! * The open removes it before serving, so it is read at most once.
//!
//! So a snapshot that is damaged, stale (a segment grew, was truncated, unlinked or flipped
//! since) or from another store is never used, and corruption in a segment is still found and
//! reported by the scan at open. The layout is in `FORMAT.md` ("Index snapshot").

use foldhash::{HashMap, HashMapExt};
use std::path::Path;
use std::sync::Arc;

use super::fs::FileSystem;
use super::index::{EntryFields, FeedParts, Index};
use super::record::{self, SEGMENT_HEADER_LEN};
use super::recovery::{IndexSnapshot, Recovered, RecoveryReport};
use super::segment::{SegmentState, WriterState, io_error, parse_segment_file_name, segment_file_name};
use super::watermark::Watermark;
use crate::{RemovalReason, StoreError};

/// The snapshot's file name.
pub(crate) const SNAPSHOT_FILE: &str = "INDEX";
pub(crate) const TEMPORARY_FILE: &str = "INDEX.tmp";
const MAGIC: &[u8; 8] = b"NFEEDIDX";
const VERSION: u8 = 3;
/// Magic, version, three zero bytes, body crc32, body length.
const HEADER_LEN: usize = 8 + 1 + 3 + 4 + 8;
const ENTRY_LEN: usize = 16 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 1 + 1;
const SEGMENT_LEN: usize = 4 + 8 + 8 + 8 + 4 + 8 + 8 + 8;
/// Segments are read this much at a time to checksum them.
const READ_CHUNK: usize = 1 << 20;

/// One segment as the snapshot names it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SegmentRecord {
    id: u32,
    window: i64,
    salt: u64,
    len: u64,
    crc: u32,
    max_removal_lsn: u64,
    max_expiration: i64,
    dead_bytes: u64,
}

/// Everything a snapshot holds.
#[derive(Debug, Default)]
struct Snapshot {
    /// The highest LSN assigned (version 1 held the next LSN, which an open had moved up to
    /// the lease; version 2 hashed app ids with crc32).
    assigned_through: u64,
    next_segment_id: u32,
    new_feed_horizon: (u64, u64, i64),
    segments: Vec<SegmentRecord>,
    feeds: Vec<(String, FeedParts)>,
}

/// The crc32 of the first `len` bytes of segment `id`, read in chunks.
fn segment_crc(fs: &Arc<dyn FileSystem>, dir: &Path, id: u32, len: u64) -> Result<u32, StoreError> {
    let path = dir.join(segment_file_name(id));
    let file = fs.open(&path, false).map_err(|e| io_error("opening", &path, e))?;
    let size = file.size().map_err(|e| io_error("reading", &path, e))?;
    if size != len {
        return Err(StoreError::Corruption {
            location: path.display().to_string(),
            detail: format!("{size} bytes where {len} were expected"),
        });
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0; READ_CHUNK.min(usize::try_from(len).unwrap_or(READ_CHUNK))];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |left| left.min(buf.len()));
        file.read_exact_at(&mut buf[..n], at).map_err(|e| io_error("reading", &path, e))?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize())
}

/// Writes the snapshot of `index` and `writer` into `dir`. The caller has synced every segment
/// (none holds buffered bytes) and holds the writer's lock, so nothing changes meanwhile.
///
/// Cost: reads every segment once (to checksum it) and writes about 62 bytes per notification.
///
/// # Errors
/// [`StoreError::Io`]; [`StoreError::Corruption`] when a segment's size is not what the writer
/// wrote. Nothing is renamed into place unless all of it was written and synced.
pub(crate) fn write(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    index: &Index,
    writer: &WriterState,
) -> Result<(), StoreError> {
    let mut segments = Vec::with_capacity(writer.segments.len());
    for (&id, s) in &writer.segments {
        if !s.pending.is_empty() || s.dirty {
            return Err(StoreError::Backend {
                engine: "log",
                detail: format!("segment {id} is not synced; no index snapshot is written"),
            });
        }
        segments.push(SegmentRecord {
            id,
            window: s.window,
            salt: s.salt,
            len: s.len,
            crc: segment_crc(fs, dir, id, s.len)?,
            max_removal_lsn: s.max_removal_lsn,
            max_expiration: s.max_expiration,
            dead_bytes: s.dead_bytes,
        });
    }
    segments.sort_by_key(|s| s.id);

    let mut body = Vec::new();
    put_u64(&mut body, writer.assigned_through);
    put_u32(&mut body, writer.next_segment_id);
    let (sequence, removals, expirations) = index.new_feed_horizon();
    put_u64(&mut body, sequence);
    put_u64(&mut body, removals);
    put_i64(&mut body, expirations);
    put_len(&mut body, segments.len());
    for s in &segments {
        put_u32(&mut body, s.id);
        put_i64(&mut body, s.window);
        put_u64(&mut body, s.salt);
        put_u64(&mut body, s.len);
        put_u32(&mut body, s.crc);
        put_u64(&mut body, s.max_removal_lsn);
        put_i64(&mut body, s.max_expiration);
        put_u64(&mut body, s.dead_bytes);
    }
    let feeds = index.all_feeds();
    put_len(&mut body, feeds.len());
    for cell in &feeds {
        let f = cell.index.read();
        put_bytes(&mut body, cell.key.as_bytes());
        put_u64(&mut body, f.latest_sequence);
        put_u64(&mut body, f.forgotten_removals_through);
        put_i64(&mut body, f.forgotten_expirations_through);
        let groups: Vec<&str> = f.group_names().collect();
        put_len(&mut body, groups.len());
        for name in groups {
            put_bytes(&mut body, name.as_bytes());
        }
        put_len(&mut body, f.held());
        body.reserve(f.held() * ENTRY_LEN);
        for e in f.held_fields() {
            put_entry(&mut body, &e);
        }
        put_len(&mut body, f.removals().count());
        for &(sequence, id, reason) in f.removals() {
            put_u64(&mut body, sequence);
            body.extend_from_slice(&id);
            body.push(reason.to_u8());
        }
        put_len(&mut body, f.swept().count());
        for &(expiration, id) in f.swept() {
            put_i64(&mut body, expiration);
            body.extend_from_slice(&id);
        }
    }

    let mut file_bytes = Vec::with_capacity(HEADER_LEN + body.len());
    file_bytes.extend_from_slice(MAGIC);
    file_bytes.push(VERSION);
    file_bytes.extend_from_slice(&[0; 3]);
    put_u32(&mut file_bytes, crc32fast::hash(&body));
    put_u64(&mut file_bytes, body.len() as u64);
    file_bytes.extend_from_slice(&body);

    // The snapshot is whole on disk before it takes its name (a torn one would only fail its
    // checksum, but a whole one is worth the sync at a clean close).
    super::replace_file_durably(fs, dir, TEMPORARY_FILE, SNAPSHOT_FILE, &file_bytes)
}

/// Removes the snapshot (and a half-written one) from `dir`, so a snapshot is read at most once
/// and never outlives the state it describes.
///
/// # Errors
/// [`StoreError::Io`] other than "not found".
pub(crate) fn remove(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<(), StoreError> {
    for name in [SNAPSHOT_FILE, TEMPORARY_FILE] {
        let path = dir.join(name);
        match fs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("removing", &path, e)),
        }
    }
    Ok(())
}

/// Rebuilds the index from the snapshot in `dir`, if there is one that matches the segments
/// exactly. `Ok(None)`: there is none. `Err(reason)`: there is one, and why it is not used.
///
/// Cost: reads every segment once (to checksum it), and O(notifications) to rebuild the hash
/// tables and the expiry order.
pub(crate) fn load(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    watermark: Watermark,
    removal_log_capacity: usize,
    window_nanos: i64,
) -> Result<Option<Recovered>, String> {
    let path = dir.join(SNAPSHOT_FILE);
    let file = match fs.open(&path, false) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let size = file.size().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The header says how long the body is: the file must be exactly that long before anything
    // is allocated for it (a damaged size must be rejected, not attempted).
    let mut header = [0; HEADER_LEN];
    if size < HEADER_LEN as u64 {
        return Err(format!("{size} bytes, shorter than its header"));
    }
    file.read_exact_at(&mut header, 0).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let body_len = u64::from_le_bytes(header[16..24].try_into().map_err(|_| "a short header".to_string())?);
    if body_len.checked_add(HEADER_LEN as u64) != Some(size) {
        return Err(format!("{size} bytes where its header says {} + {body_len}", HEADER_LEN));
    }
    let size = usize::try_from(size).map_err(|_| "larger than memory".to_string())?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size).map_err(|_| format!("{size} bytes do not fit in memory"))?;
    bytes.resize(size, 0);
    file.read_exact_at(&mut bytes, 0).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    drop(file);
    let snapshot = decode(&bytes)?;
    drop(bytes);

    // The directory must hold exactly the segments the snapshot names, byte for byte.
    let mut on_disk: Vec<u32> = fs
        .list(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .iter()
        .filter_map(|p| parse_segment_file_name(p))
        .collect();
    on_disk.sort_unstable();
    let named: Vec<u32> = snapshot.segments.iter().map(|s| s.id).collect();
    if on_disk != named {
        return Err(format!(
            "the segment files changed since it was written ({} now, {} then)",
            on_disk.len(),
            named.len()
        ));
    }
    for s in &snapshot.segments {
        let crc = segment_crc(fs, dir, s.id, s.len)
            .map_err(|e| format!("segment {} changed since it was written: {e}", s.id))?;
        if crc != s.crc {
            return Err(format!("segment {} changed since it was written (checksum)", s.id));
        }
        let seg_path = dir.join(segment_file_name(s.id));
        let seg = fs.open(&seg_path, false).map_err(|e| format!("cannot open {}: {e}", seg_path.display()))?;
        let mut header = [0; SEGMENT_HEADER_LEN];
        seg.read_exact_at(&mut header, 0).map_err(|e| format!("cannot read {}: {e}", seg_path.display()))?;
        match record::decode_segment_header(&header) {
            Ok((id, window, salt)) if id == u64::from(s.id) && window == s.window && salt == s.salt => {}
            _ => return Err(format!("segment {}: its header does not match", s.id)),
        }
    }

    build(snapshot, watermark, removal_log_capacity, window_nanos).map(Some)
}

/// The recovered state a valid snapshot describes, under the floors of `watermark` (which may
/// have been raised after the snapshot was written, never lowered).
fn build(
    snapshot: Snapshot,
    watermark: Watermark,
    removal_log_capacity: usize,
    window_nanos: i64,
) -> Result<Recovered, String> {
    let floor = snapshot.assigned_through.max(watermark.sequence_floor);
    let horizon = (
        snapshot.new_feed_horizon.0.max(floor),
        snapshot.new_feed_horizon.1.max(watermark.removals_unlinked_through),
        snapshot.new_feed_horizon.2.max(watermark.expirations_unlinked_through),
    );
    let mut index = Index::new(horizon, window_nanos);
    index.set_new_feed_horizon(horizon);
    let mut expiries = Vec::new();
    for (key, mut parts) in snapshot.feeds {
        parts.latest_sequence = parts.latest_sequence.max(floor);
        if parts.removals.len() > removal_log_capacity {
            // A smaller capacity than at close: forget the oldest, as the log would.
            let cut = parts.removals.len() - removal_log_capacity;
            let forgotten = parts.removals[cut - 1].0;
            parts.removals.drain(..cut);
            parts.forgotten_removals_through = parts.forgotten_removals_through.max(forgotten);
        }
        let feed = super::index::FeedIndex::from_parts(parts).map_err(|e| format!("feed {key:?}: {e}"))?;
        let cell = index.adopt_feed(&key, feed).ok_or_else(|| format!("feed {key:?} appears twice"))?;
        let f = cell.index.read();
        expiries.extend(f.held_entries().map(|e| (e.expiration, cell.number, e.id_key())));
    }
    index.expect_expiries(expiries);

    let mut segments = HashMap::with_capacity(snapshot.segments.len());
    let mut active: HashMap<i64, u32> = HashMap::new();
    let mut max_id = 0;
    for s in snapshot.segments {
        max_id = max_id.max(s.id);
        let last = active.entry(s.window).or_insert(s.id);
        *last = (*last).max(s.id);
        segments.insert(
            s.id,
            SegmentState {
                window: s.window,
                salt: s.salt,
                len: s.len,
                allocated: s.len,
                synced_len: s.len,
                max_removal_lsn: s.max_removal_lsn,
                max_expiration: s.max_expiration,
                dead_bytes: s.dead_bytes,
                dirty: false,
                pending: Vec::new(),
            },
        );
    }
    let report =
        RecoveryReport { segments: segments.len(), index_snapshot: IndexSnapshot::Loaded, ..Default::default() };
    let writer = WriterState {
        next_lsn: snapshot.assigned_through.saturating_add(1).max(watermark.lsn_floor),
        assigned_through: floor,
        next_segment_id: snapshot.next_segment_id.max(max_id.saturating_add(1)).max(watermark.segment_id_floor),
        active,
        segments,
        watermark,
        batch_buffers: Vec::new(),
        journal: None,
        listed: Vec::new(),
    };
    Ok(Recovered { index, writer, report })
}

fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("not an index snapshot".into());
    }
    if bytes[8] != VERSION || bytes[9..12] != [0, 0, 0] {
        return Err(format!("unknown snapshot version {}", bytes[8]));
    }
    let mut header = Reader { bytes: &bytes[12..HEADER_LEN] };
    let crc = header.u32()?;
    let len = header.u64()?;
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(format!("{} bytes of body where the header says {len}", body.len()));
    }
    if crc32fast::hash(body) != crc {
        return Err("it fails its checksum".into());
    }
    let mut r = Reader { bytes: body };
    let mut snapshot = Snapshot {
        assigned_through: r.u64()?,
        next_segment_id: r.u32()?,
        new_feed_horizon: (r.u64()?, r.u64()?, r.i64()?),
        ..Snapshot::default()
    };
    let count = r.count(SEGMENT_LEN)?;
    for _ in 0..count {
        snapshot.segments.push(SegmentRecord {
            id: r.u32()?,
            window: r.i64()?,
            salt: r.u64()?,
            len: r.u64()?,
            crc: r.u32()?,
            max_removal_lsn: r.u64()?,
            max_expiration: r.i64()?,
            dead_bytes: r.u64()?,
        });
    }
    let feeds = r.count(4 + 8 + 8 + 8 + 4 * 4)?;
    for _ in 0..feeds {
        let key = r.string()?;
        let mut parts = FeedParts {
            latest_sequence: r.u64()?,
            forgotten_removals_through: r.u64()?,
            forgotten_expirations_through: r.i64()?,
            ..FeedParts::default()
        };
        let groups = r.count(4)?;
        for _ in 0..groups {
            parts.group_names.push(r.string()?.into_boxed_str());
        }
        let entries = r.count(ENTRY_LEN)?;
        parts.entries.reserve_exact(entries);
        for _ in 0..entries {
            parts.entries.push(r.entry()?);
        }
        let removals = r.count(8 + 16 + 1)?;
        for _ in 0..removals {
            let sequence = r.u64()?;
            let id = r.id()?;
            let reason = RemovalReason::from_u8(r.u8()?).ok_or("an unknown removal reason")?;
            parts.removals.push((sequence, id, reason));
        }
        let swept = r.count(8 + 16)?;
        for _ in 0..swept {
            parts.swept.push((r.i64()?, r.id()?));
        }
        snapshot.feeds.push((key, parts));
    }
    if !r.bytes.is_empty() {
        return Err(format!("{} bytes after the last feed", r.bytes.len()));
    }
    Ok(snapshot)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_entry(out: &mut Vec<u8>, e: &EntryFields) {
    out.extend_from_slice(&e.id);
    put_u64(out, e.position);
    put_u64(out, e.sequence);
    put_i64(out, e.expiration);
    put_u32(out, e.segment);
    put_u32(out, e.offset);
    put_u32(out, e.len);
    put_u32(out, e.app_hash);
    put_u32(out, e.group);
    out.push(e.platforms);
    out.push(e.states);
}

/// Reads little-endian fields; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("it ends early".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }

    fn id(&mut self) -> Result<[u8; 16], String> {
        self.array()
    }

    /// A count of items of at least `min_item_len` bytes each, checked against what is left
    /// (so a damaged count never sizes an allocation).
    fn count(&mut self, min_item_len: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_len) > self.bytes.len() {
            return Err(format!("a count of {n} beyond the end"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a name that is not UTF-8".into())
    }

    fn entry(&mut self) -> Result<EntryFields, String> {
        Ok(EntryFields {
            id: self.id()?,
            position: self.u64()?,
            sequence: self.u64()?,
            expiration: self.i64()?,
            segment: self.u32()?,
            offset: self.u32()?,
            len: self.u32()?,
            app_hash: self.u32()?,
            group: self.u32()?,
            platforms: self.u8()?,
            states: self.u8()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut body = Vec::new();
        put_u64(&mut body, 7);
        put_u32(&mut body, 3);
        put_u64(&mut body, 6);
        put_u64(&mut body, 0);
        put_i64(&mut body, i64::MIN);
        put_len(&mut body, 0);
        put_len(&mut body, 1);
        put_bytes(&mut body, b"alice/app");
        put_u64(&mut body, 6);
        put_u64(&mut body, 0);
        put_i64(&mut body, i64::MIN);
        put_len(&mut body, 1);
        put_bytes(&mut body, b"g");
        put_len(&mut body, 1);
        put_entry(
            &mut body,
            &EntryFields {
                id: [9; 16],
                position: 5,
                sequence: 6,
                expiration: 1_000,
                segment: 1,
                offset: 40,
                len: 100,
                app_hash: 77,
                group: 1,
                platforms: 3,
                states: 1,
            },
        );
        put_len(&mut body, 1);
        put_u64(&mut body, 4);
        body.extend_from_slice(&[8; 16]);
        body.push(RemovalReason::Deleted.to_u8());
        put_len(&mut body, 0);
        let mut bytes = MAGIC.to_vec();
        bytes.push(VERSION);
        bytes.extend_from_slice(&[0; 3]);
        put_u32(&mut bytes, crc32fast::hash(&body));
        put_u64(&mut bytes, body.len() as u64);
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn a_whole_snapshot_decodes() {
        let s = decode(&sample()).unwrap();
        assert_eq!((s.assigned_through, s.next_segment_id), (7, 3));
        assert_eq!(s.feeds.len(), 1);
        let (key, parts) = &s.feeds[0];
        assert_eq!(key, "alice/app");
        assert_eq!(parts.entries.len(), 1);
        assert_eq!(parts.entries[0].app_hash, 77);
        assert_eq!(parts.removals, vec![(4, [8; 16], RemovalReason::Deleted)]);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_refused() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(decode(&damaged).is_err(), "flip of bit {bit} in byte {i}");
            }
        }
    }

    #[test]
    fn inconsistent_feed_parts_are_refused() {
        let s = decode(&sample()).unwrap();
        let (_, parts) = s.feeds.into_iter().next().unwrap();
        let mut twice = FeedParts { entries: vec![parts.entries[0], parts.entries[0]], ..FeedParts::default() };
        twice.entries[1].position = 9;
        twice.group_names = parts.group_names.clone();
        assert!(super::super::index::FeedIndex::from_parts(twice).unwrap_err().contains("held twice"));
        let mut no_group = FeedParts { entries: parts.entries.clone(), ..FeedParts::default() };
        no_group.entries[0].group = 2;
        assert!(super::super::index::FeedIndex::from_parts(no_group).is_err());
        let mut unordered = FeedParts { entries: vec![parts.entries[0], parts.entries[0]], ..FeedParts::default() };
        unordered.entries[1].id = [1; 16];
        unordered.entries[0].group = 0;
        unordered.entries[1].group = 0;
        assert!(super::super::index::FeedIndex::from_parts(unordered).unwrap_err().contains("order"));
    }
}
