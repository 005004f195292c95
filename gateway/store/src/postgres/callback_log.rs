//! [`CallbackLog`] on PostgreSQL: batches appended in one lazy transaction
//! (a record lost with the database server loses a log line, never an
//! answer), searched with the same SQL as SQLite's.

use super::{Arg, Commit, PostgresStore, execute, query_all};
use crate::StoreError;
use crate::callback_log::{CallbackFilter, CallbackLog, CallbackRecord};
use crate::rows;
use crate::rows::count;
use crate::sql::callback_log::{self as sql, SearchArg};

#[async_trait::async_trait]
impl CallbackLog for PostgresStore {
    async fn log_callbacks(&self, records: Vec<CallbackRecord>) -> Result<(), StoreError> {
        self.observed(async {
            let mut client = self.connection(Commit::Lazy).await?;
            let tx = client.transaction().await?;
            for r in &records {
                let args: [Arg<'_>; sql::INSERT_VALUES] = sql::insert_values!(r);
                execute(&tx, sql::INSERT, &args).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn callbacks(&self, filter: &CallbackFilter) -> Result<Vec<CallbackRecord>, StoreError> {
        let (text, args) = sql::search(filter);
        let args: Vec<Arg<'_>> = args
            .iter()
            .map(|arg| match arg {
                SearchArg::Text(value) => value as Arg<'_>,
                SearchArg::Int(value) => value as Arg<'_>,
            })
            .collect();
        self.read_all(&text, &args, rows::callback).await
    }

    async fn callback(&self, seq: i64) -> Result<Option<CallbackRecord>, StoreError> {
        self.read_one(sql::BY_SEQ, &[&seq], rows::callback).await
    }

    async fn callback_counts(
        &self,
        merchant_id: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let args: [Arg<'_>; 2] = [&merchant_id, &since_ms];
        let counts = self
            .read_one(sql::COUNTS, &args, |row| {
                Ok((count(row.try_get(0)?), count(row.try_get(1)?)))
            })
            .await?;
        Ok(counts.unwrap_or((0, 0)))
    }

    /// The leading records older than `before_ms`, deleted by `seq` range
    /// (see SQLite's).
    async fn prune_callbacks(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        self.observed(async {
            let client = self.connection(Commit::Lazy).await?;
            let oldest = query_all(&client, sql::OLDEST, &[&i64::from(limit)]).await?;
            let mut last = None;
            for row in &oldest {
                let (seq, at_ms): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                if at_ms >= before_ms {
                    break;
                }
                last = Some(seq);
            }
            let Some(last) = last else {
                return Ok(0);
            };
            execute(&client, sql::PRUNE_UP_TO, &[&last]).await
        })
        .await
    }
}
