//! The head cache: for each feed, the notifications of its newest page, decoded, so that
//! reading that page again copies them from one place in memory instead of decoding records
//! scattered across the segment files.
//!
//! A feed's newest page is what a notification client reads most, and its records were
//! appended among every other feed's, so without the cache each one is a separate walk into
//! the page cache and a decode (benches/README.md, "The head cache, 2026-12-02 night").
//!
//! # Why a hit is never stale
//! Entries are matched by where their record lies (segment id and offset) and by notification
//! id, never by position: a `list` first finds its slots in the index, as without the cache,
//! and takes from the cache only the notifications whose current record is the one cached.
//! While a store is open and not poisoned, the bytes at a location never change: records are
//! only appended, segment ids are never reused (compaction copies records to new segments),
//! and only a failed sync cuts a segment back, which poisons the store first. A `list` does
//! not read the cache of a poisoned store, and one that took from it and finds the store
//! poisoned when it is done fails with [`StoreError::Poisoned`](crate::StoreError::Poisoned),
//! as a read of a record the cut reached does. So no mutation needs to touch the cache: a
//! replacement, state change, delete, eviction or sweep changes the index, and the cached copy
//! of what it superseded is never matched again; it goes when the feed's head is next
//! replaced or evicted.
//!
//! What the cache does not see: damage done to a record's bytes on disk after it was cached.
//! [`LogStore::verify`](super::LogStore::verify) and every open read the files themselves.
//!
//! # Which page a head holds
//! A `list` without filters or cursor whose first [`HEAD_MAX`] notifications were not all in
//! the feed's head replaces it with them (those it found in the old head are shared, not
//! copied). A feed without a head gets one at the second such `list` (the first marks it),
//! so that feeds read once in a while do not push out those read often. Other pages take
//! what they find in the head and replace nothing. A `get` or a lookup by app id takes its
//! notification from the head when it is there ([`HeadCache::take`]) and makes no head; for
//! one older than the head's oldest, it does not even look. A scratch program (100k
//! notifications over 1,000 feeds, each feed's newest 20 in its head, 7 alternated rounds of
//! 100k lookups by app id, 2026-12-03): lookups of notifications in a head took 1,635 ns
//! against 2,133 ns without the cache (1.30×); of others, 2,278 against 2,225 ns (0.98×, within
//! the rounds' spread).
//!
//! # Memory
//! Heads are counted in bytes (the notifications' structs and strings) against
//! [`LogConfig::head_cache_bytes`](super::LogConfig::head_cache_bytes); a notification two
//! heads share, and a replaced head a `list` still reads, count for each. Past the budget,
//! heads are evicted in the order their feeds got them (a replaced head keeps its feed's
//! place), passing over once those read since the clock last passed them (CLOCK, one bit per
//! feed).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::index::{Entry, FeedCell};
use crate::model::Notification;

/// The most notifications a feed's head holds (the first ones of a longer page).
pub(crate) const HEAD_MAX: usize = 100;

/// The cached notifications of one feed, as its last unfiltered first page returned them.
#[derive(Debug)]
pub(crate) struct Head {
    /// Each notification with the location of the record it was decoded from.
    entries: Vec<(Location, Arc<Notification>)>,
    /// What [`Head::entries`] is counted as.
    bytes: usize,
    /// Where `bytes` is counted; given back when the head is dropped.
    used: Arc<AtomicUsize>,
}

impl Drop for Head {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Head {
    /// Where in the head the notification that `entry`'s current record holds is, if cached.
    /// `next` is where to look first (a page read again finds its entries in order) and is
    /// moved past a match: O(1) per entry of a page read again, shifted or not, O(head) for a
    /// miss.
    pub fn find(&self, entry: &Entry, next: &mut usize) -> Option<usize> {
        let location = Location::of(entry);
        let matches = |(l, n): &(Location, Arc<Notification>)| *l == location && n.id.to_bytes() == entry.id;
        let at = match self.entries.get(*next) {
            Some(e) if matches(e) => *next,
            _ => self.entries.iter().position(matches)?,
        };
        *next = at + 1;
        Some(at)
    }

