//! The watermark file: what must survive the unlinking of segments. Written atomically
//! (temporary file, sync, rename, directory sync) before a sweep unlinks anything. Its layout
//! is in `FORMAT.md` ("Watermark file").

use std::path::Path;
use std::sync::Arc;

use super::fs::FileSystem;
use super::segment::io_error;
use crate::StoreError;

/// The watermark file's name.
pub(crate) const WATERMARK_FILE: &str = "WATERMARK";
pub(crate) const TEMPORARY_FILE: &str = "WATERMARK.tmp";
const VERSION: u8 = 2;
/// Version 1's length: no unlink in progress.
const LEN_V1: usize = 1 + 8 + 8 + 4 + 8 + 8 + 4;
const LEN: usize = LEN_V1 + 8 + 4;

/// The persisted floors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Watermark {
    /// The LSN lease: no LSN below this is ever assigned again, and none at or above it is
    /// assigned before the lease is raised durably.
    pub lsn_floor: u64,
    /// Every sequence at or below this may have been handed out (in a change token) before
    /// the segments holding it were unlinked: feeds never report a latest sequence below it.
    pub sequence_floor: u64,
    /// No segment id below this is ever created again.
    pub segment_id_floor: u32,
    /// The latest expiration listed by an `Expired` record in an unlinked segment: expirations
    /// up to it are forgotten after a restart. `i64::MIN` when none.
    pub expirations_unlinked_through: i64,
    /// Removals with sequences at or below this may have been unlinked: forgotten after a
    /// restart.
    pub removals_unlinked_through: u64,
    /// The last sweep's unlinking: every segment whose window ends at or before this and whose
    /// id is below [`Watermark::unlinking_ids_below`] is to go. A sweep cut short leaves some
    /// of them; recovery removes them before it reads any, so no state between the first unlink
    /// and the last is ever opened. `i64::MIN` when none.
    pub unlinking_windows_through: i64,
    /// The next segment id when that sweep began unlinking: the segments created since (a
    /// clock set back may create one for a passed window) are not its.
    pub unlinking_ids_below: u32,
}

impl Default for Watermark {
    fn default() -> Self {
        Self {
            lsn_floor: 1,
            sequence_floor: 0,
            segment_id_floor: 1,
            expirations_unlinked_through: i64::MIN,
            removals_unlinked_through: 0,
            unlinking_windows_through: i64::MIN,
            unlinking_ids_below: 0,
        }
    }
}

impl Watermark {
    /// Version 1 while no unlinking is named (before the first sweep that unlinked, so that
    /// a build reading only version 1 still opens such a store), version 2 once one is.
    fn encode(&self) -> Vec<u8> {
        let named = self.unlinking_windows_through != i64::MIN || self.unlinking_ids_below != 0;
        let mut b = Vec::with_capacity(LEN);
        b.push(if named { VERSION } else { 1 });
        b.extend_from_slice(&self.lsn_floor.to_le_bytes());
        b.extend_from_slice(&self.sequence_floor.to_le_bytes());
        b.extend_from_slice(&self.segment_id_floor.to_le_bytes());
        b.extend_from_slice(&self.expirations_unlinked_through.to_le_bytes());
        b.extend_from_slice(&self.removals_unlinked_through.to_le_bytes());
        if named {
            b.extend_from_slice(&self.unlinking_windows_through.to_le_bytes());
            b.extend_from_slice(&self.unlinking_ids_below.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Version 2, or version 1 (which names no unlinking).
    fn decode(b: &[u8]) -> Option<Self> {
        let body = match (b.first(), b.len()) {
            (Some(1), LEN_V1) => LEN_V1 - 4,
            (Some(&VERSION), LEN) => LEN - 4,
            _ => return None,
        };
        let crc = u32::from_le_bytes([b[body], b[body + 1], b[body + 2], b[body + 3]]);
        if crc != crc32fast::hash(&b[..body]) {
            return None;
        }
        let u64_at = |i: usize| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[i..i + 8]);
            a
        };
        Some(Self {
            lsn_floor: u64::from_le_bytes(u64_at(1)),
            sequence_floor: u64::from_le_bytes(u64_at(9)),
            segment_id_floor: u32::from_le_bytes([b[17], b[18], b[19], b[20]]),
            expirations_unlinked_through: i64::from_le_bytes(u64_at(21)),
            removals_unlinked_through: u64::from_le_bytes(u64_at(29)),
            unlinking_windows_through: if body > 37 { i64::from_le_bytes(u64_at(37)) } else { i64::MIN },
            unlinking_ids_below: if body > 37 { u32::from_le_bytes([b[45], b[46], b[47], b[48]]) } else { 0 },
        })
    }

    /// Reads the watermark of `dir` (the default when there is none).
    ///
    /// # Errors
    /// [`StoreError::Corruption`] when the file fails its checksum; [`StoreError::Io`].
    pub fn load(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(WATERMARK_FILE);
        let file = match fs.open(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_error("opening", &path, e)),
        };
        let len = file.size().map_err(|e| io_error("reading", &path, e))?;
        let mut buf = vec![0; usize::try_from(len).unwrap_or(0).min(LEN + 1)];
        file.read_exact_at(&mut buf, 0).map_err(|e| io_error("reading", &path, e))?;
        Self::decode(&buf).ok_or_else(|| StoreError::Corruption {
            location: path.display().to_string(),
            detail: "watermark file fails its checksum or has an unknown version".into(),
        })
    }

