//! Load run: served, verified callbacks through the reference plugin against
//! a native Rust handler doing the same verification, parsing, credential
//! encryption and signing, in the same binary and run.
//!
//! Open loop at a fixed rate (each request is sent at its scheduled time,
//! whether or not earlier ones have been answered, and its latency counts
//! from that time), over real HTTP on loopback. The server runs on its own
//! runtime (threads named `gw-server`); their CPU time, read from
//! /proc/self/task, divided by the requests served is the CPU per callback.
//!
//! `cargo bench -p gateway --bench served` — `RATE` (req/s, default 1000)
//! and `SECONDS` (per run, default 5) override the load.

use std::time::Duration;

use gateway::server;
use koogallery_protocol::{marketplace, time::now_ms};

mod common;

use common::{KEY, build_app, env_number};

/// User + system CPU time of this process's threads named `gw-server*`.
fn server_cpu() -> Duration {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("gw-server") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let value = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += value(11) + value(12);
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

struct RunResult {
    sent: usize,
    ok: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
    cpu_per_callback: Duration,
}

async fn run(
    client: &reqwest::Client,
    base: &str,
    merchant: &str,
    rate: u64,
    seconds: u64,
) -> RunResult {
    let total = (rate * seconds) as usize;
    // First-time orders in every run (a repeated order would be a replay).
    let run_id = marketplace::random_token(6);
    // Signed up front, so the client's signing is not in the measurement.
    let requests: Vec<(String, Vec<u8>)> = (0..total)
        .map(|i| {
            let order = format!("CSBENCH{merchant}{run_id}{i:08}");
            let body = format!(
                r#"{{"activity":"newInstance","orderId":"{order}","orderLineId":"{order}-000001","businessId":"b{i}"}}"#
            )
            .into_bytes();
            let query = marketplace::v2_query(KEY, &body, now_ms(), &marketplace::random_nonce());
            (format!("{base}/callbacks/{merchant}?{query}"), body)
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let cpu_before = server_cpu();
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for (i, (url, body)) in requests.into_iter().enumerate() {
        let scheduled = started + interval * i as u32;
        wait_until(scheduled).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).body(body).send().await;
            let ok = match response {
                Ok(r) => r
                    .bytes()
                    .await
                    .is_ok_and(|b| b.starts_with(br#"{"resultCode":"000000""#)),
                Err(_) => false,
            };
            (ok, scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut ok = 0;
    for task in tasks {
        if let Ok((answered, latency)) = task.await {
            ok += usize::from(answered);
            latencies.push(latency);
        }
    }
    let wall = started.elapsed();
    let cpu = server_cpu().saturating_sub(cpu_before);
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    RunResult {
        sent: total,
        ok,
        wall,
        p50: pick(0.50),
        p99: pick(0.99),
        cpu_per_callback: cpu / total as u32,
    }
}

/// Waits for `at` more precisely than the timer wheel's 1 ms: sleep until
/// just before, then yield (letting the client's other tasks run) until due.
async fn wait_until(at: tokio::time::Instant) {
    let coarse = at.checked_sub(Duration::from_millis(2));
    if let Some(coarse) = coarse.filter(|c| *c > tokio::time::Instant::now()) {
        tokio::time::sleep_until(coarse).await;
    }
    while tokio::time::Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks harness-less benches for nothing.
    }
    let rate = env_number("RATE", 1000);
    let seconds = env_number("SECONDS", 5);
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gw-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let app = server_runtime.block_on(build_app("gateway-bench-served"));
    let listener = server_runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listeners = server::Listeners {
        callbacks: listener,
        admin: None,
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        connection_threads: 0,
    };
    server_runtime.spawn(server::serve(
        listeners,
        app,
        std::future::pending(),
        Duration::from_secs(1),
    ));

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    println!("open loop, {rate} req/s for {seconds} s per run, 1 server worker thread, 2 cores");
    let mut results = Vec::new();
    for (round, merchant) in ["native", "plugin", "native", "plugin"]
        .into_iter()
        .enumerate()
    {
        let result = client_runtime.block_on(run(&client, &base, merchant, rate, seconds));
        let label = if merchant == "native" {
            "native Rust handler"
        } else {
            "reference plugin (wasm)"
        };
        println!(
            "round {} {label:<26} {:>6} sent {:>6} ok  {:>7.0} req/s  p50 {:>7.1} µs  p99 {:>8.1} µs  server CPU {:>6.1} µs/callback",
            round + 1,
            result.sent,
            result.ok,
            result.sent as f64 / result.wall.as_secs_f64(),
            result.p50.as_secs_f64() * 1e6,
            result.p99.as_secs_f64() * 1e6,
            result.cpu_per_callback.as_secs_f64() * 1e6,
        );
        results.push(result);
    }
    // The second round of each is the measurement (the first warms up).
    let native = &results[2];
    let plugin = &results[3];
    println!(
        "plugin / native: CPU per callback {:.2}x (target <= 1.3x), p50 {:.2}x, p99 {:.2}x",
        plugin.cpu_per_callback.as_secs_f64() / native.cpu_per_callback.as_secs_f64().max(1e-9),
        plugin.p50.as_secs_f64() / native.p50.as_secs_f64().max(1e-9),
        plugin.p99.as_secs_f64() / native.p99.as_secs_f64().max(1e-9),
    );
}
