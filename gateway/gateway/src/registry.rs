//! The merchant registry: turns the store's rows (settings, sealed keys,
//! the active plugin version's module) into the merchants served
//! ([`Merchants`]), at start and after every administrative change.
//!
//! - **Bootstrap**: merchants in the configuration file are upserted into
//!   the store at start. A merchant the store does not have is created; one
//!   it has is changed only if its configuration entry changed since the
//!   last start (a hash of the entry is kept), so a change made through the
//!   admin API survives a restart until the operator edits the file. The
//!   file's plugin becomes a version (uploaded by `config`) and is activated
//!   when it is new.
//! - **Loading**: a merchant serves its active version; one without an
//!   active version, disabled, or whose plugin does not load is served as
//!   unavailable (000005 to verified callbacks, so the marketplace retries).
//!   Records are read from the store; compiled plugins are prewarmed (the
//!   distinct active modules, up to the plugin cache's count) and otherwise
//!   loaded by the first call that needs them (`crate::plugins`).
//! - **Following other processes** sharing the store: every administrative
//!   change is written with an audit entry (numbered in write order), so a
//!   process follows the entries after the last it saw and reloads their
//!   merchants ([`Registry::follow_changes`], every `follow_changes_ms`).
//!   Its own changes come back that way too; reloading them again is
//!   harmless.
//! - **Changes are serialized** ([`Registry::changes`]): a change is written
//!   and its merchant reloaded under one lock, and a followed change is
//!   reloaded under it too, so what is served is what was written last.
//! - **Access keys at rest** are sealed (AES-256-GCM, `crate::sealing`)
//!   under a key derived from the master key for this purpose alone: the
//!   gateway needs them in clear to check HMAC signatures, so they cannot be
//!   hashed. Their public handle (`key_id`) is a prefix of their sha256.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use gateway_sandbox::{EgressPolicy, KvScope, PluginConfig, Runtime};
use gateway_store::registry::{Activation, AuditEntry, KeyRow, MerchantRow, NewVersion};
use gateway_store::{Backend, StoreError};
use koogallery_protocol::AccessKey;
use sha2::{Digest, Sha256};

use crate::capabilities::Capabilities;
use crate::config::{Config, MerchantConfig, MerchantSettings, SandboxConfig};
use crate::keys::Keys;
use crate::merchants::{self, Handler, Merchant, Merchants};
use crate::plugins::{LoadFailure, PluginRef, Plugins};
use crate::sealing::Sealer;

/// Who made the changes the configuration file bootstraps.
pub const CONFIG_ACTOR: &str = "config";

/// Why the registry could not load or change merchants.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("merchant {merchant}: its stored settings do not read: {reason}")]
    Settings { merchant: String, reason: String },
    #[error("merchant {merchant}: access key {key_id} does not open with this gateway's key")]
    SealedKey { merchant: String, key_id: String },
}

/// The registry (see the module docs). Cheap to share behind an `Arc`.
pub struct Registry {
    store: Arc<dyn Backend>,
    merchants: Arc<Merchants>,
    runtime: Arc<Runtime>,
    plugins: Plugins,
    key_sealer: Sealer,
    capabilities: Capabilities,
    sandbox: SandboxConfig,
    load_limit: Duration,
    /// One change at a time (see the module docs).
    changes: tokio::sync::Mutex<()>,
    /// The last audit entry whose change is served here.
    followed: AtomicI64,
}

/// Audit entries read at once while following changes.
const FOLLOW_PAGE: u32 = 500;

/// The public handle of an access key: the first 16 hex digits of its
/// sha256 (enough to tell keys apart, useless to forge a signature).
pub fn key_id(key: &AccessKey) -> String {
    let digest = hex::encode(Sha256::digest(key.expose().as_bytes()));
    digest[..16].to_string()
}

