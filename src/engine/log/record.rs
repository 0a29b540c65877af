//! Record frames and bodies: the encoding described in `FORMAT.md` (sections "Segment header"
//! and "Record frame"). Nothing else in the engine builds or parses these bytes.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError, StoredNotification};

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 32;
/// Bytes of a frame header (before the body).
pub(crate) const FRAME_HEADER_LEN: usize = 20;
/// The largest body a frame may claim; a larger length is corruption.
pub(crate) const MAX_BODY_LEN: usize = codec::MAX_DECODE_BYTES;
/// The largest LSN a record may end at (2^62, never reached: a billion sequences a second for
/// 146 years). A frame whose LSN and span go beyond it is corruption, so LSN arithmetic never
/// overflows.
pub(crate) const MAX_LSN: u64 = 1 << 62;
/// The segment file magic.
pub(crate) const MAGIC: &[u8; 8] = b"NFEEDLOG";
/// The version byte of this format.
pub(crate) const LOG_FORMAT_VERSION: u8 = 1;

/// What a record says happened. The numbers are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A new notification (possibly evicting the oldest): [`UpsertBody`].
    Append = 1,
    /// A replacement of a live notification: [`UpsertBody`].
    Replace = 2,
    /// A state change: [`UpsertBody`] with the unchanged position.
    StateChange = 3,
    /// A delete: [`DeleteBody`].
    Delete = 4,
    /// A group delete: [`GroupDeleteBody`].
    GroupDelete = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Append,
            2 => Self::Replace,
            3 => Self::StateChange,
            4 => Self::Delete,
            5 => Self::GroupDelete,
            _ => return None,
        })
    }
}

/// The body of `Append`, `Replace` and `StateChange`: the notification's whole current state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpsertBody {
    /// The feed key.
    pub feed: String,
    /// The notification's position; 0 means "this record's last sequence" (append, replace).
    pub position: u64,
    /// The notification this append evicted (it takes the record's first sequence).
    pub evicted: Option<[u8; 16]>,
    /// The notification.
    pub notification: StoredNotification,
}

/// The body of `Delete`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeleteBody {
    /// The feed key.
    pub feed: String,
    /// The deleted notification.
    pub id: [u8; 16],
}

/// The body of `GroupDelete`: the ids take consecutive sequences from the record's LSN.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupDeleteBody {
    /// The feed key.
    pub feed: String,
    /// The deleted notifications, in sequence order.
    #[serde(deserialize_with = "bounded_ids")]
    pub ids: Vec<[u8; 16]>,
}

/// The most ids room is made for before they are read (4 KiB).
const PREALLOCATED_IDS: usize = 256;

/// Decodes `GroupDeleteBody::ids` making room for at most [`PREALLOCATED_IDS`] up front: the
/// count comes from the body, so a corrupt count must not size an allocation (serde would
/// reserve up to 1 MiB for it, from a frame of a few bytes). Beyond that the vector grows with
/// the ids actually read, 16 body bytes each.
fn bounded_ids<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<[u8; 16]>, D::Error> {
    struct Ids;
    impl<'de> serde::de::Visitor<'de> for Ids {
        type Value = Vec<[u8; 16]>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence of 16-byte notification ids")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOCATED_IDS));
            while let Some(id) = seq.next_element()? {
                ids.push(id);
            }
            Ok(ids)
        }
    }
    deserializer.deserialize_seq(Ids)
}

/// A decoded record body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Append, replace or state change.
    Upsert(RecordKind, Box<UpsertBody>),
    /// Delete.
    Delete(DeleteBody),
    /// Group delete.
    GroupDelete(GroupDeleteBody),
}

