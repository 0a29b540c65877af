//! Record frames and bodies: the encoding described in `FORMAT.md` (sections "Segment header"
//! and "Record frame"). Nothing else in the engine builds or parses these bytes.

use serde::{Deserialize, Serialize};

use crate::Notification;
use crate::codec::{self, CodecError, StoredNotification, StoredNotificationRef};

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 40;
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
pub(crate) const LOG_FORMAT_VERSION: u8 = 2;
/// The oldest segment format this build reads: version 1 frames carry zero in the bytes that
/// version 2 uses for the unsynced distance, which recovery reads as "written right at the
/// synced end" (so a hole before them stays corruption, as version 1 treated it).
pub(crate) const OLDEST_READABLE_VERSION: u8 = 1;
/// The largest unsynced distance a frame header holds (24 bits); larger distances are stored
/// as this, a bound recovery reads conservatively.
pub(crate) const MAX_UNSYNCED_DISTANCE: u32 = (1 << 24) - 1;

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
    /// Expirations a sweep counted: [`ExpiredBody`].
    Expired = 6,
    /// A feed's remembered removals, carried forward by a sweep: [`RemovalsBody`].
    Removals = 7,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Append,
            2 => Self::Replace,
            3 => Self::StateChange,
            4 => Self::Delete,
            5 => Self::GroupDelete,
            6 => Self::Expired,
            7 => Self::Removals,
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

/// The body of `Expired`: notifications of one feed a sweep counted, with their expirations.
/// It lives in the window of `sweep time + expiry_log_retention`, so the expirations stay
/// reportable for the retention after their own segments are unlinked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExpiredBody {
    /// The feed key.
    pub feed: String,
    /// `(id, expiration in Unix nanoseconds)`.
    #[serde(deserialize_with = "bounded_ids")]
    pub expired: Vec<([u8; 16], i64)>,
}

/// The body of `Removals`: a feed's removal log as a sweep found it, written before the sweep
/// unlinks segments that may hold the removals' own records, in the same long-lived window as
/// `Expired` records (and carried forward again when that window is unlinked).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemovalsBody {
    /// The feed key.
    pub feed: String,
    /// The feed's highest forgotten removal sequence.
    pub forgotten_through: u64,
    /// `(sequence, id, RemovalReason::to_u8)`, oldest first.
    #[serde(deserialize_with = "bounded_ids")]
    pub removals: Vec<(u64, [u8; 16], u8)>,
}

/// The most elements room is made for before they are read (at most 8 KiB for the widest
/// element, a removal).
const PREALLOCATED_IDS: usize = 256;

/// Decodes a list of a record body (group delete ids, expirations, removals) making room for at
/// most [`PREALLOCATED_IDS`] elements up front: the count comes from the body, so a corrupt
/// count must not size an allocation (serde would reserve up to 1 MiB for it, from a frame of a
/// few bytes). Beyond that the vector grows with the elements actually read.
fn bounded_ids<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Elements<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Elements<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOCATED_IDS));
            while let Some(element) = seq.next_element()? {
                elements.push(element);
            }
            Ok(elements)
        }
    }
    deserializer.deserialize_seq(Elements(std::marker::PhantomData))
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
    /// Expirations counted by a sweep.
    Expired(ExpiredBody),
    /// A carried-forward removal log.
    Removals(RemovalsBody),
}

impl Record {
    /// How many feed sequences the record takes (its LSN and the ones after it).
    pub fn span(&self) -> u64 {
        match self {
            Record::Upsert(_, b) => 1 + u64::from(b.evicted.is_some()),
            Record::Delete(_) | Record::Expired(_) | Record::Removals(_) => 1,
            Record::GroupDelete(b) => (b.ids.len() as u64).max(1),
        }
    }

