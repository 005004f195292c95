//! [`Registry`] on SQLite: reads in place, every change one synced write
//! with its audit entry. The SQL is portable like `sql.rs`'s.

use rusqlite::{Connection, ToSql};

use super::{SqliteStore, execute, query_all, query_row};
use crate::StoreError;
use crate::registry::{
    self, Activated, Activation, AuditEntry, AuditRow, Deleted, KeyRow, MerchantRow, NewVersion,
    Registry, TokenRow, VersionRow,
};
use crate::rows;
use crate::sql::registry as sql;
use crate::writer::Durability;

fn record_audit(conn: &Connection, audit: &AuditEntry) -> Result<(), StoreError> {
    let args: [&dyn ToSql; 5] = [
        &audit.at,
        &audit.actor,
        &audit.merchant_id,
        &audit.action,
        &audit.detail_json,
    ];
    execute(conn, sql::INSERT_AUDIT, &args)?;
    Ok(())
}

fn load_merchant(conn: &Connection, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError> {
    query_row(conn, sql::ONE_MERCHANT, &[&merchant_id], |row| {
        rows::merchant(row)
    })
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
            .read(|conn| query_all(conn, sql::ALL_MERCHANTS, &[], |row| rows::merchant(row)))
    }

    async fn merchants_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<MerchantRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers.read(|conn| {
            query_all(conn, sql::MERCHANTS_AFTER, &[&after, &limit], |row| {
                rows::merchant(row)
            })
        })
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
                if execute(conn, sql::INSERT_MERCHANT, &args)? != 1 {
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
                Ok(execute(conn, sql::UPDATE_MERCHANT, &args)? == 1)
            },
        )
        .await
    }

    async fn keys(&self, merchant_id: &str) -> Result<Vec<KeyRow>, StoreError> {
        self.readers
            .read(|conn| query_all(conn, sql::KEYS, &[&merchant_id], |row| rows::key(row)))
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
                Ok(execute(conn, sql::RETIRE_KEY, &args)? == 1)
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
                execute(conn, sql::INSERT_MODULE, &args)?;
                let number = query_row(conn, sql::NEXT_VERSION, &[&version.merchant_id], |row| {
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
                execute(conn, sql::INSERT_VERSION, &args)?;
                Ok(row)
            },
        )
        .await
    }

    async fn versions(&self, merchant_id: &str) -> Result<Vec<VersionRow>, StoreError> {
        self.readers.read(|conn| {
            query_all(conn, sql::VERSIONS, &[&merchant_id], |row| {
                rows::version(row)
            })
        })
    }

    async fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.readers.read(|conn| {
            query_row(conn, sql::MODULE, &[&sha256], |row| {
                Ok(row.get::<_, Vec<u8>>(0)?)
            })
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
                if registry::in_use(&merchant, version) {
                    return Ok(Deleted::InUse);
                }
                let args: [&dyn ToSql; 2] = [&merchant_id, &version];
                let Some(sha) = query_row(conn, sql::DELETE_VERSION, &args, |row| {
                    Ok(row.get::<_, String>(0)?)
                })?
                else {
                    return Ok(Deleted::NotFound);
                };
                execute(conn, sql::DELETE_UNUSED_MODULE, &[&sha])?;
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
            let target = match registry::activation_target(&merchant, which) {
                Ok(target) => target,
                Err(refused) => return Ok(refused),
            };
            let args: [&dyn ToSql; 2] = [&merchant_id, &target];
            if query_row(conn, sql::VERSION_EXISTS, &args, |_| Ok(()))?.is_none() {
                return Ok(Activated::NoSuchVersion);
            }
            let previous = registry::previous_after(&merchant, target);
            let args: [&dyn ToSql; 4] = [&merchant_id, &target, &previous, &at];
            execute(conn, sql::SET_ACTIVE, &args)?;
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
                execute(conn, sql::INSERT_TOKEN, &args)?;
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
                Ok(execute(conn, sql::REVOKE_TOKEN, &args)? == 1)
            },
        )
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.readers.read(|conn| {
            query_row(conn, sql::TOKEN_BY_HASH, &[&token_hash], |row| {
                rows::token(row)
            })
        })
    }

    async fn tokens(&self, merchant_id: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        self.readers.read(|conn| match merchant_id {
            Some(id) => query_all(conn, sql::MERCHANT_TOKENS, &[&id], |row| rows::token(row)),
            None => query_all(conn, sql::ALL_TOKENS, &[], |row| rows::token(row)),
        })
    }

    async fn audit(
        &self,
        merchant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers.read(|conn| match merchant_id {
            Some(id) => query_all(conn, sql::MERCHANT_AUDIT, &[&limit, &id], |row| {
                rows::audit(row)
            }),
            None => query_all(conn, sql::ALL_AUDIT, &[&limit], |row| rows::audit(row)),
        })
    }

    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.audited(audit, |_: &()| true, |_| Ok(())).await
    }

    async fn audit_after(&self, seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        self.readers.read(|conn| {
            query_all(conn, sql::AUDIT_AFTER, &[&seq, &limit], |row| {
                rows::audit(row)
            })
        })
    }
}

fn insert_key(conn: &Connection, key: &KeyRow) -> Result<bool, StoreError> {
    let args: [&dyn ToSql; 4] = [
        &key.merchant_id,
        &key.key_id,
        &key.sealed_key,
        &key.created_at,
    ];
    Ok(execute(conn, sql::INSERT_KEY, &args)? == 1)
}
