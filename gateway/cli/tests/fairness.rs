//! One merchant's hostile plugins next to a well-behaved merchant (the
//! security review's M5): plugins that spin, sleep in a host call and
//! exhaust their memory take turns on their own merchant's share (instances,
//! CPU slots, memory) and leave the other merchant's latency as it was.
//!
//! Its own test binary: nothing else runs in the process while it measures.
//! (`cargo bench -p gateway-cli --bench fairness` measures each behaviour
//! alone.)

use std::time::Duration;

#[allow(dead_code)]
mod common;
use common::fairness::{Hostile, measure};

/// 36 hostile callbacks in flight: 12 spinning, 12 sleeping in a host call,
/// 12 exhausting their memory.
const HOSTILE: &Hostile = &[("loop", 12), ("sleep", 12), ("bomb", 12)];

/// M5: the well-behaved merchant's p99 under attack stays within 2× of its
/// p99 without (a floor of 10 ms for the quiet one: on loopback it is a few
/// milliseconds, and the scheduling of two busy cores alone moves it that
/// much), and only the hostile merchant's calls fail.
///
/// On the 2-core machine (2026-11-21, 11 runs): quiet 3.8-4.3 ms, attacked
/// 6.8-8.8 ms — the floor matters; docs/benchmarks.md has the raw ratios.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_merchant_does_not_slow_a_well_behaved_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A small memory limit, so that bombs taking turns on one CPU slot
    // with the loops still reach it within their deadline.
    let gateway = common::start_with(&dir, "", "memory_mib = 8");
    let measured = measure(&gateway, HOSTILE, 5, 200).await;

    // The attack was real: the hostile calls ran into their deadline and
    // their memory limit (000005); the well-behaved merchant's never failed.
    let failures = |labels: &str| format!("gateway_plugin_failures_total{{{labels}");
    let evil = |reason: &str| failures(&format!("merchant=\"evil\",reason=\"{reason}\"}}"));
    assert!(gateway.metric(&evil("deadline")).await > Some(0.0));
    assert!(gateway.metric(&evil("memory_limit")).await > Some(0.0));
    assert_eq!(gateway.metric(&failures("merchant=\"good\"")).await, None);

    let allowed = measured.quiet.max(Duration::from_millis(10)) * 2;
    eprintln!("well-behaved p99: {measured:?}");
    assert!(
        measured.attacked <= allowed,
        "p99 {:?} under attack, {:?} before (allowed {allowed:?})",
        measured.attacked,
        measured.quiet
    );
}
