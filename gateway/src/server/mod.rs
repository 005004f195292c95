//! The served gateway: `gateway serve`.
//!
//! - [`App`] holds everything a callback needs: the merchants and their
//!   loaded plugins, the runtime, the store (nonces) and the idempotency
//!   layer, metrics, the answer budget.
//! - [`app`] is the router (`/callbacks/{merchant_id}`, `/healthz`,
//!   `/readyz`, `/metrics`), testable in-process without a socket.
//! - [`serve`] binds, serves HTTP/1.1 with title-case header names (the
//!   marketplace's debugger looks for `Body-Sign` exactly), and shuts down
//!   gracefully: stop accepting, finish in-flight callbacks and plugin calls.
//!
//! The data flow of one callback is in [`callback`].

mod callback;
mod executor;
mod merchants;
mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::task::TaskTracker;

pub use merchants::{Handler, Merchant, MerchantError, Merchants, NativeHandler};
pub use metrics::Metrics;

use crate::config::Config;
use crate::operations::upkeep::UpkeepSettings;
use crate::operations::{Operations, Settings as OperationSettings};
use crate::protocol::VerifyPolicy;
use crate::runtime::{EngineSettings, Runtime, RuntimeError, RuntimeSettings};
use crate::store::{SqliteSettings, SqliteStore, Store, StoreError};
use executor::HandlerExecutor;
use tokio_util::sync::CancellationToken;

/// Everything the handlers share.
pub struct App {
    merchants: Arc<Merchants>,
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    operations: Operations,
    metrics: Arc<Metrics>,
    policy: VerifyPolicy,
    /// How long V2 nonces are remembered in the store.
    nonce_memory_ms: i64,
    operation_settings: OperationSettings,
    upkeep: UpkeepSettings,
    stop_upkeep: CancellationToken,
    answer_budget: Duration,
    max_body_bytes: usize,
    /// Plugin calls, which may outlive their request (budget, disconnect).
    tasks: TaskTracker,
    ready: AtomicBool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Merchant(#[from] MerchantError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The runtime settings a configuration asks for.
pub fn runtime_settings(config: &Config) -> RuntimeSettings {
    RuntimeSettings {
        engine: EngineSettings {
            max_instances: config.sandbox.max_instances,
            max_memory_bytes: (config.sandbox.max_memory_mib << 20) as usize,
            ..EngineSettings::default()
        },
        artifact_dir: Some(config.data_dir.join("artifacts")),
        ..RuntimeSettings::default()
    }
}

/// The store settings a configuration asks for.
pub fn store_settings(config: &Config) -> SqliteSettings {
    let store = &config.store;
    SqliteSettings {
        busy_timeout: Duration::from_millis(store.busy_timeout_ms),
        max_size_bytes: store.max_size_mib.map(|mib| mib << 20),
        ..SqliteSettings::new(&store.path)
    }
}

/// Opens (creating and migrating) the configured store.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    if let Some(dir) = config.store.path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let store = SqliteStore::open(&store_settings(config)).await?;
    Ok(Arc::new(store))
}

impl App {
    /// Loads every merchant's plugin into `runtime`. Blocking (it may
    /// compile): call it from a blocking context.
    pub fn new(
        config: &Config,
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
    ) -> Result<App, StartError> {
        let merchants = Arc::new(Merchants::load(config, &runtime)?);
        let window = config.signature.window_secs;
        let settings = &config.store;
        let operation_settings = OperationSettings {
            lease: Duration::from_millis(settings.lease_ms),
            hot_cache_bytes: settings.hot_cache_mib << 20,
            hot_cache_ttl: Duration::from_secs(settings.hot_cache_ttl_secs),
            ..OperationSettings::default()
        };
        let metrics = Arc::new(Metrics::new());
        let tasks = TaskTracker::new();
        let operations = operations(
            &merchants,
            &runtime,
            &store,
            &metrics,
            &operation_settings,
            &tasks,
        );
        Ok(App {
            merchants,
            runtime,
            store,
            operations,
            metrics,
            policy: VerifyPolicy {
                window_ms: (window * 1000) as i64,
                v1_window_ms: config.signature.v1_window_secs.map(|s| (s * 1000) as i64),
            },
            nonce_memory_ms: (config.signature.nonce_memory_secs * 1000) as i64,
            operation_settings,
            upkeep: UpkeepSettings {
                completer_interval: Duration::from_secs(settings.completer_interval_secs),
                max_attempts: settings.max_attempts,
                reaper_interval: Duration::from_secs(settings.reaper_interval_secs),
                retention: Duration::from_secs(settings.retention_days * 24 * 3600),
                ..UpkeepSettings::default()
            },
            stop_upkeep: CancellationToken::new(),
            answer_budget: Duration::from_millis(config.answer_budget_ms),
            max_body_bytes: config.max_body_bytes,
            tasks,
            ready: AtomicBool::new(true),
        })
    }

