//! An online scrub ([`LogStore::verify`]): reads every record of every segment back, as an
//! open's scan would, and every notification the index holds, as a read would, without
//! closing the store. Corruption that appears while a store runs (a bad sector, a stray write
//! by another program) otherwise shows only when a read happens to reach it, or at the next
//! open.
//!
//! It reads with `pread`, never through a memory map: a disk error under a mapped page would
//! kill the process (`SIGBUS`), and cold data, where such errors hide, is what a scrub reads.
//!
//! What it relies on: below a segment's length nothing changes while the store is not
//! poisoned (records are never overwritten; only a failed write's or sync's cut, which
//! poisons the store first, zeroes bytes there), and only a sweep removes a segment or moves
//! a record (it holds the sweep's lock, so sweeps wait).

use std::collections::BTreeMap;
use std::io;

use super::record::{self, SEGMENT_HEADER_LEN};
use super::recovery::whole;
use super::segment::{SegmentState, Segments, io_error};
use super::watermark::Watermark;
use super::{LogStore, decode_entry};
use crate::StoreError;

/// The most bytes read at once: more than the longest frame (1 MiB body and its header), so
/// a chunk always holds at least one.
const CHUNK: usize = 2 << 20;

/// What [`LogStore::verify`] read back, all of it sound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files read, each from its header to its length when the call started.
    pub segments: u64,
    /// Records whose checksum passed and whose body decodes.
    pub records: u64,
    /// Bytes read and found sound (segment headers included).
    pub bytes: u64,
    /// Bytes not read because the open's salvage reported them lost
    /// ([`super::RecoveryReport::lost`]): they stay in the files, and are known bad.
    pub lost_bytes_skipped: u64,
    /// Notifications the index holds (live, or expired and not swept yet) whose record lies in
    /// what was read, each read again through its index entry, as a read would.
    pub notifications: u64,
}

/// A segment as the call found it.
pub(super) struct Captured {
    pub window: i64,
    pub salt: u64,
    pub len: u64,
}

/// The store at one instant (a cut through its history): every segment, its length, the
/// watermark and the next LSN, taken under the writer's lock (which orders every write) after
/// every buffered record is written to the OS, so each captured range is in its file. Shared
/// with `backup.rs`.
pub(super) struct Cut {
    pub segments: BTreeMap<u32, Captured>,
    pub watermark: Watermark,
    pub next_lsn: u64,
}

/// Takes the [`Cut`].
///
/// # Errors
/// [`StoreError::Poisoned`]; [`StoreError::Io`] when writing the buffers out fails (which
/// poisons the store).
pub(super) fn capture(segments: &Segments) -> Result<Cut, StoreError> {
    let mut writer = segments.writer.lock();
    segments.check_poison()?;
    segments.flush_all(&mut writer)?;
    let captured = |s: &SegmentState| Captured { window: s.window, salt: s.salt, len: s.len };
    Ok(Cut {
        segments: writer.segments.iter().map(|(&id, s)| (id, captured(s))).collect(),
        watermark: writer.watermark,
        next_lsn: writer.next_lsn,
    })
}

pub(crate) fn verify(store: &LogStore) -> Result<VerifyReport, StoreError> {
    reading_a_cut(store, || run(store))
}

/// Runs `read`, which reads the files below a [`Cut`], with sweeps held off (nothing is
/// unlinked or moved under it). A store poisoned meanwhile may have cut bytes it was reading:
/// its answer is then not trusted, whatever it was. Shared with `backup.rs`.
///
/// # Errors
/// `read`'s; [`StoreError::Poisoned`] when the store is poisoned at its end.
pub(super) fn reading_a_cut<T>(
    store: &LogStore,
    read: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let _no_sweep = store.sweeping.lock();
    let outcome = read();
    if store.is_poisoned() {
        return Err(StoreError::Poisoned);
    }
    outcome
}

fn run(store: &LogStore) -> Result<VerifyReport, StoreError> {
    let segments = &store.segments;
    let captured = capture(segments)?.segments;
    let mut report = VerifyReport::default();
    let mut buf = Vec::new();
    for (&id, c) in &captured {
        let path = segments.path(id);
        let name = path.display().to_string();
        let lost: Vec<(u64, u64)> =
            store.report.lost.iter().filter(|l| l.segment == name).map(|l| (l.offset, l.offset + l.len)).collect();
        let file = segments.file(id)?;
        let mut read = |at: u64, into: &mut [u8]| file.read_exact_at(into, at);
        let checked = check_segment(&mut read, (id, c), &lost, CHUNK, &mut buf).map_err(|f| match f {
            Failure::Io(e) => io_error("reading", &path, e),
            Failure::Bad { offset, detail } => {
                StoreError::Corruption { location: format!("{name} offset {offset}"), detail }
            }
        })?;
        report.segments += 1;
        report.records += checked.records;
        report.bytes += checked.bytes;
        report.lost_bytes_skipped += checked.skipped;
    }
    for cell in store.index.all_feeds() {
        // Copied out, so the feed's writers need not wait for the reads. Each location stays
        // readable (see the module doc).
        let entries: Vec<_> = cell.index.read().held_entries().copied().collect();
        for entry in &entries {
            let (segment, offset, len) = (entry.segment, u64::from(entry.offset), entry.len() as usize);
            // A record written after the capture is left for the next run.
            let Some(c) = captured.get(&segment).filter(|c| offset + len as u64 <= c.len) else { continue };
            let path = segments.path(segment);
            buf.resize(len, 0);
            segments.file(segment)?.read_exact_at(&mut buf, offset).map_err(|e| io_error("reading", &path, e))?;
            decode_entry(&buf, record::frame_key(u64::from(segment), c.salt), &entry.id).map_err(|detail| {
                StoreError::Corruption { location: format!("{} offset {offset}", path.display()), detail }
            })?;
            report.notifications += 1;
        }
    }
    Ok(report)
}

