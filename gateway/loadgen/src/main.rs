//! `loadgen`: the served benchmark (`scripts/bench-served` runs it).
//!
//! - `loadgen native` serves the native baseline (`native.rs`);
//! - `loadgen run` measures one mix against one running server (with
//!   `--threads`, also where its CPU went, thread by thread: `threads.rs`);
//! - `loadgen compare` starts `gateway serve` and the baseline as processes
//!   of their own, measures every mix against both in the same run, and
//!   prints the table for docs/benchmarks.md with the ratios;
//! - `loadgen merchants` registers thousands of merchants in one
//!   `gateway serve` and measures memory, store size and the cost of a
//!   call whose plugin was evicted (`merchants.rs`);
//! - `loadgen replicas` measures 1, 2, 3… replicas on PostgreSQL next to
//!   one on SQLite and the baseline (`replicas.rs`);
//! - `loadgen commit` measures one durable commit alone (`commit.rs`), the
//!   part of a create's CPU budget the native handler does not pay.

mod client;
mod commit;
mod load;
mod merchants;
mod native;
mod replicas;
mod results;
mod threads;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Parser, Subcommand};
use load::{Measured, Mix, Pace, Target};

#[derive(Parser)]
#[command(about = "The served benchmark: load generator and native baseline")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Also append every measured run to this file, as JSON lines.
    #[arg(long, global = true)]
    results: Option<PathBuf>,
    /// What the runs vary, in the results (`concurrency`, `merchants`,
    /// `store_records`)…
    #[arg(long, global = true)]
    dimension: Option<String>,
    /// …and its value for this invocation.
    #[arg(long, global = true)]
    x: Option<f64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the native baseline; prints `listening on http://…` first.
    Native {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long)]
        key: String,
    },
    /// Measure one mix against a running server.
    Run {
        /// `http://host:port/callbacks/{merchant}`
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        /// The server's process id (for its CPU time).
        #[arg(long)]
        pid: u32,
        #[arg(long, value_enum)]
        mix: Mix,
        #[command(flatten)]
        pace: PaceArgs,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Also print the server's CPU and context switches per callback,
        /// by kind of thread.
        #[arg(long)]
        threads: bool,
    },
    /// Start `gateway serve` and the baseline, and measure both.
    Compare {
        /// The `gateway` binary (a release build).
        #[arg(long)]
        gateway: PathBuf,
        /// Its configuration, with merchant `bench` on the reference plugin.
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Senders in the closed-loop runs.
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        /// Callbacks per second in the open-loop runs.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Instead of the mixes: replays and creates, closed loop, at each of
        /// these numbers in flight (`--sweep 1,8,32,128,512`).
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<usize>,
    },
    /// Register many merchants through the admin API and measure memory,
    /// store size and first calls after eviction.
    Merchants(merchants::Plan),
    /// Measure replicas on one PostgreSQL database next to SQLite.
    Replicas(replicas::Plan),
    /// Commit one order at a time, durably, at a fixed rate, in a new
    /// database; print the commits and this process's CPU time.
    Commit {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(clap::Args)]
struct PaceArgs {
    /// Closed loop with this many senders…
    #[arg(long, conflicts_with = "rate")]
    in_flight: Option<usize>,
    /// …or open loop at this many callbacks per second.
    #[arg(long)]
    rate: Option<u64>,
}

