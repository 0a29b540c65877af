//! Hooks for the cargo-fuzz targets in `fuzz/` (cargo feature `fuzzing`): the frame and body
//! decoders of `record.rs`, which are otherwise private. Not an API: nothing here is stable.

use super::record::{self, DeleteBody, FRAME_HEADER_LEN, GroupDeleteBody, Record, RecordKind, UpsertBody};
use crate::codec::StoredNotification;

/// The largest body a frame may claim.
pub const MAX_BODY_LEN: usize = record::MAX_BODY_LEN;

/// What one decoded frame held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The kind byte.
    pub kind: u8,
    /// The LSN.
    pub lsn: u64,
    /// Bytes of the whole frame.
    pub frame_len: usize,
    /// The feed the body names.
    pub feed: String,
    /// How many sequences the record takes.
    pub span: u64,
}

/// Decodes the frame at the start of `bytes` and its body, as recovery and reads do.
///
/// # Errors
/// The frame or body error, as text.
pub fn decode_record(bytes: &[u8], segment_id: u64) -> Result<Decoded, String> {
    // Fuzz frames are keyed with salt 0 (see [`frame`]).
    let frame = record::decode_frame(bytes, record::frame_key(segment_id, 0)).map_err(|e| e.to_string())?;
    let decoded = Record::decode(frame.kind, frame.body);
    if let RecordKind::Append | RecordKind::Replace | RecordKind::StateChange = frame.kind {
        same_as_the_engines_decoder(frame.body, &decoded);
    }
    let rec = decoded.map_err(|e| e.to_string())?;
    // A decoded body encodes again, and that encoding decodes to the same record.
    let again = rec.encode_body().map_err(|e| format!("a decoded body does not encode: {e}"))?;
    let back = Record::decode(frame.kind, &again).map_err(|e| format!("a re-encoded body does not decode: {e}"))?;
    if back != rec {
        return Err(format!("re-encoding changed the record: {rec:?} became {back:?}"));
    }
    let feed = match &rec {
        Record::Upsert(_, b) => b.feed.clone(),
        Record::Delete(b) => b.feed.clone(),
        Record::GroupDelete(b) => b.feed.clone(),
        Record::Expired(b) => b.feed.clone(),
        Record::Removals(b) => b.feed.clone(),
    };
    Ok(Decoded { kind: frame.kind as u8, lsn: frame.lsn, frame_len: frame.len(), feed, span: rec.span() })
}

/// Panics unless the engine's own decoder of upsert bodies (bincode's derived decoders, strings
/// borrowed: what recovery and reads use) agrees with the serde decoder of the owned body: both
/// refuse, or both give the same fields; and unless its view encodes back to the bytes serde
/// encodes the owned body to. And unless the read path's decoder of the notification alone
/// reads the same notification wherever the full one succeeds (it may also accept a body
/// whose feed key is not UTF-8, which it skips); and unless the scanning open's decoder agrees
/// with the full one (see [`record::index_decoder_agrees`]).
fn same_as_the_engines_decoder(body: &[u8], by_serde: &Result<Record, crate::codec::CodecError>) {
    if let Err(e) = record::index_decoder_agrees(body) {
        panic!("the open's decoder disagrees: {e}");
    }
    let view = record::decode_upsert(body);
    let alone = record::decode_upsert_notification(body);
    match (&view, &alone) {
        (Ok(full), _) => {
            assert_eq!(alone.as_ref().ok(), Some(&full.notification), "the read path's decoder disagrees: {alone:?}");
        }
        (Err(_), Ok(_)) => {
            // Only a feed key that is not UTF-8, which the read path skips, may tell them apart.
            let feed = crate::codec::decode_borrowed_prefix::<&[u8]>(body).map(|(feed, _)| feed);
            let text = feed.as_ref().map(|f| std::str::from_utf8(f).is_ok());
            assert_eq!(text, Ok(false), "only the read path's decoder accepted a body: {alone:?}");
        }
        (Err(_), Err(_)) => {}
    }
    match (by_serde, view) {
        (Err(_), Err(_)) => {}
        (Ok(Record::Upsert(_, owned)), Ok(view)) => {
            let same = view.feed == owned.feed
                && view.position == owned.position
                && view.evicted == owned.evicted
                && view.notification.to_stored() == owned.notification;
            assert!(same, "the two decoders read different bodies: {owned:?} and {view:?}");
            let mut native = Vec::new();
            let encoded = crate::codec::encode_into(&view, &mut native);
            assert!(encoded.is_ok(), "a decoded view does not encode: {encoded:?}");
            assert_eq!(Ok(native), crate::codec::encode(&**owned), "the two encoders wrote different bytes");
        }
        (serde, native) => panic!("the decoders disagree on a body: serde {serde:?}, the engine's {native:?}"),
    }
}

/// The total frame length a header claims, if plausible.
///
/// # Errors
/// The frame error, as text.
pub fn claimed_len(header: &[u8]) -> Result<usize, String> {
    record::claimed_len(header).map_err(|e| e.to_string())
}

/// Decodes a segment header: `(segment id, window)`.
///
/// # Errors
/// The header error, as text.
pub fn decode_segment_header(bytes: &[u8]) -> Result<(u64, i64), String> {
    record::decode_segment_header(bytes).map(|(id, window, _salt)| (id, window)).map_err(|e| e.to_string())
}

/// A segment header for `segment_id` and `window`.
pub fn segment_header(segment_id: u64, window: i64) -> [u8; record::SEGMENT_HEADER_LEN] {
    record::encode_segment_header(segment_id, window, 0)
}

/// A frame with any kind and reserved bytes and a correct checksum, so fuzzers reach the body
/// decoder. The body length field is `body.len()` truncated to 32 bits.
pub fn frame(segment_id: u64, kind: u8, reserved: [u8; 3], lsn: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&reserved);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(body);
    let mut h = crc32fast::Hasher::new();
    h.update(&record::frame_key(segment_id, 0).to_le_bytes());
    h.update(&out[4..]);
    let crc = h.finalize();
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The body of an `Append`, `Replace` or `StateChange` record.
///
/// # Errors
/// The codec error, as text.
pub fn upsert_body(
    feed: &str,
    position: u64,
    evicted: Option<[u8; 16]>,
    notification: StoredNotification,
) -> Result<Vec<u8>, String> {
    let body = UpsertBody { feed: feed.to_owned(), position, evicted, notification };
    Record::Upsert(RecordKind::Append, Box::new(body)).encode_body().map_err(|e| e.to_string())
}

/// The body of a `Delete` record.
///
/// # Errors
/// The codec error, as text.
pub fn delete_body(feed: &str, id: [u8; 16]) -> Result<Vec<u8>, String> {
    Record::Delete(DeleteBody { feed: feed.to_owned(), id }).encode_body().map_err(|e| e.to_string())
}

/// The body of a `GroupDelete` record.
///
/// # Errors
/// The codec error, as text.
pub fn group_delete_body(feed: &str, ids: Vec<[u8; 16]>) -> Result<Vec<u8>, String> {
    Record::GroupDelete(GroupDeleteBody { feed: feed.to_owned(), ids }).encode_body().map_err(|e| e.to_string())
}

/// The file name of segment `id`.
pub fn segment_file_name(id: u32) -> String {
    super::segment::segment_file_name(id)
}
