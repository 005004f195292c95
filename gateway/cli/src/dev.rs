//! `gateway dev <file.wasm>`: one plugin served on loopback as a local
//! merchant (`dev`), with a fresh store and a printed access key, so that
//! `gateway simulate` works against it out of the box. When the file
//! changes, the new build is loaded and activated; a build that does not
//! load keeps the previous version serving, and says why. Each callback's
//! result and the plugin's log records are printed as they happen.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;

use gateway::config::Config;
use gateway::server::{self, App};

use crate::invoke::parse_key_value;

/// The merchant id the plugin is served as.
const MERCHANT: &str = "dev";
/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(300);

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// The plugin component (.wasm) to serve and watch.
    file: PathBuf,
    /// Where the callbacks arrive.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The merchant's access key (default: a fixed local one, printed).
    #[arg(long, default_value = "dev-access-key-0000-change-me")]
    access_key: String,
    /// A merchant configuration value for the plugin, `KEY=VALUE`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    #[command(flatten)]
    outbound: crate::invoke::OutboundArgs,
}

pub(crate) fn run(args: &DevArgs) -> anyhow::Result<ExitCode> {
    let file = args
        .file
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let data = tempfile::tempdir()?;
    let config = dev_config(args, &file, data.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, file, args))?;
    Ok(ExitCode::SUCCESS)
}

fn dev_config(args: &DevArgs, file: &Path, data: &Path) -> anyhow::Result<Config> {
    let allowed: Vec<String> = args
        .outbound
        .allowed
        .iter()
        .map(|e| toml_string(e))
        .collect();
    let mut text = format!(
        "listen = \"{}\"\ndata_dir = \"{}\"\n[[merchants]]\nid = \"{MERCHANT}\"\n\
         access_keys = [{}]\nplugin = {}\nallowed_outbound_hosts = [{}]\n\
         allow_private_networks = {}\n[merchants.config]\n",
        args.listen,
        data.display(),
        toml_string(&args.access_key),
        toml_string(&file.display().to_string()),
        allowed.join(", "),
        args.outbound.allow_private_networks,
    );
    for (key, value) in &args.config {
        text.push_str(&format!("{} = {}\n", toml_string(key), toml_string(value)));
    }
    Ok(Config::from_toml(
        &text,
        Path::new("gateway-dev.toml"),
        data,
        |_| None,
    )?)
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

async fn serve(config: Config, file: PathBuf, args: &DevArgs) -> anyhow::Result<()> {
    let app = server::start(&config).await?;
    let callbacks = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = callbacks.local_addr()?;
    let url = format!("http://{addr}/callbacks/{MERCHANT}");
    println!(
        "serving {} as merchant `{MERCHANT}` on {url}",
        file.display()
    );
    println!(
        "try:  gateway simulate newInstance --url {url} --access-key {}",
        args.access_key
    );
    println!("watching {} for a new build (Ctrl-C stops)", file.display());
    tokio::spawn(watch(app.clone(), config.clone(), file));
    let listeners = server::Listeners {
        callbacks,
        admin: None,
        max_connections: config.max_connections,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        connection_threads: config.connection_threads(),
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server::serve(listeners, app, stop, Duration::from_secs(2)).await?;
    Ok(())
}

/// What identifies a build of the file.
fn stamp(file: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(file).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads the plugin when the file changes (see the module docs).
async fn watch(app: Arc<App>, config: Config, file: PathBuf) {
    let mut seen = stamp(&file);
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamp(&file);
        if now.is_none() || now == seen {
            continue;
        }
        // Let the build finish writing it.
        tokio::time::sleep(POLL).await;
        if stamp(&file) != now {
            continue;
        }
        seen = now;
        reload(&app, &config, &file).await;
    }
}

async fn reload(app: &App, config: &Config, file: &Path) {
    let registry = app.registry();
    let wasm = match std::fs::read(file) {
        Ok(wasm) => wasm,
        Err(e) => {
            println!("! cannot read the new build ({e}); still serving the previous one");
            return;
        }
    };
    let runtime = registry.runtime().clone();
    let loaded = tokio::task::spawn_blocking(move || runtime.load(&wasm)).await;
    match loaded {
        Ok(Ok(plugin)) => {
            let _change = registry.changes().lock().await;
            let bootstrapped = registry.bootstrap(config).await;
            let reloaded = registry.reload(MERCHANT).await;
            match (bootstrapped, reloaded) {
                (Ok(_), Ok(())) => println!(
                    "reloaded {} (sha256 {})",
                    file.display(),
                    &plugin.report().content_hash[..12]
                ),
                (Err(e), _) | (_, Err(e)) => {
                    println!("! the new build could not be activated: {e}")
                }
            }
        }
        Ok(Err(error)) => {
            println!("! the new build does not load: {error}; still serving the previous one")
        }
        Err(join) => println!("! loading the new build failed: {join}"),
    }
}
