//! The merchants a gateway serves: keys, loaded plugin, limits and answer
//! options, by id. Built once at start from the configuration.
//!
//! An unknown merchant id gets a *decoy*: a key derived from a per-process
//! secret and the id. Its request is verified against the decoy (and fails
//! like a wrong key would) and its answer is signed with it, so neither the
//! answer nor its timing tells whether the merchant exists.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_sandbox::{LoadError, LoadedPlugin, MerchantContext, Runtime};
use hmac::{Hmac, Mac};
use koogallery_protocol::{AccessKey, EncryptType};
use sha2::Sha256;

use crate::config::{Config, CreateInFlight, MerchantConfig, UnknownInstances, lower};

/// Native code answering a merchant's requests in place of a plugin (the
/// benchmarks' baseline; only with the `native-handlers` feature).
#[cfg(feature = "native-handlers")]
pub type NativeHandler =
    Arc<dyn Fn(&koogallery_contract::OperationRequest) -> gateway_sandbox::Outcome + Send + Sync>;

/// What answers a merchant's callbacks: its sandboxed plugin or, for
/// benchmarks, Rust code in the gateway's process.
#[derive(Clone)]
pub enum Handler {
    Plugin(Arc<LoadedPlugin>),
    #[cfg(feature = "native-handlers")]
    Native(NativeHandler),
}

/// One merchant, ready to serve.
pub struct Merchant {
    pub id: String,
    pub keys: Vec<AccessKey>,
    pub handler: Handler,
    pub context: MerchantContext,
    pub encrypt_type: EncryptType,
    pub sign_responses: bool,
    pub create_in_flight: CreateInFlight,
    pub unknown_instances: UnknownInstances,
}

/// Why the gateway cannot start serving a merchant.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant `{merchant}`: cannot read plugin {path}: {source}")]
    Read {
        merchant: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("merchant `{merchant}`: {path} is not a valid plugin: {source}")]
    Load {
        merchant: String,
        path: std::path::PathBuf,
        source: LoadError,
    },
}

/// Every configured merchant, by id.
#[derive(Clone)]
pub struct Merchants {
    by_id: HashMap<String, Arc<Merchant>>,
    decoy_secret: [u8; 32],
}

impl Merchants {
    /// Loads every merchant's plugin (compiling it, or reusing an artifact).
    /// Blocking: call from a blocking context.
    pub fn load(config: &Config, runtime: &Runtime) -> Result<Merchants, MerchantError> {
        let mut by_id = HashMap::new();
        for merchant in &config.merchants {
            let loaded = load_one(merchant, runtime)?;
            by_id.insert(merchant.id.clone(), Arc::new(loaded));
        }
        Ok(Merchants {
            by_id,
            decoy_secret: rand::random(),
        })
    }

    /// Adds (or replaces) a merchant answered by native code, with default
    /// answer options (benchmarks only).
    #[cfg(feature = "native-handlers")]
    pub fn insert_native(&mut self, id: &str, keys: Vec<AccessKey>, handler: NativeHandler) {
        let merchant = Merchant {
            id: id.to_string(),
            keys,
            handler: Handler::Native(handler),
            context: MerchantContext {
                label: id.into(),
                config: Arc::default(),
                limits: lower::default_call_limits(),
            },
            encrypt_type: EncryptType::default(),
            sign_responses: true,
            create_in_flight: CreateInFlight::default(),
            unknown_instances: UnknownInstances::default(),
        };
        self.by_id.insert(id.to_string(), Arc::new(merchant));
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Merchant>> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// The decoy key of an unknown merchant id (see the module docs).
    pub fn decoy_key(&self, id: &str) -> AccessKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.decoy_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        AccessKey::new(hex::encode(mac.finalize().into_bytes()))
    }
}

fn load_one(merchant: &MerchantConfig, runtime: &Runtime) -> Result<Merchant, MerchantError> {
    let wasm = std::fs::read(&merchant.plugin).map_err(|source| MerchantError::Read {
        merchant: merchant.id.clone(),
        path: merchant.plugin.clone(),
        source,
    })?;
    let plugin = runtime.load(&wasm).map_err(|source| MerchantError::Load {
        merchant: merchant.id.clone(),
        path: merchant.plugin.clone(),
        source,
    })?;
    let context = MerchantContext {
        label: merchant.id.as_str().into(),
        config: Arc::new(merchant.config.clone()),
        limits: lower::call_limits(merchant),
    };
    Ok(Merchant {
        id: merchant.id.clone(),
        keys: merchant.access_keys.clone(),
        handler: Handler::Plugin(plugin),
        context,
        encrypt_type: merchant.encrypt_type,
        sign_responses: merchant.sign_responses,
        create_in_flight: merchant.create_in_flight,
        unknown_instances: merchant.unknown_instances,
    })
}
