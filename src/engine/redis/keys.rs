//! Where a feed lives in Redis: key names, the `{feed}` hash tag, and the text forms of times
//! and ids that the Lua scripts compare.
//!
//! # Key layout (written down once; `scripts.rs` relies on the order of [`FeedKeys::all`])
//!
//! Every key of one feed is `<prefix>:{<feed>}:<suffix>`, where `<prefix>` is the configured key
//! prefix and `<feed>` the feed key, both with `%`, `{` and `}` percent-encoded so that the hash
//! tag is exactly the feed. All of a feed's keys therefore hash to one slot, and one Lua script
//! can change them atomically on one master.
//!
//! | # | suffix | type | content |
//! |---|--------|------|---------|
//! | 1 | `meta` | hash | `seq` latest sequence, `frr` highest forgotten removal sequence, `fet` latest forgotten expiration (time text), `maxexp` latest expiration ever appended (time text) |
//! | 2 | `notes` | hash | id → the notification sealed by [`crate::codec::seal_notification`] |
//! | 3 | `index` | hash | id → index record: `expiration (20) ‖ group member length (8 digits) ‖ group member prefix ‖ appNotificationId` |
//! | 4 | `positions` | sorted set | id scored by position (sequence of its last append or replacement) |
//! | 5 | `changed` | sorted set | id scored by the sequence of its last change |
//! | 6 | `removals` | sorted set | `id:reason` scored by the sequence of the removal (the removal log) |
//! | 7 | `apps` | hash | appNotificationId → id |
//! | 8 | `groups` | sorted set (lexical) | group member prefix ‖ id, one range per group: the group sets |
//! | 9 | `expiring` | sorted set (lexical) | expiration ‖ id of every stored notification: the per-feed expiry index |
//! | 10 | `expired` | sorted set (lexical) | expiration ‖ id of swept notifications: the expiry log `changes` reads |
//! | 11 | `unread` | set | ids whose read state is `Unread` |
//!
//! Ids are 32 lower-case hex digits. A *time text* is a timestamp in Unix nanoseconds plus 2^63,
//! as 20 zero-padded decimal digits, so that byte order is time order and Lua (whose numbers are
//! doubles) compares times exactly as strings. A *group member prefix* is
//! `<byte length of the group>:<group>:`, unique per group, so a group's members are one lexical
//! range.
//!
//! Sweeps find feeds through *expiry buckets*: `<prefix>:bucket:{<prefix>:<n>}` for `n` in
//! `0..expiry_buckets`, sorted sets of feed keys scored by (at most) the earliest expiration of
//! the feed in Unix milliseconds. A feed belongs to bucket `crc32(feed) % expiry_buckets`; the
//! bucket tags spread the buckets over every master.

use jiff::Timestamp;

use crate::clock::timestamp_to_nanos;
use crate::model::NotificationId;
use crate::store::FeedKey;

/// The text form of a time: Unix nanoseconds plus 2^63, 20 zero-padded digits.
pub(crate) fn time_text(t: Timestamp) -> String {
    nanos_text(timestamp_to_nanos(t))
}

/// [`time_text`] of raw Unix nanoseconds.
pub(crate) fn nanos_text(nanos: i64) -> String {
    format!("{:020}", (nanos as u64) ^ (1 << 63))
}

/// The inverse of [`nanos_text`]; `None` for anything else.
pub(crate) fn parse_time_text(text: &[u8]) -> Option<i64> {
    if text.len() != 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let biased: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    Some((biased ^ (1 << 63)) as i64)
}

/// An id as the scripts store it: 32 lower-case hex digits.
pub(crate) fn id_text(id: NotificationId) -> String {
    id.0.simple().to_string()
}

