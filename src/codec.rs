//! The one place notifeed encodes values for disk or the network (bincode 2.0.1).
//!
//! Two layers:
//! * [`encode`]/[`decode`]: a value as bincode (standard config: little-endian varints), with a
//!   bound on what decoding may allocate. Engines use it for record *bodies* inside their own
//!   frames.
//! * [`seal`]/[`unseal`]: a self-checking value, for engines without frames of their own (sled,
//!   Redis): `{ u8 format version | u32 crc32 (big-endian) of version and body | body }`.
//!
//! A notification is stored as [`StoredNotification`], a plain struct independent of the public
//! model, so the model can change without changing the format; [`FORMAT_VERSION`] changes when
//! the format does.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::clock::{nanos_to_timestamp, timestamp_to_nanos};
use crate::model::{Notification, NotificationId, Platforms, Priority, ReadState, TextParts, UserActionState};

/// The version byte of everything [`seal`] writes and of [`StoredNotification`] bodies.
pub const FORMAT_VERSION: u8 = 1;

/// The most bytes one decoded value may claim (a bound on allocation for corrupt input).
pub const MAX_DECODE_BYTES: usize = 1 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Shorter than the sealed header.
    #[error("truncated: {len} bytes")]
    Truncated {
        /// How many bytes there were.
        len: usize,
    },
    /// A format version this build does not read.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The checksum does not match.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The stored crc32.
        stored: u32,
        /// The crc32 of the bytes read.
        computed: u32,
    },
    /// The body is not a valid encoding.
    #[error("undecodable body: {0}")]
    Body(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes `value` as bincode.
///
/// # Errors
/// [`CodecError::Body`] when the value does not serialize: its encoding is larger than
/// [`MAX_DECODE_BYTES`] (refused as soon as it passes the bound, so it could never be written
/// and then fail to decode), or a serde impl fails.
///
/// Cost: O(encoded size), at most [`MAX_DECODE_BYTES`] bytes allocated.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = BoundedVec(Vec::new());
    bincode::serde::encode_into_writer(value, &mut out, config()).map_err(|e| CodecError::Body(e.to_string()))?;
    Ok(out.0)
}

/// A `Vec` writer that refuses to grow past [`MAX_DECODE_BYTES`] (bincode's `with_limit`
/// bounds decoding only).
struct BoundedVec(Vec<u8>);

impl bincode::enc::write::Writer for BoundedVec {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if self.0.len().saturating_add(bytes.len()) > MAX_DECODE_BYTES {
            return Err(bincode::error::EncodeError::Other("the encoding exceeds MAX_DECODE_BYTES (1 MiB)"));
        }
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends the encoding of `value` to `out`, so a caller can frame it without another copy.
///
/// This and [`decode_borrowed`] use bincode's own derived encoders (`bincode::Encode`,
/// `bincode::BorrowDecode`) instead of serde's: for the types notifeed stores they write
/// exactly the bytes [`encode`] writes for the same fields (pinned by tests), without serde's
/// per-field dispatch (a 16-byte id is one copy, not 16 calls), which halves the time to
/// decode a notification.
///
/// # Errors
/// [`CodecError::Body`] when the value does not encode.
pub fn encode_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::encode_into_writer(value, AppendTo(out), config()).map_err(|e| CodecError::Body(e.to_string()))
}

/// bincode's writer for [`encode_into`]: appends to a vector directly. bincode's writer over
/// `std::io::Write` (`encode_into_std_write`) goes through `write_all` for each field, which
/// the compiler left as calls; this one inlines into the encoders, so a one-byte varint is a
/// push (callgrind, 30,000 appends of the bench's notifications: see benches/README.md).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for AppendTo<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a value written by [`encode`]; trailing bytes are an error.
///
/// Allocation is bounded by the input. bincode counts 8 bytes for every integer read (and 1
/// per `u8`) plus each string's length against its limit, so a valid encoding never claims
/// more than 8 × its length; the limit is the smallest power of 2 (from 512 bytes up to
/// [`MAX_DECODE_BYTES`]) at least that. A corrupt length therefore fails before it sizes an
/// allocation larger than 16 × the input (bincode allocates a string before reading it).
///
/// # Errors
/// [`CodecError::Body`] for anything that is not exactly one valid encoding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.len().saturating_mul(8) {
        0..=512 => decode_within::<T, 512>(bytes),
        513..=1024 => decode_within::<T, 1024>(bytes),
        1025..=2048 => decode_within::<T, 2048>(bytes),
        2049..=4096 => decode_within::<T, 4096>(bytes),
        4097..=8192 => decode_within::<T, 8192>(bytes),
        8193..=16384 => decode_within::<T, 16384>(bytes),
        16385..=32768 => decode_within::<T, 32768>(bytes),
        32769..=65536 => decode_within::<T, 65536>(bytes),
        65537..=131_072 => decode_within::<T, 131_072>(bytes),
        131_073..=262_144 => decode_within::<T, 262_144>(bytes),
        262_145..=524_288 => decode_within::<T, 524_288>(bytes),
        _ => decode_within::<T, MAX_DECODE_BYTES>(bytes),
    }
}

