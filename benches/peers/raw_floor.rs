//! The raw floor: what appending the same bytes costs with nothing else to do.
//!
//! One file of frames appended through a `BufWriter`; durable appends flush and fdatasync each
//! frame. The index is in memory: per feed, entries by sequence (offset, length, expiration)
//! and a map from the hash of the app id to the sequence. Open scans the file and checks every
//! checksum. A sweep drops expired entries and copies the live frames into a new file (the only
//! way a single log gives disk space back), so its bytes rewritten are the live bytes.
//!
//! Frame: `u32 payload length (LE) | u32 crc32 of everything after it | u64 seq | i64
//! expiration | u64 app id hash | u8 feed key length | feed key | body`, where the payload is
//! everything after the first 8 bytes.
//!
//! `raw-floor-gc` is the same floor with the least group commit there is. A durable append
//! queues its record; the first writer to find no batch in flight takes the whole queue,
//! writes it with one positional write and fdatasyncs once, then wakes the writers of that
//! batch (and one of the next, to lead it). It writes into zeros written and synced ahead, so
//! a batch's sync commits no file size, as with the log engine's preallocated journal. What 16
//! writers gain over one there is what group commit can gain on this machine's disk with
//! nothing else to do.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, Workload, decode_live};

const FIXED: usize = 8 + 8 + 8 + 8 + 1;

#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    offset: u64,
    len: u32,
    expiration: i64,
}

#[derive(Default)]
struct FeedIndex {
    /// By sequence, ascending.
    entries: Vec<Entry>,
    /// App id hash to sequence.
    by_app: HashMap<u64, u64>,
}

impl FeedIndex {
    fn insert(&mut self, app_hash: u64, entry: Entry) {
        if let Some(old) = self.by_app.insert(app_hash, entry.seq)
            && let Ok(at) = self.entries.binary_search_by_key(&old, |e| e.seq)
        {
            self.entries.remove(at);
        }
        self.entries.push(entry);
    }

    fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok().map(|at| &self.entries[at])
    }
}

struct Writer {
    out: BufWriter<File>,
    end: u64,
    dirty: bool,
    /// `raw-floor-gc`'s durable writes: a handle without `O_APPEND` (with it, Linux's `pwrite`
    /// ignores the offset), and how far the file holds zeros written ahead of its frames.
    positioned: File,
    zeroed_to: u64,
}

/// How far ahead of its frames `raw-floor-gc` writes zeros (and syncs them, size included)
/// before a durable batch needs the space, so that the batch's own sync commits no file size
/// (as a sync of the log engine's preallocated journal commits none).
const ZERO_AHEAD: u64 = 4 << 20;

impl Writer {
    fn open(path: &Path, file: File, end: u64) -> BenchResult<Self> {
        let positioned = OpenOptions::new().write(true).open(path)?;
        Ok(Writer { out: BufWriter::with_capacity(1 << 16, file), end, dirty: false, positioned, zeroed_to: end })
    }

    /// Writes `frames` at `at` with one positional write, first writing (and syncing) zeros
    /// ahead when the file does not reach past them.
    fn write_at(&mut self, frames: &[u8], at: u64) -> BenchResult<()> {
        let needed = at + frames.len() as u64;
        if needed > self.zeroed_to {
            let from = self.zeroed_to.max(at);
            let to = needed + ZERO_AHEAD;
            self.positioned.write_all_at(&vec![0; (to - from) as usize], from)?;
            self.positioned.sync_all()?;
            self.zeroed_to = to;
        }
        self.positioned.write_all_at(frames, at)?;
        Ok(())
    }
}

/// The queue of `raw-floor-gc`'s durable appends.
#[derive(Default)]
struct Gather {
    /// Records waiting for the next batch.
    queue: Vec<Record>,
    /// The batch the queue will be written in (batches count from 1).
    next: u64,
    /// The last batch written and synced.
    done: u64,
    /// Whether a batch is being written.
    leading: bool,
    /// The first failure: every later append fails with it.
    failed: Option<String>,
    /// Batches and records written, for the mean batch.
    batches: u64,
    records: u64,
}

/// Group commit for `raw-floor-gc`: the queue, and a wake-up per batch parity, so that the end
/// of a batch wakes its own writers, not the next batch's.
struct GroupCommit {
    gather: Mutex<Gather>,
    woken: [Condvar; 2],
}

/// The raw floor.
pub struct RawFloor {
    path: PathBuf,
    durable: bool,
    group: Option<GroupCommit>,
    writer: Mutex<Writer>,
    reader: RwLock<File>,
    index: RwLock<HashMap<String, FeedIndex>>,
}

