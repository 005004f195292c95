//! [`Registry`] on SQLite: reads in place, every change one synced write
//! with its audit entry. The SQL is portable like `sql.rs`'s.

use rusqlite::{Connection, ToSql};

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::registry::{
    Activated, Activation, AuditEntry, AuditRow, Deleted, KeyRow, MerchantRow, NewVersion,
    Registry, TokenRow, VersionRow,
};
use crate::writer::Durability;

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

const ALL_MERCHANTS: &str = concat!(merchant_columns!(), "ORDER BY merchant_id");
const MERCHANTS_AFTER: &str = concat!(
    merchant_columns!(),
    "WHERE merchant_id > $1 ORDER BY merchant_id LIMIT $2"
);
const ONE_MERCHANT: &str = concat!(merchant_columns!(), "WHERE merchant_id = $1");
const INSERT_MERCHANT: &str = "INSERT INTO merchants (merchant_id, settings_json, disabled, \
     active_version, previous_version, bootstrap_hash, created_at, updated_at) \
     VALUES ($1, $2, $3, NULL, NULL, $4, $5, $5) ON CONFLICT DO NOTHING";
const UPDATE_MERCHANT: &str = "UPDATE merchants SET settings_json = $2, disabled = $3, \
     bootstrap_hash = $4, updated_at = $5 WHERE merchant_id = $1";

const KEYS: &str = "SELECT merchant_id, key_id, sealed_key, created_at, retired_at \
     FROM merchant_keys WHERE merchant_id = $1 ORDER BY created_at, key_id";
const INSERT_KEY: &str = "INSERT INTO merchant_keys \
     (merchant_id, key_id, sealed_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL) \
     ON CONFLICT DO NOTHING";
const RETIRE_KEY: &str = "UPDATE merchant_keys SET retired_at = $3 \
     WHERE merchant_id = $1 AND key_id = $2 AND retired_at IS NULL";

const INSERT_MODULE: &str =
    "INSERT INTO modules (sha256, bytes, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const MODULE: &str = "SELECT bytes FROM modules WHERE sha256 = $1";
const NEXT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) + 1 FROM plugin_versions WHERE merchant_id = $1";
const INSERT_VERSION: &str = "INSERT INTO plugin_versions (merchant_id, version, sha256, size, \
     contract_version, uploaded_at, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const VERSIONS: &str = "SELECT merchant_id, version, sha256, size, contract_version, \
     uploaded_at, uploaded_by FROM plugin_versions WHERE merchant_id = $1 ORDER BY version";
const VERSION_EXISTS: &str =
    "SELECT 1 FROM plugin_versions WHERE merchant_id = $1 AND version = $2";
const DELETE_VERSION: &str = "DELETE FROM plugin_versions WHERE merchant_id = $1 AND version = $2 \
     RETURNING sha256";
const DELETE_UNUSED_MODULE: &str = "DELETE FROM modules WHERE sha256 = $1 \
     AND NOT EXISTS (SELECT 1 FROM plugin_versions WHERE sha256 = $1)";
const SET_ACTIVE: &str = "UPDATE merchants SET active_version = $2, previous_version = $3, \
     updated_at = $4 WHERE merchant_id = $1";

const INSERT_TOKEN: &str = "INSERT INTO admin_tokens \
     (token_id, token_hash, merchant_id, created_at, created_by, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, NULL)";
const REVOKE_TOKEN: &str =
    "UPDATE admin_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL";
const TOKEN_BY_HASH: &str = concat!(
    token_columns!(),
    "WHERE token_hash = $1 AND revoked_at IS NULL"
);
const ALL_TOKENS: &str = concat!(token_columns!(), "ORDER BY created_at, token_id");
const MERCHANT_TOKENS: &str = concat!(
    token_columns!(),
    "WHERE merchant_id = $1 ORDER BY created_at, token_id"
);

const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, merchant_id, action, detail_json) \
     VALUES ($1, $2, $3, $4, $5)";