/// [`decode`] with the decoder's allocation limit `LIMIT`.
fn decode_within<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| CodecError::Body(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Body(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// A type whose successful decode allocates nothing: each string and byte array it holds is
/// borrowed from the input, each other field has a fixed size. [`decode_borrowed`] and
/// [`decode_borrowed_last`] take only such types, so they need no allocation limit: an input
/// can claim any length, and the claim fails at the end of the input without sizing anything
/// (pinned by a test). Dropping bincode's check of a limit, which it makes on every field, cut
/// 7.5% of the instructions of a page of reads (benches/README.md, "Reads, 2026-12-01
/// evening").
///
/// Sealed: only this crate implements it, and only for types whose decoder allocates nothing
/// (no `Vec`, `String`, `Box`, map or anything else that sizes memory from a claimed length,
/// which without a limit a corrupt length could make huge).
pub trait DecodesInPlace: sealed::Sealed {}

pub(crate) mod sealed {
    /// Implemented by the crate's [`super::DecodesInPlace`] types only.
    pub trait Sealed {}
}

macro_rules! decodes_in_place {
    ($([$($generics:tt)*] $t:ty),* $(,)?) => {
        $(
            impl<$($generics)*> sealed::Sealed for $t {}
            impl<$($generics)*> DecodesInPlace for $t {}
        )*
    };
}

decodes_in_place!(
    ['a] StoredNotificationRef<'a>,
    ['a] IndexedFieldsRef<'a>,
    ['a] &'a [u8],
    ['a] &'a str,
    [] u64,
    [const N: usize] [u8; N],
    [T: DecodesInPlace] Option<T>,
    [A: DecodesInPlace, B: DecodesInPlace, C: DecodesInPlace] (A, B, C),
);

/// Decodes a value written by [`encode`] (or [`encode_into`]) that borrows its strings from
/// `bytes`, allocating nothing; trailing bytes are an error.
///
/// # Errors
/// [`CodecError::Body`] for anything that is not exactly one valid encoding.
pub fn decode_borrowed<'a, T>(bytes: &'a [u8]) -> Result<T, CodecError>
where
    T: bincode::BorrowDecode<'a, ()> + DecodesInPlace,
{
    let (value, used) = decode_borrowed_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CodecError::Body(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// Decodes a `T` from the start of `bytes`, as [`decode_borrowed`] does, and returns it with
/// the number of bytes it took; what follows is not read.
///
/// # Errors
/// [`CodecError::Body`] when `bytes` does not start with a valid encoding of a `T`.
pub fn decode_borrowed_prefix<'a, T>(bytes: &'a [u8]) -> Result<(T, usize), CodecError>
where
    T: bincode::BorrowDecode<'a, ()> + DecodesInPlace,
{
    bincode::borrow_decode_from_slice(bytes, bincode::config::standard()).map_err(|e| CodecError::Body(e.to_string()))
}

/// As [`decode_borrowed`], for a struct whose leading fields are those of `P` (a tuple, read
/// and dropped) and whose last field is a `T`, which it returns. For a reader that wants only
/// the last field: the others are not checked as text (decode them as bytes in `P`) and not
/// moved out, which a struct of near 300 bytes makes worth it.
///
/// # Errors
/// [`CodecError::Body`] for anything that is not exactly one valid encoding of `P`'s fields
/// then a `T`.
pub fn decode_borrowed_last<'a, P, T>(bytes: &'a [u8]) -> Result<T, CodecError>
where
    P: bincode::BorrowDecode<'a, ()> + DecodesInPlace,
    T: bincode::BorrowDecode<'a, ()> + DecodesInPlace,
{
    use bincode::de::{Decoder, read::Reader};
    let reader = bincode::de::read::SliceReader::new(bytes);
    let mut decoder = bincode::de::DecoderImpl::new(reader, bincode::config::standard(), ());
    let value = P::borrow_decode(&mut decoder)
        .and_then(|_| T::borrow_decode(&mut decoder))
        .map_err(|e| CodecError::Body(e.to_string()))?;
    match decoder.reader().peek_read(1) {
        None => Ok(value),
        Some(_) => Err(CodecError::Body("trailing bytes after the last field".into())),
    }
}

const SEAL_HEADER: usize = 5;

/// Wraps `body` with the format version and a crc32.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_HEADER + body.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(body);
    let crc = seal_crc(FORMAT_VERSION, body);
    out[1..SEAL_HEADER].copy_from_slice(&crc.to_be_bytes());
    out
}

fn seal_crc(version: u8, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[version]);
    h.update(body);
    h.finalize()
}

/// Checks and strips what [`seal`] added.
///
/// # Errors
/// [`CodecError::Truncated`], [`CodecError::UnknownVersion`] or [`CodecError::Checksum`].
pub fn unseal(sealed: &[u8]) -> Result<&[u8], CodecError> {
    if sealed.len() < SEAL_HEADER {
        return Err(CodecError::Truncated { len: sealed.len() });
    }
    let version = sealed[0];
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let stored = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
    let body = &sealed[SEAL_HEADER..];
    let computed = seal_crc(version, body);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok(body)
}

/// The on-disk form of a [`Notification`] (format version 1). Times are Unix nanoseconds;
/// enums are their stable numbers. [`StoredNotificationRef`] is the same fields with borrowed
/// strings, and encodes identically.
// bincode's own `Decode` only for the test that pins it to the serde bytes: a caller decodes
// the borrowed form, whose decoding allocates nothing.
#[derive(Serialize, Deserialize, bincode::Encode, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(test, derive(bincode::Decode))]
pub struct StoredNotification {
    /// The id's 16 bytes.
    pub id: [u8; 16],
    /// `targetHostName`.
    pub target_host_name: String,
    /// `appNotificationId`.
    pub app_notification_id: String,
    /// `groupName`.
    pub group_name: Option<String>,
    /// `payload.rawContent`.
    pub raw_content: Option<String>,
    /// `payload.visualContent` as (title, body).
    pub visual_content: Option<(String, Option<String>)>,
    /// Platform bits.
    pub platforms: u8,
    /// 0 None, 1 High, 2 Low.
    pub priority: u8,
    /// `displayTimeToLive` in seconds.
    pub display_time_to_live: Option<u32>,
    /// Expiration, Unix nanoseconds.
    pub expiration: i64,
    /// Fallback as (delay seconds, title, body).
    pub fallback: Option<(u32, String, Option<String>)>,
    /// Created, Unix nanoseconds.
    pub created: i64,
    /// Last modified, Unix nanoseconds.
    pub last_modified: i64,
    /// 0 Unread, 1 Read.
    pub read_state: u8,
    /// 0 NoInteraction, 1 Activated, 2 Dismissed, 3 Snoozed.
    pub user_action_state: u8,
}

/// [`StoredNotification`] with its strings borrowed from the encoded bytes (or from a
/// [`Notification`]): the same fields in the same order, so it encodes and decodes
/// identically (pinned by a test). What engines encode from and decode into, so a notification
/// is never cloned to be written and its strings are copied once when read.
#[derive(Serialize, bincode::Encode, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredNotificationRef<'a> {
    /// The id's 16 bytes.
    pub id: [u8; 16],
    /// `targetHostName`.
    pub target_host_name: &'a str,
    /// `appNotificationId`.
    pub app_notification_id: &'a str,
    /// `groupName`.
    pub group_name: Option<&'a str>,
    /// `payload.rawContent`.
    pub raw_content: Option<&'a str>,
    /// `payload.visualContent` as (title, body).
    pub visual_content: Option<(&'a str, Option<&'a str>)>,
    /// Platform bits.
    pub platforms: u8,
    /// 0 None, 1 High, 2 Low.
    pub priority: u8,
    /// `displayTimeToLive` in seconds.
    pub display_time_to_live: Option<u32>,
    /// Expiration, Unix nanoseconds.
    pub expiration: i64,
    /// Fallback as (delay seconds, title, body).
    pub fallback: Option<(u32, &'a str, Option<&'a str>)>,
    /// Created, Unix nanoseconds.
    pub created: i64,
    /// Last modified, Unix nanoseconds.
    pub last_modified: i64,
    /// 0 Unread, 1 Read.
    pub read_state: u8,
    /// 0 NoInteraction, 1 Activated, 2 Dismissed, 3 Snoozed.
    pub user_action_state: u8,
}

/// Decodes the fields in declaration order, as bincode's derive would, except that strings are
/// checked as UTF-8 by `text` (below) rather than by `core::str::from_utf8` (the same bytes are
/// accepted; the check was a tenth of a read's CPU).
impl<'de: 'a, 'a, C> bincode::BorrowDecode<'de, C> for StoredNotificationRef<'a> {
    // Three callers share one instance of this (the read path's `decode_borrowed_last`, the
    // record decoder's `UpsertRef` and `decode_notification`), and LLVM then inlined it into
    // none: the decoded notification (about 200 bytes) was moved out of a call per read.
    // Inlined, the read path ran 1.4% fewer instructions per page (callgrind;
    // benches/README.md, "Reads, 2026-12-01 evening").
    #[inline(always)]
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::Decode;
        Ok(Self {
            id: Decode::decode(d)?,
            target_host_name: text(d)?,
            app_notification_id: text(d)?,
            group_name: optional(d, text)?,
            raw_content: optional(d, text)?,
            visual_content: optional(d, |d| Ok((text(d)?, optional(d, text)?)))?,
            platforms: Decode::decode(d)?,
            priority: Decode::decode(d)?,
            display_time_to_live: Decode::decode(d)?,
            expiration: Decode::decode(d)?,
            fallback: optional(d, |d| Ok((u32::decode(d)?, text(d)?, optional(d, text)?)))?,
            created: Decode::decode(d)?,
            last_modified: Decode::decode(d)?,
            read_state: Decode::decode(d)?,
            user_action_state: Decode::decode(d)?,
        })
    }
}