    /// Writes the watermark atomically.
    ///
    /// # Errors
    /// [`StoreError::Io`]; the store must poison.
    pub fn store(&self, fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<(), StoreError> {
        // IMPORTANT 5: the new watermark is durable before it replaces the old one, and the
        // rename is durable before any segment it covers is unlinked.
        super::replace_file_durably(fs, dir, TEMPORARY_FILE, WATERMARK_FILE, &self.encode())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::engine::log::fs::FaultFileSystem;

    #[test]
    fn watermark_round_trips_through_a_crash() {
        let fault = FaultFileSystem::new();
        let dir = Path::new("/w");
        fault.create_dir_all(dir).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        assert_eq!(Watermark::load(&fs, dir).unwrap(), Watermark::default());
        let w = Watermark {
            lsn_floor: 99,
            sequence_floor: 98,
            segment_id_floor: 7,
            expirations_unlinked_through: -9,
            removals_unlinked_through: 5,
            unlinking_windows_through: 1 << 40,
            unlinking_ids_below: 6,
        };
        w.store(&fs, dir).unwrap();
        let after: Arc<dyn FileSystem> = Arc::new(fault.crash(None));
        assert_eq!(Watermark::load(&after, dir).unwrap(), w);
    }

    #[test]
    fn a_version_1_watermark_loads_with_no_unlinking_named() {
        let fault = FaultFileSystem::new();
        let dir = Path::new("/w");
        fault.create_dir_all(dir).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        // Version 1's bytes: the fields it had, then their crc32.
        let mut v1 = vec![1u8];
        for field in [99u64, 98] {
            v1.extend_from_slice(&field.to_le_bytes());
        }
        v1.extend_from_slice(&7u32.to_le_bytes());
        v1.extend_from_slice(&(-9i64).to_le_bytes());
        v1.extend_from_slice(&5u64.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        fault.open(&dir.join(WATERMARK_FILE), true).unwrap().write_all_at(&v1, 0).unwrap();
        let loaded = Watermark::load(&fs, dir).unwrap();
        let expected = Watermark {
            lsn_floor: 99,
            sequence_floor: 98,
            segment_id_floor: 7,
            expirations_unlinked_through: -9,
            removals_unlinked_through: 5,
            ..Watermark::default()
        };
        assert_eq!(loaded, expected);
        // Written again, it is still version 1: it names no unlinking.
        assert_eq!(expected.encode(), fault.read_all(&dir.join(WATERMARK_FILE)).unwrap());
        // A version 1 byte on version 2's length is refused, and so is the reverse.
        let named = Watermark { unlinking_windows_through: 0, unlinking_ids_below: 3, ..expected };
        assert_eq!(named.encode().len(), LEN);
        let mut wrong = named.encode();
        wrong[0] = 1;
        fault.overwrite(&dir.join(WATERMARK_FILE), wrong);
        assert!(Watermark::load(&fs, dir).is_err());
        v1[0] = 2;
        fault.overwrite(&dir.join(WATERMARK_FILE), v1);
        assert!(Watermark::load(&fs, dir).is_err());
    }

    #[test]
    fn a_corrupt_watermark_refuses_to_load() {
        let fault = FaultFileSystem::new();
        let dir = Path::new("/w");
        fault.create_dir_all(dir).unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        Watermark::default().store(&fs, dir).unwrap();
        let path = dir.join(WATERMARK_FILE);
        let mut bytes = fault.read_all(&path).unwrap();
        bytes[3] ^= 1;
        fault.overwrite(&path, bytes);
        assert!(matches!(Watermark::load(&fs, dir), Err(StoreError::Corruption { .. })));
    }
}
