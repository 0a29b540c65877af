//! Group commit: writers queue their records; one of them (the leader) writes the whole batch
//! to every segment it touches, makes it durable once (a synced entry of the commit journal,
//! `journal.rs`, or a sync of those segments), and hands each writer its result.
//!
//! Followers learn the batch's fate, success or failure. A failure poisons the store (the
//! caller's job); a failed sync is never retried.
//!
//! A `Buffered` store's records skip the queue ([`write_unsynced`]): with no sync to share, a
//! batch would only copy into buffers, so each writer writes its own record under the segment
//! writer's lock, which orders every write (batches take it too).

use std::io;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::record::{self, RecordKind};
use super::segment::{self, Counters, Segments, WriterState};
use crate::StoreError;

/// A record waiting to be written.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    /// Its kind.
    pub kind: RecordKind,
    /// The window whose segment receives it.
    pub window: i64,
    /// How many sequences it takes.
    pub span: u64,
    /// Whether it removes notifications (for the forgotten-removals watermark).
    pub removes: bool,
    /// The latest expiration an `Expired` record lists (for the forgotten-expirations
    /// watermark).
    pub expiration: Option<i64>,
    /// The frame: a blank header, then the encoded body (sealed by whoever writes it, under the
    /// segment writer's lock).
    pub frame: Vec<u8>,
    /// The records this one supersedes, as (segment, frame length): their bytes become dead
    /// (compaction's estimate). At most one but for a group delete, so one is kept inline.
    pub supersedes: smallvec::SmallVec<[(u32, u32); 1]>,
}

/// What one writer asks of a batch.
#[derive(Debug)]
pub(crate) enum Request {
    /// Write this record.
    Record(PendingRecord),
    /// Sync every file written so far.
    Sync,
}

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Its LSN (first sequence).
    pub lsn: u64,
    /// Its segment.
    pub segment: u32,
    /// Its offset in the segment.
    pub offset: u32,
    /// Its frame length.
    pub len: u32,
}

/// A batch failure, as every writer of the batch sees it.
#[derive(Clone, Debug)]
pub(crate) struct BatchFailure {
    poisoned: bool,
    operation: &'static str,
    path: String,
    kind: io::ErrorKind,
    message: String,
}

impl BatchFailure {
    /// A failure that is no I/O error (a bug, or an error of another kind), in `operation`.
    fn internal(operation: &'static str, message: String) -> Self {
        Self { poisoned: false, operation, path: String::new(), kind: io::ErrorKind::Other, message }
    }

    fn from_store_error(e: StoreError) -> Self {
        match e {
            StoreError::Io { operation, path, source } => {
                Self { poisoned: false, operation, path, kind: source.kind(), message: source.to_string() }
            }
            StoreError::Poisoned => Self {
                poisoned: true,
                operation: "writing",
                path: String::new(),
                kind: io::ErrorKind::Other,
                message: String::new(),
            },
            other => Self::internal("writing", other.to_string()),
        }
    }

