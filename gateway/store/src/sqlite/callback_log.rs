//! [`CallbackLog`] on SQLite: appends through the writer (lazy), searches
//! in place with only the filters given in the SQL (so that the indexes by
//! merchant, order and instance serve them).

use rusqlite::ToSql;

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::callback_log::{CallbackFilter, CallbackLog, CallbackRecord};
use crate::writer::Durability;

const COLUMNS: &str = "seq, at_ms, merchant_id, request_id, generation, activity, order_id, \
     order_line_id, instance_id, result_code, result_msg, latency_us, path, reason, attempt, \
     plugin_version, plugin_sha256, idempotency_key, test, plugin_logs_json, request_json";
const INSERT: &str = "INSERT INTO callback_log (at_ms, merchant_id, request_id, generation, \
     activity, order_id, order_line_id, instance_id, result_code, result_msg, latency_us, path, \
     reason, attempt, plugin_version, plugin_sha256, idempotency_key, test, plugin_logs_json, \
     request_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18, $19, $20)";
const COUNTS: &str = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN result_code <> '000000' THEN 1 ELSE 0 END), 0) \
     FROM callback_log WHERE merchant_id = $1 AND at_ms >= $2";
/// The oldest records, in the order they were appended (≈ time order).
const OLDEST: &str = "SELECT seq, at_ms FROM callback_log ORDER BY seq LIMIT $1";
const PRUNE_UP_TO: &str = "DELETE FROM callback_log WHERE seq <= $1";

fn record(row: &rusqlite::Row<'_>) -> Result<CallbackRecord, StoreError> {
    Ok(CallbackRecord {
        seq: row.get("seq")?,
        at_ms: row.get("at_ms")?,
        merchant_id: row.get("merchant_id")?,
        request_id: row.get("request_id")?,
        generation: row.get("generation")?,
        activity: row.get("activity")?,
        order_id: row.get("order_id")?,
        order_line_id: row.get("order_line_id")?,
        instance_id: row.get("instance_id")?,
        result_code: row.get("result_code")?,
        result_msg: row.get("result_msg")?,
        latency_us: row.get("latency_us")?,
        path: row.get("path")?,
        reason: row.get("reason")?,
        attempt: row.get("attempt")?,
        plugin_version: row.get("plugin_version")?,
        plugin_sha256: row.get("plugin_sha256")?,
        idempotency_key: row.get("idempotency_key")?,
        test: row.get("test")?,
        plugin_logs_json: row.get("plugin_logs_json")?,
        request_json: row.get("request_json")?,
    })
}

/// The search's SQL and its arguments: a condition per filter given.
fn search(filter: &CallbackFilter) -> (String, Vec<Box<dyn ToSql + Send>>) {
    let mut conditions = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Send>> = Vec::new();
    let mut text = |column: &str, value: &Option<String>| {
        if let Some(value) = value {
            args.push(Box::new(value.clone()));
            conditions.push(format!("{column} = ${}", args.len()));
        }
    };
    text("merchant_id", &filter.merchant_id);
    text("order_id", &filter.order_id);
    text("instance_id", &filter.instance_id);
    text("result_code", &filter.result_code);
    text("activity", &filter.activity);
    text("path", &filter.path);
    for (column, op, value) in [
        ("at_ms", ">=", filter.since_ms),
        ("at_ms", "<", filter.until_ms),
        ("seq", "<", filter.before_seq),
    ] {
        if let Some(value) = value {
            args.push(Box::new(value));
            conditions.push(format!("{column} {op} ${}", args.len()));
        }
    }
    args.push(Box::new(i64::from(filter.limit)));
    let limit = args.len();
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let sql =
        format!("SELECT {COLUMNS} FROM callback_log {condition}ORDER BY seq DESC LIMIT ${limit}");
    (sql, args)
}

#[async_trait::async_trait]
impl CallbackLog for SqliteStore {
    async fn log_callbacks(&self, records: Vec<CallbackRecord>) -> Result<(), StoreError> {
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    for r in &records {
                        let args: [&dyn ToSql; 20] = [
                            &r.at_ms,
                            &r.merchant_id,
                            &r.request_id,
                            &r.generation,
                            &r.activity,
                            &r.order_id,
                            &r.order_line_id,
                            &r.instance_id,
                            &r.result_code,
                            &r.result_msg,
                            &r.latency_us,
                            &r.path,
                            &r.reason,
                            &r.attempt,
                            &r.plugin_version,
                            &r.plugin_sha256,
                            &r.idempotency_key,
                            &r.test,
                            &r.plugin_logs_json,
                            &r.request_json,
                        ];
                        execute(conn, INSERT, &args)?;
                    }
                    Ok(())
                }),
            )
            .await
    }

    async fn callbacks(&self, filter: &CallbackFilter) -> Result<Vec<CallbackRecord>, StoreError> {
        let (sql, args) = search(filter);
        let args: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref() as &dyn ToSql).collect();
        self.readers
            .read(|conn| query_all(conn, &sql, &args, record))
    }

    async fn callback(&self, seq: i64) -> Result<Option<CallbackRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM callback_log WHERE seq = $1");
        self.readers
            .read(|conn| query_row(conn, &sql, &[&seq], record))
    }

    async fn callback_counts(
        &self,
        merchant_id: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &since_ms];
        let counts = self.readers.read(|conn| {
            query_row(conn, COUNTS, &args, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
        })?;
        let (total, failed) = counts.unwrap_or((0, 0));
        Ok((total.max(0) as u64, failed.max(0) as u64))
    }

    /// The leading records older than `before_ms` are found on a reader
    /// (no index on the time: records are appended in time order), then
    /// deleted by `seq` range on the writer.
    async fn prune_callbacks(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let limit = i64::from(limit);
        let oldest = self.readers.read(|conn| {
            query_all(conn, OLDEST, &[&limit], |row| {
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
                Box::new(move |conn| Ok(execute(conn, PRUNE_UP_TO, &[&last])? as u64)),
            )
            .await
    }
}
