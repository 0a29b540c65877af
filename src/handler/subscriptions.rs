//! UNS subscriptions: the id an app service passes as `X-UNS-ID`, resolving to a user and the
//! app's host name until it expires.
//!
//! The table is independent of the [`crate::FeedStore`]: a map in memory, persisted (when the
//! handler has a data directory) as one small JSON file, `subscriptions.json`, rewritten whole on
//! every change:
//!
//! ```json
//! {"version": 1, "subscriptions": [
//!   {"id": "…uuid…", "userId": "alice", "appId": "demo", "appHostName": "demo.notifeed.local",
//!    "expirationDateTime": "2026-02-01T00:00:00Z"}]}
//! ```
//!
//! A create or delete returns only once the new file is durable. Expired subscriptions are
//! dropped from the file at the next rewrite. Cost: O(subscriptions) per change, which suits the
//! expected handful per user; it is not meant for millions of subscriptions.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::handler::errors::HandlerError;

/// The file name inside the data directory.
pub const SUBSCRIPTIONS_FILE: &str = "subscriptions.json";

/// One UNS subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The id (`X-UNS-ID`): a random UUID.
    pub id: String,
    /// The user the subscription targets.
    pub user_id: String,
    /// The app that created it; only that app may use it.
    pub app_id: String,
    /// The app's host name, lower-cased: the feed is `(user, host name)`.
    pub app_host_name: String,
    /// From this instant on, the subscription is unknown.
    #[serde(with = "timestamp_text")]
    pub expiration_date_time: Timestamp,
}

/// Timestamps as RFC 3339 text in the file.
mod timestamp_text {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    subscriptions: Vec<Subscription>,
}

/// The subscription table.
///
/// Lookups lock `table` only briefly; a change holds `writer` (one change at a time) while it
/// writes the file, and swaps the new table in after, so lookups never wait for the disk.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    file: Option<PathBuf>,
    table: Mutex<HashMap<String, Subscription>>,
    writer: Mutex<()>,
}

