//! Recovery: a checksum-verifying scan of every segment, merged in LSN order into a fresh
//! index.
//!
//! * A bad frame in the last segment of a window with no valid frame after it is a torn tail
//!   (an interrupted write): the file is truncated there, synced, and the open reports it.
//! * Any other bad frame is corruption: the open refuses with the segment and offset, unless
//!   the caller opted into [`RecoveryMode::Salvage`], which skips to the next valid frame and
//!   reports the bytes it lost.
//! * An upsert record is read for the fields the index keeps only
//!   ([`record::decode_upsert_for_index`]: the strings it does not keep are not checked as
//!   UTF-8, which took a third of the decoding). A read of the record decodes all of it.

use foldhash::{HashMap, HashMapExt};
use std::path::Path;
use std::sync::Arc;

use super::fs::FileSystem;
use super::index::{EntryFields, Index, app_hash_of_bytes, id_key};
use super::journal;
use super::record::{self, FRAME_HEADER_LEN, Record, RecordKind, SEGMENT_HEADER_LEN};
use super::segment::{
    SegmentState, UNSYNCED_FILE, WriterState, io_error, leave_unsynced_marker, parse_segment_file_name,
    segment_file_name,
};
use super::snapshot;
use super::watermark::Watermark;
use crate::codec::CodecError;
use crate::{RemovalReason, StoreError};

/// What to do with a bad record that is not a torn tail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Truncate a torn tail of a window's last segment; refuse to open on any other bad record.
    /// The default.
    #[default]
    TolerateTornTail,
    /// Skip every bad region, keep what passes its checksum, and report what was lost
    /// ([`RecoveryReport::lost`]). The bad bytes stay in their files (which are not rewritten),
    /// so later opens need salvage too, until their window expires.
    Salvage,
}

/// A torn tail that recovery truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: String,
    /// Where the file now ends.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes_dropped: u64,
    /// Valid records that were cut with it: the records after a hole in writes that no sync
    /// covered (a power loss may keep a later page of a write and lose an earlier one). None
    /// of them was acknowledged as durable; 0 for a plain torn tail.
    pub valid_records_dropped: u64,
}

/// A region salvage skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRegion {
    /// The segment file.
    pub segment: String,
    /// Where the bad region starts.
    pub offset: u64,
    /// Its length in bytes (to the next valid record, or the end of the file).
    pub len: u64,
    /// Why the first record there was rejected.
    pub reason: String,
}

/// Whether the open rebuilt the index from the snapshot a clean close wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexSnapshot {
    /// There was none (the last close was not clean, or snapshots are off): every segment was
    /// scanned record by record.
    #[default]
    Absent,
    /// The index came from the snapshot, which matched every segment byte for byte; no record
    /// was decoded.
    Loaded,
    /// There was one and it was not used; every segment was scanned record by record.
    Rejected {
        /// Why: it failed its checksum, or the segments are not what it describes.
        reason: String,
    },
}

/// What the open found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Whether the index came from the snapshot of a clean close.
    pub index_snapshot: IndexSnapshot,
    /// Segment files scanned.
    pub segments: usize,
    /// Valid records replayed.
    pub records: u64,
    /// Torn tails truncated.
    pub torn_tails: Vec<TornTail>,
    /// Regions skipped by salvage (always empty in the default mode).
    pub lost: Vec<LostRegion>,
    /// Segment files removed because a crash interrupted their creation (no complete header).
    pub incomplete_segments_removed: Vec<String>,
    /// Notifications deleted because a newer live notification of their feed holds the same
    /// `appNotificationId`, as (feed key, id of the one deleted): the state a loss that keeps a
    /// prefix of each file can leave (see `LogStore::open`). Empty after an open from the
    /// index snapshot.
    pub duplicate_app_ids_removed: Vec<(String, crate::NotificationId)>,
    /// Entries of the commit journal written back into their segments before the scan
    /// (`LogConfig::journal_bytes`): batches acknowledged since the last checkpoint. Their
    /// bytes were already in the segments unless a crash lost them.
    pub journal_entries_replayed: u64,
    /// Segment files of passed windows that a sweep cut short (an error, a crash) left while
    /// unlinking them, removed before the scan: the open sees the sweep done.
    pub unlinks_finished: Vec<String>,
}