    /// The encoded body.
    ///
    /// # Errors
    /// [`CodecError::Body`] when the body exceeds [`MAX_BODY_LEN`].
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn encode_body(&self) -> Result<Vec<u8>, CodecError> {
        match self {
            Record::Upsert(_, b) => codec::encode(b),
            Record::Delete(b) => codec::encode(b),
            Record::GroupDelete(b) => codec::encode(b),
            Record::Expired(b) => codec::encode(b),
            Record::Removals(b) => codec::encode(b),
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
            RecordKind::Expired => Record::Expired(codec::decode(body)?),
            RecordKind::Removals => Record::Removals(codec::decode(body)?),
        })
    }
}

/// A record to write, borrowing what it records (no copy of the notification's strings).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outgoing<'a> {
    /// Append, replace or state change of `notification`.
    Upsert {
        /// Which of the three.
        kind: RecordKind,
        /// The feed key.
        feed: &'a str,
        /// As [`UpsertBody::position`].
        position: u64,
        /// As [`UpsertBody::evicted`].
        evicted: Option<[u8; 16]>,
        /// The notification's whole current state.
        notification: &'a Notification,
    },
    /// A delete.
    Delete {
        /// The feed key.
        feed: &'a str,
        /// The deleted notification.
        id: [u8; 16],
    },
    /// A group delete.
    GroupDelete {
        /// The feed key.
        feed: &'a str,
        /// The deleted notifications, oldest position first.
        ids: &'a [[u8; 16]],
    },
    /// Expirations a sweep counted in one feed.
    Expired {
        /// The feed key.
        feed: &'a str,
        /// `(id, expiration)`.
        expired: &'a [([u8; 16], i64)],
    },
    /// A feed's removal log, carried forward.
    Removals {
        /// The feed key.
        feed: &'a str,
        /// The feed's highest forgotten removal sequence.
        forgotten_through: u64,
        /// `(sequence, id, reason number)`, oldest first.
        removals: &'a [(u64, [u8; 16], u8)],
    },
}

impl Outgoing<'_> {
    /// The kind byte.
    pub fn kind(&self) -> RecordKind {
        match self {
            Outgoing::Upsert { kind, .. } => *kind,
            Outgoing::Delete { .. } => RecordKind::Delete,
            Outgoing::GroupDelete { .. } => RecordKind::GroupDelete,
            Outgoing::Expired { .. } => RecordKind::Expired,
            Outgoing::Removals { .. } => RecordKind::Removals,
        }
    }

    /// How many feed sequences the record takes.
    pub fn span(&self) -> u64 {
        match self {
            Outgoing::Upsert { evicted, .. } => 1 + u64::from(evicted.is_some()),
            Outgoing::Delete { .. } | Outgoing::Expired { .. } | Outgoing::Removals { .. } => 1,
            Outgoing::GroupDelete { ids, .. } => (ids.len() as u64).max(1),
        }
    }

    /// Whether the record removes a notification.
    pub fn removes(&self) -> bool {
        match self {
            Outgoing::Upsert { evicted, .. } => evicted.is_some(),
            Outgoing::Delete { .. } | Outgoing::GroupDelete { .. } => true,
            Outgoing::Expired { .. } | Outgoing::Removals { .. } => false,
        }
    }

    /// The latest expiration an `Expired` record lists, in Unix nanoseconds.
    pub fn swept_expiration(&self) -> Option<i64> {
        match self {
            Outgoing::Expired { expired, .. } => expired.iter().map(|(_, t)| *t).max(),
            _ => None,
        }
    }

    /// The encoded body: byte for byte what the owned bodies encode to.
    ///
    /// # Errors
    /// [`CodecError::Body`] when the body exceeds [`MAX_BODY_LEN`].
    #[cfg(test)]
    pub fn encode_body(&self) -> Result<Vec<u8>, CodecError> {
        Ok(self.encode_unsealed_frame()?.split_off(FRAME_HEADER_LEN))
    }

    /// The frame with its body in place and its header still blank: the commit leader fills
    /// the header with [`seal_frame`] once it knows the segment and the LSN.
    ///
    /// # Errors
    /// [`CodecError::Body`] when the body does not encode or exceeds [`MAX_BODY_LEN`].
    pub fn encode_unsealed_frame(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(512);
        self.encode_unsealed_frame_into(&mut out)?;
        Ok(out)
    }

    /// [`Outgoing::encode_unsealed_frame`] into `out`, which is cleared first (so a writer can
    /// reuse one buffer for all its frames).
    ///
    /// # Errors
    /// As [`Outgoing::encode_unsealed_frame`].
    pub fn encode_unsealed_frame_into(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        match *self {
            Outgoing::Upsert { feed, position, evicted, notification, .. } => codec::encode_into(
                &UpsertRef { feed, position, evicted, notification: StoredNotificationRef::from(notification) },
                out,
            )?,
            Outgoing::Delete { feed, id } => codec::encode_into(&DeleteRef { feed, id }, out)?,
            Outgoing::GroupDelete { feed, ids } => codec::encode_into(&GroupDeleteRef { feed, ids }, out)?,
            Outgoing::Expired { feed, expired } => codec::encode_into(&ExpiredRef { feed, expired }, out)?,
            Outgoing::Removals { feed, forgotten_through, removals } => {
                codec::encode_into(&RemovalsRef { feed, forgotten_through, removals }, out)?
            }
        }
        if out.len() - FRAME_HEADER_LEN > MAX_BODY_LEN {
            return Err(CodecError::Body(format!(
                "a body of {} bytes exceeds the maximum",
                out.len() - FRAME_HEADER_LEN
            )));
        }
        Ok(())
    }
}