impl Record {
    /// The kind byte.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Upsert(k, _) => *k,
            Record::Delete(_) => RecordKind::Delete,
            Record::GroupDelete(_) => RecordKind::GroupDelete,
        }
    }

    /// How many feed sequences the record takes (its LSN and the ones after it).
    pub fn span(&self) -> u64 {
        match self {
            Record::Upsert(_, b) => 1 + u64::from(b.evicted.is_some()),
            Record::Delete(_) => 1,
            Record::GroupDelete(b) => (b.ids.len() as u64).max(1),
        }
    }

    /// Whether the record removes a notification (delete, group delete, eviction).
    pub fn removes(&self) -> bool {
        match self {
            Record::Upsert(_, b) => b.evicted.is_some(),
            Record::Delete(_) | Record::GroupDelete(_) => true,
        }
    }

    /// The encoded body.
    ///
    /// # Errors
    /// [`CodecError::Body`] when the body exceeds [`MAX_BODY_LEN`].
    pub fn encode_body(&self) -> Result<Vec<u8>, CodecError> {
        match self {
            Record::Upsert(_, b) => codec::encode(b),
            Record::Delete(b) => codec::encode(b),
            Record::GroupDelete(b) => codec::encode(b),
        }
    }

    /// Decodes a body of `kind`.
    ///
    /// # Errors
    /// [`CodecError::Body`] for an invalid body.
    pub fn decode(kind: RecordKind, body: &[u8]) -> Result<Self, CodecError> {
        Ok(match kind {
            RecordKind::Append | RecordKind::Replace | RecordKind::StateChange => {
                Record::Upsert(kind, Box::new(codec::decode(body)?))
            }
            RecordKind::Delete => Record::Delete(codec::decode(body)?),
            RecordKind::GroupDelete => Record::GroupDelete(codec::decode(body)?),
        })
    }
}

/// Why bytes are not a valid frame or header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Fewer bytes than the header or the claimed body.
    #[error("truncated: {available} of {needed} bytes")]
    Truncated {
        /// Bytes present.
        available: usize,
        /// Bytes the frame needs.
        needed: usize,
    },
    /// The length field exceeds the maximum body.
    #[error("body length {0} exceeds the maximum")]
    Length(u32),
    /// The checksum does not match.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The stored crc32.
        stored: u32,
        /// The computed crc32.
        computed: u32,
    },
    /// An unknown kind or a nonzero reserved byte (with a valid checksum: a newer format).
    #[error("unknown record kind {0} or reserved bits set")]
    Kind(u8),
    /// A segment header with a wrong magic or version.
    #[error("not a notifeed segment header (magic or version {0})")]
    Header(u8),
}

/// A frame that passed its checksum.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The kind.
    pub kind: RecordKind,
    /// The record's LSN (its first sequence).
    pub lsn: u64,
    /// The body bytes.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Bytes of the whole frame.
    pub fn len(&self) -> usize {
        FRAME_HEADER_LEN + self.body.len()
    }
}

fn frame_crc(segment_id: u64, header_tail: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment_id.to_le_bytes());
    h.update(header_tail);
    h.update(body);
    h.finalize()
}

/// Appends one frame to `out`. The body must be at most [`MAX_BODY_LEN`] bytes (checked by
/// the caller when it encoded the body; bincode's limit enforces it).
pub(crate) fn encode_frame(out: &mut Vec<u8>, segment_id: u64, kind: RecordKind, lsn: u64, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // The body length fits: codec::encode refuses bodies above MAX_DECODE_BYTES (< u32::MAX).
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(body);
    let crc = frame_crc(segment_id, &out[start + 4..start + FRAME_HEADER_LEN], body);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The total frame length claimed by a frame header, if the header is complete and the length
/// is plausible. Used to read exactly one frame with one `pread`.
pub(crate) fn claimed_len(header: &[u8]) -> Result<usize, FrameError> {
    if header.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated { available: header.len(), needed: FRAME_HEADER_LEN });
    }
    let body_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body = usize::try_from(body_len).unwrap_or(usize::MAX);
    if body > MAX_BODY_LEN {
        return Err(FrameError::Length(body_len));
    }
    Ok(FRAME_HEADER_LEN + body)
}

/// Decodes the frame at the start of `bytes` (which may hold more after it), checking its
/// checksum with `segment_id` folded in.
///
/// # Errors
/// [`FrameError`]: never returns data that fails its checksum.
pub(crate) fn decode_frame(bytes: &[u8], segment_id: u64) -> Result<Frame<'_>, FrameError> {
    let total = claimed_len(bytes)?;
    if bytes.len() < total {
        return Err(FrameError::Truncated { available: bytes.len(), needed: total });
    }
    let stored = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let body = &bytes[FRAME_HEADER_LEN..total];
    let computed = frame_crc(segment_id, &bytes[4..FRAME_HEADER_LEN], body);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let kind = match RecordKind::from_u8(bytes[8]) {
        Some(kind) if bytes[9..12] == [0, 0, 0] => kind,
        _ => return Err(FrameError::Kind(bytes[8])),
    };
    let mut lsn = [0; 8];
    lsn.copy_from_slice(&bytes[12..20]);
    Ok(Frame { kind, lsn: u64::from_le_bytes(lsn), body })
}

