//! Merchants' key-value stores (the plugins' `kv` import): entries scoped by
//! merchant, and a usage row per merchant updated in the same transaction
//! as each change, so that a quota is checked by reading one row and two
//! writers cannot both squeeze under it.

/// The quota a write must stay within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLimits {
    pub max_total_bytes: u64,
    pub max_keys: u64,
}

/// How a write went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvWrite {
    Stored,
    /// It would have taken the merchant past its quota; nothing changed.
    OverQuota {
        bytes: u64,
        keys: u64,
    },
}

/// Merchants' key-value entries.
#[async_trait::async_trait]
pub trait KeyValueStore: Send + Sync + 'static {
    async fn kv_get(
        &self,
        merchant_id: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, crate::StoreError>;
    /// Stores `value` under `key` (synced) unless the merchant's entries
    /// would then exceed `limits`.
    async fn kv_set(
        &self,
        merchant_id: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
        now_ms: i64,
    ) -> Result<KvWrite, crate::StoreError>;
    /// Removes `key`; true if it was there.
    async fn kv_delete(&self, merchant_id: &str, key: &str) -> Result<bool, crate::StoreError>;
    /// Keys starting with `prefix`, after `after`, in byte order.
    async fn kv_keys(
        &self,
        merchant_id: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, crate::StoreError>;
}

/// A merchant's usage after setting `key` to a value of `value_len` bytes,
/// given its usage now and the entry's present size (key and value bytes),
/// or the refusal if that would pass `limits`.
pub(crate) fn usage_after_set(
    (bytes, keys): (u64, u64),
    old_entry: Option<u64>,
    key_len: usize,
    value_len: usize,
    limits: KvLimits,
) -> Result<(u64, u64), KvWrite> {
    let bytes = bytes.saturating_sub(old_entry.unwrap_or(0)) + (key_len + value_len) as u64;
    let keys = keys + u64::from(old_entry.is_none());
    if bytes > limits.max_total_bytes || keys > limits.max_keys {
        return Err(KvWrite::OverQuota { bytes, keys });
    }
    Ok((bytes, keys))
}