/// The fields of a stored notification that the log engine's index keeps, read from the
/// bytes of a [`StoredNotificationRef`] without checking as UTF-8 the strings the index does
/// not keep (the host name, the contents, the fallback; the app id is kept as bytes, for its
/// hash): a scanning open reads every record this way. It accepts whatever
/// [`StoredNotificationRef`]'s decoder accepts, reading the same fields, and also a body whose
/// skipped strings are not UTF-8 (which a read of that record then reports). Kept in step with
/// the full decoder by tests and by the `record_decoder` fuzz target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexedFieldsRef<'a> {
    /// The id's 16 bytes.
    pub id: [u8; 16],
    /// `appNotificationId`, unchecked.
    pub app_notification_id: &'a [u8],
    /// `groupName`.
    pub group_name: Option<&'a str>,
    /// Platform bits.
    pub platforms: u8,
    /// Expiration, Unix nanoseconds.
    pub expiration: i64,
    /// 0 Unread, 1 Read.
    pub read_state: u8,
    /// 0 NoInteraction, 1 Activated, 2 Dismissed, 3 Snoozed.
    pub user_action_state: u8,
}

#[cfg(any(test, feature = "fuzzing"))]
impl<'a> IndexedFieldsRef<'a> {
    /// The index's fields of a fully decoded notification (what the checks against the full
    /// decoder compare).
    pub fn of(n: &StoredNotificationRef<'a>) -> Self {
        Self {
            id: n.id,
            app_notification_id: n.app_notification_id.as_bytes(),
            group_name: n.group_name,
            platforms: n.platforms,
            expiration: n.expiration,
            read_state: n.read_state,
            user_action_state: n.user_action_state,
        }
    }
}

