//! The sled database, its named trees, and the write set one operation commits atomically.
//!
//! | tree                  | key (see `keys`)          | value (see `values`)          |
//! |-----------------------|---------------------------|-------------------------------|
//! | `catalog`             | `next_feed`, `sequence`   | next feed number, last sequence |
//! | `feeds`               | feed key bytes            | its feed number               |
//! | `feed_meta`           | feed                      | sequence, horizons, counts    |
//! | `notifications`       | feed, id                  | position, sequence, notification |
//! | `positions`           | feed, position            | id                            |
//! | `app_ids`             | feed, app notification id | id                            |
//! | `upserts`             | feed, sequence            | id (its last change)          |
//! | `removals`            | feed, sequence            | id, reason                    |
//! | `expiry`              | expiration, feed, id      | empty: stored notifications   |
//! | `feed_expiry`         | feed, expiration, id      | empty: stored notifications   |
//! | `expired_log`         | feed, expiration, id      | empty: swept expirations      |
//! | `expired_log_by_time` | expiration, feed, id      | empty: swept expirations      |
//!
//! `feeds` and `feed_meta` entries are never removed: a feed's sequence and forgotten horizons
//! outlive its notifications, so its tokens stay meaningful after it empties.
//!
//! Every operation reads what it needs under the store's writer lock, collects its writes in a
//! [`WriteSet`] (one `sled::Batch` per tree), and commits them in one sled transaction over all
//! trees, so a crash never leaves an index without its notification or a sequence without its
//! change.

use std::fs::File;
use std::path::{Path, PathBuf};

use sled::Transactional;

use crate::store::StoreError;

use super::error::{from_sled, from_transaction};

/// The trees of a sled store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeName {
    Catalog,
    Feeds,
    FeedMeta,
    Notifications,
    Positions,
    AppIds,
    Upserts,
    Removals,
    Expiry,
    FeedExpiry,
    ExpiredLog,
    ExpiredLogByTime,
}

impl TreeName {
    /// Every tree, in the order they are opened and held.
    const ALL: [TreeName; 12] = [
        TreeName::Catalog,
        TreeName::Feeds,
        TreeName::FeedMeta,
        TreeName::Notifications,
        TreeName::Positions,
        TreeName::AppIds,
        TreeName::Upserts,
        TreeName::Removals,
        TreeName::Expiry,
        TreeName::FeedExpiry,
        TreeName::ExpiredLog,
        TreeName::ExpiredLogByTime,
    ];

    /// The tree's name in sled (and in error locations).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TreeName::Catalog => "catalog",
            TreeName::Feeds => "feeds",
            TreeName::FeedMeta => "feed_meta",
            TreeName::Notifications => "notifications",
            TreeName::Positions => "positions",
            TreeName::AppIds => "app_ids",
            TreeName::Upserts => "upserts",
            TreeName::Removals => "removals",
            TreeName::Expiry => "expiry",
            TreeName::FeedExpiry => "feed_expiry",
            TreeName::ExpiredLog => "expired_log",
            TreeName::ExpiredLogByTime => "expired_log_by_time",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The open database and its trees.
pub(crate) struct Trees {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    path: PathBuf,
    /// sled's data file (`<path>/db`), opened again to fdatasync it: see [`Trees::flush`].
    data_file: File,
    /// Its path, for errors.
    data_file_path: PathBuf,
}

impl Trees {
    /// Opens (creating when absent) the database at `path` and every tree, with sled set up by
    /// `config` (a fresh `sled::Config`; its builder methods refuse a cloned one).
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another open store holds the directory; I/O, corruption and
    /// backend errors from sled.
    pub(crate) fn open(path: &Path, config: sled::Config) -> Result<Self, StoreError> {
        let db = config.path(path).open().map_err(|e| from_sled("opening", path, e))?;
        let trees = TreeName::ALL
            .iter()
            .map(|name| db.open_tree(name.as_str()).map_err(|e| from_sled("opening a tree of", path, e)))
            .collect::<Result<Vec<_>, _>>()?;
        // sled keeps everything in one file named `db` inside its directory (sled 0.34).
        let data_file_path = path.join("db");
        let data_file = File::open(&data_file_path).map_err(|source| StoreError::Io {
            operation: "opening",
            path: data_file_path.display().to_string(),
            source,
        })?;
        Ok(Self { db, trees, path: path.to_owned(), data_file, data_file_path })
    }