    /// The failure as the error a caller gets: [`StoreError::Poisoned`] for a batch refused
    /// because an earlier one failed, else the I/O error.
    pub fn to_store_error(&self) -> StoreError {
        if self.poisoned {
            return StoreError::Poisoned;
        }
        StoreError::Io {
            operation: self.operation,
            path: self.path.clone(),
            source: io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// A writer's mailbox: what the leader of its batch tells it. Each has its own condition
/// variable (parking_lot's: no thread handle and no park token of the caller's thread are
/// used, so a caller's own parking is never disturbed).
struct Slot<R> {
    signal: Mutex<Signal<R>>,
    told: Condvar,
}

/// What a waiting writer learns.
enum Signal<R> {
    /// Nothing yet: its batch has not been written.
    Waiting,
    /// It leads the next batch (its request is the first queued).
    Lead,
    /// Its batch is done, with this outcome.
    Done(Result<R, BatchFailure>),
}

impl<R> Slot<R> {
    fn new() -> Self {
        Slot { signal: Mutex::new(Signal::Waiting), told: Condvar::new() }
    }

    /// Hands `signal` to the slot's writer and wakes it.
    fn tell(&self, signal: Signal<R>) {
        *self.signal.lock() = signal;
        self.told.notify_one();
    }

    /// Waits until the slot holds something other than `Waiting`, and takes it.
    fn wait(&self) -> Signal<R> {
        let mut signal = self.signal.lock();
        while matches!(*signal, Signal::Waiting) {
            self.told.wait(&mut signal);
        }
        std::mem::replace(&mut *signal, Signal::Waiting)
    }
}

struct State<Q, R> {
    /// The requests of the next batch, in order.
    queue: Vec<Q>,
    /// Their writers' slots, index for index.
    slots: Vec<Arc<Slot<R>>>,
    /// Empty vectors with the capacity of an earlier batch's, to queue the next batch in
    /// without allocating.
    spare: (Vec<Q>, Vec<Arc<Slot<R>>>),
    /// Batches begun.
    begun: u64,
    /// Whether a writer leads a batch now (gathering, writing or handing over). While one does,
    /// the queue's first writer leads the next.
    leader: bool,
}

/// A gathering leader stops yielding after this many yields in a row during which no writer
/// queued. Measured with 16 durable writers (benches/README.md): batches of 8.7 records with one
/// yield, 10.0 with this, 9% faster.
const GATHER_PATIENCE: usize = 2;
/// A gathering leader yields at most this many times, however many writers keep arriving.
const GATHER_MAX_YIELDS: usize = 16;
/// A gathering leader stops yielding once this long has passed (a yield on a busy machine can
/// give away a whole time slice).
const GATHER_MAX_TIME: std::time::Duration = std::time::Duration::from_micros(20);

/// The leader/follower barrier, generic over requests `Q` and results `R`.
///
/// Each writer waits on its own [`Slot`]: the leader of a batch wakes exactly the writers it
/// has an outcome for, and hands the lead to the first writer queued meanwhile, so no writer
/// is woken to find nothing for it, and none waits for another to take its outcome first.
pub(crate) struct GroupCommit<Q, R> {
    state: Mutex<State<Q, R>>,
}

impl<Q, R> std::fmt::Debug for GroupCommit<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

impl<Q, R> Default for GroupCommit<Q, R> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                slots: Vec::new(),
                spare: (Vec::new(), Vec::new()),
                begun: 0,
                leader: false,
            }),
        }
    }
}

impl<Q, R> GroupCommit<Q, R> {
    /// Queues `request` and returns its result once its batch is done. If no batch is being
    /// written, this writer leads: it runs `execute` on every queued request (its own
    /// included), which must return one result per request, in order (it may drain the
    /// requests; what it leaves is dropped, and the vector is kept for a later batch). While a
    /// batch is written, the next one queues; its first writer is handed the lead when the
    /// batch is done. With `gather`, a new leader first yields the CPU to writers about to
    /// queue, until [`GATHER_PATIENCE`] yields in a row bring none (at most
    /// [`GATHER_MAX_YIELDS`]), so they join its batch: worth it when a batch costs a sync, not
    /// when it only copies into buffers.
    ///
    /// # Errors
    /// The batch's failure, for every writer of the batch.
    pub fn submit<F>(&self, request: Q, gather: bool, execute: F) -> Result<R, BatchFailure>
    where
        F: FnOnce(&mut Vec<Q>) -> Result<Vec<R>, BatchFailure>,
    {
        let own = Arc::new(Slot::new());
        let mut st = self.state.lock();
        st.queue.push(request);
        st.slots.push(Arc::clone(&own));
        if st.leader {
            drop(st);
            match own.wait() {
                Signal::Done(outcome) => return outcome,
                // Handed the lead: this writer's request is the first of the queue.
                Signal::Lead | Signal::Waiting => st = self.state.lock(),
            }
        } else {
            st.leader = true;
        }
        if gather {
            // Give the CPU to writers that are about to queue (those the last batch woke up),
            // for as long as they keep arriving: they join this batch instead of waiting for
            // the next sync.
            let mut queued = st.queue.len();
            let mut idle = 0;
            let start = std::time::Instant::now();
            for _ in 0..GATHER_MAX_YIELDS {
                drop(st);
                std::thread::yield_now();
                st = self.state.lock();
                if start.elapsed() > GATHER_MAX_TIME {
                    break;
                }
                if st.queue.len() > queued {
                    (queued, idle) = (st.queue.len(), 0);
                } else {
                    idle += 1;
                    if idle == GATHER_PATIENCE {
                        break;
                    }
                }
            }
        }
        let (spare_queue, spare_slots) = std::mem::take(&mut st.spare);
        let mut requests = std::mem::replace(&mut st.queue, spare_queue);
        let mut slots = std::mem::replace(&mut st.slots, spare_slots);
        st.begun += 1;
        drop(st);
        let count = slots.len();
        // A panic in `execute` (a bug) still ends the batch: its writers learn it failed and
        // the next batch gets a leader; then the panic goes on in this thread. What `execute`
        // leaves is dropped inside the guard too, and outside the lock.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let outcome = execute(&mut requests);
            requests.clear();
            outcome
        }));
        let (outcome, panicked) = match outcome {
            Ok(outcome) => (outcome, None),
            Err(payload) => {
                (Err(BatchFailure::internal("committing", "the batch's leader panicked".into())), Some(payload))
            }
        };
        let outcome = outcome.and_then(|results| {
            if results.len() == count {
                Ok(results)
            } else {
                Err(BatchFailure::internal("committing", "the batch returned the wrong number of results".into()))
            }
        });
        let outcomes: Vec<Result<R, BatchFailure>> = match outcome {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(failure) => (0..count).map(|_| Err(failure.clone())).collect(),
        };
        // Hand the lead over first, so that the next batch begins while this one's writers
        // wake up; the emptied queue goes back with it, for the batch after the next.
        let mut st = self.state.lock();
        let next = st.slots.first().cloned();
        st.leader = next.is_some();
        if requests.is_empty() && st.spare.0.capacity() == 0 {
            st.spare.0 = requests;
        }
        drop(st);
        if let Some(next) = next {
            next.tell(Signal::Lead);
        }
        let mut mine = None;
        for (slot, outcome) in slots.drain(..).zip(outcomes) {
            if Arc::ptr_eq(&slot, &own) {
                mine = Some(outcome);
            } else {
                slot.tell(Signal::Done(outcome));
            }
        }
        let mut st = self.state.lock();
        if st.spare.1.capacity() == 0 {
            st.spare.1 = slots;
        }
        drop(st);
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        mine.unwrap_or_else(|| {
            Err(BatchFailure::internal("committing", "the batch returned no result for this record".into()))
        })
    }
}