/// The header that starts every segment file.
pub(crate) fn encode_segment_header(segment_id: u64, window: i64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = LOG_FORMAT_VERSION;
    h[12..20].copy_from_slice(&segment_id.to_le_bytes());
    h[20..28].copy_from_slice(&window.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header: `(segment id, window)`.
///
/// # Errors
/// [`FrameError::Truncated`], [`FrameError::Header`] or [`FrameError::Checksum`].
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Result<(u64, i64), FrameError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(FrameError::Truncated { available: bytes.len(), needed: SEGMENT_HEADER_LEN });
    }
    let stored = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
    let computed = crc32fast::hash(&bytes[..28]);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    if &bytes[..8] != MAGIC || bytes[8] != LOG_FORMAT_VERSION {
        return Err(FrameError::Header(bytes[8]));
    }
    let mut id = [0; 8];
    id.copy_from_slice(&bytes[12..20]);
    let mut window = [0; 8];
    window.copy_from_slice(&bytes[20..28]);
    Ok((u64::from_le_bytes(id), i64::from_le_bytes(window)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample_body() -> Vec<u8> {
        Record::Delete(DeleteBody { feed: "user/app".into(), id: [7; 16] }).encode_body().unwrap()
    }

    #[test]
    fn frame_round_trips() {
        let body = sample_body();
        let mut out = Vec::new();
        encode_frame(&mut out, 9, RecordKind::Delete, 42, &body);
        let frame = decode_frame(&out, 9).unwrap();
        assert_eq!(frame, Frame { kind: RecordKind::Delete, lsn: 42, body: &body });
        assert_eq!(frame.len(), out.len());
        let record = Record::decode(frame.kind, frame.body).unwrap();
        assert_eq!(record, Record::Delete(DeleteBody { feed: "user/app".into(), id: [7; 16] }));
    }

    #[test]
    fn every_flipped_bit_of_a_frame_is_detected() {
        let mut out = Vec::new();
        encode_frame(&mut out, 3, RecordKind::Delete, 7, &sample_body());
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut copy = out.clone();
                copy[i] ^= 1 << bit;
                assert!(decode_frame(&copy, 3).is_err(), "flip at byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn a_frame_from_another_segment_fails_its_checksum() {
        let mut out = Vec::new();
        encode_frame(&mut out, 3, RecordKind::Delete, 7, &sample_body());
        assert!(matches!(decode_frame(&out, 4), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn every_truncation_of_a_frame_is_detected() {
        let mut out = Vec::new();
        encode_frame(&mut out, 3, RecordKind::Delete, 7, &sample_body());
        for len in 0..out.len() {
            assert!(matches!(decode_frame(&out[..len], 3), Err(FrameError::Truncated { .. })), "length {len}");
        }
    }

    #[test]
    fn group_delete_with_a_count_beyond_its_bytes_is_refused_and_reserves_little() {
        // feed "f", then an id count of 2^40 (bincode varint: 253 then a u64) and no ids.
        let mut body = vec![1, b'f', 253];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(Record::decode(RecordKind::GroupDelete, &body).is_err());
        // The same count with two real ids decodes to exactly those two.
        let two = Record::GroupDelete(GroupDeleteBody { feed: "f".into(), ids: vec![[1; 16], [2; 16]] });
        let decoded = Record::decode(RecordKind::GroupDelete, &two.encode_body().unwrap()).unwrap();
        assert_eq!(decoded, two);
        let Record::GroupDelete(b) = decoded else { unreachable!() };
        assert!(b.ids.capacity() <= PREALLOCATED_IDS);
    }

    #[test]
    fn segment_header_round_trips_and_detects_flips() {
        let h = encode_segment_header(12, -5);
        assert_eq!(decode_segment_header(&h), Ok((12, -5)));
        for i in 0..h.len() {
            let mut copy = h;
            copy[i] ^= 0x10;
            assert!(decode_segment_header(&copy).is_err(), "flip at byte {i}");
        }
    }
}