/// Removes, durably, the segments the last sweep was unlinking and left (it was cut short):
/// those of windows ending at or before `Watermark::unlinking_windows_through` with ids below
/// `Watermark::unlinking_ids_below`. A record of one may shadow a record of another (a
/// tombstone and what it deleted), so a scan of what a cut left could bring back, as expired,
/// a notification that was deleted.
///
/// IMPORTANT 20: this runs before any segment is scanned (it reads only headers), after the
/// journal is written back (which skips what is gone), and before the index snapshot is
/// considered. A segment whose header cannot be read whole, or fails its checksum, is left to
/// the scan, which reports it.
fn finish_unlinking(
    fs: &dyn FileSystem,
    dir: &Path,
    watermark: &Watermark,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    if watermark.unlinking_windows_through == i64::MIN {
        return Ok(());
    }
    for path in fs.list(dir).map_err(|e| io_error("listing", dir, e))? {
        let Some(id) = parse_segment_file_name(&path).filter(|&id| id < watermark.unlinking_ids_below) else {
            continue;
        };
        let file = fs.open(&path, false).map_err(|e| io_error("opening", &path, e))?;
        if file.size().map_err(|e| io_error("reading", &path, e))? < SEGMENT_HEADER_LEN as u64 {
            continue;
        }
        let mut header = [0; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut header, 0).map_err(|e| io_error("reading", &path, e))?;
        drop(file);
        match record::decode_segment_header(&header) {
            Ok((header_id, window, _))
                if header_id == u64::from(id) && window <= watermark.unlinking_windows_through =>
            {
                fs.remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
                report.unlinks_finished.push(path.display().to_string());
            }
            _ => {}
        }
    }
    if !report.unlinks_finished.is_empty() {
        fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
    }
    Ok(())
}

enum Op {
    Upsert {
        kind: RecordKind,
        feed: u32,
        position: u64,
        evicted: Option<[u8; 16]>,
        entry: EntryFields,
        group: Option<u32>,
    },
    Delete {
        feed: u32,
        id: [u8; 16],
    },
    GroupDelete {
        feed: u32,
        ids: Vec<[u8; 16]>,
    },
    Expired {
        feed: u32,
        expired: Vec<([u8; 16], i64)>,
    },
    Removals {
        feed: u32,
        forgotten_through: u64,
        removals: Vec<(u64, [u8; 16], u8)>,
    },
}

impl Op {
    /// Renumbers its feed and group from one interner's numbers to another's (`feeds[i]`,
    /// `groups[i]` being the new number of the old `i`).
    fn renumber(&mut self, feeds: &[u32], groups: &[u32]) {
        let feed = match self {
            Op::Upsert { feed, group, .. } => {
                if let Some(g) = group {
                    *g = groups[*g as usize];
                }
                feed
            }
            Op::Delete { feed, .. }
            | Op::GroupDelete { feed, .. }
            | Op::Expired { feed, .. }
            | Op::Removals { feed, .. } => feed,
        };
        *feed = feeds[*feed as usize];
    }

    /// The feed it touches (every record touches one).
    fn feed(&self) -> u32 {
        match self {
            Op::Upsert { feed, .. }
            | Op::Delete { feed, .. }
            | Op::GroupDelete { feed, .. }
            | Op::Expired { feed, .. }
            | Op::Removals { feed, .. } => *feed,
        }
    }
}

struct Scanned {
    lsn: u64,
    span: u64,
    op: Op,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }
}

/// The result of recovery.
pub(crate) struct Recovered {
    pub index: Index,
    pub writer: WriterState,
    pub report: RecoveryReport,
}

/// The settings recovery needs.
pub(crate) struct RecoverySettings {
    pub mode: RecoveryMode,
    pub removal_log_capacity: usize,
    /// The most notifications a feed holds (bounds what replay reserves per feed).
    pub feed_capacity: usize,
    /// Whether a snapshot a clean close wrote may be used.
    pub use_snapshot: bool,
    /// The store's expiration window width, in nanoseconds (the index's expiry order buckets
    /// by it).
    pub window_nanos: i64,
}

/// The expiration window of a Unix-nanosecond time, named by its end (exclusive, Unix
/// nanoseconds): segments stay comparable and sweepable whatever window width a later open uses.
pub(crate) fn window_of(expiration: i64, window_nanos: i64) -> i64 {
    expiration.div_euclid(window_nanos).saturating_add(1).saturating_mul(window_nanos)
}

fn plausible_frame_at(bytes: &[u8], segment_id: u128) -> bool {
    bytes.len() >= FRAME_HEADER_LEN && (1..=7).contains(&bytes[8]) && record::decode_frame(bytes, segment_id).is_ok()
}

/// Whether a bad region starting at `bad` in a window's last segment lies wholly in writes that
/// no sync ever covered, so a power loss explains it: the newest valid frame after it (the
/// last written) says where the durable prefix ended when it was sealed, and no sync completed
/// after that (a completed sync would have made the region durable, and whole). `bytes` ends
/// where the scan ends; `from` is the first valid frame after the region. Returns how many
/// valid frames lie after the region (all of them unsynced), or `None` when the region lies
/// in the durable prefix (corruption).
fn unsynced_hole(bytes: &[u8], bad: usize, from: usize, segment_id: u128) -> Option<u64> {
    let mut newest = None;
    let mut valid = 0u64;
    let mut at = Some(from);
    while let Some(p) = at {
        match record::decode_frame(&bytes[p..], segment_id) {
            // Only a whole record is evidence: a frame whose body does not decode is itself bad
            // (the scan may cut it as a torn tail), and evidence that a later open no longer
            // sees would make the two opens disagree.
            Ok(frame) if whole(&frame) => {
                newest = Some((p, frame.unsynced_distance));
                valid += 1;
                at = Some(p + frame.len()).filter(|&next| next < bytes.len());
            }
            _ => at = next_valid_frame(bytes, p + 1, segment_id),
        }
    }
    // A version 1 frame (distance 0) or a capped distance only ever makes this stricter.
    let (offset, distance) = newest?;
    (bad >= offset.saturating_sub(distance as usize)).then_some(valid)
}

