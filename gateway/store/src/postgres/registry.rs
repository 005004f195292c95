//! [`Registry`] on PostgreSQL: every change one synced transaction with its
//! audit entry, taken under the audit lock (see the parent module) so that
//! audit numbers commit in order.

use deadpool_postgres::{GenericClient, Object, Transaction};

use super::{AUDIT_LOCK, Arg, LOCK, PostgresStore, execute, first_int, query_row};
use crate::StoreError;
use crate::registry::{
    self, Activated, Activation, AuditEntry, AuditRow, Deleted, KeyRow, MerchantRow, NewVersion,
    Registry, TokenRow, VersionRow,
};
use crate::rows;
use crate::sql::registry as sql;

/// Begins an administrative change: synced, under the audit lock.
async fn change(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await?;
    execute(&tx, LOCK, &[&AUDIT_LOCK]).await?;
    Ok(tx)
}

/// Ends a change: its audit entry if something changed, then the commit.
async fn finish(tx: Transaction<'_>, changed: bool, audit: &AuditEntry) -> Result<(), StoreError> {
    if changed {
        let args: [Arg<'_>; 5] = [
            &audit.at,
            &audit.actor,
            &audit.merchant_id,
            &audit.action,
            &audit.detail_json,
        ];
        execute(&tx, sql::INSERT_AUDIT, &args).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn load_merchant(
    client: &impl GenericClient,
    merchant_id: &str,
) -> Result<Option<MerchantRow>, StoreError> {
    let row = query_row(client, sql::ONE_MERCHANT, &[&merchant_id]).await?;
    row.as_ref().map(rows::merchant).transpose()
}

async fn insert_key(client: &impl GenericClient, key: &KeyRow) -> Result<bool, StoreError> {
    let args: [Arg<'_>; 4] = [
        &key.merchant_id,
        &key.key_id,
        &key.sealed_key,
        &key.created_at,
    ];
    Ok(execute(client, sql::INSERT_KEY, &args).await? == 1)
}

#[async_trait::async_trait]
impl Registry for PostgresStore {
    async fn merchants(&self) -> Result<Vec<MerchantRow>, StoreError> {
        self.read_all(sql::ALL_MERCHANTS, &[], rows::merchant).await
    }

    async fn merchants_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<MerchantRow>, StoreError> {
        let limit = i64::from(limit);
        self.read_all(sql::MERCHANTS_AFTER, &[&after, &limit], rows::merchant)
            .await
    }

    async fn merchant(&self, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError> {
        self.read_one(sql::ONE_MERCHANT, &[&merchant_id], rows::merchant)
            .await
    }

    async fn create_merchant(
        &self,
        row: MerchantRow,
        keys: Vec<KeyRow>,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 5] = [
                &row.merchant_id,
                &row.settings_json,
                &row.disabled,
                &row.bootstrap_hash,
                &row.created_at,
            ];
            let created = execute(&tx, sql::INSERT_MERCHANT, &args).await? == 1;
            if created {
                for key in &keys {
                    insert_key(&tx, key).await?;
                }
            }
            finish(tx, created, &audit).await?;
            Ok(created)
        })
        .await
    }

    async fn update_merchant(
        &self,
        row: MerchantRow,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 5] = [
                &row.merchant_id,
                &row.settings_json,
                &row.disabled,
                &row.bootstrap_hash,
                &row.updated_at,
            ];
            let updated = execute(&tx, sql::UPDATE_MERCHANT, &args).await? == 1;
            finish(tx, updated, &audit).await?;
            Ok(updated)
        })
        .await
    }

    async fn keys(&self, merchant_id: &str) -> Result<Vec<KeyRow>, StoreError> {
        self.read_all(sql::KEYS, &[&merchant_id], rows::key).await
    }

    async fn add_key(&self, key: KeyRow, audit: AuditEntry) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let added = insert_key(&tx, &key).await?;
            finish(tx, added, &audit).await?;
            Ok(added)
        })
        .await
    }

    async fn retire_key(
        &self,
        merchant_id: &str,
        key_id: &str,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 3] = [&merchant_id, &key_id, &audit.at];
            let retired = execute(&tx, sql::RETIRE_KEY, &args).await? == 1;
            finish(tx, retired, &audit).await?;
            Ok(retired)
        })
        .await
    }

    async fn add_version(
        &self,
        version: NewVersion,
        audit: AuditEntry,
    ) -> Result<VersionRow, StoreError> {
        let size = i64::try_from(version.bytes.len())
            .map_err(|_| StoreError::Corrupt("a module larger than 2^63 bytes".into()))?;
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 3] = [&version.sha256, &version.bytes, &audit.at];
            execute(&tx, sql::INSERT_MODULE, &args).await?;
            let next = query_row(&tx, sql::NEXT_VERSION, &[&version.merchant_id]).await?;
            let number = next.as_ref().map(first_int).transpose()?.unwrap_or(1);
            let row = VersionRow {
                merchant_id: version.merchant_id.clone(),
                version: number,
                sha256: version.sha256.clone(),
                size,
                contract_version: version.contract_version.clone(),
                uploaded_at: audit.at,
                uploaded_by: version.uploaded_by.clone(),
            };
            let args: [Arg<'_>; 7] = [
                &row.merchant_id,
                &row.version,
                &row.sha256,
                &row.size,
                &row.contract_version,
                &row.uploaded_at,
                &row.uploaded_by,
            ];
            execute(&tx, sql::INSERT_VERSION, &args).await?;
            finish(tx, true, &audit).await?;
            Ok(row)
        })
        .await
    }

    async fn versions(&self, merchant_id: &str) -> Result<Vec<VersionRow>, StoreError> {
        self.read_all(sql::VERSIONS, &[&merchant_id], rows::version)
            .await
    }

    async fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_one(sql::MODULE, &[&sha256], |row| Ok(row.try_get(0)?))
            .await
    }

    async fn delete_version(
        &self,
        merchant_id: &str,
        version: i64,
        audit: AuditEntry,
    ) -> Result<Deleted, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let deleted = delete_version(&tx, merchant_id, version).await?;
            finish(tx, deleted == Deleted::Done, &audit).await?;
            Ok(deleted)
        })
        .await
    }

    async fn activate(
        &self,
        merchant_id: &str,
        which: Activation,
        audit: AuditEntry,
    ) -> Result<Activated, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let activated = activate(&tx, merchant_id, which, audit.at).await?;
            finish(tx, matches!(activated, Activated::Done { .. }), &audit).await?;
            Ok(activated)
        })
        .await
    }

    async fn add_token(
        &self,
        token: TokenRow,
        token_hash: String,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 5] = [
                &token.token_id,
                &token_hash,
                &token.merchant_id,
                &token.created_at,
                &token.created_by,
            ];
            execute(&tx, sql::INSERT_TOKEN, &args).await?;
            finish(tx, true, &audit).await
        })
        .await
    }

    async fn revoke_token(&self, token_id: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            let args: [Arg<'_>; 2] = [&token_id, &audit.at];
            let revoked = execute(&tx, sql::REVOKE_TOKEN, &args).await? == 1;
            finish(tx, revoked, &audit).await?;
            Ok(revoked)
        })
        .await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.read_one(sql::TOKEN_BY_HASH, &[&token_hash], rows::token)
            .await
    }

    async fn tokens(&self, merchant_id: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        match merchant_id {
            Some(id) => {
                self.read_all(sql::MERCHANT_TOKENS, &[&id], rows::token)
                    .await
            }
            None => self.read_all(sql::ALL_TOKENS, &[], rows::token).await,
        }
    }

    async fn audit(
        &self,
        merchant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        match merchant_id {
            Some(id) => {
                self.read_all(sql::MERCHANT_AUDIT, &[&limit, &id], rows::audit)
                    .await
            }
            None => self.read_all(sql::ALL_AUDIT, &[&limit], rows::audit).await,
        }
    }

    async fn audit_after(&self, seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::from(limit);
        self.read_all(sql::AUDIT_AFTER, &[&seq, &limit], rows::audit)
            .await
    }

    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = change(&mut client).await?;
            finish(tx, true, &audit).await
        })
        .await
    }
}