/// [`UpsertBody`] with borrowed strings: encodes identically (with bincode's derived encoders,
/// see [`codec::encode_into`]).
#[derive(bincode::Encode, bincode::BorrowDecode, Debug)]
pub(crate) struct UpsertRef<'a> {
    /// The feed key.
    pub feed: &'a str,
    /// As [`UpsertBody::position`].
    pub position: u64,
    /// As [`UpsertBody::evicted`].
    pub evicted: Option<[u8; 16]>,
    /// The notification.
    pub notification: StoredNotificationRef<'a>,
}

// Its fields are all borrowed or fixed-size (see `codec::DecodesInPlace`).
impl codec::sealed::Sealed for UpsertRef<'_> {}
impl codec::DecodesInPlace for UpsertRef<'_> {}

#[derive(bincode::Encode)]
struct DeleteRef<'a> {
    feed: &'a str,
    id: [u8; 16],
}

#[derive(bincode::Encode)]
struct RemovalsRef<'a> {
    feed: &'a str,
    forgotten_through: u64,
    removals: &'a [(u64, [u8; 16], u8)],
}

#[derive(bincode::Encode)]
struct ExpiredRef<'a> {
    feed: &'a str,
    expired: &'a [([u8; 16], i64)],
}

#[derive(bincode::Encode)]
struct GroupDeleteRef<'a> {
    feed: &'a str,
    ids: &'a [[u8; 16]],
}

/// The notification of an `Append`, `Replace` or `StateChange` body, without copying its
/// strings: what a read needs. The feed key is skipped as bytes (the frame's checksum covers
/// it, and a read checks the notification's id against its index entry), so a body this
/// accepts and [`decode_upsert`] refuses has a feed key that is not UTF-8.
///
/// # Errors
/// [`CodecError::Body`] for an invalid body.
pub(crate) fn decode_upsert_notification(body: &[u8]) -> Result<StoredNotificationRef<'_>, CodecError> {
    codec::decode_borrowed_last::<(&[u8], u64, Option<[u8; 16]>), StoredNotificationRef<'_>>(body)
}

/// [`UpsertRef`] with only the fields of its notification that the index keeps: what a
/// scanning open reads from each upsert record (see [`codec::IndexedFieldsRef`]).
#[derive(bincode::BorrowDecode, Debug)]
pub(crate) struct UpsertIndexRef<'a> {
    /// The feed key.
    pub feed: &'a str,
    /// As [`UpsertBody::position`].
    pub position: u64,
    /// As [`UpsertBody::evicted`].
    pub evicted: Option<[u8; 16]>,
    /// The notification's indexed fields.
    pub notification: codec::IndexedFieldsRef<'a>,
}