    /// The idempotency layer (tests drive its completer and reaper).
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// Starts the completer and the reaper; they stop when draining.
    pub fn start_upkeep(&self) {
        let (operations, settings, stop) = (
            self.operations.clone(),
            self.upkeep.clone(),
            self.stop_upkeep.clone(),
        );
        tokio::spawn(async move { operations.run_upkeep(settings, stop).await });
    }

    /// Adds a merchant answered by native code (the benchmarks' baseline).
    pub fn insert_native_merchant(
        &mut self,
        id: &str,
        keys: Vec<crate::config::AccessKey>,
        handler: NativeHandler,
    ) {
        let mut merchants = (*self.merchants).clone();
        merchants.insert_native(id, keys, handler);
        self.merchants = Arc::new(merchants);
        self.operations = operations(
            &self.merchants,
            &self.runtime,
            &self.store,
            &self.metrics,
            &self.operation_settings,
            &self.tasks,
        );
    }

    pub fn merchant_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.merchants.ids().map(str::to_string).collect();
        ids.sort();
        ids
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

/// The idempotency layer over the merchants' handlers.
fn operations(
    merchants: &Arc<Merchants>,
    runtime: &Arc<Runtime>,
    store: &Arc<dyn Store>,
    metrics: &Arc<Metrics>,
    settings: &OperationSettings,
    tasks: &TaskTracker,
) -> Operations {
    let executor = HandlerExecutor {
        merchants: merchants.clone(),
        runtime: runtime.clone(),
        metrics: metrics.clone(),
    };
    Operations::new(
        store.clone(),
        Arc::new(executor),
        settings.clone(),
        tasks.clone(),
    )
}

/// The router, for `serve` and for in-process tests.
pub fn app(state: Arc<App>) -> Router {
    Router::new()
        .route(
            "/callbacks/{merchant_id}",
            get(callback::callback).post(callback::callback),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    if app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> impl IntoResponse {
    let text = app
        .metrics
        .render(app.runtime.stats(), app.operations.cached_results().await);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// Builds the runtime and the app for `config`, off the async threads.
pub async fn start(config: &Config) -> Result<Arc<App>, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = open_store(config).await?;
    let config = config.clone();
    let built = tokio::task::spawn_blocking(move || -> Result<App, StartError> {
        let runtime = Arc::new(Runtime::new(runtime_settings(&config))?);
        App::new(&config, runtime, store)
    })
    .await;
    match built {
        Ok(app) => {
            let app = app?;
            app.start_upkeep();
            Ok(Arc::new(app))
        }
        Err(join) => Err(StartError::Runtime(RuntimeError::Engine(format!(
            "loading plugins panicked: {join}"
        )))),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app_state: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let router = app(app_state.clone());
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            router
                .clone()
                .map_request(|request: axum::http::Request<hyper::body::Incoming>| {
                    request.map(axum::body::Body::new)
                });
        let connection = hyper::server::conn::http1::Builder::new()
            .title_case_headers(true)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: draining in-flight callbacks");
    app_state.ready.store(false, Ordering::SeqCst);
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
    if !app_state.drain(grace).await {
        tracing::warn!("plugin calls still running after the grace period");
    }
    Ok(())
}