/// Whether a frame that passed its checksum is also a record the scan accepts: its body
/// decodes and its LSN range ends within [`record::MAX_LSN`] (the scan's own test, below).
pub(crate) fn whole(frame: &record::Frame<'_>) -> bool {
    let span = match frame.kind {
        RecordKind::Append | RecordKind::Replace | RecordKind::StateChange => {
            record::decode_upsert_for_index(frame.body).map(|b| 1 + u64::from(b.evicted.is_some()))
        }
        kind => Record::decode(kind, frame.body).map(|r| r.span()),
    };
    span.is_ok_and(|span| within_lsn_bound(frame.lsn, span))
}

/// Whether a record at `lsn` taking `span` sequences ends within [`record::MAX_LSN`].
fn within_lsn_bound(lsn: u64, span: u64) -> bool {
    lsn.checked_add(span).is_some_and(|end| end <= record::MAX_LSN)
}

fn next_valid_frame(bytes: &[u8], from: usize, segment_id: u128) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1)).find(|&p| plausible_frame_at(&bytes[p..], segment_id))
}

/// Scans `dir` and rebuilds the index.
///
/// # Errors
/// [`StoreError::Corruption`] with the segment and offset of the first bad record that is not a
/// torn tail (default mode); [`StoreError::Io`].
pub(crate) fn recover(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    settings: &RecoverySettings,
) -> Result<Recovered, StoreError> {
    let mut report = RecoveryReport::default();
    // A backup that did not finish is missing segments: no mode may open it.
    let incomplete = dir.join(super::backup::INCOMPLETE_FILE);
    if fs.list(dir).map_err(|e| io_error("listing", dir, e))?.contains(&incomplete) {
        return Err(StoreError::Corruption {
            location: incomplete.display().to_string(),
            detail: "an incomplete backup (LogStore::backup did not finish): remove the directory and back up again"
                .into(),
        });
    }
    // IMPORTANT 18: the commit journal's pieces are back in their segments, and synced, before
    // any segment is read: what it holds was acknowledged as durable.
    let replayed = journal::replay(fs.as_ref(), dir, |id| dir.join(segment_file_name(id)))?;
    report.journal_entries_replayed = replayed.entries;
    let watermark = match Watermark::load(fs, dir) {
        Err(StoreError::Corruption { location, detail }) if settings.mode == RecoveryMode::Salvage => {
            // The floors are rebuilt from the segments; the lease starts above them.
            report.lost.push(LostRegion { segment: location, offset: 0, len: 0, reason: detail });
            Watermark::default()
        }
        other => other?,
    };
    finish_unlinking(fs.as_ref(), dir, &watermark, &mut report)?;
    // What a clean close found synced: no torn tail below it (`synced_lengths.rs`).
    let synced_at_close = super::synced_lengths::load(fs, dir)?;
    // A failed sync left pages that a sync would skip (segment.rs, `UNSYNCED_FILE`): the scan
    // writes them again. (A store whose sync failed wrote no snapshot either.)
    let unsynced_marker = dir.join(UNSYNCED_FILE);
    let listing = fs.list(dir).map_err(|e| io_error("listing", dir, e))?;
    let rewrite_unsynced = listing.iter().any(|p| p.as_path() == unsynced_marker);
    let has_snapshot = listing.iter().any(|p| p.ends_with(snapshot::SNAPSHOT_FILE));
    // A snapshot describes a store that lost nothing: not one whose watermark salvage just
    // replaced (the report must say so, and the floors come from a scan).
    if settings.use_snapshot && rewrite_unsynced {
        if has_snapshot {
            let reason = "a sync failed since it was written, so the segments are scanned".to_owned();
            report.index_snapshot = IndexSnapshot::Rejected { reason };
        }
    } else if settings.use_snapshot && !report.lost.is_empty() {
        if has_snapshot {
            let reason = "salvage lost the watermark, so the segments are scanned".to_owned();
            report.index_snapshot = IndexSnapshot::Rejected { reason };
        }
    } else if settings.use_snapshot {
        match snapshot::load(fs, dir, watermark, settings.removal_log_capacity, settings.window_nanos) {
            Ok(Some(mut recovered)) => {
                // The snapshot is read once: from here on the segments change and it would be
                // stale (an open would also see that, by the segments' checksums).
                snapshot::remove(fs, dir)?;
                recovered.report.journal_entries_replayed = replayed.entries;
                recovered.report.unlinks_finished = std::mem::take(&mut report.unlinks_finished);
                return Ok(recovered);
            }
            Ok(None) => {}
            Err(reason) => report.index_snapshot = IndexSnapshot::Rejected { reason },
        }
    }
    snapshot::remove(fs, dir)?;
    let mut files: Vec<(u32, std::path::PathBuf)> = fs
        .list(dir)
        .map_err(|e| io_error("listing", dir, e))?
        .into_iter()
        .filter_map(|p| parse_segment_file_name(&p).map(|id| (id, p)))
        .collect();
    files.sort();
    let mut headers = Vec::new();
    let mut max_id = 0u32;
    for (id, path) in files {
        max_id = max_id.max(id);
        let file = fs.open(&path, false).map_err(|e| io_error("opening", &path, e))?;
        let len = file.size().map_err(|e| io_error("reading", &path, e))?;
        if len < SEGMENT_HEADER_LEN as u64 {
            // A crash between creating the file and syncing its header: it holds no record.
            fs.remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
            fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
            report.incomplete_segments_removed.push(path.display().to_string());
            continue;
        }
        let mut header = [0; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut header, 0).map_err(|e| io_error("reading", &path, e))?;
        match record::decode_segment_header(&header) {
            Ok((header_id, window, salt)) if header_id == u64::from(id) => {
                drop(file);
                headers.push((id, window, salt, path, len));
            }
            outcome => {
                let detail = match outcome {
                    Ok((other, _, _)) => format!("header names segment {other}"),
                    Err(e) => e.to_string(),
                };
                if len <= SEGMENT_HEADER_LEN as u64 {
                    // A power loss between creating the file and syncing its header: no record
                    // was ever acknowledged in it (the header is synced before any record).
                    fs.remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
                    fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
                    report.incomplete_segments_removed.push(path.display().to_string());
                    continue;
                }
                if settings.mode == RecoveryMode::Salvage {
                    report.lost.push(LostRegion {
                        segment: path.display().to_string(),
                        offset: 0,
                        len,
                        reason: detail,
                    });
                    continue;
                }
                return Err(StoreError::Corruption { location: format!("{} offset 0", path.display()), detail });
            }
        }
    }
    let mut last_of_window: HashMap<i64, u32> = HashMap::new();
    for (id, window, ..) in &headers {
        let last = last_of_window.entry(*window).or_insert(*id);
        *last = (*last).max(*id);
    }

    let mut feeds = Interner::default();
    let mut groups = Interner::default();
    let mut scanned: Vec<Scanned> = Vec::new();
    let mut segments = HashMap::new();
    let headers: Vec<SegmentToScan> = headers
        .into_iter()
        .map(|(id, window, salt, path, len)| {
            let is_last = last_of_window.get(&window) == Some(&id);
            // Only a window's last segment can hold unsynced bytes: a segment is synced whole
            // before a newer one of its window exists (FORMAT.md, invariant 3).
            let synced_at_close = super::synced_lengths::synced_length(&synced_at_close, id, salt);
            SegmentToScan {
                id,
                window,
                salt,
                path,
                len,
                is_last,
                rewrite_unsynced: rewrite_unsynced && is_last,
                synced_at_close,
            }
        })
        .collect();
    for scan in scan_segments(fs, &headers, settings.mode) {
        let scan = scan?;
        report.segments += 1;
        report.records += scan.ops.len() as u64;
        report.torn_tails.extend(scan.torn_tail);
        report.lost.extend(scan.lost);
        // The segment's feeds and groups, numbered as in the whole store.
        let feed_ids: Vec<u32> = scan.feeds.names.iter().map(|k| feeds.intern(k)).collect();
        let group_ids: Vec<u32> = scan.groups.names.iter().map(|g| groups.intern(g)).collect();
        scanned.reserve(scan.ops.len());
        for mut s in scan.ops {
            s.op.renumber(&feed_ids, &group_ids);
            scanned.push(s);
        }
        segments.insert(scan.id, scan.state);
    }

    // IMPORTANT 11: so are the names of the segments found: a failed directory sync (or a
    // process crash before one) can leave a segment that an open finds but a power loss would
    // not, and later records may be appended to it without a new directory sync.
    fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
    if rewrite_unsynced {
        // Everything it asked for is written and synced. (Not synced away: a reboot empties
        // the page cache, and with it the reason for the file.)
        // Best effort: a marker left behind costs the next open a rewrite, nothing more.
        let _ = fs.remove_file(&unsynced_marker);
    }
    // Replay order: by LSN, the records sorted as small keys rather than moved (each segment's
    // records are already in LSN order, runs the stable sort merges). A compaction that crashed
    // between syncing its copy and unlinking the original leaves a record twice, under the
    // same LSN (an LSN is never assigned twice): it is replayed once, from the file scanned
    // first (the lower segment id, the original).
    let mut order: Vec<(u64, usize)> = scanned.iter().enumerate().map(|(i, s)| (s.lsn, i)).collect();
    order.sort();
    order.dedup_by_key(|o| o.0);
    let last = order.last().map(|&(_, i)| &scanned[i]);
    let scanned_through = last.map_or(0, |s| s.lsn + s.span - 1);
    let next_lsn = last.map_or(0, |s| s.lsn + s.span).max(watermark.lsn_floor).max(1);
    let mut index = Index::new(
        (0, watermark.removals_unlinked_through, watermark.expirations_unlinked_through),
        settings.window_nanos,
    );
    let cells: Vec<_> = feeds.names.iter().map(|k| index.feed_or_create(k)).collect();
    replay_all(&cells, &groups.names, &scanned, &order, settings);
    drop((scanned, order));
    // Feeds report at least every sequence that may have been handed out and still has its
    // records, or lost them to unlinking; a token beyond that is ahead (from lost state) and
    // stale, and new sequences start above the lease, above anything ever handed out.
    let floor = scanned_through.max(watermark.sequence_floor);
    let mut expiries = Vec::new();
    for cell in &cells {
        let mut f = cell.index.write();
        f.latest_sequence = f.latest_sequence.max(floor);
        // What no sweep counted yet joins the expiry order.
        expiries.extend(f.held_entries().map(|e| (e.expiration, cell.number, id_key(&e.id))));
        for e in f.held_entries() {
            if let Some(s) = segments.get_mut(&{ e.segment }) {
                s.dead_bytes = s.dead_bytes.saturating_sub(u64::from(e.len()));
            }
        }
        f.shrink_to_fit();
    }
    index.expect_expiries(expiries);
    index.shrink_expiry_to_fit();
    index.set_new_feed_horizon((floor, watermark.removals_unlinked_through, watermark.expirations_unlinked_through));
    let active = last_of_window.into_iter().filter(|(_, id)| segments.contains_key(id)).collect();
    let writer = WriterState {
        next_lsn,
        assigned_through: floor,
        next_segment_id: max_id.saturating_add(1).max(watermark.segment_id_floor),
        active,
        segments,
        watermark,
        batch_buffers: Vec::new(),
        journal: None,
        listed: Vec::new(),
    };
    Ok(Recovered { index, writer, report })
}

