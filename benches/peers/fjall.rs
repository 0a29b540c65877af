//! fjall 2 (an LSM-tree): three partitions (records by (feed, seq), app ids by (feed, app id),
//! expirations by (expiration, seq)), written together in one atomic batch per operation.
//! Buffered commits with `PersistMode::Buffer` (the journal reaches the OS); durable with
//! `PersistMode::SyncData` (the journal is fdatasync'd).
//!
//! fjall's batch is atomic but not isolated: the app id check before the batch is a plain read.
//! This workload never races two writers on one app id, so it costs fjall nothing here.

use std::path::Path;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, decode_live, keys};

/// The fjall peer.
pub struct Fjall {
    keyspace: Keyspace,
    records: PartitionHandle,
    apps: PartitionHandle,
    expiry: PartitionHandle,
    persist: PersistMode,
}

/// Opens (or creates) a keyspace in `dir/fjall`.
pub fn open(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    let keyspace = Config::new(dir.join("fjall")).open()?;
    let options = PartitionCreateOptions::default;
    Ok(Box::new(Fjall {
        records: keyspace.open_partition("records", options())?,
        apps: keyspace.open_partition("apps", options())?,
        expiry: keyspace.open_partition("expiry", options())?,
        keyspace,
        persist: if mode == Mode::Durable { PersistMode::SyncData } else { PersistMode::Buffer },
    }))
}

impl Fjall {
    fn write(&self, records: &[Record], persist: PersistMode) -> BenchResult<()> {
        let mut batch = self.keyspace.batch().durability(Some(persist));
        for record in records {
            let app_key = keys::app(record.feed, &record.app_id);
            // A replacement removes the live record with the same app id first.
            if let Some(old) = self.apps.get(&app_key)? {
                let old_seq = u64::from_be_bytes(old.as_ref().try_into()?);
                batch.remove(&self.records, keys::record(record.feed, old_seq));
            }
            batch.insert(&self.records, keys::record(record.feed, record.seq), record.body.as_slice());
            batch.insert(&self.apps, app_key, record.seq.to_be_bytes());
            batch.insert(
                &self.expiry,
                keys::expiry(record.expiration_nanos, record.seq),
                keys::expiry_value(record.feed, &record.app_id),
            );
        }
        batch.commit()?;
        Ok(())
    }
}

impl Peer for Fjall {
    fn append(&self, record: Record) -> BenchResult<()> {
        self.write(std::slice::from_ref(&record), self.persist)
    }

    fn load(&self, records: &[Record]) -> BenchResult<()> {
        for chunk in records.chunks(1_000) {
            self.write(chunk, PersistMode::Buffer)?;
        }
        self.sync()
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        let mut out = Vec::with_capacity(limit);
        for entry in self.records.prefix(keys::feed_prefix(feed)).rev() {
            let (_, body) = entry?;
            if let Some(n) = decode_live(&body, now_nanos)? {
                out.push(n);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        let Some(seq) = self.apps.get(keys::app(feed, app_id))? else { return Ok(None) };
        let seq = u64::from_be_bytes(seq.as_ref().try_into()?);
        match self.records.get(keys::record(feed, seq))? {
            Some(body) => decode_live(&body, now_nanos),
            None => Ok(None),
        }
    }

    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome> {
        let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncData));
        let mut removed = 0;
        for entry in self.expiry.range(..keys::expiry_end(now_nanos)) {
            let (key, value) = entry?;
            let seq = keys::seq_of(&key).ok_or("short expiry key")?;
            let (feed, app_id) = keys::parse_expiry_value(&value).ok_or("bad expiry value")?;
            batch.remove(&self.records, keys::record(feed, seq));
            let app_key = keys::app(feed, app_id);
            // Only when the app id still names this record (not a later replacement).
            if self.apps.get(&app_key)?.is_some_and(|v| v.as_ref() == seq.to_be_bytes()) {
                batch.remove(&self.apps, app_key);
            }
            batch.remove(&self.expiry, key);
            removed += 1;
        }
        batch.commit()?;
        Ok(SweepOutcome { removed, bytes_rewritten: None })
    }

    fn sync(&self) -> BenchResult<()> {
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
