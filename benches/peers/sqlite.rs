//! SQLite through rusqlite (bundled SQLite), in WAL mode.
//!
//! Schema: one table keyed by the store-global sequence (the rowid), an index by (feed, seq)
//! for a feed's newest records, a unique index by (feed, app id), and an index by expiration
//! for the sweep. Buffered is `synchronous = NORMAL` (a commit reaches the WAL in the page
//! cache; SQLite syncs at checkpoints), durable is `synchronous = FULL` (the WAL is synced at
//! every commit). One writer connection behind a mutex, as a server on SQLite has: SQLite
//! allows one writer at a time and has no group commit.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::workload::{BenchResult, Mode, Peer, Record, SweepOutcome, Workload, decode_live};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS notifications (
        seq INTEGER PRIMARY KEY,
        feed TEXT NOT NULL,
        app_id TEXT NOT NULL,
        expiration INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS by_feed_seq ON notifications (feed, seq);
    CREATE UNIQUE INDEX IF NOT EXISTS by_feed_app_id ON notifications (feed, app_id);
    CREATE INDEX IF NOT EXISTS by_expiration ON notifications (expiration);
";

const INSERT: &str = "INSERT INTO notifications (seq, feed, app_id, expiration, body) VALUES (?1, ?2, ?3, ?4, ?5)";
const DELETE_APP: &str = "DELETE FROM notifications WHERE feed = ?1 AND app_id = ?2";

/// The SQLite peer.
pub struct Sqlite {
    conn: Mutex<Connection>,
}

/// Opens (or creates) the database `dir/notifications.sqlite`.
pub fn open(dir: &Path, mode: Mode) -> BenchResult<Box<dyn Peer>> {
    let conn = Connection::open(dir.join("notifications.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if mode == Mode::Durable { "FULL" } else { "NORMAL" })?;
    conn.execute_batch(SCHEMA)?;
    Ok(Box::new(Sqlite { conn: Mutex::new(conn) }))
}

fn insert(tx: &rusqlite::Transaction<'_>, record: &Record) -> rusqlite::Result<()> {
    let feed = record.feed_key.as_str();
    // A replacement removes the live record with the same app id first, as every engine does.
    tx.prepare_cached(DELETE_APP)?.execute(params![feed, record.app_id])?;
    tx.prepare_cached(INSERT)?.execute(params![
        record.seq as i64,
        feed,
        record.app_id,
        record.expiration_nanos,
        record.body
    ])?;
    Ok(())
}

impl Peer for Sqlite {
    fn append(&self, record: Record) -> BenchResult<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert(&tx, &record)?;
        tx.commit()?;
        Ok(())
    }

    fn load(&self, records: &[Record]) -> BenchResult<()> {
        let mut conn = self.conn.lock();
        for chunk in records.chunks(1_000) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for record in chunk {
                insert(&tx, record)?;
            }
            tx.commit()?;
        }
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        Ok(())
    }

    fn newest(&self, feed: u32, limit: usize, now_nanos: i64) -> BenchResult<Vec<notifeed::Notification>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM notifications WHERE feed = ?1 AND expiration > ?2 ORDER BY seq DESC LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![Workload::feed_key(feed).as_str(), now_nanos, limit as i64])?;
        let mut out = Vec::with_capacity(limit);
        while let Some(row) = rows.next()? {
            let body = row.get_ref(0)?.as_blob()?;
            if let Some(n) = decode_live(body, now_nanos)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    fn by_app_id(&self, feed: u32, app_id: &str, now_nanos: i64) -> BenchResult<Option<notifeed::Notification>> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached("SELECT body FROM notifications WHERE feed = ?1 AND app_id = ?2 AND expiration > ?3")?;
        let body: Option<Vec<u8>> = stmt
            .query_row(params![Workload::feed_key(feed).as_str(), app_id, now_nanos], |row| row.get(0))
            .optional()?;
        match body {
            Some(body) => decode_live(&body, now_nanos),
            None => Ok(None),
        }
    }

    fn sweep(&self, now_nanos: i64) -> BenchResult<SweepOutcome> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute("DELETE FROM notifications WHERE expiration <= ?1", params![now_nanos])?;
        tx.commit()?;
        Ok(SweepOutcome { removed: removed as u64, bytes_rewritten: None })
    }

    fn sync(&self) -> BenchResult<()> {
        // A checkpoint with `synchronous` FULL or NORMAL syncs the WAL and the database file.
        let conn = self.conn.lock();
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        Ok(())
    }
}