/// A segment whose header recovery accepted, to be scanned.
struct SegmentToScan {
    id: u32,
    window: i64,
    salt: u64,
    path: std::path::PathBuf,
    len: u64,
    /// Whether it is the last segment of its window (the only kind that may end torn).
    is_last: bool,
    /// Whether to write again, before syncing it, what no completed sync covered (after a
    /// failed sync: `UNSYNCED_FILE`).
    rewrite_unsynced: bool,
    /// The length a clean close found synced (0 when none is known): nothing below it may be
    /// judged torn.
    synced_at_close: u64,
}

/// What scanning one segment found: its records (their feeds and groups numbered in its own
/// interners), its state, and what the report says of it.
struct SegmentScan {
    id: u32,
    ops: Vec<Scanned>,
    feeds: Interner,
    groups: Interner,
    state: SegmentState,
    torn_tail: Option<TornTail>,
    lost: Vec<LostRegion>,
}

/// Scans `headers`, results in their order, ending at the first error; on a file system that
/// takes concurrent I/O (and a machine with more than one core), on up to 4 threads (the
/// calling one among them), each segment whole on one of them, each thread with a buffer as
/// large as the largest segment it read. Once one fails, segments after it not yet started
/// are skipped; segments after it already under way finish (what they do, a cut of a torn
/// tail, is what any later open would do to the same bytes).
fn scan_segments(
    fs: &Arc<dyn FileSystem>,
    headers: &[SegmentToScan],
    mode: RecoveryMode,
) -> Vec<Result<SegmentScan, StoreError>> {
    // One thread (the caller's, in order) where syncs from several threads would make fault
    // counts nondeterministic.
    let threads = if fs.concurrent_syncs() {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(headers.len())
    } else {
        1
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    // The lowest index whose scan failed: later ones not yet started are skipped, earlier ones
    // never are (so the error returned is the first in order, as a scan in order finds it).
    let first_failed = AtomicUsize::new(usize::MAX);
    let slots: Vec<parking_lot::Mutex<Option<Result<SegmentScan, StoreError>>>> =
        headers.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    let work = || {
        // One buffer for every segment this thread reads: a fresh one would be page-faulted in
        // again for each.
        let mut bytes = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(h) = headers.get(i) else { break };
            if i > first_failed.load(Ordering::Relaxed) {
                continue;
            }
            let scan = scan_segment(fs, h, mode, &mut bytes);
            if scan.is_err() {
                first_failed.fetch_min(i, Ordering::Relaxed);
            }
            *slots[i].lock() = Some(scan);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // No thread to be had: the calling thread does the work alone.
            let builder = std::thread::Builder::new().name("notifeed-scan".into());
            if builder.spawn_scoped(scope, work).is_err() {
                break;
            }
        }
        work();
    });
    let mut out = Vec::with_capacity(headers.len());
    for (slot, h) in slots.into_iter().zip(headers) {
        match slot.into_inner() {
            Some(scan) => {
                let failed = scan.is_err();
                out.push(scan);
                if failed {
                    break;
                }
            }
            // Unreachable: every index up to the first failure is scanned, and the loop ends
            // there.
            None => {
                out.push(Err(StoreError::Backend {
                    engine: "log",
                    detail: format!("{} was not scanned", h.path.display()),
                }));
                break;
            }
        }
    }
    out
}

