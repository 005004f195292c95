//! The merchants a gateway serves: keys, loaded plugin, limits, share of the
//! sandbox and answer options, by id. Built at start from the configuration.
//!
//! Merchants are loaded independently and in parallel, each within a time
//! limit: a plugin that is missing, invalid or slow to compile makes only its
//! own merchant *unavailable* (its verified callbacks answer 000005, so the
//! marketplace retries, and the reason is logged and shown on the admin
//! listener) while every other merchant serves.
//!
//! An unknown merchant id gets a *decoy*: a key derived from a per-process
//! secret and the id. Its request is verified against the decoy (and fails
//! like a wrong key would) and its answer is signed with it, so neither the
//! answer nor its timing tells whether the merchant exists.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gateway_sandbox::{LoadError, LoadedPlugin, MerchantContext, Runtime};
use hmac::{Hmac, Mac};
use koogallery_protocol::{AccessKey, EncryptType, Generation};
use sha2::Sha256;

use crate::config::{Config, CreateInFlight, MerchantConfig, UnknownInstances, lower};

/// Native code answering a merchant's requests in place of a plugin (the
/// benchmarks' baseline; only with the `native-handlers` feature).
#[cfg(feature = "native-handlers")]
pub type NativeHandler =
    Arc<dyn Fn(&koogallery_contract::OperationRequest) -> gateway_sandbox::Outcome + Send + Sync>;

/// What answers a merchant's callbacks.
#[derive(Clone)]
pub enum Handler {
    /// Its sandboxed plugin.
    Plugin(Arc<LoadedPlugin>),
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
    pub context: MerchantContext,
    pub encrypt_type: EncryptType,
    pub sign_responses: bool,
    /// The generations whose callbacks this merchant accepts.
    pub generations: Vec<Generation>,
    pub create_in_flight: CreateInFlight,
    pub unknown_instances: UnknownInstances,
}

/// Why a merchant's plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid plugin: {source}")]
    Load {
        path: std::path::PathBuf,
        source: LoadError,
    },
    #[error("loading {path} took longer than {limit_secs} s")]
    TooSlow {
        path: std::path::PathBuf,
        limit_secs: u64,
    },
}

/// Every configured merchant, by id.
#[derive(Clone)]
pub struct Merchants {
    by_id: HashMap<String, Arc<Merchant>>,
    decoy_secret: [u8; 32],
}

impl Merchants {
    /// Loads every merchant's plugin (compiling it, or reusing an artifact)
    /// on a few threads, each merchant within `config.load_timeout_secs`.
    /// Blocking: call from a blocking context.
    pub fn load(config: &Config, runtime: &Arc<Runtime>) -> Merchants {
        let limit = Duration::from_secs(config.load_timeout_secs);
        let mut plugins = load_plugins(&config.merchants, runtime, limit);
        let by_id = config
            .merchants
            .iter()
            .map(|merchant| {
                let handler = match plugins.remove(&merchant.id) {
                    Some(Ok(plugin)) => Handler::Plugin(plugin),
                    Some(Err(error)) => unavailable(&merchant.id, &error),
                    None => unavailable(
                        &merchant.id,
                        &MerchantError::TooSlow {
                            path: merchant.plugin.clone(),
                            limit_secs: limit.as_secs(),
                        },
                    ),
                };
                let served = serve(merchant, handler, &config.sandbox);
                (merchant.id.clone(), Arc::new(served))
            })
            .collect();
        Merchants {
            by_id,
            decoy_secret: rand::random(),
        }
    }