/// The sha256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Registry {
    pub fn new(
        config: &Config,
        keys: &Keys,
        store: Arc<dyn Backend>,
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
    ) -> Registry {
        let load_limit = Duration::from_secs(config.load_timeout_secs);
        Registry {
            plugins: Plugins::new(runtime.clone(), store.clone(), load_limit),
            store,
            merchants: Arc::new(Merchants::default()),
            runtime,
            key_sealer: Sealer::new(&keys.derive("access-keys")),
            capabilities,
            sandbox: config.sandbox.clone(),
            load_limit,
            changes: tokio::sync::Mutex::new(()),
            followed: AtomicI64::new(0),
        }
    }

    /// Outbound HTTP grants, key-value stores and secrets.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The merchants served right now.
    pub fn merchants(&self) -> &Arc<Merchants> {
        &self.merchants
    }

    pub fn store(&self) -> &Arc<dyn Backend> {
        &self.store
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The merchants' compiled plugins.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// Held while a change is written and its merchant reloaded.
    pub fn changes(&self) -> &tokio::sync::Mutex<()> {
        &self.changes
    }

    /// Reloads the merchants changed (by any process) since the last change
    /// followed; returns how many.
    pub async fn follow_changes(&self) -> Result<usize, RegistryError> {
        let mut reloaded = 0;
        loop {
            let after = self.followed.load(Ordering::Acquire);
            let entries = self.store.audit_after(after, FOLLOW_PAGE).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(reloaded);
            };
            let mut seen = std::collections::HashSet::new();
            let merchants: Vec<&str> = entries
                .iter()
                .filter_map(|e| e.merchant_id.as_deref())
                .filter(|id| seen.insert(*id))
                .collect();
            for id in merchants {
                let _change = self.changes.lock().await;
                self.reload(id).await?;
                reloaded += 1;
            }
            self.followed.store(last, Ordering::Release);
            if entries.len() < FOLLOW_PAGE as usize {
                return Ok(reloaded);
            }
        }
    }

    /// Follows changes every `every` until `stop` (see the module docs).
    pub async fn keep_following(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.follow_changes().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "merchants changed in the store reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "could not follow the store's changes; retrying")
                }
            }
        }
    }

    /// `key` for `merchant`, sealed for the store.
    pub fn seal_key(&self, merchant: &str, key: &AccessKey, now: i64) -> KeyRow {
        KeyRow {
            merchant_id: merchant.to_string(),
            key_id: key_id(key),
            sealed_key: self.key_sealer.seal(key.expose().as_bytes()),
            created_at: now,
            retired_at: None,
        }
    }

    /// Upserts the configuration file's merchants (see the module docs).
    /// A plugin file that cannot be read leaves its merchant without a new
    /// version. Returns what was read from each file, by merchant id, so
    /// that a file's problem is reported under its name.
    pub async fn bootstrap(&self, config: &Config) -> Result<ConfiguredFiles, RegistryError> {
        let mut files = ConfiguredFiles::new();
        for merchant in &config.merchants {
            let read = tokio::fs::read(&merchant.plugin).await;
            let mut file = ConfiguredFile {
                path: merchant.plugin.clone(),
                sha256: None,
                unreadable: None,
            };
            let wasm = match read {
                Ok(wasm) => {
                    file.sha256 = Some(sha256_hex(&wasm));
                    Some(wasm)
                }
                Err(error) => {
                    let path = merchant.plugin.display();
                    file.unreadable = Some(format!("cannot read plugin {path}: {error}"));
                    None
                }
            };
            self.bootstrap_one(merchant, wasm.zip(file.sha256.clone()))
                .await?;
            files.insert(merchant.id.clone(), file);
        }
        Ok(files)
    }

    async fn bootstrap_one(
        &self,
        merchant: &MerchantConfig,
        plugin: Option<(Vec<u8>, String)>,
    ) -> Result<(), RegistryError> {
        let now = now_ms();
        let digests = self.capabilities.secret_digests(&merchant.settings);
        let hash = entry_hash(
            merchant,
            &digests,
            plugin.as_ref().map(|(_, sha)| sha.as_str()),
        );
        let audit = |action: &str| AuditEntry {
            at: now,
            actor: CONFIG_ACTOR.into(),
            merchant_id: Some(merchant.id.clone()),
            action: action.into(),
            detail_json: serde_json::json!({ "from": "configuration file" }).to_string(),
        };
        let mut settings = merchant.settings.clone();
        self.capabilities.seal_secrets(&mut settings);
        let settings_json = settings_json(&settings);
        let existing = self.store.merchant(&merchant.id).await?;
        let row = MerchantRow {
            merchant_id: merchant.id.clone(),
            settings_json,
            disabled: false,
            active_version: None,
            previous_version: None,
            bootstrap_hash: Some(hash.clone()),
            created_at: now,
            updated_at: now,
        };
        match &existing {
            None => {
                let keys = merchant
                    .access_keys
                    .iter()
                    .map(|key| self.seal_key(&merchant.id, key, now))
                    .collect();
                self.store
                    .create_merchant(row, keys, audit("merchant.create"))
                    .await?;
            }
            // Already bootstrapped from this entry — unless by another
            // process that has not activated its plugin yet (replicas
            // starting together): then this one finishes the job.
            Some(stored)
                if stored.bootstrap_hash.as_deref() == Some(hash.as_str())
                    && (plugin.is_none() || stored.active_version.is_some()) =>
            {
                return Ok(());
            }
            Some(stored) if stored.bootstrap_hash.as_deref() == Some(hash.as_str()) => {}
            Some(stored) => {
                let row = MerchantRow {
                    disabled: stored.disabled,
                    ..row
                };
                self.store
                    .update_merchant(row, audit("merchant.update"))
                    .await?;
                self.bootstrap_keys(merchant, now, &audit).await?;
            }
        }
        let Some((wasm, sha)) = plugin else {
            return Ok(());
        };
        let versions = self.store.versions(&merchant.id).await?;
        let version = match versions.iter().find(|v| v.sha256 == sha) {
            Some(known) => known.version,
            None => {
                let contract_version =
                    contract_version_of(&self.runtime, &wasm, self.load_limit).await;
                let new = NewVersion {
                    merchant_id: merchant.id.clone(),
                    sha256: sha,
                    bytes: wasm,
                    contract_version,
                    uploaded_by: CONFIG_ACTOR.into(),
                };
                self.store
                    .add_version(new, audit("plugin.upload"))
                    .await?
                    .version
            }
        };
        self.store
            .activate(
                &merchant.id,
                Activation::Version(version),
                audit("plugin.activate"),
            )
            .await?;
        Ok(())
    }

    /// Makes the stored live keys exactly the configuration's.
    async fn bootstrap_keys(
        &self,
        merchant: &MerchantConfig,
        now: i64,
        audit: &(dyn Fn(&str) -> AuditEntry + Sync),
    ) -> Result<(), RegistryError> {
        let wanted: Vec<KeyRow> = merchant
            .access_keys
            .iter()
            .map(|key| self.seal_key(&merchant.id, key, now))
            .collect();
        for stored in self.store.keys(&merchant.id).await? {
            let still_wanted = wanted.iter().any(|k| k.key_id == stored.key_id);
            if stored.retired_at.is_none() && !still_wanted {
                self.store
                    .retire_key(&merchant.id, &stored.key_id, audit("key.retire"))
                    .await?;
            }
        }
        for key in wanted {
            self.store.add_key(key, audit("key.add")).await?;
        }
        Ok(())
    }

    /// Loads every stored merchant and serves it; `files` are the
    /// configuration's plugin files (see [`Registry::bootstrap`]).
    pub async fn load_all(&self, files: &ConfiguredFiles) -> Result<(), RegistryError> {
        // First the position, then the rows: a change made meanwhile is
        // followed (again) rather than missed.
        let latest = self.store.audit(None, 1).await?;
        self.followed
            .store(latest.first().map_or(0, |e| e.seq), Ordering::Release);
        let rows = self.store.merchants().await?;
        let mut prepared = Vec::with_capacity(rows.len());
        for row in rows {
            prepared.push(self.prepare(row).await?);
        }
        let mut seen = std::collections::HashSet::new();
        let mut distinct: Vec<PluginRef> = Vec::new();
        for plugin in prepared.iter().filter_map(|p| p.plugin.as_ref()) {
            if seen.insert(plugin.sha256.clone()) {
                distinct.push(plugin.clone());
            }
        }
        // More would only evict one another (the rest load on first use).
        let cache_count = usize::try_from(self.sandbox.max_cached_plugins).unwrap_or(usize::MAX);
        distinct.truncate(cache_count);
        let loaded = self.plugins.prewarm(distinct).await;
        for merchant in prepared {
            let outcome = merchant
                .plugin
                .as_ref()
                .and_then(|p| loaded.get(&p.sha256).cloned());
            self.serve(merchant, outcome, files);
        }
        Ok(())
    }

    /// Reloads one merchant from the store and serves what it holds now
    /// (or stops serving it if it is gone), its plugin loaded beforehand.
    /// Callbacks already running keep the merchant they took.
    pub async fn reload(&self, merchant_id: &str) -> Result<(), RegistryError> {
        let Some(row) = self.store.merchant(merchant_id).await? else {
            self.merchants.remove(merchant_id);
            return Ok(());
        };
        let merchant = self.prepare(row).await?;
        let outcome = match &merchant.plugin {
            Some(plugin) => Some(self.plugins.get(plugin).await.map(|_| ())),
            None => None,
        };
        self.serve(merchant, outcome, &ConfiguredFiles::new());
        Ok(())
    }

    /// Serves `merchant` with its plugin, or as unavailable with the reason
    /// (naming the configuration's file when that is what failed).
    /// `loaded` is how loading its plugin went, if it was tried.
    fn serve(
        &self,
        mut merchant: Prepared,
        loaded: Option<Result<(), LoadFailure>>,
        files: &ConfiguredFiles,
    ) {
        let file = files.get(&merchant.id);
        let handler = match (merchant.handler.take(), merchant.plugin.clone(), loaded) {
            (Some(handler), _, _) => handler,
            // Its bytes could not be read now (the store): served all the
            // same, so that its next call tries again.
            (None, Some(plugin), Some(Err(LoadFailure::NotNow(why)))) => {
                tracing::warn!(
                    merchant = %merchant.id,
                    version = plugin.version,
                    why,
                    "the plugin could not be loaded now; its next call tries again"
                );
                Handler::Plugin(plugin)
            }
            (None, Some(plugin), Some(Err(failure))) => {
                let why = match (file, &failure) {
                    (Some(file), LoadFailure::Invalid(source))
                        if file.sha256.as_deref() == Some(&*plugin.sha256) =>
                    {
                        format!("{} is not a valid plugin: {source}", file.path.display())
                    }
                    _ => format!("plugin version {} {failure}", plugin.version),
                };
                merchants::unavailable(&merchant.id, &why)
            }
            (None, Some(plugin), _) => match self.missing_grant(&merchant, &plugin) {
                Some(why) => merchants::unavailable(&merchant.id, &why),
                None => Handler::Plugin(plugin),
            },
            (None, None, _) => {
                let why = file
                    .and_then(|f| f.unreadable.as_deref())
                    .unwrap_or("no plugin version is active; upload and activate one");
                merchants::unavailable(&merchant.id, why)
            }
        };
        let kv = self.capabilities.kv();
        self.merchants
            .install(merchant.into_served(handler, &self.sandbox, kv));
    }

    /// Why `plugin` may not run for `merchant`: it imports a capability the
    /// merchant was not granted. Checked on the compiled plugin when it is
    /// in memory (it is after a prewarm); a call of an ungranted import is
    /// refused by the sandbox anyway.
    fn missing_grant(&self, merchant: &Prepared, plugin: &PluginRef) -> Option<String> {
        let loaded = self.runtime.cached(&plugin.sha256)?;
        let granted = merchant.egress.is_some();
        loaded
            .report()
            .check_grants(&merchant.id, granted)
            .err()
            .map(|error| format!("plugin version {} {error}", plugin.version))
    }

    /// A stored merchant, read and opened: what is left to do is loading
    /// its plugin (`source`), unless it cannot serve anyway (`handler`).
    async fn prepare(&self, row: MerchantRow) -> Result<Prepared, RegistryError> {
        let id = row.merchant_id.clone();
        let settings: MerchantSettings =
            serde_json::from_str(&row.settings_json).map_err(|e| RegistryError::Settings {
                merchant: id.clone(),
                reason: e.to_string(),
            })?;
        let mut keys = Vec::new();
        for key in self.store.keys(&id).await? {
            if key.retired_at.is_some() {
                continue;
            }
            let opened = self
                .key_sealer
                .open(&key.sealed_key)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| RegistryError::SealedKey {
                    merchant: id.clone(),
                    key_id: key.key_id.clone(),
                })?;
            keys.push(AccessKey::new(opened));
        }
        let plugin_config = self.capabilities.plugin_config(&settings);
        let mut prepared = Prepared {
            id: id.clone(),
            keys,
            egress: self.capabilities.egress(&id, &settings),
            plugin_config: plugin_config.as_ref().cloned().unwrap_or_default(),
            settings,
            version: row.active_version,
            plugin: None,
            handler: None,
        };
        if let Err(error) = plugin_config {
            prepared.handler = Some(merchants::unavailable(&id, &error.to_string()));
            return Ok(prepared);
        }
        if row.disabled {
            prepared.handler = Some(merchants::unavailable(&id, "disabled by an administrator"));
            return Ok(prepared);
        }
        let Some(version) = row.active_version else {
            return Ok(prepared);
        };
        let versions = self.store.versions(&id).await?;
        match versions.iter().find(|v| v.version == version) {
            Some(found) => {
                prepared.plugin = Some(PluginRef {
                    version,
                    sha256: found.sha256.as_str().into(),
                    size: usize::try_from(found.size).unwrap_or(usize::MAX),
                });
            }
            None => {
                let why = format!("plugin version {version} is missing from the store");
                prepared.handler = Some(merchants::unavailable(&id, &why));
            }
        }
        Ok(prepared)
    }
}

