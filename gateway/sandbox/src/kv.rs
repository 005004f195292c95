//! The `kv` import: a key-value store of the merchant's own. The sandbox
//! checks sizes and scopes every key to the call's merchant; where the
//! values live is the embedder's [`KeyValue`] (the gateway's store).

use std::sync::Arc;

use crate::bindings::kv_import;

/// Limits of one merchant's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvQuota {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Keys and values together.
    pub max_total_bytes: u64,
    pub max_keys: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota {
            max_key_bytes: 256,
            max_value_bytes: 64 << 10,
            max_total_bytes: 16 << 20,
            max_keys: 10_000,
        }
    }
}

/// The most keys one `list-keys` returns.
pub const MAX_LIST_KEYS: u32 = 1000;

/// Why a key-value operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
}

/// Where merchants' keys and values are kept. Every method is scoped by
/// `merchant`; the sandbox never passes another merchant's id.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync {
    async fn get(&self, merchant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores the value unless it would take the merchant past `quota`.
    async fn set(
        &self,
        merchant: &str,
        key: &str,
        value: Vec<u8>,
        quota: &KvQuota,
    ) -> Result<(), KvError>;
    async fn delete(&self, merchant: &str, key: &str) -> Result<bool, KvError>;
    async fn list_keys(
        &self,
        merchant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError>;
}

/// A merchant's view of the store, as a call sees it.
#[derive(Clone)]
pub struct KvScope {
    pub backend: Arc<dyn KeyValue>,
    pub quota: KvQuota,
}

impl std::fmt::Debug for KvScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvScope")
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

type WitResult<T> = Result<T, kv_import::KvError>;

fn unavailable(error: KvError) -> kv_import::KvError {
    match error {
        KvError::QuotaExceeded(why) => kv_import::KvError::QuotaExceeded(why),
        KvError::Unavailable(why) => kv_import::KvError::Unavailable(why),
    }
}

/// The host side of the `kv` import for one call.
pub(crate) struct KvHost {
    merchant: Arc<str>,
    scope: Option<KvScope>,
}

impl KvHost {
    pub(crate) fn new(merchant: Arc<str>, scope: Option<KvScope>) -> Self {
        KvHost { merchant, scope }
    }

    fn scope(&self) -> WitResult<&KvScope> {
        self.scope.as_ref().ok_or_else(|| {
            kv_import::KvError::Unavailable("this gateway keeps no key-value store".into())
        })
    }

    fn check_key(&self, key: &str) -> WitResult<&KvScope> {
        let scope = self.scope()?;
        if key.is_empty() {
            return Err(kv_import::KvError::InvalidKey("the key is empty".into()));
        }
        if key.len() > scope.quota.max_key_bytes {
            return Err(kv_import::KvError::InvalidKey(format!(
                "the key is {} bytes; at most {} are allowed",
                key.len(),
                scope.quota.max_key_bytes
            )));
        }
        Ok(scope)
    }

    pub(crate) async fn get(&self, key: String) -> WitResult<Option<Vec<u8>>> {
        let scope = self.check_key(&key)?;
        scope
            .backend
            .get(&self.merchant, &key)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn set(&self, key: String, value: Vec<u8>) -> WitResult<()> {
        let scope = self.check_key(&key)?;
        if value.len() > scope.quota.max_value_bytes {
            return Err(kv_import::KvError::QuotaExceeded(format!(
                "the value is {} bytes; at most {} are allowed",
                value.len(),
                scope.quota.max_value_bytes
            )));
        }
        let quota = scope.quota;
        scope
            .backend
            .set(&self.merchant, &key, value, &quota)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn delete(&self, key: String) -> WitResult<bool> {
        let scope = self.check_key(&key)?;
        scope
            .backend
            .delete(&self.merchant, &key)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn list_keys(
        &self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> WitResult<Vec<String>> {
        let scope = self.scope()?;
        let limit = limit.clamp(1, MAX_LIST_KEYS);
        scope
            .backend
            .list_keys(&self.merchant, &prefix, after.as_deref(), limit)
            .await
            .map_err(unavailable)
    }
}
