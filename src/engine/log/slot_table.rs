//! A feed's hash table of entry slots, as narrow as the feed allows.
//!
//! The table maps a 32-bit key (an id key or an app-id hash, spread to 64 bits by the caller)
//! to the slot of an entry in the feed's vector; the caller confirms each candidate against the
//! entry. A value is a slot, with [`APP_COPY`] set on an entry's second value (its copy under
//! its app-id hash, for ids drawn before ids were keyed).
//!
//! A table costs one control byte per bucket plus the value, and hashbrown keeps between 1/2
//! and 7/8 of its buckets full. A feed whose slots are all below 2^15 (most feeds) keeps 2-byte
//! values: 3 bytes a bucket instead of 5, that is 3.4 to 6.9 bytes a notification instead of
//! 5.7 to 11.4. The table widens to 4-byte values, once, when a slot reaches 2^15.

use hashbrown::HashTable;
use hashbrown::hash_table::IterHash;

/// Marks a value that is an entry's copy under its app-id hash (the rest is its slot).
pub(crate) const APP_COPY: u32 = 1 << 31;

const NARROW_COPY: u16 = 1 << 15;

/// The first slot a narrow table cannot hold.
const NARROW_SLOTS: u32 = 1 << 15;

/// See the module documentation.
#[derive(Debug)]
pub(crate) enum SlotTable {
    /// Every slot below [`NARROW_SLOTS`]; [`NARROW_COPY`] marks a copy.
    Narrow(HashTable<u16>),
    /// Any slot below 2^31.
    Wide(HashTable<u32>),
}

fn widen(value: u16) -> u32 {
    let copy = if value & NARROW_COPY != 0 { APP_COPY } else { 0 };
    u32::from(value & !NARROW_COPY) | copy
}

/// `value` as a narrow value; the caller checked its slot is below [`NARROW_SLOTS`].
fn narrow(value: u32) -> u16 {
    let copy = if value & APP_COPY != 0 { NARROW_COPY } else { 0 };
    ((value & !APP_COPY) as u16) | copy
}

fn fits_narrow(value: u32) -> bool {
    value & !APP_COPY < NARROW_SLOTS
}

impl Default for SlotTable {
    fn default() -> Self {
        Self::Narrow(HashTable::new())
    }
}

impl SlotTable {
    /// The first value under `hash` that `eq` accepts. Cost: O(1) expected.
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        match self {
            Self::Narrow(t) => t.find(hash, |&v| eq(widen(v))).map(|&v| widen(v)),
            Self::Wide(t) => t.find(hash, |&v| eq(v)).copied(),
        }
    }

    /// Every value that may have been inserted under `hash` (and others: the caller filters).
    pub fn iter_hash(&self, hash: u64) -> Values<'_> {
        match self {
            Self::Narrow(t) => Values::Narrow(t.iter_hash(hash)),
            Self::Wide(t) => Values::Wide(t.iter_hash(hash)),
        }
    }

    /// Inserts `value` under `hash`; `hasher` gives the hash any held value was inserted under
    /// (for growth). Widens the table first when `value`'s slot does not fit a narrow one.
    /// Cost: O(1) amortized; O(n) once, when the table widens.
    pub fn insert(&mut self, hash: u64, value: u32, hasher: impl Fn(u32) -> u64) {
        if let Self::Narrow(t) = self
            && !fits_narrow(value)
        {
            let mut wide = HashTable::with_capacity(t.len() + 1);
            for &v in t.iter() {
                let v = widen(v);
                wide.insert_unique(hasher(v), v, |&w| hasher(w));
            }
            *self = Self::Wide(wide);
        }
        match self {
            Self::Narrow(t) => {
                t.insert_unique(hash, narrow(value), |&v| hasher(widen(v)));
            }
            Self::Wide(t) => {
                t.insert_unique(hash, value, |&v| hasher(v));
            }
        }
    }

    /// Removes `value` from under `hash`; whether it was there.
    pub fn remove(&mut self, hash: u64, value: u32) -> bool {
        match self {
            Self::Narrow(t) => {
                fits_narrow(value) && t.find_entry(hash, |&v| v == narrow(value)).map(|e| e.remove()).is_ok()
            }
            Self::Wide(t) => t.find_entry(hash, |&v| v == value).map(|e| e.remove()).is_ok(),
        }
    }

    /// Empties the table, sized for `slots` slots: narrow when they all fit.
    pub fn reset_for(&mut self, slots: usize) {
        *self = if slots <= NARROW_SLOTS as usize {
            Self::Narrow(HashTable::with_capacity(slots))
        } else {
            Self::Wide(HashTable::with_capacity(slots))
        };
    }

    /// Makes room for `additional` more values without growing (in the present width).
    pub fn reserve(&mut self, additional: usize, hasher: impl Fn(u32) -> u64) {
        match self {
            Self::Narrow(t) => t.reserve(additional, |&v| hasher(widen(v))),
            Self::Wide(t) => t.reserve(additional, |&v| hasher(v)),
        }
    }

    /// Gives back spare capacity.
    pub fn shrink_to_fit(&mut self, hasher: impl Fn(u32) -> u64) {
        match self {
            Self::Narrow(t) => t.shrink_to_fit(|&v| hasher(widen(v))),
            Self::Wide(t) => t.shrink_to_fit(|&v| hasher(v)),
        }
    }

    /// Bytes allocated.
    pub fn allocation_size(&self) -> usize {
        match self {
            Self::Narrow(t) => t.allocation_size(),
            Self::Wide(t) => t.allocation_size(),
        }
    }

    /// Values held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        match self {
            Self::Narrow(t) => t.len(),
            Self::Wide(t) => t.len(),
        }
    }

    /// Whether values are 4 bytes.
    #[cfg(test)]
    pub fn is_wide(&self) -> bool {
        matches!(self, Self::Wide(_))
    }
}