/// Syncs segment `file` (at `path`); when the sync fails, leaves `UNSYNCED_FILE` (best effort)
/// so that the next open writes again what this sync may have left clean but unwritten.
///
/// # Errors
/// [`StoreError::Io`].
fn sync_or_mark(fs: &Arc<dyn FileSystem>, path: &Path, file: &dyn super::fs::FsFile) -> Result<(), StoreError> {
    file.sync_data().map_err(|e| {
        if let Some(dir) = path.parent() {
            leave_unsynced_marker(&**fs, dir);
        }
        io_error("syncing", path, e)
    })
}

/// Scans one segment (read into `bytes`): decodes and checks every frame, cuts a torn tail (of
/// the last segment of a window), skips bad regions in salvage mode, writes again what no
/// completed sync covered and syncs the file.
///
/// # Errors
/// [`StoreError::Corruption`] for a bad region that is not a torn tail (outside salvage mode);
/// [`StoreError::Io`].
fn scan_segment(
    fs: &Arc<dyn FileSystem>,
    h: &SegmentToScan,
    mode: RecoveryMode,
    bytes: &mut Vec<u8>,
) -> Result<SegmentScan, StoreError> {
    let (id, window, salt, path, len, is_last) = (h.id, h.window, h.salt, &h.path, h.len, h.is_last);
    let mut feeds = Interner::default();
    let mut groups = Interner::default();
    let mut ops = Vec::new();
    let mut torn_tail = None;
    let mut lost = Vec::new();
    if len < h.synced_at_close {
        // Records a clean close or a checkpoint found synced are gone: corruption, whatever
        // frame the file ends on.
        let reason = format!("the file ends before {}, its listed synced length (SYNCED)", h.synced_at_close);
        if mode != RecoveryMode::Salvage {
            return Err(StoreError::Corruption {
                location: format!("{} offset {len}", path.display()),
                detail: reason,
            });
        }
        let len_lost = h.synced_at_close - len;
        lost.push(LostRegion { segment: path.display().to_string(), offset: len, len: len_lost, reason });
    }
    let file = fs.open(path, false).map_err(|e| io_error("opening", path, e))?;
    let size = usize::try_from(len).map_err(|_| StoreError::Corruption {
        location: path.display().to_string(),
        detail: "segment larger than memory".into(),
    })?;
    // The buffer keeps the longest length it had: a shorter segment is read into its front (the
    // read overwrites what it held). A longer one gets a new buffer from `vec!`, which takes
    // zeroed pages from the OS (calloc) where `resize` would write every zero itself: a tenth
    // of a scanning open's instructions.
    if bytes.len() < size {
        *bytes = vec![0; size];
    }
    let bytes = &mut bytes[..size];
    file.read_exact_at(bytes, 0).map_err(|e| io_error("reading", path, e))?;
    let seg64 = record::frame_key(u64::from(id), salt);
    let mut offset = SEGMENT_HEADER_LEN;
    let mut max_removal_lsn = 0;
    let mut max_expiration = i64::MIN;
    // Bytes no compaction may drop: every record but a plain upsert (whose liveness the
    // index tells once replay is done).
    let mut pinned = 0u64;
    let mut end = bytes.len();
    let mut file_len = bytes.len();
    // Once salvage has skipped a region of this segment, a later bad region is not judged an
    // unsynced hole: cutting it would also cut the frames whose unsynced distance said the
    // skipped region was durable, and a reopen would then judge that region otherwise.
    let mut salvaged_here = false;
    // The offset and unsynced distance of the last frame accepted.
    let mut last_frame: Option<(usize, u32)> = None;
    while offset < end {
        let failure = match record::decode_frame(&bytes[offset..end], seg64) {
            Ok(frame) => match to_op(&frame, (id, offset as u32, frame.len() as u32), &mut feeds, &mut groups) {
                Ok((_, span, _, _)) if !within_lsn_bound(frame.lsn, span) => {
                    format!("LSN {} with span {span} is beyond the largest LSN", frame.lsn)
                }
                Ok((op, span, removes, expiration)) => {
                    if removes {
                        max_removal_lsn = max_removal_lsn.max(frame.lsn + span - 1);
                    }
                    if let Some(expiration) = expiration {
                        max_expiration = max_expiration.max(expiration);
                    }
                    if !matches!(op, Op::Upsert { evicted: None, .. }) {
                        pinned += frame.len() as u64;
                    }
                    last_frame = Some((offset, frame.unsynced_distance));
                    ops.push(Scanned { lsn: frame.lsn, span, op });
                    offset += frame.len();
                    continue;
                }
                Err(e) => format!("undecodable body: {e}"),
            },
            Err(e) => e.to_string(),
        };
        // Below what a clean close found synced, nothing is torn: any bad frame is corruption.
        let may_be_torn = is_last && offset as u64 >= h.synced_at_close;
        if may_be_torn && bytes[offset..end].iter().all(|&b| b == 0) {
            // Zeros written ahead of the records (preallocation): no record was ever there,
            // or none that a sync had covered. Kept as the file's preallocated space.
            end = offset;
            break;
        }
        let next = next_valid_frame(&bytes[..end], offset + 1, seg64);
        let hole = next.filter(|_| !salvaged_here).and_then(|from| unsynced_hole(&bytes[..end], offset, from, seg64));
        if may_be_torn && (next.is_none() || hole.is_some()) {
            // IMPORTANT 6: cut the torn tail and make the cut durable before anything is
            // appended after it.
            file.set_len(offset as u64).map_err(|e| io_error("truncating", path, e))?;
            file_len = offset;
            sync_or_mark(fs, path, &*file)?;
            torn_tail = Some(TornTail {
                segment: path.display().to_string(),
                offset: offset as u64,
                bytes_dropped: (end - offset) as u64,
                valid_records_dropped: hole.unwrap_or(0),
            });
            end = offset;
            break;
        }
        if mode != RecoveryMode::Salvage {
            return Err(StoreError::Corruption {
                location: format!("{} offset {offset}", path.display()),
                detail: failure,
            });
        }
        let resume = next.unwrap_or(end);
        salvaged_here = true;
        lost.push(LostRegion {
            segment: path.display().to_string(),
            offset: offset as u64,
            len: (resume - offset) as u64,
            reason: failure,
        });
        offset = resume;
    }
    // IMPORTANT 10: what the scan accepted is durable before the store serves it or writes
    // after it. After a process crash or a failed sync the file may hold bytes that are only
    // in the page cache; a later acknowledged write must not depend on them. A sync alone
    // does not do it after a failed sync: Linux marks the pages that sync could not write
    // clean (and this descriptor is not told), so a later sync skips them. So after a failed
    // sync (which leaves `UNSYNCED_FILE`), the bytes no completed sync covered, by the last
    // frame's unsynced distance, are written again (the same bytes) first, which makes them
    // dirty: the sync then writes them or fails. The failed sync's own cut normally zeroed
    // them; this covers a crash before the cut, or a cut that failed. A segment without frames
    // gets its header written again: the sync of a new segment's header may have failed (fuzz
    // finding 11), and records appended after this open would otherwise follow a header that
    // never reached the disk. Not after other opens: it would write a segment's worth of bytes
    // again for nothing (with `Buffered`, frames are sealed long before their sync).
    let from = match last_frame {
        None => 0,
        Some((_, distance)) if distance >= record::MAX_UNSYNCED_DISTANCE => SEGMENT_HEADER_LEN,
        Some((at, distance)) => at.saturating_sub(distance as usize).max(SEGMENT_HEADER_LEN),
    };
    if h.rewrite_unsynced && from < end {
        file.write_all_at(&bytes[from..end], from as u64).map_err(|e| io_error("writing", path, e))?;
    }
    sync_or_mark(fs, path, &*file)?;
    let state = SegmentState {
        window,
        salt,
        len: end as u64,
        allocated: file_len as u64,
        // Synced above.
        synced_len: end as u64,
        max_removal_lsn,
        max_expiration,
        // Completed by `recover`, once replay tells which upserts are live.
        dead_bytes: (end as u64).saturating_sub(SEGMENT_HEADER_LEN as u64).saturating_sub(pinned),
        dirty: false,
        pending: Vec::new(),
    };
    Ok(SegmentScan { id, ops, feeds, groups, state, torn_tail, lost })
}

