//! A feed's group names, interned: each name is held once, and entries name their group by a
//! small id (`g`, held in slot `g - 1`; 0 is no group).
//!
//! Laid out for the append path, whose feed index is usually cold in the cache. The names sit
//! back to back in one arena and each slot says where its name is, with a 32-bit hash of it.
//! Up to [`LINEAR_GROUPS`] slots are searched by scanning their hashes, so a lookup reads two
//! allocations whose addresses the feed itself holds (the slots, then the arena) instead of
//! following a chain of four dependent loads (a hash table's control bytes, its bucket, a name's
//! box, the name). [`Groups::warm`] hints both into the cache early in an append, so that their
//! misses overlap the append's other work. A feed with more groups finds them through a hash
//! table of ids.
//!
//! A slot frees when its last member goes; its name's bytes stay in the arena as garbage until
//! the garbage outweighs the names held, when the arena is rewritten (O(names held)).

use hashbrown::HashTable;

use super::index::spread;
use super::prefetch::prefetch;

/// Slots searched by a scan of their hashes; past this many, through a hash table.
const LINEAR_GROUPS: usize = 16;

/// The arena is rewritten when its garbage exceeds both this and the bytes of the names held.
const MIN_GARBAGE: usize = 256;

/// One group: where its name is in the arena, its hash, and its member count (0: a free slot).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    hash: u32,
    start: u32,
    len: u32,
    count: u32,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Slot `g - 1`: group `g`.
    slots: Vec<Slot>,
    /// The names of the slots, back to back, with garbage left by freed slots.
    arena: String,
    /// Bytes of the arena that no held slot names.
    garbage: usize,
    /// Group ids by the hash of their name, once there are more than [`LINEAR_GROUPS`] slots.
    table: Option<HashTable<u32>>,
    /// Free slots' ids.
    free: Vec<u32>,
}

fn name_hash(name: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
}