impl Subscriptions {
    /// Opens the table of `data_dir` (reading its file when it exists), or an in-memory table.
    ///
    /// # Errors
    /// [`HandlerError::Internal`] naming the file when it cannot be read or parsed.
    pub(crate) fn open(data_dir: Option<&Path>) -> Result<Self, HandlerError> {
        let file = data_dir.map(|d| d.join(SUBSCRIPTIONS_FILE));
        let mut table = HashMap::new();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let parsed: FileFormat = serde_json::from_slice(&bytes)
                        .map_err(|e| HandlerError::Internal(format!("cannot parse {}: {e}", path.display())))?;
                    if parsed.version != 1 {
                        return Err(HandlerError::Internal(format!(
                            "{} has version {}; this build reads version 1",
                            path.display(),
                            parsed.version
                        )));
                    }
                    table = parsed.subscriptions.into_iter().map(|s| (s.id.clone(), s)).collect();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HandlerError::Internal(format!("cannot read {}: {e}", path.display()))),
            }
        }
        Ok(Self { file, table: Mutex::new(table), writer: Mutex::new(()) })
    }

    /// The live subscription with this id at `now`.
    pub(crate) fn get(&self, id: &str, now: Timestamp) -> Option<Subscription> {
        self.table.lock().get(id).filter(|s| s.expiration_date_time > now).cloned()
    }

    /// Adds a subscription, unless its app already holds `max_per_app` live ones; durable on
    /// return.
    ///
    /// # Errors
    /// [`HandlerError::Forbidden`] when the app is at `max_per_app`; [`HandlerError::Internal`]
    /// when the file cannot be written (the table is unchanged either way).
    pub(crate) fn insert(
        &self,
        subscription: Subscription,
        now: Timestamp,
        max_per_app: usize,
    ) -> Result<(), HandlerError> {
        let _writer = self.writer.lock();
        let mut next = self.table.lock().clone();
        next.retain(|_, s| s.expiration_date_time > now);
        if next.values().filter(|s| s.app_id == subscription.app_id).count() >= max_per_app {
            return Err(HandlerError::Forbidden {
                reason: format!(
                    "the app already holds {max_per_app} live subscriptions (subscriptions.max_per_app): \
                     end one with DELETE /subscriptions/{{id}} first"
                ),
            });
        }
        next.insert(subscription.id.clone(), subscription);
        self.persist(&next)?;
        *self.table.lock() = next;
        Ok(())
    }

    /// Removes the subscription `id` if `app_id` owns it and it is live; durable on return.
    /// Returns whether it was removed.
    ///
    /// # Errors
    /// [`HandlerError::Internal`] when the file cannot be written (the table is unchanged).
    pub(crate) fn remove(&self, id: &str, app_id: &str, now: Timestamp) -> Result<bool, HandlerError> {
        let _writer = self.writer.lock();
        let mut next = self.table.lock().clone();
        if !next.get(id).is_some_and(|s| s.app_id == app_id && s.expiration_date_time > now) {
            return Ok(false);
        }
        next.retain(|k, s| s.expiration_date_time > now && k != id);
        self.persist(&next)?;
        *self.table.lock() = next;
        Ok(true)
    }

    fn persist(&self, table: &HashMap<String, Subscription>) -> Result<(), HandlerError> {
        let Some(path) = &self.file else { return Ok(()) };
        let mut subscriptions: Vec<Subscription> = table.values().cloned().collect();
        subscriptions.sort_by(|a, b| a.id.cmp(&b.id));
        let bytes = serde_json::to_vec_pretty(&FileFormat { version: 1, subscriptions })
            .map_err(|e| HandlerError::Internal(format!("cannot encode subscriptions: {e}")))?;
        let tmp = path.with_extension("json.tmp");
        let fail =
            |what: &str, p: &Path, e: std::io::Error| HandlerError::Internal(format!("{what} {}: {e}", p.display()));
        // IMPORTANT: 1. write and fsync a temporary file, 2. rename it over the old one,
        // 3. fsync the directory so the rename itself survives a crash. A crash at any point
        // leaves either the old or the new file whole.
        let mut file = std::fs::File::create(&tmp).map_err(|e| fail("cannot create", &tmp, e))?;
        file.write_all(&bytes).map_err(|e| fail("cannot write", &tmp, e))?;
        file.sync_all().map_err(|e| fail("cannot sync", &tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| fail("cannot rename onto", path, e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("cannot sync", dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn sub(id: &str, expires: Timestamp) -> Subscription {
        Subscription {
            id: id.into(),
            user_id: "alice".into(),
            app_id: "demo".into(),
            app_host_name: "demo.example".into(),
            expiration_date_time: expires,
        }
    }

    #[test]
    fn subscriptions_survive_reopen_and_expire_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = now + SignedDuration::from_hours(1);
        let table = Subscriptions::open(Some(dir.path())).unwrap();
        table.insert(sub("s1", later), now, 10).unwrap();
        drop(table);
        let table = Subscriptions::open(Some(dir.path())).unwrap();
        assert_eq!(table.get("s1", now), Some(sub("s1", later)));
        assert_eq!(table.get("s1", later), None);
        assert_eq!(table.get("s2", now), None);
    }

    #[test]
    fn only_the_owner_removes_a_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let table = Subscriptions::open(Some(dir.path())).unwrap();
        table.insert(sub("s1", now + SignedDuration::from_hours(1)), now, 10).unwrap();
        assert!(!table.remove("s1", "other-app", now).unwrap());
        assert!(table.remove("s1", "demo", now).unwrap());
        assert!(!table.remove("s1", "demo", now).unwrap());
        drop(table);
        assert_eq!(Subscriptions::open(Some(dir.path())).unwrap().get("s1", now), None);
    }

    #[cfg(unix)]
    #[test]
    fn lookups_do_not_wait_for_a_change_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = now + SignedDuration::from_hours(1);
        let table = std::sync::Arc::new(Subscriptions::open(Some(dir.path())).unwrap());
        table.insert(sub("s1", later), now, 10).unwrap();
        // The temporary file is a FIFO: the next write blocks opening it until a reader comes.
        let fifo = dir.path().join(SUBSCRIPTIONS_FILE).with_extension("json.tmp");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let writer = {
            let table = std::sync::Arc::clone(&table);
            std::thread::spawn(move || table.insert(sub("s2", later), now, 10))
        };
        // A lookup, meanwhile, answers from memory.
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = {
            let table = std::sync::Arc::clone(&table);
            std::thread::spawn(move || sender.send(table.get("s1", now)).unwrap())
        };
        let looked_up = receiver.recv_timeout(std::time::Duration::from_secs(60));
        // Release the writer: read the FIFO (its sync fails on a pipe, so the insert fails).
        drop(std::fs::read(&fifo).unwrap());
        assert_eq!(looked_up.unwrap(), Some(sub("s1", later)), "the lookup waited for the write");
        assert!(writer.join().unwrap().is_err());
        reader.join().unwrap();
        // The failed insert changed nothing.
        assert_eq!(table.get("s2", now), None);
    }

    #[test]
    fn corrupt_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUBSCRIPTIONS_FILE), b"{not json").unwrap();
        let err = Subscriptions::open(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains(SUBSCRIPTIONS_FILE), "{err}");
    }
}
