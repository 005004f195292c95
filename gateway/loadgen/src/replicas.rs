//! `loadgen replicas`: how throughput grows with gateway replicas on one
//! PostgreSQL database, next to one gateway on its embedded SQLite file and
//! the native baseline, in one run.
//!
//! Each setup gets a fresh store (a new SQLite directory, a new scratch
//! schema) and its replicas share the master key, as a deployment's do.
//! Every replica gets an equal share of the senders; the CPU of all of them
//! is charged to the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gateway_store::test_support::ScratchSchema;

use crate::load::{self, Mix, Pace, Target};
use crate::{Server, results, row, run_id, start, verdict};

/// Shared by every replica of a setup (a benchmark's key, not a secret).
const BENCH_MASTER_KEY: &str = "6c6f616467656e2d7265706c696361732d62656e63682d6b65792d3030303030";

#[derive(clap::Args)]
pub struct Plan {
    /// The `gateway` binary (a release build).
    #[arg(long)]
    gateway: PathBuf,
    /// Its configuration, with merchant `bench` on the reference plugin and
    /// `listen = "127.0.0.1:0"` (each replica gets its own store settings
    /// and data directory from the environment).
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    key: String,
    /// A PostgreSQL database the runs make scratch schemas in.
    #[arg(long)]
    postgres: String,
    /// Replica counts on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    replicas: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Senders, closed loop, spread over the replicas.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
}

/// Where a setup keeps its state.
enum Store {
    Sqlite,
    Postgres(ScratchSchema),
}

pub async fn run(plan: Plan, recorder: &results::Recorder) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let mut baseline = Command::new(std::env::current_exe()?);
    baseline.args(["native", "--key", &plan.key]);
    let baseline = start(baseline)?;
    let mut setups = vec![("sqlite", 1)];
    setups.extend(plan.replicas.iter().map(|&n| ("postgres", n)));
    println!(
        "| store | replicas | mix | callbacks/s | p50 | p99 | p99.9 | server CPU / callback | vs native |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let pace = Pace::Closed {
        in_flight: plan.in_flight,
    };
    let mut failed = false;
    for (i, (engine, count)) in setups.into_iter().enumerate() {
        let store = match engine {
            "sqlite" => Store::Sqlite,
            _ => Store::Postgres(ScratchSchema::create_in(&plan.postgres).await),
        };
        let data = scratch.path().join(format!("setup-{i}"));
        let servers = (0..count)
            .map(|replica| start_replica(&plan, &store, &data.join(format!("replica-{replica}"))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for mix in [Mix::Replays, Mix::Creates] {
            let label = format!("{engine} | {count} | {mix:?}");
            let native = measure(&plan, std::slice::from_ref(&baseline), mix, pace, i).await?;
            let measured = measure(&plan, &servers, mix, pace, i).await?;
            failed |= verdict(&measured).is_err();
            recorder.record(
                &format!("{engine}-{mix:?}").to_lowercase(),
                "gateway",
                Some(count as f64),
                measured.per_second(),
                measured.percentile(0.99).as_secs_f64() * 1e3,
                Some(measured.cpu_per_callback().as_secs_f64() * 1e6),
            )?;
            println!("{}", row(&label, "native", &native, None));
            println!(
                "{}",
                row(&label, "gateway", &measured, Some((&native, pace)))
            );
        }
        drop(servers);
        drop(store);
    }
    if failed {
        anyhow::bail!("some answers failed their checks (above)");
    }
    Ok(())
}

fn start_replica(plan: &Plan, store: &Store, data_dir: &Path) -> anyhow::Result<Server> {
    let mut command = Command::new(&plan.gateway);
    command
        .args(["serve", "--config"])
        .arg(&plan.config)
        .env("GATEWAY_LOG", "warn")
        .env("GATEWAY_KEY", BENCH_MASTER_KEY)
        .env("GATEWAY_DATA_DIR", data_dir)
        .env_remove("GATEWAY_STORE_URL");
    if let Store::Postgres(schema) = store {
        command.env("GATEWAY_STORE_URL", schema.url());
    }
    start(command)
}

async fn measure(
    plan: &Plan,
    servers: &[Server],
    mix: Mix,
    pace: Pace,
    setup: usize,
) -> anyhow::Result<load::Measured> {
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let target = Target {
        urls: &urls,
        key: &plan.key,
        merchant: "bench",
        pids: &pids,
    };
    let run_id = run_id(setup);
    load::warm_up(&target, mix, &run_id).await?;
    load::run(
        &target,
        mix,
        pace,
        Duration::from_secs(plan.seconds),
        &run_id,
    )
    .await
}
