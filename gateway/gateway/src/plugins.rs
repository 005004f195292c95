//! The merchants' compiled plugins, loaded when a call first needs them.
//!
//! A served merchant names its plugin by content hash ([`PluginRef`]); it
//! does not hold the compiled code. A call takes the plugin from the
//! runtime's cache (least recently used evicted first, bounded by count and
//! code bytes, shared by every merchant running the same module); after an
//! eviction it comes back from its precompiled artifact on disk (a
//! millisecond or two), and only without one from the store's module
//! bytes, compiled again. So 10,000 merchants on a few modules hold a few
//! compiled plugins, and memory is bounded however many merchants there are.
//!
//! At start and after an activation the registry *prewarms* the modules it
//! serves, so that the first callback after an activation never compiles
//! and a module that does not load is reported at once.
//!
//! A module found not to load is remembered (by hash): its merchants answer
//! 000005 at once rather than trying again on every callback. A failure to
//! *read* it (the store is down) is not remembered: the next call tries
//! again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_sandbox::{LoadError, LoadedPlugin, Runtime};
use gateway_store::Backend;

/// The plugin a merchant runs: its version and its module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    pub version: i64,
    /// The module's sha256, in hex.
    pub sha256: Arc<str>,
    /// The module's size in bytes.
    pub size: usize,
}

/// Why a plugin is not there to run. Its `Display` completes "plugin
/// version N …".
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadFailure {
    /// The module itself does not load (remembered).
    #[error("is not a valid plugin: {0}")]
    Invalid(LoadError),
    #[error("took longer than {limit_secs} s to load")]
    TooSlow { limit_secs: u64 },
    /// Its bytes could not be read now (a later call tries again).
    #[error("could not be loaded: {0}")]
    NotNow(String),
}

/// The plugins of the merchants served (see the module docs). Clones share
/// everything.
#[derive(Clone)]
pub struct Plugins {
    runtime: Arc<Runtime>,
    store: Arc<dyn Backend>,
    load_limit: Duration,
    /// Modules that do not load, by hash, and why.
    unloadable: moka::sync::Cache<String, LoadError>,
}

/// Modules remembered as not loading (each costs its hash and a message).
const MAX_REMEMBERED_FAILURES: u64 = 10_000;

impl Plugins {
    pub fn new(runtime: Arc<Runtime>, store: Arc<dyn Backend>, load_limit: Duration) -> Plugins {
        Plugins {
            runtime,
            store,
            load_limit,
            unloadable: moka::sync::Cache::new(MAX_REMEMBERED_FAILURES),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The loaded plugin, from memory when it is there (the common case: no
    /// await, no thread hop), else loaded now.
    pub async fn get(&self, plugin: &PluginRef) -> Result<Arc<LoadedPlugin>, LoadFailure> {
        if let Some(loaded) = self.runtime.cached(&plugin.sha256) {
            return Ok(loaded);
        }
        if let Some(error) = self.unloadable.get(&*plugin.sha256) {
            return Err(LoadFailure::Invalid(error));
        }
        self.load(plugin).await
    }

    /// Loads `plugins` (distinct modules), a few at a time, each within the
    /// load limit; returns each one's outcome by hash.
    pub async fn prewarm(
        &self,
        plugins: Vec<PluginRef>,
    ) -> HashMap<Arc<str>, Result<(), LoadFailure>> {
        let parallel = std::thread::available_parallelism().map_or(2, usize::from);
        let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut loads = tokio::task::JoinSet::new();
        for plugin in plugins {
            let permits = permits.clone();
            let this = self.clone();
            loads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let loaded = this.get(&plugin).await.map(|_| ());
                (plugin.sha256, loaded)
            });
        }
        let mut outcomes = HashMap::new();
        while let Some(joined) = loads.join_next().await {
            match joined {
                Ok((sha256, loaded)) => {
                    outcomes.insert(sha256, loaded);
                }
                Err(error) => tracing::error!(%error, "a plugin load stopped"),
            }
        }
        outcomes
    }

    async fn load(&self, plugin: &PluginRef) -> Result<Arc<LoadedPlugin>, LoadFailure> {
        let (runtime, store) = (self.runtime.clone(), self.store.clone());
        let (sha256, size) = (plugin.sha256.clone(), plugin.size);
        let handle = tokio::runtime::Handle::current();
        let load = tokio::task::spawn_blocking(move || {
            runtime.load_stored(&sha256, size, || {
                // On a blocking thread, outside the runtime's workers.
                handle.block_on(fetch_module(&*store, &sha256))
            })
        });
        match tokio::time::timeout(self.load_limit, load).await {
            Ok(Ok(Ok(loaded))) => Ok(loaded),
            Ok(Ok(Err(LoadError::Source(why)))) => Err(LoadFailure::NotNow(why)),
            Ok(Ok(Err(error))) => {
                self.unloadable
                    .insert(plugin.sha256.to_string(), error.clone());
                Err(LoadFailure::Invalid(error))
            }
            Ok(Err(join_error)) => Err(LoadFailure::NotNow(join_error.to_string())),
            // The load goes on in the background (a compile cannot be
            // interrupted) and is cached if it succeeds.
            Err(_) => Err(LoadFailure::TooSlow {
                limit_secs: self.load_limit.as_secs(),
            }),
        }
    }
}

async fn fetch_module(store: &dyn Backend, sha256: &str) -> Result<Vec<u8>, LoadError> {
    match store.module(sha256).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(LoadError::Source(format!(
            "module {sha256} is missing from the store"
        ))),
        Err(error) => Err(LoadError::Source(format!(
            "reading module {sha256} from the store: {error}"
        ))),
    }
}
