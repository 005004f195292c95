//! The merchant's key-value store, kept by the gateway: it survives restarts,
//! is shared by every replica, and holds only this merchant's keys. Each
//! write is durable when it returns. Errors convert into [`PluginError`]
//! with `?` (a quota or key problem is an internal error, 000005, as is a
//! store that is down: the marketplace retries).

use crate::PluginError;
use crate::bindings::koogallery::plugin::kv;

pub use kv::KvError;

impl From<KvError> for PluginError {
    fn from(error: KvError) -> PluginError {
        let why = match error {
            KvError::InvalidKey(why) => format!("kv: invalid key: {why}"),
            KvError::QuotaExceeded(why) => format!("kv: quota exceeded: {why}"),
            KvError::Unavailable(why) => format!("kv: store unavailable: {why}"),
        };
        crate::error::internal(why)
    }
}

pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    kv::get(key)
}

pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    kv::set(key, value)
}

/// Removes `key`; true if it existed.
pub fn delete(key: &str) -> Result<bool, KvError> {
    kv::delete(key)
}

/// Every key starting with `prefix`, in byte order (page by page).
pub fn keys(prefix: &str) -> Result<Vec<String>, KvError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = kv::list_keys(prefix, after.as_deref(), 1000)?;
        let done = page.len() < 1000;
        after = page.last().cloned();
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// The value under `key` as text (invalid UTF-8 replaced).
pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
    Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

pub fn set_string(key: &str, value: &str) -> Result<(), KvError> {
    set(key, value.as_bytes())
}

/// The value under `key`, read as JSON.
#[cfg(feature = "json")]
pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, PluginError> {
    match get(key)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::error::internal(format!("kv {key}: {e}"))),
        None => Ok(None),
    }
}

/// Stores `value` as JSON under `key`.
#[cfg(feature = "json")]
pub fn set_json<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<(), PluginError> {
    let bytes = serde_json::to_vec(value).map_err(|e| crate::error::internal(e.to_string()))?;
    Ok(set(key, &bytes)?)
}
