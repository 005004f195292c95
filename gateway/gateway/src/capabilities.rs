//! What a merchant's plugin may use besides computing, as granted by the
//! operator: outbound HTTP (the merchant's `allowed_outbound_hosts`, within
//! the operator's `[outbound_http]` limits), a key-value store in the
//! gateway's store (`[kv]` quota), and secrets (`[merchants.secrets]`),
//! read like configuration values.
//!
//! Secrets are sealed (AES-256-GCM under a key derived for them) before
//! they reach the store, opened only to build the plugin's configuration,
//! never serialized in clear (`config::Secret`), and shown by name only in
//! the admin API. The configuration file's entry hash covers them through
//! a keyed digest, so an edited secret is an edit without the store holding
//! an unkeyed hash of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use gateway_egress::{AllowList, EgressClient, EgressLimits, EgressObserver, EgressPolicy};
use gateway_sandbox::{KeyValue, KvError, KvQuota, KvScope, PluginConfig};
use gateway_store::{Backend, KvLimits, KvWrite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Config, MerchantSettings, Secret, lower};
use crate::keys::Keys;
use crate::sealing::{OpenError, Sealer};

/// Why a merchant's capabilities could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("secret `{name}` does not open with this gateway's key: {source}")]
    Secret { name: String, source: OpenError },
    #[error("secret `{name}` is not text")]
    SecretNotText { name: String },
    #[error(transparent)]
    Egress(#[from] gateway_egress::EgressSetupError),
}

/// The process's capabilities (see the module docs). Share behind an `Arc`.
pub struct Capabilities {
    egress: Arc<EgressClient>,
    egress_limits: EgressLimits,
    kv: KvScope,
    secrets: Sealer,
    digest_key: [u8; 32],
}

impl Capabilities {
    pub fn new(
        config: &Config,
        keys: &Keys,
        store: Arc<dyn Backend>,
        observer: Option<Arc<dyn EgressObserver>>,
    ) -> Result<Capabilities, CapabilityError> {
        Ok(Capabilities {
            egress: EgressClient::new(observer)?,
            egress_limits: lower::egress_limits(&config.outbound_http),
            kv: KvScope {
                backend: Arc::new(StoreKv(store)),
                quota: lower::kv_quota(&config.kv),
            },
            secrets: Sealer::new(&keys.derive("merchant-secrets")),
            digest_key: keys.derive("merchant-secret-digests"),
        })
    }

    /// The merchant's outbound grant; `None` when it has none (or an entry
    /// no longer parses, which validation refuses before it is stored).
    pub fn egress(&self, merchant: &str, settings: &MerchantSettings) -> Option<Arc<EgressPolicy>> {
        let allowed = AllowList::parse(&settings.allowed_outbound_hosts).ok()?;
        if allowed.is_empty() {
            return None;
        }
        Some(EgressPolicy::new(
            merchant.into(),
            allowed,
            settings.allow_private_networks,
            self.egress_limits.clone(),
            self.egress.clone(),
        ))
    }

    pub fn kv(&self) -> KvScope {
        self.kv.clone()
    }

    /// Seals every secret still in clear.
    pub fn seal_secrets(&self, settings: &mut MerchantSettings) {
        for secret in settings.secrets.values_mut() {
            if let Secret::Plain(text) = secret {
                *secret = Secret::Sealed(self.secrets.seal(text.as_bytes()));
            }
        }
    }

    /// The values the plugin reads: configuration and opened secrets.
    pub fn plugin_config(
        &self,
        settings: &MerchantSettings,
    ) -> Result<PluginConfig, CapabilityError> {
        let mut values = settings.config.clone();
        for (name, secret) in &settings.secrets {
            let text = match secret {
                Secret::Plain(text) => text.clone(),
                Secret::Sealed(sealed) => {
                    let bytes =
                        self.secrets
                            .open(sealed)
                            .map_err(|source| CapabilityError::Secret {
                                name: name.clone(),
                                source,
                            })?;
                    String::from_utf8(bytes)
                        .map_err(|_| CapabilityError::SecretNotText { name: name.clone() })?
                }
            };
            values.insert(name.clone(), text);
        }
        Ok(values)
    }

    /// A keyed digest of each secret as written (for the configuration
    /// entry's hash): equal values give equal digests, and the store learns
    /// nothing it could test a guess against.
    pub fn secret_digests(&self, settings: &MerchantSettings) -> BTreeMap<String, String> {
        settings
            .secrets
            .iter()
            .map(|(name, secret)| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(name.as_bytes());
                mac.update(&[0]);
                match secret {
                    Secret::Plain(text) => mac.update(text.as_bytes()),
                    Secret::Sealed(sealed) => mac.update(sealed.as_bytes()),
                }
                (name.clone(), hex::encode(mac.finalize().into_bytes()))
            })
            .collect()
    }
}

/// A key-value store in memory, for one local run (`plugin invoke`,
/// `plugin test`): what a plugin writes it reads back, and nothing lasts.
#[derive(Default)]
pub struct MemoryKv {
    entries: std::sync::Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryKv {
    /// A scope over a fresh in-memory store, with the default quota.
    pub fn scope() -> KvScope {
        KvScope {
            backend: Arc::new(MemoryKv::default()),
            quota: KvQuota::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl KeyValue for MemoryKv {
    async fn get(&self, merchant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.entries().get(&(merchant.into(), key.into())).cloned())
    }

    async fn set(
        &self,
        merchant: &str,
        key: &str,
        value: Vec<u8>,
        _: &KvQuota,
    ) -> Result<(), KvError> {
        self.entries().insert((merchant.into(), key.into()), value);
        Ok(())
    }

    async fn delete(&self, merchant: &str, key: &str) -> Result<bool, KvError> {
        Ok(self
            .entries()
            .remove(&(merchant.into(), key.into()))
            .is_some())
    }

    async fn list_keys(
        &self,
        merchant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        Ok(self
            .entries()
            .keys()
            .filter(|(m, key)| m == merchant && key.starts_with(prefix))
            .filter(|(_, key)| after.is_none_or(|after| key.as_str() > after))
            .take(limit as usize)
            .map(|(_, key)| key.clone())
            .collect())
    }
}

/// The plugins' key-value stores, in the gateway's store.
struct StoreKv(Arc<dyn Backend>);

fn unavailable(error: gateway_store::StoreError) -> KvError {
    KvError::Unavailable(error.to_string())
}

#[async_trait::async_trait]
impl KeyValue for StoreKv {
    async fn get(&self, merchant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.kv_get(merchant, key).await.map_err(unavailable)
    }

    async fn set(
        &self,
        merchant: &str,
        key: &str,
        value: Vec<u8>,
        quota: &KvQuota,
    ) -> Result<(), KvError> {
        let limits = KvLimits {
            max_total_bytes: quota.max_total_bytes,
            max_keys: quota.max_keys,
        };
        let now = crate::registry::now_ms();
        match self.0.kv_set(merchant, key, value, limits, now).await {
            Ok(KvWrite::Stored) => Ok(()),
            Ok(KvWrite::OverQuota { bytes, keys }) => Err(KvError::QuotaExceeded(format!(
                "the merchant's store would hold {bytes} bytes in {keys} keys; its quota is \
                 {} bytes and {} keys",
                quota.max_total_bytes, quota.max_keys
            ))),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn delete(&self, merchant: &str, key: &str) -> Result<bool, KvError> {
        self.0.kv_delete(merchant, key).await.map_err(unavailable)
    }

    async fn list_keys(
        &self,
        merchant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        self.0
            .kv_keys(merchant, prefix, after, limit)
            .await
            .map_err(unavailable)
    }
}