/// The replay operation of a frame, with its span, whether it removes, and the expiration it
/// records.
fn to_op(
    frame: &record::Frame<'_>,
    location: (u32, u32, u32),
    feeds: &mut Interner,
    groups: &mut Interner,
) -> Result<(Op, u64, bool, Option<i64>), CodecError> {
    if let RecordKind::Append | RecordKind::Replace | RecordKind::StateChange = frame.kind {
        let body = record::decode_upsert_for_index(frame.body)?;
        let n = &body.notification;
        let entry = EntryFields {
            id: n.id,
            position: body.position,
            sequence: 0,
            expiration: n.expiration,
            segment: location.0,
            offset: location.1,
            len: location.2,
            app_hash: app_hash_of_bytes(n.app_notification_id),
            group: 0,
            platforms: n.platforms,
            states: (n.read_state & 1) | ((n.user_action_state & 3) << 1),
        };
        let span = 1 + u64::from(body.evicted.is_some());
        let op = Op::Upsert {
            kind: frame.kind,
            feed: feeds.intern(body.feed),
            position: body.position,
            evicted: body.evicted,
            entry,
            group: n.group_name.map(|g| groups.intern(g)),
        };
        return Ok((op, span, body.evicted.is_some(), None));
    }
    let rec = Record::decode(frame.kind, frame.body)?;
    let span = rec.span();
    let op = match rec {
        Record::Delete(b) => Op::Delete { feed: feeds.intern(&b.feed), id: b.id },
        Record::GroupDelete(b) => Op::GroupDelete { feed: feeds.intern(&b.feed), ids: b.ids },
        Record::Expired(b) => {
            let latest = b.expired.iter().map(|(_, t)| *t).max();
            return Ok((Op::Expired { feed: feeds.intern(&b.feed), expired: b.expired }, span, false, latest));
        }
        Record::Removals(b) => {
            let op = Op::Removals {
                feed: feeds.intern(&b.feed),
                forgotten_through: b.forgotten_through,
                removals: b.removals,
            };
            // `removes`, as when it was written: when this record's own window is unlinked, the
            // sweep must carry the log again.
            return Ok((op, span, true, None));
        }
        Record::Upsert(..) => return Err(CodecError::Body("an upsert under another kind".into())),
    };
    Ok((op, span, true, None))
}