#[cfg(test)]
impl<Q, R> GroupCommit<Q, R> {
    /// How many batches have begun.
    pub fn batches_begun(&self) -> u64 {
        self.state.lock().begun
    }
}

/// How far one durable raise of the LSN lease reaches.
const LSN_LEASE_BLOCK: u64 = 1 << 20;

/// Writes one batch: assigns LSNs in queue order, frames each record into the active segment
/// of its window (rolling segments past `max_segment_bytes`), writes each touched segment with
/// one positional write (with a write buffer, `buffer_limit > 0`: appends each frame to its
/// segment's buffer, in order). With `always_sync` it then makes the batch durable: by a
/// synced entry of the commit journal when the store has one and the entry fits, else (and for
/// a `Sync` request) by syncing every dirty segment, which also starts the journal's next
/// generation. Empties `requests` when it succeeds.
///
/// # Errors
/// The first I/O failure; the caller poisons the store.
pub(crate) fn write_batch(
    segments: &Segments,
    requests: &mut Vec<Request>,
    always_sync: bool,
    max_segment_bytes: u64,
    buffer_limit: usize,
) -> Result<Vec<Option<Placed>>, BatchFailure> {
    let mut results = Vec::with_capacity(requests.len());
    poisoning_on_panic(segments, || {
        write_requests(segments, requests, always_sync, max_segment_bytes, buffer_limit, |placed| results.push(placed))
    })?;
    let records = requests.iter().filter(|r| matches!(r, Request::Record(_))).count() as u64;
    if records > 0 {
        Counters::add(&segments.counters.batches, 1);
        Counters::add(&segments.counters.batched_records, records);
    }
    requests.clear();
    Ok(results)
}

