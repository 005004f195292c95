//! The per-call sandbox cycle: fresh store + instantiate + one call + drop.
//!
//! Part 1 (criterion): the cycle with and without the pooling allocator, for a
//! minimal call (`release`) and a realistic one (`create` of the reference
//! plugin: validation, hashing, a log record, an app-info record back).
//! Part 2 (printed): p50/p99 of 20,000 single-threaded cycles and calls/s on
//! 2 threads, pooled and on-demand, as ratios to each other.
//!
//! The runtime is configured exactly as `gateway serve` configures it
//! (`config::lower`), so the figures are the served gateway's.
//!
//! Run with `cargo bench -p gateway --bench sandbox`; figures are recorded in
//! docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use gateway::config::{PagemapScanConfig, SandboxConfig, lower};
use gateway_sandbox::{LoadedPlugin, MerchantContext, Outcome, Runtime};
use koogallery_contract::{Operation, OperationRequest};
use serde_json::json;

fn runtime(pooling: bool) -> Runtime {
    let sandbox = SandboxConfig {
        pooling,
        ..SandboxConfig::default()
    };
    Runtime::new(lower::runtime(&sandbox, None)).expect("runtime")
}

/// A merchant with the served gateway's default limits.
fn bench_merchant() -> MerchantContext {
    lower::merchant_context(
        "bench",
        Default::default(),
        lower::default_call_limits(),
        &SandboxConfig::default(),
    )
}

fn request(operation: Operation) -> OperationRequest {
    let instance_id = "c968a516-7124-5800-b3f7-7490575410b0";
    let fields = match operation {
        Operation::Create => json!({
            "instance_id": instance_id,
            "order_id": "CS2211181819B4LVS", "order_line_id": "CS2211181819B4LVS-000001",
            "charging_mode": "Period", "period": {"unit": "Month", "count": 1},
            "expire_at": {"unix_seconds": 1795000000}, "product": {"sku_code": "basic", "linear_value": 5},
        }),
        _ => json!({"instance_id": instance_id}),
    };
    gateway::request_json::build(operation, "bench", fields, true).expect("valid request")
}

async fn call_once(
    rt: &Runtime,
    plugin: &Arc<LoadedPlugin>,
    merchant: &MerchantContext,
    req: &OperationRequest,
) {
    let invocation = rt.invoke(plugin, merchant, req).await;
    assert!(
        matches!(invocation.outcome, Outcome::Answered(_)),
        "{:?}",
        invocation.outcome
    );
}

fn cycle(c: &mut Criterion) {
    let wasm = test_support::plugin_bytes("reference");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let merchant = bench_merchant();
    let mut group = c.benchmark_group("sandbox_cycle");
    for pooling in [true, false] {
        let rt = runtime(pooling);
        let plugin = rt.load(&wasm).expect("load");
        for op in [Operation::Release, Operation::Create] {
            let req = request(op);
            let name = format!("{}/{}", if pooling { "pooling" } else { "on_demand" }, op);
            group.bench_function(name, |b| {
                b.to_async(&tokio)
                    .iter(|| call_once(&rt, &plugin, &merchant, &req));
            });
        }
    }
    group.finish();
}

/// p50 and p99 of `n` sequential cycles, after a warm-up.
fn percentiles(
    rt: &Runtime,
    plugin: &Arc<LoadedPlugin>,
    req: &OperationRequest,
    n: usize,
) -> (Duration, Duration) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let merchant = bench_merchant();
    let mut samples = Vec::with_capacity(n);
    tokio.block_on(async {
        for _ in 0..500 {
            call_once(rt, plugin, &merchant, req).await;
        }
        for _ in 0..n {
            let start = Instant::now();
            call_once(rt, plugin, &merchant, req).await;
            samples.push(start.elapsed());
        }
    });
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

/// Calls per second with `tasks` concurrent tasks on 2 worker threads.
fn throughput(
    rt: Arc<Runtime>,
    plugin: Arc<LoadedPlugin>,
    req: OperationRequest,
    tasks: usize,
    per_task: usize,
) -> f64 {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let req = Arc::new(req);
    tokio.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (rt, plugin, req) = (rt.clone(), plugin.clone(), req.clone());
                tokio::spawn(async move {
                    let merchant = bench_merchant();
                    for _ in 0..per_task {
                        call_once(&rt, &plugin, &merchant, &req).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        (tasks * per_task) as f64 / start.elapsed().as_secs_f64()
    })
}

fn summary() {
    let wasm = test_support::plugin_bytes("reference");
    println!(
        "\n== sandbox cycle: percentiles (20,000 calls, 1 thread) and throughput (2 threads) =="
    );
    let mut rows = Vec::new();
    for pooling in [true, false] {
        let rt = Arc::new(runtime(pooling));
        let plugin = rt.load(&wasm).expect("load");
        for op in [Operation::Release, Operation::Create] {
            let req = request(op);
            let (p50, p99) = percentiles(&rt, &plugin, &req, 20_000);
            let per_task = if pooling { 2_000 } else { 400 };
            let rate = throughput(rt.clone(), plugin.clone(), req.clone(), 2, per_task * 10);
            let rate64 = throughput(rt.clone(), plugin.clone(), req, 64, per_task / 2);
            let label = format!("{}/{}", if pooling { "pooling" } else { "on-demand" }, op);
            println!(
                "{label:<22} p50 {:>7.1} µs  p99 {:>7.1} µs  2 tasks {:>9.0} calls/s  64 tasks {:>9.0} calls/s",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                rate,
                rate64
            );
            rows.push((label, p50, rate));
        }
    }
    // The floor: a plugin whose `release` does nothing at all.
    let rt = runtime(true);
    let noop = rt
        .load(&test_support::plugin_bytes("misbehave"))
        .expect("load");
    let (p50, p99) = percentiles(&rt, &noop, &request(Operation::Release), 20_000);
    let rate = throughput(Arc::new(rt), noop, request(Operation::Release), 2, 20_000);
    println!(
        "{:<22} p50 {:>7.1} µs  p99 {:>7.1} µs  2 tasks {:>9.0} calls/s",
        "pooling/no-op plugin",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        rate
    );
    // The pool slot's reset, both ways in the same run: only the pages the
    // call dirtied (`pagemap_scan`, the default where it is safe), and
    // clearing everything kept resident.
    for pagemap_scan in [PagemapScanConfig::Auto, PagemapScanConfig::Off] {
        let sandbox = SandboxConfig {
            pagemap_scan,
            ..SandboxConfig::default()
        };
        let rt = Arc::new(Runtime::new(lower::runtime(&sandbox, None)).expect("runtime"));
        let plugin = rt.load(&wasm).expect("load");
        for op in [Operation::Release, Operation::Create] {
            let req = request(op);
            let (p50, p99) = percentiles(&rt, &plugin, &req, 20_000);
            let rate = throughput(rt.clone(), plugin.clone(), req, 2, 20_000);
            let label = format!("{op}, {}", rt.stats().slot_reset.label());
            println!(
                "{label:<28} p50 {:>7.1} µs  p99 {:>7.1} µs  2 tasks {:>9.0} calls/s",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                rate
            );
        }
    }
    let (pooled, on_demand) = rows.split_at(2);
    for (p, o) in pooled.iter().zip(on_demand) {
        println!(
            "{}: pooling vs on-demand: p50 {:.2}× faster, throughput {:.2}×",
            p.0,
            o.1.as_secs_f64() / p.1.as_secs_f64(),
            p.2 / o.2
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    cycle(&mut criterion);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
