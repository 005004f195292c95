//! The merchant's configuration values and secrets, as the gateway operator
//! set them. A secret (`[merchants.secrets]`) is read like any value; the
//! gateway never shows it in its logs, metrics or API — do not log it
//! either.

use crate::error::{PluginResult, internal};

/// The value of `key`, if configured.
pub fn get(key: &str) -> Option<String> {
    crate::bindings::koogallery::plugin::config::get(key)
}

/// The value of `key`, or `default` when it is not configured.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// The value of `key`; a missing key is an internal error (000005) so the
/// marketplace retries once the operator has fixed the configuration.
pub fn require(key: &str) -> PluginResult<String> {
    get(key).ok_or_else(|| internal(format!("merchant configuration lacks `{key}`")))
}

/// Every configured key and its value.
pub fn all() -> Vec<(String, String)> {
    crate::bindings::koogallery::plugin::config::get_all()
}