/// Writes one record without syncing, by its own caller rather than through a batch: how a
/// `Buffered` store appends, where a batch would only copy into buffers (there is no sync to
/// share), so each writer takes the segment writer's lock itself and no queue, leader or table
/// of results stands between it and the segment's buffer. Writes are ordered by that lock, as
/// batches are; a `Sync` request (which does go through a batch) takes the same lock, so it
/// covers every record whose write returned before it. Gives the record back, its frame
/// sealed (its buffer can be reused).
///
/// # Errors
/// As [`write_batch`]; the caller poisons the store.
pub(crate) fn write_unsynced(
    segments: &Segments,
    record: PendingRecord,
    max_segment_bytes: u64,
    buffer_limit: usize,
) -> Result<(Placed, PendingRecord), BatchFailure> {
    let mut result = None;
    let mut request = [Request::Record(record)];
    poisoning_on_panic(segments, || {
        write_requests(segments, &mut request, false, max_segment_bytes, buffer_limit, |placed| result = placed)
    })?;
    match (result, request) {
        (Some(placed), [Request::Record(record)]) => Ok((placed, record)),
        _ => Err(BatchFailure::internal("writing", "the write returned no location for its record".into())),
    }
}

/// Runs `write`, poisoning the store should it panic (a bug), which may have left the writer's
/// state half updated: nothing more may be written until a reopen recovers from the files.
fn poisoning_on_panic(segments: &Segments, write: impl FnOnce() -> Result<(), StoreError>) -> Result<(), BatchFailure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(write)) {
        Ok(outcome) => outcome.map_err(BatchFailure::from_store_error),
        Err(payload) => {
            segments.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
            std::panic::resume_unwind(payload)
        }
    }
}