fn app_hash(app_id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(app_id)
}

/// Opens `dir/floor.log`, rebuilding the index from it.
pub fn open(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    open_floor(dir, mode, false)
}

/// [`open`], with durable appends group-committed (`raw-floor-gc`).
pub fn open_group_commit(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    open_floor(dir, mode, true)
}

fn open_floor(dir: &Path, mode: Mode, group_commit: bool) -> BenchResult<Box<dyn Peer>> {
    let path = dir.join("floor.log");
    let file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
    let (index, end) = scan(&file)?;
    file.set_len(end)?; // a torn tail is dropped
    Ok(Box::new(RawFloor {
        reader: RwLock::new(File::open(&path)?),
        writer: Mutex::new(Writer::open(&path, file, end)?),
        index: RwLock::new(index),
        path,
        durable: mode == Mode::Durable,
        group: group_commit.then(|| GroupCommit {
            gather: Mutex::new(Gather { next: 1, ..Gather::default() }),
            woken: Default::default(),
        }),
    }))
}

/// Reads every valid frame; returns the index and where the valid frames end.
fn scan(file: &File) -> BenchResult<(HashMap<String, FeedIndex>, u64)> {
    let mut index: HashMap<String, FeedIndex> = HashMap::new();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut head = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        if input.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        payload.resize(len, 0);
        if len < FIXED - 8 || input.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        let word = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap_or([0; 8]));
        let (seq, expiration, hash) = (word(0), word(8) as i64, word(16));
        let feed_len = payload[24] as usize;
        let Some(feed) = payload.get(25..25 + feed_len).and_then(|f| std::str::from_utf8(f).ok()) else { break };
        let entry = Entry { seq, offset, len: (8 + len) as u32, expiration };
        match index.get_mut(feed) {
            Some(feed_index) => feed_index.insert(hash, entry),
            None => index.entry(feed.to_owned()).or_default().insert(hash, entry),
        }
        offset += (8 + len) as u64;
    }
    Ok((index, offset))
}

fn frame(record: &Record) -> Vec<u8> {
    let feed = record.feed_key.as_str().as_bytes();
    let mut out = Vec::with_capacity(FIXED + feed.len() + record.body.len());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.expiration_nanos.to_le_bytes());
    out.extend_from_slice(&app_hash(&record.app_id).to_le_bytes());
    out.push(feed.len() as u8);
    out.extend_from_slice(feed);
    out.extend_from_slice(&record.body);
    let len = (out.len() - 8) as u32;
    let crc = crc32fast::hash(&out[8..]);
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

impl RawFloor {
    fn write(&self, records: &[Record], durable: bool) -> BenchResult<()> {
        let mut writer = self.writer.lock();
        let mut index = self.index.write();
        // A durable `raw-floor-gc` writes each batch with one positional write into zeros
        // written ahead (never through the appending `BufWriter`, which would write past them).
        let positioned = self.group.is_some() && self.durable;
        let (start, mut batch) = (writer.end, Vec::new());
        for record in records {
            let bytes = frame(record);
            if positioned {
                batch.extend_from_slice(&bytes);
            } else {
                writer.out.write_all(&bytes)?;
            }
            let entry = Entry {
                seq: record.seq,
                offset: writer.end,
                len: bytes.len() as u32,
                expiration: record.expiration_nanos,
            };
            writer.end += bytes.len() as u64;
            match index.get_mut(record.feed_key.as_str()) {
                Some(feed) => feed.insert(app_hash(&record.app_id), entry),
                None => index
                    .entry(record.feed_key.as_str().to_owned())
                    .or_default()
                    .insert(app_hash(&record.app_id), entry),
            }
        }
        drop(index);
        if positioned {
            writer.out.flush()?;
            writer.write_at(&batch, start)?;
        }
        if durable {
            writer.out.flush()?;
            writer.out.get_ref().sync_data()?;
            writer.dirty = false;
        } else {
            writer.dirty = true;
        }
        Ok(())
    }