/// Walks the fields in [`StoredNotificationRef`]'s order, as its decoder does.
impl<'de: 'a, 'a, C> bincode::BorrowDecode<'de, C> for IndexedFieldsRef<'a> {
    #[inline(always)]
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::Decode;
        let id = Decode::decode(d)?;
        skip_text(d)?; // targetHostName
        let app_notification_id = <&'a [u8] as bincode::BorrowDecode<'de, C>>::borrow_decode(d)?;
        let group_name = optional(d, text)?;
        optional(d, skip_text)?; // payload.rawContent
        optional(d, |d| skip_text(d).and_then(|()| optional(d, skip_text)))?; // visualContent
        let platforms = Decode::decode(d)?;
        let _priority: u8 = Decode::decode(d)?;
        let _display_time_to_live: Option<u32> = Decode::decode(d)?;
        let expiration = Decode::decode(d)?;
        optional(d, |d| {
            let _delay = u32::decode(d)?;
            skip_text(d).and_then(|()| optional(d, skip_text))
        })?; // fallback
        let _created: i64 = Decode::decode(d)?;
        let _last_modified: i64 = Decode::decode(d)?;
        Ok(Self {
            id,
            app_notification_id,
            group_name,
            platforms,
            expiration,
            read_state: Decode::decode(d)?,
            user_action_state: Decode::decode(d)?,
        })
    }
}

/// A string as bincode encodes `&str` (a varint length, then the bytes), passed over unchecked.
fn skip_text<'de, C, D>(d: &mut D) -> Result<(), bincode::error::DecodeError>
where
    D: bincode::de::BorrowDecoder<'de, Context = C>,
{
    <&'de [u8] as bincode::BorrowDecode<'de, C>>::borrow_decode(d).map(|_| ())
}

/// A borrowed string, as bincode encodes `&str` (a varint length, then the bytes), checked
/// as UTF-8: by `is_ascii` when it is short and ASCII, else by `simdutf8`.
fn text<'de, 'a, C, D>(d: &mut D) -> Result<&'a str, bincode::error::DecodeError>
where
    'de: 'a,
    D: bincode::de::BorrowDecoder<'de, Context = C>,
{
    let bytes = <&'a [u8] as bincode::BorrowDecode<'de, C>>::borrow_decode(d)?;
    // simdutf8 hands strings under 64 bytes to `core::str::from_utf8`, which checks them a
    // byte at a time; `is_ascii` checks a word at a time, and most short strings are ASCII.
    if bytes.len() < 64 && bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8, which is all `from_utf8_unchecked`
        // requires. Measured to pay: benches/README.md, "Appends and reads, 2026-12-01
        // afternoon".
        #[allow(unsafe_code)]
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    simdutf8::basic::from_utf8(bytes).map_err(|_| bincode::error::DecodeError::Other("a string that is not UTF-8"))
}

