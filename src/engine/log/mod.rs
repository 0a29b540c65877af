//! [`LogStore`]: notifeed's own engine, an append-only log of CRC-framed records in segment
//! files bucketed by expiration window, with an in-memory index rebuilt on open.
//!
//! The on-disk format and the invariants recovery relies on are written down once, in
//! `src/engine/log/FORMAT.md`. In short:
//!
//! * **One operation = one record.** Append (with its eviction), replacement, state change,
//!   delete and group delete each write exactly one record, so a crash never leaves half an
//!   operation behind.
//! * **Segments by expiration window.** A record goes to the segment of the window its
//!   notification expires in, or to a later one when it shadows a record there; expiring a
//!   window is unlinking its files. Nothing is copied. The watermark names the files a sweep
//!   is unlinking before the first goes, and an open finishes a sweep that a crash cut short
//!   ([`RecoveryReport::unlinks_finished`]), so no tombstone is gone while what it deleted
//!   stays.
//! * **Group commit.** Writers queue records; a leader writes the batch to its segments and
//!   makes it durable for all of them ([`Durability::Always`]): by appending a copy of its
//!   frames to the commit journal and syncing that one file (`journal.rs`,
//!   [`LogConfig::journal_bytes`]; the segments are synced at checkpoints, and an open writes
//!   the journal back before it reads them), or, without a journal or when the entry does
//!   not fit, by syncing every segment it touched: one `fdatasync` for one file, one `syncfs`
//!   for several ([`LogConfig::volume_sync`]; without it, the files' `fdatasync`s in
//!   parallel). A [`Durability::Buffered`] store has no sync to share, so each writer writes
//!   its own record into its segment's buffer, under the lock that orders all writes; only
//!   its `sync` runs as a batch.
//! * **Reads** decode records straight from a read-only memory map of the segment file (made
//!   at a file's first read, remade as it grows), checking each frame's crc32. The head cache
//!   keeps each feed's newest page decoded ([`LogConfig::head_cache_bytes`], 32 MiB by
//!   default): a `list`, `get` or lookup by app id takes from it each notification whose
//!   current record is the one it cached, so no write has to update it (`head_cache.rs`).
//! * **Index in memory.** Per feed, 50-byte entries in position order and one hash table of
//!   2-byte slots (4-byte past 2^15 entries) serving id and app-id lookups; a global expiry
//!   order of about 4 bytes per notification; strings stay in the files, group names once per
//!   feed. [`LogStore::index_stats`] counts it: 60.7 bytes per notification at 1M and 63.8
//!   at 100k (where a feed holds fewer notifications per window and group), in a scratch load
//!   shaped like the bench's on 2026-12-01. See `index.rs`, `slot_table.rs`, `expiry.rs`.
//!   An append to a full feed (one that evicts) costs amortized O(1) index work: each feed
//!   keeps its count of expired notifications exact as of the last time it was taken, and
//!   takes it again (one pass) only when some held notification's expiration has passed
//!   since; and the search for the oldest live notification, the one evicted, starts where
//!   the last one ended, so expired notifications no sweep has taken yet are walked once, not
//!   at each append.
//! * **Recovery.** An open scans every segment and checks each frame: a torn tail of a
//!   window's last segment is cut and reported ([`RecoveryReport::torn_tails`]), any other bad
//!   frame refuses the open (or is skipped and reported, in [`RecoveryMode::Salvage`]). What
//!   tells the two apart: each frame records where its segment's synced prefix ended when it
//!   was written, and a clean close, every checkpoint of the commit journal and every `sync`
//!   of a store without one list every segment's synced length (`synced_lengths.rs`), so
//!   damage to synced records is not taken for an interrupted write (`recovery.rs`).
//! * **Index snapshot** (opt-in, [`LogConfig::index_snapshot`]). A clean close writes the
//!   index; the next open uses it when every segment is byte for byte what it was, and scans
//!   every record otherwise (`snapshot.rs`).
//! * **Compaction.** Each sweep copies a few mostly dead sealed segments of windows still to
//!   come without their superseded records (`compaction.rs`).
//! * **Backup** ([`LogStore::backup`]): a copy of the store as of one instant into a new
//!   directory, taken while it runs (`backup.rs`).
//! * **Verify** ([`LogStore::verify`]): an online scrub that reads every record back and
//!   every notification through the index, reporting the first bad one (`verify.rs`).
//! * **Ids.** A new notification's id is a random version-4 UUID whose last 4 bytes are set so
//!   that bytes 0..4 XOR bytes 12..16 equal a 32-bit hash (XXH3) of its `appNotificationId`:
//!   one index slot then finds it both by id and by app id (96 bits stay random). Ids of
//!   notifications stored by earlier versions keep working, at one more slot each.
//! * **Poisoning.** A failed write or sync poisons the store: every later mutating call returns
//!   [`StoreError::Poisoned`] until the store is reopened, which recovers from the files. A
//!   failed sync also cuts every segment back to what its last successful sync made durable:
//!   Linux keeps the pages a failed `fdatasync` could not write in the page cache, marked
//!   clean, and a later descriptor is not told, so a reopen in the same boot would otherwise
//!   serve records a power loss can still take ("fsyncgate"). A failed write during a
//!   `Buffered` flush cuts that flush back (see Durability).
//!
//! # Durability
//! * [`Durability::Always`] (the default): a mutating call returns after its record is
//!   `fdatasync`ed: in the commit journal's entry for its batch (see
//!   [`LogConfig::journal_bytes`]), or in its segment (without a journal, or when the entry
//!   does not fit; when the batch wrote to several files, covered by one `syncfs`: see
//!   [`LogConfig::volume_sync`]), together with its segment's creation (header synced,
//!   directory synced). Survives power loss.
//! * [`Durability::Buffered`]: a mutating call returns once its record is in the engine's
//!   write buffer ([`LogConfig::write_buffer_bytes`] per segment, 64 KiB by default). Whenever
//!   any buffer must reach the OS (it fills, `sync`, a read of a buffered record, a sweep,
//!   close), every segment's buffer is written, so a process crash keeps exactly the operations
//!   up to the last such flush (a prefix of the operations) and loses the later ones. A write
//!   that fails during a flush poisons the store and cuts the segments that flush wrote back
//!   to their lengths before it, so the files again hold the operations up to the previous
//!   flush. Three cases keep a prefix of each file instead of a prefix of the operations: a
//!   crash that strikes during a flush (which writes one segment's buffer after another) or
//!   during that cut (or a cut that fails); a failed sync, which cuts each segment back to its
//!   own last synced length (a segment is synced alone when it rolls, so one may hold a later
//!   operation than another keeps); and a power loss, which loses what was not synced (a sync
//!   it interrupts may have reached some files and not others, so records of one expiration
//!   window may survive while earlier records of another are lost). There a lost
//!   delete and a kept later append of the same `appNotificationId` leave two live
//!   notifications with that app id in the files; the open that follows (a scan) deletes the
//!   older, as the lost delete did, and lists it in
//!   [`RecoveryReport::duplicate_app_ids_removed`].
//!   [`FeedStore::sync`] makes every earlier mutation durable, and when a segment's synced
//!   length changed since the last listing it also lists them all (one more small file
//!   written and synced, and its directory), so that damage to what is durable is refused as
//!   corruption after a power loss, not cut as a torn tail. With `write_buffer_bytes: 0`
//!   every call reaches the page cache before it returns and survives a process crash (but
//!   not a failed sync after it, which cuts what no sync covered).

mod backup;
mod commit;
mod compaction;
mod expiry;
pub mod fs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod groups;
mod head_cache;
mod index;
mod journal;
mod lock;
mod prefetch;
mod record;
mod recovery;
mod segment;
mod slot_table;
mod snapshot;
mod sweep;
mod synced_lengths;
mod verify;
mod watermark;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use jiff::SignedDuration;

