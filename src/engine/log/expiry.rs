//! The expiry order: which notifications a sweep must reclaim, found in O(expired).
//!
//! Notifications are bucketed by expiration window, as their records are. A window still to
//! come keeps one element per notification, `(feed, id key)`, with neither the expiration nor
//! an order: sealed into runs by feed, an element costs its 4-byte key and each feed with
//! notifications in the window 8 bytes (the newest elements wait in a tail of 8-byte pairs
//! that holds at most a fifth of the bucket). When a sweep's time reaches a window, the sweep
//! *opens* it: it takes the window's elements, looks each up in its feed (under the feed's
//! lock) and moves the notifications it finds, with their exact expirations, into a min-heap
//! of `(expiration, feed, id key)`, from which it pops what has expired. So the 16-byte
//! ordered elements exist only for windows a sweep has reached (about one window's worth), and
//! adding a notification to a window to come is a push onto a vector (and, now and then, a
//! merge of the tail).
//!
//! An element is a hint, not a fact: the sweep confirms each popped element against the feed
//! (the notification with that id key and exactly that expiration), so an element left by a
//! notification since replaced or removed only costs a lookup. Such elements are *forgotten*
//! to keep memory following the number of notifications rather than of replacements:
//! * in a window to come, a mark on the window's bucket (per `(feed, id key)`); a bucket whose
//!   marks outnumber half its elements is compacted, and marks are applied when it opens;
//! * in an opened window whose elements all reached the heap, a mark per heap value, applied
//!   when popped or when the heap is rebuilt (once marks outnumber half the heap);
//! * in a window being opened (its elements taken but not all looked up yet), nothing: the
//!   element may not have reached the heap, and a mark without its element could hide a later
//!   notification's. The stale element is popped at its time and confirmed away.
//!
//! Invariant: every notification in the index whose expiration lies in a window to come has an
//! unmarked element in that window's bucket, and every one in an opened window has an unmarked
//! element in the heap. Each push and mark above keeps it (see each method).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use foldhash::{HashMap, HashMapExt};

use super::recovery::window_of;

/// The notifications of one window still to come: `(feed, id key)` elements, most of them
/// sealed as runs by feed (4 bytes an element, 8 a run), the latest in a tail of pairs (8 bytes
/// an element) that is merged in once it holds a quarter as many as the runs.
#[derive(Debug, Default)]
struct Bucket {
    /// `(feed, elements)`, by feed: the first run's keys open `keys`, the next follow.
    runs: Vec<(u32, u32)>,
    /// The id keys of the sealed elements, run by run.
    keys: Vec<u32>,
    /// Elements expected since the last merge, in arrival order.
    tail: Vec<(u32, u32)>,
    /// How many elements of each value are forgotten.
    forgotten: HashMap<(u32, u32), u32>,
    forgotten_count: usize,
}

/// The tail a bucket always lets grow before merging (so small buckets do not merge often).
const MIN_TAIL: usize = 64;

impl Bucket {
    /// Elements held, forgotten ones included.
    fn len(&self) -> usize {
        self.keys.len() + self.tail.len()
    }

    /// Adds an element. Cost: amortized O(log n) (the merges).
    fn push(&mut self, element: (u32, u32)) {
        self.tail.push(element);
        if self.tail.len() >= MIN_TAIL.max(self.keys.len() / 4) {
            self.seal();
        }
    }

