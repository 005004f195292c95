//! The served gateway: `gateway serve`.
//!
//! - [`App`] holds everything a callback needs: the merchants and their
//!   loaded plugins, the runtime, the store (nonces) and the idempotency
//!   layer, metrics, the answer budget.
//! - [`app`] is the callback router (`/callbacks/{merchant_id}`,
//!   `/healthz`, `/readyz`), [`admin::router`] the admin listener's
//!   (`/metrics`, `/status`); both testable in-process without a socket.
//! - [`serve`] (in `listen`) serves both listeners: HTTP/1.1 with
//!   title-case header names (the marketplace's debugger looks for
//!   `Body-Sign` exactly), a bounded number of connections, small request
//!   heads read within a timeout, and a graceful shutdown: stop accepting,
//!   finish in-flight callbacks and plugin calls. The callback port's
//!   connections are served thread per core (`connection_threads`).
//!
//! The data flow of one callback is in [`callback`].

pub mod admin;
pub mod admin_api;
mod callback;
mod connection_threads;
pub mod console;
mod listen;
mod throttle;

pub use listen::{Listeners, serve};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};

use gateway_sandbox::{Runtime, RuntimeError};

use crate::callback_log::CallbackLogger;
use crate::capabilities::Capabilities;
use gateway_store::{Backend, PostgresStore, SqliteStore, Store, StoreError};
use koogallery_protocol::VerifyPolicy;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, lower};
use crate::executor::HandlerExecutor;
use crate::keys::{self, KeyError, Keys};
use crate::merchants::Merchants;
use crate::metrics::Metrics;
use crate::operations::Operations;
use crate::operations::upkeep::UpkeepSettings;
use crate::plugin_tasks::PluginTasks;
use crate::registry::{Registry, RegistryError};
use crate::sealing::Sealer;