use crate::changes::{FeedHorizon, Planned, Sequenced, check_token, plan_page};
use crate::clock::timestamp_to_nanos;
use crate::store::validate_for_append;
use crate::{
    Change, ChangeToken, Changes, Counts, Durability, FeedKey, FeedStore, ListQuery, NewNotification, Notification,
    NotificationId, Page, ReadState, RemovalReason, SharedClock, StateUpdate, StoreError, StoreOptions, SweepStats,
};
pub use backup::{BackupDirectory, BackupReport};
use commit::{GroupCommit, PendingRecord, Placed, Request};
use fs::{FileSystem, StdFileSystem};
use head_cache::{Fill, HEAD_MAX, HeadCache, HeadSlot, Location};
use index::{Entry, EntryFields, FeedIndex, Index, app_hash, notification_id};
use lock::DirectoryLock;
use record::{Outgoing, RecordKind};
pub use recovery::{IndexSnapshot, LostRegion, RecoveryMode, RecoveryReport, TornTail};
use recovery::{RecoverySettings, window_of};
use segment::{SegmentReader, Segments};
pub use verify::VerifyReport;

/// The file a directory that [`LogStore::backup`] is copying into (or that a failure or a crash
/// cut short) holds: every open refuses a directory that holds it, and the copy removes it
/// last, once whole and durable.
pub const BACKUP_INCOMPLETE_FILE: &str = backup::INCOMPLETE_FILE;

/// The largest `feed_capacity` a [`LogStore`] accepts.
///
/// A group delete is one record (one operation = one record, so a crash never leaves half of
/// it), listing every live member's 16-byte id; a feed holds at most `feed_capacity` live
/// notifications, so this bound keeps the largest group delete (50,000 × 16 bytes plus a
/// feed key of at most 256 bytes, about 782 KiB) within the 1 MiB frame body bound
/// (`codec::MAX_DECODE_BYTES`), with room to spare.
pub const MAX_FEED_CAPACITY: usize = 50_000;

// The largest group-delete body: feed key (≤ 256 bytes + its varint length), the id count
// (a varint of at most 9 bytes) and the ids.
const _: () = assert!(256 + 9 + 9 + MAX_FEED_CAPACITY * 16 <= crate::codec::MAX_DECODE_BYTES);

/// How a [`LogStore`] behaves. Every field has a default; see each.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The options every engine honours. Default: [`StoreOptions::default`].
    /// `options.feed_capacity` must be at most [`MAX_FEED_CAPACITY`] (the open refuses more),
    /// so that a group delete of a whole feed always fits one record.
    pub options: StoreOptions,
    /// When a mutation is durable (see the module documentation). Default:
    /// [`Durability::Always`].
    pub durability: Durability,
    /// The width of an expiration window: records expiring in one window share its segment
    /// files, and a sweep unlinks a window's files once the window has passed. Bounds: at least
    /// one second (smaller values are raised). Default: 1 hour.
    pub window: SignedDuration,
    /// The size at which a window's segment rolls to a new file. Bounds: 4 KiB to 4 GiB − 1
    /// (values outside are clamped). Default: 64 MiB.
    pub max_segment_bytes: u64,
    /// The most segment files kept open at once (an LRU of descriptors), whatever the number of
    /// windows. A file written since its last sync is closed only when every file open is
    /// such a file (Linux reports a failed background write-back to a later sync only while
    /// the file's inode stays in memory, which an open descriptor ensures). So a write that
    /// would leave more than `max_open_files − 1` files unsynced syncs them first, and one
    /// descriptor stays for reads of synced files: with the commit journal, a batch
    /// checkpoints first ([`LogConfig::journal_bytes`]); with [`Durability::Buffered`], the
    /// write that would dirty one file too many first syncs every unsynced one, as a `sync`
    /// would, while it holds the writer's lock (a failure poisons the store, that write
    /// returns the error, unwritten, and the unsynced records are cut as a failed `sync` cuts
    /// them). A sweep does the same. A batch whose records alone span `max_open_files` windows
    /// or more syncs at its end instead (with 1 descriptor, every batch: a `Buffered` store's
    /// unsynced files may then be closed). So a workload that writes to more windows than this
    /// between two syncs (TTLs spread over more than about 5 days, with 1-hour windows and the
    /// default) syncs that much more often: raise it there. At 2 every change of window syncs;
    /// at 1 the journal is in effect off.
    /// Bounds: at least 1. Default: 128.
    pub max_open_files: usize,
    /// How far ahead of its records a segment file is extended with zeros, in one write with
    /// the records that reach past the zeros. An `fdatasync` of records written over zeros
    /// changes no file size, so it commits no file-system metadata (several times faster than
    /// syncing a growing file when the disk is busy). The zeros are cut when a segment rolls,
    /// at each sweep and at a clean close; after a crash the open keeps them as preallocated
    /// space. `Some(0)` turns preallocation off. Bounds: at most `max_segment_bytes`.
    /// Default (`None`): 64 KiB with [`Durability::Always`], none with
    /// [`Durability::Buffered`], whose writes reach the disk only at a `sync`: there the zeros
    /// would only double the bytes written to the OS (measured: 3% to 25% of a buffered
    /// append's CPU time, see benches/README.md).
    pub preallocate_bytes: Option<u64>,
    /// With [`Durability::Buffered`]: how many bytes a segment gathers in the engine's own
    /// buffer before they are written to the OS (they are also written on `sync`, on a read of
    /// a buffered record, and on close). A process crash loses what is still in the buffer;
    /// 0 writes every record to the OS before the call returns. Ignored with
    /// [`Durability::Always`]. Default: 64 KiB.
    pub write_buffer_bytes: usize,
    /// With [`Durability::Always`] (at the commit journal's checkpoints, or for every batch
    /// without a journal), and on `sync`: a group commit whose batch wrote to several segment
    /// files (records of several expiration windows) makes them durable with one
    /// `syncfs` of the file system holding the data directory, instead of one `fdatasync` per
    /// file, where that is as safe: on ext4 under Linux 5.17 or later (checked at open, see
    /// [`fs::FileSystem::volume_sync`]; elsewhere, and when a first `syncfs` at open fails, each
    /// file is synced and this does nothing). There ext4 commits its journal and flushes the
    /// disk once for `syncfs`, once per file for `fdatasync`: on the bench machine, five files
    /// took one `fdatasync`'s time (about 200 µs) instead of 400 µs in parallel or 800 µs one
    /// after another, which is what lets 16 concurrent writers scale (benches/README.md). The
    /// costs: `syncfs` also writes back every other program's unsynced data on that file
    /// system, and the whole store (writers, reads of unflushed records, sweeps) waits for it;
    /// and a write-back error in any file there, another program's included, poisons the
    /// store. Give the data directory its own file system, or turn this off when it shares one
    /// with a heavy or failing writer. A batch that wrote to one file always uses `fdatasync`.
    /// Default: `true`.
    pub volume_sync: bool,
    /// With [`Durability::Always`]: the size of the commit journal (the file `commit.journal`,
    /// written full of zeros at open; at least 8 KiB, at most 1 GiB), or 0 for none. With a journal, a group
    /// commit appends a copy of the frames it wrote to their segments to the journal, in one
    /// place, and syncs only the journal; the segments are synced at a checkpoint (when the
    /// journal is full, at each `sync`, at a clean close, and before compaction), after which
    /// every segment's synced length is written to the file `SYNCED` (so that after a power
    /// loss damage to any acknowledged record refuses the open, never passes for a torn tail:
    /// FORMAT.md, invariant 3) and the journal starts over. An open writes what the journal
    /// holds back into the segments before it reads them. Why: a batch writes to the segment
    /// of each window its records expire in, and the disk pays for each place written in a
    /// sync; one contiguous entry costs about what one record costs. The costs: each record is
    /// written twice (once to the journal), the journal's size on disk, and a checkpoint's
    /// sync of every segment written since the last one and its atomic rewrite of `SYNCED`
    /// (two syncs more), in the batch that finds the journal full. Segment pages stay
    /// unsynced until a checkpoint, and the kernel may write them back (and fail to) before
    /// it: Linux reports such a failure to the checkpoint's `fdatasync` only while the file's
    /// inode stays in memory, so every segment written since the last checkpoint keeps its
    /// descriptor open, and a batch that would leave
    /// [`LogConfig::max_open_files`] or more such segments checkpoints first (a checkpoint by
    /// `syncfs`, [`LogConfig::volume_sync`], is told of such failures whatever the inodes).
    /// No test here can make the kernel's write-back fail; the tests pin that the LRU keeps
    /// those descriptors and that the batch checkpoints first. Without a journal (0), each batch syncs every segment it wrote
    /// ([`LogConfig::volume_sync`]). Ignored with [`Durability::Buffered`], whose open removes
    /// any journal (after writing it back). Default: 1 MiB.
    pub journal_bytes: u64,
    /// What the open does with a bad record that is not a torn tail. Default:
    /// [`RecoveryMode::TolerateTornTail`] (refuse to open).
    pub recovery_mode: RecoveryMode,
    /// Whether a clean close writes an index snapshot (the file `INDEX`), and the next open
    /// rebuilds the index from it instead of decoding every record. The open uses it only when
    /// every segment is byte for byte what it was at the close (it checksums each whole file,
    /// so corruption is still found at open), and removes it before serving; a close that is
    /// not clean (a crash, a poisoned store, a salvage open that lost records) leaves none, and
    /// the next open scans. Costs a read of every segment and about 62 bytes per notification
    /// written at close, kept on disk until the next open. Default: `false`: a scanning open
    /// meets the open targets (benches/README.md, 2026-12-01 11:33: 1M notifications in 708 ms
    /// scanning, 241 ms from a snapshot), and the snapshot would add about 14% to the disk a
    /// closed store takes (1.28× the payload instead of 1.12×). Every open then runs the
    /// recovery that an open after a crash runs. Turn it on where restarts must be faster.
    pub index_snapshot: bool,
    /// Compaction (run by each sweep): a sealed segment of a window that has not passed is
    /// copied without its dead records (notifications replaced, changed, deleted or evicted
    /// since) once at least this fraction of its bytes is dead. Bounds: 0.05 to 1.0 (clamped).
    /// Default: 0.5.
    pub compaction_dead_fraction: f64,
    /// At most this many bytes of segments are compacted per sweep, the deadest first
    /// (compaction holds the writer's lock while it copies one segment). 0 turns compaction
    /// off. Default: 64 MiB.
    pub compaction_bytes_per_sweep: u64,
    /// The head cache's budget, in bytes. Each feed's newest page is kept decoded: a `list`
    /// takes from it each notification whose record has not changed since it was cached,
    /// instead of reading and decoding that record again, and a `list` without filters or
    /// cursor that had to read any of its first 100 notifications makes them the feed's new
    /// head (a feed without one gets it at the second such `list`; see `head_cache.rs`). No
    /// write updates it: it matches records by location. Past the budget, feeds' heads are
    /// dropped in the order the feeds got them, passing over once those read since (CLOCK).
    /// A cached notification is not read from the file again, so damage done to its record
    /// on disk after it was cached goes unseen until the head is replaced
    /// ([`LogStore::verify`] reads the files). `get` and lookups by app id (a `get_by_app_id`,
    /// and the check of an append or a `delete_by_app_id` for the app id it names) take a
    /// notification from its feed's head too when it is there, and make no head; the change
    /// feed always reads the files. [`LogStats`] counts hits and misses and the bytes held. 0
    /// turns the cache off. Default: 32 MiB.
    pub head_cache_bytes: usize,
}

