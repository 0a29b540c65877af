//! The in-memory index, rebuilt on open: per feed (each behind its own lock), the live
//! notifications by position, by id and by `appNotificationId` hash (one hash table for both:
//! the store draws each id so that its key is its app id's hash, see [`keyed_id`]), group
//! membership, the remembered removals and swept expirations; and a global expiry order
//! (`expiry.rs`: about 4 bytes per notification in a window a sweep has not reached), so a
//! sweep is O(expired).
//!
//! Entries are compact (50 bytes): a record location, hashes and the few fields reads filter
//! on; strings stay on disk (but group names, once per feed: `groups.rs`). The hash table
//! holds 2-byte slots while a feed's slots fit (`slot_table.rs`). A hash match is always
//! confirmed against the full id, or against the record for `appNotificationId`s.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::expiry::{ExpiryOrder, Opened};
use super::groups::Groups;
use super::head_cache::HeadSlot;
use super::prefetch::prefetch;
use super::slot_table::{APP_COPY, SlotTable};
use crate::model::{Platforms, ReadState, UserActionState};
use crate::{NotificationId, RemovalReason};

const DEAD: u8 = 0x80;

/// A notification's index fields, unpacked, with its app-id hash: what recovery, appends and
/// the snapshot hand to [`FeedIndex::insert`] and [`FeedIndex::from_parts`], which pack it
/// into an [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryFields {
    /// The notification id.
    pub id: [u8; 16],
    /// Its position (sequence of its last append or replacement).
    pub position: u64,
    /// The sequence of its last change.
    pub sequence: u64,
    /// Its expiration, Unix nanoseconds.
    pub expiration: i64,
    /// The segment of its latest record.
    pub segment: u32,
    /// The offset of that record.
    pub offset: u32,
    /// The length of that record's frame (at most [`MAX_ENTRY_LEN`]).
    pub len: u32,
    /// [`app_hash`] of its `appNotificationId`.
    pub app_hash: u32,
    /// Its group in the feed's group table (0: no group).
    pub group: u32,
    /// Platform bits (4).
    pub platforms: u8,
    /// Bit 0 read, bits 1..=2 action state, bit 7 dead.
    pub states: u8,
}

/// The longest frame an entry records: 22 bits, above any frame (a body is at most 1 MiB).
pub(crate) const MAX_ENTRY_LEN: u32 = (1 << 22) - 1;
const _: () = assert!(super::record::MAX_BODY_LEN + super::record::FRAME_HEADER_LEN <= MAX_ENTRY_LEN as usize);

const LEN_BITS: u32 = 22;
const PLATFORM_SHIFT: u32 = LEN_BITS;
const STATES_SHIFT: u32 = LEN_BITS + 4;
const DEAD_BIT: u32 = 1 << 31;

/// One notification in the index: 50 bytes (2-byte aligned, so no padding). Its app-id hash
/// is not here: it is the id key for ids the store draws ([`keyed_id`]), and the feed keeps it
/// aside for others. Its sequence is kept as a 32-bit distance from its position (both count
/// the store's records, so a state change lands far from the append it changes), and its group
/// as a 16-bit id; the rare entry whose value does not fit has it in the feed's
/// [`FeedIndex`] aside, found by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(2))]
pub(crate) struct Entry {
    /// The notification id.
    pub id: [u8; 16],
    /// Its position (sequence of its last append or replacement).
    pub position: u64,
    /// Its expiration, Unix nanoseconds.
    pub expiration: i64,
    /// The segment of its latest record.
    pub segment: u32,
    /// The offset of that record.
    pub offset: u32,
    /// The sequence of its last change less its position; [`WIDE_SEQUENCE`] when that does not
    /// fit (the feed holds the sequence aside).
    sequence_delta: u32,
    /// Its group in the feed's group table (0: no group); [`WIDE_GROUP`] when the group's id
    /// does not fit (the feed holds it aside).
    group: u16,
    /// Bits 0..22 the record's frame length, 22..26 platform bits, 26..29 the states (read,
    /// action), 31 dead.
    packed: u32,
}

/// The `sequence_delta` of an entry whose sequence its feed keeps aside.
const WIDE_SEQUENCE: u32 = u32::MAX;
/// The `group` of an entry whose group id its feed keeps aside.
const WIDE_GROUP: u16 = u16::MAX;

impl Entry {
    fn pack(fields: &EntryFields) -> Self {
        let states = u32::from(fields.states & 0x7);
        let dead = if fields.states & DEAD != 0 { DEAD_BIT } else { 0 };
        Self {
            id: fields.id,
            position: fields.position,
            expiration: fields.expiration,
            segment: fields.segment,
            offset: fields.offset,
            group: short_group(fields.group),
            sequence_delta: sequence_delta(fields.position, fields.sequence),
            packed: (fields.len & MAX_ENTRY_LEN)
                | (u32::from(fields.platforms & 0xF) << PLATFORM_SHIFT)
                | (states << STATES_SHIFT)
                | dead,
        }
    }

    /// Its sequence when it fits beside its position (`None`: ask the feed).
    fn short_sequence(&self) -> Option<u64> {
        let (position, delta) = (self.position, self.sequence_delta);
        (delta != WIDE_SEQUENCE).then(|| position + u64::from(delta))
    }

    /// Its group id when it fits in the entry (`None`: ask the feed).
    fn short_group(&self) -> Option<u32> {
        (self.group != WIDE_GROUP).then_some(u32::from(self.group))
    }

    /// The fields, with `app_hash`, `sequence` and `group` filled in by the caller.
    fn unpack(&self, app_hash: u32, sequence: u64, group: u32) -> EntryFields {
        EntryFields {
            id: self.id,
            position: self.position,
            sequence,
            expiration: self.expiration,
            segment: self.segment,
            offset: self.offset,
            len: self.len(),
            app_hash,
            group,
            platforms: self.platforms(),
            states: self.states(),
        }
    }

    /// Packs the two states into the `states` byte.
    pub fn pack_states(read: ReadState, action: UserActionState) -> u8 {
        let r = u8::from(read == ReadState::Read);
        let a = match action {
            UserActionState::NoInteraction => 0,
            UserActionState::Activated => 1,
            UserActionState::Dismissed => 2,
            UserActionState::Snoozed => 3,
        };
        r | (a << 1)
    }

    /// The length of its record's frame.
    pub fn len(&self) -> u32 {
        self.packed & MAX_ENTRY_LEN
    }

    /// Platform bits.
    pub fn platforms(&self) -> u8 {
        ((self.packed >> PLATFORM_SHIFT) & 0xF) as u8
    }

    /// The states byte: bit 0 read, bits 1..=2 action state, bit 7 dead.
    pub fn states(&self) -> u8 {
        let dead = if self.packed & DEAD_BIT != 0 { DEAD } else { 0 };
        ((self.packed >> STATES_SHIFT) & 0x7) as u8 | dead
    }

    fn set_states(&mut self, states: u8) {
        let dead = if states & DEAD != 0 { DEAD_BIT } else { 0 };
        self.packed = (self.packed & ((1 << STATES_SHIFT) - 1)) | (u32::from(states & 0x7) << STATES_SHIFT) | dead;
    }

    fn set_len(&mut self, len: u32) {
        self.packed = (self.packed & !MAX_ENTRY_LEN) | (len & MAX_ENTRY_LEN);
    }

    /// The read state.
    pub fn read_state(&self) -> ReadState {
        if self.states() & 1 == 1 { ReadState::Read } else { ReadState::Unread }
    }

    /// The action state.
    pub fn user_action_state(&self) -> UserActionState {
        UserActionState::ALL[usize::from((self.states() >> 1) & 3)]
    }

