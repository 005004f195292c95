//! The registry: merchants, their access keys, plugin modules and versions,
//! which version is active, admin tokens and the audit of every
//! administrative change — what the admin API creates and changes at run
//! time.
//!
//! The store keeps what it is given: settings are JSON it does not parse,
//! keys arrive sealed, tokens arrive hashed. Every change is written in one
//! transaction with its audit entry, so the audit never misses a change nor
//! records one that did not happen.

use super::StoreError;

/// A merchant as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantRow {
    pub merchant_id: String,
    pub settings_json: String,
    pub disabled: bool,
    pub active_version: Option<i64>,
    pub previous_version: Option<i64>,
    pub bootstrap_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An access key as stored (sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    pub merchant_id: String,
    pub key_id: String,
    pub sealed_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// One uploaded plugin version of a merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    pub merchant_id: String,
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    pub contract_version: String,
    pub uploaded_at: i64,
    pub uploaded_by: String,
}

/// A version to add: its module's bytes are stored once per content.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub merchant_id: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
    pub contract_version: String,
    pub uploaded_by: String,
}

/// An admin token as stored (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub token_id: String,
    /// `None`: an operator token.
    pub merchant_id: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
}

/// One administrative change, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub merchant_id: Option<String>,
    pub action: String,
    pub detail_json: String,
}

/// What to record with a change: who, to which merchant, what (the detail
/// is JSON and never holds a secret).
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub merchant_id: Option<String>,
    pub action: String,
    pub detail_json: String,
}

/// Which version to make active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Version(i64),
    /// The version that was active before the current one.
    Rollback,
}

/// How an activation went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activated {
    /// Now active; `previous` is what rollback returns to.
    Done {
        active: i64,
        previous: Option<i64>,
    },
    NoSuchMerchant,
    NoSuchVersion,
    /// A rollback with no version before the current one.
    NothingToRollBackTo,
}

/// How deleting a version went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NotFound,
    /// The active version (or the one rollback returns to) is kept.
    InUse,
}

/// The registry's storage. Every method that changes something takes the
/// change's [`AuditEntry`] and writes both in one transaction (synced).
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    async fn merchants(&self) -> Result<Vec<MerchantRow>, StoreError>;
    /// At most `limit` merchants whose id sorts after `after`, by id.
    async fn merchants_after(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<MerchantRow>, StoreError>;
    async fn merchant(&self, merchant_id: &str) -> Result<Option<MerchantRow>, StoreError>;
    /// Inserts `row` with its first keys; `false` if the id is taken.
    async fn create_merchant(
        &self,
        row: MerchantRow,
        keys: Vec<KeyRow>,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;
    /// Replaces settings, the disabled flag and the bootstrap hash; `false`
    /// if there is no such merchant.
    async fn update_merchant(
        &self,
        row: MerchantRow,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Every key of a merchant, retired ones included.
    async fn keys(&self, merchant_id: &str) -> Result<Vec<KeyRow>, StoreError>;
    /// `false` if the merchant has this key already.
    async fn add_key(&self, key: KeyRow, audit: AuditEntry) -> Result<bool, StoreError>;
    /// `false` if there is no such live key.
    async fn retire_key(
        &self,
        merchant_id: &str,
        key_id: &str,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Stores the module (once per content) and numbers the new version.
    async fn add_version(
        &self,
        version: NewVersion,
        audit: AuditEntry,
    ) -> Result<VersionRow, StoreError>;
    async fn versions(&self, merchant_id: &str) -> Result<Vec<VersionRow>, StoreError>;
    /// A module's bytes by content hash.
    async fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes an inactive version (its module too, once no version names it).
    async fn delete_version(
        &self,
        merchant_id: &str,
        version: i64,
        audit: AuditEntry,
    ) -> Result<Deleted, StoreError>;
    async fn activate(
        &self,
        merchant_id: &str,
        which: Activation,
        audit: AuditEntry,
    ) -> Result<Activated, StoreError>;

    async fn add_token(
        &self,
        token: TokenRow,
        token_hash: String,
        audit: AuditEntry,
    ) -> Result<(), StoreError>;
    /// `false` if there is no such live token.
    async fn revoke_token(&self, token_id: &str, audit: AuditEntry) -> Result<bool, StoreError>;
    /// The live token with this hash.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError>;
    /// Every token (of one merchant, if given), revoked ones included.
    async fn tokens(&self, merchant_id: Option<&str>) -> Result<Vec<TokenRow>, StoreError>;

    /// The latest `limit` audit entries (of one merchant, if given), newest
    /// first.
    async fn audit(
        &self,
        merchant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Up to `limit` audit entries after `seq`, oldest first: every change
    /// since, for a process following another's changes.
    async fn audit_after(&self, seq: i64, limit: u32) -> Result<Vec<AuditRow>, StoreError>;
    /// Records an action that changes no registry row (a re-drive), synced.
    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError>;
}

/// The version `which` makes active for `merchant` (its existence is the
/// caller's to check), or why there is none.
pub(crate) fn activation_target(
    merchant: &MerchantRow,
    which: Activation,
) -> Result<i64, Activated> {
    match which {
        Activation::Version(version) => Ok(version),
        Activation::Rollback => merchant
            .previous_version
            .ok_or(Activated::NothingToRollBackTo),
    }
}

/// What rollback returns to once `target` is active: re-activating the
/// active version keeps it.
pub(crate) fn previous_after(merchant: &MerchantRow, target: i64) -> Option<i64> {
    if merchant.active_version == Some(target) {
        merchant.previous_version
    } else {
        merchant.active_version
    }
}

/// Whether `version` is active or what rollback returns to (not deletable).
pub(crate) fn in_use(merchant: &MerchantRow, version: i64) -> bool {
    merchant.active_version == Some(version) || merchant.previous_version == Some(version)
}