    /// Merges the tail into the runs: O(sealed + tail log tail).
    fn seal(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let mut tail = std::mem::take(&mut self.tail);
        tail.sort_unstable_by_key(|&(feed, _)| feed);
        let mut runs = Vec::with_capacity(self.runs.len() + tail.len().min(64));
        let mut keys = Vec::with_capacity(self.keys.len() + tail.len());
        let mut sealed = self.runs.iter().copied().peekable();
        // The sealed keys not yet copied: each run's are copied as one slice.
        let mut sealed_keys = self.keys.as_slice();
        let mut fresh = tail.chunk_by(|a, b| a.0 == b.0).peekable();
        loop {
            let take_sealed = match (sealed.peek(), fresh.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(&(feed, _)), Some(run)) => feed <= run[0].0,
            };
            if take_sealed {
                let Some((feed, count)) = sealed.next() else { break };
                let (run, rest) = sealed_keys.split_at(sealed_keys.len().min(count as usize));
                keys.extend_from_slice(run);
                sealed_keys = rest;
                let mut count = count;
                if let Some(run) = fresh.next_if(|run| run[0].0 == feed) {
                    keys.extend(run.iter().map(|&(_, key)| key));
                    count += run.len() as u32;
                }
                runs.push((feed, count));
            } else if let Some(run) = fresh.next() {
                keys.extend(run.iter().map(|&(_, key)| key));
                runs.push((run[0].0, run.len() as u32));
            }
        }
        runs.shrink_to_fit();
        (self.runs, self.keys) = (runs, keys);
        tail.clear();
        self.tail = tail;
    }

    /// Every element, sealed and in the tail, forgotten ones included.
    fn elements(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut keys = self.keys.as_slice();
        let sealed = self.runs.iter().flat_map(move |&(feed, count)| {
            let (run, rest) = keys.split_at(keys.len().min(count as usize));
            keys = rest;
            run.iter().map(move |&key| (feed, key))
        });
        sealed.chain(self.tail.iter().copied())
    }

    /// The elements less the forgotten ones (the marks are used up); the bucket is left empty.
    fn take_live(&mut self) -> Vec<(u32, u32)> {
        let mut elements: Vec<(u32, u32)> = Vec::with_capacity(self.len());
        elements.extend(self.elements());
        (self.runs, self.keys, self.tail) = (Vec::new(), Vec::new(), Vec::new());
        if self.forgotten_count > 0 {
            elements.retain(|element| match self.forgotten.get_mut(element) {
                Some(count) if *count > 0 => {
                    *count -= 1;
                    false
                }
                _ => true,
            });
            self.forgotten = HashMap::new();
            self.forgotten_count = 0;
        }
        elements
    }

    /// Drops the forgotten elements: O(n log n).
    fn compact(&mut self) {
        self.tail = self.take_live();
        self.seal();
    }

    fn shrink_to_fit(&mut self) {
        self.seal();
        self.tail = Vec::new();
        self.runs.shrink_to_fit();
        self.keys.shrink_to_fit();
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<(i64, Bucket)>()
            + self.runs.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.keys.capacity() * std::mem::size_of::<u32>()
            + self.tail.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.forgotten.capacity() * (std::mem::size_of::<((u32, u32), u32)>() + 1)
    }
}

/// Elements a sweep takes from the windows it opens: `(window, [(feed, id key)])`. The caller
/// looks each up and hands the notifications found to [`ExpiryOrder::push_opened`], then calls
/// [`ExpiryOrder::finish_opening`].
pub(crate) type Opened = Vec<(i64, Vec<(u32, u32)>)>;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ExpiryOrder {
    window_nanos: i64,
    /// Windows to come, by window (its end, as `window_of` names it).
    buckets: BTreeMap<i64, Bucket>,
    /// Every window up to this one is opened: new elements there go to the heap.
    opened_through: i64,
    /// Every window up to this one had all its taken elements looked up: marks are safe there.
    resolved_through: i64,
    /// Openings taken and not finished (one at a time in a store, whose sweeps take turns; a
    /// count, so that a second one could never declare the first's windows looked up).
    openings: usize,
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
    /// How many heap elements of each value are forgotten (two notifications of a feed may
    /// share an id key and an expiration).
    forgotten: HashMap<(i64, u32, u32), u32>,
    forgotten_count: usize,
}

impl ExpiryOrder {
    /// An empty order over windows `window_nanos` wide (the store's).
    pub fn new(window_nanos: i64) -> Self {
        Self {
            window_nanos: window_nanos.max(1),
            buckets: BTreeMap::new(),
            opened_through: i64::MIN,
            resolved_through: i64::MIN,
            openings: 0,
            heap: BinaryHeap::new(),
            forgotten: HashMap::new(),
            forgotten_count: 0,
        }
    }

