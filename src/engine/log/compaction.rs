//! Compaction: a sealed segment of a window that has not passed yet, whose records are mostly
//! dead (notifications replaced, changed, deleted or evicted since), is copied without its dead
//! records into a new segment of the same window, and unlinked. Rare, incremental and
//! rate-limited: the sweep runs it after expiring, on the segments with the most dead bytes
//! first, up to [`LogConfig::compaction_bytes_per_sweep`](super::LogConfig) bytes, and only on
//! segments at least [`LogConfig::compaction_dead_fraction`](super::LogConfig) dead. Expiry
//! never needs it: whole windows are unlinked.
//!
//! What is dropped is only a notification record (`Append` without an eviction, `Replace`,
//! `StateChange`) that no index entry points to: a later record of the same notification, in
//! a window no earlier (the placement rule), supersedes it, so dropping it resurrects nothing.
//! Every other record (deletes, group deletes, appends that evicted, `Expired`, `Removals`) is
//! copied, so no tombstone is lost. Copies keep their LSN (replay order stays the same) and
//! their window (the placement rule still holds); they are resealed for the new segment.
//!
//! Crash safety, in order: (0) everything written so far is synced, so each record that makes a
//! dropped one dead is durable (with `Buffered` it may not be yet); (1) the window's active
//! segment is synced, so the new segment may
//! become the window's last (torn tails only in a window's last segment); (2) the new segment
//! is created (header and directory synced), written and synced (every copy but the last,
//! then the last, whose frame thereby says the others are durable); (3) the index is pointed at
//! the copies; (4) the watermark is raised, as before any unlink; (5) the old segment is
//! unlinked and the directory synced. A crash between (2) and (5) leaves both files: recovery
//! replays each LSN once.

use super::LogStore;
use super::record::{self, RecordKind, SEGMENT_HEADER_LEN};
use super::segment::io_error;
use crate::{StoreError, SweepStats};

#[cfg(test)]
thread_local! {
    /// Runs once, on the compacting thread, between the copy (step 2) and the repointing
    /// (step 3) of the first segment with live records: what a writer may do meanwhile.
    pub(crate) static BEFORE_REPOINT: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
        const { std::cell::RefCell::new(None) };
}

/// A record of the segment being compacted that is copied.
struct Kept {
    offset: usize,
    len: usize,
    kind: RecordKind,
    lsn: u64,
    /// The feed and id of a live notification record, whose index entry must follow it.
    live: Option<(String, [u8; 16])>,
}

/// Compacts the deadest sealed segments of windows that have not passed at `now`, within the
/// configured budget, and adds what it did to `stats` (`bytes_rewritten`, `files_removed`,
/// `bytes_reclaimed`).
///
/// # Errors
/// [`StoreError::Io`]; the store is poisoned by a failed write, sync or unlink.
pub(crate) fn compact(store: &LogStore, now: i64, stats: &mut SweepStats) -> Result<(), StoreError> {
    let mut budget = store.config.compaction_bytes_per_sweep;
    if budget == 0 {
        return Ok(());
    }
    let fraction = store.config.compaction_dead_fraction;
    let mut candidates: Vec<(u64, u32)> = {
        let writer = store.segments.writer.lock();
        writer
            .segments
            .iter()
            .filter(|(id, s)| s.window > now && writer.active.get(&s.window) != Some(id))
            .filter(|(_, s)| {
                let payload = s.len.saturating_sub(SEGMENT_HEADER_LEN as u64);
                payload > 0 && s.dead_bytes as f64 >= fraction * payload as f64
            })
            .map(|(&id, s)| (s.dead_bytes, id))
            .collect()
    };
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    for (_, id) in candidates {
        let Some(len) = store.segments.writer.lock().segments.get(&id).map(|s| s.len) else { continue };
        if len > budget {
            continue;
        }
        budget -= len;
        compact_one(store, id, len, fraction, stats)?;
    }
    Ok(())
}