    /// The directory of the database.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// One tree, for reads.
    pub(crate) fn tree(&self, name: TreeName) -> &sled::Tree {
        &self.trees[name.index()]
    }

    /// Reads one key.
    ///
    /// # Errors
    /// sled errors, mapped.
    pub(crate) fn get(&self, name: TreeName, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        self.tree(name).get(key).map_err(|e| self.read_error(e))
    }

    /// Maps an error met while reading.
    pub(crate) fn read_error(&self, error: sled::Error) -> StoreError {
        from_sled("reading", &self.path, error)
    }

    /// Applies `writes` atomically across trees. Durable only after [`Trees::flush`].
    ///
    /// # Errors
    /// sled errors, mapped; nothing of `writes` is visible then.
    pub(crate) fn commit(&self, writes: WriteSet) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        // Only the trees this operation writes take part: sled's per-tree transaction overhead
        // is paid for them alone.
        let (trees, batches): (Vec<&sled::Tree>, Vec<sled::Batch>) =
            self.trees.iter().zip(writes.batches).filter_map(|(tree, batch)| Some((tree, batch?))).unzip();
        trees[..]
            .transaction(|views| {
                for (view, batch) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                Ok(())
            })
            .map_err(|e| from_transaction(&self.path, e))
    }

    /// Makes everything committed so far durable.
    ///
    /// # Errors
    /// [`StoreError::Io`] and other sled errors, mapped.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        // 1. sled writes its buffers to the file; on Linux it waits with `sync_file_range`,
        //    which neither flushes the drive's cache nor the file's metadata.
        self.db.flush().map_err(|e| from_sled("flushing", &self.path, e))?;
        // 2. IMPORTANT: so fdatasync the file as well; only then is it on disk through a power
        //    loss.
        self.data_file.sync_data().map_err(|source| StoreError::Io {
            operation: "syncing",
            path: self.data_file_path.display().to_string(),
            source,
        })
    }
}

/// The writes of one operation, one batch per tree, committed together by [`Trees::commit`].
///
/// Within one tree, a later write of a key wins over an earlier one (sled's `Batch`).
pub(crate) struct WriteSet {
    batches: Vec<Option<sled::Batch>>,
}

impl Default for WriteSet {
    fn default() -> Self {
        Self { batches: TreeName::ALL.iter().map(|_| None).collect() }
    }
}

impl WriteSet {
    /// Whether nothing was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.iter().all(Option::is_none)
    }

    fn batch(&mut self, name: TreeName) -> &mut sled::Batch {
        self.batches[name.index()].get_or_insert_with(sled::Batch::default)
    }

    /// Sets `key` to `value` in `name`.
    pub(crate) fn insert(&mut self, name: TreeName, key: &[u8], value: impl Into<sled::IVec>) {
        self.batch(name).insert(key, value);
    }

    /// Removes `key` from `name`.
    pub(crate) fn remove(&mut self, name: TreeName, key: &[u8]) {
        self.batch(name).remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tree_names_are_distinct_and_indexed_in_order() {
        for (i, name) in TreeName::ALL.iter().enumerate() {
            assert_eq!(name.index(), i);
        }
        let mut names: Vec<_> = TreeName::ALL.iter().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TreeName::ALL.len());
    }

    #[test]
    fn a_write_set_commits_across_trees_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let trees = Trees::open(dir.path(), sled::Config::new().temporary(true)).unwrap();
        let mut writes = WriteSet::default();
        assert!(writes.is_empty());
        writes.insert(TreeName::Feeds, b"a", b"1".to_vec());
        writes.insert(TreeName::Positions, b"b", b"2".to_vec());
        writes.remove(TreeName::Positions, b"b");
        trees.commit(writes).unwrap();
        assert_eq!(trees.get(TreeName::Feeds, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(trees.get(TreeName::Positions, b"b").unwrap(), None);
    }
}
