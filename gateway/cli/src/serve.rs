//! `gateway serve --config <file>`: load the configuration and every
//! merchant's plugin, listen, and serve until SIGINT/SIGTERM, then drain.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use gateway::config::Config;
use gateway::server::{self, StartError};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long, env = "GATEWAY_CONFIG")]
    config: PathBuf,
}

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = server::start(&config).await?;
    let callbacks = bind(config.listen).await?;
    let admin = match config.admin.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let addr = callbacks.local_addr()?;
    let ids = app.merchant_ids();
    // Named when they are few; counted when a platform hosts many.
    let merchants = if ids.len() <= 10 {
        ids.join(", ")
    } else {
        format!("{} of them", ids.len())
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
    tracing::info!(%addr, admin = ?admin_addr, merchants, "gateway listening");
    // One line on stdout for whoever started us (scripts, tests).
    let admin_note = admin_addr.map_or_else(
        || "no admin listener".to_string(),
        |a| format!("admin on http://{a}"),
    );
    println!("gateway listening on http://{addr} (merchants: {merchants}; {admin_note})");
    let listeners = server::Listeners {
        callbacks,
        admin,
        max_connections: config.max_connections,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        connection_threads: config.connection_threads(),
    };
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    server::serve(listeners, app, shutdown_signal(), grace).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