/// Replays the records `order` names (indices into `scanned`, in LSN order). A record touches
/// one feed, and feeds are independent, so feeds are shared out among up to 4 threads (the
/// calling one among them), each replaying its feeds' records in LSN order. Deterministic:
/// every feed sees its own records in the same order whatever the threads.
fn replay_all(
    cells: &[Arc<super::index::FeedCell>],
    group_names: &[String],
    scanned: &[Scanned],
    order: &[(u64, usize)],
    settings: &RecoverySettings,
) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(cells.len()).max(1);
    let mut shards: Vec<Vec<usize>> = (0..threads).map(|_| Vec::with_capacity(order.len() / threads + 1)).collect();
    for &(_, i) in order {
        shards[scanned[i].op.feed() as usize % threads].push(i);
    }
    let replay_shard = |shard: &[usize]| {
        // Each feed's vectors and table sized once for what its records can add: appends that
        // evict nothing, never more than a feed holds (replacements and state changes add
        // nothing; a reservation is a hint, growth past it still works).
        let mut adds = vec![0usize; cells.len()];
        for &i in shard {
            if let Op::Upsert { kind: RecordKind::Append, feed, evicted: None, .. } = scanned[i].op {
                adds[feed as usize] += 1;
            }
        }
        for (cell, &n) in cells.iter().zip(&adds) {
            if n > 0 {
                cell.index.write().reserve(n.min(settings.feed_capacity));
            }
        }
        for &i in shard {
            replay(cells, group_names, &scanned[i], settings);
        }
    };
    std::thread::scope(|scope| {
        for shard in &shards[1..] {
            let builder = std::thread::Builder::new().name("notifeed-replay".into());
            if builder.spawn_scoped(scope, || replay_shard(shard)).is_err() {
                // No thread to be had: this one does that share too.
                replay_shard(shard);
            }
        }
        replay_shard(&shards[0]);
    });
}

