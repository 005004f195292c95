//! The listeners, composed in one place: the callback port and, if
//! configured, the admin port. Each serves HTTP/1.1 with:
//!
//! - title-case header names (the marketplace's debugger wants `Body-Sign`
//!   exactly);
//! - at most `max_connections` connections: past it the gateway stops
//!   accepting and new connections wait in the kernel's backlog, so file
//!   descriptors and memory stay bounded;
//! - request heads of at most [`MAX_HEAD_BYTES`], read within
//!   `header_read_timeout` (a slow or bloated head is cut, and holds little);
//! - a graceful shutdown: stop accepting, let in-flight callbacks finish;
//! - the callback port's connections on the connection threads
//!   (`connection_threads`: one single-threaded runtime per core), the
//!   admin port's on the main runtime.
//!
//! Per-client fairness is the load balancer's job (behind one, every
//! connection comes from its addresses); docs/decisions.md says so.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use super::connection_threads::ConnectionThreads;
use super::{App, admin, app};

/// The largest request head (line and headers) read. Marketplace requests
/// carry a query of at most `max_query_bytes` and a few short headers.
pub const MAX_HEAD_BYTES: usize = 32 << 10;

/// What `serve` listens on.
pub struct Listeners {
    pub callbacks: TcpListener,
    /// The admin listener (metrics, status, the admin API), if configured.
    pub admin: Option<TcpListener>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// Threads serving the callback port's connections, one runtime each;
    /// 0: on the caller's runtime (see `connection_threads`).
    pub connection_threads: usize,
}

/// Serves `app_state` until `shutdown` resolves, then drains for at most
/// `grace`.
pub async fn serve(
    listeners: Listeners,
    app_state: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let connections = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(listeners.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let callbacks = app(app_state.clone());
    let admin = listeners
        .admin
        .map(|listener| (listener, admin::router(app_state.clone())));
    let timeout = listeners.header_read_timeout;
    let threads = match listeners.connection_threads {
        0 => None,
        count => Some(ConnectionThreads::start(count)?),
    };
    match &threads {
        Some(threads) => tracing::info!(
            threads = threads.count(),
            "callback connections served on connection threads"
        ),
        None => tracing::info!("callback connections served on the main runtime"),
    }
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listeners.callbacks, &limit) => {
                accepted.map(|(c, p)| (c, p, &callbacks, threads.as_ref().map(ConnectionThreads::next)))
            }
            accepted = accept_admin(admin.as_ref().map(|(l, _)| l), &limit) => {
                accepted.map(|(c, p)| (c, p, admin.as_ref().map(|(_, r)| r).unwrap_or(&callbacks), None))
            }
            () = &mut shutdown => break,
        };
        let Some((stream, permit, router, home)) = accepted else {
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            header_read_timeout: timeout,
            watcher: connections.watcher(),
            permit,
        };
        match home {
            None => {
                tokio::spawn(connection.serve(stream));
            }
            Some(home) => connection.serve_on(home, stream),
        }
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
    if let Some(threads) = threads {
        threads.stop().await;
    }
    Ok(())
}

/// One accepted connection, ready to serve.
struct Connection {
    router: Router,
    header_read_timeout: Duration,
    watcher: Watcher,
    /// Its slot among `max_connections`, given back when it ends.
    permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves it on `home`, a connection thread's runtime: the socket is
    /// taken off this runtime's I/O driver and registered with that one's.
    fn serve_on(self, home: &Handle, stream: TcpStream) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "could not hand a connection to its thread");
                return;
            }
        };
        home.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => self.serve(stream).await,
                Err(error) => {
                    tracing::warn!(%error, "a connection thread could not take its socket")
                }
            }
        });
    }

    /// Serves it on the runtime that polls this future, until it ends.
    async fn serve(self, stream: TcpStream) {
        let service =
            self.router
                .map_request(|request: axum::http::Request<hyper::body::Incoming>| {
                    request.map(axum::body::Body::new)
                });
        let connection = hyper::server::conn::http1::Builder::new()
            .title_case_headers(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(%error, "connection ended with an error");
        }
        drop(self.permit);
    }
}

/// The next connection, once a connection slot is free. `None` when accept
/// failed (out of file descriptors and the like: it backs off and the loop
/// goes on).
async fn accept(
    listener: &TcpListener,
    limit: &Arc<Semaphore>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let permit = limit.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _peer)) => Some((stream, permit)),
        Err(error) => {
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn accept_admin(
    listener: Option<&TcpListener>,
    limit: &Arc<Semaphore>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    match listener {
        Some(listener) => accept(listener, limit).await,
        None => std::future::pending().await,
    }
}