/// The body of [`write_batch`] and [`write_unsynced`]: hands `placed` each request's result,
/// in order (`None` for a `Sync`). Without a write buffer (`buffer_limit` 0) it gathers a
/// batch's frames per segment, taking the first frame of each out of its request.
fn write_requests(
    segments: &Segments,
    requests: &mut [Request],
    always_sync: bool,
    max_segment_bytes: u64,
    buffer_limit: usize,
    mut placed: impl FnMut(Option<Placed>),
) -> Result<(), StoreError> {
    let mut writer = segments.writer.lock();
    // A batch never runs on a poisoned store: nothing may be written or synced after a failure.
    segments.check_poison()?;
    let needed: u64 = writer.next_lsn
        + requests.iter().map(|r| if let Request::Record(rec) = r { rec.span.max(1) } else { 0 }).sum::<u64>();
    if needed > writer.watermark.lsn_floor {
        // IMPORTANT 11: the LSN lease is durable before any LSN under it is handed out, so a
        // crash (even one that loses buffered records whose LSNs a change token already
        // carries) never makes the store assign an LSN twice.
        let mut raised = writer.watermark;
        raised.lsn_floor = needed.saturating_add(LSN_LEASE_BLOCK);
        raised.segment_id_floor = raised.segment_id_floor.max(writer.next_segment_id);
        segments.poison_on_error(raised.store(segments.fs(), segments.dir()))?;
        writer.watermark = raised;
    }
    let sync_asked = requests.iter().any(|r| matches!(r, Request::Sync));
    let journaling = always_sync && !sync_asked && writer.journal.is_some();
    if !sync_asked {
        // IMPORTANT 19: a checkpoint first when this batch would leave the descriptor LRU no
        // slot for a synced segment: every segment written since the last sync keeps its
        // descriptor open until it is synced (`segment::Descriptors`). Unsynced segments build
        // up across batches with the commit journal and with `Buffered` (whose writes and
        // sweeps may start with some); a batch that syncs at its end starts with none
        // otherwise. The segments this batch would newly dirty are those of its windows whose
        // active segment is clean or not yet created (a roll's new segment is preceded by a
        // sync of every segment). A batch over so many windows that it alone leaves no slot
        // (with 1 descriptor, any batch) cannot be helped by a checkpoint first: it syncs at
        // its end, if at all, its own pages exposed meanwhile. While no batch dirties a
        // segment, the count of unsynced ones stays below the bound (each batch that can
        // leaves it so), so only a batch that does looks at it.
        let mut windows: smallvec::SmallVec<[i64; 16]> = smallvec::SmallVec::new();
        for request in requests.iter() {
            if let Request::Record(rec) = request
                && !windows.contains(&rec.window)
            {
                windows.push(rec.window);
            }
        }
        let state = &*writer;
        let clean = |window: &&i64| {
            let active = state.active.get(*window).and_then(|id| state.segments.get(id));
            !active.is_some_and(|s| s.dirty)
        };
        let fresh = windows.iter().filter(clean).count();
        if fresh > 0 {
            let (unsynced, capacity) = segments.unsynced_and_capacity();
            if windows.len() < capacity && unsynced + fresh >= capacity {
                checkpoint(segments, &mut writer, false)?;
            }
        }
    }
    let mut buffers = std::mem::take(&mut writer.batch_buffers);
    buffers.clear();
    for request in requests.iter_mut() {
        let rec = match request {
            Request::Sync => {
                placed(None);
                continue;
            }
            Request::Record(rec) => rec,
        };
        let frame_len = rec.frame.len() as u64;
        let mut segment = match writer.active.get(&rec.window) {
            Some(&id) => id,
            None => segments.create(&mut writer, rec.window)?,
        };
        let pending_here = buffers.iter().find(|(id, _, _)| *id == segment).map_or(0, |(_, _, b)| b.len() as u64);
        let current = writer.segments.get(&segment).map_or(0, |s| s.len) + pending_here;
        if current > record::SEGMENT_HEADER_LEN as u64 && current + frame_len > max_segment_bytes {
            // Roll: flush what this batch has for the old segment, then seal it.
            if let Some(pos) = buffers.iter().position(|(id, _, _)| *id == segment) {
                let (id, at, buf) = buffers.swap_remove(pos);
                segments.append(&mut writer, id, at, &buf, buffer_limit)?;
            }
            // IMPORTANT 3: the old segment is durable before a newer one exists, so a torn tail
            // can only be in the last segment of a window. Every other written segment is synced
            // with it, so what a power loss keeps stays a prefix of the operations up to here.
            // A sealed segment keeps no zeros past its records.
            let _cut = segments.trim_preallocated(&mut writer, &[segment])?;
            let dirty = writer.dirty_segments();
            segments.sync_many(&mut writer, &dirty)?;
            segment = segments.create(&mut writer, rec.window)?;
        }
        let lsn = writer.next_lsn;
        writer.next_lsn += rec.span.max(1);
        writer.assigned_through = writer.next_lsn - 1;
        let (seg_len, salt, synced) =
            writer.segments.get(&segment).map_or((0, 0, 0), |s| (s.len, s.salt, s.synced_len));
        let pending_here = buffers.iter().find(|(id, _, _)| *id == segment).map_or(0, |(_, _, b)| b.len() as u64);
        // The unsynced distance: how far back the durable prefix ends (recovery tells a hole in
        // an unsynced write from corruption by it).
        let distance = (seg_len + pending_here).saturating_sub(synced);
        record::seal_frame(&mut rec.frame, record::frame_key(u64::from(segment), salt), rec.kind, lsn, distance);
        let offset = match buffers.iter_mut().find(|(id, _, _)| *id == segment) {
            // With a write buffer, the segment's own buffer gathers the frames (no copy in
            // between), and the frame stays with its request.
            None if buffer_limit > 0 => {
                segments.append(&mut writer, segment, seg_len, &rec.frame, buffer_limit)?;
                seg_len
            }
            Some((_, at, buf)) => {
                let offset = *at + buf.len() as u64;
                buf.extend_from_slice(&rec.frame);
                offset
            }
            None => {
                buffers.push((segment, seg_len, std::mem::take(&mut rec.frame)));
                seg_len
            }
        };
        if (rec.removes || rec.expiration.is_some())
            && let Some(s) = writer.segments.get_mut(&segment)
        {
            if rec.removes {
                s.max_removal_lsn = s.max_removal_lsn.max(lsn + rec.span - 1);
            }
            if let Some(expiration) = rec.expiration {
                s.max_expiration = s.max_expiration.max(expiration);
            }
        }
        for &(old, len) in &rec.supersedes {
            if let Some(s) = writer.segments.get_mut(&old) {
                s.dead_bytes += u64::from(len);
            }
        }
        let offset = u32::try_from(offset).map_err(|_| StoreError::Corruption {
            location: segments.path(segment).display().to_string(),
            detail: "segment offset beyond 4 GiB".into(),
        })?;
        Counters::add(&segments.counters.records, 1);
        Counters::add(&segments.counters.record_bytes, frame_len);
        placed(Some(Placed { lsn, segment, offset, len: frame_len as u32 }));
    }
    // An `Always` batch's frames also go to the commit journal, in one entry: when it fits, the
    // journal is the one file the batch syncs (journal.rs).
    if let Some(journal) = writer.journal.as_mut().filter(|_| journaling) {
        journal.begin();
    }
    for (id, at, buf) in buffers.drain(..) {
        segments.append(&mut writer, id, at, &buf, buffer_limit)?;
        if let Some(journal) = writer.journal.as_mut().filter(|_| journaling) {
            journal.add(id, at, &buf);
        }
    }
    writer.batch_buffers = buffers;
    if !always_sync && !sync_asked {
        return Ok(());
    }
    // A batch that alone wrote to as many segments as the LRU keeps open checkpoints too
    // (IMPORTANT 19).
    let (unsynced, capacity) = segments.unsynced_and_capacity();
    let fits_descriptors = unsynced < capacity;
    if let Some(journal) = writer.journal.as_mut().filter(|j| journaling && fits_descriptors && j.fits()) {
        // IMPORTANT 17: every frame the batch wrote is in a synced journal entry before any
        // writer of the batch is told its record is durable; a reopen writes it back into its
        // segment before reading any (journal::replay).
        Counters::add(&segments.counters.file_syncs, 1);
        let committed = journal.commit();
        if committed.is_err() {
            journal.discard();
        }
        let path = journal.path().to_path_buf();
        segments.cut_back_on_failed_sync(&mut writer, committed.map_err(|e| segment::io_error("syncing", &path, e)))?;
        // Every byte written to a segment since its last sync is journaled now (each earlier
        // batch's too), so recovery may count it as durable: the unsynced distance of later
        // frames starts here, and a failed sync cuts back no further.
        for s in writer.segments.values_mut().filter(|s| s.dirty && s.pending.is_empty()) {
            s.synced_len = s.len;
        }
        return Ok(());
    }
    // IMPORTANT 4: every file the batch touched is synced before any writer of the batch is
    // told its record is durable (in parallel: one fdatasync's wait for the batch). With a
    // journal this is its checkpoint: every segment is synced, so its entries are dead.
    checkpoint(segments, &mut writer, sync_asked)
}