fn replay(cells: &[Arc<super::index::FeedCell>], group_names: &[String], s: &Scanned, settings: &RecoverySettings) {
    let cap = settings.removal_log_capacity;
    let feed_of = |n: u32| &cells[n as usize];
    match &s.op {
        &Op::Upsert { kind, feed, position, evicted, mut entry, group } => {
            let cell = feed_of(feed);
            let mut f = cell.index.write();
            let sequence = s.lsn + s.span - 1;
            if let Some(ev) = evicted {
                if let Some(slot) = f.slot_of(&ev) {
                    f.remove(slot);
                }
                f.log_removal(s.lsn, ev, RemovalReason::Evicted, cap);
            }
            entry.position = if position == 0 { sequence } else { position };
            entry.sequence = sequence;
            f.latest_sequence = f.latest_sequence.max(sequence);
            let existing = f.slot_of(&entry.id);
            if kind == RecordKind::StateChange
                && let Some(slot) = existing
                && f.entry(slot).position == entry.position
            {
                f.update_in_place(slot, (entry.segment, entry.offset, entry.len), sequence, entry.states);
                return;
            }
            if let Some(slot) = existing {
                f.remove(slot);
            }
            let group = group.and_then(|g| group_names.get(g as usize)).map(String::as_str);
            f.insert(entry, group);
        }
        &Op::Delete { feed, id } => {
            let mut f = feed_of(feed).index.write();
            if let Some(slot) = f.slot_of(&id) {
                f.remove(slot);
            }
            f.log_removal(s.lsn, id, RemovalReason::Deleted, cap);
            f.latest_sequence = f.latest_sequence.max(s.lsn);
        }
        Op::Removals { feed, forgotten_through, removals } => {
            let mut f = feed_of(*feed).index.write();
            f.forgotten_removals_through = f.forgotten_removals_through.max(*forgotten_through);
            for &(sequence, id, reason) in removals {
                if let Some(reason) = RemovalReason::from_u8(reason) {
                    f.remember_removal(sequence, id, reason, cap);
                }
            }
        }
        Op::Expired { feed, expired } => {
            let mut f = feed_of(*feed).index.write();
            for &(id, expiration) in expired {
                // Whatever version is indexed goes: every record of this notification has a
                // lower LSN (a swept notification is never written again), and the version
                // replayed may be an older one than the sweep counted (compaction keeps an
                // evicting `Append` but may drop the later, superseded versions).
                if let Some(slot) = f.slot_of(&id) {
                    f.remove(slot);
                }
                f.log_swept(expiration, id);
            }
        }
        Op::GroupDelete { feed, ids } => {
            let mut f = feed_of(*feed).index.write();
            for (i, id) in ids.iter().enumerate() {
                if let Some(slot) = f.slot_of(id) {
                    f.remove(slot);
                }
                f.log_removal(s.lsn + i as u64, *id, RemovalReason::GroupDeleted, cap);
            }
            f.latest_sequence = f.latest_sequence.max(s.lsn + s.span - 1);
        }
    }
}