    /// Whether it was removed (a hole awaiting compaction).
    pub fn is_dead(&self) -> bool {
        self.packed & DEAD_BIT != 0
    }

    /// Whether it is live at `now_nanos`.
    pub fn is_live(&self, now_nanos: i64) -> bool {
        !self.is_dead() && self.expiration > now_nanos
    }

    /// The short key of its id used by the expiry order.
    pub fn id_key(&self) -> u32 {
        id_key(&self.id)
    }
}

/// The short key of an id (ids are random, so any bits hash well).
pub(crate) fn id_key(id: &[u8; 16]) -> u32 {
    u32::from_le_bytes([id[0], id[1], id[2], id[3]]) ^ u32::from_le_bytes([id[12], id[13], id[14], id[15]])
}

/// `sequence - position` when it fits below [`WIDE_SEQUENCE`], else [`WIDE_SEQUENCE`].
fn sequence_delta(position: u64, sequence: u64) -> u32 {
    sequence
        .checked_sub(position)
        .and_then(|d| u32::try_from(d).ok())
        .filter(|&d| d != WIDE_SEQUENCE)
        .unwrap_or(WIDE_SEQUENCE)
}

/// `group` when it fits below [`WIDE_GROUP`], else [`WIDE_GROUP`].
fn short_group(group: u32) -> u16 {
    u16::try_from(group).ok().filter(|&g| g != WIDE_GROUP).unwrap_or(WIDE_GROUP)
}

/// The hash of an `appNotificationId`: the low 32 bits of its XXH3-64 (a fixed, specified
/// algorithm: the index snapshot stores these hashes).
pub(crate) fn app_hash(app_notification_id: &str) -> u32 {
    app_hash_of_bytes(app_notification_id.as_bytes())
}

/// [`app_hash`] of an `appNotificationId`'s bytes.
pub(crate) fn app_hash_of_bytes(app_notification_id: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64(app_notification_id) as u32
}

/// A 32-bit key (an id key, an app-id hash, a group name's hash) spread to the 64 bits a
/// hash table wants.
pub(crate) fn spread(key: u32) -> u64 {
    u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The hash a table value was inserted under.
fn stored_hash(entries: &[Entry], app_hashes: &Option<Vec<u32>>, value: u32) -> u64 {
    let slot = (value & !APP_COPY) as usize;
    spread(if value & APP_COPY != 0 { app_hash_at(entries, app_hashes, slot) } else { entries[slot].id_key() })
}

/// The app-id hash of the entry at `slot`: its id key, unless the feed keeps app hashes aside.
fn app_hash_at(entries: &[Entry], app_hashes: &Option<Vec<u32>>, slot: usize) -> u32 {
    match app_hashes {
        Some(hashes) => hashes[slot],
        None => entries[slot].id_key(),
    }
}

/// `random` with its last 4 bytes set so that its [`id_key`] is `app_hash`: the store draws
/// ids this way, so one table slot finds a notification by id and by `appNotificationId`
/// (an id drawn otherwise, by an older version, takes a second slot). 96 bits stay random,
/// and the UUID's version and variant bits are untouched.
pub(crate) fn keyed_id(random: [u8; 16], app_hash: u32) -> [u8; 16] {
    let mut id = random;
    let head = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    id[12..16].copy_from_slice(&(head ^ app_hash).to_le_bytes());
    id
}

/// A count of a feed's expired entries, taken at `as_of` and kept exact since: an entry added
/// or removed since is counted in or out by its expiration. It answers for any later time
/// before `next_expiration` (the earliest expiration after `as_of` of any entry counted), since
/// until then no entry's state changes.
#[derive(Clone, Copy, Debug)]
struct LiveCount {
    as_of: i64,
    /// Held entries whose expiration is at or before `as_of`.
    expired: usize,
    /// No held entry expires after `as_of` and before this (a lower bound: removals leave it).
    next_expiration: i64,
}

impl LiveCount {
    fn add(&mut self, expiration: i64) {
        if expiration <= self.as_of {
            self.expired += 1;
        } else {
            self.next_expiration = self.next_expiration.min(expiration);
        }
    }

    fn remove(&mut self, expiration: i64) {
        if expiration <= self.as_of {
            self.expired = self.expired.saturating_sub(1);
        }
    }

    /// The expired entries at `now`, when this count can tell.
    fn expired_at(&self, now: i64) -> Option<usize> {
        (self.as_of <= now && now < self.next_expiration).then_some(self.expired)
    }
}

/// One feed's index as the index snapshot holds it (`snapshot.rs`): what
/// [`FeedIndex::from_parts`] rebuilds the hash tables and group counts from.
#[derive(Debug, Default)]
pub(crate) struct FeedParts {
    /// Held entries (not dead), in position order.
    pub entries: Vec<EntryFields>,
    /// The group table: slot `g - 1` names group `g`; an empty name is a free slot.
    pub group_names: Vec<Box<str>>,
    /// Remembered removals, in sequence order.
    pub removals: Vec<(u64, [u8; 16], RemovalReason)>,
    /// Remembered swept expirations.
    pub swept: Vec<(i64, [u8; 16])>,
    /// The feed's latest sequence.
    pub latest_sequence: u64,
    /// The highest sequence of a forgotten removal.
    pub forgotten_removals_through: u64,
    /// The latest forgotten expiration time.
    pub forgotten_expirations_through: i64,
}

/// One feed's index.
#[derive(Debug)]
pub(crate) struct FeedIndex {
    entries: Vec<Entry>,
    dead: usize,
    /// Slots below this are all dead (removed from the front, as evictions and expirations
    /// remove): where [`FeedIndex::oldest_first`] starts.
    dead_prefix: usize,
    /// `(slot, as_of)`: every entry before `slot` is dead or expired at `as_of`, so at any later
    /// time: where a search for the oldest live entry (an evicting append's) starts, instead of
    /// walking the expired entries a sweep has not yet taken, again at each append. Dropped
    /// when slots move (an insert in place, a compaction).
    expired_front: Option<(usize, i64)>,
    /// Slots by id key, and by app-id hash where that differs: see [`keyed_id`].
    by_key: SlotTable,
    /// `None` while every entry's id key is its app-id hash; else the app-id hash of each
    /// entry, slot for slot (a feed holding ids drawn before [`keyed_id`]: 4 bytes an entry, as
    /// before ids were keyed).
    app_hashes: Option<Vec<u32>>,
    /// Entries held (not dead) whose id key is not their app-id hash.
    unkeyed: usize,
    /// The sequences of held entries whose sequence lies more than 2^32 - 2 past their
    /// position (a notification changed four billion records of the store after it was
    /// written): empty in practice, and allocated only when not.
    wide_sequences: HashMap<[u8; 16], u64>,
    /// Group ids of the entries whose group id does not fit an entry's 16 bits (in a feed that
    /// has held 2^16 - 1 groups at once), by notification id.
    wide_groups: HashMap<[u8; 16], u32>,
    /// How many held entries had expired at some time, kept exact as entries come and go
    /// (`None`: not known, after a rebuild from a snapshot). See [`LiveCount`].
    live_count: Option<LiveCount>,
    groups: Groups,
    removals: VecDeque<(u64, [u8; 16], RemovalReason)>,
    swept: VecDeque<(i64, [u8; 16])>,
    /// The feed's latest sequence.
    pub latest_sequence: u64,
    /// The highest sequence of a forgotten removal.
    pub forgotten_removals_through: u64,
    /// The latest forgotten expiration time.
    pub forgotten_expirations_through: i64,
}

/// What a feed's index occupies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedIndexBytes {
    /// Bytes of the per-notification structures (entries, hash tables, expiry order share is
    /// counted by the caller).
    pub notification_bytes: usize,
    /// Bytes of the change logs (removals, swept expirations).
    pub change_log_bytes: usize,
    /// Live-or-expired entries held.
    pub entries: usize,
}