/// Deletes a version unless it is active or what rollback returns to; its
/// module goes with it when no other version uses it.
async fn delete_version(
    tx: &impl GenericClient,
    merchant_id: &str,
    version: i64,
) -> Result<Deleted, StoreError> {
    let Some(merchant) = load_merchant(tx, merchant_id).await? else {
        return Ok(Deleted::NotFound);
    };
    if registry::in_use(&merchant, version) {
        return Ok(Deleted::InUse);
    }
    let args: [Arg<'_>; 2] = [&merchant_id, &version];
    let Some(row) = query_row(tx, sql::DELETE_VERSION, &args).await? else {
        return Ok(Deleted::NotFound);
    };
    let sha: String = row.try_get(0)?;
    execute(tx, sql::DELETE_UNUSED_MODULE, &[&sha]).await?;
    Ok(Deleted::Done)
}

/// Makes a version (or the previous one) active.
async fn activate(
    tx: &impl GenericClient,
    merchant_id: &str,
    which: Activation,
    at: i64,
) -> Result<Activated, StoreError> {
    let Some(merchant) = load_merchant(tx, merchant_id).await? else {
        return Ok(Activated::NoSuchMerchant);
    };
    let target = match registry::activation_target(&merchant, which) {
        Ok(target) => target,
        Err(refused) => return Ok(refused),
    };
    let args: [Arg<'_>; 2] = [&merchant_id, &target];
    if query_row(tx, sql::VERSION_EXISTS, &args).await?.is_none() {
        return Ok(Activated::NoSuchVersion);
    }
    let previous = registry::previous_after(&merchant, target);
    let args: [Arg<'_>; 4] = [&merchant_id, &target, &previous, &at];
    execute(tx, sql::SET_ACTIVE, &args).await?;
    Ok(Activated::Done {
        active: target,
        previous,
    })
}
