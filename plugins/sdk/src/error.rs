//! Constructors for [`PluginError`], named after what went wrong rather than
//! after the marketplace result code each one becomes (documented on each).

use crate::PluginError;

/// The result type of every plugin operation.
pub type PluginResult<T> = Result<T, PluginError>;

/// 000002: the request's values are not acceptable.
pub fn invalid_request(reason: impl Into<String>) -> PluginError {
    PluginError::InvalidRequest(reason.into())
}
/// 000003: the instance does not exist in the merchant's system.
pub fn instance_not_found(reason: impl Into<String>) -> PluginError {
    PluginError::InstanceNotFound(reason.into())
}
/// 000004: still being processed; the marketplace will ask again.
pub fn in_progress(reason: impl Into<String>) -> PluginError {
    PluginError::InProgress(reason.into())
}
/// 000005: an internal failure; the marketplace will retry.
pub fn internal(reason: impl Into<String>) -> PluginError {
    PluginError::Internal(reason.into())
}
/// 000100: no instance resources are available to allocate.
pub fn no_resources(reason: impl Into<String>) -> PluginError {
    PluginError::NoResources(reason.into())
}
/// 000104: a service the product depends on failed.
pub fn service_error(reason: impl Into<String>) -> PluginError {
    PluginError::ServiceError(reason.into())
}
/// 000105: the account has already subscribed and cannot subscribe again.
pub fn already_subscribed(reason: impl Into<String>) -> PluginError {
    PluginError::AlreadySubscribed(reason.into())
}
/// 000106: the product's resources are sold out.
pub fn sold_out(reason: impl Into<String>) -> PluginError {
    PluginError::SoldOut(reason.into())
}

/// Fails with `invalid_request` naming `field` when `value` is empty or blank.
pub fn require_non_empty(field: &str, value: &str) -> PluginResult<()> {
    if value.trim().is_empty() {
        return Err(invalid_request(format!("{field} must not be empty")));
    }
    Ok(())
}