impl Groups {
    /// The id of group `name`, with one more member (a new slot when none has that name).
    /// O(1) amortized.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = name_hash(name);
        if let Some(g) = self.find(hash, name) {
            self.slots[(g - 1) as usize].count += 1;
            return g;
        }
        let slot = self.hold(hash, name, 1);
        let g = match self.free.pop() {
            Some(g) => {
                self.slots[(g - 1) as usize] = slot;
                g
            }
            None => {
                self.slots.push(slot);
                self.slots.len() as u32
            }
        };
        self.link(g);
        g
    }

    /// Group `g` (0: none) has one member fewer; its slot frees with its last member.
    pub fn release(&mut self, g: u32) {
        if g == 0 {
            return;
        }
        let Some(slot) = self.slots.get_mut((g - 1) as usize) else { return };
        if slot.count == 0 {
            return;
        }
        slot.count -= 1;
        if slot.count > 0 {
            return;
        }
        let hash = slot.hash;
        self.garbage += slot.len as usize;
        *slot = Slot::default();
        if let Some(table) = self.table.as_mut()
            && let Ok(found) = table.find_entry(spread(hash), |&h| h == g)
        {
            found.remove();
        }
        self.free.push(g);
    }

    /// The id of group `name`, if any entry is in it.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.find(name_hash(name), name)
    }

    /// Adds the next slot: group `name` with `count` members (a snapshot's; 0: a free slot).
    /// The caller makes sure no held slot has that name.
    pub fn adopt(&mut self, name: &str, count: u32) {
        let g = self.slots.len() as u32 + 1;
        if count == 0 {
            self.slots.push(Slot::default());
            self.free.push(g);
        } else {
            let slot = self.hold(name_hash(name), name, count);
            self.slots.push(slot);
            self.link(g);
        }
    }

    /// Hints the slots and the start of the names into the cache, so that the misses of a
    /// lookup to come overlap other work (`prefetch.rs`). Changes nothing.
    pub fn warm(&self) {
        if self.table.is_none() {
            // One hint per cache line of slots (4 slots of 16 bytes a line).
            for slot in self.slots.iter().step_by(4) {
                prefetch(slot);
            }
        }
        if let Some(byte) = self.arena.as_bytes().first() {
            prefetch(byte);
        }
    }

    /// The group table as the snapshot stores it: each slot's name, empty for a free slot.
    pub fn slot_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|slot| if slot.count == 0 { "" } else { self.name_of(slot) })
    }

    /// Gives back spare capacity, and the arena's garbage.
    pub fn shrink_to_fit(&mut self) {
        if self.garbage > 0 {
            self.rewrite_arena();
        }
        self.slots.shrink_to_fit();
        self.arena.shrink_to_fit();
        self.free.shrink_to_fit();
        let slots = &self.slots;
        if let Some(table) = self.table.as_mut() {
            table.shrink_to_fit(|&g| spread(slots[(g - 1) as usize].hash));
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.arena.capacity()
            + self.table.as_ref().map_or(0, HashTable::allocation_size)
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    fn name_of(&self, slot: &Slot) -> &str {
        let start = slot.start as usize;
        self.arena.get(start..start + slot.len as usize).unwrap_or("")
    }

    fn find(&self, hash: u32, name: &str) -> Option<u32> {
        let held = |slot: &Slot| slot.hash == hash && slot.count > 0 && self.name_of(slot) == name;
        match &self.table {
            None => self.slots.iter().position(held).map(|i| i as u32 + 1),
            Some(table) => table.find(spread(hash), |&g| held(&self.slots[(g - 1) as usize])).copied(),
        }
    }

    /// A slot for `name`, its bytes appended to the arena (rewritten first when mostly garbage).
    fn hold(&mut self, hash: u32, name: &str, count: u32) -> Slot {
        if self.garbage > MIN_GARBAGE && self.garbage > self.arena.len() - self.garbage {
            self.rewrite_arena();
        }
        let start = self.arena.len() as u32;
        self.arena.push_str(name);
        Slot { hash, start, len: name.len() as u32, count }
    }

    /// Copies the held names into a new arena, dropping the garbage. O(names held).
    fn rewrite_arena(&mut self) {
        let mut arena = String::with_capacity(self.arena.len() - self.garbage);
        for i in 0..self.slots.len() {
            let slot = self.slots[i];
            if slot.count == 0 {
                continue;
            }
            let start = arena.len() as u32;
            arena.push_str(self.name_of(&slot));
            self.slots[i].start = start;
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Makes group `g` findable: through the table when there is one, or once the slots
    /// outgrow a scan, by building it.
    fn link(&mut self, g: u32) {
        let slots = &self.slots;
        match self.table.as_mut() {
            Some(table) => {
                table.insert_unique(spread(slots[(g - 1) as usize].hash), g, |&h| spread(slots[(h - 1) as usize].hash));
            }
            None if slots.len() > LINEAR_GROUPS => {
                let mut table = HashTable::with_capacity(slots.len());
                for (i, slot) in slots.iter().enumerate().filter(|(_, slot)| slot.count > 0) {
                    table.insert_unique(spread(slot.hash), i as u32 + 1, |&h| spread(slots[(h - 1) as usize].hash));
                }
                self.table = Some(table);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(groups: &Groups) -> Vec<&str> {
        groups.slot_names().collect()
    }

    #[test]
    fn a_name_is_interned_once_and_counted_per_member() {
        let mut groups = Groups::default();
        assert_eq!((groups.intern("a"), groups.intern("b"), groups.intern("a")), (1, 2, 1));
        assert_eq!(groups.lookup("a"), Some(1));
        assert_eq!(groups.lookup("ab"), None);
        groups.release(1);
        assert_eq!(groups.lookup("a"), Some(1), "one member is left");
        groups.release(1);
        assert_eq!(groups.lookup("a"), None, "a group with no members is forgotten");
        assert_eq!(names(&groups), ["", "b"]);
        assert_eq!(groups.intern("c"), 1, "a free slot is reused");
        assert_eq!(names(&groups), ["c", "b"]);
    }

    #[test]
    fn releasing_no_group_or_an_unknown_one_changes_nothing() {
        let mut groups = Groups::default();
        groups.intern("a");
        for g in [0, 2, 99] {
            groups.release(g);
        }
        groups.release(1);
        groups.release(1);
        assert_eq!((groups.lookup("a"), groups.free.len()), (None, 1), "a free slot is freed once");
    }

    #[test]
    fn past_a_scan_groups_are_found_through_a_table_and_stay_found() {
        let mut groups = Groups::default();
        let count = LINEAR_GROUPS * 4;
        for i in 0..count {
            assert_eq!(groups.intern(&format!("group {i}")), i as u32 + 1);
            assert_eq!(groups.table.is_some(), i >= LINEAR_GROUPS, "after {} slots", i + 1);
        }
        for i in 0..count {
            assert_eq!(groups.lookup(&format!("group {i}")), Some(i as u32 + 1));
        }
        for g in (1..=count as u32).step_by(2) {
            groups.release(g);
        }
        for i in 0..count {
            let expected = (i % 2 == 1).then_some(i as u32 + 1);
            assert_eq!(groups.lookup(&format!("group {i}")), expected);
        }
        assert_eq!(groups.intern("new"), count as u32 - 1, "the last freed slot first");
        assert_eq!(groups.lookup("new"), Some(count as u32 - 1));
    }

    #[test]
    fn garbage_is_dropped_from_the_arena_and_names_stay_right() {
        let mut groups = Groups::default();
        let long = |i: usize| format!("{i:0>100}");
        groups.intern("kept");
        for round in 0..20 {
            let g = groups.intern(&long(round));
            groups.release(g);
            assert!(groups.arena.len() <= 2 * MIN_GARBAGE + 104 + 4, "round {round}: {} bytes", groups.arena.len());
        }
        assert_eq!(groups.lookup("kept"), Some(1));
        let g = groups.intern(&long(7));
        assert_eq!(groups.lookup(&long(7)), Some(g));
        groups.shrink_to_fit();
        assert_eq!((groups.garbage, groups.arena.as_str()), (0, format!("kept{}", long(7)).as_str()));
        assert_eq!((groups.lookup("kept"), groups.lookup(&long(7))), (Some(1), Some(g)));
    }

    #[test]
    fn adopted_slots_rebuild_the_table_a_snapshot_stored() {
        let mut before = Groups::default();
        for i in 0..(LINEAR_GROUPS + 3) {
            before.intern(&format!("g{i}"));
        }
        before.release(2);
        let mut after = Groups::default();
        for name in before.slot_names() {
            after.adopt(name, u32::from(!name.is_empty()));
        }
        assert_eq!(names(&after), names(&before));
        for i in 0..(LINEAR_GROUPS + 3) {
            assert_eq!(after.lookup(&format!("g{i}")), before.lookup(&format!("g{i}")), "g{i}");
        }
        assert_eq!(after.intern("fresh"), 2, "the free slot adopted is reused");
    }

    #[test]
    fn warming_changes_nothing() {
        let mut groups = Groups::default();
        groups.warm();
        groups.intern("a");
        groups.warm();
        assert_eq!((groups.lookup("a"), names(&groups)), (Some(1), vec!["a"]));
    }
}