/// Why a segment failed.
#[derive(Debug)]
pub(super) enum Failure {
    Io(io::Error),
    Bad { offset: u64, detail: String },
}

/// What [`check_segment`] found sound.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Checked {
    pub records: u64,
    pub bytes: u64,
    pub skipped: u64,
}

/// Checks segment `id`'s header and every frame up to `c.len`, reading `chunk` bytes at a
/// time into `buf` with `read` (each byte once, in order), and skipping the regions in `lost`
/// (`(start, end)` offsets).
pub(super) fn check_segment(
    read: &mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>,
    (id, c): (u32, &Captured),
    lost: &[(u64, u64)],
    chunk: usize,
    buf: &mut Vec<u8>,
) -> Result<Checked, Failure> {
    let bad = |offset: u64, detail: String| Failure::Bad { offset, detail };
    buf.resize(SEGMENT_HEADER_LEN, 0);
    read(0, &mut buf[..SEGMENT_HEADER_LEN]).map_err(Failure::Io)?;
    match record::decode_segment_header(&buf[..SEGMENT_HEADER_LEN]) {
        Ok(found) if found == (u64::from(id), c.window, c.salt) => {}
        Ok((other, window, _)) => {
            return Err(bad(0, format!("the header is segment {other}'s of window {window}, not this file's")));
        }
        Err(e) => return Err(bad(0, format!("bad segment header: {e}"))),
    }
    let key = record::frame_key(u64::from(id), c.salt);
    let lost_at = |at: u64| lost.iter().find(|&&(start, end)| start <= at && at < end).map(|&(_, end)| end.min(c.len));
    let mut checked = Checked { records: 0, bytes: SEGMENT_HEADER_LEN as u64, skipped: 0 };
    let mut at = SEGMENT_HEADER_LEN as u64;
    while at < c.len {
        if let Some(end) = lost_at(at) {
            checked.skipped += end - at;
            at = end;
            continue;
        }
        let want = usize::try_from(c.len - at).unwrap_or(usize::MAX).min(chunk);
        buf.resize(want, 0);
        read(at, &mut buf[..want]).map_err(Failure::Io)?;
        let last = at + want as u64 == c.len;
        let frames = whole_frames(&buf[..want], key, last);
        checked.records += frames.records;
        checked.bytes += frames.consumed as u64;
        at += frames.consumed as u64;
        match frames.failure {
            Some(_) if lost_at(at).is_some() => {}
            Some(detail) => return Err(bad(at, detail)),
            // A chunk is longer than any frame, so only a bug gets here; never loop on it.
            None if frames.consumed == 0 => return Err(bad(at, "no whole record in a chunk of the segment".into())),
            None => {}
        }
    }
    Ok(checked)
}

/// What [`whole_frames`] found: `consumed` bytes of sound frames, then `failure` there (if any).
struct Frames {
    consumed: usize,
    records: u64,
    failure: Option<String>,
}

