//! One store shared across threads.

use std::collections::BTreeSet;

use notifeed::{Counts, StoreOptions};

use super::{Fixture, Opener, feed, upserts, visual};

/// Appends from several threads at once, to one feed and to their own feeds, all land: every id
/// is distinct, counts are exact, and the change feed holds each once, also after a reopen.
pub fn concurrent_appends_are_all_kept(open: Opener) {
    const THREADS: usize = 4;
    const EACH: usize = 20;
    let mut s = Fixture::start_with(open, StoreOptions::default());
    let shared = feed("shared");
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let s = &s;
            let shared = &shared;
            scope.spawn(move || {
                for i in 0..EACH {
                    s.add(shared, visual(&format!("t{t}-n{i}"), "t"));
                    s.add(&feed(&format!("own-{t}")), visual(&format!("n{i}"), "t"));
                    s.add(shared, visual("contended", &format!("t{t}-n{i}")));
                }
            });
        }
    });
    let total = (THREADS * EACH + 1) as u64;
    for _ in 0..2 {
        assert_eq!(s.count(&shared).unwrap(), Counts { total, unread: total });
        let (changes, _) = s.drain_changes(&shared, None, 7);
        let ids: BTreeSet<_> = upserts(&changes).into_iter().map(|n| n.id).collect();
        assert_eq!(changes.len() as u64, total, "each notification once");
        assert_eq!(ids.len() as u64, total, "distinct ids");
        for t in 0..THREADS {
            assert_eq!(s.count(&feed(&format!("own-{t}"))).unwrap().total, EACH as u64);
        }
        s.reopen();
    }
}