impl FeedIndex {
    /// An empty feed whose sequence starts at `latest_sequence`.
    pub fn new(latest_sequence: u64, forgotten_removals_through: u64, forgotten_expirations_through: i64) -> Self {
        Self {
            entries: Vec::new(),
            dead: 0,
            dead_prefix: 0,
            expired_front: None,
            by_key: SlotTable::default(),
            app_hashes: None,
            unkeyed: 0,
            wide_sequences: HashMap::new(),
            wide_groups: HashMap::new(),
            // Nothing is held, so nothing has expired, whenever that is asked.
            live_count: Some(LiveCount { as_of: i64::MIN, expired: 0, next_expiration: i64::MAX }),
            groups: Groups::default(),
            removals: VecDeque::new(),
            swept: VecDeque::new(),
            latest_sequence,
            forgotten_removals_through,
            forgotten_expirations_through,
        }
    }

    /// Rebuilds a feed from a snapshot's parts: hash tables, group member counts and the free
    /// group slots are derived, not trusted. Cost: O(entries).
    ///
    /// # Errors
    /// What makes the parts inconsistent (positions out of order, a duplicate id, a group that
    /// names no slot or an empty one): the snapshot is then not used.
    pub fn from_parts(parts: FeedParts) -> Result<Self, String> {
        let mut f = FeedIndex::new(
            parts.latest_sequence,
            parts.forgotten_removals_through,
            parts.forgotten_expirations_through,
        );
        let mut counts = vec![0u32; parts.group_names.len()];
        for (i, e) in parts.entries.iter().enumerate() {
            if i > 0 && parts.entries[i - 1].position >= e.position {
                return Err(format!("positions out of order at entry {i}"));
            }
            if e.states & DEAD != 0 {
                return Err(format!("entry {i} is marked removed"));
            }
            if e.len > MAX_ENTRY_LEN {
                return Err(format!("entry {i} claims a record of {} bytes", e.len));
            }
            if e.group != 0 {
                let slot = (e.group - 1) as usize;
                if parts.group_names.get(slot).is_none_or(|n| n.is_empty()) {
                    return Err(format!("entry {i} names group {} that the table does not hold", e.group));
                }
                counts[slot] += 1;
            }
        }
        f.entries = parts.entries.iter().map(Entry::pack).collect();
        f.live_count = None;
        for (e, fields) in f.entries.iter().zip(&parts.entries) {
            if e.short_sequence().is_none() {
                f.wide_sequences.insert(fields.id, fields.sequence);
            }
            if e.short_group().is_none() {
                f.wide_groups.insert(fields.id, fields.group);
            }
        }
        f.unkeyed = parts.entries.iter().filter(|e| e.app_hash != id_key(&e.id)).count();
        if f.unkeyed > 0 {
            f.app_hashes = Some(parts.entries.iter().map(|e| e.app_hash).collect());
        }
        f.by_key.reset_for(f.entries.len());
        for slot in 0..f.entries.len() {
            if f.slot_of(&f.entries[slot].id).is_some() {
                return Err(format!("notification {} is held twice", notification_id(&f.entries[slot])));
            }
            f.link(slot as u32);
        }
        for (name, count) in parts.group_names.into_iter().zip(counts) {
            if count > 0 && f.groups.lookup(&name).is_some() {
                return Err(format!("group {name:?} is held in two slots"));
            }
            f.groups.adopt(&name, count);
        }
        f.removals = parts.removals.into();
        f.swept = parts.swept.into();
        Ok(f)
    }

