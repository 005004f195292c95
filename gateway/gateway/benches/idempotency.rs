//! Throughput of the idempotency layer, closed loop, in process (the router
//! without a socket), on the SQLite store with `synchronous=FULL`:
//!
//! - **native no-op** (the baseline): a queryInstance answered by native
//!   code — verification, nonce, parsing, signing; no operation record;
//! - **replayed duplicates**: the same newInstance, each time with a fresh
//!   nonce, timestamp and businessId, answered from the hot cache;
//! - **first-time creates, native**: distinct orders, each a claim and a
//!   completion committed with fsync (the store's own cost);
//! - **first-time creates, plugin**: the same through the reference plugin.
//!
//! Every request is signed before the clock starts. Each scenario runs twice
//! (warm-up, then measured) with `CONCURRENCY` callbacks in flight (default
//! 32) and `COUNT` requests (default 20000).
//!
//! `cargo bench -p gateway --bench idempotency`

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::{KEY, build_app, env_number};
use gateway::server;
use koogallery_protocol::{marketplace, time::now_ms};
use tower::ServiceExt as _;

struct Signed {
    uri: String,
    body: Vec<u8>,
}

fn signed(merchant: &str, body: String) -> Signed {
    let body = body.into_bytes();
    let query = marketplace::v2_query(KEY, &body, now_ms(), &marketplace::random_nonce());
    Signed {
        uri: format!("/callbacks/{merchant}?{query}"),
        body,
    }
}

fn create_body(order: &str, i: usize) -> String {
    format!(
        r#"{{"activity":"newInstance","orderId":"{order}","orderLineId":"{order}-1","businessId":"b{i}"}}"#
    )
}

/// The requests of one scenario.
fn scenario(name: &str, count: usize, run: &str) -> Vec<Signed> {
    (0..count)
        .map(|i| match name {
            "native no-op" => signed(
                "native",
                format!(r#"{{"activity":"queryInstance","instanceId":"i-{i}"}}"#),
            ),
            "replayed duplicates" => signed("plugin", create_body("CSREPLAYED", i)),
            "first-time creates, native" => {
                signed("native", create_body(&format!("CSN{run}{i:07}"), i))
            }
            _ => signed("plugin", create_body(&format!("CSP{run}{i:07}"), i)),
        })
        .collect()
}

/// Sends every request with `concurrency` in flight; returns requests per
/// second and how many were answered 000000.
async fn drive(router: &Router, requests: Vec<Signed>, concurrency: usize) -> (f64, usize) {
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (router, requests, next, ok) =
                (router.clone(), requests.clone(), next.clone(), ok.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(signed) = requests.get(i) else {
                        return;
                    };
                    let request = Request::post(signed.uri.as_str())
                        .body(Body::from(signed.body.clone()))
                        .expect("a request");
                    let Ok(response) = router.clone().oneshot(request).await;
                    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                        .await
                        .unwrap_or_default();
                    if bytes.starts_with(br#"{"resultCode":"000000""#) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    (rate, ok.load(Ordering::Relaxed))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks harness-less benches for nothing.
    }
    let count = env_number("COUNT", 20000) as usize;
    let concurrency = env_number("CONCURRENCY", 32) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(build_app("gateway-bench-idempotency"));
    let router = server::app(app);
    // The replayed order exists before anything is measured.
    let prime = scenario("replayed duplicates", 1, "");
    let (_, primed) = runtime.block_on(drive(&router, prime, 1));
    assert_eq!(primed, 1, "the replayed order was created");
    println!("closed loop, {count} requests per run, {concurrency} in flight, 2 worker threads");

    let names = [
        "native no-op",
        "replayed duplicates",
        "first-time creates, native",
        "first-time creates, plugin",
    ];
    let mut measured = Vec::new();
    for round in ["warm-up", "measured"] {
        for name in names {
            let requests = scenario(name, count, &marketplace::random_token(6));
            let (rate, ok) = runtime.block_on(drive(&router, requests, concurrency));
            println!("{round:<8} {name:<28} {rate:>8.0} req/s  {ok:>6} of {count} answered 000000");
            if round == "measured" {
                measured.push(rate);
            }
        }
    }
    let baseline = measured[0].max(1e-9);
    println!(
        "replayed / native no-op: {:.2}x (target >= 0.9x); first-time creates: native {:.0}/s ({:.2}x), plugin {:.0}/s ({:.2}x)",
        measured[1] / baseline,
        measured[2],
        measured[2] / baseline,
        measured[3],
        measured[3] / baseline,
    );
}
