//! The value formats of the sled trees. Every non-empty value is sealed with
//! [`crate::codec::seal`] (`u8 format version | u32 crc32 BE | body`), so a flipped bit anywhere
//! is [`StoreError::Corruption`] naming the tree and key, never data.
//!
//! ```text
//! notifications   body = position u64 BE | sequence u64 BE | bincode StoredNotification
//!                 (the same body `codec::seal_notification` seals, behind two fixed fields)
//! feed_meta       body = sequence u64 | forgotten removals through u64
//!                        | forgotten expirations through i64 | removals remembered u64
//!                        | stored notifications u64 | stored unread u64     (48 bytes, all BE)
//! positions,
//! upserts,
//! app_ids         body = id (16 bytes)
//! removals        body = id (16 bytes) | reason u8 (RemovalReason::to_u8)
//! feeds, catalog  body = u64 BE
//! expiry indexes  empty (the key says everything)
//! ```

use crate::codec::{self, CodecError};
use crate::model::{Notification, NotificationId};
use crate::store::{RemovalReason, StoreError};

use super::keys::hex;

fn corruption(tree: &str, key: &[u8], detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corruption { location: format!("sled tree {tree}, key {}", hex(key)), detail: detail.to_string() }
}

fn unseal<'a>(tree: &str, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], StoreError> {
    codec::unseal(bytes).map_err(|e| corruption(tree, key, e))
}

fn fixed<const N: usize>(tree: &str, key: &[u8], body: &[u8]) -> Result<[u8; N], StoreError> {
    body.try_into().map_err(|_| corruption(tree, key, format!("expected a {N}-byte value, found {}", body.len())))
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&body[at..at + 8]);
    u64::from_be_bytes(b)
}

/// A stored notification with where it sits in its feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// The sequence of its last append or replacement: its place in list order.
    pub position: u64,
    /// The sequence of its last change (append, replacement or state change).
    pub sequence: u64,
    /// The notification.
    pub notification: Notification,
}

/// Seals a [`Record`].
///
/// # Errors
/// [`StoreError::Backend`] when the notification does not encode (larger than the codec bound).
pub(crate) fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let body = codec::encode_notification(&record.notification).map_err(|e: CodecError| StoreError::Backend {
        engine: "sled",
        detail: format!("encoding a notification: {e}"),
    })?;
    let mut framed = Vec::with_capacity(16 + body.len());
    framed.extend_from_slice(&record.position.to_be_bytes());
    framed.extend_from_slice(&record.sequence.to_be_bytes());
    framed.extend_from_slice(&body);
    Ok(codec::seal(&framed))
}

/// The inverse of [`encode_record`].
///
/// # Errors
/// [`StoreError::Corruption`] (with the tree and key) for any value that fails its checksum or
/// does not decode.
pub(crate) fn decode_record(tree: &str, key: &[u8], bytes: &[u8]) -> Result<Record, StoreError> {
    let body = unseal(tree, key, bytes)?;
    if body.len() < 16 {
        return Err(corruption(tree, key, format!("a notification record of {} bytes is too short", body.len())));
    }
    let notification = codec::decode_notification(&body[16..]).map_err(|e| corruption(tree, key, e))?;
    Ok(Record { position: u64_at(body, 0), sequence: u64_at(body, 8), notification })
}

/// What the store keeps per feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FeedMeta {
    /// The feed's latest sequence; only ever grows.
    pub sequence: u64,
    /// The highest sequence of a removal dropped from the removal log (0 when none).
    pub forgotten_removals_through: u64,
    /// The latest expiration dropped from the expired log (`i64::MIN` when none).
    pub forgotten_expirations_through: i64,
    /// Entries in the removal log.
    pub removals_remembered: u64,
    /// Notifications stored (live, or expired and not yet swept).
    pub stored: u64,
    /// Of those, the unread ones.
    pub stored_unread: u64,
}

impl Default for FeedMeta {
    fn default() -> Self {
        Self {
            sequence: 0,
            forgotten_removals_through: 0,
            forgotten_expirations_through: i64::MIN,
            removals_remembered: 0,
            stored: 0,
            stored_unread: 0,
        }
    }
}

impl FeedMeta {
    /// Seals the meta.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(48);
        for field in [
            self.sequence,
            self.forgotten_removals_through,
            self.forgotten_expirations_through as u64,
            self.removals_remembered,
            self.stored,
            self.stored_unread,
        ] {
            body.extend_from_slice(&field.to_be_bytes());
        }
        codec::seal(&body)
    }

    /// The inverse of [`FeedMeta::encode`].
    ///
    /// # Errors
    /// [`StoreError::Corruption`] for a value that fails its checksum or has the wrong length.
    pub(crate) fn decode(tree: &str, key: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        let body: [u8; 48] = fixed(tree, key, unseal(tree, key, bytes)?)?;
        Ok(Self {
            sequence: u64_at(&body, 0),
            forgotten_removals_through: u64_at(&body, 8),
            forgotten_expirations_through: u64_at(&body, 16) as i64,
            removals_remembered: u64_at(&body, 24),
            stored: u64_at(&body, 32),
            stored_unread: u64_at(&body, 40),
        })
    }
}