// Its fields are all borrowed or fixed-size (see `codec::DecodesInPlace`).
impl codec::sealed::Sealed for UpsertIndexRef<'_> {}
impl codec::DecodesInPlace for UpsertIndexRef<'_> {}

/// Decodes what the index keeps of an `Append`, `Replace` or `StateChange` body: it accepts
/// what [`decode_upsert`] accepts, and also a body whose notification has strings the index
/// does not keep that are not UTF-8 (the frame's checksum vouches for the bytes; a read of the
/// record checks them).
///
/// # Errors
/// [`CodecError::Body`] for an invalid body.
pub(crate) fn decode_upsert_for_index(body: &[u8]) -> Result<UpsertIndexRef<'_>, CodecError> {
    codec::decode_borrowed(body)
}

/// Decodes an `Append`, `Replace` or `StateChange` body without copying its strings.
///
/// # Errors
/// [`CodecError::Body`] for an invalid body.
pub(crate) fn decode_upsert(body: &[u8]) -> Result<UpsertRef<'_>, CodecError> {
    codec::decode_borrowed(body)
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
    /// An unknown kind (with a valid checksum: a newer format).
    #[error("unknown record kind {0}")]
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
    /// How far before this frame's offset the segment's synced prefix ended when the frame
    /// was sealed (capped at [`MAX_UNSYNCED_DISTANCE`]; 0 in version 1 segments).
    pub unsynced_distance: u32,
}

impl Frame<'_> {
    /// Bytes of the whole frame.
    pub fn len(&self) -> usize {
        FRAME_HEADER_LEN + self.body.len()
    }
}

/// What a frame's checksum is keyed with: its segment's id and random salt.
pub(crate) fn frame_key(segment_id: u64, salt: u64) -> u128 {
    (u128::from(salt) << 64) | u128::from(segment_id)
}

fn frame_crc(key: u128, header_tail: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&key.to_le_bytes());
    h.update(header_tail);
    h.update(body);
    h.finalize()
}

/// An upsert body with every string as bytes, in the field order of [`UpsertRef`]: the
/// layout alone, with no string checked as UTF-8.
#[cfg(any(test, feature = "fuzzing"))]
type UpsertLayout<'a> = (
    &'a [u8],
    u64,
    Option<[u8; 16]>,
    (
        [u8; 16],
        &'a [u8],
        &'a [u8],
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Option<(&'a [u8], Option<&'a [u8]>)>,
        u8,
        u8,
        Option<u32>,
        i64,
        Option<(u32, &'a [u8], Option<&'a [u8]>)>,
        i64,
        i64,
        u8,
        u8,
    ),
);

/// Checks [`decode_upsert_for_index`] against [`decode_upsert`] on `body`: where the full
/// decoder accepts, the index's reads the same fields; where only the index's accepts, the body
/// has the layout of an upsert and one of the strings the index does not check is not UTF-8.
///
/// # Errors
/// How they disagree.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn index_decoder_agrees(body: &[u8]) -> Result<(), String> {
    let full = decode_upsert(body);
    let index = decode_upsert_for_index(body);
    match (&full, &index) {
        (Ok(full), Ok(index)) => {
            let same = full.feed == index.feed
                && full.position == index.position
                && full.evicted == index.evicted
                && codec::IndexedFieldsRef::of(&full.notification) == index.notification;
            if same { Ok(()) } else { Err(format!("they read different fields: {full:?} and {index:?}")) }
        }
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(e)) => Err(format!("only the index's decoder refused: {e}")),
        (Err(_), Ok(index)) => {
            let layout: Result<(UpsertLayout<'_>, usize), _> =
                bincode::borrow_decode_from_slice(body, bincode::config::standard());
            let Ok(((feed, position, evicted, n), used)) = layout else {
                return Err("only the full decoder refused a bad layout".into());
            };
            let i = &index.notification;
            let same = (feed, position, evicted) == (index.feed.as_bytes(), index.position, index.evicted)
                && (n.0, n.2, n.3, n.6, n.9)
                    == (i.id, i.app_notification_id, i.group_name.map(str::as_bytes), i.platforms, i.expiration)
                && (n.13, n.14) == (i.read_state, i.user_action_state);
            if !same {
                return Err(format!("the index's decoder read other values than the layout: {index:?}"));
            }
            let skipped = [Some(n.1), Some(n.2), n.4, n.5.map(|v| v.0), n.5.and_then(|v| v.1), n.10.map(|f| f.1)];
            let skipped = skipped.into_iter().chain([n.10.and_then(|f| f.2)]).flatten();
            let mut not_text = skipped.filter(|s| std::str::from_utf8(s).is_err());
            if used == body.len() && not_text.next().is_some() {
                Ok(())
            } else {
                Err("only the full decoder refused, and every unchecked string is UTF-8".into())
            }
        }
    }
}