    /// The notification at `at`, a place [`Head::find`] returned.
    pub fn get(&self, at: usize) -> &Arc<Notification> {
        &self.entries[at].1
    }
}

/// Where a new head's notification comes from.
#[derive(Debug)]
pub(crate) enum Fill {
    /// The place [`Head::find`] returned in the head the page read.
    Cached(usize),
    /// Read from the files for the page.
    Read(Arc<Notification>),
}

/// Where a record lies. For the life of an open store that is not poisoned, one location
/// names one record's bytes (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    segment: u32,
    offset: u32,
}

impl Location {
    /// The location of `entry`'s current record.
    pub fn of(entry: &Entry) -> Self {
        Self { segment: entry.segment, offset: entry.offset }
    }
}

/// A feed's place in the cache: its head, if any, and whether it was read since the eviction
/// clock last passed it.
#[derive(Debug)]
pub(crate) struct HeadSlot {
    head: Mutex<Option<Arc<Head>>>,
    referenced: AtomicBool,
    /// Set by a first page that found no head and made none: the next one makes it.
    wanted: AtomicBool,
    /// The oldest position among the head's notifications (`u64::MAX` without a head), read
    /// without the lock by [`HeadCache::take`]: an entry older than it is not in the head,
    /// so a `get` of it takes no lock and scans nothing. Only a hint: a value a reader sees
    /// out of step with the head it then takes costs a scan or a read of the files, never a
    /// wrong answer (matches are by location and id).
    oldest: AtomicU64,
}

impl Default for HeadSlot {
    fn default() -> Self {
        Self {
            head: Mutex::new(None),
            referenced: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            oldest: AtomicU64::new(u64::MAX),
        }
    }
}

/// What the head cache has done since the store opened (see [`super::LogStats`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeadCounts {
    pub hits: u64,
    pub misses: u64,
    pub bytes: usize,
}

