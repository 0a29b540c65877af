//! Cache prefetch hints, for the append path: a feed's index is usually cold in the cache
//! when an append reaches it, and the loads it will make (the group table, the last entry)
//! depend on nothing but addresses the feed already holds. Hinting them all at once lets
//! their misses overlap one another and the append's other work, instead of being waited out
//! one after another. A hint has no effect on what any code reads or writes.

/// Asks the CPU to bring the cache line holding `value` close (a no-op off x86-64).
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `prefetch` is a hint: it reads nothing the program can observe, never faults,
    // and writes nothing. The pointer comes from a live reference. Unsafe only because the
    // intrinsic takes a raw pointer. It pays: see benches/README.md ("A feed's group table
    // laid out for the append path").
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
