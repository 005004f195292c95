//! [`KeyValueStore`] on SQLite: reads in place, each change one synced
//! write that updates the entry and the merchant's usage together.

use rusqlite::ToSql;

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::kv::{KeyValueStore, KvLimits, KvWrite};
use crate::writer::Durability;

const GET: &str = "SELECT value FROM kv_entries WHERE merchant_id = $1 AND key = $2";
const ENTRY_SIZE: &str = "SELECT length(value) FROM kv_entries WHERE merchant_id = $1 AND key = $2";
const USAGE: &str = "SELECT bytes, keys FROM kv_usage WHERE merchant_id = $1";
const PUT: &str = "INSERT INTO kv_entries (merchant_id, key, value, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, key) \
     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
const SET_USAGE: &str = "INSERT INTO kv_usage (merchant_id, bytes, keys) VALUES ($1, $2, $3) \
     ON CONFLICT (merchant_id) DO UPDATE SET bytes = excluded.bytes, keys = excluded.keys";
const DELETE: &str = "DELETE FROM kv_entries WHERE merchant_id = $1 AND key = $2";
// `key >= $2` lets the primary key find the first candidate; the prefix
// test ends the range.
const KEYS: &str = "SELECT key FROM kv_entries WHERE merchant_id = $1 AND key >= $2 \
     AND substr(key, 1, length($2)) = $2 AND ($3 IS NULL OR key > $3) ORDER BY key LIMIT $4";

/// What a merchant's entries weigh now.
fn usage(conn: &rusqlite::Connection, merchant_id: &str) -> Result<(u64, u64), StoreError> {
    let found = query_row(conn, USAGE, &[&merchant_id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    })?;
    let (bytes, keys) = found.unwrap_or((0, 0));
    Ok((bytes.max(0) as u64, keys.max(0) as u64))
}

fn entry_size(
    conn: &rusqlite::Connection,
    merchant_id: &str,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    let args: [&dyn ToSql; 2] = [&merchant_id, &key];
    let size = query_row(conn, ENTRY_SIZE, &args, |row| Ok(row.get::<_, i64>(0)?))?;
    Ok(size.map(|value_bytes| key.len() as u64 + value_bytes.max(0) as u64))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl KeyValueStore for SqliteStore {
    async fn kv_get(&self, merchant_id: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &key];
        self.readers
            .read(|conn| query_row(conn, GET, &args, |row| Ok(row.get::<_, Vec<u8>>(0)?)))
    }

    async fn kv_set(
        &self,
        merchant_id: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
        now_ms: i64,
    ) -> Result<KvWrite, StoreError> {
        let work = (merchant_id.to_string(), key.to_string(), value);
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let (merchant_id, key, value) = &work;
                    let (bytes, keys) = usage(conn, merchant_id)?;
                    let old = entry_size(conn, merchant_id, key)?;
                    let bytes =
                        bytes.saturating_sub(old.unwrap_or(0)) + (key.len() + value.len()) as u64;
                    let keys = keys + u64::from(old.is_none());
                    if bytes > limits.max_total_bytes || keys > limits.max_keys {
                        return Ok(KvWrite::OverQuota { bytes, keys });
                    }
                    let args: [&dyn ToSql; 4] = [merchant_id, key, value, &now_ms];
                    execute(conn, PUT, &args)?;
                    let args: [&dyn ToSql; 3] = [merchant_id, &to_i64(bytes), &to_i64(keys)];
                    execute(conn, SET_USAGE, &args)?;
                    Ok(KvWrite::Stored)
                }),
            )
            .await
    }

    async fn kv_delete(&self, merchant_id: &str, key: &str) -> Result<bool, StoreError> {
        let work = (merchant_id.to_string(), key.to_string());
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let (merchant_id, key) = &work;
                    let Some(size) = entry_size(conn, merchant_id, key)? else {
                        return Ok(false);
                    };
                    let args: [&dyn ToSql; 2] = [merchant_id, key];
                    execute(conn, DELETE, &args)?;
                    let (bytes, keys) = usage(conn, merchant_id)?;
                    let (bytes, keys) = (bytes.saturating_sub(size), keys.saturating_sub(1));
                    let args: [&dyn ToSql; 3] = [merchant_id, &to_i64(bytes), &to_i64(keys)];
                    execute(conn, SET_USAGE, &args)?;
                    Ok(true)
                }),
            )
            .await
    }

    async fn kv_keys(
        &self,
        merchant_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let limit = i64::from(limit);
        let args: [&dyn ToSql; 4] = [&merchant_id, &prefix, &after, &limit];
        self.readers
            .read(|conn| query_all(conn, KEYS, &args, |row| Ok(row.get::<_, String>(0)?)))
    }
}
