//! The served benchmark's durable baseline: what a merchant's own handler
//! would pay to keep an order line before it answers — one SQLite
//! transaction in WAL mode with `synchronous=FULL` (an fsync per commit, as
//! the gateway's synced commits) inserting an order line → instance row.
//! Not used by the gateway; here because only this crate speaks SQL
//! (`loadgen commit` paces it and measures its CPU).

use std::path::Path;

use rusqlite::{Connection, params};

use crate::StoreError;

pub struct OrderLog {
    conn: Connection,
}

impl OrderLog {
    /// Creates the log's database at `path` (a new file).
    pub fn create(path: &Path) -> Result<OrderLog, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             CREATE TABLE orders (order_line TEXT PRIMARY KEY, instance_id TEXT NOT NULL, \
                                  expires_at BIGINT NOT NULL);",
        )?;
        Ok(OrderLog { conn })
    }

    /// Keeps one order line durably: on disk when this returns.
    pub fn commit(&self, order_line: &str, instance_id: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO orders (order_line, instance_id, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![order_line, instance_id, 1_900_000_000i64])?;
        Ok(())
    }

    /// The order lines kept.
    pub fn count(&self) -> Result<u64, StoreError> {
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM orders", [], |row| row.get(0))?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_order_line_is_kept_once() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OrderLog::create(&dir.path().join("orders.db"))?;
        log.commit("o1/l1", "i-1")?;
        log.commit("o2/l1", "i-2")?;
        assert!(
            log.commit("o1/l1", "i-3").is_err(),
            "one row per order line"
        );
        assert_eq!(log.count()?, 2);
        Ok(())
    }
}
