//! A plugin that misbehaves on request, for the gateway's containment tests.
//!
//! `create` picks its behaviour from `order-id`: `loop` spins forever, `bomb`
//! allocates until the memory limit, `panic` panics, `trap` executes
//! `unreachable`, `stack` recurses until the stack overflows, `big-output`
//! returns a 1 MiB memo, `sleep` blocks in a host call (WASI sleep) for 30 s,
//! `chatty` floods stdout, stderr and the log before answering normally,
//! `other-id` reports an instance id other than the one assigned, and
//! `error-<case>` declines with that `plugin-error` case (`error-sold-out`,
//! `error-instance-not-found`, …), `slow-<ms>-…` answers normally after
//! `<ms>` milliseconds (a call that is still running when duplicates
//! arrive), `busy-<ms>-…` computes for `<ms>` milliseconds and then answers
//! (a heavy call that succeeds), `log-flood` logs one record with 300,000 empty fields and
//! `big-reason` declines with a 32 MiB reason (what a hostile plugin makes
//! the host copy). Any other order id gets a normal answer, so the same
//! component also proves the runtime still works after each failure. A
//! merchant whose configuration sets `create_behaviour` gets that behaviour
//! on every create, whatever the order id; `renew_behaviour = "error-<case>"`
//! declines every renewal so (a version that breaks renewals, for the
//! shadow check).
//!
//! Every call first logs `executing` with the operation, the order or
//! instance, the idempotency key and the attempt: the gateway's tests count
//! executions from its log.

use koogallery_plugin_sdk::prelude::*;
use std::io::Write;

struct Misbehave;

impl Plugin for Misbehave {
    fn create(req: CreateRequest) -> PluginResult<Created> {
        executing("create", &req.order_id, &req.call);
        if let Some(millis) = slow_millis(&req.order_id) {
            std::thread::sleep(std::time::Duration::from_millis(millis));
            return Ok(created(&req, "slow".into()));
        }
        if let Some(millis) = prefixed_millis("busy-", &req.order_id) {
            busy_for(std::time::Duration::from_millis(millis));
            return Ok(created(&req, "busy".into()));
        }
        let behaviour = config::get("create_behaviour").unwrap_or_else(|| req.order_id.clone());
        match behaviour.as_str() {
            "loop" => spin(),
            "bomb" => bomb(),
            "panic" => panic!("the misbehave plugin panicked on purpose"),
            "trap" => core::arch::wasm32::unreachable(),
            "stack" => {
                let depth = recurse(1);
                Err(error::internal(format!("recursion ended at {depth}")))
            }
            "big-output" => Ok(created(&req, "x".repeat(1 << 20))),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                Ok(created(&req, "woke up".into()))
            }
            "other-id" => {
                let mut answer = created(&req, "renamed".into());
                answer.instance_id = format!("{}-mine", req.instance_id);
                Ok(answer)
            }
            "chatty" => {
                chatter();
                Ok(created(&req, "chatted".into()))
            }
            "log-flood" => {
                flood_the_log();
                Ok(created(&req, "flooded".into()))
            }
            "big-reason" => Err(error::internal("x".repeat(32 << 20))),
            "remember" => Ok(created(&req, remember())),
            id if id.starts_with("error-") => Err(declined(&id["error-".len()..])),
            _ => Ok(created(&req, "normal".into())),
        }
    }
    fn renew(req: RenewRequest) -> PluginResult<()> {
        executing("renew", &req.instance_id, &req.call);
        match config::get("renew_behaviour") {
            Some(case) if case.starts_with("error-") => Err(declined(&case["error-".len()..])),
            _ => Ok(()),
        }
    }
    fn update_status(req: StatusRequest) -> PluginResult<()> {
        executing("update-status", &req.instance_id, &req.call);
        Ok(())
    }
    fn release(req: ReleaseRequest) -> PluginResult<()> {
        executing("release", &req.instance_id, &req.call);
        Ok(())
    }
}

/// Whether anything of an earlier call is left in this instance's memory:
/// a static and a heap buffer larger than what a pool slot keeps resident
/// are checked for the marks an earlier `remember` left, then marked.
fn remember() -> String {
    static MARK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seen_static = MARK.swap(0xfeed, std::sync::atomic::Ordering::Relaxed);
    // Zeroed on allocation by the allocator's own assumption that fresh
    // memory is zero: a stale byte here is the previous call's.
    let mut buffer = vec![0u8; 4 << 20];
    let stale = buffer.iter().filter(|b| **b != 0).count();
    buffer.fill(0xab);
    std::hint::black_box(&buffer);
    format!("static {seen_static:#x}, stale bytes {stale}")
}

/// The record the gateway's tests count executions by.
fn executing(operation: &str, subject: &str, call: &CallContext) {
    log::info!(
        "executing",
        operation = operation,
        subject = subject,
        idempotency_key = call.idempotency_key,
        attempt = call.attempt,
    );
}

/// `slow-<ms>-anything` → `<ms>`.
fn slow_millis(order_id: &str) -> Option<u64> {
    prefixed_millis("slow-", order_id)
}

/// `N` from an order id `<prefix>N` or `<prefix>N-…`.
fn prefixed_millis(prefix: &str, order_id: &str) -> Option<u64> {
    let rest = order_id.strip_prefix(prefix)?;
    rest.split('-').next()?.parse().ok()
}

/// Runs wasm (and reads the clock) for `wall`, then returns: a heavy call
/// that still answers.
fn busy_for(wall: std::time::Duration) {
    let until = std::time::Instant::now() + wall;
    let mut counter: u64 = 0;
    while std::time::Instant::now() < until {
        for _ in 0..1000 {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

/// The plugin error named `case` (its WIT name).
fn declined(case: &str) -> PluginError {
    let reason = format!("declined on purpose: {case}");
    match case {
        "invalid-request" => error::invalid_request(reason),
        "instance-not-found" => error::instance_not_found(reason),
        "in-progress" => error::in_progress(reason),
        "no-resources" => error::no_resources(reason),
        "service-error" => error::service_error(reason),
        "already-subscribed" => error::already_subscribed(reason),
        "sold-out" => error::sold_out(reason),
        _ => error::internal(reason),
    }
}

fn created(req: &CreateRequest, memo: String) -> Created {
    Created {
        instance_id: req.instance_id.clone(),
        app_info: Some(AppInfo {
            front_end_url: Some("https://misbehave.example.com".into()),
            admin_url: None,
            user_name: None,
            password: None,
            memo: Some(memo),
        }),
    }
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn bomb() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really committed.
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[0] + 1) + frame[63]
}

/// One record with as many empty fields as fit the guest's memory.
fn flood_the_log() {
    let fields: Vec<log::Field> = (0..300_000)
        .map(|_| log::Field {
            key: String::new(),
            value: String::new(),
        })
        .collect();
    log::emit(log::Level::Info, "flood", &fields);
}

fn chatter() {
    let line = "chatter ".repeat(128);
    for _ in 0..1024 {
        let _ = writeln!(std::io::stdout(), "{line}");
        let _ = writeln!(std::io::stderr(), "{line}");
        log::info!("chatter", line = line);
    }
}

export_plugin!(Misbehave);