const ALL_AUDIT: &str = concat!(audit_columns!(), "ORDER BY seq DESC LIMIT $1");
const AUDIT_AFTER: &str = concat!(audit_columns!(), "WHERE seq > $1 ORDER BY seq LIMIT $2");
const MERCHANT_AUDIT: &str = concat!(
    audit_columns!(),
    "WHERE merchant_id = $2 ORDER BY seq DESC LIMIT $1"
);

fn merchant_row(row: &rusqlite::Row<'_>) -> Result<MerchantRow, StoreError> {
    Ok(MerchantRow {
        merchant_id: row.get("merchant_id")?,
        settings_json: row.get("settings_json")?,
        disabled: row.get("disabled")?,
        active_version: row.get("active_version")?,
        previous_version: row.get("previous_version")?,
        bootstrap_hash: row.get("bootstrap_hash")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn key_row(row: &rusqlite::Row<'_>) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        merchant_id: row.get("merchant_id")?,
        key_id: row.get("key_id")?,
        sealed_key: row.get("sealed_key")?,
        created_at: row.get("created_at")?,
        retired_at: row.get("retired_at")?,
    })
}

fn version_row(row: &rusqlite::Row<'_>) -> Result<VersionRow, StoreError> {
    Ok(VersionRow {
        merchant_id: row.get("merchant_id")?,
        version: row.get("version")?,
        sha256: row.get("sha256")?,
        size: row.get("size")?,
        contract_version: row.get("contract_version")?,
        uploaded_at: row.get("uploaded_at")?,
        uploaded_by: row.get("uploaded_by")?,
    })
}

fn token_row(row: &rusqlite::Row<'_>) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        token_id: row.get("token_id")?,
        merchant_id: row.get("merchant_id")?,
        created_at: row.get("created_at")?,
        created_by: row.get("created_by")?,
        revoked_at: row.get("revoked_at")?,
    })
}

fn audit_row(row: &rusqlite::Row<'_>) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: row.get("seq")?,
        at: row.get("at")?,
        actor: row.get("actor")?,
        merchant_id: row.get("merchant_id")?,
        action: row.get("action")?,
        detail_json: row.get("detail_json")?,
    })
}

fn record_audit(conn: &Connection, audit: &AuditEntry) -> Result<(), StoreError> {
    let args: [&dyn ToSql; 5] = [
        &audit.at,
        &audit.actor,
        &audit.merchant_id,
        &audit.action,
        &audit.detail_json,
    ];
    execute(conn, INSERT_AUDIT, &args)?;
    Ok(())
}

fn load_merchant(conn: &Connection, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError> {
    query_row(conn, ONE_MERCHANT, &[&merchant_id], merchant_row)
}

impl SqliteStore {
    /// Runs `change` and records `audit` in the same synced transaction; the
    /// audit entry is kept only when `change` says something changed.
    async fn audited<T: Send + 'static>(
        &self,
        audit: AuditEntry,
        changed: fn(&T) -> bool,
        change: impl Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let outcome = change(conn)?;
                    if changed(&outcome) {
                        record_audit(conn, &audit)?;
                    }
                    Ok(outcome)
                }),
            )
            .await
    }
}

#[async_trait::async_trait]
impl Registry for SqliteStore {
    async fn merchants(&self) -> Result<Vec<MerchantRow>, StoreError> {
        self.readers
            .read(|conn| query_all(conn, ALL_MERCHANTS, &[], merchant_row))
    }

