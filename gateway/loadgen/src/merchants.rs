//! `loadgen merchants`: many merchants in one gateway process. Starts
//! `gateway serve` with an admin listener and a small plugin cache,
//! registers merchants through the admin API (each uploads one of a few
//! distinct modules: the reference plugin with a custom section of its
//! own), drives creates across all of them, and reports resident memory,
//! store size, and the latency of a merchant's call when its plugin was
//! evicted (loaded back from its precompiled artifact) next to one whose
//! plugin is resident — both over HTTP, in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

use crate::client::{Callback, Checked, Connection};
use crate::load::percentile;
use crate::millis;

/// What the run is asked to do (`loadgen merchants`' arguments).
#[derive(clap::Args)]
pub struct Plan {
    /// The `gateway` binary (a release build).
    #[arg(long)]
    pub gateway: PathBuf,
    /// The plugin every merchant runs (one variant per module).
    #[arg(long)]
    pub plugin: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Distinct modules among the merchants.
    #[arg(long, default_value_t = 4)]
    pub modules: usize,
    /// The gateway's plugin cache (`sandbox.max_cached_plugins`).
    #[arg(long, default_value_t = 2)]
    pub cache: usize,
    /// Evicted and resident calls measured, each (0: none).
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Seconds of creates across all merchants.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

const TOKEN: &str = "bench-operator-token-0123456789";
const KEY: &str = "bench-access-key-0000-0000";

pub async fn run(plan: Plan, recorder: &crate::results::Recorder) -> anyhow::Result<()> {
    anyhow::ensure!(
        plan.samples == 0 || plan.modules > plan.cache,
        "--modules must exceed --cache, so that plugins are evicted (or --samples 0)"
    );
    // Declared before the server, so dropped after it: removed once it died.
    let scratch = Scratch::new()?;
    let dir = scratch.0.clone();
    let config = write_config(&dir, plan.cache)?;
    let mut command = Command::new(&plan.gateway);
    command.args(["serve", "--config"]).arg(&config);
    command.env("GATEWAY_LOG", "warn");
    command.env("GATEWAY_ADMIN_TOKEN", TOKEN);
    let server = crate::start(command)?;
    let (callbacks, admin) = addresses(&server.first_line)?;
    let pid = server.child.id();
    let rss_empty = rss_kib(pid);

    let base = std::fs::read(&plan.plugin)?;
    let modules: Vec<Vec<u8>> = (0..plan.modules).map(|i| variant(&base, i)).collect();
    let started = Instant::now();
    register(&admin, &modules, plan.count).await?;
    let registered_in = started.elapsed();
    let rss_registered = rss_kib(pid);
    let data = dir.join("data");
    let store_registered = store_sizes(&data)?;

    let driven = drive(&callbacks, plan.count, Duration::from_secs(plan.seconds)).await?;
    let rss_driven = rss_kib(pid);
    recorder.record(
        "creates",
        "gateway",
        Some(plan.count as f64),
        driven.per_second,
        percentile(&driven.latencies, 0.99).as_secs_f64() * 1e3,
        None,
    )?;
    let (evicted, resident) = first_calls(&callbacks, &plan).await?;
    let rss_end = rss_kib(pid);

    let store_end = store_sizes(&data)?;
    let artifacts = size_of(&data.join("artifacts"), |_| true)?;
    println!(
        "# {} merchants on {} distinct modules ({} KiB each), plugin cache {} plugins",
        plan.count,
        plan.modules,
        base.len() / 1024,
        plan.cache
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| registration (create + upload + activate, through the admin API) | {:.1} s ({:.0} merchants/s) |",
        registered_in.as_secs_f64(),
        plan.count as f64 / registered_in.as_secs_f64()
    );
    println!(
        "| resident memory, no merchant | {} MiB |",
        rss_empty / 1024
    );
    println!(
        "| resident memory, {} merchants registered | {} MiB ({:.1} KiB per merchant) |",
        plan.count,
        rss_registered / 1024,
        (rss_registered.saturating_sub(rss_empty)) as f64 / plan.count as f64
    );
    println!(
        "| resident memory after {} s of creates across all merchants | {} MiB |",
        plan.seconds,
        rss_driven / 1024
    );
    println!("| resident memory at the end | {} MiB |", rss_end / 1024);
    println!(
        "| store after registration (database file + WAL) | {:.1} + {:.1} MiB |",
        mib(store_registered.0),
        mib(store_registered.1)
    );
    println!(
        "| store at the end, with every create's records (database file + WAL) | {:.1} + {:.1} MiB |",
        mib(store_end.0),
        mib(store_end.1)
    );
    println!("| precompiled artifacts | {:.1} MiB |", mib(artifacts));
    println!(
        "| creates across all merchants, 32 in flight | {:.0}/s, p99 {} ({} merchants called) |",
        driven.per_second,
        millis(percentile(&driven.latencies, 0.99)),
        driven.merchants
    );
    if plan.samples == 0 {
        return Ok(());
    }
    println!(
        "| first call, plugin evicted (from its artifact), p50 / p99 | {} / {} |",
        millis(percentile(&evicted, 0.5)),
        millis(percentile(&evicted, 0.99))
    );
    println!(
        "| call, plugin resident, p50 / p99 | {} / {} |",
        millis(percentile(&resident, 0.5)),
        millis(percentile(&resident, 0.99))
    );
    let extra = percentile(&evicted, 0.5).saturating_sub(percentile(&resident, 0.5));
    println!(
        "| cost of the eviction (p50 difference) | {} ({:.2}× the resident call) |",
        millis(extra),
        percentile(&evicted, 0.5).as_secs_f64() / percentile(&resident, 0.5).as_secs_f64()
    );
    Ok(())
}

fn merchant_id(i: usize) -> String {
    format!("m{i:05}")
}

/// The run's directory (configuration, store), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("loadgen-merchants-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_config(dir: &Path, cache: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("gateway.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [sandbox]\nmax_cached_plugins = {cache}\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The callback and admin addresses from `gateway serve`'s first line.
fn addresses(first_line: &str) -> anyhow::Result<(String, String)> {
    let mut found = first_line
        .split("http://")
        .skip(1)
        .filter_map(|rest| rest.split([' ', ')', ';']).next());
    match (found.next(), found.next()) {
        (Some(callbacks), Some(admin)) => Ok((callbacks.to_string(), admin.to_string())),
        _ => anyhow::bail!("no admin listener in `{first_line}`"),
    }
}

/// `wasm` with one more custom section: another module (another sha256)
/// that runs exactly like it.
fn variant(wasm: &[u8], i: usize) -> Vec<u8> {
    let name = format!("loadgen-variant-{i}");
    let mut payload = leb128(name.len());
    payload.extend_from_slice(name.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.extend(leb128(payload.len()));
    out.extend(payload);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A keep-alive HTTP/1.1 connection to the admin listener.
struct Admin {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Admin {
    async fn open(authority: &str) -> anyhow::Result<Admin> {
        Ok(Admin {
            sender: crate::client::http1(authority).await?,
            authority: authority.to_string(),
        })
    }

    async fn post(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status.is_success(),
            "POST {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(())
    }
}

/// Creates `count` merchants, each uploading and activating module
/// `i % modules`, 8 at a time.
async fn register(admin: &str, modules: &[Vec<u8>], count: usize) -> anyhow::Result<()> {
    let senders = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders {
        let admin = admin.to_string();
        let modules = modules.to_vec();
        tasks.spawn(async move {
            let mut connection = Admin::open(&admin).await?;
            for i in (sender..count).step_by(senders) {
                let id = merchant_id(i);
                let merchant = serde_json::json!({"id": id, "access_keys": [KEY],
                    "settings": {"generations": ["v2"],
                                 "config": {"base_url": "https://bench.example.com"}}});
                connection
                    .post(
                        "/admin/v1/merchants",
                        "application/json",
                        serde_json::to_vec(&merchant)?,
                    )
                    .await?;
                let upload = format!("/admin/v1/merchants/{id}/plugins?activate=true");
                let module = modules[i % modules.len()].clone();
                connection.post(&upload, "application/wasm", module).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

struct Driven {
    per_second: f64,
    merchants: usize,
    latencies: Vec<Duration>,
}

/// Creates for `length`, 32 senders, each walking the merchants with its
/// own stride so that all of them are called.
async fn drive(callbacks: &str, count: usize, length: Duration) -> anyhow::Result<Driven> {
    let senders = 32;
    let until = Instant::now() + length;
    let run = crate::run_id(7);
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders {
        let (callbacks, run) = (callbacks.to_string(), run.clone());
        tasks.spawn(async move {
            let mut sent = 0usize;
            let mut called = Vec::new();
            let mut latencies = Vec::new();
            let mut i = sender;
            let url = format!("http://{callbacks}/callbacks/x");
            let mut connection = Connection::open(&url, KEY).await?;
            while Instant::now() < until {
                let id = merchant_id(i % count);
                connection.set_merchant(&id);
                let order = format!("CS{run}x{sender}x{sent}");
                let (took, checked) = connection
                    .send(&Callback::create(&id, &order), Instant::now())
                    .await?;
                ensure_ok(&id, checked)?;
                latencies.push(took);
                sent += 1;
                called.push(i % count);
                i += senders;
            }
            anyhow::Ok((sent, called, latencies))
        });
    }
    let (mut sent, mut merchants, mut latencies) = (0, std::collections::HashSet::new(), vec![]);
    while let Some(done) = tasks.join_next().await {
        let (n, called, took) = done??;
        sent += n;
        merchants.extend(called);
        latencies.extend(took);
    }
    Ok(Driven {
        per_second: sent as f64 / length.as_secs_f64(),
        merchants: merchants.len(),
        latencies,
    })
}

fn ensure_ok(merchant: &str, checked: Checked) -> anyhow::Result<()> {
    match checked {
        Checked::Ok => Ok(()),
        Checked::Refused(code) => anyhow::bail!("merchant {merchant} answered {code}"),
        Checked::Broken(why) => anyhow::bail!("merchant {merchant}: {why}"),
    }
}

/// Latencies of calls whose plugin was evicted, and of calls whose plugin
/// is resident. Merchants are taken module by module in a cycle longer than
/// the cache, so that (the cache being least recently used) each module's
/// first call finds it evicted; a second merchant of the same module right
/// after finds it resident.
async fn first_calls(
    callbacks: &str,
    plan: &Plan,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let run = crate::run_id(8);
    let (mut evicted, mut resident) = (Vec::new(), Vec::new());
    let per_module = (plan.count / plan.modules).max(2);
    let mut connection = Connection::open(&format!("http://{callbacks}/callbacks/x"), KEY).await?;
    for sample in 0..plan.samples {
        let (module, round) = (sample % plan.modules, sample / plan.modules);
        // Merchant i runs module i % modules: two of them.
        let nth = |k: usize| merchant_id(module + plan.modules * ((2 * round + k) % per_module));
        for (k, into) in [(0, &mut evicted), (1, &mut resident)] {
            let id = nth(k);
            connection.set_merchant(&id);
            let order = format!("CS{run}y{sample}y{k}");
            let (took, checked) = connection
                .send(&Callback::create(&id, &order), Instant::now())
                .await?;
            ensure_ok(&id, checked)?;
            into.push(took);
        }
    }
    Ok((evicted, resident))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The process's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// The store's database file and write-ahead log, in bytes.
fn store_sizes(data: &Path) -> anyhow::Result<(u64, u64)> {
    Ok((
        size_of(data, |name| name == "gateway.db")?,
        size_of(data, |name| name == "gateway.db-wal")?,
    ))
}

/// The bytes of the files in `dir` whose name `matches`.
fn size_of(dir: &Path, matches: impl Fn(&str) -> bool) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if matches(&entry.file_name().to_string_lossy()) {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
