//! The key layout of every sled tree, written by us: fixed-width, big-endian fields, so that
//! sled's byte order is the order we need (feed first, then time or sequence).
//!
//! ```text
//! catalog keys  "layout", "next_feed", "sequence", "sequence_lease"  (ASCII names)
//! feed number   u64 BE                          8 bytes, assigned once per feed key, never reused
//! expiration    i64 Unix nanoseconds, BE with
//!               the sign bit flipped            8 bytes, so negative times sort first
//! id            the UUID's bytes                16 bytes
//!
//! notification key   feed | id                  24 bytes
//! sequenced key      feed | sequence u64 BE     16 bytes  (positions, upserts, removals)
//! app id key         feed | app id bytes        8 + 1..=256 bytes (the only variable tail;
//!                                               the fixed feed prefix keeps feeds apart)
//! feed time key      feed | expiration | id     32 bytes  (per-feed expiry index, expired log)
//! time key           expiration | feed | id     32 bytes  (global expiry index, expired log
//!                                               by time)
//! ```
//!
//! Decoding a key read back from sled checks its length and reports
//! [`StoreError::Corruption`] when it is wrong: a key is data from disk too.

use crate::model::NotificationId;
use crate::store::StoreError;

/// The version of this key layout and of the tree set, written in the catalog on first open.
pub(crate) const LAYOUT_VERSION: u64 = 1;
/// The catalog key of [`LAYOUT_VERSION`].
pub(crate) const LAYOUT_VERSION_KEY: &[u8] = b"layout";
/// The catalog key of the next feed number to assign.
pub(crate) const NEXT_FEED_KEY: &[u8] = b"next_feed";
/// The catalog key of the store-wide sequence counter (the last sequence given out).
pub(crate) const STORE_SEQUENCE_KEY: &[u8] = b"sequence";

/// The catalog key of the sequence lease: no sequence above it was ever given out, and it is
/// made durable before one is (see `SledStore::run_mutation`).
pub(crate) const SEQUENCE_LEASE_KEY: &[u8] = b"sequence_lease";

/// The number a feed key is mapped to, once, in the `feeds` tree.
pub(crate) type FeedNumber = u64;

/// The length of a feed number prefix.
pub(crate) const FEED_LEN: usize = 8;
/// The length of a notification key (`feed | id`).
pub(crate) const NOTIFICATION_KEY_LEN: usize = FEED_LEN + 16;
/// The length of a sequenced key (`feed | sequence`).
pub(crate) const SEQUENCED_KEY_LEN: usize = FEED_LEN + 8;
/// The length of a time key (`feed | expiration | id` or `expiration | feed | id`).
pub(crate) const TIME_KEY_LEN: usize = FEED_LEN + 8 + 16;

