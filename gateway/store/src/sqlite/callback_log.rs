//! [`CallbackLog`] on SQLite: appends through the writer (lazy), searches
//! in place with only the filters given in the SQL (so that the indexes by
//! merchant, order and instance serve them).

use std::sync::LazyLock;

use rusqlite::ToSql;

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::callback_log::{CallbackFilter, CallbackLog, CallbackRecord};
use crate::rows;
use crate::sql::callback_log::{self as sql, SearchArg};
use crate::writer::Durability;

/// Records appended by one statement when a batch has that many: one
/// statement's overhead (and one `AUTOINCREMENT` bookkeeping write) for all
/// of them. A batch's remainder goes one record per statement.
const ROWS_PER_INSERT: usize = 32;

static INSERT_MANY: LazyLock<String> = LazyLock::new(|| sql::insert_many_sqlite(ROWS_PER_INSERT));

/// A record's values, in [`sql::INSERT`]'s order.
fn values(r: &CallbackRecord) -> [&dyn ToSql; sql::INSERT_VALUES] {
    sql::insert_values!(r)
}

#[async_trait::async_trait]
impl CallbackLog for SqliteStore {
    async fn log_callbacks(&self, records: Vec<CallbackRecord>) -> Result<(), StoreError> {
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    let mut chunks = records.chunks_exact(ROWS_PER_INSERT);
                    for chunk in chunks.by_ref() {
                        let mut statement = conn.prepare_cached(&INSERT_MANY)?;
                        for (i, record) in chunk.iter().enumerate() {
                            for (j, value) in values(record).into_iter().enumerate() {
                                statement
                                    .raw_bind_parameter(i * sql::INSERT_VALUES + j + 1, value)?;
                            }
                        }
                        statement.raw_execute()?;
                    }
                    for record in chunks.remainder() {
                        execute(conn, sql::INSERT, &values(record))?;
                    }
                    Ok(())
                }),
            )
            .await
    }

    async fn callbacks(&self, filter: &CallbackFilter) -> Result<Vec<CallbackRecord>, StoreError> {
        let (text, args) = sql::search(filter);
        let args: Vec<&dyn ToSql> = args
            .iter()
            .map(|arg| match arg {
                SearchArg::Text(value) => value as &dyn ToSql,
                SearchArg::Int(value) => value as &dyn ToSql,
            })
            .collect();
        self.readers
            .read(|conn| query_all(conn, &text, &args, |row| rows::callback(row)))
    }

    async fn callback(&self, seq: i64) -> Result<Option<CallbackRecord>, StoreError> {
        self.readers
            .read(|conn| query_row(conn, sql::BY_SEQ, &[&seq], |row| rows::callback(row)))
    }

    async fn callback_counts(
        &self,
        merchant_id: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &since_ms];
        let counts = self.readers.read(|conn| {
            query_row(conn, sql::COUNTS, &args, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
        })?;
        let (total, failed) = counts.unwrap_or((0, 0));
        Ok((rows::count(total), rows::count(failed)))
    }

    /// The leading records older than `before_ms` are found on a reader
    /// (no index on the time: records are appended in time order), then
    /// deleted by `seq` range on the writer.
    async fn prune_callbacks(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let limit = i64::from(limit);
        let oldest = self.readers.read(|conn| {
            query_all(conn, sql::OLDEST, &[&limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
        })?;
        let Some(last) = oldest
            .iter()
            .take_while(|(_, at_ms)| *at_ms < before_ms)
            .last()
            .map(|(seq, _)| *seq)
        else {
            return Ok(0);
        };
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| Ok(execute(conn, sql::PRUNE_UP_TO, &[&last])? as u64)),
            )
            .await
    }
}