impl LogConfig {
    /// The zeros written ahead of a segment's records: [`LogConfig::preallocate_bytes`], or its
    /// default for [`LogConfig::durability`].
    pub fn preallocate_bytes(&self) -> u64 {
        self.preallocate_bytes.unwrap_or(match self.durability {
            Durability::Always => 64 << 10,
            Durability::Buffered => 0,
        })
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            options: StoreOptions::default(),
            durability: Durability::Always,
            window: SignedDuration::from_hours(1),
            max_segment_bytes: 64 << 20,
            max_open_files: 128,
            write_buffer_bytes: 64 << 10,
            volume_sync: true,
            journal_bytes: 1 << 20,
            recovery_mode: RecoveryMode::TolerateTornTail,
            index_snapshot: false,
            preallocate_bytes: None,
            compaction_dead_fraction: 0.5,
            compaction_bytes_per_sweep: 64 << 20,
            head_cache_bytes: 32 << 20,
        }
    }
}

/// How much memory the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct IndexStats {
    /// Notifications indexed (live, or expired and not yet swept).
    pub notifications: usize,
    /// Bytes of per-notification structures: entries, hash tables, groups, expiry order.
    pub notification_bytes: usize,
    /// Bytes of the change logs (remembered removals and swept expirations).
    pub change_log_bytes: usize,
    /// Feeds indexed.
    pub feeds: usize,
}

impl IndexStats {
    /// `notification_bytes` per notification (0 for an empty index).
    pub fn bytes_per_notification(&self) -> f64 {
        if self.notifications == 0 { 0.0 } else { self.notification_bytes as f64 / self.notifications as f64 }
    }
}

/// What a [`LogStore`] has done since it opened ([`LogStore::stats`]): how its writes were
/// grouped and made durable. Counts start at zero on each open; the files an open, a
/// verification, a backup or a snapshot reads, writes or syncs are not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogStats {
    /// Records written: one per operation (append, replacement, state change, delete, group
    /// delete, eviction), plus those a sweep writes (`Expired` records, per feed, listing
    /// what it expired; `Removals`). Records compaction copies are not counted.
    pub records: u64,
    /// Bytes of those records' frames (headers included).
    pub record_bytes: u64,
    /// Group commits: batches of `Always` writes made durable together (a `Buffered` write
    /// is no batch).
    pub batches: u64,
    /// Records those batches held: `batched_records / batches` is the mean batch.
    pub batched_records: u64,
    /// `fdatasync` calls of the write path: commit journal entries and generations, segment
    /// syncs, new segments' headers.
    pub file_syncs: u64,
    /// `syncfs` calls (`LogConfig::volume_sync`), each for several segments at once.
    pub volume_syncs: u64,
    /// Checkpoints: every segment written since its last sync synced, and the commit journal
    /// restarted. Every `Always` batch is one without the journal (`journal_bytes: 0`) or when
    /// its entry does not fit; with the journal, one comes when it is full, at `sync`, before
    /// compaction, and before a batch that would leave `max_open_files` segments unsynced.
    pub checkpoints: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Segment files removed, by sweeps (expired windows) and compaction.
    pub segments_removed: u64,
    /// Notifications reads took from the head cache ([`LogConfig::head_cache_bytes`]): `list`,
    /// `get` and lookups by app id.
    pub head_cache_hits: u64,
    /// Notifications those reads read from the segment files while the head cache was on.
    pub head_cache_misses: u64,
    /// Bytes the head cache holds now (its notifications' structs and strings), including
    /// heads replaced that a `list` still reads from.
    pub head_cache_bytes: u64,
}

impl LogStats {
    /// Records per group commit (0 before the first).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 { 0.0 } else { self.batched_records as f64 / self.batches as f64 }
    }
}