/// The configuration's plugin files, by merchant id.
pub type ConfiguredFiles = HashMap<String, ConfiguredFile>;

/// What was read from a merchant's configured plugin file at start.
pub struct ConfiguredFile {
    pub path: std::path::PathBuf,
    /// Of its content, if it could be read.
    pub sha256: Option<String>,
    /// Why it could not be read.
    pub unreadable: Option<String>,
}

/// A stored merchant on its way to being served.
struct Prepared {
    id: String,
    keys: Vec<AccessKey>,
    settings: MerchantSettings,
    /// Configuration values and opened secrets.
    plugin_config: PluginConfig,
    egress: Option<Arc<EgressPolicy>>,
    version: Option<i64>,
    /// The active version's plugin, to serve unless `handler` says
    /// otherwise.
    plugin: Option<PluginRef>,
    handler: Option<Handler>,
}

impl Prepared {
    fn into_served(self, handler: Handler, sandbox: &SandboxConfig, kv: KvScope) -> Merchant {
        let mut merchant = Merchant::new(
            &self.id,
            self.keys,
            &self.settings,
            self.plugin_config,
            handler,
            self.version,
            sandbox,
        );
        merchant.context.egress = self.egress;
        merchant.context.kv = Some(kv);
        merchant
    }
}

/// The settings as the store keeps them.
pub fn settings_json(settings: &MerchantSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| unreachable!("settings serialize"))
}

/// What identifies a configuration entry: its settings, key handles and
/// plugin content. A change of any of them is the operator's edit.
fn entry_hash(
    merchant: &MerchantConfig,
    secret_digests: &BTreeMap<String, String>,
    plugin_sha: Option<&str>,
) -> String {
    let mut key_ids: Vec<String> = merchant.access_keys.iter().map(key_id).collect();
    key_ids.sort_unstable();
    let entry = serde_json::json!({
        "settings": merchant.settings,
        "secrets": secret_digests,
        "keys": key_ids,
        "plugin": plugin_sha,
    });
    sha256_hex(entry.to_string().as_bytes())
}

/// The contract version a component targets, or `unknown` when it does
/// not load within `limit` (it is stored all the same; loading reports
/// why).
async fn contract_version_of(runtime: &Arc<Runtime>, wasm: &[u8], limit: Duration) -> String {
    let (runtime, wasm) = (runtime.clone(), wasm.to_vec());
    let load = tokio::task::spawn_blocking(move || runtime.load(&wasm));
    match tokio::time::timeout(limit, load).await {
        Ok(Ok(Ok(plugin))) => plugin.report().contract_version.clone(),
        _ => "unknown".to_string(),
    }
}
