//! [`KeyValueStore`] on SQLite: reads in place, each change one synced
//! write that updates the entry and the merchant's usage together.

use rusqlite::ToSql;

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::kv::{KeyValueStore, KvLimits, KvWrite, usage_after_set};
use crate::rows::{count, stored};
use crate::sql::kv as sql;
use crate::writer::Durability;

/// What a merchant's entries weigh now.
fn usage(conn: &rusqlite::Connection, merchant_id: &str) -> Result<(u64, u64), StoreError> {
    let found = query_row(conn, sql::USAGE, &[&merchant_id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    })?;
    let (bytes, keys) = found.unwrap_or((0, 0));
    Ok((count(bytes), count(keys)))
}

fn entry_size(
    conn: &rusqlite::Connection,
    merchant_id: &str,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    let args: [&dyn ToSql; 2] = [&merchant_id, &key];
    let size = query_row(
        conn,
        sql::ENTRY_SIZE,
        &args,
        |row| Ok(row.get::<_, i64>(0)?),
    )?;
    Ok(size.map(|value_bytes| key.len() as u64 + count(value_bytes)))
}

#[async_trait::async_trait]
impl KeyValueStore for SqliteStore {
    async fn kv_get(&self, merchant_id: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &key];
        self.readers
            .read(|conn| query_row(conn, sql::GET, &args, |row| Ok(row.get::<_, Vec<u8>>(0)?)))
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
                    let now = usage(conn, merchant_id)?;
                    let old = entry_size(conn, merchant_id, key)?;
                    let (bytes, keys) =
                        match usage_after_set(now, old, key.len(), value.len(), limits) {
                            Ok(after) => after,
                            Err(refused) => return Ok(refused),
                        };
                    let args: [&dyn ToSql; 4] = [merchant_id, key, value, &now_ms];
                    execute(conn, sql::PUT, &args)?;
                    let args: [&dyn ToSql; 3] = [merchant_id, &stored(bytes), &stored(keys)];
                    execute(conn, sql::SET_USAGE, &args)?;
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
                    execute(conn, sql::DELETE, &args)?;
                    let (bytes, keys) = usage(conn, merchant_id)?;
                    let (bytes, keys) = (bytes.saturating_sub(size), keys.saturating_sub(1));
                    let args: [&dyn ToSql; 3] = [merchant_id, &stored(bytes), &stored(keys)];
                    execute(conn, sql::SET_USAGE, &args)?;
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
            .read(|conn| query_all(conn, sql::KEYS, &args, |row| Ok(row.get::<_, String>(0)?)))
    }
}