/// Everything the handlers share.
pub struct App {
    merchants: Arc<Merchants>,
    registry: Arc<Registry>,
    admin_api: admin_api::AdminState,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    operations: Operations,
    metrics: Arc<Metrics>,
    policy: VerifyPolicy,
    /// How long V2 nonces are remembered in the store.
    nonce_memory_ms: i64,
    /// How long V1 tokens are remembered (their window, both ways).
    v1_token_memory_ms: i64,
    upkeep: UpkeepSettings,
    stop_upkeep: CancellationToken,
    answer_budget: Duration,
    /// How often the store is asked for other processes' changes.
    follow_changes: Duration,
    max_body_bytes: usize,
    /// Plugin calls, which may outlive their request (budget, disconnect).
    tasks: PluginTasks,
    ready: AtomicBool,
    /// Log lines of refused, unauthenticated requests.
    refusals: throttle::Throttle,
    /// The merchants' view of their callbacks (written behind the answers).
    callback_log: Arc<CallbackLogger>,
    /// The key console sessions are sealed under.
    console_key: [u8; 32],
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("loading the merchants' plugins panicked: {0}")]
    Panicked(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("setting up plugin capabilities: {0}")]
    Capabilities(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Opens (creating and migrating) the configured store.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Backend>, StartError> {
    if let Some(settings) = lower::postgres(&config.store) {
        return Ok(Arc::new(PostgresStore::open(&settings).await?));
    }
    if let Some(dir) = config.store.path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let store = SqliteStore::open(&lower::sqlite(&config.store)).await?;
    Ok(Arc::new(store))
}

impl App {
    /// Bootstraps the configuration file's merchants into the store, then
    /// loads every stored merchant's active plugin into `runtime`; a
    /// merchant that cannot serve is served as unavailable.
    pub async fn new(
        config: &Config,
        keys: &Keys,
        runtime: Arc<Runtime>,
        store: Arc<dyn Backend>,
    ) -> Result<App, StartError> {
        let metrics = Arc::new(Metrics::with_merchant_series(
            config.admin.per_merchant_metrics,
        ));
        let observer: Arc<dyn gateway_egress::EgressObserver> = metrics.clone();
        let capabilities = Capabilities::new(config, keys, store.clone(), Some(observer))
            .map_err(|e| StartError::Capabilities(e.to_string()))?;
        let registry = Registry::new(config, keys, store.clone(), runtime.clone(), capabilities);
        let files = registry.bootstrap(config).await?;
        registry.load_all(&files).await?;
        Ok(App::with_registry(
            config,
            keys,
            Arc::new(registry),
            metrics,
        ))
    }

    /// The app for a registry already loaded.
    pub fn with_registry(
        config: &Config,
        keys: &Keys,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> App {
        let merchants = registry.merchants().clone();
        let runtime = registry.runtime().clone();
        let store: Arc<dyn Store> = registry.store().clone();
        let tasks = PluginTasks::on_current_runtime();
        let stop_upkeep = CancellationToken::new();
        let callback_log = CallbackLogger::start(
            &config.callback_log,
            registry.store().clone(),
            metrics.clone(),
            stop_upkeep.clone(),
        );
        let executor = HandlerExecutor {
            merchants: merchants.clone(),
            plugins: registry.plugins().clone(),
            metrics: metrics.clone(),
            traces: Some(callback_log.traces().clone()),
        };
        let operations = Operations::new(
            store.clone(),
            Arc::new(executor),
            Sealer::new(&keys.sealing_key()),
            lower::operations(&config.store),
            tasks.clone(),
        );
        App {
            merchants,
            registry,
            admin_api: admin_api::AdminState::new(config),
            runtime,
            store,
            operations,
            metrics,
            policy: lower::verify_policy(config),
            nonce_memory_ms: lower::nonce_memory_ms(&config.signature),
            v1_token_memory_ms: lower::v1_token_memory_ms(&config.signature),
            upkeep: lower::upkeep(&config.store),
            stop_upkeep,
            answer_budget: Duration::from_millis(config.answer_budget_ms),
            follow_changes: Duration::from_millis(config.store.follow_changes_ms),
            max_body_bytes: config.max_body_bytes,
            tasks,
            ready: AtomicBool::new(true),
            refusals: throttle::Throttle::new(10, Duration::from_secs(1)),
            callback_log,
            console_key: console::Console::session_key(keys),
        }
    }

    /// The merchants served right now.
    pub fn merchants(&self) -> &Arc<Merchants> {
        &self.merchants
    }

    /// The registry behind them (the admin API changes merchants through
    /// it).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The idempotency layer (tests drive its completer and reaper).
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// Starts the completer and the reaper; they stop when draining.
    /// Also follows the store's administrative changes made by other
    /// processes.
    pub fn start_upkeep(&self) {
        let (operations, settings, stop) = (
            self.operations.clone(),
            self.upkeep.clone(),
            self.stop_upkeep.clone(),
        );
        tokio::spawn(async move { operations.run_upkeep(settings, stop).await });
        let (registry, stop) = (self.registry.clone(), self.stop_upkeep.clone());
        let every = self.follow_changes;
        tokio::spawn(async move { registry.keep_following(every, stop).await });
    }

    pub fn merchant_ids(&self) -> Vec<String> {
        self.merchants.ids()
    }

    /// Stops reporting ready (the load balancer drains us) and waits for
    /// plugin calls still running, at most `grace`.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.ready.store(false, Ordering::SeqCst);
        self.stop_upkeep.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// The callback router, for `serve` and for in-process tests: the
/// marketplace's endpoint and the load balancer's probes. Everything else
/// (metrics, status, the admin API) is on the admin listener ([`admin`]),
/// never here, so that merchant ids and volumes are not public.
pub fn app(state: Arc<App>) -> Router {
    Router::new()
        .route("/callbacks/{merchant_id}", any(callback::callback))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(callback::no_such_endpoint)
        .with_state(state)
}

/// Ready unless draining or the store cannot write. A store that failed
/// lately is probed (an empty write transaction, bounded), so that readiness
/// comes back by itself once the store does.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    if !app.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".to_string());
    }
    match app.store_status().await {
        // Ready all the same: one merchant's broken plugin must not take
        // every merchant's replica out of the load balancer. Named (without
        // the reason, which is for /status) so that a probe's log shows it.
        Ok(()) => match app.merchants.unavailable().as_slice() {
            [] => (StatusCode::OK, "ready".to_string()),
            unavailable => {
                let ids: Vec<&str> = unavailable.iter().map(|(id, _)| id.as_str()).collect();
                let ids = ids.join(", ");
                (
                    StatusCode::OK,
                    format!("ready; unavailable merchants: {ids}"),
                )
            }
        },
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {why}"),
        ),
    }
}

impl App {
    /// Whether the store writes now (see [`readyz`]).
    async fn store_status(&self) -> Result<(), String> {
        if self.store.health().failing_batches == 0 {
            return Ok(());
        }
        match tokio::time::timeout(Duration::from_millis(500), self.store.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("a write did not commit within 500 ms".to_string()),
        }
    }
}

/// The master key: `GATEWAY_KEY` from the environment, else the key file.
pub fn load_keys(config: &Config) -> Result<Keys, StartError> {
    let from_env = std::env::var(keys::KEY_ENV).ok();
    Ok(Keys::load(from_env.as_deref(), &config.key_file)?)
}

/// Creates the data directory, owner-only.
fn create_data_dir(config: &Config) -> Result<(), StartError> {
    let failed = |source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(failed)?;
    }
    Ok(())
}

/// Builds the runtime and the app for `config`, off the async threads.
pub async fn start(config: &Config) -> Result<Arc<App>, StartError> {
    create_data_dir(config)?;
    let keys = load_keys(config)?;
    let store = open_store(config).await?;
    let settings = lower::served_runtime(config, &keys);
    let runtime = tokio::task::spawn_blocking(move || Runtime::new(settings))
        .await
        .map_err(|join| StartError::Panicked(join.to_string()))??;
    let slot_reset = runtime.stats().slot_reset.label();
    tracing::info!(slot_reset, "sandbox ready");
    let app = App::new(config, &keys, Arc::new(runtime), store).await?;
    app.start_upkeep();
    Ok(Arc::new(app))
}