/// The inverse of [`id_text`].
pub(crate) fn parse_id_text(text: &[u8]) -> Option<NotificationId> {
    let text = std::str::from_utf8(text).ok()?;
    if text.len() != 32 {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(NotificationId)
}

/// The group member prefix of `group`: `<byte length>:<group>:`.
pub(crate) fn group_prefix(group: &str) -> String {
    format!("{}:{}:", group.len(), group)
}

/// Percent-encodes `%`, `{` and `}` so a name can neither open nor close a hash tag.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

/// The key names of everything a store keeps under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    prefix: String,
    buckets: u32,
}

impl Layout {
    pub(crate) fn new(prefix: &str, buckets: u32) -> Self {
        Self { prefix: escape(prefix), buckets: buckets.max(1) }
    }

    /// The keys of `feed`.
    pub(crate) fn feed(&self, feed: &FeedKey) -> FeedKeys {
        FeedKeys::new(&self.prefix, feed)
    }

    /// The expiry bucket `feed` belongs to.
    pub(crate) fn bucket_of(&self, feed: &FeedKey) -> String {
        self.bucket(crc32fast::hash(feed.as_str().as_bytes()) % self.buckets)
    }

    /// Expiry bucket number `n`.
    pub(crate) fn bucket(&self, n: u32) -> String {
        format!("{0}:bucket:{{{0}:{1}}}", self.prefix, n)
    }

    /// How many expiry buckets there are.
    pub(crate) fn bucket_count(&self) -> u32 {
        self.buckets
    }
}

/// The 11 keys of one feed, in the order the scripts receive them as `KEYS`.
#[derive(Clone, Debug)]
pub(crate) struct FeedKeys {
    keys: [String; 11],
}

/// The suffixes, in `KEYS` order (see the module doc).
const SUFFIXES: [&str; 11] =
    ["meta", "notes", "index", "positions", "changed", "removals", "apps", "groups", "expiring", "expired", "unread"];

impl FeedKeys {
    fn new(prefix: &str, feed: &FeedKey) -> Self {
        let base = format!("{}:{{{}}}:", prefix, escape(feed.as_str()));
        Self { keys: SUFFIXES.map(|suffix| format!("{base}{suffix}")) }
    }

    /// Every key, in `KEYS` order.
    pub(crate) fn all(&self) -> &[String; 11] {
        &self.keys
    }

    /// The meta key: routing commands (`WAIT`) to the feed's master uses it.
    pub(crate) fn meta(&self) -> &str {
        &self.keys[0]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn time_text_orders_like_time_and_round_trips() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_767_225_600_000_000_000, i64::MAX];
        let texts: Vec<String> = times.iter().map(|&t| nanos_text(t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        for (&t, text) in times.iter().zip(&texts) {
            assert_eq!(text.len(), 20);
            assert_eq!(parse_time_text(text.as_bytes()), Some(t));
        }
        assert_eq!(parse_time_text(b"12"), None);
    }

    #[test]
    fn every_key_of_a_feed_has_the_feed_as_hash_tag_even_with_braces() {
        let layout = Layout::new("ns{x}", 16);
        for name in ["user/app", "}{", "a}b", "{", "%7B"] {
            let feed = FeedKey::new(name).unwrap();
            let keys = layout.feed(&feed);
            let slots: Vec<Slot> = keys.all().iter().map(Slot::for_key).collect();
            assert!(slots.iter().all(|&s| s == slots[0]), "{name}: {slots:?}");
            let tag = hash_tag(keys.meta());
            assert_eq!(tag, escape(name), "{name}");
        }
        let a = layout.feed(&FeedKey::new("}{").unwrap());
        let b = layout.feed(&FeedKey::new("%7D%7B").unwrap());
        assert_ne!(a.meta(), b.meta(), "escaping is injective");
    }

    #[test]
    fn group_prefixes_never_prefix_one_another() {
        let a = group_prefix("a");
        let b = group_prefix("a:1");
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
    }

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open + 1..].find('}').unwrap();
        &key[open + 1..open + 1 + close]
    }
}