/// Every feed's head, within a byte budget.
#[derive(Debug)]
pub(crate) struct HeadCache {
    /// The budget in bytes; 0 turns the cache off.
    limit: usize,
    /// Bytes held by heads alive now (including replaced ones a reader still holds).
    used: Arc<AtomicUsize>,
    /// Numbers of the feeds with a head, oldest first: the eviction clock. A feed appears at
    /// most once (pushed when it gains a head, popped when it loses it).
    clock: Mutex<VecDeque<u32>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HeadCache {
    /// An empty cache of at most `limit` bytes (0: off).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: Arc::new(AtomicUsize::new(0)),
            clock: Mutex::new(VecDeque::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// The head of `slot`, marking it read. O(1).
    pub fn get(&self, slot: &HeadSlot) -> Option<Arc<Head>> {
        let head = slot.head.lock().clone();
        if head.is_some() && !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        head
    }

    /// A copy of the notification that `entry`'s current record holds, from the head of
    /// `slot`, if it is cached there (marking the head read); `None` otherwise, without taking
    /// the head's lock when `entry` is older than every notification the head holds. Counts
    /// the hit or the miss. O(head) for an entry in the head's span, O(1) for an older one.
    ///
    /// A `Some` taken from a store that is poisoned by the time the caller returns it must be
    /// refused, as `list` refuses it (see the module documentation).
    pub fn take(&self, slot: &HeadSlot, entry: &Entry) -> Option<Notification> {
        let found = if entry.position < slot.oldest.load(Ordering::Relaxed) {
            None
        } else {
            self.get(slot).and_then(|h| Some(Notification::clone(h.get(h.find(entry, &mut 0)?))))
        };
        match found {
            Some(_) => self.count(1, 0),
            None => self.count(0, 1),
        }
        found
    }

    /// Whether a first page of the feed of `slot`, which has no head, should make one: not
    /// the first such page since the feed last lost its head (or since open), which only
    /// marks the feed. A feed read once in a while so never costs a head's copies, and when
    /// the budget is too small for the feeds read, half as many heads are made and evicted
    /// for nothing. O(1).
    pub fn admits(&self, slot: &HeadSlot) -> bool {
        slot.wanted.swap(true, Ordering::Relaxed)
    }

    /// Counts a page's notifications taken from the cache and read from the segments.
    pub fn count(&self, hits: usize, misses: usize) {
        if hits > 0 {
            self.hits.fetch_add(hits as u64, Ordering::Relaxed);
        }
        if misses > 0 {
            self.misses.fetch_add(misses as u64, Ordering::Relaxed);
        }
    }

    /// Makes the notifications of `page` the head of feed `cell`: those it found in `old`
    /// (the head the page read, dropped here so that its bytes are not counted against the
    /// budget while the eviction runs) and those it read. Then evicts heads (passing over
    /// once those read since the clock last passed them) until the cache is within its
    /// budget; `feed` finds a feed's cell by number. A head larger than the whole budget is
    /// not kept (the feed's earlier head stays). Cost: O(page), plus O(1) amortized per head
    /// evicted.
    pub fn install(
        &self,
        cell: &FeedCell,
        old: Option<Arc<Head>>,
        page: Vec<(Location, Fill)>,
        oldest: u64,
        feed: impl Fn(u32) -> Option<Arc<FeedCell>>,
    ) {
        let entries: Vec<(Location, Arc<Notification>)> = page
            .into_iter()
            .filter_map(|(location, fill)| match fill {
                Fill::Cached(at) => {
                    old.as_ref().and_then(|h| h.entries.get(at)).map(|(_, n)| (location, Arc::clone(n)))
                }
                Fill::Read(n) => Some((location, n)),
            })
            .collect();
        drop(old);
        let bytes = entries.capacity() * std::mem::size_of::<(Location, Arc<Notification>)>()
            + entries
                .iter()
                .map(|(_, n)| std::mem::size_of::<Notification>() + 2 * std::mem::size_of::<usize>() + n.heap_bytes())
                .sum::<usize>();
        if !self.enabled() || bytes > self.limit {
            return;
        }
        self.used.fetch_add(bytes, Ordering::Relaxed);
        let head = Arc::new(Head { entries, bytes, used: Arc::clone(&self.used) });
        let had = {
            let mut slot = cell.head.head.lock();
            cell.head.oldest.store(oldest, Ordering::Relaxed);
            slot.replace(head).is_some()
        };
        if !had {
            // Pushed after the head is in place, outside its lock: the clock's lock is never
            // held while a head's is taken. A feed without a head is not on the clock, so no
            // eviction can take this head before it is.
            self.clock.lock().push_back(cell.number);
        }
        self.evict(feed);
    }

    /// Evicts heads until the cache is within its budget.
    fn evict(&self, feed: impl Fn(u32) -> Option<Arc<FeedCell>>) {
        // Each feed is passed over at most twice (once to clear its bit, once to evict it).
        let mut turns = 2 * self.clock.lock().len() + 1;
        while self.used.load(Ordering::Relaxed) > self.limit && turns > 0 {
            turns -= 1;
            let Some(number) = self.clock.lock().pop_front() else { return };
            let Some(cell) = feed(number) else { continue };
            if cell.head.referenced.swap(false, Ordering::Relaxed) {
                self.clock.lock().push_back(number);
                continue;
            }
            // Dropping the head (here, or when the last reader holding it is done) gives its
            // bytes back.
            let dropped = {
                let mut slot = cell.head.head.lock();
                cell.head.oldest.store(u64::MAX, Ordering::Relaxed);
                slot.take()
            };
            drop(dropped);
            cell.head.wanted.store(false, Ordering::Relaxed);
        }
    }

    /// What the cache has done, and the bytes it holds now.
    pub fn counts(&self) -> HeadCounts {
        HeadCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.used.load(Ordering::Relaxed),
        }
    }
}