thread_local! {
    /// The frame buffer of this thread's last buffered write, for its next one: a buffered
    /// append allocates no frame (callgrind, benches/README.md).
    static SPARE_FRAME: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The largest frame buffer [`SPARE_FRAME`] keeps (a rare large record's buffer is dropped).
const SPARE_FRAME_MAX: usize = 4096;

/// notifeed's own engine. See the module documentation.
///
/// Cheap to share across threads (`Arc<LogStore>`); every method takes `&self`.
pub struct LogStore {
    config: LogConfig,
    window_nanos: i64,
    clock: SharedClock,
    segments: Segments,
    commit: GroupCommit<Request, Option<Placed>>,
    index: Index,
    report: RecoveryReport,
    /// Set by [`LogStore::close`], so the drop that follows does nothing more.
    closed: bool,
    /// Held by a sweep: one at a time.
    sweeping: parking_lot::Mutex<()>,
    /// Each feed's newest page, decoded.
    heads: HeadCache,
    _lock: DirectoryLock,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.segments.dir()).finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens (or creates) the store in `dir` on the real file system, recovering from its
    /// segments.
    ///
    /// # Errors
    /// [`StoreError::Backend`] ("invalid configuration") when `config.options.feed_capacity`
    /// exceeds [`MAX_FEED_CAPACITY`]; [`StoreError::Locked`] when another process (or store)
    /// holds `dir`;
    /// [`StoreError::Corruption`] with the segment and offset of a bad record that is not a
    /// torn tail (unless `config.recovery_mode` is [`RecoveryMode::Salvage`]);
    /// [`StoreError::Io`].
    ///
    /// Cost: reads every segment once (O(data)). From an index snapshot (a clean close), that
    /// is all; otherwise (a crash, a failed sync, snapshots off) every record is decoded, the
    /// segments on up to 4 threads (one whole segment each, each thread with a buffer the size
    /// of the largest segment it read), then replayed in LSN order, feeds shared out among up
    /// to 4 threads (each feed's records in order on one).
    pub fn open(dir: &Path, config: LogConfig, clock: SharedClock) -> Result<LogStore, StoreError> {
        Self::open_with_fs(dir, config, clock, Arc::new(StdFileSystem))
    }

    /// As [`LogStore::open`], on the file system `fs` (tests use
    /// [`fs::FaultFileSystem`]).
    ///
    /// # Errors
    /// As [`LogStore::open`].
    pub fn open_with_fs(
        dir: &Path,
        mut config: LogConfig,
        clock: SharedClock,
        fs: Arc<dyn FileSystem>,
    ) -> Result<LogStore, StoreError> {
        config.window = config.window.max(SignedDuration::from_secs(1));
        config.max_segment_bytes = config.max_segment_bytes.clamp(4096, u64::from(u32::MAX));
        config.max_open_files = config.max_open_files.max(1);
        config.compaction_dead_fraction = if config.compaction_dead_fraction.is_nan() {
            0.5
        } else {
            config.compaction_dead_fraction.clamp(0.05, 1.0)
        };
        config.options.feed_capacity = config.options.feed_capacity.max(1);
        if config.options.feed_capacity > MAX_FEED_CAPACITY {
            return Err(StoreError::Backend {
                engine: "log",
                detail: format!(
                    "invalid configuration: feed_capacity {} exceeds the log engine's maximum of \
                     {MAX_FEED_CAPACITY} (a group delete of a whole feed must fit one record)",
                    config.options.feed_capacity
                ),
            });
        }
        let window_nanos = i64::try_from(config.window.as_nanos()).unwrap_or(i64::MAX);
        create_dir_durably(&fs, dir)?;
        let lock = DirectoryLock::acquire(&fs, dir)?;
        let volume = if config.volume_sync {
            fs.volume_sync(dir).map_err(|e| segment::io_error("opening for syncfs", dir, e))?
        } else {
            None
        };
        let recovered = recovery::recover(
            &fs,
            dir,
            &RecoverySettings {
                mode: config.recovery_mode,
                removal_log_capacity: config.options.removal_log_capacity,
                feed_capacity: config.options.feed_capacity,
                use_snapshot: config.index_snapshot,
                window_nanos,
            },
        )?;
        let mut writer = recovered.writer;
        // Recovery wrote back what a journal held; an `Always` store starts a new generation of
        // it, any other store keeps none.
        if config.durability == Durability::Always && config.journal_bytes > 0 {
            writer.journal = Some(journal::Journal::open(fs.as_ref(), dir, config.journal_bytes)?);
        } else {
            journal::remove(fs.as_ref(), dir)?;
        }
        let sizes = (config.max_segment_bytes, config.preallocate_bytes());
        let segments = Segments::new(dir, fs, config.max_open_files, sizes, writer).with_volume_sync(volume);
        let heads = HeadCache::new(config.head_cache_bytes);
        let mut store = LogStore {
            config,
            window_nanos,
            clock,
            segments,
            commit: GroupCommit::default(),
            index: recovered.index,
            report: recovered.report,
            closed: false,
            sweeping: parking_lot::Mutex::new(()),
            heads,
            _lock: lock,
        };
        if store.report.index_snapshot != IndexSnapshot::Loaded {
            store.resolve_duplicate_app_ids()?;
        }
        Ok(store)
    }

    /// After a scanning open: where two live notifications of a feed hold one
    /// `appNotificationId`, deletes the older (by position), keeping the newer, and lists it in
    /// the recovery report. Only a loss that kept a prefix of each file rather than of the
    /// operations leaves such a pair (see the module documentation): the newer was appended
    /// after a removal of the older that the loss did not keep, so the delete redoes that
    /// removal. It is written like any delete (a record, durable as the store's durability
    /// says), so a later open does not bring the older back. Cost: one probe of the app-id
    /// table per notification, and a read of both records only where two share an app-id
    /// hash.
    ///
    /// # Errors
    /// As [`FeedStore::delete`].
    fn resolve_duplicate_app_ids(&mut self) -> Result<(), StoreError> {
        let now = self.now_nanos();
        let mut older_ones = Vec::new();
        for cell in self.index.all_feeds() {
            let f = cell.index.read();
            for slot in f.oldest_first().filter(|&s| f.entry(s).is_live(now)) {
                let e = f.entry(slot);
                let newer = f
                    .slots_with_app_hash(f.app_hash_at(slot))
                    .map(|s| f.entry(s))
                    .filter(|o| o.id != e.id && o.is_live(now) && (o.position, o.id) > (e.position, e.id));
                for o in newer {
                    // A record that does not decode (a string that is not UTF-8 under a valid
                    // checksum: the open does not check the strings the index skips) cannot be
                    // compared; it stays, and its reads report the corruption.
                    let (Ok(newer), Ok(older)) = (self.load(o), self.load(e)) else { continue };
                    if newer.app_notification_id() == older.app_notification_id() {
                        older_ones.push((cell.key.to_string(), notification_id(e)));
                        break;
                    }
                }
            }
        }
        for (key, id) in older_ones {
            let feed = FeedKey::new(key)?;
            if self.delete(&feed, id)? {
                self.report.duplicate_app_ids_removed.push((feed.as_str().to_string(), id));
            }
        }
        Ok(())
    }

    /// What the open found: torn tails truncated, regions lost to salvage.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.segments.dir()
    }

    /// Whether an I/O failure has poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.segments.poisoned.load(Ordering::SeqCst)
    }

    /// How many segment descriptors are open now (bounded by `max_open_files`).
    pub fn open_descriptors(&self) -> usize {
        self.segments.open_descriptors()
    }

    /// Reads every record back and checks it, without closing the store: each segment file
    /// from its header to its length when the call starts (the header, and each frame's
    /// crc32, keyed with its segment, and its body's decoding, as an open's scan checks them),
    /// then every notification the index holds whose record lies in what was read, through
    /// its index entry, as a read would (the record there is whole and is that
    /// notification's). Records still in a `Buffered` store's buffer are written to the OS
    /// first. Reads use `pread`, never a memory map, so a disk error is an error, not a
    /// `SIGBUS`. Regions the open's salvage reported lost ([`RecoveryReport::lost`]) are
    /// skipped and counted. Not read: the commit journal (its entries copy records of the
    /// segments), the `WATERMARK` file, preallocated zeros past a segment's records, and
    /// records written after the call started (left for the next run); the next open
    /// checks all of these.
    ///
    /// Sweeps (and their compaction) wait while it runs, so no file goes away and no record
    /// moves under it; writers and readers go on. Cost: reads every byte of the segments once
    /// with `pread` and decodes every record and held notification, O(data); memory: a 2 MiB
    /// read buffer and a copy of one feed's index entries at a time (50 bytes each).
    ///
    /// # Errors
    /// [`StoreError::Corruption`] naming the file and offset of the first record that fails.
    /// The store is not poisoned: writes go on, and reads of other records too. The next open
    /// finds it too: it refuses (unless [`RecoveryMode::Salvage`] is asked for), or, when the
    /// bad record is among the last of its window's newest segment, cuts it and what follows
    /// as a torn tail ([`RecoveryReport::torn_tails`]). [`StoreError::Io`] when a file cannot
    /// be read (or a `Buffered` store's buffer written: that poisons it);
    /// [`StoreError::Poisoned`] when the store is poisoned, before or during the run (what
    /// the run found is then not reported).
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        verify::verify(self)
    }

    /// Copies the store, as of one instant, into `dest` (created if missing, durably; it must
    /// hold no file), as a data directory [`LogStore::open`] opens: every operation
    /// acknowledged before the instant is in the copy, none after it, whatever the durability
    /// level (a `Buffered` store's buffered records are written to the OS first). Every record
    /// copied is checked as [`LogStore::verify`] checks it. The copy is durable when the call
    /// returns: each file synced, and the directory. It holds `dest`'s lock meanwhile. A copy
    /// that an error or a crash cut short keeps a `BACKUP_INCOMPLETE` file, and an open
    /// refuses it: remove the directory and back up again.
    ///
    /// Not copied: the commit journal (its entries copy records the segments hold), the index
    /// snapshot (the copy's first open scans), preallocated zeros. Sweeps (and their
    /// compaction) wait while it runs; writers and readers go on. Cost: reads, checks and
    /// writes every record once (with `pread`, a 2 MiB buffer), O(data); on the store's own
    /// file system it needs as much free space as the segments' records (a write that then
    /// fails for want of space poisons the store, as always).
    ///
    /// Restoring a copy (opening it in place of the store) goes back to the instant: the
    /// change tokens the store handed out after it name changes the copy never had, so
    /// clients should drop theirs and start again from `list`.
    ///
    /// # Errors
    /// [`StoreError::Io`] when `dest` holds a file (or a link, or a directory), or a file
    /// cannot be read, written or synced; [`StoreError::Locked`] when another backup or store holds `dest`;
    /// [`StoreError::Corruption`] when a record fails its checksum (as `verify` reports it;
    /// so a store opened by [`RecoveryMode::Salvage`], whose files keep the regions it lost,
    /// cannot be copied this way). The copy's own failures do not poison the store (a failed
    /// write of a `Buffered` store's buffer does). [`StoreError::Poisoned`] when the store is
    /// poisoned, before or during the copy, which then keeps its marker. On an error, the
    /// files written so far stay in `dest`.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        backup::backup(self, dest)
    }

    /// Brings the copy in `dest` up to now: afterwards it is what [`LogStore::backup`] into an
    /// empty directory would have made at this instant, with the same guarantees, but only the
    /// pieces of the segment files (up to 2 MiB each) that differ from what `dest` holds are
    /// written. So a copy refreshed every hour writes about what the store wrote in that hour:
    /// segments are append-only, and what a sweep or a compaction removed from the store is
    /// removed from the copy. `dest` may hold a copy of this store or of another, complete or
    /// cut short, opened as a store since or not, or be empty or missing. A copy cut short
    /// (it holds the marker), or one a store left `UNSYNCED` in, is not compared: what it
    /// holds may never have reached the disk, so every piece is written again.
    ///
    /// While it runs (from before its first change to `dest` until everything is durable), the
    /// copy holds the `BACKUP_INCOMPLETE` marker and no open accepts it: a refresh cut short by
    /// an error or a crash leaves no usable copy until a refresh completes. Keep two copies
    /// and refresh them in turn to always hold one. The files a store opened on the copy wrote
    /// (its commit journal, synced-lengths file, index snapshot) are removed.
    ///
    /// Cost: reads and checks every record of the store and reads what `dest` holds of each
    /// (O(data) reads), writes O(what changed); syncs every segment file of the copy.
    ///
    /// # Errors
    /// As [`LogStore::backup`], except that `dest` may hold files; [`StoreError::Io`] when it
    /// holds any file no copy or store would, or anything but plain files (a symbolic link, a
    /// directory, a file with another link elsewhere), which a copy would write through; it is
    /// then left as it was.
    pub fn refresh_backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        backup::refresh(self, dest)
    }

    /// What the store has done since it opened: records and bytes written, group commits and
    /// the records they held, syncs, checkpoints, segment files created and removed. Cost:
    /// O(1), a few atomic loads; counting costs the write path a few relaxed atomic additions
    /// (most under the writer's lock, which serialises them anyway).
    pub fn stats(&self) -> LogStats {
        let c = &self.segments.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let heads = self.heads.counts();
        LogStats {
            records: get(&c.records),
            record_bytes: get(&c.record_bytes),
            batches: get(&c.batches),
            batched_records: get(&c.batched_records),
            file_syncs: get(&c.file_syncs),
            volume_syncs: get(&c.volume_syncs),
            checkpoints: get(&c.checkpoints),
            segments_created: get(&c.segments_created),
            segments_removed: get(&c.segments_removed),
            head_cache_hits: heads.hits,
            head_cache_misses: heads.misses,
            head_cache_bytes: heads.bytes as u64,
        }
    }

    /// Measures the index's memory. Cost: O(feeds).
    pub fn index_stats(&self) -> IndexStats {
        let mut stats = IndexStats::default();
        for cell in self.index.all_feeds() {
            let b = cell.index.read().bytes();
            stats.feeds += 1;
            stats.notifications += b.entries;
            stats.notification_bytes += b.notification_bytes;
            stats.change_log_bytes += b.change_log_bytes;
        }
        stats.notification_bytes += self.index.expiry_bytes();
        stats
    }

    /// Makes everything durable, writes the index snapshot (see [`LogConfig::index_snapshot`])
    /// and closes the store, releasing the directory lock. Dropping the store does the same,
    /// silently; `close` says what failed.
    ///
    /// # Errors
    /// As [`FeedStore::sync`]; [`StoreError::Io`] when the snapshot cannot be written (the
    /// data is durable all the same, and the next open scans the segments).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.closed = true;
        self.sync()?;
        self.write_snapshot()
    }

    /// Cuts every segment's preallocated zeros (so the closed store's files hold exactly their
    /// records), writes each segment's synced length (`synced_lengths.rs`: a later open refuses
    /// damage below it instead of cutting it as a torn tail), then writes the index snapshot,
    /// unless snapshots are off or the index may not match the files (a poisoned store, or an
    /// open that salvaged around lost records). Nothing of a poisoned store. The caller has
    /// synced everything.
    fn write_snapshot(&self) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Ok(());
        }
        // Only at close, when this is the store's last handle: no writer or reader runs, so
        // taking the writer's lock before feed locks (the reverse of the usual order) is safe.
        let mut writer = self.segments.writer.lock();
        let ids: Vec<u32> = writer.segments.keys().copied().collect();
        let _cut = self.segments.trim_preallocated(&mut writer, &ids)?;
        // The close's `sync` has usually listed these very lengths already (as every sync
        // does that finds them changed); the file then holds them, durably.
        let listed = synced_lengths::listing(&writer);
        if listed != writer.listed {
            synced_lengths::write(self.segments.fs(), self.segments.dir(), &listed)?;
            writer.listed = listed;
        }
        if !self.config.index_snapshot || !self.report.lost.is_empty() {
            return Ok(());
        }
        snapshot::write(self.segments.fs(), self.segments.dir(), &self.index, &writer)
    }

    fn now_nanos(&self) -> i64 {
        timestamp_to_nanos(self.clock.now())
    }

    fn check_poison(&self) -> Result<(), StoreError> {
        if self.is_poisoned() { Err(StoreError::Poisoned) } else { Ok(()) }
    }

    fn submit(&self, request: Request) -> Result<Option<Placed>, StoreError> {
        self.check_poison()?;
        let always = self.config.durability == Durability::Always;
        let max = self.config.max_segment_bytes;
        let buffer = if always { 0 } else { self.config.write_buffer_bytes };
        // A batch that syncs is worth gathering writers for; one that only buffers is not.
        let gather = always || matches!(request, Request::Sync);
        self.commit
            .submit(request, gather, |requests| commit::write_batch(&self.segments, requests, always, max, buffer))
            .map_err(|failure| self.poison(failure))
    }

    /// Poisons the store after a failed write or sync, and says why.
    fn poison(&self, failure: commit::BatchFailure) -> StoreError {
        // IMPORTANT 7: never retry; refuse every later mutation until reopened.
        self.segments.poisoned.store(true, Ordering::SeqCst);
        failure.to_store_error()
    }

    /// Writes `record` into a segment of `window`; `supersedes` are the entries whose records
    /// it makes dead. A `Buffered` store writes it itself ([`commit::write_unsynced`]), in a
    /// frame buffer this thread reuses; an `Always` store, through group commit.
    fn write(&self, record: &Outgoing<'_>, window: i64, supersedes: &[Entry]) -> Result<Placed, StoreError> {
        let buffered = self.config.durability == Durability::Buffered;
        // (`try_with`: during a thread's teardown the spare may be gone already.)
        let mut frame = if buffered { SPARE_FRAME.try_with(|f| f.take()).unwrap_or_default() } else { Vec::new() };
        if frame.capacity() == 0 {
            // Most frames fit: no growing while the body is encoded.
            frame.reserve(512);
        }
        record.encode_unsealed_frame_into(&mut frame).map_err(|e| StoreError::Corruption {
            location: format!("a {:?} record", record.kind()),
            detail: format!("cannot encode: {e}"),
        })?;
        let pending = PendingRecord {
            kind: record.kind(),
            window,
            span: record.span(),
            removes: record.removes(),
            expiration: record.swept_expiration(),
            frame,
            supersedes: supersedes.iter().map(|e| (e.segment, e.len())).collect(),
        };
        if buffered {
            self.check_poison()?;
            let (placed, written) = commit::write_unsynced(
                &self.segments,
                pending,
                self.config.max_segment_bytes,
                self.config.write_buffer_bytes,
            )
            .map_err(|failure| self.poison(failure))?;
            if written.frame.capacity() <= SPARE_FRAME_MAX {
                let _ = SPARE_FRAME.try_with(|f| f.set(written.frame));
            }
            return Ok(placed);
        }
        self.submit(Request::Record(pending))?.ok_or_else(|| StoreError::Backend {
            engine: "log",
            detail: "the commit returned no location for a record".into(),
        })
    }

    /// The window a record for `entry` must go to: the later of `window` and the window of the
    /// segment holding the entry's latest record (the no-resurrection rule).
    fn shadow_window(&self, entry: &Entry, window: i64) -> i64 {
        let held = self.segments.window_of(entry.segment).unwrap_or_else(|| self.window_of(entry.expiration));
        held.max(window)
    }

    fn window_of(&self, expiration: i64) -> i64 {
        window_of(expiration, self.window_nanos)
    }

    /// Reads and checks the record of `entry`.
    fn load(&self, entry: &Entry) -> Result<Notification, StoreError> {
        self.load_with(&mut self.segments.reader(), entry)
    }

    /// As [`LogStore::load`], through `reader` (which keeps the segments a call reads).
    fn load_with(&self, reader: &mut SegmentReader<'_>, entry: &Entry) -> Result<Notification, StoreError> {
        self.load_then(reader, entry, |n| n)
    }

    /// As [`LogStore::load_with`], handing the notification to `then` where it is decoded: a
    /// page pushes it straight into its vector, instead of moving the whole notification (near
    /// 300 bytes) out through each layer of results.
    ///
    /// `then` runs before the read's check for a cut (see [`SegmentReader::read_with`]), so it
    /// may run for a read that then fails with [`StoreError::Poisoned`], on bytes a cut was
    /// overwriting: on an error, drop whatever `then` made (as `list` does) and act on none
    /// of it.
    fn load_then<R>(
        &self,
        reader: &mut SegmentReader<'_>,
        entry: &Entry,
        then: impl FnOnce(Notification) -> R,
    ) -> Result<R, StoreError> {
        let location = || format!("{} offset {}", self.segments.path(entry.segment).display(), { entry.offset });
        let corrupt = |detail: String| StoreError::Corruption { location: location(), detail };
        let decoded =
            reader.read_with(entry.segment, u64::from(entry.offset), entry.len() as usize, |key, bytes| {
                decode_entry(bytes, key, &entry.id).map(then)
            })?;
        decoded.ok_or_else(|| corrupt("the segment is gone".into()))?.map_err(corrupt)
    }

    /// Reads the notification of `entry`, a slot of the feed whose head slot is `head`: from
    /// the feed's head when its current record is cached there (`head_cache.rs`), else from the
    /// files. O(head) to look, plus a clone on a hit or a read and decode on a miss.
    ///
    /// # Errors
    /// As [`LogStore::load`]; and [`StoreError::Poisoned`] when the store is poisoned once
    /// a notification was taken from the cache (a failed sync may have cut its record, which a
    /// read of the file would have refused, as `list` does).
    fn load_cached(&self, head: &HeadSlot, entry: &Entry) -> Result<Notification, StoreError> {
        if self.heads.enabled()
            && !self.is_poisoned()
            && let Some(n) = self.heads.take(head, entry)
        {
            return if self.is_poisoned() { Err(StoreError::Poisoned) } else { Ok(n) };
        }
        self.load(entry)
    }

    /// The live slot whose `appNotificationId` is `app`, with its notification (read through
    /// the feed's head cache, `head`).
    fn find_by_app_id(
        &self,
        f: &FeedIndex,
        head: &HeadSlot,
        app: &str,
        now: i64,
    ) -> Result<Option<(usize, Notification)>, StoreError> {
        for slot in f.slots_with_app_hash(app_hash(app)) {
            let e = f.entry(slot);
            if !e.is_live(now) {
                continue;
            }
            let n = self.load_cached(head, e)?;
            if n.app_notification_id() == app {
                return Ok(Some((slot, n)));
            }
        }
        Ok(None)
    }

    fn live_slot(f: &FeedIndex, id: NotificationId, now: i64) -> Option<usize> {
        f.slot_of(&id.to_bytes()).filter(|&s| f.entry(s).is_live(now))
    }

    fn entry_for(n: &Notification, placed: Placed, position: u64, sequence: u64) -> EntryFields {
        EntryFields {
            id: n.id.to_bytes(),
            position,
            sequence,
            expiration: timestamp_to_nanos(n.expiration),
            segment: placed.segment,
            offset: placed.offset,
            len: placed.len,
            app_hash: app_hash(n.app_notification_id()),
            group: 0,
            platforms: n.platforms.bits(),
            states: Entry::pack_states(n.read_state, n.user_action_state),
        }
    }

    fn delete_slot(&self, feed: &FeedKey, number: u32, f: &mut FeedIndex, slot: usize) -> Result<(), StoreError> {
        let e = *f.entry(slot);
        let record = Outgoing::Delete { feed: feed.as_str(), id: e.id };
        let placed = self.write(&record, self.shadow_window(&e, i64::MIN), &[e])?;
        self.index.forget_expiry(e.expiration, number, e.id_key());
        f.remove(slot);
        f.log_removal(placed.lsn, e.id, RemovalReason::Deleted, self.config.options.removal_log_capacity);
        f.latest_sequence = f.latest_sequence.max(placed.lsn);
        Ok(())
    }

    fn horizon(&self, f: Option<&FeedIndex>) -> FeedHorizon {
        match f {
            Some(f) => FeedHorizon {
                latest_sequence: f.latest_sequence,
                forgotten_removals_through: f.forgotten_removals_through,
                forgotten_expirations_through: f.forgotten_expirations_through,
            },
            None => {
                let (latest_sequence, forgotten_removals_through, forgotten_expirations_through) =
                    self.index.new_feed_horizon();
                FeedHorizon { latest_sequence, forgotten_removals_through, forgotten_expirations_through }
            }
        }
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if self.closed || self.is_poisoned() {
            return;
        }
        // Best effort: a clean shutdown leaves nothing in the page cache only, and leaves the
        // index snapshot that makes the next open fast.
        if self.submit(Request::Sync).is_ok() {
            let _ = self.write_snapshot();
        }
    }
}

