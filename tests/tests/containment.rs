//! Each misbehaving plugin is contained: the call fails with the right error
//! kind, within its deadline plus a small margin, and the runtime keeps
//! serving. The timing checks run one after another in a single test so that
//! no other test competes for the two cores while they measure.

use std::time::{Duration, Instant};

use e2e::{answered, failed, load, merchant, request, runtime, runtime_with, settings};
use gateway::config::{PagemapScanConfig, SandboxConfig};
use gateway::executor::coded_outcome;
use gateway_sandbox::{CallError, Invocation, MerchantContext, Runtime};
use koogallery_contract::{Operation, OperationOutput};
use koogallery_protocol::ResultCode;
use serde_json::json;

const DEADLINE: Duration = Duration::from_millis(400);
/// The deadline may be overrun by one epoch tick (10 ms) plus scheduling.
const MARGIN: Duration = Duration::from_millis(50);

async fn create(rt: &Runtime, who: &MerchantContext, order_id: &str) -> (Invocation, Duration) {
    let plugin = load(rt, "misbehave");
    let fields =
        json!({"instance_id": "i-1", "order_id": order_id, "kind": "Purchase", "product": {}});
    let start = Instant::now();
    let invocation = rt
        .invoke(&plugin, who, &request(Operation::Create, fields))
        .await;
    (invocation, start.elapsed())
}

