//! Reading stored rows into the store's types, once for both engines.
//!
//! Each engine's row type implements [`Columns`] (typed access by column
//! name); the functions here turn any such row into a record, so that what
//! a column means is written in one place whatever driver read it.

use crate::callback_log::CallbackRecord;
use crate::registry::{AuditRow, KeyRow, MerchantRow, TokenRow, VersionRow};
use crate::{InstanceRecord, OperationId, OperationRecord, OperationStatus, StoreError, StuckRow};

/// Typed access to a row's columns by name.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn maybe_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn maybe_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, name: &str) -> Result<bool, StoreError>;
}

/// A stored count as an unsigned one (a negative one is read as 0).
pub(crate) fn count(value: i64) -> u64 {
    value.max(0) as u64
}

/// An unsigned count as a stored one.
pub(crate) fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An attempt number as a fence (a stored one out of range is corrupt).
pub(crate) fn fence(attempt: i64) -> Result<u32, StoreError> {
    u32::try_from(attempt).map_err(|_| StoreError::Corrupt(format!("attempt {attempt}")))
}

pub(crate) fn operation(row: &impl Columns) -> Result<OperationRecord, StoreError> {
    let status = row.text("status")?;
    Ok(OperationRecord {
        id: OperationId {
            merchant_id: row.text("merchant_id")?,
            idempotency_key: row.text("idempotency_key")?,
        },
        test: row.flag("test")?,
        kind: row.text("kind")?,
        business_key: row.text("business_key")?,
        instance_id: row.maybe_text("instance_id")?,
        fingerprint: row.text("fingerprint")?,
        status: OperationStatus::parse(&status)?,
        attempt: fence(row.int("attempt")?)?,
        locked_until: row.maybe_int("locked_until")?,
        request_json: row.text("request_json")?,
        result_json: row.maybe_text("result_json")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A stuck row, or why it cannot be read (its key is always readable: the
/// columns are `NOT NULL` text).
pub(crate) fn stuck(row: &impl Columns) -> StuckRow {
    match operation(row) {
        Ok(record) => StuckRow::Record(record),
        Err(error) => StuckRow::Unreadable {
            id: OperationId {
                merchant_id: row.text("merchant_id").unwrap_or_default(),
                idempotency_key: row.text("idempotency_key").unwrap_or_default(),
            },
            why: error.to_string(),
        },
    }
}

pub(crate) fn instance(row: &impl Columns) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        merchant_id: row.text("merchant_id")?,
        instance_id: row.text("instance_id")?,
        order_id: row.maybe_text("order_id")?,
        order_line_key: row.maybe_text("order_line_key")?,
        origin: row.text("origin")?,
        status: row.text("status")?,
        expires_at: row.maybe_int("expires_at")?,
        status_changed_at: row.maybe_int("status_changed_at")?,
    })
}

pub(crate) fn merchant(row: &impl Columns) -> Result<MerchantRow, StoreError> {
    Ok(MerchantRow {
        merchant_id: row.text("merchant_id")?,
        settings_json: row.text("settings_json")?,
        disabled: row.flag("disabled")?,
        active_version: row.maybe_int("active_version")?,
        previous_version: row.maybe_int("previous_version")?,
        bootstrap_hash: row.maybe_text("bootstrap_hash")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn key(row: &impl Columns) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        merchant_id: row.text("merchant_id")?,
        key_id: row.text("key_id")?,
        sealed_key: row.text("sealed_key")?,
        created_at: row.int("created_at")?,
        retired_at: row.maybe_int("retired_at")?,
    })
}

pub(crate) fn version(row: &impl Columns) -> Result<VersionRow, StoreError> {
    Ok(VersionRow {
        merchant_id: row.text("merchant_id")?,
        version: row.int("version")?,
        sha256: row.text("sha256")?,
        size: row.int("size")?,
        contract_version: row.text("contract_version")?,
        uploaded_at: row.int("uploaded_at")?,
        uploaded_by: row.text("uploaded_by")?,
    })
}

pub(crate) fn token(row: &impl Columns) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        token_id: row.text("token_id")?,
        merchant_id: row.maybe_text("merchant_id")?,
        created_at: row.int("created_at")?,
        created_by: row.text("created_by")?,
        revoked_at: row.maybe_int("revoked_at")?,
    })
}

pub(crate) fn audit(row: &impl Columns) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: row.int("seq")?,
        at: row.int("at")?,
        actor: row.text("actor")?,
        merchant_id: row.maybe_text("merchant_id")?,
        action: row.text("action")?,
        detail_json: row.text("detail_json")?,
    })
}

pub(crate) fn callback(row: &impl Columns) -> Result<CallbackRecord, StoreError> {
    Ok(CallbackRecord {
        seq: row.int("seq")?,
        at_ms: row.int("at_ms")?,
        merchant_id: row.text("merchant_id")?,
        request_id: row.text("request_id")?,
        generation: row.text("generation")?,
        activity: row.text("activity")?,
        order_id: row.maybe_text("order_id")?,
        order_line_id: row.maybe_text("order_line_id")?,
        instance_id: row.maybe_text("instance_id")?,
        result_code: row.text("result_code")?,
        result_msg: row.text("result_msg")?,
        latency_us: row.int("latency_us")?,
        path: row.text("path")?,
        reason: row.maybe_text("reason")?,
        attempt: row.maybe_int("attempt")?,
        plugin_version: row.maybe_int("plugin_version")?,
        plugin_sha256: row.maybe_text("plugin_sha256")?,
        idempotency_key: row.maybe_text("idempotency_key")?,
        test: row.flag("test")?,
        plugin_logs_json: row.maybe_text("plugin_logs_json")?,
        request_json: row.maybe_text("request_json")?,
    })
}