impl FeedStore for LogStore {
    fn append(&self, feed: &FeedKey, new: NewNotification) -> Result<Notification, StoreError> {
        self.check_poison()?;
        let now = self.clock.now();
        let now_n = timestamp_to_nanos(now);
        let expiration = validate_for_append(&new, &self.config.options.limits, now)?;
        let cell = self.index.feed_or_create(feed.as_str());
        let mut f = cell.index.write();
        // The insert's misses then overlap the app-id lookup's and the record's encoding.
        f.warm_for_insert(new.group_name.is_some());
        let window = self.window_of(timestamp_to_nanos(expiration));
        if let Some((slot, old)) = self.find_by_app_id(&f, &cell.head, &new.app_notification_id, now_n)? {
            let old_entry = *f.entry(slot);
            let mut n = Notification::from_new(old.id, new, expiration, now);
            n.created = old.created;
            let record = Outgoing::Upsert {
                kind: RecordKind::Replace,
                feed: feed.as_str(),
                position: 0,
                evicted: None,
                notification: &n,
            };
            let placed = self.write(&record, self.shadow_window(&old_entry, window), &[old_entry])?;
            f.remove(slot);
            f.insert(Self::entry_for(&n, placed, placed.lsn, placed.lsn), n.group_name());
            f.latest_sequence = f.latest_sequence.max(placed.lsn);
            self.index.change_expiry(
                cell.number,
                Some((old_entry.expiration, old_entry.id_key())),
                (timestamp_to_nanos(n.expiration), index::id_key(&n.id.to_bytes())),
            );
            return Ok(n);
        }
        // An id whose key is the app id's hash: one index slot finds it both ways.
        let app = app_hash(&new.app_notification_id);
        let draw = || NotificationId::from_bytes(index::keyed_id(NotificationId::new_random().to_bytes(), app));
        let mut id = draw();
        while f.slot_of(&id.to_bytes()).is_some() {
            id = draw();
        }
        let capacity = self.config.options.feed_capacity;
        let victim = if f.live_at_least(capacity, now_n) { f.oldest_live(now_n) } else { None };
        let victim_entry = victim.map(|s| *f.entry(s));
        let target = victim_entry.as_ref().map_or(window, |v| self.shadow_window(v, window));
        let n = Notification::from_new(id, new, expiration, now);
        let record = Outgoing::Upsert {
            kind: RecordKind::Append,
            feed: feed.as_str(),
            position: 0,
            evicted: victim_entry.map(|v| v.id),
            notification: &n,
        };
        let placed = self.write(&record, target, victim_entry.as_slice())?;
        let sequence = placed.lsn + record.span() - 1;
        if let (Some(slot), Some(v)) = (victim, victim_entry) {
            f.remove(slot);
            f.log_removal(placed.lsn, v.id, RemovalReason::Evicted, self.config.options.removal_log_capacity);
        }
        f.insert(Self::entry_for(&n, placed, sequence, sequence), n.group_name());
        f.latest_sequence = f.latest_sequence.max(sequence);
        self.index.change_expiry(
            cell.number,
            victim_entry.map(|v| (v.expiration, v.id_key())),
            (timestamp_to_nanos(n.expiration), index::id_key(&id.to_bytes())),
        );
        Ok(n)
    }

