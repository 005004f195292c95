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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let merchants = app.merchant_ids().join(", ");
    tracing::info!(%addr, merchants, "gateway listening");
    // One line on stdout for whoever started us (scripts, tests).
    println!("gateway listening on http://{addr} (merchants: {merchants})");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    server::serve(listener, app, shutdown_signal(), grace).await?;
    tracing::info!("gateway stopped");
    Ok(())
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