    /// Adds (or replaces) a merchant answered by native code, with default
    /// answer options (benchmarks only).
    #[cfg(feature = "native-handlers")]
    pub fn insert_native(&mut self, id: &str, keys: Vec<AccessKey>, handler: NativeHandler) {
        let merchant = Merchant {
            id: id.to_string(),
            keys,
            handler: Handler::Native(handler),
            context: lower::merchant_context(
                id,
                Default::default(),
                lower::default_call_limits(),
                &crate::config::SandboxConfig::default(),
            ),
            encrypt_type: EncryptType::default(),
            sign_responses: true,
            generations: crate::config::defaults::generations(),
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

    /// The merchants that cannot serve, and why.
    pub fn unavailable(&self) -> Vec<(&str, &str)> {
        let mut unavailable: Vec<(&str, &str)> = self
            .by_id
            .values()
            .filter_map(|merchant| match &merchant.handler {
                Handler::Unavailable(why) => Some((merchant.id.as_str(), &**why)),
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

fn unavailable(merchant: &str, error: &MerchantError) -> Handler {
    tracing::error!(
        merchant,
        %error,
        "merchant unavailable: its callbacks answer 000005 until its plugin loads"
    );
    Handler::Unavailable(error.to_string().into())
}

/// Loads the merchants' plugins on up to `available_parallelism` threads.
/// What did not load within `limit` of its start is missing from the
/// result; its thread finishes on its own (a compile cannot be interrupted)
/// and its result is dropped.
fn load_plugins(
    merchants: &[MerchantConfig],
    runtime: &Arc<Runtime>,
    limit: Duration,
) -> HashMap<String, Result<Arc<LoadedPlugin>, MerchantError>> {
    let queue: Arc<Mutex<VecDeque<(String, std::path::PathBuf)>>> = Arc::new(Mutex::new(
        merchants
            .iter()
            .map(|m| (m.id.clone(), m.plugin.clone()))
            .collect(),
    ));
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(merchants.len().max(1));
    let (done, results) = mpsc::channel();
    let started = Arc::new(Mutex::new(HashMap::new()));
    for _ in 0..threads {
        let (queue, runtime, done, started) = (
            queue.clone(),
            runtime.clone(),
            done.clone(),
            started.clone(),
        );
        std::thread::spawn(move || {
            loop {
                let next = lock(&queue).pop_front();
                let Some((id, path)) = next else { break };
                lock(&started).insert(id.clone(), Instant::now());
                let loaded = load_plugin(&path, &runtime);
                if done.send((id, loaded)).is_err() {
                    break;
                }
            }
        });
    }
    drop(done);
    let mut loaded = HashMap::new();
    while loaded.len() < merchants.len() {
        // Wait until the earliest running load passes its limit.
        let wait = lock(&started)
            .iter()
            .filter(|(id, _)| !loaded.contains_key(*id))
            .map(|(_, at)| (*at + limit).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(limit);
        match results.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok((id, result)) => {
                loaded.insert(id, result);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let overdue = lock(&started)
                    .iter()
                    .any(|(id, at)| !loaded.contains_key(id) && at.elapsed() >= limit);
                if overdue {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    loaded
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn load_plugin(
    path: &std::path::Path,
    runtime: &Runtime,
) -> Result<Arc<LoadedPlugin>, MerchantError> {
    let wasm = std::fs::read(path).map_err(|source| MerchantError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    runtime.load(&wasm).map_err(|source| MerchantError::Load {
        path: path.to_path_buf(),
        source,
    })
}

/// A merchant as served: its handler and its call context.
fn serve(
    merchant: &MerchantConfig,
    handler: Handler,
    sandbox: &crate::config::SandboxConfig,
) -> Merchant {
    let context = lower::merchant_context(
        &merchant.id,
        merchant.config.clone(),
        lower::call_limits(merchant),
        sandbox,
    );
    Merchant {
        id: merchant.id.clone(),
        keys: merchant.access_keys.clone(),
        handler,
        context,
        encrypt_type: merchant.encrypt_type,
        sign_responses: merchant.sign_responses,
        generations: merchant.generations.clone(),
        create_in_flight: merchant.create_in_flight,
        unknown_instances: merchant.unknown_instances,
    }
}