/// Checks the frames at the start of `bytes`, keyed with `key`. A frame cut by the end of
/// `bytes` is left for the next read, unless `bytes` ends where the segment's records end
/// (`last`): then it is a failure.
fn whole_frames(bytes: &[u8], key: u128, last: bool) -> Frames {
    let mut frames = Frames { consumed: 0, records: 0, failure: None };
    while frames.consumed < bytes.len() {
        let rest = &bytes[frames.consumed..];
        let len = match record::claimed_len(rest) {
            Ok(len) if len <= rest.len() => len,
            Ok(_) | Err(record::FrameError::Truncated { .. }) if !last => break,
            Ok(_) | Err(record::FrameError::Truncated { .. }) => {
                frames.failure = Some("a record cut short by the end of what was written".into());
                break;
            }
            Err(e) => {
                frames.failure = Some(e.to_string());
                break;
            }
        };
        match record::decode_frame(&rest[..len], key) {
            Ok(frame) if whole(&frame) => {}
            Ok(frame) => {
                frames.failure = Some(format!("a {:?} record whose body does not decode", frame.kind));
                break;
            }
            Err(e) => {
                frames.failure = Some(e.to_string());
                break;
            }
        }
        frames.records += 1;
        frames.consumed += len;
    }
    frames
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::{FaultFileSystem, FileSystem};
    use crate::engine::log::{LogConfig, segment};
    use crate::{Clock, FeedKey, FeedStore, ManualClock, NewNotification};
    use jiff::SignedDuration;
    use record::RecordKind;
    use std::path::Path;
    use std::sync::Arc;

    /// One segment's image, with its id, window and salt, holding `n` records of about 300 bytes.
    fn image(n: usize) -> (u32, Captured, Vec<u8>) {
        let fs = FaultFileSystem::new();
        let clock = ManualClock::at_epoch_2026();
        let store = LogStore::open_with_fs(
            Path::new("/db"),
            LogConfig::default(),
            Arc::new(clock.clone()),
            Arc::new(fs.clone()),
        )
        .unwrap();
        let feed = FeedKey::new("u/app").unwrap();
        for i in 0..n {
            let new = NewNotification::raw("app", &format!("n{i}"), &"x".repeat(200 + i))
                .expiring_at(clock.now() + SignedDuration::from_hours(2));
            store.append(&feed, new).unwrap();
        }
        let (id, state) = {
            let writer = store.segments.writer.lock();
            let (&id, s) = writer.segments.iter().next().unwrap();
            (id, Captured { window: s.window, salt: s.salt, len: s.len })
        };
        let path = fs
            .list(Path::new("/db"))
            .unwrap()
            .into_iter()
            .find(|p| segment::parse_segment_file_name(p).is_some())
            .unwrap();
        let mut bytes = fs.read_all(&path).unwrap();
        bytes.truncate(state.len as usize);
        (id, state, bytes)
    }

    fn check(id: u32, c: &Captured, bytes: &[u8], lost: &[(u64, u64)], chunk: usize) -> Result<Checked, Failure> {
        let mut read = |at: u64, into: &mut [u8]| {
            let at = at as usize;
            into.copy_from_slice(&bytes[at..at + into.len()]);
            Ok(())
        };
        check_segment(&mut read, (id, c), lost, chunk, &mut Vec::new())
    }

    #[test]
    fn every_chunk_size_finds_the_same_records_and_the_same_bad_byte() {
        let (id, c, bytes) = image(12);
        let longest = 20 + 400;
        let whole = check(id, &c, &bytes, &[], CHUNK).unwrap();
        assert_eq!(whole, Checked { records: 12, bytes: c.len, skipped: 0 });
        let mut flipped = bytes.clone();
        let at = bytes.len() / 2;
        flipped[at] ^= 0x20;
        let reference = match check(id, &c, &flipped, &[], CHUNK) {
            Err(Failure::Bad { offset, .. }) => offset,
            other => panic!("{other:?}"),
        };
        assert!(reference <= at as u64);
        for chunk in longest..bytes.len() + 10 {
            assert_eq!(check(id, &c, &bytes, &[], chunk).unwrap(), whole, "chunk {chunk}");
            match check(id, &c, &flipped, &[], chunk) {
                Err(Failure::Bad { offset, .. }) => assert_eq!(offset, reference, "chunk {chunk}"),
                other => panic!("chunk {chunk}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_record_cut_short_at_the_end_fails_and_a_lost_region_is_skipped() {
        let (id, c, bytes) = image(6);
        let short = Captured { len: c.len - 7, ..c };
        match check(id, &short, &bytes, &[], CHUNK) {
            Err(Failure::Bad { detail, .. }) => assert!(detail.contains("cut short"), "{detail}"),
            other => panic!("{other:?}"),
        }
        // Garbage over the second and third records, reported lost by a salvaging open.
        let ends: Vec<u64> = {
            let mut ends = vec![SEGMENT_HEADER_LEN as u64];
            while *ends.last().unwrap() < c.len {
                let at = *ends.last().unwrap() as usize;
                ends.push((at + record::claimed_len(&bytes[at..]).unwrap()) as u64);
            }
            ends
        };
        let mut bad = bytes.clone();
        for b in &mut bad[ends[1] as usize..ends[3] as usize] {
            *b = 0xAB;
        }
        assert!(matches!(check(id, &c, &bad, &[], CHUNK), Err(Failure::Bad { offset, .. }) if offset == ends[1]));
        let salvaged = check(id, &c, &bad, &[(ends[1], ends[3])], CHUNK).unwrap();
        assert_eq!(salvaged, Checked { records: 4, bytes: c.len - (ends[3] - ends[1]), skipped: ends[3] - ends[1] });
    }

    #[test]
    fn a_frame_whose_checksum_passes_but_whose_body_does_not_decode_fails() {
        let (id, c, mut bytes) = image(3);
        let at = bytes.len() as u64;
        record::encode_frame(
            &mut bytes,
            record::frame_key(u64::from(id), c.salt),
            RecordKind::Append,
            1 << 40,
            b"junk",
        );
        let longer = Captured { len: bytes.len() as u64, ..c };
        match check(id, &longer, &bytes, &[], CHUNK) {
            Err(Failure::Bad { offset, detail }) => {
                assert_eq!(offset, at);
                assert!(detail.contains("does not decode"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