    /// A durable append through the group commit: returns once a batch holding the record is
    /// written and synced.
    fn append_grouped(&self, group: &GroupCommit, record: Record) -> BenchResult<()> {
        let mut gather = group.gather.lock();
        if let Some(failed) = &gather.failed {
            return Err(failed.clone().into());
        }
        gather.queue.push(record);
        let mine = gather.next;
        loop {
            if gather.done >= mine {
                return gather.failed.clone().map_or(Ok(()), |failed| Err(failed.into()));
            }
            if gather.leading {
                group.woken[(mine % 2) as usize].wait(&mut gather);
                continue;
            }
            gather.leading = true;
            let records = std::mem::take(&mut gather.queue);
            let batch = gather.next;
            gather.next += 1;
            gather.batches += 1;
            gather.records += records.len() as u64;
            drop(gather);
            let result = self.write(&records, true);
            gather = group.gather.lock();
            gather.leading = false;
            gather.done = batch;
            if let Err(e) = result {
                gather.failed.get_or_insert(format!("floor: batch {batch}: {e}"));
            }
            group.woken[(batch % 2) as usize].notify_all();
            group.woken[((batch + 1) % 2) as usize].notify_one();
        }
    }

    /// Reads and checks the frame at `entry`; returns its body decoded when live.
    fn read(&self, entry: Entry, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        if entry.expiration <= now_nanos {
            return Ok(None);
        }
        let mut bytes = vec![0; entry.len as usize];
        self.reader.read().read_exact_at(&mut bytes, entry.offset)?;
        let crc = u32::from_le_bytes(bytes[4..8].try_into()?);
        if crc32fast::hash(&bytes[8..]) != crc {
            return Err(format!("floor: checksum mismatch at offset {}", entry.offset).into());
        }
        let feed_len = bytes[FIXED - 1] as usize;
        decode_live(&bytes[FIXED + feed_len..], now_nanos)
    }

    fn flush_for_readers(&self) -> BenchResult<()> {
        let mut writer = self.writer.lock();
        if writer.dirty {
            writer.out.flush()?;
            writer.dirty = false;
        }
        Ok(())
    }
}

impl Peer for RawFloor {
    fn append(&self, record: Record) -> BenchResult<()> {
        match &self.group {
            Some(group) if self.durable => self.append_grouped(group, record),
            _ => self.write(std::slice::from_ref(&record), self.durable),
        }
    }

    fn mean_commit_batch(&self) -> Option<f64> {
        let gather = self.group.as_ref()?.gather.lock();
        (gather.batches > 0).then(|| gather.records as f64 / gather.batches as f64)
    }

    fn load(&self, records: &[Record]) -> BenchResult<()> {
        self.write(records, false)?;
        self.sync()
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        self.flush_for_readers()?;
        let entries: Vec<Entry> = {
            let index = self.index.read();
            let Some(feed) = index.get(Workload::feed_key(feed).as_str()) else { return Ok(Vec::new()) };
            feed.entries.iter().rev().filter(|e| e.expiration > now_nanos).take(limit).copied().collect()
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            out.extend(self.read(entry, now_nanos)?);
        }
        Ok(out)
    }

    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        self.flush_for_readers()?;
        let entry = {
            let index = self.index.read();
            let Some(feed) = index.get(Workload::feed_key(feed).as_str()) else { return Ok(None) };
            let Some(seq) = feed.by_app.get(&app_hash(app_id)) else { return Ok(None) };
            feed.get(*seq).copied()
        };
        let Some(entry) = entry else { return Ok(None) };
        // The map holds hashes: check the record really has this app id.
        Ok(self.read(entry, now_nanos)?.filter(|n| n.app_notification_id() == app_id))
    }

    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome> {
        let mut writer = self.writer.lock();
        writer.out.flush()?;
        let mut index = self.index.write();
        let mut reader = self.reader.write();
        let new_path = self.path.with_extension("log.new");
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&new_path)?);
        let (mut removed, mut end) = (0u64, 0u64);
        let mut buffer = Vec::new();
        for feed in index.values_mut() {
            let before = feed.entries.len();
            feed.entries.retain(|e| e.expiration > now_nanos);
            removed += (before - feed.entries.len()) as u64;
            let live: std::collections::HashSet<u64> = feed.entries.iter().map(|e| e.seq).collect();
            feed.by_app.retain(|_, seq| live.contains(seq));
            for entry in &mut feed.entries {
                buffer.resize(entry.len as usize, 0);
                reader.read_exact_at(&mut buffer, entry.offset)?;
                out.write_all(&buffer)?;
                entry.offset = end;
                end += u64::from(entry.len);
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        // 1. The copy is durable before it replaces the log; 2. the rename is made durable.
        file.sync_data()?;
        std::fs::rename(&new_path, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        *reader = File::open(&self.path)?;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        *writer = Writer::open(&self.path, file, end)?;
        Ok(SweepOutcome { removed, bytes_rewritten: Some(end) })
    }

    fn sync(&self) -> BenchResult<()> {
        let mut writer = self.writer.lock();
        writer.out.flush()?;
        writer.out.get_ref().sync_data()?;
        writer.dirty = false;
        Ok(())
    }
}