    /// Records that the notification `id_key` of `feed` expires at `expiration`. Called once
    /// it is in its feed, under the feed's lock. Cost: O(1) amortized for a window to come,
    /// O(log n) for an opened one.
    pub fn expect(&mut self, expiration: i64, feed: u32, id_key: u32) {
        let window = window_of(expiration, self.window_nanos);
        if window <= self.opened_through {
            self.heap.push(Reverse((expiration, feed, id_key)));
        } else {
            self.buckets.entry(window).or_default().push((feed, id_key));
        }
    }

    /// [`ExpiryOrder::expect`] for many notifications at once (after recovery), each bucket
    /// sealed in one merge. Cost: O(n log n).
    pub fn expect_many(&mut self, elements: Vec<(i64, u32, u32)>) {
        let mut by_window: HashMap<i64, Vec<(u32, u32)>> = HashMap::new();
        for (expiration, feed, id_key) in elements {
            let window = window_of(expiration, self.window_nanos);
            if window <= self.opened_through {
                self.heap.push(Reverse((expiration, feed, id_key)));
            } else {
                by_window.entry(window).or_default().push((feed, id_key));
            }
        }
        for (window, elements) in by_window {
            let bucket = self.buckets.entry(window).or_default();
            bucket.tail.extend(elements);
            bucket.seal();
            bucket.tail = Vec::new();
        }
    }

    /// Takes back what [`ExpiryOrder::expect`] recorded for a notification being replaced or
    /// removed, under its feed's lock. Cost: amortized O(1).
    pub fn forget(&mut self, expiration: i64, feed: u32, id_key: u32) {
        let window = window_of(expiration, self.window_nanos);
        if window > self.opened_through {
            // Its element is in this bucket: the window was not opened when it was expected
            // either (windows only open).
            let Some(bucket) = self.buckets.get_mut(&window) else {
                debug_assert!(false, "a forget in window {window} that has no bucket");
                return;
            };
            *bucket.forgotten.entry((feed, id_key)).or_insert(0) += 1;
            bucket.forgotten_count += 1;
            if bucket.forgotten_count > 16 && bucket.forgotten_count * 2 > bucket.len() {
                bucket.compact();
            }
        } else if window <= self.resolved_through {
            // Its element is in the heap: pushed when expected, or by the opening, which found
            // the notification in its feed (its removal and this forget happen under one hold
            // of the feed's lock, so no opening saw the feed in between).
            *self.forgotten.entry((expiration, feed, id_key)).or_insert(0) += 1;
            self.forgotten_count += 1;
            if self.forgotten_count * 2 > self.heap.len() {
                self.rebuild();
            }
        }
        // Else its window is being opened: leave the element (see the module documentation).
    }