/// Syncs every segment written since its last sync and, when the commit journal holds
/// entries, starts its next generation (they are dead: what they copy is in synced segments).
/// A store with a journal also lists every segment's synced length in the synced-lengths file
/// (`synced_lengths.rs`), as a clean close does, at every checkpoint: so after a crash, the records a checkpoint synced are vouched for
/// by that file, and those acknowledged since by the journal, which an open writes back. A
/// store without a journal (`Buffered`, or `Always` with `journal_bytes` 0) lists them when a
/// `sync` was asked (`sync_asked`): what a `sync` found durable is vouched for by the file,
/// and a batch of `Always` without a journal, which syncs every time, does not pay for the
/// file. Either way the file is written only when the lengths differ from what this session
/// last wrote to it.
///
/// The file is replaced after the segments' syncs and before the journal's reset: a crash
/// between the two leaves entries that copy bytes below a listed length, which an open writes
/// back as they are (the same bytes); a crash before the file is replaced leaves the last one
/// (true as well: listed lengths never go down) and the entries.
///
/// # Errors
/// [`StoreError::Io`]; the store is poisoned.
fn checkpoint(segments: &Segments, writer: &mut WriterState, sync_asked: bool) -> Result<(), StoreError> {
    Counters::add(&segments.counters.checkpoints, 1);
    let dirty = writer.dirty_segments();
    segments.sync_many(writer, &dirty)?;
    if writer.journal.is_some() || sync_asked {
        // Every segment is synced to its synced length now (bytes only journaled were counted
        // in it, and `sync_many` synced them), and no such length is ever lowered. Lengths
        // raised by syncs that listed nothing (a roll's, a sweep's, a batch's without a
        // journal) differ from the last listing as much as those raised here do.
        let listed = super::synced_lengths::listing(writer);
        if listed != writer.listed {
            Counters::add(&segments.counters.file_syncs, 1);
            segments.poison_on_error(super::synced_lengths::write(segments.fs(), segments.dir(), &listed))?;
            writer.listed = listed;
        }
    }
    if let Some(journal) = writer.journal.as_mut().filter(|j| !j.is_empty()) {
        Counters::add(&segments.counters.file_syncs, 1);
        let path = journal.path().to_path_buf();
        let reset = journal.reset().map_err(|e| segment::io_error("syncing", &path, e));
        segments.poison_on_error(reset)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_writer_gets_its_own_result_and_batches_form_under_load() {
        let commit: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let commit = Arc::clone(&commit);
                let batches = Arc::clone(&batches);
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let v = t * 1000 + i;
                        let got = commit
                            .submit(v, t % 2 == 0, |reqs| {
                                batches.fetch_add(1, Ordering::SeqCst);
                                std::thread::yield_now();
                                Ok(reqs.drain(..).map(|r| r * 2).collect())
                            })
                            .unwrap();
                        assert_eq!(got, v * 2);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(batches.load(Ordering::SeqCst) <= 1600);
        let st = commit.state.lock();
        assert!(st.queue.is_empty() && st.slots.is_empty(), "a request was left behind");
        assert!(!st.leader, "the last batch kept the lead");
    }

    #[test]
    fn the_first_writer_queued_during_a_batch_leads_the_next_with_everyone_queued_behind_it() {
        let commit: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let submit = |v: u64| {
            let (commit, sizes) = (Arc::clone(&commit), Arc::clone(&sizes));
            move || {
                commit.submit(v, false, |reqs| {
                    sizes.lock().push(reqs.len());
                    if v == 0 {
                        // The first batch ends only once three more writers wait behind it.
                        while commit.state.lock().queue.len() < 3 {
                            std::thread::yield_now();
                        }
                    }
                    Ok(reqs.drain(..).map(|r| r + 100).collect())
                })
            }
        };
        let first = std::thread::spawn(submit(0));
        while commit.batches_begun() == 0 {
            std::thread::yield_now();
        }
        let rest: Vec<_> = (1..4).map(|v| std::thread::spawn(submit(v))).collect();
        assert_eq!(first.join().unwrap().unwrap(), 100);
        for (v, t) in (1..4).zip(rest) {
            assert_eq!(t.join().unwrap().unwrap(), v + 100);
        }
        assert_eq!(*sizes.lock(), [1, 3], "the three who waited went in one batch");
        assert!(!commit.state.lock().leader);
    }

    #[test]
    fn a_writer_alone_leads_a_batch_of_one_and_reuses_the_queue() {
        let commit: GroupCommit<u64, u64> = GroupCommit::default();
        for v in 0..3 {
            assert_eq!(commit.submit(v, false, |reqs| Ok(reqs.drain(..).map(|r| r + 1).collect())).unwrap(), v + 1);
            let st = commit.state.lock();
            assert!(st.queue.is_empty() && st.slots.is_empty() && !st.leader);
            assert!(st.queue.capacity() + st.spare.0.capacity() > 0, "the queue's vector was dropped");
            if v > 0 {
                assert!(st.queue.capacity() > 0 && st.spare.0.capacity() > 0, "a warm batch allocated a queue");
                assert!(st.slots.capacity() > 0 && st.spare.1.capacity() > 0, "a warm batch allocated slots");
            }
        }
        // What the batch leaves undrained is dropped, and its writer still gets its outcome.
        let failure = commit.submit(9, false, |_| Ok(Vec::new())).unwrap_err();
        assert!(failure.to_store_error().to_string().contains("wrong number of results"), "{failure:?}");
        let st = commit.state.lock();
        assert!(st.queue.is_empty() && !st.leader);
    }

    #[test]
    fn a_panicking_leader_fails_its_batch_and_the_next_batch_still_gets_a_leader() {
        let commit: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let leader = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || {
                commit.submit(1, false, |_| -> Result<Vec<u64>, BatchFailure> { panic!("a bug in the batch") })
            })
        };
        assert!(leader.join().is_err(), "the panic goes on in the leader's thread");
        // Before, the leader flag stayed set and this writer waited forever.
        assert_eq!(commit.submit(2, false, |reqs| Ok(reqs.drain(..).map(|r| r * 10).collect())).unwrap(), 20);
    }

    #[test]
    fn followers_learn_a_failed_batch() {
        let commit: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::default());
        let failure = BatchFailure {
            poisoned: false,
            operation: "syncing",
            path: "x".into(),
            kind: io::ErrorKind::Other,
            message: "disk on fire".into(),
        };
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let commit = Arc::clone(&commit);
                let failure = failure.clone();
                std::thread::spawn(move || commit.submit(t, true, move |_| Err(failure)).is_err())
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap());
        }
    }
}