/// The big-endian, order-preserving encoding of a signed time: the sign bit flipped, so that
/// `i64::MIN` encodes as all zeros and `i64::MAX` as all ones.
pub(crate) fn time_bytes(nanos: i64) -> [u8; 8] {
    ((nanos as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_bytes`].
pub(crate) fn time_from_bytes(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The prefix every key of one feed starts with (in the feed-first trees).
pub(crate) fn feed_prefix(feed: FeedNumber) -> [u8; FEED_LEN] {
    feed.to_be_bytes()
}

/// `feed | id`.
pub(crate) fn notification_key(feed: FeedNumber, id: NotificationId) -> [u8; NOTIFICATION_KEY_LEN] {
    let mut key = [0; NOTIFICATION_KEY_LEN];
    key[..FEED_LEN].copy_from_slice(&feed.to_be_bytes());
    key[FEED_LEN..].copy_from_slice(&id.to_bytes());
    key
}

/// `feed | sequence`: the key of the positions, upserts and removals trees.
pub(crate) fn sequenced_key(feed: FeedNumber, sequence: u64) -> [u8; SEQUENCED_KEY_LEN] {
    let mut key = [0; SEQUENCED_KEY_LEN];
    key[..FEED_LEN].copy_from_slice(&feed.to_be_bytes());
    key[FEED_LEN..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// `feed | app id bytes`.
pub(crate) fn app_id_key(feed: FeedNumber, app_notification_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(FEED_LEN + app_notification_id.len());
    key.extend_from_slice(&feed.to_be_bytes());
    key.extend_from_slice(app_notification_id.as_bytes());
    key
}

/// `feed | expiration | id`: the per-feed expiry index and the expired log.
pub(crate) fn feed_time_key(feed: FeedNumber, expiration_nanos: i64, id: NotificationId) -> [u8; TIME_KEY_LEN] {
    let mut key = [0; TIME_KEY_LEN];
    key[..8].copy_from_slice(&feed.to_be_bytes());
    key[8..16].copy_from_slice(&time_bytes(expiration_nanos));
    key[16..].copy_from_slice(&id.to_bytes());
    key
}

/// `feed | expiration | fill…`: with `fill` 0x00 the smallest and with 0xFF the largest feed time
/// key of that feed and time, to bracket a time range.
pub(crate) fn feed_time_bound(feed: FeedNumber, expiration_nanos: i64, fill: u8) -> [u8; TIME_KEY_LEN] {
    let mut key = [fill; TIME_KEY_LEN];
    key[..8].copy_from_slice(&feed.to_be_bytes());
    key[8..16].copy_from_slice(&time_bytes(expiration_nanos));
    key
}

/// `expiration | feed | id`: the global expiry index and the expired log by time.
pub(crate) fn time_key(expiration_nanos: i64, feed: FeedNumber, id: NotificationId) -> [u8; TIME_KEY_LEN] {
    let mut key = [0; TIME_KEY_LEN];
    key[..8].copy_from_slice(&time_bytes(expiration_nanos));
    key[8..16].copy_from_slice(&feed.to_be_bytes());
    key[16..].copy_from_slice(&id.to_bytes());
    key
}

/// The largest `expiration | …` key for a time: every time key at or before `expiration_nanos`
/// is `<=` it.
pub(crate) fn time_upper_bound(expiration_nanos: i64) -> [u8; TIME_KEY_LEN] {
    let mut key = [0xFF; TIME_KEY_LEN];
    key[..8].copy_from_slice(&time_bytes(expiration_nanos));
    key
}

fn corrupt(tree: &str, key: &[u8], detail: &str) -> StoreError {
    StoreError::Corruption { location: format!("sled tree {tree}, key {}", hex(key)), detail: detail.to_owned() }
}

/// A key as lowercase hex, for error locations.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn field<const N: usize>(key: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&key[at..at + N]);
    out
}

/// Splits `feed | sequence`.
///
/// # Errors
/// [`StoreError::Corruption`] when the key is not 16 bytes.
pub(crate) fn split_sequenced(tree: &str, key: &[u8]) -> Result<(FeedNumber, u64), StoreError> {
    if key.len() != SEQUENCED_KEY_LEN {
        return Err(corrupt(tree, key, "a sequenced key must be 16 bytes"));
    }
    Ok((u64::from_be_bytes(field(key, 0)), u64::from_be_bytes(field(key, 8))))
}

/// Splits `feed | expiration | id`.
///
/// # Errors
/// [`StoreError::Corruption`] when the key is not 32 bytes.
pub(crate) fn split_feed_time(tree: &str, key: &[u8]) -> Result<(FeedNumber, i64, NotificationId), StoreError> {
    if key.len() != TIME_KEY_LEN {
        return Err(corrupt(tree, key, "a feed time key must be 32 bytes"));
    }
    Ok((u64::from_be_bytes(field(key, 0)), time_from_bytes(field(key, 8)), NotificationId::from_bytes(field(key, 16))))
}

/// Splits `expiration | feed | id`.
///
/// # Errors
/// [`StoreError::Corruption`] when the key is not 32 bytes.
pub(crate) fn split_time(tree: &str, key: &[u8]) -> Result<(i64, FeedNumber, NotificationId), StoreError> {
    if key.len() != TIME_KEY_LEN {
        return Err(corrupt(tree, key, "a time key must be 32 bytes"));
    }
    Ok((time_from_bytes(field(key, 0)), u64::from_be_bytes(field(key, 8)), NotificationId::from_bytes(field(key, 16))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn id(n: u8) -> NotificationId {
        NotificationId::from_bytes([n; 16])
    }

    #[test]
    fn time_encoding_preserves_order_across_the_sign() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_767_225_600_000_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(time_bytes(pair[0]) < time_bytes(pair[1]), "{} vs {}", pair[0], pair[1]);
        }
        for t in times {
            assert_eq!(time_from_bytes(time_bytes(t)), t);
        }
        assert_eq!(time_bytes(i64::MIN), [0; 8]);
        assert_eq!(time_bytes(i64::MAX), [0xFF; 8]);
    }

    #[test]
    fn sequenced_keys_sort_by_feed_then_sequence() {
        assert!(sequenced_key(1, u64::MAX) < sequenced_key(2, 0));
        assert!(sequenced_key(7, 255) < sequenced_key(7, 256));
        assert_eq!(split_sequenced("t", &sequenced_key(7, 300)).ok(), Some((7, 300)));
        assert_eq!(&sequenced_key(7, 300)[..8], &feed_prefix(7));
    }

    #[test]
    fn time_keys_sort_by_time_first_and_round_trip() {
        assert!(time_key(-5, 9, id(9)) < time_key(3, 1, id(1)));
        assert!(time_key(3, 1, id(1)) < time_key(3, 1, id(2)));
        assert!(time_key(3, 1, id(0xFF)) <= time_upper_bound(3));
        assert!(time_key(4, 0, id(0)) > time_upper_bound(3));
        assert_eq!(split_time("t", &time_key(-5, 9, id(4))).ok(), Some((-5, 9, id(4))));
    }

    #[test]
    fn feed_time_keys_group_by_feed_and_are_bracketed_by_bounds() {
        assert!(feed_time_key(1, i64::MAX, id(0xFF)) < feed_time_key(2, i64::MIN, id(0)));
        let key = feed_time_key(2, 50, id(3));
        assert!(feed_time_bound(2, 50, 0x00) <= key && key <= feed_time_bound(2, 50, 0xFF));
        assert!(key > feed_time_bound(2, 49, 0xFF) && key < feed_time_bound(2, 51, 0x00));
        assert_eq!(split_feed_time("t", &key).ok(), Some((2, 50, id(3))));
    }

    #[test]
    fn app_id_keys_of_different_feeds_never_share_a_prefix() {
        let a = app_id_key(1, "x");
        assert_eq!(a, [0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert!(!app_id_key(2, "x").starts_with(&feed_prefix(1)));
        assert_eq!(notification_key(1, id(5))[8..], [5; 16]);
    }

    #[test]
    fn keys_of_the_wrong_length_are_corruption_not_data() {
        assert!(matches!(split_sequenced("positions", &[1, 2, 3]), Err(StoreError::Corruption { .. })));
        assert!(matches!(split_time("expiry", &[0; 31]), Err(StoreError::Corruption { .. })));
        let err = split_feed_time("feed_expiry", &[0xAB; 33]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("feed_expiry") && err.contains("abab"), "{err}");
    }
}
