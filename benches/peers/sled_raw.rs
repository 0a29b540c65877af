//! sled 0.34 used directly: three trees (records by (feed, seq), app ids by (feed, app id),
//! expirations by (expiration, seq)), written together in one sled transaction per operation.
//! Buffered is sled's default (its log is flushed in the background every 500 ms); durable
//! calls `Db::flush` (which fsyncs) after each transaction.

use std::path::Path;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, decode_live, keys};

/// The sled peer.
pub struct SledRaw {
    db: sled::Db,
    records: sled::Tree,
    apps: sled::Tree,
    expiry: sled::Tree,
    durable: bool,
}

/// Opens (or creates) a sled database in `dir/sled`.
pub fn open(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    let db = sled::open(dir.join("sled"))?;
    Ok(Box::new(SledRaw {
        records: db.open_tree("records")?,
        apps: db.open_tree("apps")?,
        expiry: db.open_tree("expiry")?,
        db,
        durable: mode == Mode::Durable,
    }))
}

type TxResult = Result<(), ConflictableTransactionError<()>>;

impl SledRaw {
    fn write(&self, batch: &[Record]) -> BenchResult<()> {
        (&self.records, &self.apps, &self.expiry)
            .transaction(|(records, apps, expiry)| -> TxResult {
                for record in batch {
                    let app_key = keys::app(record.feed, &record.app_id);
                    // A replacement removes the live record with the same app id first.
                    if let Some(old) = apps.get(&app_key)? {
                        let old_seq = u64::from_be_bytes(old.as_ref().try_into().unwrap_or([0; 8]));
                        records.remove(keys::record(record.feed, old_seq))?;
                    }
                    records.insert(keys::record(record.feed, record.seq), record.body.as_slice())?;
                    apps.insert(app_key, &record.seq.to_be_bytes())?;
                    expiry.insert(
                        keys::expiry(record.expiration_nanos, record.seq),
                        keys::expiry_value(record.feed, &record.app_id),
                    )?;
                }
                Ok(())
            })
            .map_err(|e| format!("sled transaction: {e:?}"))?;
        Ok(())
    }
}

impl Peer for SledRaw {
    fn append(&self, record: Record) -> BenchResult<()> {
        self.write(std::slice::from_ref(&record))?;
        if self.durable {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Preparation only: one sled batch per tree and chunk (atomic per tree, not across them).
    fn load(&self, records: &[Record]) -> BenchResult<()> {
        for chunk in records.chunks(1_000) {
            let (mut batch_records, mut batch_apps, mut batch_expiry) =
                (sled::Batch::default(), sled::Batch::default(), sled::Batch::default());
            for record in chunk {
                batch_records.insert(keys::record(record.feed, record.seq), record.body.as_slice());
                batch_apps.insert(keys::app(record.feed, &record.app_id), &record.seq.to_be_bytes());
                batch_expiry.insert(
                    keys::expiry(record.expiration_nanos, record.seq),
                    keys::expiry_value(record.feed, &record.app_id),
                );
            }
            self.records.apply_batch(batch_records)?;
            self.apps.apply_batch(batch_apps)?;
            self.expiry.apply_batch(batch_expiry)?;
        }
        self.sync()
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        let mut out = Vec::with_capacity(limit);
        for entry in self.records.scan_prefix(keys::feed_prefix(feed)).rev() {
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
        let mut expired = Vec::new();
        for entry in self.expiry.range(..keys::expiry_end(now_nanos)) {
            let (key, value) = entry?;
            let seq = keys::seq_of(&key).ok_or("short expiry key")?;
            let (feed, app_id) = keys::parse_expiry_value(&value).ok_or("bad expiry value")?;
            expired.push((key, feed, app_id.to_owned(), seq));
        }
        (&self.records, &self.apps, &self.expiry)
            .transaction(|(records, apps, expiry)| -> TxResult {
                for (key, feed, app_id, seq) in &expired {
                    records.remove(keys::record(*feed, *seq))?;
                    let app_key = keys::app(*feed, app_id);
                    // Only when the app id still names this record (not a later replacement).
                    if apps.get(&app_key)?.is_some_and(|v| v.as_ref() == seq.to_be_bytes()) {
                        apps.remove(app_key)?;
                    }
                    expiry.remove(key)?;
                }
                Ok(())
            })
            .map_err(|e| format!("sled transaction: {e:?}"))?;
        self.db.flush()?;
        Ok(SweepOutcome { removed: expired.len() as u64, bytes_rewritten: None })
    }

    fn sync(&self) -> BenchResult<()> {
        self.db.flush()?;
        Ok(())
    }
}
