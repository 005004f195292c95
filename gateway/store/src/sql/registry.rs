//! The registry's SQL (see `sql`): merchants, keys, modules and versions,
//! tokens, the audit log.

macro_rules! merchant_columns {
    () => {
        "SELECT merchant_id, settings_json, disabled, active_version, previous_version, \
         bootstrap_hash, created_at, updated_at FROM merchants "
    };
}
macro_rules! token_columns {
    () => {
        "SELECT token_id, merchant_id, created_at, created_by, revoked_at FROM admin_tokens "
    };
}
macro_rules! audit_columns {
    () => {
        "SELECT seq, at, actor, merchant_id, action, detail_json FROM audit_log "
    };
}

pub const ALL_MERCHANTS: &str = concat!(merchant_columns!(), "ORDER BY merchant_id");
pub const MERCHANTS_AFTER: &str = concat!(
    merchant_columns!(),
    "WHERE merchant_id > $1 ORDER BY merchant_id LIMIT $2"
);
pub const ONE_MERCHANT: &str = concat!(merchant_columns!(), "WHERE merchant_id = $1");
pub const INSERT_MERCHANT: &str = "INSERT INTO merchants (merchant_id, settings_json, disabled, \
     active_version, previous_version, bootstrap_hash, created_at, updated_at) \
     VALUES ($1, $2, $3, NULL, NULL, $4, $5, $5) ON CONFLICT DO NOTHING";
pub const UPDATE_MERCHANT: &str = "UPDATE merchants SET settings_json = $2, disabled = $3, \
     bootstrap_hash = $4, updated_at = $5 WHERE merchant_id = $1";

pub const KEYS: &str = "SELECT merchant_id, key_id, sealed_key, created_at, retired_at \
     FROM merchant_keys WHERE merchant_id = $1 ORDER BY created_at, key_id";
pub const INSERT_KEY: &str = "INSERT INTO merchant_keys \
     (merchant_id, key_id, sealed_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL) \
     ON CONFLICT DO NOTHING";
pub const RETIRE_KEY: &str = "UPDATE merchant_keys SET retired_at = $3 \
     WHERE merchant_id = $1 AND key_id = $2 AND retired_at IS NULL";

pub const INSERT_MODULE: &str =
    "INSERT INTO modules (sha256, bytes, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
pub const MODULE: &str = "SELECT bytes FROM modules WHERE sha256 = $1";
pub const NEXT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) + 1 FROM plugin_versions WHERE merchant_id = $1";
pub const INSERT_VERSION: &str = "INSERT INTO plugin_versions (merchant_id, version, sha256, size, \
     contract_version, uploaded_at, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub const VERSIONS: &str = "SELECT merchant_id, version, sha256, size, contract_version, \
     uploaded_at, uploaded_by FROM plugin_versions WHERE merchant_id = $1 ORDER BY version";
pub const VERSION_EXISTS: &str =
    "SELECT 1 FROM plugin_versions WHERE merchant_id = $1 AND version = $2";
pub const DELETE_VERSION: &str = "DELETE FROM plugin_versions WHERE merchant_id = $1 AND version = $2 \
     RETURNING sha256";
pub const DELETE_UNUSED_MODULE: &str = "DELETE FROM modules WHERE sha256 = $1 \
     AND NOT EXISTS (SELECT 1 FROM plugin_versions WHERE sha256 = $1)";
pub const SET_ACTIVE: &str = "UPDATE merchants SET active_version = $2, previous_version = $3, \
     updated_at = $4 WHERE merchant_id = $1";

pub const INSERT_TOKEN: &str = "INSERT INTO admin_tokens \
     (token_id, token_hash, merchant_id, created_at, created_by, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, NULL)";
pub const REVOKE_TOKEN: &str =
    "UPDATE admin_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL";
pub const TOKEN_BY_HASH: &str = concat!(
    token_columns!(),
    "WHERE token_hash = $1 AND revoked_at IS NULL"
);
pub const ALL_TOKENS: &str = concat!(token_columns!(), "ORDER BY created_at, token_id");
pub const MERCHANT_TOKENS: &str = concat!(
    token_columns!(),
    "WHERE merchant_id = $1 ORDER BY created_at, token_id"
);

pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, merchant_id, action, detail_json) \
     VALUES ($1, $2, $3, $4, $5)";
pub const ALL_AUDIT: &str = concat!(audit_columns!(), "ORDER BY seq DESC LIMIT $1");
pub const AUDIT_AFTER: &str = concat!(audit_columns!(), "WHERE seq > $1 ORDER BY seq LIMIT $2");
pub const MERCHANT_AUDIT: &str = concat!(
    audit_columns!(),
    "WHERE merchant_id = $2 ORDER BY seq DESC LIMIT $1"
);
