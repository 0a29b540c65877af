//! The sweep: reclaim expired notifications from the index, then unlink every segment of every
//! window that has passed, then compact a few mostly dead segments of windows still to come
//! (`compaction.rs`). A passed window holds only records of expired notifications (a
//! record's window is never earlier than its notification's expiration window), so unlinking it
//! copies nothing and cannot resurrect anything: a record that shadows another always lives in
//! a window no earlier than the one it shadows.

use foldhash::{HashMap, HashMapExt};
use std::time::Instant;

use super::LogStore;
use super::commit::{self, PendingRecord, Request};
use super::record::Outgoing;
use super::recovery::window_of;
use super::segment::io_error;
use crate::{Durability, StoreError, SweepStats};

/// The most expirations one `Expired` record lists (keeps bodies far below the 1 MiB bound).
const EXPIRED_PER_RECORD: usize = 16_384;

pub(crate) fn sweep(store: &LogStore) -> Result<SweepStats, StoreError> {
    // One sweep at a time: two would unlink the same files.
    let _one = store.sweeping.lock();
    let started = Instant::now();
    let now = store.now_nanos();
    let mut stats = SweepStats::default();
    let poison = |e: StoreError| {
        store.segments.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
        e
    };

    // 1. Reclaim every expired notification from the index, oldest first: O(expired).
    let mut swept: HashMap<u32, Vec<([u8; 16], i64)>> = HashMap::new();
    let mut latest_window = i64::MIN;
    for (expiration, feed, key) in store.index.take_expiring_through(now) {
        let Some(cell) = store.index.feed_by_number(feed) else { continue };
        let mut f = cell.index.write();
        let found = f.slots_with_id_key(key).find(|&s| f.entry(s).expiration == expiration);
        if let Some(slot) = found {
            let e = f.remove(slot);
            f.log_swept(e.expiration, e.id);
            latest_window = latest_window.max(store.segments.window_of(e.segment).unwrap_or(i64::MIN));
            swept.entry(feed).or_default().push((e.id, e.expiration));
            stats.expired += 1;
        }
    }

    // 2. Record what was counted, in the window that outlives the expiry-log retention, so the
    //    expirations stay reportable after their segments are unlinked and no later sweep counts
    //    them again. Never before the records they shadow (no resurrection, even with a short
    //    retention).
    let retention = i64::try_from(store.config.options.expiry_log_retention.as_nanos()).unwrap_or(i64::MAX);
    let window = window_of(now.saturating_add(retention), store.window_nanos).max(latest_window);
    let mut requests = Vec::new();
    for (feed, expired) in &swept {
        let Some(cell) = store.index.feed_by_number(*feed) else { continue };
        for chunk in expired.chunks(EXPIRED_PER_RECORD) {
            let record = Outgoing::Expired { feed: &cell.key, expired: chunk };
            requests.push(sweep_request(&record, "an Expired record", window, false)?);
        }
    }
    // Segments of passed windows go below; the removals they may hold are carried forward first
    // (each feed's whole removal log, in one record), so `changes` remembers them after a
    // restart exactly as before.
    // A window named by its end has passed when its end is at or before now.
    let through = now;
    let victim_removals = {
        let writer = store.segments.writer.lock();
        writer.segments.values().filter(|s| s.window <= through).map(|s| s.max_removal_lsn).max().unwrap_or(0)
    };
    if victim_removals > 0 {
        for cell in store.index.all_feeds() {
            let f = cell.index.read();
            // Carry the log when a remembered removal, or the record that made the feed forget
            // (its forgotten-through horizon), may lie in a segment about to be unlinked: after
            // a restart the feed must still know what it forgot, or stale tokens pass.
            let remembered_in_victims = f.removals().next().is_some_and(|r| r.0 <= victim_removals);
            let horizon_in_victims =
                f.forgotten_removals_through > 0 && f.forgotten_removals_through <= victim_removals;
            if !remembered_in_victims && !horizon_in_victims {
                continue;
            }
            let removals: Vec<(u64, [u8; 16], u8)> = f.removals().map(|&(s, id, r)| (s, id, r.to_u8())).collect();
            let record = Outgoing::Removals {
                feed: &cell.key,
                forgotten_through: f.forgotten_removals_through,
                removals: &removals,
            };
            // `removes`: when this record's own window is unlinked, the log is carried again.
            requests.push(sweep_request(&record, "a Removals record", window, true)?);
        }
    }
    if !requests.is_empty() {
        let buffer = if store.config.durability == Durability::Always { 0 } else { store.config.write_buffer_bytes };
        // IMPORTANT 8: the Expired and Removals records are durable before the sweep reports its
        // count or unlinks anything.
        commit::write_batch(&store.segments, &mut requests, true, store.config.max_segment_bytes, buffer)
            .map_err(|f| poison(f.to_store_error()))?;
    }

    // 3. Unlink every segment of every window that has passed: it holds only records of
    //    notifications counted above (or earlier).
    let mut writer = store.segments.writer.lock();
    // A writer that failed since step 2 poisoned the store: from then on nothing touches the
    // files (checked under the writer lock, which every write and sync holds).
    store.segments.check_poison()?;
    let victims: Vec<u32> = writer.segments.iter().filter(|(_, s)| s.window <= through).map(|(&id, _)| id).collect();
    if !victims.is_empty() {
        let state = |id: &u32| writer.segments.get(id);
        let forgotten = victims.iter().filter_map(state).map(|s| s.max_expiration).max().unwrap_or(i64::MIN);
        let next = writer.watermark_before_unlink(forgotten, Some(through));
        let fs = store.segments.fs();
        let dir = store.segments.dir();
        // IMPORTANT 9: the watermark (LSN and segment floors, what unlinking forgets) is durable
        // before any segment disappears.
        next.store(fs, dir).map_err(poison)?;
        writer.watermark = next;
        for id in &victims {
            let path = store.segments.path(*id);
            stats.bytes_reclaimed += writer.segments.get(id).map_or(0, |s| s.allocated);
            fs.remove_file(&path).map_err(|e| poison(io_error("removing", &path, e)))?;
            store.segments.forget(&mut writer, *id);
            stats.files_removed += 1;
        }
        // IMPORTANT 10: the unlinks are durable before the sweep reports them.
        fs.sync_dir(dir).map_err(|e| poison(io_error("syncing", dir, e)))?;
    }
    // The zeros written ahead of the records go back too (the next record writes more).
    let ids: Vec<u32> = writer.segments.keys().copied().collect();
    stats.bytes_reclaimed += store.segments.trim_preallocated(&mut writer, &ids)?;
    drop(writer);

    // 4. Compact the deadest sealed segments of windows still to come, within the budget.
    super::compaction::compact(store, now, &mut stats)?;
    stats.duration = started.elapsed();
    Ok(stats)
}

/// Frames one record a sweep writes (Expired or Removals) as a commit request into `window`.
fn sweep_request(record: &Outgoing<'_>, what: &str, window: i64, removes: bool) -> Result<Request, StoreError> {
    let frame = record
        .encode_unsealed_frame()
        .map_err(|e| StoreError::Corruption { location: what.into(), detail: format!("cannot encode: {e}") })?;
    Ok(Request::Record(PendingRecord {
        kind: record.kind(),
        window,
        span: 1,
        removes,
        expiration: record.swept_expiration(),
        frame,
        supersedes: smallvec::SmallVec::new(),
    }))
}