    /// The group table (slot `g - 1` names group `g`; an empty name is a free slot), as the
    /// snapshot stores it.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.slot_names()
    }

    /// Held entries (not dead), in position order.
    pub fn held_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| !e.is_dead())
    }

    /// Held entries unpacked, with their app-id hashes (for the snapshot), in position order.
    pub fn held_fields(&self) -> impl Iterator<Item = EntryFields> + '_ {
        self.oldest_first().map(|s| self.entries[s].unpack(self.app_hash_at(s), self.sequence(s), self.group_at(s)))
    }

    /// The group id of the entry at `slot` (0: no group).
    pub fn group_at(&self, slot: usize) -> u32 {
        let e = &self.entries[slot];
        e.short_group().unwrap_or_else(|| {
            let found = self.wide_groups.get(&e.id).copied();
            debug_assert!(found.is_some(), "a wide group is kept aside");
            found.unwrap_or(0)
        })
    }

    /// The sequence of the last change of the entry at `slot`.
    pub fn sequence(&self, slot: usize) -> u64 {
        let e = &self.entries[slot];
        e.short_sequence().unwrap_or_else(|| {
            let found = self.wide_sequences.get(&e.id).copied();
            debug_assert!(found.is_some(), "a wide sequence is kept aside");
            found.unwrap_or(e.position)
        })
    }

    /// Sets the sequence of the entry at `slot`, keeping it aside when it does not fit.
    fn set_sequence(&mut self, slot: usize, sequence: u64) {
        let e = &mut self.entries[slot];
        let was_wide = e.short_sequence().is_none();
        e.sequence_delta = sequence_delta(e.position, sequence);
        let id = e.id;
        if e.short_sequence().is_none() {
            self.wide_sequences.insert(id, sequence);
        } else if was_wide {
            self.wide_sequences.remove(&id);
        }
    }

    /// The app-id hash of the entry at `slot`.
    pub fn app_hash_at(&self, slot: usize) -> u32 {
        app_hash_at(&self.entries, &self.app_hashes, slot)
    }

    /// The entry at `slot`.
    pub fn entry(&self, slot: usize) -> &Entry {
        &self.entries[slot]
    }

    /// The slot of the entry with this id, dead or not... only non-dead entries are in the
    /// tables.
    pub fn slot_of(&self, id: &[u8; 16]) -> Option<usize> {
        let entries = &self.entries;
        self.by_key.find(spread(id_key(id)), |v| v & APP_COPY == 0 && entries[v as usize].id == *id).map(|v| v as usize)
    }

    /// Slots whose id key is `key` (for the sweep).
    pub fn slots_with_id_key(&self, key: u32) -> impl Iterator<Item = usize> + '_ {
        let entries = &self.entries;
        self.by_key
            .iter_hash(spread(key))
            .filter(move |&v| v & APP_COPY == 0 && entries[v as usize].id_key() == key)
            .map(|v| v as usize)
    }

    /// Slots whose `appNotificationId` hashes to `hash`.
    pub fn slots_with_app_hash(&self, hash: u32) -> impl Iterator<Item = usize> + '_ {
        let (entries, app_hashes) = (&self.entries, &self.app_hashes);
        // An entry is found once: by its copy when it has one, else where its id key put it.
        self.by_key
            .iter_hash(spread(hash))
            .filter(move |&v| {
                let slot = (v & !APP_COPY) as usize;
                app_hash_at(entries, app_hashes, slot) == hash && (v & APP_COPY != 0 || entries[slot].id_key() == hash)
            })
            .map(|v| (v & !APP_COPY) as usize)
    }

    /// The group id of `name` (`None` when no entry has that group).
    pub fn group_id(&self, name: &str) -> Option<u32> {
        self.groups.lookup(name)
    }

    /// Hints into the cache what an insert will read first: the last entry, and the group
    /// table when the entry has a group (`grouped`). Their misses then overlap the caller's
    /// work before the insert (`prefetch.rs`). Changes nothing.
    pub fn warm_for_insert(&self, grouped: bool) {
        if let Some(last) = self.entries.last() {
            prefetch(last);
        }
        if grouped {
            self.groups.warm();
        }
    }

    /// Adds an entry; `group` is its group name. Entries usually arrive in position order; an
    /// older position (salvage) is inserted in place at O(n) cost.
    pub fn insert(&mut self, mut fields: EntryFields, group: Option<&str>) {
        fields.group = group.map_or(0, |g| self.groups.intern(g));
        fields.states &= !DEAD;
        debug_assert!(fields.len <= MAX_ENTRY_LEN, "a frame longer than any record");
        if fields.app_hash != id_key(&fields.id) {
            self.unkeyed += 1;
            if self.app_hashes.is_none() {
                self.app_hashes = Some(self.entries.iter().map(Entry::id_key).collect());
            }
        }
        let entry = Entry::pack(&fields);
        if let Some(count) = self.live_count.as_mut() {
            count.add(fields.expiration);
        }
        if entry.short_sequence().is_none() {
            self.wide_sequences.insert(fields.id, fields.sequence);
        }
        if entry.short_group().is_none() {
            self.wide_groups.insert(fields.id, fields.group);
        }
        if self.entries.last().is_none_or(|last| last.position < entry.position) {
            self.entries.push(entry);
            if let Some(hashes) = self.app_hashes.as_mut() {
                hashes.push(fields.app_hash);
            }
            let slot = (self.entries.len() - 1) as u32;
            self.link(slot);
        } else {
            let at = self.entries.partition_point(|e| e.position < entry.position);
            self.entries.insert(at, entry);
            self.dead_prefix = self.dead_prefix.min(at);
            self.expired_front = None;
            if let Some(hashes) = self.app_hashes.as_mut() {
                hashes.insert(at, fields.app_hash);
            }
            self.rebuild_tables();
        }
    }

    fn link(&mut self, slot: u32) {
        debug_assert!(slot & APP_COPY == 0, "a feed holds fewer than 2^31 entries");
        let (entries, app_hashes) = (&self.entries, &self.app_hashes);
        let key = entries[slot as usize].id_key();
        self.by_key.insert(spread(key), slot, |v| stored_hash(entries, app_hashes, v));
        let app = app_hash_at(entries, app_hashes, slot as usize);
        if app != key {
            self.by_key.insert(spread(app), slot | APP_COPY, |v| stored_hash(entries, app_hashes, v));
        }
    }

    fn rebuild_tables(&mut self) {
        self.by_key.reset_for(self.entries.len());
        for slot in 0..self.entries.len() {
            if !self.entries[slot].is_dead() {
                self.link(slot as u32);
            }
        }
    }

    /// Removes the entry at `slot` and returns it. Slots of other entries may change.
    pub fn remove(&mut self, slot: usize) -> Entry {
        let e = self.entries[slot];
        let s32 = slot as u32;
        self.by_key.remove(spread(e.id_key()), s32);
        let app = self.app_hash_at(slot);
        if app != e.id_key() {
            self.by_key.remove(spread(app), s32 | APP_COPY);
            self.unkeyed -= 1;
            if self.unkeyed == 0 {
                // Every entry held has its app hash as id key again (dead slots need none).
                self.app_hashes = None;
            }
        }
        self.groups.release(self.group_at(slot));
        if e.short_group().is_none() {
            self.wide_groups.remove(&e.id);
        }
        if e.short_sequence().is_none() {
            self.wide_sequences.remove(&e.id);
        }
        if let Some(count) = self.live_count.as_mut() {
            count.remove(e.expiration);
        }
        let states = e.states() | DEAD;
        self.entries[slot].set_states(states);
        self.dead += 1;
        while self.entries.get(self.dead_prefix).is_some_and(Entry::is_dead) {
            self.dead_prefix += 1;
        }
        if self.dead > 16 && self.dead * 2 > self.entries.len() {
            if let Some(hashes) = self.app_hashes.as_mut() {
                let mut held = self.entries.iter().map(|e| !e.is_dead());
                hashes.retain(|_| held.next().unwrap_or(false));
            }
            self.entries.retain(|e| !e.is_dead());
            self.dead = 0;
            self.dead_prefix = 0;
            self.expired_front = None;
            self.rebuild_tables();
            if self.entries.capacity() > self.entries.len() * 2 {
                self.entries.shrink_to_fit();
            }
        }
        e
    }

    /// Updates an entry's record location, sequence and states in place (a state change).
    pub fn update_in_place(&mut self, slot: usize, location: (u32, u32, u32), sequence: u64, states: u8) {
        self.relocate(slot, location);
        self.entries[slot].set_states(states);
        self.set_sequence(slot, sequence);
    }

    /// Points an entry at a copy of its record (compaction): `(segment, offset, len)`.
    pub fn relocate(&mut self, slot: usize, location: (u32, u32, u32)) {
        let e = &mut self.entries[slot];
        (e.segment, e.offset) = (location.0, location.1);
        e.set_len(location.2);
    }

    /// Non-dead slots, newest position first, starting below `before_position`.
    pub fn newest_first(&self, before_position: Option<u64>) -> impl Iterator<Item = usize> + '_ {
        let end = before_position.map_or(self.entries.len(), |p| self.entries.partition_point(|e| e.position < p));
        (0..end).rev().filter(|&s| !self.entries[s].is_dead())
    }

    /// Non-dead slots, oldest position first.
    pub fn oldest_first(&self) -> impl Iterator<Item = usize> + '_ {
        (self.dead_prefix..self.entries.len()).filter(|&s| !self.entries[s].is_dead())
    }

    /// The slot of the oldest entry live at `now_nanos` (the one an append to a full feed
    /// evicts). Amortized O(1) while time does not go back: it starts where the last search
    /// found every earlier entry dead or expired, so expired entries that no sweep has taken yet
    /// are walked once, not at each call.
    pub fn oldest_live(&mut self, now_nanos: i64) -> Option<usize> {
        let from = match self.expired_front {
            Some((slot, as_of)) if as_of <= now_nanos => slot.max(self.dead_prefix),
            _ => self.dead_prefix,
        };
        let entries = &self.entries;
        let found = (from..entries.len()).find(|&s| entries[s].is_live(now_nanos));
        self.expired_front = Some((found.unwrap_or(entries.len()), now_nanos));
        found
    }

    /// Non-dead entries held (live or expired but not yet swept).
    pub fn held(&self) -> usize {
        self.entries.len() - self.dead
    }

    /// Whether at least `n` held entries are live at `now_nanos` (an append to a full feed
    /// asks, to know whether it evicts). O(1) from the kept count while no held entry's
    /// expiration lies between the time it was taken and `now_nanos`; else one pass over the
    /// entries, which takes the count again at `now_nanos`.
    pub fn live_at_least(&mut self, n: usize, now_nanos: i64) -> bool {
        let held = self.held();
        if held < n {
            return false;
        }
        if let Some(expired) = self.live_count.as_ref().and_then(|c| c.expired_at(now_nanos)) {
            return held.saturating_sub(expired) >= n;
        }
        let mut count = LiveCount { as_of: now_nanos, expired: 0, next_expiration: i64::MAX };
        for slot in self.oldest_first() {
            count.add(self.entries[slot].expiration);
        }
        let expired = count.expired;
        self.live_count = Some(count);
        held.saturating_sub(expired) >= n
    }

    /// Whether an entry's platforms intersect `platforms`... matches one platform filter.
    pub fn platforms_of(&self, slot: usize) -> Platforms {
        Platforms::from_bits(self.entries[slot].platforms())
    }

    /// Remembers an explicit removal, forgetting the oldest beyond `capacity`.
    pub fn log_removal(&mut self, sequence: u64, id: [u8; 16], reason: RemovalReason, capacity: usize) {
        self.removals.push_back((sequence, id, reason));
        while self.removals.len() > capacity {
            if let Some((s, _, _)) = self.removals.pop_front() {
                self.forgotten_removals_through = self.forgotten_removals_through.max(s);
            }
        }
    }

    /// Remembers a removal carried forward by a sweep: kept in sequence order, once.
    pub fn remember_removal(&mut self, sequence: u64, id: [u8; 16], reason: RemovalReason, capacity: usize) {
        if sequence <= self.forgotten_removals_through {
            return;
        }
        match self.removals.binary_search_by_key(&sequence, |r| r.0) {
            Ok(_) => {}
            Err(at) => self.removals.insert(at, (sequence, id, reason)),
        }
        while self.removals.len() > capacity {
            if let Some((s, _, _)) = self.removals.pop_front() {
                self.forgotten_removals_through = self.forgotten_removals_through.max(s);
            }
        }
    }

    /// The remembered removals.
    pub fn removals(&self) -> impl Iterator<Item = &(u64, [u8; 16], RemovalReason)> {
        self.removals.iter()
    }

    /// Remembers a swept expiration.
    pub fn log_swept(&mut self, expiration: i64, id: [u8; 16]) {
        self.swept.push_back((expiration, id));
    }

    /// Forgets swept expirations that expired at or before `through`.
    pub fn forget_swept_through(&mut self, through: i64) {
        let mut forgotten = self.forgotten_expirations_through;
        self.swept.retain(|&(t, _)| {
            if t <= through {
                forgotten = forgotten.max(t);
                false
            } else {
                true
            }
        });
        self.forgotten_expirations_through = forgotten;
    }

    /// The remembered swept expirations.
    pub fn swept(&self) -> impl Iterator<Item = &(i64, [u8; 16])> {
        self.swept.iter()
    }

    /// Makes room for `additional` more entries (recovery, before replaying a feed).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
        let (entries, app_hashes) = (&self.entries, &self.app_hashes);
        self.by_key.reserve(additional, |v| stored_hash(entries, app_hashes, v));
    }

    /// Gives back spare capacity (after recovery).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        let (entries, app_hashes) = (&self.entries, &self.app_hashes);
        self.by_key.shrink_to_fit(|v| stored_hash(entries, app_hashes, v));
        if let Some(hashes) = self.app_hashes.as_mut() {
            hashes.shrink_to_fit();
        }
        self.groups.shrink_to_fit();
    }

    /// Memory held.
    pub fn bytes(&self) -> FeedIndexBytes {
        FeedIndexBytes {
            notification_bytes: self.entries.capacity() * std::mem::size_of::<Entry>()
                + self.by_key.allocation_size()
                + self.app_hashes.as_ref().map_or(0, |h| h.capacity() * std::mem::size_of::<u32>())
                + self.groups.bytes()
                + self.wide_sequences.capacity() * (std::mem::size_of::<([u8; 16], u64)>() + 1)
                + self.wide_groups.capacity() * (std::mem::size_of::<([u8; 16], u32)>() + 1),
            change_log_bytes: self.removals.capacity() * std::mem::size_of::<(u64, [u8; 16], RemovalReason)>()
                + self.swept.capacity() * std::mem::size_of::<(i64, [u8; 16])>(),
            entries: self.held(),
        }
    }
}

