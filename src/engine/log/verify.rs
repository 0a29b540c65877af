//! An online scrub ([`LogStore::verify`]): reads every record of every segment back, as an
//! open's scan would, and every notification the index holds, as a read would, without
//! closing the store. Corruption that appears while a store runs (a bad sector, a stray write
//! by another program) otherwise shows only when a read happens to reach it, or at the next
//! open, which then refuses.
//!
//! What it holds: the sweep's lock, so no segment is unlinked or compacted under it (sweeps
//! wait); each segment's length as of the start, so records written meanwhile are left for
//! the next run. Writers and readers go on.

use super::LogStore;
use super::record::{self, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::recovery::whole;
use crate::StoreError;

/// The most bytes read at once: more than the longest frame, so a chunk always holds one.
const CHUNK: usize = 4 << 20;

/// What [`LogStore::verify`] read back, all of it sound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files read, each from its header to its length at the start.
    pub segments: u64,
    /// Records whose checksum passed and whose body decodes.
    pub records: u64,
    /// Bytes read from segment files (headers included).
    pub bytes: u64,
    /// Notifications the index holds (live, or expired and not swept yet), each read back
    /// through the index as a read would.
    pub notifications: u64,
}

pub(crate) fn verify(store: &LogStore) -> Result<VerifyReport, StoreError> {
    let _no_sweep = store.sweeping.lock();
    let outcome = scan(store);
    // A store poisoned meanwhile may have cut bytes a read was reading: say so, not more.
    if store.is_poisoned() {
        return Err(StoreError::Poisoned);
    }
    outcome
}

fn scan(store: &LogStore) -> Result<VerifyReport, StoreError> {
    store.segments.check_poison()?;
    let mut report = VerifyReport::default();
    let mut segments: Vec<(u32, i64, u64, u64)> = {
        let writer = store.segments.writer.lock();
        writer.segments.iter().map(|(&id, s)| (id, s.window, s.salt, s.len)).collect()
    };
    segments.sort_unstable();
    let mut reader = store.segments.reader();
    for (id, window, salt, len) in segments {
        let path = || store.segments.path(id).display().to_string();
        let corrupt = |offset: u64, detail: String| StoreError::Corruption {
            location: format!("{} offset {offset}", path()),
            detail,
        };
        let header = reader.read_with(id, 0, SEGMENT_HEADER_LEN, |_, bytes| record::decode_segment_header(bytes))?;
        // Unlinked by a compaction that finished just before the lock was taken: nothing to read.
        let Some(header) = header else { continue };
        match header {
            Ok(found) if found == (u64::from(id), window, salt) => {}
            Ok((other, w, _)) => {
                return Err(corrupt(0, format!("the header names segment {other} of window {w}, not this file's")));
            }
            Err(e) => return Err(corrupt(0, format!("bad segment header: {e}"))),
        }
        report.segments += 1;
        report.bytes += SEGMENT_HEADER_LEN as u64;
        let mut at = SEGMENT_HEADER_LEN as u64;
        while at < len {
            let want = usize::try_from(len - at).unwrap_or(usize::MAX).min(CHUNK);
            let last = at + want as u64 == len;
            let read = reader.read_with(id, at, want, |key, bytes| whole_frames(bytes, key, last))?;
            let Some(outcome) = read else { return Err(corrupt(at, "the segment vanished while it was read".into())) };
            let (consumed, records) = outcome.map_err(|(offset, detail)| corrupt(at + offset as u64, detail))?;
            if consumed == 0 {
                // A chunk is longer than any frame, so only a bug gets here; never loop on it.
                return Err(corrupt(at, "no whole record in a chunk of the segment".into()));
            }
            report.records += records;
            report.bytes += consumed as u64;
            at += consumed as u64;
        }
    }
    for cell in store.index.all_feeds() {
        // Copied out, so the feed's writers need not wait for the reads. Each location stays
        // readable: records are never overwritten, and only a sweep (held off) removes files.
        let entries: Vec<_> = cell.index.read().held_entries().copied().collect();
        for entry in &entries {
            store.load_with(&mut reader, entry)?;
            report.notifications += 1;
        }
    }
    Ok(report)
}

/// Checks the whole frames at the start of `bytes`, keyed with `key`: returns how many bytes
/// and records they take. A frame cut by the end of `bytes` is left for the next read, unless
/// `bytes` ends where the segment's records end (`last`).
///
/// # Errors
/// The offset in `bytes` of the first frame that fails, and why.
fn whole_frames(bytes: &[u8], key: u128, last: bool) -> Result<(usize, u64), (usize, String)> {
    let mut at = 0;
    let mut records = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let cut_short = || {
            if last {
                Err((at, "a record cut short by the end of what was written".to_string()))
            } else {
                Ok((at, records))
            }
        };
        if rest.len() < FRAME_HEADER_LEN {
            return cut_short();
        }
        let len = record::claimed_len(rest).map_err(|e| (at, e.to_string()))?;
        if rest.len() < len {
            return cut_short();
        }
        let frame = record::decode_frame(&rest[..len], key).map_err(|e| (at, e.to_string()))?;
        if !whole(&frame) {
            return Err((at, format!("a {:?} record whose body does not decode", frame.kind)));
        }
        records += 1;
        at += len;
    }
    Ok((at, records))
}