    fn get(&self, feed: &FeedKey, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(None) };
        let f = cell.index.read();
        match Self::live_slot(&f, id, self.now_nanos()) {
            Some(slot) => self.load_cached(&cell.head, f.entry(slot)).map(Some),
            None => Ok(None),
        }
    }

    fn get_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<Option<Notification>, StoreError> {
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(None) };
        let f = cell.index.read();
        Ok(self.find_by_app_id(&f, &cell.head, app_notification_id, self.now_nanos())?.map(|(_, n)| n))
    }

    fn list(&self, feed: &FeedKey, query: &ListQuery) -> Result<Page, StoreError> {
        let empty = Page { items: Vec::new(), next: None };
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(empty) };
        let f = cell.index.read();
        let now = self.now_nanos();
        let group = match &query.group {
            Some(name) => match f.group_id(name) {
                Some(g) => Some(g),
                None => return Ok(empty),
            },
            None => None,
        };
        let read_state = query.read_state;
        let action = query.user_action_state;
        let limit = query.effective_limit();
        let mut slots = Vec::with_capacity(limit + 1);
        for slot in f.newest_first(query.cursor.map(|c| c.before_position)) {
            let e = f.entry(slot);
            if e.expiration <= now
                || group.is_some_and(|g| f.group_at(slot) != g)
                || query.platform.is_some_and(|p| !f.platforms_of(slot).contains(p))
                || read_state.is_some_and(|r| e.read_state() != r)
                || action.is_some_and(|a| e.user_action_state() != a)
            {
                continue;
            }
            slots.push(slot);
            if slots.len() > limit {
                break;
            }
        }
        let more = slots.len() > limit;
        slots.truncate(limit);
        let mut reader = self.segments.reader();
        let mut items = Vec::with_capacity(slots.len());
        // The head cache (`head_cache.rs`): read while the store is not poisoned (a failed sync
        // may cut records it holds), and replaced by a first page without filters that read
        // any of its first `HEAD_MAX` notifications from the files.
        let cached = self.heads.enabled() && !self.is_poisoned();
        let head = if cached { self.heads.get(&cell.head) } else { None };
        let is_head = cached
            && query.cursor.is_none()
            && group.is_none()
            && query.platform.is_none()
            && read_state.is_none()
            && action.is_none()
            && (head.is_some() || self.heads.admits(&cell.head));
        let keep = if is_head { slots.len().min(HEAD_MAX) } else { 0 };
        let mut fresh = Vec::with_capacity(keep);
        let (mut at, mut misses, mut stale) = (0, 0, false);
        for (i, &s) in slots.iter().enumerate() {
            let e = f.entry(s);
            match head.as_ref().and_then(|h| h.find(e, &mut at).map(|found| (h, found))) {
                Some((h, found)) => {
                    items.push(Notification::clone(h.get(found)));
                    if i < keep {
                        fresh.push((Location::of(e), Fill::Cached(found)));
                    }
                }
                None => {
                    misses += 1;
                    self.load_then(&mut reader, e, |n| items.push(n))?;
                    if i < keep
                        && let Some(n) = items.last()
                    {
                        fresh.push((Location::of(e), Fill::Read(Arc::new(n.clone()))));
                        stale = true;
                    }
                }
            }
        }
        let next =
            if more { slots.last().map(|&s| crate::Cursor { before_position: f.entry(s).position }) } else { None };
        // The oldest position a new head would hold: its last notification's (newest first).
        let oldest = slots[..keep].last().map_or(u64::MAX, |&s| f.entry(s).position);
        drop(f);
        if cached {
            self.heads.count(items.len() - misses, misses);
            // A failed sync poisons the store before it cuts anything: poisoned now, it may
            // have cut a record this page took from the cache, which a read of the file would
            // have refused (`SegmentReader::read_with`).
            if misses < items.len() && self.is_poisoned() {
                return Err(StoreError::Poisoned);
            }
        }
        if stale {
            self.heads.install(&cell, head, fresh, oldest, |number| self.index.feed_by_number(number));
        }
        Ok(Page { items, next })
    }

    fn count(&self, feed: &FeedKey) -> Result<Counts, StoreError> {
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(Counts::default()) };
        let f = cell.index.read();
        let now = self.now_nanos();
        let mut counts = Counts::default();
        for slot in f.oldest_first() {
            let e = f.entry(slot);
            if e.expiration > now {
                counts.total += 1;
                counts.unread += u64::from(e.read_state() == ReadState::Unread);
            }
        }
        Ok(counts)
    }

    fn update_state(
        &self,
        feed: &FeedKey,
        id: NotificationId,
        update: StateUpdate,
    ) -> Result<Option<Notification>, StoreError> {
        self.check_poison()?;
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(None) };
        let mut f = cell.index.write();
        let now = self.clock.now();
        let Some(slot) = Self::live_slot(&f, id, timestamp_to_nanos(now)) else { return Ok(None) };
        let e = *f.entry(slot);
        let mut n = self.load(&e)?;
        if let Some(r) = update.read_state {
            n.read_state = r;
        }
        if let Some(a) = update.user_action_state {
            n.user_action_state = a;
        }
        n.last_modified = now;
        let record = Outgoing::Upsert {
            kind: RecordKind::StateChange,
            feed: feed.as_str(),
            position: e.position,
            evicted: None,
            notification: &n,
        };
        let placed = self.write(&record, self.shadow_window(&e, i64::MIN), &[e])?;
        let states = Entry::pack_states(n.read_state, n.user_action_state);
        f.update_in_place(slot, (placed.segment, placed.offset, placed.len), placed.lsn, states);
        f.latest_sequence = f.latest_sequence.max(placed.lsn);
        Ok(Some(n))
    }

    fn delete(&self, feed: &FeedKey, id: NotificationId) -> Result<bool, StoreError> {
        self.check_poison()?;
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(false) };
        let mut f = cell.index.write();
        let Some(slot) = Self::live_slot(&f, id, self.now_nanos()) else { return Ok(false) };
        self.delete_slot(feed, cell.number, &mut f, slot)?;
        Ok(true)
    }

    fn delete_by_app_id(&self, feed: &FeedKey, app_notification_id: &str) -> Result<bool, StoreError> {
        self.check_poison()?;
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(false) };
        let mut f = cell.index.write();
        let Some((slot, _)) = self.find_by_app_id(&f, &cell.head, app_notification_id, self.now_nanos())? else {
            return Ok(false);
        };
        self.delete_slot(feed, cell.number, &mut f, slot)?;
        Ok(true)
    }

    fn delete_group(&self, feed: &FeedKey, group: &str) -> Result<u64, StoreError> {
        self.check_poison()?;
        let Some(cell) = self.index.feed(feed.as_str()) else { return Ok(0) };
        let mut f = cell.index.write();
        let Some(g) = f.group_id(group) else { return Ok(0) };
        let now = self.now_nanos();
        let members: Vec<Entry> =
            f.oldest_first().filter(|&s| f.group_at(s) == g).map(|s| *f.entry(s)).filter(|e| e.is_live(now)).collect();
        if members.is_empty() {
            return Ok(0);
        }
        if members.len() > MAX_FEED_CAPACITY {
            // Only a feed filled under a larger capacity by an older build: refuse before
            // writing anything (the record would exceed the frame body bound).
            return Err(StoreError::Backend {
                engine: "log",
                detail: format!(
                    "group {group:?} has {} live members; a group delete lists at most {MAX_FEED_CAPACITY} \
                     (delete some members one by one first)",
                    members.len()
                ),
            });
        }
        let window = members.iter().fold(i64::MIN, |w, e| self.shadow_window(e, w));
        let ids: Vec<[u8; 16]> = members.iter().map(|e| e.id).collect();
        let record = Outgoing::GroupDelete { feed: feed.as_str(), ids: &ids };
        let placed = self.write(&record, window, &members)?;
        let capacity = self.config.options.removal_log_capacity;
        for e in &members {
            self.index.forget_expiry(e.expiration, cell.number, e.id_key());
        }
        for (i, id) in ids.iter().enumerate() {
            if let Some(slot) = f.slot_of(id) {
                f.remove(slot);
            }
            f.log_removal(placed.lsn + i as u64, *id, RemovalReason::GroupDeleted, capacity);
        }
        f.latest_sequence = f.latest_sequence.max(placed.lsn + ids.len() as u64 - 1);
        Ok(ids.len() as u64)
    }

    fn changes(&self, feed: &FeedKey, since: Option<ChangeToken>, limit: usize) -> Result<Changes, StoreError> {
        let now = self.now_nanos();
        let cell = self.index.feed(feed.as_str());
        let guard = cell.as_ref().map(|c| {
            let mut f = c.index.write();
            let retention = i64::try_from(self.config.options.expiry_log_retention.as_nanos()).unwrap_or(i64::MAX);
            f.forget_swept_through(now.saturating_sub(retention));
            parking_lot::RwLockWriteGuard::downgrade(f)
        });
        let f = guard.as_deref();
        let horizon = self.horizon(f);
        if let Some(token) = since {
            check_token(token, &horizon)?;
        }
        let start = since.map_or(0, |t| t.sequence);
        let mut expirations = Vec::new();
        let mut sequenced = Vec::new();
        if let Some(f) = f {
            for slot in f.oldest_first() {
                let e = f.entry(slot);
                if e.expiration > now {
                    let sequence = f.sequence(slot);
                    if sequence > start {
                        sequenced.push((sequence, Sequenced::Upsert(slot)));
                    }
                } else if since.is_some_and(|t| e.expiration > t.expired_through_nanos) {
                    expirations.push((e.expiration, index::notification_id(e)));
                }
            }
            if let Some(t) = since {
                for &(at, id) in f.swept() {
                    if at > t.expired_through_nanos && at <= now {
                        expirations.push((at, NotificationId::from_bytes(id)));
                    }
                }
            }
            for &(seq, id, reason) in f.removals() {
                if seq > start {
                    sequenced.push((seq, Sequenced::Removed(NotificationId::from_bytes(id), reason)));
                }
            }
        }
        let (planned, next, more) = plan_page(since, now, &horizon, expirations, sequenced, limit);
        let mut items = Vec::with_capacity(planned.len());
        let mut reader = self.segments.reader();
        for p in planned {
            items.push(match p {
                Planned::Upsert(slot) => match f {
                    Some(f) => Change::Upserted(Box::new(self.load_with(&mut reader, f.entry(slot))?)),
                    None => continue,
                },
                Planned::Removed(id, reason) => Change::Removed { id, reason },
            });
        }
        Ok(Changes { items, next, more })
    }

    fn sweep_expired(&self) -> Result<SweepStats, StoreError> {
        self.check_poison()?;
        sweep::sweep(self)
    }

    fn check_health(&self) -> Result<(), StoreError> {
        if self.is_poisoned() { Err(StoreError::Poisoned) } else { Ok(()) }
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.submit(Request::Sync).map(|_| ())
    }
}

