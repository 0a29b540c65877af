//! The sweep: reclaim expired notifications from the index, then unlink every segment of every
//! window that has passed. A passed window holds only records of expired notifications (a
//! record's window is never earlier than its notification's expiration window), so unlinking it
//! copies nothing and cannot resurrect anything: a record that shadows another always lives in
//! a window no earlier than the one it shadows.

use std::time::Instant;

use super::LogStore;
use super::recovery::window_of;
use super::segment::io_error;
use super::watermark::Watermark;
use crate::{StoreError, SweepStats};

pub(crate) fn sweep(store: &LogStore) -> Result<SweepStats, StoreError> {
    let started = Instant::now();
    let now = store.now_nanos();
    let mut stats = SweepStats::default();
    for (expiration, feed, key) in store.index.take_expiring_through(now) {
        let Some(cell) = store.index.feed_by_number(feed) else { continue };
        let mut f = cell.index.write();
        let found = f.slots_with_id_key(key).into_iter().find(|&s| f.entry(s).expiration == expiration);
        if let Some(slot) = found {
            let e = f.remove(slot);
            f.log_swept(e.expiration, e.id);
            stats.expired += 1;
        }
    }
    // Windows whose end lies at or before now hold only expired notifications' records.
    let through = window_of(now, store.window_nanos) - 1;
    let mut writer = store.segments.writer.lock();
    let victims: Vec<u32> = writer.segments.iter().filter(|(_, s)| s.window <= through).map(|(&id, _)| id).collect();
    if victims.is_empty() && stats.expired == 0 {
        stats.duration = started.elapsed();
        return Ok(stats);
    }
    let mut watermark = store.watermark.lock();
    let unlinked_through =
        victims.iter().filter_map(|id| writer.segments.get(id)).map(|s| s.max_expiration).max().unwrap_or(i64::MIN);
    let removals =
        victims.iter().filter_map(|id| writer.segments.get(id)).map(|s| s.max_removal_lsn).max().unwrap_or(0);
    let next = Watermark {
        lsn_floor: writer.next_lsn,
        segment_id_floor: writer.next_segment_id,
        expirations_swept_through: watermark.expirations_swept_through.max(now),
        expirations_unlinked_through: watermark.expirations_unlinked_through.max(unlinked_through),
        removals_unlinked_through: watermark.removals_unlinked_through.max(removals),
    };
    let fs = store.segments.fs();
    let dir = store.segments.dir();
    let poison = |e: StoreError| {
        store.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
        e
    };
    // IMPORTANT 8: the watermark (what was counted, the LSN floor, what unlinking forgets) is
    // durable before any segment disappears and before the sweep reports its count.
    next.store(fs, dir).map_err(poison)?;
    *watermark = next;
    for id in &victims {
        let path = store.segments.path(*id);
        stats.bytes_reclaimed += writer.segments.get(id).map_or(0, |s| s.len);
        fs.remove_file(&path).map_err(|e| poison(io_error("removing", &path, e)))?;
        store.segments.forget(&mut writer, *id);
        stats.files_removed += 1;
    }
    if !victims.is_empty() {
        // IMPORTANT 9: the unlinks are durable before the sweep reports them.
        fs.sync_dir(dir).map_err(|e| poison(io_error("syncing", dir, e)))?;
    }
    stats.duration = started.elapsed();
    Ok(stats)
}