/// An `Option`, as bincode encodes it (a byte 0 or 1, then the value when 1).
fn optional<'de, C, D, T>(
    d: &mut D,
    value: impl FnOnce(&mut D) -> Result<T, bincode::error::DecodeError>,
) -> Result<Option<T>, bincode::error::DecodeError>
where
    D: bincode::de::BorrowDecoder<'de, Context = C>,
{
    match <u8 as bincode::Decode<C>>::decode(d)? {
        0 => Ok(None),
        1 => value(d).map(Some),
        tag => Err(bincode::error::DecodeError::OtherString(format!("an option tag of {tag}"))),
    }
}

// The stable numbers of the enums, each mapping written once.

fn priority_number(p: Priority) -> u8 {
    match p {
        Priority::None => 0,
        Priority::High => 1,
        Priority::Low => 2,
    }
}

fn read_state_number(r: ReadState) -> u8 {
    match r {
        ReadState::Unread => 0,
        ReadState::Read => 1,
    }
}

fn user_action_state_number(a: UserActionState) -> u8 {
    match a {
        UserActionState::NoInteraction => 0,
        UserActionState::Activated => 1,
        UserActionState::Dismissed => 2,
        UserActionState::Snoozed => 3,
    }
}

fn unknown(what: &str, v: u8) -> CodecError {
    CodecError::Body(format!("unknown {what} {v}"))
}

fn priority_of(v: u8) -> Result<Priority, CodecError> {
    Ok(match v {
        0 => Priority::None,
        1 => Priority::High,
        2 => Priority::Low,
        v => return Err(unknown("priority", v)),
    })
}

fn read_state_of(v: u8) -> Result<ReadState, CodecError> {
    Ok(match v {
        0 => ReadState::Unread,
        1 => ReadState::Read,
        v => return Err(unknown("read state", v)),
    })
}

fn user_action_state_of(v: u8) -> Result<UserActionState, CodecError> {
    Ok(match v {
        0 => UserActionState::NoInteraction,
        1 => UserActionState::Activated,
        2 => UserActionState::Dismissed,
        3 => UserActionState::Snoozed,
        v => return Err(unknown("user action state", v)),
    })
}

impl<'a> From<&'a Notification> for StoredNotificationRef<'a> {
    fn from(n: &'a Notification) -> Self {
        let t = n.text_parts();
        Self {
            id: n.id.to_bytes(),
            target_host_name: t.target_host_name,
            app_notification_id: t.app_notification_id,
            group_name: t.group_name,
            raw_content: t.raw_content,
            visual_content: t.title.map(|title| (title, t.body)),
            platforms: n.platforms.bits(),
            priority: priority_number(n.priority),
            display_time_to_live: n.display_time_to_live,
            expiration: timestamp_to_nanos(n.expiration),
            fallback: n
                .fallback_policy()
                .map(|f| (f.fallback_delay_seconds, f.visual_content.title, f.visual_content.body)),
            created: timestamp_to_nanos(n.created),
            last_modified: timestamp_to_nanos(n.last_modified),
            read_state: read_state_number(n.read_state),
            user_action_state: user_action_state_number(n.user_action_state),
        }
    }
}

impl StoredNotificationRef<'_> {
    /// The owned form.
    pub fn to_stored(&self) -> StoredNotification {
        StoredNotification {
            id: self.id,
            target_host_name: self.target_host_name.to_owned(),
            app_notification_id: self.app_notification_id.to_owned(),
            group_name: self.group_name.map(str::to_owned),
            raw_content: self.raw_content.map(str::to_owned),
            visual_content: self.visual_content.map(|(t, b)| (t.to_owned(), b.map(str::to_owned))),
            platforms: self.platforms,
            priority: self.priority,
            display_time_to_live: self.display_time_to_live,
            expiration: self.expiration,
            fallback: self.fallback.map(|(d, t, b)| (d, t.to_owned(), b.map(str::to_owned))),
            created: self.created,
            last_modified: self.last_modified,
            read_state: self.read_state,
            user_action_state: self.user_action_state,
        }
    }
}

impl From<&Notification> for StoredNotification {
    fn from(n: &Notification) -> Self {
        StoredNotificationRef::from(n).to_stored()
    }
}