/// The values of [`SlotTable::iter_hash`].
pub(crate) enum Values<'a> {
    Narrow(IterHash<'a, u16>),
    Wide(IterHash<'a, u32>),
}

impl Iterator for Values<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Self::Narrow(i) => i.next().map(|&v| widen(v)),
            Self::Wide(i) => i.next().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(value: u32) -> u64 {
        // Few distinct hashes, so values collide and the caller's filtering is exercised.
        u64::from((value & !APP_COPY) % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn values_and_copies_survive_widening_and_removal() {
        let mut table = SlotTable::default();
        let held: Vec<u32> = (0..NARROW_SLOTS + 10).flat_map(|s| [s, s | APP_COPY]).collect();
        for (n, &v) in held.iter().enumerate() {
            table.insert(hash(v), v, hash);
            assert_eq!(table.is_wide(), v & !APP_COPY >= NARROW_SLOTS, "after {n} inserts");
        }
        assert_eq!(table.len(), held.len());
        for &v in &held {
            assert_eq!(table.find(hash(v), |w| w == v), Some(v));
            assert!(table.iter_hash(hash(v)).any(|w| w == v));
        }
        for &v in held.iter().step_by(3) {
            assert!(table.remove(hash(v), v));
            assert!(!table.remove(hash(v), v), "a value is removed once");
        }
        for (n, &v) in held.iter().enumerate() {
            assert_eq!(table.find(hash(v), |w| w == v).is_some(), n % 3 != 0);
        }
    }

    #[test]
    fn a_narrow_table_takes_three_bytes_a_bucket() {
        let mut narrow = SlotTable::default();
        let mut wide = SlotTable::Wide(HashTable::new());
        for s in 0..1000 {
            narrow.insert(hash(s), s, hash);
            wide.insert(hash(s), s, hash);
        }
        narrow.shrink_to_fit(hash);
        wide.shrink_to_fit(hash);
        assert!(!narrow.is_wide());
        // 2048 buckets (hashbrown rounds to a power of two) plus a group of control bytes.
        assert!(narrow.allocation_size() < 3 * 2048 + 64, "{}", narrow.allocation_size());
        assert!(wide.allocation_size() >= 5 * 2048, "{}", wide.allocation_size());
        // Removing what it does not hold changes nothing.
        assert!(!narrow.remove(hash(5000), 5000));
        assert!(!narrow.remove(hash(NARROW_SLOTS), NARROW_SLOTS), "a slot a narrow table cannot hold");
        assert_eq!(narrow.len(), 1000);
    }

    #[test]
    fn a_reset_table_is_as_narrow_as_its_slots() {
        let mut table = SlotTable::default();
        table.reset_for(NARROW_SLOTS as usize + 1);
        assert!(table.is_wide());
        table.reset_for(100);
        assert!(!table.is_wide());
    }
}
