//! The `gateway` command line: argument parsing and the exit-code policy.
//!
//! Exit codes: 0 success; 1 the command failed (unreadable input, invalid
//! plugin, bad request JSON, invalid configuration), with a message on
//! stderr; 2 usage error (from clap); 3 `plugin invoke` or `simulate` ran but
//! the answer's result code is not 000000.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gateway::config::{SandboxConfig, lower};
use gateway::keys::{self, Keys};
use gateway_sandbox::{ArtifactSettings, Runtime};

use crate::{admin, invoke, serve, simulate};

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "KooGallery merchant adapter gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for the gateway's own log on stderr (tracing syntax, e.g.
    /// `info,plugin=debug`). Default: `info` for serve, `warn` otherwise.
    #[arg(long, global = true, env = "GATEWAY_LOG")]
    log: Option<String>,
    /// Log format: `human` or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "GATEWAY_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the marketplace's callbacks for the configured merchants.
    Serve(serve::ServeArgs),
    /// Send a signed marketplace callback to a gateway and check the answer.
    Simulate(simulate::SimulateArgs),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage a running gateway through its admin API: merchants, keys,
    /// plugin versions, tokens, the audit log.
    Admin(admin::AdminArgs),
    /// Serve one plugin on loopback as a local merchant, reloading it when
    /// the file changes; `gateway simulate` works against it as printed.
    Dev(crate::dev::DevArgs),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Validate a component: is it a component of our world and version, does
    /// it import only what the gateway grants, is it within the size limit.
    Check(CheckArgs),
    /// Run one operation of a plugin under production limits and print the
    /// typed result, its result code, the duration and the peak memory as JSON.
    Invoke(invoke::InvokeArgs),
    /// Create a plugin project (contract and SDK vendored; builds from the
    /// package registries alone): `gateway plugin new demo`.
    New(crate::scaffold::NewArgs),
    /// Run the marketplace's debugger cases and probes against a plugin,
    /// through the production sandbox: every activity of both generations
    /// in its minimal and a rich shape, idempotency, the answer's field
    /// limits, time and memory. Exits 4 when a case fails.
    Test(crate::conformance::TestArgs),
    /// Upload a plugin to a running gateway (admin API) for a merchant, and
    /// optionally activate it.
    Upload(admin::UploadArgs),
    /// Replay a merchant's latest recorded requests against an uploaded,
    /// inactive version in test mode and compare with what was answered;
    /// exits 4 when a success would become a failure.
    Shadow(admin::ShadowArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The component (.wasm) to check.
    file: PathBuf,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Settings shared by the commands that load plugins.
#[derive(Debug, Args, Clone)]
pub(crate) struct SandboxArgs {
    /// Largest accepted component, in MiB (default: the served gateway's).
    #[arg(long, default_value_t = SandboxConfig::default().max_component_mib)]
    max_size_mib: u64,
    /// Keep precompiled artifacts here, to skip compiling next time. They
    /// are authenticated with the key in `GATEWAY_KEY`, or else in a key
    /// file beside the directory (`<dir>.key`, created if missing).
    #[arg(long)]
    artifact_dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// A runtime configured like the served gateway's.
    pub(crate) fn runtime(&self) -> anyhow::Result<Runtime> {
        let sandbox = SandboxConfig {
            max_component_mib: self.max_size_mib,
            ..SandboxConfig::default()
        };
        let artifacts = match &self.artifact_dir {
            None => None,
            Some(dir) => {
                let from_env = std::env::var(keys::KEY_ENV).ok();
                let keys = Keys::load(from_env.as_deref(), &dir.with_extension("key"))?;
                Some(ArtifactSettings {
                    dir: dir.clone(),
                    key: keys.artifact_key(),
                })
            }
        };
        Ok(Runtime::new(lower::runtime(&sandbox, artifacts))?)
    }
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    // Flushes what is still queued for stderr when the command ends.
    let _log_writer = init_logging(cli.log.as_deref().unwrap_or(default_filter), cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Plugin(PluginCommand::Check(args)) => check(&args),
        Command::Plugin(PluginCommand::Invoke(args)) => invoke::run(&args),
        Command::Plugin(PluginCommand::Test(args)) => crate::conformance::run(&args),
        Command::Plugin(PluginCommand::New(args)) => crate::scaffold::run(&args),
        Command::Plugin(PluginCommand::Upload(args)) => admin::upload(&args),
        Command::Plugin(PluginCommand::Shadow(args)) => admin::shadow(&args),
        Command::Admin(args) => admin::run(&args),
        Command::Dev(args) => crate::dev::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The log goes to stderr through a bounded queue and a writer thread of
/// its own: a slow or blocked stderr (a pipe nobody reads) drops log lines,
/// it never stalls a callback. Colours only on a terminal.
fn init_logging(filter: &str, format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}

/// Log lines waiting for stderr; past it, lines are dropped.
const LOG_QUEUE_LINES: usize = 16 * 1024;

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let wasm = read_file(&args.file)?;
    let runtime = args.sandbox.runtime()?;
    let plugin = runtime
        .load(&wasm)
        .map_err(|e| anyhow::anyhow!("{} is not a valid plugin: {e}", args.file.display()))?;
    let report = plugin.report();
    println!("{}: valid plugin", args.file.display());
    println!(
        "  contract:   koogallery:plugin@{}",
        report.contract_version
    );
    println!("  size:       {} bytes", report.size_bytes);
    println!("  sha256:     {}", report.content_hash);
    println!("  imports:    {}", report.imports.join(", "));
    println!("  exports:    {}", report.exports.join(", "));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}