    async fn merchants_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<MerchantRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers
            .read(|conn| query_all(conn, MERCHANTS_AFTER, &[&after, &limit], merchant_row))
    }

    async fn merchant(&self, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError> {
        self.readers.read(|conn| load_merchant(conn, merchant_id))
    }

    async fn create_merchant(
        &self,
        row: MerchantRow,
        keys: Vec<KeyRow>,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.audited(
            audit,
            |created| *created,
            move |conn| {
                let args: [&dyn ToSql; 5] = [
                    &row.merchant_id,
                    &row.settings_json,
                    &row.disabled,
                    &row.bootstrap_hash,
                    &row.created_at,
                ];
                if execute(conn, INSERT_MERCHANT, &args)? != 1 {
                    return Ok(false);
                }
                for key in &keys {
                    insert_key(conn, key)?;
                }
                Ok(true)
            },
        )
        .await
    }

    async fn update_merchant(
        &self,
        row: MerchantRow,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.audited(
            audit,
            |updated| *updated,
            move |conn| {
                let args: [&dyn ToSql; 5] = [
                    &row.merchant_id,
                    &row.settings_json,
                    &row.disabled,
                    &row.bootstrap_hash,
                    &row.updated_at,
                ];
                Ok(execute(conn, UPDATE_MERCHANT, &args)? == 1)
            },
        )
        .await
    }

    async fn keys(&self, merchant_id: &str) -> Result<Vec<KeyRow>, StoreError> {
        self.readers
            .read(|conn| query_all(conn, KEYS, &[&merchant_id], key_row))
    }

    async fn add_key(&self, key: KeyRow, audit: AuditEntry) -> Result<bool, StoreError> {
        self.audited(audit, |added| *added, move |conn| insert_key(conn, &key))
            .await
    }

    async fn retire_key(
        &self,
        merchant_id: &str,
        key_id: &str,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let (merchant_id, key_id) = (merchant_id.to_string(), key_id.to_string());
        let at = audit.at;
        self.audited(
            audit,
            |retired| *retired,
            move |conn| {
                let args: [&dyn ToSql; 3] = [&merchant_id, &key_id, &at];
                Ok(execute(conn, RETIRE_KEY, &args)? == 1)
            },
        )
        .await
    }

    async fn add_version(
        &self,
        version: NewVersion,
        audit: AuditEntry,
    ) -> Result<VersionRow, StoreError> {
        let at = audit.at;
        self.audited(
            audit,
            |_| true,
            move |conn| {
                let size = i64::try_from(version.bytes.len())
                    .map_err(|_| StoreError::Corrupt("a module larger than 2^63 bytes".into()))?;
                let args: [&dyn ToSql; 3] = [&version.sha256, &version.bytes, &at];
                execute(conn, INSERT_MODULE, &args)?;
                let number = query_row(conn, NEXT_VERSION, &[&version.merchant_id], |row| {
                    Ok(row.get::<_, i64>(0)?)
                })?
                .unwrap_or(1);
                let row = VersionRow {
                    merchant_id: version.merchant_id.clone(),
                    version: number,
                    sha256: version.sha256.clone(),
                    size,
                    contract_version: version.contract_version.clone(),
                    uploaded_at: at,
                    uploaded_by: version.uploaded_by.clone(),
                };
                let args: [&dyn ToSql; 7] = [
                    &row.merchant_id,
                    &row.version,
                    &row.sha256,
                    &row.size,
                    &row.contract_version,
                    &row.uploaded_at,
                    &row.uploaded_by,
                ];
                execute(conn, INSERT_VERSION, &args)?;
                Ok(row)
            },
        )
        .await
    }

    async fn versions(&self, merchant_id: &str) -> Result<Vec<VersionRow>, StoreError> {
        self.readers
            .read(|conn| query_all(conn, VERSIONS, &[&merchant_id], version_row))
    }

    async fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.readers.read(|conn| {
            query_row(
                conn,
                MODULE,
                &[&sha256],
                |row| Ok(row.get::<_, Vec<u8>>(0)?),
            )
        })
    }

    async fn delete_version(
        &self,
        merchant_id: &str,
        version: i64,
        audit: AuditEntry,
    ) -> Result<Deleted, StoreError> {
        let merchant_id = merchant_id.to_string();
        self.audited(
            audit,
            |deleted| *deleted == Deleted::Done,
            move |conn| {
                let Some(merchant) = load_merchant(conn, &merchant_id)? else {
                    return Ok(Deleted::NotFound);
                };
                if merchant.active_version == Some(version)
                    || merchant.previous_version == Some(version)
                {
                    return Ok(Deleted::InUse);
                }
                let args: [&dyn ToSql; 2] = [&merchant_id, &version];
                let Some(sha) = query_row(conn, DELETE_VERSION, &args, |row| {
                    Ok(row.get::<_, String>(0)?)
                })?
                else {
                    return Ok(Deleted::NotFound);
                };
                execute(conn, DELETE_UNUSED_MODULE, &[&sha])?;
                Ok(Deleted::Done)
            },
        )
        .await
    }

    async fn activate(
        &self,
        merchant_id: &str,
        which: Activation,
        audit: AuditEntry,
    ) -> Result<Activated, StoreError> {
        let merchant_id = merchant_id.to_string();
        let at = audit.at;
        let done = |outcome: &Activated| matches!(outcome, Activated::Done { .. });
        self.audited(audit, done, move |conn| {
            let Some(merchant) = load_merchant(conn, &merchant_id)? else {
                return Ok(Activated::NoSuchMerchant);
            };
            let target = match which {
                Activation::Version(version) => version,
                Activation::Rollback => match merchant.previous_version {
                    Some(previous) => previous,
                    None => return Ok(Activated::NothingToRollBackTo),
                },
            };
            let args: [&dyn ToSql; 2] = [&merchant_id, &target];
            if query_row(conn, VERSION_EXISTS, &args, |_| Ok(()))?.is_none() {
                return Ok(Activated::NoSuchVersion);
            }
            // Re-activating the active version keeps what rollback returns to.
            let previous = if merchant.active_version == Some(target) {
                merchant.previous_version
            } else {
                merchant.active_version
            };
            let args: [&dyn ToSql; 4] = [&merchant_id, &target, &previous, &at];
            execute(conn, SET_ACTIVE, &args)?;
            Ok(Activated::Done {
                active: target,
                previous,
            })
        })
        .await
    }

    async fn add_token(
        &self,
        token: TokenRow,
        token_hash: String,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.audited(
            audit,
            |_| true,
            move |conn| {
                let args: [&dyn ToSql; 5] = [
                    &token.token_id,
                    &token_hash,
                    &token.merchant_id,
                    &token.created_at,
                    &token.created_by,
                ];
                execute(conn, INSERT_TOKEN, &args)?;
                Ok(())
            },
        )
        .await
    }

    async fn revoke_token(&self, token_id: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        let token_id = token_id.to_string();
        let at = audit.at;
        self.audited(
            audit,
            |revoked| *revoked,
            move |conn| {
                let args: [&dyn ToSql; 2] = [&token_id, &at];
                Ok(execute(conn, REVOKE_TOKEN, &args)? == 1)
            },
        )
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.readers
            .read(|conn| query_row(conn, TOKEN_BY_HASH, &[&token_hash], token_row))
    }

    async fn tokens(&self, merchant_id: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        self.readers.read(|conn| match merchant_id {
            Some(id) => query_all(conn, MERCHANT_TOKENS, &[&id], token_row),
            None => query_all(conn, ALL_TOKENS, &[], token_row),
        })
    }

    async fn audit(
        &self,
        merchant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers.read(|conn| match merchant_id {
            Some(id) => query_all(conn, MERCHANT_AUDIT, &[&limit, &id], audit_row),
            None => query_all(conn, ALL_AUDIT, &[&limit], audit_row),
        })
    }

    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.audited(audit, |_: &()| true, |_| Ok(())).await
    }

    async fn audit_after(&self, seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers
            .read(|conn| query_all(conn, AUDIT_AFTER, &[&seq, &limit], audit_row))
    }
}

fn insert_key(conn: &Connection, key: &KeyRow) -> Result<bool, StoreError> {
    let args: [&dyn ToSql; 4] = [
        &key.merchant_id,
        &key.key_id,
        &key.sealed_key,
        &key.created_at,
    ];
    Ok(execute(conn, INSERT_KEY, &args)? == 1)
}