fn compact_one(store: &LogStore, id: u32, len: u64, fraction: f64, stats: &mut SweepStats) -> Result<(), StoreError> {
    let segments = &store.segments;
    let Some(key) = segments.frame_key(id) else { return Ok(()) };
    let Some(window) = segments.window_of(id) else { return Ok(()) };
    let size = usize::try_from(len).map_err(|_| StoreError::Corruption {
        location: segments.path(id).display().to_string(),
        detail: "segment larger than memory".into(),
    })?;
    // A sealed segment never changes, so it is read without the writer's lock.
    let bytes = segments.read(id, 0, size)?;

    // 1. Which records to keep.
    let mut kept = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    while offset < bytes.len() {
        let frame = match record::decode_frame(&bytes[offset..], key) {
            Ok(frame) => frame,
            Err(_) => {
                // Damage: reads report it where it matters; compaction leaves the file alone.
                forget_estimate(store, id);
                return Ok(());
            }
        };
        let frame_len = frame.len();
        let live = match frame.kind {
            RecordKind::Append | RecordKind::Replace | RecordKind::StateChange => {
                let Ok(body) = record::decode_upsert(frame.body) else {
                    forget_estimate(store, id);
                    return Ok(());
                };
                let id_bytes = body.notification.id;
                let points_here = store.index.feed(body.feed).is_some_and(|cell| {
                    let f = cell.index.read();
                    f.slot_of(&id_bytes).is_some_and(|slot| {
                        let e = f.entry(slot);
                        e.segment == id && e.offset as usize == offset
                    })
                });
                if !points_here && body.evicted.is_none() {
                    offset += frame_len;
                    continue;
                }
                points_here.then(|| (body.feed.to_owned(), id_bytes))
            }
            _ => None,
        };
        kept.push(Kept { offset, len: frame_len, kind: frame.kind, lsn: frame.lsn, live });
        offset += frame_len;
    }
    let payload = (bytes.len() - SEGMENT_HEADER_LEN) as u64;
    let copied: u64 = kept.iter().map(|k| k.len as u64).sum();
    let dead = payload - copied;
    if (dead as f64) < fraction * payload as f64 {
        // The estimate was high (say, evicting appends, which must stay): correct it, so the
        // segment waits until more of it dies.
        if let Some(s) = segments.writer.lock().segments.get_mut(&id) {
            s.dead_bytes = dead;
        }
        return Ok(());
    }

    // IMPORTANT 16: every record that supersedes a dropped one is durable before anything is
    // dropped. The index said "dead" because a later record exists; with `Buffered` that record
    // may still be in a buffer or the page cache, and a power loss that took it must leave the
    // older one. Everything the scan above saw was written before this sync.
    store.submit(super::commit::Request::Sync)?;

    // 2. Copy into a new segment of the same window.
    let mut relocated = Vec::new();
    let (new_id, old_size, new_size) = {
        let mut writer = segments.writer.lock();
        segments.check_poison()?;
        let Some(old) = writer.segments.get(&id).cloned() else { return Ok(()) };
        if kept.is_empty() {
            // Nothing to copy: the original only has to go.
            (0, old.allocated, 0)
        } else {
            if let Some(&active) = writer.active.get(&window) {
                // IMPORTANT 13: the window's active segment is durable, and holds no zeros past its
                // records, before a newer segment of the window exists, so a torn tail (or
                // preallocated space) stays in a window's last segment.
                stats.bytes_reclaimed += segments.trim_preallocated(&mut writer, &[active])?;
            }
            // With it, every other segment written since the sync above (IMPORTANT 19: the
            // copy below is one more unsynced segment until its own sync, and must not leave
            // the descriptor LRU only unsynced files to close).
            let dirty = writer.dirty_segments();
            segments.sync_many(&mut writer, &dirty)?;
            let new_id = segments.create(&mut writer, window)?;
            let new_key = segments.frame_key(new_id).ok_or_else(|| StoreError::Backend {
                engine: "log",
                detail: format!("segment {new_id} vanished as it was created"),
            })?;
            let mut buf = Vec::with_capacity(copied as usize);
            let start = SEGMENT_HEADER_LEN as u64;
            // Where the new segment's durable prefix ends: at first its header.
            let mut synced = start;
            for (i, k) in kept.iter().enumerate() {
                if i > 0 && i == kept.len() - 1 {
                    // Every copy but the last is made durable first, so that the last copy's
                    // frame says so (its unsynced distance is 0): damage to the earlier copies
                    // found by an open is then corruption, refused, never a torn tail cut away
                    // (FORMAT.md, invariant 3), though no writer appends after them.
                    segments.append(&mut writer, new_id, start, &buf, 0)?;
                    segments.sync(&mut writer, new_id)?;
                    synced = start + buf.len() as u64;
                }
                let at = start + buf.len() as u64;
                buf.extend_from_slice(&bytes[k.offset..k.offset + k.len]);
                let copy = buf.len() - k.len;
                record::seal_frame(&mut buf[copy..], new_key, k.kind, k.lsn, at - synced);
                if let Some((feed, nid)) = &k.live {
                    relocated.push((feed.clone(), *nid, k.offset as u32, at as u32, k.len as u64));
                }
            }
            let rest = usize::try_from(synced - start).unwrap_or(usize::MAX).min(buf.len());
            segments.append(&mut writer, new_id, synced, &buf[rest..], 0)?;
            // IMPORTANT 14: the copies are durable before the index points at them and before the
            // original is unlinked.
            segments.sync(&mut writer, new_id)?;
            let mut new_size = 0;
            if let Some(s) = writer.segments.get_mut(&new_id) {
                s.max_removal_lsn = old.max_removal_lsn;
                s.max_expiration = old.max_expiration;
                new_size = s.allocated;
            }
            (new_id, old.allocated, new_size)
        }
    };

    #[cfg(test)]
    if !relocated.is_empty()
        && let Some(mut hook) = BEFORE_REPOINT.with(|hook| hook.borrow_mut().take())
    {
        hook();
    }

    // 3. Point the index at the copies (feed locks before the writer's lock, never under it).
    // A copy whose notification was superseded since the scan (its entry points elsewhere
    // now) was counted dead in the original, which goes: it is dead in the new segment.
    let mut dead_copies = 0;
    for (feed, nid, old_offset, new_offset, len) in relocated {
        let Some(cell) = store.index.feed(&feed) else {
            dead_copies += len;
            continue;
        };
        let mut f = cell.index.write();
        match f.slot_of(&nid) {
            Some(slot) if f.entry(slot).segment == id && f.entry(slot).offset == old_offset => {
                let e = *f.entry(slot);
                f.relocate(slot, (new_id, new_offset, e.len()));
            }
            _ => dead_copies += len,
        }
    }

    // 4. and 5. Raise the watermark, then unlink the original.
    let mut writer = segments.writer.lock();
    if let Some(s) = writer.segments.get_mut(&new_id) {
        s.dead_bytes += dead_copies;
    }
    segments.check_poison()?;
    let fs = segments.fs();
    let dir = segments.dir();
    // Compaction drops no expiration anyone reports: none is marked forgotten.
    let next = writer.watermark_before_unlink(i64::MIN, None);
    // IMPORTANT 15: as before any unlink, the floors are durable first.
    segments.poison_on_error(next.store(fs, dir))?;
    writer.watermark = next;
    let path = segments.path(id);
    segments.poison_on_error(fs.remove_file(&path).map_err(|e| io_error("removing", &path, e)))?;
    segments.forget(&mut writer, id);
    segments.poison_on_error(fs.sync_dir(dir).map_err(|e| io_error("syncing", dir, e)))?;
    stats.files_removed += 1;
    stats.bytes_rewritten += copied;
    // The net change of the disk: both are the files' sizes, and the new one may be the larger
    // (zeros written ahead of its records, as the window's active segment) until a later trim,
    // which counts its own cut.
    stats.bytes_reclaimed = (stats.bytes_reclaimed + old_size).saturating_sub(new_size);
    Ok(())
}

/// Stops counting a segment as compactable (it could not be read as expected).
fn forget_estimate(store: &LogStore, id: u32) {
    if let Some(s) = store.segments.writer.lock().segments.get_mut(&id) {
        s.dead_bytes = 0;
    }
}
