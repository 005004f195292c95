//! How much one merchant's misbehaving plugins slow another merchant's
//! callbacks, behaviour by behaviour, on a real `gateway serve`: the
//! well-behaved merchant's p99 in quiet and attacked phases, and their ratio
//! (the test `fairness.rs` holds the mixed attack to 2×).
//!
//! `cargo bench -p gateway-cli --bench fairness` (the gateway binary is the
//! bench profile's, optimised).

#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
use common::fairness::{Hostile, measure};

const SCENARIOS: [(&str, &Hostile); 4] = [
    ("12 spinning", &[("loop", 12)]),
    ("12 sleeping in a host call", &[("sleep", 12)]),
    ("12 exhausting 16 MiB", &[("bomb", 12)]),
    (
        "all 36 together",
        &[("loop", 12), ("sleep", 12), ("bomb", 12)],
    ),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "| plugin threads | hostile merchant's calls in flight | quiet p99 | attacked p99 | ratio |"
    );
    println!("|---|---|---|---|---|");
    // The default (a heavy merchant's calls demoted to 2 plugin threads at
    // nice 10), and every call in place on the gateway's threads.
    for threads in [2, 0] {
        for (name, hostile) in SCENARIOS {
            let dir = tempfile::tempdir().expect("temp dir");
            let sandbox = format!("[sandbox]\nthreads = {threads}");
            let gateway = common::start_with(&dir, &sandbox, "memory_mib = 16");
            let measured = measure(&gateway, hostile, 5, 200).await;
            let ratio = measured.attacked.as_secs_f64() / measured.quiet.as_secs_f64();
            println!(
                "| {threads} | {name} | {:.1} ms | {:.1} ms | {ratio:.2}× |",
                measured.quiet.as_secs_f64() * 1e3,
                measured.attacked.as_secs_f64() * 1e3,
            );
        }
    }
}