    /// Opens every window that may hold an expiration at or before `now`: takes their
    /// elements (less the forgotten ones), each window's sorted by feed; from now on, new
    /// notifications there go to the heap. The caller looks each element up, then calls
    /// [`ExpiryOrder::finish_opening`], or [`ExpiryOrder::abandon_opening`] if it cannot.
    pub fn open_through(&mut self, now: i64) -> Opened {
        self.opened_through = self.opened_through.max(window_of(now, self.window_nanos));
        // Every bucket up to there: an abandoned opening may have put some back.
        let through = self.opened_through;
        self.openings += 1;
        let mut opened = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > through {
                break;
            }
            let (window, mut bucket) = entry.remove_entry();
            let mut elements = bucket.take_live();
            elements.sort_unstable();
            opened.push((window, elements));
        }
        opened
    }

    /// Adds a notification found by looking up an opened element, under its feed's lock.
    pub fn push_opened(&mut self, expiration: i64, feed: u32, id_key: u32) {
        self.heap.push(Reverse((expiration, feed, id_key)));
    }

    /// Ends an opening started by [`ExpiryOrder::open_through`]: every element it took was
    /// looked up. Once no opening is running, marks become safe in every opened window that
    /// has no bucket (one an abandoned opening put back waits for the next opening).
    pub fn finish_opening(&mut self) {
        self.openings = self.openings.saturating_sub(1);
        if self.openings == 0 {
            let limit = self
                .buckets
                .first_key_value()
                .map_or(self.opened_through, |(&first, _)| self.opened_through.min(first.saturating_sub(1)));
            self.resolved_through = self.resolved_through.max(limit);
        }
    }

    /// Gives back what an opening took and could not look up (its caller is unwinding): the
    /// elements go back to their buckets, which the next opening takes again (duplicates of
    /// what reached the heap are confirmed away). No window is declared looked up.
    pub fn abandon_opening(&mut self, opened: Opened) {
        for (window, elements) in opened {
            let bucket = self.buckets.entry(window).or_default();
            for element in elements {
                bucket.push(element);
            }
        }
        self.openings = self.openings.saturating_sub(1);
    }

    /// Takes every element at or before `now` from the heap, oldest first, less the forgotten
    /// ones. Only opened windows' elements are there: open first.
    pub fn pop_through(&mut self, now: i64) -> Vec<(i64, u32, u32)> {
        let mut out = Vec::new();
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if top.0 > now {
                break;
            }
            self.heap.pop();
            if !self.take_forgotten(top) {
                out.push(top);
            }
        }
        out
    }

    /// The window a notification expiring at `expiration` belongs to.
    pub fn window_of(&self, expiration: i64) -> i64 {
        window_of(expiration, self.window_nanos)
    }

    /// Gives back spare capacity (after recovery).
    pub fn shrink_to_fit(&mut self) {
        for bucket in self.buckets.values_mut() {
            bucket.shrink_to_fit();
        }
        self.heap.shrink_to_fit();
    }

    /// Bytes held, by capacity.
    pub fn bytes(&self) -> usize {
        self.buckets.values().map(Bucket::bytes).sum::<usize>()
            + self.heap.capacity() * std::mem::size_of::<(i64, u32, u32)>()
            + self.forgotten.capacity() * (std::mem::size_of::<((i64, u32, u32), u32)>() + 1)
    }

    /// Whether `element` is marked forgotten; takes one mark when it is.
    fn take_forgotten(&mut self, element: (i64, u32, u32)) -> bool {
        let Some(count) = self.forgotten.get_mut(&element) else { return false };
        *count -= 1;
        if *count == 0 {
            self.forgotten.remove(&element);
        }
        self.forgotten_count = self.forgotten_count.saturating_sub(1);
        true
    }

    /// Drops every forgotten heap element: O(heap).
    fn rebuild(&mut self) {
        let elements = std::mem::take(&mut self.heap).into_vec();
        let mut kept = Vec::with_capacity(elements.len().saturating_sub(self.forgotten_count));
        for Reverse(element) in elements {
            if !self.take_forgotten(element) {
                kept.push(Reverse(element));
            }
        }
        // A mark without its element (none is expected) must not outlive the rebuild.
        self.forgotten = HashMap::new();
        self.forgotten_count = 0;
        self.heap = BinaryHeap::from(kept);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const W: i64 = 100;

    /// Opens through `now`, looks elements up in `held` (the notifications in the feeds:
    /// `(expiration, feed, id key)`), and pops: what a sweep does.
    fn sweep(order: &mut ExpiryOrder, held: &[(i64, u32, u32)], now: i64) -> Vec<(i64, u32, u32)> {
        for (window, elements) in order.open_through(now) {
            for (feed, key) in elements {
                for &(e, f, k) in held {
                    if (f, k) == (feed, key) && order.window_of(e) == window {
                        order.push_opened(e, f, k);
                    }
                }
            }
        }
        order.finish_opening();
        order.pop_through(now)
    }

    #[test]
    fn expirations_come_out_exactly_at_their_time_oldest_first_across_windows() {
        let mut order = ExpiryOrder::new(W);
        let held = [(250, 1, 7), (120, 2, 8), (99, 1, 9), (100, 3, 1), (101, 3, 2)];
        for &(e, f, k) in &held {
            order.expect(e, f, k);
        }
        assert_eq!(sweep(&mut order, &held, 98), vec![]);
        assert_eq!(sweep(&mut order, &held, 100), vec![(99, 1, 9), (100, 3, 1)]);
        assert_eq!(sweep(&mut order, &held, 120), vec![(101, 3, 2), (120, 2, 8)]);
        // Expected after its window opened: straight into the heap.
        order.expect(130, 4, 4);
        assert_eq!(sweep(&mut order, &held, 249), vec![(130, 4, 4)]);
        assert_eq!(sweep(&mut order, &held, 250), vec![(250, 1, 7)]);
        assert!(order.buckets.is_empty());
    }

    #[test]
    fn a_forgotten_element_does_not_come_out_in_a_window_to_come_or_an_opened_one() {
        let mut order = ExpiryOrder::new(W);
        order.expect(150, 1, 1);
        order.expect(150, 1, 2);
        order.forget(150, 1, 1);
        let held = [(150, 1, 2), (160, 1, 1)];
        order.expect(160, 1, 1);
        assert_eq!(sweep(&mut order, &held, 100), vec![]);
        // Window 200 is open now; a forget there marks the heap.
        order.forget(160, 1, 1);
        assert_eq!(sweep(&mut order, &held, 199), vec![(150, 1, 2)]);
    }

    #[test]
    fn a_forget_while_its_window_is_being_opened_marks_nothing() {
        let mut order = ExpiryOrder::new(W);
        order.expect(150, 1, 1);
        let opened = order.open_through(100);
        assert_eq!(opened, vec![(200, vec![(1, 1)])]);
        // The notification goes before the opening looked it up; a replacement in the same
        // window comes straight into the heap.
        order.forget(150, 1, 1);
        order.expect(170, 1, 1);
        order.finish_opening();
        // A later forget of the replacement marks it; the expect of another with the old value
        // must still come out (a mark left by the first forget would have hidden it).
        order.forget(170, 1, 1);
        order.expect(150, 1, 1);
        assert_eq!(order.pop_through(199), vec![(150, 1, 1)]);
    }

    #[test]
    fn replacing_in_a_window_to_come_keeps_its_bucket_near_the_live_count() {
        let mut order = ExpiryOrder::new(W);
        for round in 0..1_000 {
            for key in 0..10 {
                if round > 0 {
                    order.forget(1_000_000, 1, key);
                }
                order.expect(1_000_000, 1, key);
            }
        }
        let bucket = &order.buckets[&order.window_of(1_000_000)];
        assert!(bucket.len() <= 2 * 10 + 34, "{} elements for 10 notifications", bucket.len());
        let held: Vec<_> = (0..10).map(|k| (1_000_000, 1, k)).collect();
        assert_eq!(sweep(&mut order, &held, 1_000_000).len(), 10);
    }

    #[test]
    fn a_window_to_come_costs_four_bytes_per_notification_and_eight_per_feed_after_a_bulk_expect() {
        let mut order = ExpiryOrder::new(W);
        order.expect_many((0..1_000u32).map(|i| (i64::from(i) * 7, i % 10, i)).collect());
        order.shrink_to_fit();
        let buckets = order.buckets.len();
        let runs: usize = order.buckets.values().map(|b| b.runs.len()).sum();
        assert_eq!(runs, buckets * 10, "one run per feed in each window");
        assert_eq!(order.bytes(), 1_000 * 4 + runs * 8 + buckets * std::mem::size_of::<(i64, Bucket)>());
    }

    #[test]
    fn a_bucket_gives_back_every_element_pushed_merged_or_not() {
        let mut bucket = Bucket::default();
        let mut pushed = Vec::new();
        // Feeds in an order that makes every merge interleave old and new runs.
        for i in 0..5_000u32 {
            let element = ((i * 7919) % 37, i);
            bucket.push(element);
            pushed.push(element);
            if i % 1_000 == 999 {
                let mut held: Vec<_> = bucket.elements().collect();
                let mut expected = pushed.clone();
                held.sort_unstable();
                expected.sort_unstable();
                assert_eq!(held, expected, "after {} pushes", i + 1);
                assert!(bucket.tail.len() <= MIN_TAIL.max(bucket.keys.len() / 4));
                assert!(bucket.runs.windows(2).all(|w| w[0].0 < w[1].0), "one run per feed, in order");
            }
        }
        let mut taken = bucket.take_live();
        taken.sort_unstable();
        pushed.sort_unstable();
        assert_eq!(taken, pushed);
        assert_eq!(bucket.len(), 0);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Insert { feed: u32, key: u32, after: i64 },
        Remove(usize),
        Replace(usize, i64),
        Open(i64),
        LookUp(usize),
        Finish,
        Abandon,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0..2u32, 0..2u32, -20..250i64).prop_map(|(feed, key, after)| Step::Insert { feed, key, after }),
            1 => any::<usize>().prop_map(Step::Remove),
            3 => (any::<usize>(), -20..250i64).prop_map(|(i, after)| Step::Replace(i, after)),
            1 => (0..150i64).prop_map(Step::Open),
            2 => (0..4usize).prop_map(Step::LookUp),
            1 => Just(Step::Finish),
            1 => Just(Step::Abandon),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

        /// Whatever interleaving of expectations, removals and replacements with a sweep's
        /// opening (taken, looked up bit by bit, finished or abandoned): once a sweep finishes
        /// at `now`, every notification that expired by `now` came out, and none still held has.
        #[test]
        fn no_notification_is_ever_left_behind(steps in proptest::collection::vec(step(), 1..120)) {
            let mut order = ExpiryOrder::new(W);
            // (expiration, feed, key) of each held notification.
            let mut held: Vec<(i64, u32, u32)> = Vec::new();
            let mut now = 0;
            let mut opening: Option<Vec<(i64, u32, u32)>> = None;
            let look_up = |order: &mut ExpiryOrder, held: &[(i64, u32, u32)], (window, feed, key): (i64, u32, u32)| {
                for &(e, f, k) in held {
                    if (f, k) == (feed, key) && order.window_of(e) == window {
                        order.push_opened(e, f, k);
                    }
                }
            };
            for step in steps {
                match step {
                    Step::Insert { feed, key, after } => {
                        held.push((now + after, feed, key));
                        order.expect(now + after, feed, key);
                    }
                    Step::Remove(i) if !held.is_empty() => {
                        let (e, f, k) = held.remove(i % held.len());
                        order.forget(e, f, k);
                    }
                    Step::Replace(i, after) if !held.is_empty() => {
                        let i = i % held.len();
                        let (e, f, k) = held[i];
                        order.forget(e, f, k);
                        held[i].0 = now + after;
                        order.expect(now + after, f, k);
                    }
                    Step::Open(advance) if opening.is_none() => {
                        now += advance;
                        let taken = order.open_through(now);
                        opening = Some(taken.into_iter().flat_map(|(w, els)| els.into_iter().map(move |(f, k)| (w, f, k))).collect());
                    }
                    Step::LookUp(n) => {
                        if let Some(pending) = opening.as_mut() {
                            for element in pending.drain(..n.min(pending.len())) {
                                look_up(&mut order, &held, element);
                            }
                        }
                    }
                    Step::Abandon => {
                        if let Some(pending) = opening.take() {
                            let mut back: Opened = Vec::new();
                            for (w, f, k) in pending {
                                back.push((w, vec![(f, k)]));
                            }
                            order.abandon_opening(back);
                        }
                    }
                    Step::Finish => {
                        if let Some(pending) = opening.take() {
                            for element in pending {
                                look_up(&mut order, &held, element);
                            }
                            order.finish_opening();
                            for (e, f, k) in order.pop_through(now) {
                                // The sweep's confirmation: that notification, at that time.
                                if let Some(at) = held.iter().position(|&h| h == (e, f, k)) {
                                    held.remove(at);
                                }
                            }
                            let left: Vec<_> = held.iter().filter(|h| h.0 <= now).collect();
                            proptest::prop_assert!(left.is_empty(), "expired at {now} and still held: {left:?}");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