/// Appends one frame to `out`.
#[cfg(test)]
pub(crate) fn encode_frame(out: &mut Vec<u8>, segment_id: u128, kind: RecordKind, lsn: u64, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.extend_from_slice(body);
    seal_frame(&mut out[start..], segment_id, kind, lsn, 0);
}

/// Fills the header of `frame` (a blank header followed by the body, as
/// [`Outgoing::encode_unsealed_frame`] makes it): length, kind, unsynced distance, LSN and the
/// checksum with `segment_id` folded in. `unsynced_distance` is how many bytes before the
/// frame's offset the segment's synced prefix ends (capped at [`MAX_UNSYNCED_DISTANCE`]). The
/// body is at most [`MAX_BODY_LEN`] bytes (checked when encoded).
pub(crate) fn seal_frame(frame: &mut [u8], segment_id: u128, kind: RecordKind, lsn: u64, unsynced_distance: u64) {
    let body_len = frame.len().saturating_sub(FRAME_HEADER_LEN);
    frame[4..8].copy_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    frame[8] = kind as u8;
    let distance = u32::try_from(unsynced_distance).unwrap_or(u32::MAX).min(MAX_UNSYNCED_DISTANCE);
    frame[9..12].copy_from_slice(&distance.to_le_bytes()[..3]);
    frame[12..20].copy_from_slice(&lsn.to_le_bytes());
    let (header, body) = frame.split_at(FRAME_HEADER_LEN);
    let crc = frame_crc(segment_id, &header[4..], body);
    frame[..4].copy_from_slice(&crc.to_le_bytes());
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
pub(crate) fn decode_frame(bytes: &[u8], segment_id: u128) -> Result<Frame<'_>, FrameError> {
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
    let Some(kind) = RecordKind::from_u8(bytes[8]) else { return Err(FrameError::Kind(bytes[8])) };
    let mut lsn = [0; 8];
    lsn.copy_from_slice(&bytes[12..20]);
    let unsynced_distance = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], 0]);
    Ok(Frame { kind, lsn: u64::from_le_bytes(lsn), body, unsynced_distance })
}