impl PaceArgs {
    fn pace(&self) -> Pace {
        match (self.in_flight, self.rate) {
            (_, Some(per_second)) => Pace::Open {
                per_second,
                connections: 64,
            },
            (in_flight, None) => Pace::Closed {
                in_flight: in_flight.unwrap_or(32),
            },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let recorder = results::Recorder {
        file: cli.results,
        dimension: cli.dimension,
        x: cli.x,
    };
    match cli.command {
        Cmd::Native { listen, key } => serve_native(&listen, &key).await,
        Cmd::Run {
            url,
            key,
            pid,
            mix,
            pace,
            seconds,
            threads: by_thread,
        } => {
            let merchant = url.rsplit('/').next().unwrap_or("").to_string();
            let (urls, pids) = ([url.clone()], [pid]);
            let target = Target {
                urls: &urls,
                key: &key,
                merchant: &merchant,
                pids: &pids,
            };
            let run_id = run_id(0);
            load::warm_up(&target, mix, &run_id).await?;
            let length = Duration::from_secs(seconds);
            let before = threads::snapshot(pid);
            let measured = load::run(&target, mix, pace.pace(), length, &run_id).await?;
            let after = threads::snapshot(pid);
            println!("{}", row(&format!("{mix:?}"), "server", &measured, None));
            if by_thread {
                print!("\n{}", threads::table(&before, &after, measured.answered));
            }
            verdict(&measured)
        }
        Cmd::Compare {
            gateway,
            config,
            key,
            seconds,
            in_flight,
            rate,
            sweep,
        } => {
            let runs = if sweep.is_empty() {
                mixes(in_flight, rate)
            } else {
                sweep
                    .iter()
                    .flat_map(|&in_flight| {
                        [Mix::Replays, Mix::Creates].map(|mix| (mix, Pace::Closed { in_flight }))
                    })
                    .collect()
            };
            compare(&gateway, &config, &key, seconds, &runs, &recorder).await
        }
        Cmd::Merchants(plan) => merchants::run(plan, &recorder).await,
        Cmd::Replicas(plan) => replicas::run(plan, &recorder).await,
        Cmd::Commit { rate, seconds } => {
            let dir = tempfile::tempdir()?;
            let committed = commit::run(dir.path(), rate, Duration::from_secs(seconds))?;
            println!("{}", committed.line());
            Ok(())
        }
    }
}

async fn serve_native(listen: &str, key: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, native::app(key)).await?;
    Ok(())
}

/// A server process that is killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// What it printed first (where it listens).
    first_line: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and reads where it listens from its first line.
fn start(mut command: Command) -> anyhow::Result<Server> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut stdout = BufReader::new(stdout);
    let mut first = String::new();
    stdout.read_line(&mut first)?;
    // Keep reading, so that a later line never meets a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("unexpected first line `{first}`"))?;
    let url = format!("http://{address}/callbacks/bench");
    Ok(Server {
        child,
        url,
        first_line: first,
    })
}

/// The default runs: every mix in a closed loop, replays and creates in an
/// open one.
fn mixes(in_flight: usize, rate: u64) -> Vec<(Mix, Pace)> {
    let open = Pace::Open {
        per_second: rate,
        connections: 64,
    };
    vec![
        (Mix::Replays, Pace::Closed { in_flight }),
        (Mix::Creates, Pace::Closed { in_flight }),
        (Mix::Mixed, Pace::Closed { in_flight }),
        (Mix::Replays, open),
        (Mix::Creates, open),
    ]
}

async fn compare(
    gateway: &std::path::Path,
    config: &std::path::Path,
    key: &str,
    seconds: u64,
    runs: &[(Mix, Pace)],
    recorder: &results::Recorder,
) -> anyhow::Result<()> {
    let mut served = Command::new(gateway);
    served.args(["serve", "--config"]).arg(config);
    served.env("GATEWAY_LOG", "warn");
    let served = start(served)?;
    let mut baseline = Command::new(std::env::current_exe()?);
    baseline.args(["native", "--key", key]);
    let baseline = start(baseline)?;
    let length = Duration::from_secs(seconds);
    println!(
        "| mix | pace | server | callbacks/s | p50 | p99 | p99.9 | server CPU / callback | vs native |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (i, &(mix, pace)) in runs.iter().enumerate() {
        let label = match pace {
            Pace::Closed { in_flight } => format!("{mix:?} | closed, {in_flight} in flight"),
            Pace::Open { per_second, .. } => format!("{mix:?} | open, {per_second}/s"),
        };
        let mut results = Vec::new();
        for server in [&baseline, &served] {
            let (urls, pids) = ([server.url.clone()], [server.child.id()]);
            let target = Target {
                urls: &urls,
                key,
                merchant: "bench",
                pids: &pids,
            };
            let run_id = run_id(i);
            load::warm_up(&target, mix, &run_id).await?;
            let measured = load::run(&target, mix, pace, length, &run_id).await?;
            failed |= verdict(&measured).is_err();
            results.push(measured);
        }
        let native = &results[0];
        let x = match pace {
            Pace::Closed { in_flight } => Some(in_flight as f64),
            Pace::Open { .. } => None,
        };
        for (server, measured) in ["native", "gateway"].iter().zip(&results) {
            recorder.record(
                &format!("{mix:?}").to_lowercase(),
                server,
                x,
                measured.per_second(),
                measured.percentile(0.99).as_secs_f64() * 1e3,
                Some(measured.cpu_per_callback().as_secs_f64() * 1e6),
            )?;
        }
        println!("{}", row(&label, "native", native, None));
        println!(
            "{}",
            row(&label, "gateway", &results[1], Some((native, pace)))
        );
        if let (Mix::Creates, Pace::Open { per_second, .. }) = (mix, pace) {
            let committed = commit_alone(per_second, seconds)?;
            println!(
                "{}",
                commit_row(per_second, &committed, native, &results[1])
            );
        }
    }
    if failed {
        anyhow::bail!("some answers failed their checks (above)");
    }
    Ok(())
}

