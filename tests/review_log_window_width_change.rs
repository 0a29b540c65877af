//! Review finding (HIGH): reopening a store with a different `LogConfig::window` makes the next
//! sweep unlink segments that hold live notifications: acknowledged durable writes are lost.
//!
//! A segment header stores its window as an *index*, `floor(expiration_ns / window_ns)`
//! (FORMAT.md, "Segment header"), and nothing on disk records `window_ns`. After a reopen with
//! another width, recovery keeps the old indexes, and the sweep (src/engine/log/sweep.rs,
//! `s.window <= through` with `through = window_of(now, new width) - 1`) compares old-width
//! indexes with a new-width index. Going from 1 day to 1 hour, every existing segment's index
//! (about 20,460 for 2026) is far below the current hour index (about 491,000), so the first
//! sweep unlinks all of them, live notifications included; the other way round, no segment is
//! ever unlinked again. `shadow_window` mixes the two units as well, so the placement rule
//! (no resurrection) no longer holds either. `window` is documented as a plain tuning knob,
//! with nothing saying it must never change.
//!
//! Fix: store the window's bounds in time (start and end in Unix nanoseconds) in the segment
//! header, and make the sweep and the placement rule compare end times (a segment may go once
//! its end is at or before now; a shadowing record goes to a segment whose end is no earlier).
//! Alternatively persist the width (in the watermark or a small manifest) and refuse to open
//! with another one, with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use notifeed::engine::log::fs::FaultFileSystem;
use notifeed::engine::log::{LogConfig, LogStore};
use notifeed::{Clock, FeedKey, FeedStore, ManualClock, NewNotification, StoreError};

fn open(fs: &FaultFileSystem, clock: &ManualClock, window: SignedDuration) -> Result<LogStore, StoreError> {
    let config = LogConfig { window, ..LogConfig::default() };
    LogStore::open_with_fs(Path::new("/data"), config, Arc::new(clock.clone()), Arc::new(fs.clone()))
}

#[test]
fn a_live_notification_survives_a_sweep_after_reopening_with_another_window_width() {
    let fs = FaultFileSystem::new();
    let clock = ManualClock::at_epoch_2026();
    let f = FeedKey::new("user/app").unwrap();
    let expires = clock.now() + SignedDuration::from_hours(10 * 24);
    let acked = {
        let store = open(&fs, &clock, SignedDuration::from_hours(24)).unwrap();
        store.append(&f, NewNotification::visual("app.example", "ten-days", "title").expiring_at(expires)).unwrap()
    };
    clock.advance(SignedDuration::from_hours(1));
    {
        let store = match open(&fs, &clock, SignedDuration::from_hours(1)) {
            Ok(store) => store,
            // Refusing to open with another width, with a clear error, is an acceptable fix too.
            Err(StoreError::Backend { .. }) => return,
            Err(e) => panic!("unexpected open error: {e}"),
        };
        let stats = store.sweep_expired().unwrap();
        assert_eq!(stats.files_removed, 0, "a sweep unlinked a segment holding a live notification");
    }
    let store = open(&fs, &clock, SignedDuration::from_hours(1)).unwrap();
    assert_eq!(store.get(&f, acked.id).unwrap().as_ref(), Some(&acked));
}