impl TryFrom<StoredNotificationRef<'_>> for Notification {
    type Error = CodecError;

    /// Copies the strings once, into one allocation.
    fn try_from(s: StoredNotificationRef<'_>) -> Result<Self, CodecError> {
        let text = TextParts {
            target_host_name: s.target_host_name,
            app_notification_id: s.app_notification_id,
            group_name: s.group_name,
            raw_content: s.raw_content,
            title: s.visual_content.map(|v| v.0),
            body: s.visual_content.and_then(|v| v.1),
            fallback_title: s.fallback.map(|f| f.1),
            fallback_body: s.fallback.and_then(|f| f.2),
        };
        Ok(Notification::assemble(
            NotificationId::from_bytes(s.id),
            &text,
            s.fallback.map_or(0, |f| f.0),
            Platforms::from_bits(s.platforms),
            priority_of(s.priority)?,
            s.display_time_to_live,
            nanos_to_timestamp(s.expiration),
            nanos_to_timestamp(s.created),
            nanos_to_timestamp(s.last_modified),
            read_state_of(s.read_state)?,
            user_action_state_of(s.user_action_state)?,
        ))
    }
}

impl<'a> From<&'a StoredNotification> for StoredNotificationRef<'a> {
    fn from(s: &'a StoredNotification) -> Self {
        Self {
            id: s.id,
            target_host_name: &s.target_host_name,
            app_notification_id: &s.app_notification_id,
            group_name: s.group_name.as_deref(),
            raw_content: s.raw_content.as_deref(),
            visual_content: s.visual_content.as_ref().map(|(t, b)| (t.as_str(), b.as_deref())),
            platforms: s.platforms,
            priority: s.priority,
            display_time_to_live: s.display_time_to_live,
            expiration: s.expiration,
            fallback: s.fallback.as_ref().map(|(d, t, b)| (*d, t.as_str(), b.as_deref())),
            created: s.created,
            last_modified: s.last_modified,
            read_state: s.read_state,
            user_action_state: s.user_action_state,
        }
    }
}

impl TryFrom<StoredNotification> for Notification {
    type Error = CodecError;

    /// Copies the strings once, into one allocation.
    fn try_from(s: StoredNotification) -> Result<Self, CodecError> {
        Notification::try_from(StoredNotificationRef::from(&s))
    }
}

/// Encodes a notification body (bincode of [`StoredNotification`]), without copying its
/// strings first.
///
/// # Errors
/// [`CodecError::Body`] when the encoding exceeds [`MAX_DECODE_BYTES`] (checked once encoded:
/// the notification is in memory already, so this reserves at most about twice its size).
pub fn encode_notification(n: &Notification) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(512);
    encode_into(&StoredNotificationRef::from(n), &mut out)?;
    if out.len() > MAX_DECODE_BYTES {
        return Err(CodecError::Body(format!("a notification of {} bytes exceeds MAX_DECODE_BYTES", out.len())));
    }
    Ok(out)
}

/// Decodes what [`encode_notification`] wrote, copying each string once.
///
/// # Errors
/// [`CodecError::Body`] for an invalid encoding or an unknown enum number.
pub fn decode_notification(bytes: &[u8]) -> Result<Notification, CodecError> {
    decode_borrowed::<StoredNotificationRef<'_>>(bytes)?.try_into()
}

/// A notification sealed with version and checksum: what sled and Redis store as a value.
///
/// # Errors
/// As [`encode`].
pub fn seal_notification(n: &Notification) -> Result<Vec<u8>, CodecError> {
    Ok(seal(&encode_notification(n)?))
}