/// Seals an id (the value of positions, upserts and app ids).
pub(crate) fn encode_id(id: NotificationId) -> Vec<u8> {
    codec::seal(&id.to_bytes())
}

/// The inverse of [`encode_id`].
///
/// # Errors
/// [`StoreError::Corruption`].
pub(crate) fn decode_id(tree: &str, key: &[u8], bytes: &[u8]) -> Result<NotificationId, StoreError> {
    Ok(NotificationId::from_bytes(fixed(tree, key, unseal(tree, key, bytes)?)?))
}

/// Seals a removal log entry.
pub(crate) fn encode_removal(id: NotificationId, reason: RemovalReason) -> Vec<u8> {
    let mut body = [0; 17];
    body[..16].copy_from_slice(&id.to_bytes());
    body[16] = reason.to_u8();
    codec::seal(&body)
}

/// The inverse of [`encode_removal`].
///
/// # Errors
/// [`StoreError::Corruption`], also for an unknown reason number.
pub(crate) fn decode_removal(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<(NotificationId, RemovalReason), StoreError> {
    let body: [u8; 17] = fixed(tree, key, unseal(tree, key, bytes)?)?;
    let reason = RemovalReason::from_u8(body[16])
        .ok_or_else(|| corruption(tree, key, format!("unknown removal reason {}", body[16])))?;
    let mut id = [0; 16];
    id.copy_from_slice(&body[..16]);
    Ok((NotificationId::from_bytes(id), reason))
}

/// Seals a number (feed numbers, counters).
pub(crate) fn encode_u64(value: u64) -> Vec<u8> {
    codec::seal(&value.to_be_bytes())
}

/// The inverse of [`encode_u64`].
///
/// # Errors
/// [`StoreError::Corruption`].
pub(crate) fn decode_u64(tree: &str, key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(fixed(tree, key, unseal(tree, key, bytes)?)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::NewNotification;

    fn record() -> Record {
        let now = jiff::Timestamp::from_second(1_767_225_600).unwrap();
        let n = Notification::from_new(
            NotificationId::new_random(),
            NewNotification::visual("h", "a-1", "Title").with_group("g"),
            now + jiff::SignedDuration::from_hours(1),
            now,
        );
        Record { position: 7, sequence: 9, notification: n }
    }

    #[test]
    fn record_round_trips_with_position_and_sequence() {
        let r = record();
        let bytes = encode_record(&r).unwrap();
        assert_eq!(decode_record("notifications", b"k", &bytes).unwrap(), r);
    }

    #[test]
    fn any_flipped_bit_of_a_record_is_corruption_naming_the_key() {
        let bytes = encode_record(&record()).unwrap();
        for i in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[i] ^= 0x10;
            match decode_record("notifications", &[0xCD, 0x01], &copy) {
                Err(StoreError::Corruption { location, .. }) => assert!(location.contains("notifications, key cd01")),
                other => panic!("flip at {i} gave {other:?}"),
            }
        }
    }

    #[test]
    fn feed_meta_round_trips_including_negative_horizon() {
        let meta = FeedMeta {
            sequence: 12,
            forgotten_removals_through: 3,
            forgotten_expirations_through: -42,
            removals_remembered: 5,
            stored: 8,
            stored_unread: 2,
        };
        assert_eq!(FeedMeta::decode("feed_meta", b"k", &meta.encode()).unwrap(), meta);
        assert_eq!(FeedMeta::decode("feed_meta", b"k", &FeedMeta::default().encode()).unwrap(), FeedMeta::default());
    }

    #[test]
    fn small_values_round_trip_and_reject_wrong_lengths() {
        let id = NotificationId::new_random();
        assert_eq!(decode_id("t", b"k", &encode_id(id)).unwrap(), id);
        assert_eq!(
            decode_removal("t", b"k", &encode_removal(id, RemovalReason::Evicted)).unwrap(),
            (id, RemovalReason::Evicted)
        );
        assert_eq!(decode_u64("t", b"k", &encode_u64(99)).unwrap(), 99);
        assert!(matches!(decode_id("t", b"k", &encode_u64(99)), Err(StoreError::Corruption { .. })));
        let mut bad_reason = id.to_bytes().to_vec();
        bad_reason.push(77);
        assert!(matches!(decode_removal("t", b"k", &codec::seal(&bad_reason)), Err(StoreError::Corruption { .. })));
    }
}