/// A feed's lock and its number in the expiry order.
#[derive(Debug)]
pub(crate) struct FeedCell {
    /// Its number.
    pub number: u32,
    /// Its key.
    pub key: Box<str>,
    /// Its index.
    pub index: RwLock<FeedIndex>,
    /// Its newest page, decoded (`head_cache.rs`).
    pub head: HeadSlot,
}

const SHARDS: usize = 64;

/// The feeds of one shard, found by the hash of their key (computed once per lookup: its bits
/// 32..38 choose the shard, and the table uses its low and top bits).
type Shard = RwLock<hashbrown::HashTable<Arc<FeedCell>>>;

/// The whole index: feeds sharded by key, and the expiry order.
#[derive(Debug)]
pub(crate) struct Index {
    shards: Vec<Shard>,
    /// Hashes feed keys, for both the shard and the table in it.
    key_hasher: foldhash::fast::RandomState,
    feeds: RwLock<Vec<Arc<FeedCell>>>,
    expiry: Mutex<ExpiryOrder>,
    /// What new feeds start with: (latest sequence, forgotten removals, forgotten expirations).
    new_feed_horizon: (u64, u64, i64),
}

impl Index {
    /// An empty index; new feeds start at `new_feed_horizon`; expirations are bucketed by
    /// windows `window_nanos` wide (the store's).
    pub fn new(new_feed_horizon: (u64, u64, i64), window_nanos: i64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(hashbrown::HashTable::new())).collect(),
            key_hasher: foldhash::fast::RandomState::default(),
            feeds: RwLock::new(Vec::new()),
            expiry: Mutex::new(ExpiryOrder::new(window_nanos)),
            new_feed_horizon,
        }
    }

    /// The hash of feed key `key` and the shard that holds it.
    fn shard_of(&self, key: &str) -> (u64, &Shard) {
        let hash = self.key_hasher.hash_one(key);
        (hash, &self.shards[(hash >> 32) as usize % SHARDS])
    }

    /// Changes the horizon of feeds created from now on (recovery sets it once replay is done).
    pub fn set_new_feed_horizon(&mut self, horizon: (u64, u64, i64)) {
        self.new_feed_horizon = horizon;
    }

    /// What a feed that was never written starts with.
    pub fn new_feed_horizon(&self) -> (u64, u64, i64) {
        self.new_feed_horizon
    }

    /// The feed named `key`, if it has ever been written since open.
    pub fn feed(&self, key: &str) -> Option<Arc<FeedCell>> {
        let (hash, shard) = self.shard_of(key);
        shard.read().find(hash, |cell| *cell.key == *key).cloned()
    }

    /// The feed named `key`, created when missing.
    pub fn feed_or_create(&self, key: &str) -> Arc<FeedCell> {
        let (hash, shard) = self.shard_of(key);
        if let Some(cell) = shard.read().find(hash, |cell| *cell.key == *key) {
            return Arc::clone(cell);
        }
        let mut shard = shard.write();
        if let Some(cell) = shard.find(hash, |cell| *cell.key == *key) {
            return Arc::clone(cell);
        }
        let mut feeds = self.feeds.write();
        let (seq, removed, expired) = self.new_feed_horizon;
        let cell = Arc::new(FeedCell {
            number: feeds.len() as u32,
            key: key.into(),
            index: RwLock::new(FeedIndex::new(seq, removed, expired)),
            head: HeadSlot::default(),
        });
        feeds.push(Arc::clone(&cell));
        shard.insert_unique(hash, Arc::clone(&cell), |cell| self.key_hasher.hash_one(&*cell.key));
        cell
    }

    /// Indexes a new feed `key` holding `feed` (recovery from a snapshot). `None` when
    /// `key` is already indexed.
    pub fn adopt_feed(&self, key: &str, feed: FeedIndex) -> Option<Arc<FeedCell>> {
        if self.feed(key).is_some() {
            return None;
        }
        let cell = self.feed_or_create(key);
        *cell.index.write() = feed;
        Some(cell)
    }

    /// The feed with `number`.
    pub fn feed_by_number(&self, number: u32) -> Option<Arc<FeedCell>> {
        self.feeds.read().get(number as usize).cloned()
    }

    /// Every feed.
    pub fn all_feeds(&self) -> Vec<Arc<FeedCell>> {
        self.feeds.read().clone()
    }

    /// Records that the entry with id key `new.1` of feed `feed` expires at `new.0`, and first
    /// takes back (as [`Index::forget_expiry`]) what was recorded for `old` (an entry's
    /// expiration and id key) when given: what an append, an append that evicts, or a
    /// replacement changes, under one lock of the order. Called under the feed's lock, once the
    /// new entry is in the feed. Cost: O(1) amortized (O(log n) in a window a sweep has
    /// reached).
    pub fn change_expiry(&self, feed: u32, old: Option<(i64, u32)>, new: (i64, u32)) {
        let mut order = self.expiry.lock();
        if let Some((expiration, id_key)) = old {
            order.forget(expiration, feed, id_key);
        }
        order.expect(new.0, feed, new.1);
    }

    /// [`Index::change_expiry`]'s record of expirations for many notifications at once (after
    /// recovery): O(n).
    pub fn expect_expiries(&self, elements: Vec<(i64, u32, u32)>) {
        self.expiry.lock().expect_many(elements);
    }

    /// Takes back what [`Index::change_expiry`] recorded for an entry being replaced or
    /// removed, under the feed's lock, so the order's size follows the number of notifications,
    /// not of replacements. Cost: amortized O(1).
    pub fn forget_expiry(&self, expiration: i64, feed: u32, id_key: u32) {
        self.expiry.lock().forget(expiration, feed, id_key);
    }

    /// Takes every expected expiry at or before `now`, oldest first: `(expiration, feed, id
    /// key)`, less the forgotten ones. The caller confirms each against the feed (an id key is
    /// a hash, and an element may outlive its notification). Cost: O(expired), plus a lookup
    /// per notification of each window reached for the first time (which expire within that
    /// window).
    pub fn take_expiring_through(&self, now: i64) -> Vec<(i64, u32, u32)> {
        let opened = self.expiry.lock().open_through(now);
        // Should a lookup unwind (a bug), what was taken goes back rather than being lost.
        let mut opening = Opening { order: &self.expiry, opened: Some(opened) };
        for (window, elements) in opening.opened.iter().flatten() {
            // Elements come sorted by feed: one lookup and one lock per feed.
            for run in elements.chunk_by(|a, b| a.0 == b.0) {
                let feed = run[0].0;
                let Some(cell) = self.feed_by_number(feed) else { continue };
                // The feed's lock is held while its notifications join the heap: a removal
                // (which forgets under this lock) comes wholly before or after.
                let f = cell.index.read();
                let mut expiry = self.expiry.lock();
                // Copies of one element (notifications of one id key) need one lookup.
                for same in run.chunk_by(|a, b| a == b) {
                    let key = same[0].1;
                    for slot in f.slots_with_id_key(key) {
                        let expiration = f.entry(slot).expiration;
                        if expiry.window_of(expiration) == *window {
                            expiry.push_opened(expiration, feed, key);
                        }
                    }
                }
            }
        }
        opening.opened = None;
        let mut expiry = self.expiry.lock();
        expiry.finish_opening();
        expiry.pop_through(now)
    }

    /// Gives back the expiry order's spare capacity (after recovery).
    pub fn shrink_expiry_to_fit(&self) {
        self.expiry.lock().shrink_to_fit();
    }

    /// Bytes of the expiry order, by capacity.
    pub fn expiry_bytes(&self) -> usize {
        self.expiry.lock().bytes()
    }
}