async fn assert_still_serving(rt: &Runtime, who: &MerchantContext) {
    let (invocation, _) = create(rt, who, "normal").await;
    let OperationOutput::Created(created) = answered(&invocation) else {
        panic!("not a create output")
    };
    assert_eq!(
        created.app_info.as_ref().and_then(|a| a.memo.as_deref()),
        Some("normal")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_plugins_stop_at_their_deadline_and_the_runtime_keeps_serving() {
    let rt = runtime(4);
    let who = merchant(&[], DEADLINE);
    for order_id in ["loop", "sleep"] {
        let (invocation, elapsed) = create(&rt, &who, order_id).await;
        let error = failed(&invocation);
        let in_host = order_id == "sleep";
        assert_eq!(
            error,
            &CallError::Deadline {
                deadline_ms: DEADLINE.as_millis() as u64,
                blocked_in_host: in_host
            },
            "{order_id}"
        );
        assert!(
            elapsed >= DEADLINE,
            "{order_id} stopped early, after {elapsed:?}"
        );
        assert!(
            elapsed <= DEADLINE + MARGIN,
            "{order_id} overran: {elapsed:?}"
        );
        assert_eq!(
            coded_outcome(&invocation.outcome).code,
            ResultCode::Internal
        );
        assert_still_serving(&rt, &who).await;
    }
}

#[tokio::test]
async fn a_memory_bomb_hits_the_merchants_limit() {
    let rt = runtime(4);
    let mut who = merchant(&[], Duration::from_secs(5));
    who.limits.memory_bytes = 16 << 20;
    let (invocation, _) = create(&rt, &who, "bomb").await;
    let CallError::MemoryLimit {
        limit_bytes,
        requested_bytes,
    } = failed(&invocation)
    else {
        panic!(
            "expected a memory-limit error, got {:?}",
            invocation.outcome
        )
    };
    assert_eq!(*limit_bytes, 16 << 20);
    assert!(*requested_bytes > 16 << 20);
    assert!(invocation.peak_memory_bytes <= 16 << 20);
    assert!(
        invocation.peak_memory_bytes > 8 << 20,
        "it did grow: {}",
        invocation.peak_memory_bytes
    );
    assert_still_serving(&rt, &who).await;
}

#[tokio::test]
async fn traps_are_reported_with_their_cause() {
    let rt = runtime(4);
    let who = merchant(&[], Duration::from_secs(5));
    let (panicked, _) = create(&rt, &who, "panic").await;
    let CallError::Trap { trap, detail } = failed(&panicked) else {
        panic!("{:?}", panicked.outcome)
    };
    assert!(trap.contains("unreachable"), "{trap}");
    assert!(
        detail
            .as_deref()
            .is_some_and(|d| d.contains("panicked on purpose") && !d.contains("RUST_BACKTRACE")),
        "the panic message is kept: {detail:?}"
    );
    let (trapped, _) = create(&rt, &who, "trap").await;
    assert!(
        matches!(failed(&trapped), CallError::Trap { trap, .. } if trap.contains("unreachable"))
    );
    // Rust keeps its stack in linear memory: runaway recursion runs off its
    // bottom, an out-of-bounds trap, which is contained like any other.
    let (overflowed, _) = create(&rt, &who, "stack").await;
    assert!(
        matches!(failed(&overflowed), CallError::Trap { .. }),
        "{:?}",
        overflowed.outcome
    );
    assert_still_serving(&rt, &who).await;
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let rt = runtime(4);
    let who = merchant(&[], Duration::from_secs(5));
    let (invocation, _) = create(&rt, &who, "big-output").await;
    let CallError::OutputTooLarge { bytes, limit } = failed(&invocation) else {
        panic!("{:?}", invocation.outcome)
    };
    assert_eq!(*limit, gateway_sandbox::limits::MAX_OUTPUT_BYTES);
    assert!(*bytes > 1 << 20);
    assert_still_serving(&rt, &who).await;
}

#[tokio::test]
async fn chatty_output_is_bounded_and_does_not_fail_the_call() {
    let rt = runtime(4);
    let who = merchant(&[], Duration::from_secs(5));
    let (invocation, _) = create(&rt, &who, "chatty").await;
    answered(&invocation);
    let budget = gateway_sandbox::limits::MAX_LOG_BYTES;
    assert_eq!(invocation.stdout.text.len(), budget);
    assert!(invocation.stdout.dropped_bytes > 0);
    assert_eq!(invocation.stderr.text.len(), budget);
    assert!(invocation.dropped_log_records > 0);
    let logged: usize = invocation
        .logs
        .iter()
        .map(|r| r.message.len() + r.fields.values().map(String::len).sum::<usize>() + 4)
        .sum();
    assert!(logged <= budget, "{logged} bytes of records kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_makes_callers_wait_and_then_fail_cleanly() {
    let rt = std::sync::Arc::new(runtime(1));
    load(&rt, "misbehave");
    let slow = merchant(&[], Duration::from_millis(800));
    let blocker = {
        let rt = rt.clone();
        tokio::spawn(async move { create(&rt, &slow, "sleep").await.0 })
    };
    let waiting_since = Instant::now();
    while rt.stats().busy_sandboxes == 0 {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(5),
            "the blocker never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let impatient = merchant(&[], Duration::from_millis(200));
    let (refused, _) = create(&rt, &impatient, "normal").await;
    assert!(matches!(failed(&refused), CallError::Overloaded { waited_ms } if *waited_ms >= 200));
    assert!(matches!(
        failed(&blocker.await.expect("task")),
        CallError::Deadline { .. }
    ));
    assert_still_serving(&rt, &merchant(&[], Duration::from_secs(2))).await;
    assert_eq!(rt.stats().busy_sandboxes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_queue_for_a_small_pool_and_all_succeed() {
    let rt = std::sync::Arc::new(runtime(4));
    let who = merchant(&[], Duration::from_secs(20));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Samples how many sandboxes are busy while the calls run.
    let sampler = std::thread::spawn({
        let (rt, done) = (rt.clone(), done.clone());
        move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(rt.stats().busy_sandboxes);
                std::thread::sleep(Duration::from_micros(50));
            }
            most
        }
    });
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let (rt, who) = (rt.clone(), who.clone());
            tokio::spawn(async move { create(&rt, &who, &format!("order-{i}")).await.0 })
        })
        .collect();
    for call in calls {
        answered(&call.await.expect("task"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().expect("the sampler");
    assert!(most <= 4, "{most} sandboxes ran at once in a pool of 4");
    assert!(most >= 2, "the calls never overlapped (at most {most})");
}

/// Nothing of one call is left in the pool slot the next call gets, with
/// the slot reset scanning for dirtied pages and with it clearing all.
#[tokio::test]
async fn no_memory_of_a_call_survives_into_the_next_on_its_slot() {
    for pagemap_scan in [PagemapScanConfig::Auto, PagemapScanConfig::Off] {
        let rt = runtime_with(settings(SandboxConfig {
            max_instances: 1,
            pagemap_scan,
            ..SandboxConfig::default()
        }));
        let who = merchant(&[], Duration::from_secs(2));
        for _ in 0..3 {
            let (invocation, _) = create(&rt, &who, "remember").await;
            let OperationOutput::Created(created) = answered(&invocation) else {
                panic!("not a create output")
            };
            let memo = created.app_info.as_ref().and_then(|a| a.memo.as_deref());
            assert_eq!(
                memo,
                Some("static 0x0, stale bytes 0"),
                "{pagemap_scan:?}, resetting by {:?}",
                rt.stats().slot_reset
            );
        }
    }
}

/// A merchant whose call spun or hit its memory limit is demoted to the
/// low-priority plugin threads (and still served there); a merchant whose
/// calls are short is not, and keeps running them in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_calls_demote_their_own_merchant_only() {
    let rt = runtime(4);
    let light = merchant(&[], DEADLINE);
    for _ in 0..20 {
        assert_still_serving(&rt, &light).await;
    }
    assert!(!light.share.demoted(), "short calls never demote");

    let spinning = merchant(&[], DEADLINE);
    let (invocation, _) = create(&rt, &spinning, "loop").await;
    assert!(matches!(failed(&invocation), CallError::Deadline { .. }));
    assert!(spinning.share.demoted());

    let mut hungry = merchant(&[], Duration::from_secs(5));
    hungry.limits.memory_bytes = 16 << 20;
    let (invocation, _) = create(&rt, &hungry, "bomb").await;
    assert!(matches!(failed(&invocation), CallError::MemoryLimit { .. }));
    assert!(hungry.share.demoted());

    assert!(!light.share.demoted(), "demotion is per merchant");
    assert_still_serving(&rt, &spinning).await;
    assert_still_serving(&rt, &hungry).await;
}

/// Heavy means CPU spent in wasm, not time: a call that computes for 150 ms
/// and answers demotes its merchant; one that sleeps as long in a host call
/// does not (nor would a short call the kernel kept off a core for a tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_heavy_by_the_cpu_it_ran_not_the_time_it_took() {
    let rt = runtime(4);
    let busy = merchant(&[], DEADLINE);
    let (invocation, took) = create(&rt, &busy, "busy-150").await;
    answered(&invocation);
    assert!(took >= Duration::from_millis(150));
    assert!(busy.share.demoted(), "150 ms of wasm is heavy");

    let sleepy = merchant(&[], DEADLINE);
    let (invocation, took) = create(&rt, &sleepy, "slow-150").await;
    answered(&invocation);
    assert!(took >= Duration::from_millis(150));
    assert!(
        !sleepy.share.demoted(),
        "sleeping in a host call is not heavy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_merchants_runaway_does_not_stop_another_merchants_calls() {
    let rt = std::sync::Arc::new(runtime(8));
    let runaway = merchant(&[], Duration::from_millis(600));
    let looping = {
        let rt = rt.clone();
        tokio::spawn(async move { create(&rt, &runaway, "loop").await.0 })
    };
    let neighbour = merchant(&[], Duration::from_secs(2));
    let mut served = 0;
    while !looping.is_finished() {
        assert_still_serving(&rt, &neighbour).await;
        served += 1;
    }
    assert!(matches!(
        failed(&looping.await.expect("task")),
        CallError::Deadline { .. }
    ));
    assert!(
        served >= 10,
        "only {served} calls were served next to the runaway"
    );
}

#[tokio::test]
async fn a_plugin_cannot_change_the_assigned_instance_id() {
    let rt = runtime(2);
    let who = merchant(&[], Duration::from_secs(5));
    let (invocation, _) = create(&rt, &who, "other-id").await;
    let OperationOutput::Created(created) = answered(&invocation) else {
        panic!("not a create output")
    };
    assert_eq!(created.instance_id, "i-1");
    assert_eq!(
        created.app_info.as_ref().and_then(|a| a.memo.as_deref()),
        Some("renamed")
    );
}

#[tokio::test]
async fn a_merchant_limit_above_the_pool_slot_is_capped_to_the_slot() {
    let rt = e2e::runtime_with(e2e::settings(gateway::config::SandboxConfig {
        max_memory_mib: 24,
        ..Default::default()
    }));
    let mut who = merchant(&[], Duration::from_secs(5));
    who.limits.memory_bytes = 1 << 30;
    let (invocation, _) = create(&rt, &who, "bomb").await;
    assert!(
        matches!(failed(&invocation), CallError::MemoryLimit { limit_bytes, .. } if *limit_bytes == 24 << 20),
        "{:?}",
        invocation.outcome
    );
}
