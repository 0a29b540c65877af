//! redb 2 (a copy-on-write B-tree): three tables (records by (feed, seq), app ids by
//! (feed, app id), expirations by (expiration, seq)), written together in one write transaction
//! per operation. Buffered commits with `Durability::None` (written to the OS, made durable by
//! the next `Immediate` commit, as [`Peer::sync`] does; on Linux redb's `Eventual` fsyncs like
//! `Immediate`); durable with `Durability::Immediate`.

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, decode_live, keys};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const APPS: TableDefinition<&[u8], u64> = TableDefinition::new("apps");
const EXPIRY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("expiry");

/// The redb peer.
pub struct Redb {
    db: Database,
    durability: Durability,
}

/// Opens (or creates) `dir/notifications.redb`.
pub fn open(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    let db = Database::create(dir.join("notifications.redb"))?;
    let peer = Redb { db, durability: if mode == Mode::Durable { Durability::Immediate } else { Durability::None } };
    // Create the tables, so readers of an empty database find them.
    let tx = peer.db.begin_write()?;
    tx.open_table(RECORDS)?;
    tx.open_table(APPS)?;
    tx.open_table(EXPIRY)?;
    tx.commit()?;
    Ok(Box::new(peer))
}

impl Redb {
    fn write(&self, batch: &[Record], durability: Durability) -> BenchResult<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(durability);
        {
            let mut records = tx.open_table(RECORDS)?;
            let mut apps = tx.open_table(APPS)?;
            let mut expiry = tx.open_table(EXPIRY)?;
            for record in batch {
                let app_key = keys::app(record.feed, &record.app_id);
                // A replacement removes the live record with the same app id first.
                let old = apps.insert(app_key.as_slice(), record.seq)?.map(|old| old.value());
                if let Some(old_seq) = old {
                    records.remove(keys::record(record.feed, old_seq).as_slice())?;
                }
                records.insert(keys::record(record.feed, record.seq).as_slice(), record.body.as_slice())?;
                expiry.insert(
                    keys::expiry(record.expiration_nanos, record.seq).as_slice(),
                    keys::expiry_value(record.feed, &record.app_id).as_slice(),
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Peer for Redb {
    fn append(&self, record: Record) -> BenchResult<()> {
        self.write(std::slice::from_ref(&record), self.durability)
    }

    fn load(&self, records: &[Record]) -> BenchResult<()> {
        for chunk in records.chunks(1_000) {
            self.write(chunk, Durability::Immediate)?;
        }
        self.sync()
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        let tx = self.db.begin_read()?;
        let records = tx.open_table(RECORDS)?;
        let (start, end) = (keys::feed_prefix(feed), keys::feed_end(feed));
        let mut out = Vec::with_capacity(limit);
        for entry in records.range(start.as_slice()..end.as_slice())?.rev() {
            let (_, body) = entry?;
            if let Some(n) = decode_live(body.value(), now_nanos)? {
                out.push(n);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        let tx = self.db.begin_read()?;
        let apps = tx.open_table(APPS)?;
        let Some(seq) = apps.get(keys::app(feed, app_id).as_slice())?.map(|v| v.value()) else { return Ok(None) };
        let records = tx.open_table(RECORDS)?;
        match records.get(keys::record(feed, seq).as_slice())? {
            Some(body) => decode_live(body.value(), now_nanos),
            None => Ok(None),
        }
    }

    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        let mut removed = 0;
        {
            let mut records = tx.open_table(RECORDS)?;
            let mut apps = tx.open_table(APPS)?;
            let mut expiry = tx.open_table(EXPIRY)?;
            let end = keys::expiry_end(now_nanos);
            for entry in expiry.extract_from_if(..end.as_slice(), |_, _| true)? {
                let (key, value) = entry?;
                let seq = keys::seq_of(key.value()).ok_or("short expiry key")?;
                let (feed, app_id) = keys::parse_expiry_value(value.value()).ok_or("bad expiry value")?;
                records.remove(keys::record(feed, seq).as_slice())?;
                let app_key = keys::app(feed, app_id);
                // Only when the app id still names this record (not a later replacement).
                if apps.get(app_key.as_slice())?.is_some_and(|v| v.value() == seq) {
                    apps.remove(app_key.as_slice())?;
                }
                removed += 1;
            }
        }
        tx.commit()?;
        Ok(SweepOutcome { removed, bytes_rewritten: None })
    }

    fn sync(&self) -> BenchResult<()> {
        // An empty commit with `Immediate` durability makes every earlier commit durable.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        tx.commit()?;
        Ok(())
    }
}