/// Runs `loadgen commit` as a process of its own and reads what it measured.
fn commit_alone(per_second: u64, seconds: u64) -> anyhow::Result<commit::Committed> {
    let output = Command::new(std::env::current_exe()?)
        .args(["commit", "--rate", &per_second.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        anyhow::bail!("`loadgen commit` failed: {}", output.status);
    }
    commit::Committed::parse(&String::from_utf8_lossy(&output.stdout))
}

/// The durable commit's row, and a create's CPU against its budget: the
/// native handler's plus the commit's (issue 15 asks for at most 1.5×).
fn commit_row(
    per_second: u64,
    committed: &commit::Committed,
    native: &Measured,
    gateway: &Measured,
) -> String {
    let budget = native.cpu_per_callback() + committed.cpu_per_commit();
    format!(
        "| one durable commit alone | open, {per_second}/s | SQLite, fsync each | {:.0} | | | | {:.0} µs | creates: {:.2}× native + commit |",
        committed.commits as f64 / committed.wall.as_secs_f64().max(1e-9),
        committed.cpu_per_commit().as_secs_f64() * 1e6,
        gateway.cpu_per_callback().as_secs_f64() / budget.as_secs_f64().max(1e-9),
    )
}

/// A fresh run id: order ids never repeat across runs or invocations.
fn run_id(i: usize) -> String {
    format!("{}{i}", koogallery_protocol::time::now_ms())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One table row; with a baseline, the ratio that matters for the pace:
/// throughput in a closed loop, CPU per callback in an open one.
fn row(label: &str, server: &str, m: &Measured, baseline: Option<(&Measured, Pace)>) -> String {
    let ratio = match baseline {
        Some((native, Pace::Closed { .. })) => {
            format!("{:.2}× throughput", m.per_second() / native.per_second())
        }
        Some((native, Pace::Open { .. })) => format!(
            "{:.2}× CPU",
            m.cpu_per_callback().as_secs_f64() / native.cpu_per_callback().as_secs_f64().max(1e-9)
        ),
        None => String::new(),
    };
    format!(
        "| {label} | {server} | {:.0} | {} | {} | {} | {:.0} µs | {ratio} |",
        m.per_second(),
        millis(m.percentile(0.50)),
        millis(m.percentile(0.99)),
        millis(m.percentile(0.999)),
        m.cpu_per_callback().as_secs_f64() * 1e6,
    )
}

/// Every answer must be 000000, signed and consistent.
fn verdict(m: &Measured) -> anyhow::Result<()> {
    if !m.refused.is_empty() || !m.broken.is_empty() {
        let first = m.broken.first().map_or("", String::as_str);
        eprintln!(
            "refused by code: {:?}; {} broken answers (first: {first})",
            m.refused,
            m.broken.len()
        );
        anyhow::bail!("failed checks");
    }
    Ok(())
}