/// The inverse of [`seal_notification`].
///
/// # Errors
/// Any [`CodecError`]: a corrupt value is an error, never data.
pub fn unseal_notification(bytes: &[u8]) -> Result<Notification, CodecError> {
    decode_notification(unseal(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewNotification;

    fn sample() -> Notification {
        sample_with_raw("data".into())
    }

    fn sample_with_raw(raw: String) -> Notification {
        let now: jiff::Timestamp = "2026-01-01T00:00:00.123456789Z".parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut new = NewNotification::visual("app.example", "a-1", "Hello").with_group("g");
        new.payload.raw_content = Some(raw);
        new.display_time_to_live = Some(60);
        Notification::from_new(NotificationId::new_random(), new, now + jiff::SignedDuration::from_hours(2), now)
    }

    #[test]
    fn values_of_every_size_tier_round_trip_and_a_length_beyond_the_input_fails() -> Result<(), CodecError> {
        for len in [0, 1, 55, 63, 64, 127, 250, 1000, 4000, 16000, 65000, 131_000, 200_000, 300_000] {
            let value = "x".repeat(len);
            let bytes = encode(&value)?;
            assert_eq!(decode::<String>(&bytes)?, value, "length {len}");
        }
        // A string claiming 1,000,000 bytes (varint 252 then a u32) in a 5-byte input.
        let mut claim = vec![252];
        claim.extend_from_slice(&1_000_000u32.to_le_bytes());
        assert!(matches!(decode::<String>(&claim), Err(CodecError::Body(_))));
        Ok(())
    }

    /// Decoding in place takes no limit: a length claimed anywhere, up to `u64::MAX`, must
    /// fail at the end of the input, with no allocation sized by it and no panic.
    #[test]
    fn in_place_decoding_refuses_any_claimed_length_beyond_the_input() -> Result<(), CodecError> {
        let n = sample();
        let stored = StoredNotificationRef::from(&n);
        let mut body = Vec::new();
        encode_into(&(&b"user/app"[..], 7u64, Some([3u8; 16]), stored), &mut body)?;
        type Prefix<'a> = (&'a [u8], u64, Option<[u8; 16]>);
        assert_eq!(decode_borrowed_last::<Prefix<'_>, StoredNotificationRef<'_>>(&body), Ok(stored));
        let huge = {
            let mut v = vec![253];
            v.extend_from_slice(&u64::MAX.to_le_bytes());
            v
        };
        let mut refused = 0;
        // Each position where a length or a count may begin: put the huge claim there.
        for at in 0..body.len() {
            let mut damaged = body[..at].to_vec();
            damaged.extend_from_slice(&huge);
            damaged.extend_from_slice(&body[at..]);
            let decoded = decode_borrowed_last::<Prefix<'_>, StoredNotificationRef<'_>>(&damaged);
            refused += usize::from(decoded.is_err());
            assert!(decode_borrowed::<&[u8]>(&damaged[at..]).is_err());
        }
        assert!(refused > body.len() / 2, "only {refused} of {} damaged bodies were refused", body.len());
        Ok(())
    }

    #[test]
    fn sealed_notification_round_trips_exactly() {
        let n = sample();
        let bytes = seal_notification(&n).unwrap_or_default();
        assert_eq!(unseal_notification(&bytes), Ok(n));
    }

    #[test]
    fn every_flipped_bit_of_a_sealed_value_is_detected() {
        let bytes = seal_notification(&sample()).unwrap_or_default();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut copy = bytes.clone();
                copy[i] ^= 1 << bit;
                assert!(unseal_notification(&copy).is_err(), "flip at byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn encode_refuses_a_value_larger_than_the_decode_bound() {
        let fits = vec![7u8; MAX_DECODE_BYTES - 8];
        let bytes = encode(&fits).unwrap_or_default();
        assert!(bytes.len() <= MAX_DECODE_BYTES);
        assert_eq!(decode::<Vec<u8>>(&bytes), Ok(fits));
        let too_big = vec![[1u8; 16]; MAX_DECODE_BYTES / 16 + 1];
        assert!(matches!(encode(&too_big), Err(CodecError::Body(_))));
    }

    fn any_stored() -> impl proptest::strategy::Strategy<Value = StoredNotification> {
        use proptest::prelude::*;
        let text = || ".{0,40}";
        (
            (any::<[u8; 16]>(), text(), text(), proptest::option::of(text()), proptest::option::of(".{0,300}")),
            (proptest::option::of((text(), proptest::option::of(text()))), any::<u8>(), any::<u8>()),
            (
                any::<Option<u32>>(),
                any::<i64>(),
                proptest::option::of((any::<u32>(), text(), proptest::option::of(text()))),
            ),
            (any::<i64>(), any::<i64>(), any::<u8>(), any::<u8>()),
        )
            .prop_map(
                |((id, host, app, group, raw), (visual, platforms, priority), (ttl, expiration, fallback), rest)| {
                    StoredNotification {
                        id,
                        target_host_name: host,
                        app_notification_id: app,
                        group_name: group,
                        raw_content: raw,
                        visual_content: visual,
                        platforms,
                        priority,
                        display_time_to_live: ttl,
                        expiration,
                        fallback,
                        created: rest.0,
                        last_modified: rest.1,
                        read_state: rest.2,
                        user_action_state: rest.3,
                    }
                },
            )
    }

    proptest::proptest! {
        /// Format version 1 was written through serde; bincode's derived encoders must write
        /// and read the very same bytes, or stores written before would not open.
        #[test]
        fn derived_encoders_write_and_read_the_bytes_serde_wrote(stored in any_stored()) {
            let through_serde = encode(&stored).unwrap_or_default();
            let mut native = Vec::new();
            encode_into(&stored, &mut native).unwrap_or_default();
            proptest::prop_assert_eq!(&native, &through_serde);
            let mut borrowed = Vec::new();
            encode_into(&StoredNotificationRef::from(&stored), &mut borrowed).unwrap_or_default();
            proptest::prop_assert_eq!(&borrowed, &through_serde);
            let view = decode_borrowed::<StoredNotificationRef<'_>>(&through_serde);
            proptest::prop_assert_eq!(view.map(|v| v.to_stored()), Ok(stored.clone()));
            let (owned, used) = bincode::decode_from_slice::<StoredNotification, _>(&through_serde, config())
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(used, through_serde.len());
            proptest::prop_assert_eq!(owned, stored);
        }

        /// Any stored notification decodes into a `Notification` that encodes back to the same
        /// bytes: the one allocation it keeps its strings in loses no part and tells an empty
        /// string from an absent one, whatever the parts hold.
        #[test]
        fn any_stored_notification_decodes_and_encodes_back_to_the_same_bytes(mut stored in any_stored()) {
            // Only the numbers the format defines: others are refused, as another test pins.
            stored.priority %= 3;
            stored.read_state %= 2;
            stored.user_action_state %= 4;
            stored.platforms = Platforms::from_bits(stored.platforms).bits();
            let bytes = encode(&stored).unwrap_or_default();
            let n = decode_notification(&bytes).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(n.group_name(), stored.group_name.as_deref());
            proptest::prop_assert_eq!(n.payload().raw_content, stored.raw_content.as_deref());
            proptest::prop_assert_eq!(StoredNotification::from(&n), stored.clone());
            proptest::prop_assert_eq!(encode_notification(&n).unwrap_or_default(), bytes);
            proptest::prop_assert_eq!(Notification::try_from(stored), Ok(n));
        }

        /// The hand-written borrowed decoder accepts exactly the bytes bincode's derived one
        /// accepts, and reads the same value from them: checked on encodings with one byte
        /// overwritten (a string that is no longer UTF-8, a bad option tag, a wrong length).
        #[test]
        fn the_borrowed_decoder_agrees_with_the_derived_one_on_damaged_bytes(
            stored in any_stored(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let mut bytes = encode(&stored).unwrap_or_default();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let view = decode_borrowed::<StoredNotificationRef<'_>>(&bytes).map(|v| v.to_stored()).ok();
            let derived = bincode::decode_from_slice::<StoredNotification, _>(&bytes, config())
                .ok()
                .filter(|(_, used)| *used == bytes.len())
                .map(|(value, _)| value);
            proptest::prop_assert_eq!(view, derived);
        }
    }

    #[test]
    fn a_long_string_that_is_not_utf8_is_an_error() {
        let n = sample_with_raw("x".repeat(200));
        let mut bytes = encode_notification(&n).unwrap_or_default();
        let at = bytes.windows(200).position(|w| w.iter().all(|&b| b == b'x')).unwrap_or_default() + 150;
        for bad in [0xFF, 0xC0, 0x80] {
            bytes[at] = bad;
            let error = decode_notification(&bytes).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("a string that is not UTF-8"), "byte {bad:#x}: {error}");
        }
        bytes[at] = b'y';
        assert!(decode_notification(&bytes).is_ok());
    }

    #[test]
    fn a_notification_decodes_to_what_was_encoded_and_bad_enum_numbers_are_errors() {
        let n = sample();
        let bytes = encode_notification(&n).unwrap_or_default();
        assert_eq!(bytes, encode(&StoredNotification::from(&n)).unwrap_or_default());
        assert_eq!(decode_notification(&bytes), Ok(n.clone()));
        let mut stored = StoredNotification::from(&n);
        stored.user_action_state = 4;
        let bad = encode(&stored).unwrap_or_default();
        assert_eq!(decode_notification(&bad), Err(CodecError::Body("unknown user action state 4".into())));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(decode_notification(&trailing), Err(CodecError::Body(_))));
        assert!(matches!(decode_notification(&bytes[..bytes.len() - 1]), Err(CodecError::Body(_))));
    }

    #[test]
    fn a_notification_just_under_the_size_bound_decodes() {
        let rest = encode_notification(&sample_with_raw(String::new())).unwrap_or_default().len();
        // The raw content's length prefix grows from 1 byte to 5.
        let n = sample_with_raw("x".repeat(MAX_DECODE_BYTES - rest - 4));
        let bytes = encode_notification(&n).unwrap_or_default();
        assert_eq!(bytes.len(), MAX_DECODE_BYTES);
        // bincode counts 8 bytes per integer read against its limit: a limit of exactly
        // MAX_DECODE_BYTES refused this.
        assert_eq!(decode_notification(&bytes), Ok(n));
    }

    #[test]
    fn truncated_and_foreign_versions_are_errors() {
        assert_eq!(unseal(&[1, 2]), Err(CodecError::Truncated { len: 2 }));
        let mut bytes = seal(b"x");
        bytes[0] = 9;
        assert_eq!(unseal(&bytes), Err(CodecError::UnknownVersion(9)));
    }
}