/// Creates `dir` and its missing ancestors, each durable in its parent when this returns.
///
/// # Errors
/// [`StoreError::Io`].
fn create_dir_durably(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<(), StoreError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| fs.list(a).is_err()).collect();
    fs.create_dir_all(dir).map_err(|e| segment::io_error("creating", dir, e))?;
    for created in missing.iter().rev() {
        // IMPORTANT 12: a directory this open (or backup) created is durable in its parent
        // before any write in it is acknowledged.
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent).map_err(|e| segment::io_error("syncing", parent, e))?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically and durably: written to `dir/tmp` (created or
/// emptied), synced, renamed over `name`, directory synced. A failure or a crash at any step
/// leaves the old file, or the new one whole; `tmp` may be left behind. What the watermark,
/// the synced-lengths file and the index snapshot are written with.
///
/// # Errors
/// [`StoreError::Io`].
fn replace_file_durably(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    tmp: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let (tmp, path) = (dir.join(tmp), dir.join(name));
    let file = fs.open(&tmp, true).map_err(|e| segment::io_error("creating", &tmp, e))?;
    file.set_len(0).map_err(|e| segment::io_error("truncating", &tmp, e))?;
    file.write_all_at(bytes, 0).map_err(|e| segment::io_error("writing", &tmp, e))?;
    file.sync_data().map_err(|e| segment::io_error("syncing", &tmp, e))?;
    fs.rename(&tmp, &path).map_err(|e| segment::io_error("renaming", &tmp, e))?;
    fs.sync_dir(dir).map_err(|e| segment::io_error("syncing", dir, e))
}

/// The notification in the frame `bytes` (keyed with `key`) an index entry for `id` points at.
///
/// # Errors
/// Why it is not: a checksum that fails, a record of another kind or of another
/// notification, a body that does not decode.
fn decode_entry(bytes: &[u8], key: u128, id: &[u8; 16]) -> Result<Notification, String> {
    let frame = record::decode_frame(bytes, key).map_err(|e| e.to_string())?;
    if !matches!(frame.kind, RecordKind::Append | RecordKind::Replace | RecordKind::StateChange) {
        return Err(format!("a {:?} record where a notification was expected", frame.kind));
    }
    let stored = record::decode_upsert_notification(frame.body).map_err(|e| e.to_string())?;
    if &stored.id != id {
        return Err("the record is not this notification's".into());
    }
    Notification::try_from(stored).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
