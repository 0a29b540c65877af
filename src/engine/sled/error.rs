//! Turning sled's errors into [`StoreError`]s that say what the engine was doing and where.

use std::path::Path;

use sled::transaction::TransactionError;

use crate::store::StoreError;

/// Maps a sled error met while doing `operation` on the database at `path`.
///
/// * I/O errors keep the OS error; sled's "could not acquire lock" (another process, or another
///   open store in this process, holds the directory) becomes [`StoreError::Locked`].
/// * sled's own corruption detection becomes [`StoreError::Corruption`] at the database path.
/// * Anything else is [`StoreError::Backend`].
pub(crate) fn from_sled(operation: &'static str, path: &Path, error: sled::Error) -> StoreError {
    let path_text = path.display().to_string();
    match error {
        // sled reports a held lock only as an `Other` I/O error with this text; nothing else
        // distinguishes it.
        sled::Error::Io(source) if source.to_string().contains("could not acquire lock") => {
            StoreError::Locked { path: path_text }
        }
        sled::Error::Io(source) => StoreError::Io { operation, path: path_text, source },
        sled::Error::Corruption { at, .. } => StoreError::Corruption {
            location: format!("sled database {path_text} at {at:?}"),
            detail: format!("sled detected corruption while {operation}"),
        },
        other => StoreError::Backend { engine: "sled", detail: format!("{operation} {path_text}: {other}") },
    }
}

/// Maps the error of a transaction that never aborts (its closure only applies batches).
pub(crate) fn from_transaction(path: &Path, error: TransactionError<()>) -> StoreError {
    match error {
        TransactionError::Storage(e) => from_sled("committing a transaction in", path, e),
        TransactionError::Abort(()) => StoreError::Backend {
            engine: "sled",
            detail: format!("a transaction on {} aborted unexpectedly", path.display()),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lock_errors_become_locked_and_other_io_keeps_the_operation() {
        let path = Path::new("/data/feeds");
        let locked = sled::Error::Io(std::io::Error::other("could not acquire lock on \"/data/feeds/db\": busy"));
        assert!(matches!(from_sled("opening", path, locked), StoreError::Locked { path } if path == "/data/feeds"));
        let io = sled::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let message = from_sled("flushing", path, io).to_string();
        assert!(message.contains("flushing") && message.contains("/data/feeds"), "{message}");
        let other = from_sled("opening", path, sled::Error::Unsupported("x".into()));
        assert!(matches!(other, StoreError::Backend { engine: "sled", .. }));
    }
}