/// An opening of the expiry order in progress: abandoned (its elements put back) if dropped
/// before it is finished.
struct Opening<'a> {
    order: &'a Mutex<ExpiryOrder>,
    opened: Option<Opened>,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let Some(opened) = self.opened.take() {
            self.order.lock().abandon_opening(opened);
        }
    }
}

/// The notification id of an entry.
pub(crate) fn notification_id(entry: &Entry) -> NotificationId {
    NotificationId::from_bytes(entry.id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(n: u8, position: u64) -> EntryFields {
        EntryFields {
            id: [n; 16],
            position,
            sequence: position,
            expiration: 1_000,
            segment: 1,
            offset: 32,
            len: 10,
            app_hash: app_hash(&format!("app-{n}")),
            group: 0,
            platforms: 0b1111,
            states: 0,
        }
    }

    #[test]
    fn an_entry_takes_50_bytes_and_keeps_every_field() {
        assert_eq!(std::mem::size_of::<Entry>(), 50);
        for (len, platforms, states) in [(0, 0, 0), (MAX_ENTRY_LEN, 0b1111, 0b111), (1_048_596, 0b1010, 0b101)] {
            let mut fields = entry(7, 9);
            (fields.len, fields.platforms, fields.states) = (len, platforms, states);
            let packed = Entry::pack(&fields);
            assert_eq!(packed.short_sequence(), Some(fields.sequence));
            assert_eq!(packed.unpack(fields.app_hash, fields.sequence, fields.group), fields);
            assert!(!packed.is_dead());
            let mut dead = packed;
            dead.set_states(states | DEAD);
            assert!(dead.is_dead());
            assert_eq!((dead.len(), dead.platforms(), dead.states()), (len, platforms, states | DEAD));
        }
    }

    #[test]
    fn a_sequence_far_from_its_position_is_kept_aside_and_given_back() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        let far = 10 + u64::from(u32::MAX);
        let mut wide = entry(1, 10);
        wide.sequence = far;
        f.insert(wide, None);
        f.insert(entry(2, 20), None);
        let (s1, s2) = (f.slot_of(&[1; 16]).unwrap(), f.slot_of(&[2; 16]).unwrap());
        assert_eq!((f.sequence(s1), f.sequence(s2)), (far, 20));
        assert_eq!(f.held_fields().next().map(|e| e.sequence), Some(far));
        // Sequences count the whole store's records, so a state change lands far from its
        // append: a million records later stays in the entry.
        f.update_in_place(s2, (1, 64, 10), 20 + (1 << 20), 0);
        assert_eq!((f.wide_sequences.len(), f.sequence(s2)), (1, 20 + (1 << 20)));
        // The longest distance that fits stays in the entry; one more goes aside.
        f.update_in_place(s2, (1, 64, 10), 20 + u64::from(u32::MAX) - 1, 0);
        assert_eq!(f.wide_sequences.len(), 1);
        f.update_in_place(s2, (1, 64, 10), 20 + u64::from(u32::MAX), 0);
        assert_eq!((f.wide_sequences.len(), f.sequence(s2)), (2, 20 + u64::from(u32::MAX)));
        // Back within reach, or removed: nothing is kept aside.
        f.update_in_place(s1, (1, 96, 10), 11, 1);
        assert_eq!((f.sequence(s1), f.wide_sequences.len()), (11, 1));
        f.remove(s2);
        assert!(f.wide_sequences.is_empty());
        // A snapshot's parts carry it through.
        let mut parts = FeedParts { entries: vec![entry(3, 30)], ..FeedParts::default() };
        parts.entries[0].sequence = far + 30;
        let rebuilt = FeedIndex::from_parts(parts).unwrap();
        assert_eq!(rebuilt.sequence(0), far + 30);
        assert_eq!(rebuilt.held_fields().next().map(|e| e.sequence), Some(far + 30));
    }

    #[test]
    fn a_group_id_past_sixteen_bits_is_kept_aside_and_given_back() {
        // Group ids 1..=65,534 fit an entry; from 65,535 on the feed keeps them aside.
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        let groups = u32::from(WIDE_GROUP) + 2;
        for g in 1..=groups {
            let mut e = entry(0, u64::from(g));
            e.id[..4].copy_from_slice(&g.to_le_bytes());
            f.insert(e, Some(&format!("g{g}")));
        }
        assert_eq!(f.wide_groups.len(), 3);
        for g in [1, groups - 3, groups - 2, groups - 1, groups] {
            let slot = (g - 1) as usize;
            assert_eq!((f.group_id(&format!("g{g}")), f.group_at(slot)), (Some(g), g));
        }
        // The snapshot's fields and a rebuild from them keep every group.
        let fields: Vec<EntryFields> = f.held_fields().collect();
        assert!(fields.iter().enumerate().all(|(i, e)| e.group == i as u32 + 1));
        let names = f.group_names().map(Box::from).collect();
        let rebuilt = FeedIndex::from_parts(FeedParts { entries: fields, group_names: names, ..FeedParts::default() });
        let rebuilt = rebuilt.unwrap();
        assert_eq!((rebuilt.wide_groups.len(), rebuilt.group_at((groups - 1) as usize)), (3, groups));
        // Removing an entry frees its group and what was kept aside for it.
        let slot = f.slot_of(&f.entry((groups - 1) as usize).id).unwrap();
        f.remove(slot);
        assert_eq!((f.wide_groups.len(), f.group_id(&format!("g{groups}"))), (2, None));
        // A new group takes the freed id, aside again.
        let mut e = entry(0, u64::from(groups) + 1);
        e.id[..4].copy_from_slice(&(groups + 1).to_le_bytes());
        f.insert(e, Some("new"));
        assert_eq!((f.group_id("new"), f.wide_groups.len()), (Some(groups), 3));
    }

    #[test]
    fn live_counts_follow_expirations_and_removals_exactly() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for (n, expiration) in [(1u8, 500i64), (2, 100), (3, 900)] {
            let mut e = entry(n, u64::from(n) * 10);
            e.expiration = expiration;
            f.insert(e, None);
        }
        assert!(f.live_at_least(3, 99));
        assert!(!f.live_at_least(4, 99));
        // At 100 the second has expired (an expiration is the first instant it is gone).
        assert!(!f.live_at_least(3, 100));
        assert!(f.live_at_least(2, 100));
        // The count taken at 100 answers until 500 without a pass.
        let count = f.live_count.unwrap();
        assert_eq!((count.as_of, count.expired, count.next_expiration), (100, 1, 500));
        assert!(f.live_at_least(2, 499));
        // Removing the expired one counts it out; removing a live one changes nothing there.
        let slot = f.slot_of(&[2; 16]).unwrap();
        f.remove(slot);
        assert_eq!(f.live_count.unwrap().expired, 0);
        assert!(f.live_at_least(2, 499));
        assert!(!f.live_at_least(2, 500));
        assert!(f.live_at_least(1, 500));
        // An entry already expired when counted is counted in; one expiring later bounds it.
        let mut old = entry(4, 40);
        old.expiration = 300;
        f.insert(old, None);
        assert_eq!(f.live_count.unwrap().expired, 2);
        assert!(f.live_at_least(1, 899));
        assert!(!f.live_at_least(2, 899));
        let mut soon = entry(5, 50);
        soon.expiration = 950;
        f.insert(soon, None);
        assert_eq!(f.live_count.unwrap().next_expiration, 900);
        // Time running backwards takes the count again.
        assert!(f.live_at_least(4, 299));
        assert_eq!(f.live_count.unwrap().as_of, 299);
    }

    proptest::proptest! {
        /// Whatever the inserts, removals and (mostly forward) times asked, the kept count
        /// answers as a full count would.
        #[test]
        fn the_kept_live_count_agrees_with_a_full_count(
            steps in proptest::collection::vec((0..3u8, 0..40i64, 0..8usize), 1..200)
        ) {
            let mut f = FeedIndex::new(0, 0, i64::MIN);
            let (mut next, mut now) = (0u32, 0i64);
            for (op, value, n) in steps {
                match op {
                    0 => {
                        next += 1;
                        let mut e = entry(0, u64::from(next));
                        e.id[..4].copy_from_slice(&next.to_le_bytes());
                        e.app_hash = id_key(&e.id);
                        e.expiration = now - 5 + value;
                        f.insert(e, None);
                    }
                    1 => {
                        let held: Vec<usize> = f.oldest_first().collect();
                        if !held.is_empty() {
                            f.remove(held[usize::try_from(value).unwrap_or(0) % held.len()]);
                        }
                    }
                    _ => {
                        now += value - 3;
                        let live = f.oldest_first().filter(|&s| f.entry(s).is_live(now)).count();
                        proptest::prop_assert_eq!(f.live_at_least(n, now), live >= n, "at {}", now);
                    }
                }
            }
        }
    }

    #[test]
    fn the_oldest_held_entry_is_found_past_the_removed_front() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for n in 1..=5 {
            f.insert(entry(n, u64::from(n) * 10), None);
        }
        let slot_of = |f: &FeedIndex, n: u8| f.slot_of(&[n; 16]).unwrap();
        f.remove(slot_of(&f, 1));
        f.remove(slot_of(&f, 4));
        assert_eq!(f.dead_prefix, 1, "a hole in the middle does not move the front");
        f.remove(slot_of(&f, 2));
        assert_eq!(f.dead_prefix, 2);
        let held: Vec<u64> = f.oldest_first().map(|s| f.entry(s).position).collect();
        assert_eq!(held, vec![30, 50]);
        f.remove(slot_of(&f, 3));
        assert_eq!(f.dead_prefix, 4, "past the hole left earlier");
        // An older position arriving (salvage) is found again.
        f.insert(entry(6, 5), None);
        let held: Vec<u64> = f.oldest_first().map(|s| f.entry(s).position).collect();
        assert_eq!(held, vec![5, 50]);
        assert_eq!(f.newest_first(None).map(|s| f.entry(s).position).collect::<Vec<_>>(), vec![50, 5]);
    }

    #[test]
    fn the_oldest_live_entry_is_found_past_expired_ones_and_agrees_with_a_full_scan() {
        // Entries 1..=40 at positions 10, 20, ...; the odd ones expire at 100, the even ones
        // at 1_000 + n.
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for n in 1..=40u8 {
            let mut e = entry(n, u64::from(n) * 10);
            e.expiration = if n % 2 == 1 { 100 } else { 1_000 + i64::from(n) };
            f.insert(e, None);
        }
        let scan = |f: &FeedIndex, now: i64| f.oldest_first().find(|&s| f.entry(s).is_live(now));
        let mut checks = 0;
        // Time moves on, then back, while the oldest live entry is evicted at each step (as an
        // append to a full feed does), an older position arrives in place, and removals
        // compact the entries.
        for (step, now) in [50, 150, 150, 1_004, 1_004, 60, 1_010, 1_010, 1_020, 2_000].into_iter().enumerate() {
            if step == 6 {
                let mut e = entry(99, 5);
                e.expiration = 5_000;
                f.insert(e, None);
            }
            let expected = scan(&f, now);
            assert_eq!(f.oldest_live(now), expected, "step {step} at {now}");
            checks += 1;
            if let Some(slot) = expected {
                f.remove(slot);
            }
        }
        assert_eq!(checks, 10);
        assert_eq!(f.oldest_live(2_000), None, "the entry at position 5 was evicted, the rest expired");
        // Past the found front, a new entry is found.
        let mut e = entry(100, 1_000);
        e.expiration = 9_000;
        f.insert(e, None);
        assert_eq!(f.oldest_live(2_000).map(|s| f.entry(s).position), Some(1_000));
        // Removals that compact the entries move every slot down: the search starts over.
        let before = f.entries.len();
        while f.entries.len() == before {
            let oldest = f.oldest_first().next().unwrap();
            assert_ne!({ f.entry(oldest).position }, 1_000);
            f.remove(oldest);
        }
        assert_eq!(f.oldest_live(2_000).map(|s| f.entry(s).position), Some(1_000));
    }

    #[test]
    fn a_feed_past_two_to_the_fifteen_entries_finds_every_one() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        let id = |n: u32| {
            let mut id = [0u8; 16];
            id[4..8].copy_from_slice(&n.to_le_bytes());
            keyed_id(id, app_hash(&format!("app-{n}")))
        };
        let count = 40_000u32;
        for n in 0..count {
            let mut e = entry(0, u64::from(n) + 1);
            (e.id, e.app_hash) = (id(n), app_hash(&format!("app-{n}")));
            f.insert(e, None);
        }
        assert!(f.by_key.is_wide());
        for n in (0..count).step_by(7) {
            let slot = f.slot_of(&id(n)).unwrap();
            assert_eq!({ f.entry(slot).position }, u64::from(n) + 1);
            assert_eq!(f.slots_with_app_hash(app_hash(&format!("app-{n}"))).collect::<Vec<_>>(), vec![slot]);
        }
        // Removing most compacts the entries, and the rebuilt table is narrow again.
        for n in 0..count - 100 {
            let slot = f.slot_of(&id(n)).unwrap();
            f.remove(slot);
        }
        assert_eq!(f.held(), 100);
        assert!(!f.by_key.is_wide());
        for n in count - 100..count {
            assert!(f.slot_of(&id(n)).is_some());
        }
        assert!(f.slot_of(&id(0)).is_none());
    }

    #[test]
    fn entries_are_found_by_id_and_app_hash_and_listed_newest_first() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for n in 1..=5 {
            f.insert(entry(n, u64::from(n) * 10), Some(if n % 2 == 0 { "even" } else { "odd" }));
        }
        let slot = f.slot_of(&[3; 16]).unwrap();
        assert_eq!({ f.entry(slot).position }, 30);
        assert_eq!(f.slots_with_app_hash(app_hash("app-4")).count(), 1);
        let order: Vec<u64> = f.newest_first(None).map(|s| f.entry(s).position).collect();
        assert_eq!(order, vec![50, 40, 30, 20, 10]);
        let below: Vec<u64> = f.newest_first(Some(30)).map(|s| f.entry(s).position).collect();
        assert_eq!(below, vec![20, 10]);
        assert!(f.group_id("even").is_some());
    }

    #[test]
    fn a_keyed_id_has_its_app_hash_as_key_and_stays_a_version_4_uuid() {
        for n in 0..100u32 {
            let hash = app_hash(&format!("app-{n}"));
            let id = keyed_id(NotificationId::new_random().to_bytes(), hash);
            assert_eq!(id_key(&id), hash);
            assert_eq!(uuid::Uuid::from_bytes(id).get_version_num(), 4);
            assert_eq!(uuid::Uuid::from_bytes(id).get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn parts_claiming_a_record_longer_than_any_frame_are_refused() {
        let mut long = entry(1, 1);
        long.len = MAX_ENTRY_LEN + 1;
        let parts = FeedParts { entries: vec![long], ..FeedParts::default() };
        assert!(FeedIndex::from_parts(parts).is_err_and(|e| e.contains("claims a record of")));
    }

    #[test]
    fn keyed_and_unkeyed_entries_are_each_found_once_by_id_and_by_app_hash() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        let mut ids = Vec::new();
        for n in 1..=200u32 {
            // Four app hashes shared by 50 entries each; every other id keyed.
            let hash = app_hash(&format!("app-{}", n % 4));
            let random = NotificationId::new_random().to_bytes();
            let id = if n % 2 == 0 { keyed_id(random, hash) } else { random };
            let mut e = entry(0, u64::from(n));
            (e.id, e.app_hash) = (id, hash);
            f.insert(e, None);
            ids.push(id);
        }
        let check = |f: &FeedIndex, ids: &[[u8; 16]]| {
            for id in ids {
                let slot = f.slot_of(id).expect("found by id");
                assert_eq!(f.entry(slot).id, *id);
                assert_eq!(f.slots_with_id_key(id_key(id)).filter(|&s| f.entry(s).id == *id).count(), 1);
            }
            for k in 0..4 {
                let hash = app_hash(&format!("app-{k}"));
                let mut found: Vec<[u8; 16]> = f.slots_with_app_hash(hash).map(|s| f.entry(s).id).collect();
                found.sort_unstable();
                let before = found.len();
                found.dedup();
                assert_eq!(found.len(), before, "an entry came out twice");
                assert_eq!(found.len(), f.held_fields().filter(|e| e.app_hash == hash).count());
            }
        };
        check(&f, &ids);
        // Removing most (which compacts the entries and rebuilds the table) keeps it right.
        for id in ids.drain(..150) {
            let slot = f.slot_of(&id).expect("held");
            f.remove(slot);
            assert!(f.slot_of(&id).is_none());
        }
        f.shrink_to_fit();
        check(&f, &ids);
        // An older position inserted in place (salvage) keeps the app hashes aligned.
        let hash = app_hash("app-1");
        let mut older = entry(0, 0);
        (older.id, older.app_hash) = (NotificationId::new_random().to_bytes(), hash);
        f.insert(older, None);
        ids.push(older.id);
        check(&f, &ids);
        // Once no unkeyed id is held, the app hashes are dropped, and keyed ids go on working.
        for id in ids.drain(..) {
            let slot = f.slot_of(&id).expect("held");
            f.remove(slot);
        }
        for n in 1..=40u32 {
            let hash = app_hash(&format!("app-{}", n % 4));
            let mut e = entry(0, 1_000 + u64::from(n));
            (e.id, e.app_hash) = (keyed_id(NotificationId::new_random().to_bytes(), hash), hash);
            f.insert(e, None);
            ids.push(e.id);
        }
        assert!(f.app_hashes.is_none(), "no unkeyed id is held");
        check(&f, &ids);
    }

    #[test]
    fn removed_entries_disappear_and_compaction_keeps_lookups_right() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for n in 1..=100u8 {
            f.insert(entry(n, u64::from(n)), Some("g"));
        }
        for n in 1..=80u8 {
            let slot = f.slot_of(&[n; 16]).unwrap();
            f.remove(slot);
        }
        assert_eq!(f.held(), 20);
        assert!(f.slot_of(&[10; 16]).is_none());
        for n in 81..=100u8 {
            let slot = f.slot_of(&[n; 16]).unwrap();
            assert_eq!(f.entry(slot).id, [n; 16]);
        }
        for n in 81..=100u8 {
            let slot = f.slot_of(&[n; 16]).unwrap();
            f.remove(slot);
        }
        assert!(f.group_id("g").is_none(), "a group with no members is forgotten");
    }

    #[test]
    fn removal_log_forgets_the_oldest_beyond_capacity() {
        let mut f = FeedIndex::new(0, 0, i64::MIN);
        for s in 1..=5 {
            f.log_removal(s, [1; 16], RemovalReason::Deleted, 3);
        }
        assert_eq!(f.removals().count(), 3);
        assert_eq!(f.forgotten_removals_through, 2);
    }

    #[test]
    fn states_pack_and_unpack() {
        for a in UserActionState::ALL {
            for r in [ReadState::Unread, ReadState::Read] {
                let mut e = Entry::pack(&entry(1, 1));
                e.set_states(Entry::pack_states(r, a));
                assert_eq!((e.read_state(), e.user_action_state()), (r, a));
                assert!(!e.is_dead());
            }
        }
    }
}
