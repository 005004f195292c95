//! The merchants a gateway serves right now: keys, plugin version (its
//! compiled code lives in `crate::plugins`), limits, share of the sandbox
//! and answer options, by id.
//! Filled from the store by `crate::registry`, and changed while serving:
//! [`Merchants::install`] replaces a merchant in one step. Whoever holds a
//! merchant (an `Arc`) keeps it to the end: a callback verifies and signs
//! with the keys it took at its start, and a plugin call in flight during an
//! activation finishes on the version it started with; the next one starts
//! on the new version.
//!
//! Every merchant's record stays in memory (keys, settings, its share of
//! the sandbox, a plugin reference: 4–9 KiB of resident memory each,
//! measured in docs/benchmarks.md), so that a callback is verified without a
//! store read and an unknown id costs what a known one costs; what grows
//! with the modules — compiled code — is bounded in `crate::plugins`.
//! A merchant whose plugin is missing, invalid or slow to load is
//! *unavailable* (its verified callbacks answer 000005, so the marketplace
//! retries, and the reason is logged and shown on the admin listener) while
//! every other merchant serves.
//!
//! An unknown merchant id gets a *decoy*: a key derived from a per-process
//! secret and the id. Its request is verified against the decoy (and fails
//! like a wrong key would) and its answer is signed with it, so neither the
//! answer nor its timing tells whether the merchant exists.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gateway_sandbox::{MerchantContext, PluginConfig};
use hmac::{Hmac, Mac};
use koogallery_protocol::{AccessKey, EncryptType, Generation};
use sha2::Sha256;

use crate::config::{CreateInFlight, MerchantSettings, SandboxConfig, UnknownInstances, lower};
use crate::plugins::PluginRef;

/// Native code answering a merchant's requests in place of a plugin (the
/// benchmarks' baseline; only with the `native-handlers` feature).
#[cfg(feature = "native-handlers")]
pub type NativeHandler =
    Arc<dyn Fn(&koogallery_contract::OperationRequest) -> gateway_sandbox::Outcome + Send + Sync>;

/// What answers a merchant's callbacks.
#[derive(Clone)]
pub enum Handler {
    /// Its sandboxed plugin.
    Plugin(PluginRef),
    /// Nothing: its plugin could not be loaded (the reason). Verified
    /// callbacks answer 000005.
    Unavailable(Arc<str>),
    /// Rust code in the gateway's process (benchmarks only).
    #[cfg(feature = "native-handlers")]
    Native(NativeHandler),
}

/// One merchant, ready to serve.
pub struct Merchant {
    pub id: String,
    pub keys: Vec<AccessKey>,
    pub handler: Handler,
    /// The plugin version its handler runs (`None`: none is active).
    pub version: Option<i64>,
    pub context: MerchantContext,
    pub encrypt_type: EncryptType,
    pub sign_responses: bool,
    /// The generations whose callbacks this merchant accepts.
    pub generations: Vec<Generation>,
    pub create_in_flight: CreateInFlight,
    pub unknown_instances: UnknownInstances,
}

/// The merchants served right now, by id (see the module docs).
pub struct Merchants {
    by_id: RwLock<HashMap<String, Arc<Merchant>>>,
    decoy_secret: [u8; 32],
}

impl Default for Merchants {
    fn default() -> Self {
        Merchants {
            by_id: RwLock::default(),
            decoy_secret: rand::random(),
        }
    }
}

impl Merchants {
    /// Serves `merchant` from now on, in place of the one with its id. The
    /// one it replaces hands over its share of the sandbox: calls in flight
    /// on the previous version and new ones count against the same limits,
    /// and a demotion for a heavy call is not undone by a settings change.
    pub fn install(&self, mut merchant: Merchant) {
        let mut by_id = write(&self.by_id);
        if let Some(previous) = by_id.get(&merchant.id) {
            merchant.context.share = previous.context.share.clone();
        }
        by_id.insert(merchant.id.clone(), Arc::new(merchant));
    }

    /// Stops serving `id` (its callbacks get the decoy from now on).
    pub fn remove(&self, id: &str) {
        write(&self.by_id).remove(id);
    }

    /// Adds (or replaces) a merchant answered by native code, with default
    /// answer options (benchmarks only).
    #[cfg(feature = "native-handlers")]
    pub fn install_native(&self, id: &str, keys: Vec<AccessKey>, handler: NativeHandler) {
        let settings = MerchantSettings::default();
        let sandbox = SandboxConfig::default();
        self.install(Merchant::new(
            id,
            keys,
            &settings,
            PluginConfig::new(),
            Handler::Native(handler),
            None,
            &sandbox,
        ));
    }

    /// The merchant as served right now.
    pub fn get(&self, id: &str) -> Option<Arc<Merchant>> {
        read(&self.by_id).get(id).cloned()
    }

    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = read(&self.by_id).keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// The merchants that cannot serve, and why.
    pub fn unavailable(&self) -> Vec<(String, String)> {
        let mut unavailable: Vec<(String, String)> = read(&self.by_id)
            .values()
            .filter_map(|merchant| match &merchant.handler {
                Handler::Unavailable(why) => Some((merchant.id.clone(), why.to_string())),
                _ => None,
            })
            .collect();
        unavailable.sort_unstable();
        unavailable
    }

    /// The decoy key of an unknown merchant id (see the module docs).
    pub fn decoy_key(&self, id: &str) -> AccessKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.decoy_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        AccessKey::new(hex::encode(mac.finalize().into_bytes()))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Merchant {
    /// A merchant as served: its handler and a fresh call context (its own
    /// share of the sandbox).
    pub fn new(
        id: &str,
        keys: Vec<AccessKey>,
        settings: &MerchantSettings,
        plugin_config: PluginConfig,
        handler: Handler,
        version: Option<i64>,
        sandbox: &SandboxConfig,
    ) -> Merchant {
        let context =
            lower::merchant_context(id, plugin_config, lower::call_limits(settings), sandbox);
        Merchant {
            id: id.to_string(),
            keys,
            handler,
            version,
            context,
            encrypt_type: settings.encrypt_type,
            sign_responses: settings.sign_responses,
            generations: settings.generations.clone(),
            create_in_flight: settings.create_in_flight,
            unknown_instances: settings.unknown_instances,
        }
    }
}

/// The handler of a merchant that cannot serve (its plugin did not load,
/// none is active, it is disabled): unavailable, and why (logged).
pub fn unavailable(merchant: &str, why: &str) -> Handler {
    tracing::error!(
        merchant,
        why,
        "merchant unavailable: its callbacks answer 000005 until it can serve"
    );
    Handler::Unavailable(why.into())
}