/// The header that starts every segment file.
pub(crate) fn encode_segment_header(segment_id: u64, window: i64, salt: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = LOG_FORMAT_VERSION;
    h[12..20].copy_from_slice(&segment_id.to_le_bytes());
    h[20..28].copy_from_slice(&window.to_le_bytes());
    h[28..36].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&h[..36]);
    h[36..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header: `(segment id, window, salt)`.
///
/// # Errors
/// [`FrameError::Truncated`], [`FrameError::Header`] or [`FrameError::Checksum`].
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Result<(u64, i64, u64), FrameError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(FrameError::Truncated { available: bytes.len(), needed: SEGMENT_HEADER_LEN });
    }
    let stored = u32::from_le_bytes([bytes[36], bytes[37], bytes[38], bytes[39]]);
    let computed = crc32fast::hash(&bytes[..36]);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    if &bytes[..8] != MAGIC || !(OLDEST_READABLE_VERSION..=LOG_FORMAT_VERSION).contains(&bytes[8]) {
        return Err(FrameError::Header(bytes[8]));
    }
    let eight = |at: usize| {
        let mut a = [0; 8];
        a.copy_from_slice(&bytes[at..at + 8]);
        a
    };
    Ok((u64::from_le_bytes(eight(12)), i64::from_le_bytes(eight(20)), u64::from_le_bytes(eight(28))))
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
        assert_eq!(frame, Frame { kind: RecordKind::Delete, lsn: 42, body: &body, unsynced_distance: 0 });
        assert_eq!(frame.len(), out.len());
        let record = Record::decode(frame.kind, frame.body).unwrap();
        assert_eq!(record, Record::Delete(DeleteBody { feed: "user/app".into(), id: [7; 16] }));
    }

    #[test]
    fn the_unsynced_distance_round_trips_under_the_checksum_and_is_capped() {
        let body = sample_body();
        for (distance, stored) in [
            (0, 0),
            (1234, 1234),
            (u64::from(MAX_UNSYNCED_DISTANCE), MAX_UNSYNCED_DISTANCE),
            (u64::MAX, MAX_UNSYNCED_DISTANCE),
        ] {
            let mut frame = vec![0; FRAME_HEADER_LEN];
            frame.extend_from_slice(&body);
            seal_frame(&mut frame, 5, RecordKind::Delete, 7, distance);
            assert_eq!(decode_frame(&frame, 5).unwrap().unsynced_distance, stored);
            frame[10] ^= 1;
            assert!(matches!(decode_frame(&frame, 5), Err(FrameError::Checksum { .. })), "the distance is checksummed");
        }
    }

    fn notifications() -> Vec<Notification> {
        use crate::model::{FallbackPolicy, Priority, ReadState, UserActionState, VisualContent};
        let now = jiff::Timestamp::from_second(1_767_225_600).unwrap();
        let mut out = Vec::new();
        for (i, action) in UserActionState::ALL.into_iter().enumerate() {
            let mut new = crate::NewNotification::visual("host.example", &format!("app-{i}"), "title");
            new.payload.raw_content = (i % 2 == 0).then(|| "raw data".to_owned());
            new.group_name = (i % 3 == 0).then(|| "group".to_owned());
            new.priority = Some([Priority::None, Priority::High, Priority::Low][i % 3]);
            new.display_time_to_live = (i == 1).then_some(60);
            new.fallback_policy = (i == 2).then(|| FallbackPolicy {
                fallback_delay_seconds: 90,
                visual_content: VisualContent { title: "fb".into(), body: Some("body".into()) },
            });
            let mut n = Notification::from_new(
                crate::NotificationId::new_random(),
                new,
                now + jiff::SignedDuration::from_hours(i as i64 + 1),
                now,
            );
            n.user_action_state = action;
            n.read_state = if i % 2 == 0 { ReadState::Read } else { ReadState::Unread };
            out.push(n);
        }
        out
    }

    #[test]
    fn borrowed_bodies_encode_and_decode_exactly_like_owned_ones() {
        for n in notifications() {
            let owned = UpsertBody {
                feed: "user/app".into(),
                position: 7,
                evicted: Some([3; 16]),
                notification: StoredNotification::from(&n),
            };
            let outgoing = Outgoing::Upsert {
                kind: RecordKind::Append,
                feed: "user/app",
                position: 7,
                evicted: Some([3; 16]),
                notification: &n,
            };
            let bytes = outgoing.encode_body().unwrap();
            assert_eq!(bytes, codec::encode(&owned).unwrap());
            let view = decode_upsert(&bytes).unwrap();
            assert_eq!(view.notification.to_stored(), owned.notification);
            assert_eq!(Notification::try_from(view.notification).unwrap(), n);
        }
        let ids = [[1; 16], [2; 16]];
        let group = Outgoing::GroupDelete { feed: "f", ids: &ids };
        let owned = GroupDeleteBody { feed: "f".into(), ids: ids.to_vec() };
        assert_eq!(group.encode_body().unwrap(), codec::encode(&owned).unwrap());
        let expired = [([4; 16], -5), ([5; 16], 77)];
        let sweep = Outgoing::Expired { feed: "f", expired: &expired };
        let owned = ExpiredBody { feed: "f".into(), expired: expired.to_vec() };
        assert_eq!(sweep.encode_body().unwrap(), codec::encode(&owned).unwrap());
        assert_eq!(sweep.swept_expiration(), Some(77));
        let removals = [(3, [1; 16], 1), (9, [2; 16], 4)];
        let carried = Outgoing::Removals { feed: "f", forgotten_through: 2, removals: &removals };
        let owned = RemovalsBody { feed: "f".into(), forgotten_through: 2, removals: removals.to_vec() };
        assert_eq!(carried.encode_body().unwrap(), codec::encode(&owned).unwrap());
        let delete = Outgoing::Delete { feed: "f", id: [9; 16] };
        assert_eq!(
            delete.encode_body().unwrap(),
            codec::encode(&DeleteBody { feed: "f".into(), id: [9; 16] }).unwrap()
        );
    }

    /// A sample upsert body, with the feed key, evicted id and notification it was written with.
    type SampleBody = (Vec<u8>, &'static str, Option<[u8; 16]>, Notification);

    /// Upsert bodies of every sample notification, with the feed and evicted id each was
    /// written with (every second feed key not ASCII, every third body with an eviction).
    fn sample_upsert_bodies() -> Vec<SampleBody> {
        notifications()
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let feed = if i % 2 == 0 { "user/app" } else { "usér/äpp" };
                let evicted = (i % 3 == 0).then_some([5; 16]);
                let outgoing =
                    Outgoing::Upsert { kind: RecordKind::Append, feed, position: 9, evicted, notification: &n };
                (outgoing.encode_body().unwrap(), feed, evicted, n)
            })
            .collect()
    }

    /// `body` with one byte overwritten, for every byte and 8 values each: `(at, value, bytes)`.
    fn damaged(body: &[u8]) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
        (0..body.len()).flat_map(move |at| {
            [0, 1, 0x7f, 0x80, 0xc3, 0xfb, 0xff, body[at].wrapping_add(1)].into_iter().map(move |value| {
                let mut bytes = body.to_vec();
                bytes[at] = value;
                (at, value, bytes)
            })
        })
    }

    /// The read path's decoder ([`decode_upsert_notification`]) against the full one, on every
    /// sample body and on each with any one byte overwritten by any value: they accept the
    /// same bodies and read the same notification, but where the full one refuses a feed key
    /// that is not UTF-8, which the read path skips.
    #[test]
    fn the_notification_only_decoder_agrees_with_the_full_one_on_damaged_bytes() {
        let mut compared = 0;
        for (body, ..) in sample_upsert_bodies() {
            let (key, used) = codec::decode_borrowed_prefix::<&[u8]>(&body).unwrap();
            let feed_bytes = used - key.len()..used;
            for (at, value, damaged) in damaged(&body) {
                let full = decode_upsert(&damaged).map(|b| b.notification);
                let last = decode_upsert_notification(&damaged);
                match (&full, &last) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "byte {at} set to {value}"),
                    (Err(_), Err(_)) => {}
                    (Err(_), Ok(_)) => {
                        let feed_is_text = std::str::from_utf8(&damaged[feed_bytes.clone()]).is_ok();
                        assert!(
                            feed_bytes.contains(&at) && !feed_is_text,
                            "byte {at} set to {value}: only the full decoder refused it"
                        );
                    }
                    (Ok(_), Err(e)) => panic!("byte {at} set to {value}: only the read path refused it: {e}"),
                }
                compared += 1;
            }
            assert_eq!(decode_upsert_notification(&body).unwrap(), decode_upsert(&body).unwrap().notification);
            let mut longer = body.clone();
            longer.push(0);
            assert!(decode_upsert_notification(&longer).is_err(), "a trailing byte is refused");
        }
        assert!(compared > 1000);
    }

    #[test]
    fn the_open_decoder_reads_what_the_full_one_does_and_skips_only_unindexed_strings() {
        let mut outcomes = (0, 0, 0);
        for (body, feed, evicted, n) in sample_upsert_bodies() {
            let index = decode_upsert_for_index(&body).unwrap();
            assert_eq!((index.feed, index.position, index.evicted), (feed, 9, evicted));
            assert_eq!(index.notification.app_notification_id, n.app_notification_id().as_bytes());
            assert_eq!(index.notification.group_name, n.group_name());
            for (at, value, damaged) in damaged(&body) {
                if let Err(e) = index_decoder_agrees(&damaged) {
                    panic!("byte {at} set to {value}: {e}");
                }
                match (decode_upsert(&damaged).is_ok(), decode_upsert_for_index(&damaged).is_ok()) {
                    (true, _) => outcomes.0 += 1,
                    (false, true) => outcomes.1 += 1,
                    (false, false) => outcomes.2 += 1,
                }
            }
            let mut longer = body.clone();
            longer.push(0);
            assert!(decode_upsert_for_index(&longer).is_err(), "a trailing byte is refused");
        }
        // Each way was taken: both accept, only the open's decoder accepts (a title that is no
        // longer UTF-8), both refuse.
        assert!(outcomes.0 > 100 && outcomes.1 > 10 && outcomes.2 > 100, "{outcomes:?}");
    }

    #[test]
    fn a_string_the_index_keeps_is_checked_and_one_it_skips_is_not() {
        let now = jiff::Timestamp::from_second(1_767_225_600).unwrap();
        let mut new = crate::NewNotification::visual("host.example", "app-0", "title").with_group("group-ggg");
        new.payload.raw_content = Some("raw-rrr".into());
        let n = Notification::from_new(crate::NotificationId::new_random(), new, now, now);
        let outgoing =
            Outgoing::Upsert { kind: RecordKind::Append, feed: "u/a", position: 1, evicted: None, notification: &n };
        let body = outgoing.encode_body().unwrap();
        let at = |needle: &[u8]| body.windows(needle.len()).position(|w| w == needle).unwrap() + needle.len() - 1;
        let mut bad_raw = body.clone();
        bad_raw[at(b"raw-rrr")] = 0xff;
        assert!(decode_upsert(&bad_raw).is_err());
        let index = decode_upsert_for_index(&bad_raw).unwrap();
        assert_eq!(index.notification.group_name, Some("group-ggg"));
        let mut bad_group = body.clone();
        bad_group[at(b"group-ggg")] = 0xff;
        assert!(decode_upsert(&bad_group).is_err() && decode_upsert_for_index(&bad_group).is_err());
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
    fn expired_and_removals_lists_reserve_little_for_a_huge_claimed_count() {
        // Found by the record_decoder fuzz smoke in CI: a few-byte body claiming a long list
        // made serde reserve 1 MiB. Feed "f", then (Removals) forgotten_through 0, then a count of
        // 2^20 elements (varint 252 then a u32) and only two elements' worth of bytes.
        let expired = Record::Expired(ExpiredBody { feed: "f".into(), expired: vec![([1; 16], 5), ([2; 16], 6)] });
        let removals =
            Record::Removals(RemovalsBody { feed: "f".into(), forgotten_through: 0, removals: vec![(1, [1; 16], 1)] });
        for (kind, record) in [(RecordKind::Expired, expired), (RecordKind::Removals, removals)] {
            let body = record.encode_body().unwrap();
            let decoded = Record::decode(kind, &body).unwrap();
            assert_eq!(decoded, record);
            let mut claimed = vec![1, b'f'];
            if kind == RecordKind::Removals {
                claimed.push(0);
            }
            claimed.push(252);
            claimed.extend_from_slice(&(1u32 << 20).to_le_bytes());
            claimed.extend_from_slice(&body[body.len().saturating_sub(16)..]);
            assert!(Record::decode(kind, &claimed).is_err());
            let capacity = match decoded {
                Record::Expired(b) => b.expired.capacity(),
                Record::Removals(b) => b.removals.capacity(),
                _ => unreachable!(),
            };
            assert!(capacity <= PREALLOCATED_IDS);
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
        let h = encode_segment_header(12, -5, 99);
        assert_eq!(decode_segment_header(&h), Ok((12, -5, 99)));
        for i in 0..h.len() {
            let mut copy = h;
            copy[i] ^= 0x10;
            assert!(decode_segment_header(&copy).is_err(), "flip at byte {i}");
        }
    }
}
