//! [`KeyValueStore`] on PostgreSQL: each change one synced transaction that
//! locks the merchant's usage row first, so that concurrent writers on any
//! replica check the quota one after the other.

use deadpool_postgres::GenericClient;

use super::{Arg, PostgresStore, execute, first_int, query_row};
use crate::StoreError;
use crate::kv::{KeyValueStore, KvLimits, KvWrite, usage_after_set};
use crate::rows::{count, stored};
use crate::sql::kv as sql;

/// The merchant's usage, its row locked until the transaction ends.
async fn lock_usage(tx: &impl GenericClient, merchant_id: &str) -> Result<(u64, u64), StoreError> {
    execute(tx, sql::ENSURE_USAGE, &[&merchant_id]).await?;
    let row = query_row(tx, sql::LOCK_USAGE, &[&merchant_id])
        .await?
        .ok_or_else(|| StoreError::Corrupt("the usage row is not there".into()))?;
    Ok((count(row.try_get(0)?), count(row.try_get(1)?)))
}

/// The entry's size (key and value bytes), if it exists.
async fn entry_size(
    tx: &impl GenericClient,
    merchant_id: &str,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    let args: [Arg<'_>; 2] = [&merchant_id, &key];
    let row = query_row(tx, sql::ENTRY_SIZE, &args).await?;
    let size = row.as_ref().map(first_int).transpose()?;
    Ok(size.map(|value_bytes| key.len() as u64 + count(value_bytes)))
}

async fn set_usage(
    tx: &impl GenericClient,
    merchant_id: &str,
    (bytes, keys): (u64, u64),
) -> Result<(), StoreError> {
    let args: [Arg<'_>; 3] = [&merchant_id, &stored(bytes), &stored(keys)];
    execute(tx, sql::SET_USAGE, &args).await?;
    Ok(())
}

#[async_trait::async_trait]
impl KeyValueStore for PostgresStore {
    async fn kv_get(&self, merchant_id: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let args: [Arg<'_>; 2] = [&merchant_id, &key];
        self.read_one(sql::GET, &args, |row| Ok(row.try_get(0)?))
            .await
    }

    async fn kv_set(
        &self,
        merchant_id: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
        now_ms: i64,
    ) -> Result<KvWrite, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let now = lock_usage(&tx, merchant_id).await?;
            let old = entry_size(&tx, merchant_id, key).await?;
            let after = match usage_after_set(now, old, key.len(), value.len(), limits) {
                Ok(after) => after,
                // Dropping the transaction rolls it back.
                Err(refused) => return Ok(refused),
            };
            let args: [Arg<'_>; 4] = [&merchant_id, &key, &value, &now_ms];
            execute(&tx, sql::PUT, &args).await?;
            set_usage(&tx, merchant_id, after).await?;
            tx.commit().await?;
            Ok(KvWrite::Stored)
        })
        .await
    }

    async fn kv_delete(&self, merchant_id: &str, key: &str) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let (bytes, keys) = lock_usage(&tx, merchant_id).await?;
            let Some(size) = entry_size(&tx, merchant_id, key).await? else {
                return Ok(false);
            };
            execute(&tx, sql::DELETE, &[&merchant_id, &key]).await?;
            let after = (bytes.saturating_sub(size), keys.saturating_sub(1));
            set_usage(&tx, merchant_id, after).await?;
            tx.commit().await?;
            Ok(true)
        })
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
        let args: [Arg<'_>; 4] = [&merchant_id, &prefix, &after, &limit];
        self.read_all(sql::KEYS, &args, |row| Ok(row.try_get(0)?))
            .await
    }
}
