//! `gateway serve` and `gateway simulate` as real processes on a real
//! socket: the issue's "done when" path, configuration errors at start, a
//! graceful shutdown that still answers the callback in flight, and the
//! threads callbacks are served on.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use std::time::{Duration, Instant};
use test_support::process::GatewayProcess;

const KEY: &str = "socket-test-key";

/// A running `gateway serve` and its directory.
struct Served {
    process: GatewayProcess,
    url: String,
    _dir: tempfile::TempDir,
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let plugin = |name: &str| test_support::plugin_path(name).display().to_string();
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "data"
        shutdown_grace_secs = 10
        {extra}
        [[merchants]]
        id = "demo"
        access_keys = ["{KEY}"]
        plugin = "{reference}"

        [[merchants]]
        id = "slow"
        access_keys = ["{KEY}"]
        plugin = "{misbehave}"
        deadline_ms = 1500
        "#,
        reference = plugin("reference"),
        misbehave = plugin("misbehave"),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

fn serve() -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), "");
    let process = GatewayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_gateway")),
        &config,
        &dir.path().join("gateway.log"),
    );
    Served {
        url: process.url.clone(),
        process,
        _dir: dir,
    }
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("simulate runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_served_gateway_answers_v2_and_v1_and_refuses_a_wrong_key() {
    let served = serve();
    let url = format!("{}/callbacks/demo", served.url);

    let v2 = simulate(&["newInstance", "--url", &url, "--access-key", KEY]);
    let out = stdout(&v2);
    assert_eq!(v2.status.code(), Some(0), "{out}");
    assert!(out.contains("\"resultCode\":\"000000\""), "{out}");
    assert!(out.contains("\"instanceId\":\""), "{out}");
    assert!(out.contains("Body-Sign: valid"), "{out}");
    assert!(
        out.contains("appInfo.userName (decrypted): admin@"),
        "{out}"
    );

    let wrong = simulate(&["newInstance", "--url", &url, "--access-key", "not-the-key"]);
    let out = stdout(&wrong);
    assert!(out.contains("\"resultCode\":\"000001\""), "{out}");
    assert_eq!(
        wrong.status.code(),
        Some(1),
        "the answer is not signed with a wrong key"
    );

    let v1 = simulate(&["newInstance", "--v1", "--url", &url, "--access-key", KEY]);
    let out = stdout(&v1);
    assert_eq!(v1.status.code(), Some(0), "{out}");
    assert!(out.contains("> GET "), "{out}");

    let stale = simulate(&[
        "releaseInstance",
        "--url",
        &url,
        "--access-key",
        KEY,
        "--field",
        "instanceId=i-1",
        "--clock-offset-secs",
        "-61",
    ]);
    assert!(stdout(&stale).contains("\"resultCode\":\"000001\""));
    assert_eq!(stale.status.code(), Some(3), "signed, but not 000000");
}

/// Voluntary context switches of the process's threads named `prefix…`,
/// by name (Linux's `/proc`).
fn switches_of_threads(pid: u32, prefix: &str) -> std::collections::BTreeMap<String, u64> {
    let mut threads = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    for task in tasks.flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let name = read("comm").trim().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        let switches = read("status")
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0);
        threads.insert(name, switches);
    }
    threads
}

/// The callback port's connections are served on the connection threads,
/// one per core unless configured (docs/decisions.md): each callback wakes
/// the thread its connection was handed to.
#[test]
fn callbacks_are_served_on_a_connection_thread_per_core() {
    let served = serve();
    let pid = served.process.child.id();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let names: Vec<String> = (0..cores).map(|i| format!("connections-{i}")).collect();
    // They start just after the line that says where the gateway listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let threads = switches_of_threads(pid, "connections-");
        if threads.len() >= cores || Instant::now() > deadline {
            break threads;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), names);

    let url = format!("{}/callbacks/demo", served.url);
    for _ in 0..2 * cores {
        let created = simulate(&["newInstance", "--url", &url, "--access-key", KEY]);
        assert_eq!(created.status.code(), Some(0), "{}", stdout(&created));
    }
    let after = switches_of_threads(pid, "connections-");
    for name in &names {
        assert!(
            after[name] > before[name],
            "{name} served none of the callbacks: {before:?} → {after:?}"
        );
    }
}

/// Each callback gets an `info` line, except a replay (answered from an
/// earlier execution's result), whose line is `debug`: the callback log
/// and the metrics keep every one (docs/decisions.md).
#[test]
fn a_replays_line_is_debug_and_every_other_callbacks_info() {
    let served = serve();
    let url = format!("{}/callbacks/demo", served.url);
    let order = [
        "--field",
        "orderId=log-order",
        "--field",
        "orderLineId=log-line",
    ];
    for _ in 0..2 {
        let mut args = vec!["newInstance", "--url", &url, "--access-key", KEY];
        args.extend(order);
        let create = simulate(&args);
        assert_eq!(create.status.code(), Some(0), "{}", stdout(&create));
    }
    // A refusal after both: once its line is written, so is any line of
    // the replay before it (one writer, in order).
    let wrong = simulate(&["newInstance", "--url", &url, "--access-key", "not-the-key"]);
    assert!(stdout(&wrong).contains("\"resultCode\":\"000001\""));
    let log_path = served._dir.path().join("gateway.log");
    // The log is JSON lines (test_support's `GatewayProcess`).
    let answered = |log: &str, code: &str| {
        let code = format!("\"result_code\":\"{code}\"");
        log.lines()
            .filter(|line| line.contains("callback answered") && line.contains(&code))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if answered(&log, "000001") > 0 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(answered(&log, "000001"), 1, "the refusal, at info:\n{log}");
    assert_eq!(
        answered(&log, "000000"),
        1,
        "the create, not its replay:\n{log}"
    );
}

#[test]
fn sigterm_drains_the_callback_in_flight_then_exits_cleanly() {
    let mut served = serve();
    let url = format!("{}/callbacks/slow", served.url);
    // The misbehave plugin sleeps in a host call until its 1.5 s deadline.
    let in_flight = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "simulate",
            "newInstance",
            "--url",
            &url,
            "--access-key",
            KEY,
        ])
        .args(["--field", "orderId=sleep"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("simulate starts");
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let status = served.process.sigterm();

    let answer = in_flight.wait_with_output().expect("simulate ends");
    let out = stdout(&answer);
    assert!(
        out.contains("\"resultCode\":\"000005\""),
        "answered, not dropped: {out}"
    );
    assert!(out.contains("Body-Sign: valid"), "{out}");
    assert!(status.success(), "a clean exit after draining: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_bad_configuration_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("answer_budget_ms = 6000", "answer_budget_ms"),
        ("colour = \"blue\"", "colour"),
    ];
    for (extra, key) in cases {
        let config = write_config(dir.path(), extra);
        let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .expect("the gateway runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}

/// A missing or invalid plugin takes down its own merchant, not the gateway.
#[test]
fn a_broken_plugin_makes_its_merchant_unavailable_and_the_others_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let extra = format!(
        r#"
        [[merchants]]
        id = "wrong"
        access_keys = ["{KEY}"]
        plugin = "{wrong}"

        [[merchants]]
        id = "missing"
        access_keys = ["{KEY}"]
        plugin = "nowhere.wasm"
        "#,
        wrong = test_support::plugin_path("wrong-world").display()
    );
    // Merchants after the two of write_config: appended to its text.
    let config = write_config(dir.path(), "");
    let mut text = std::fs::read_to_string(&config).expect("the configuration");
    text.push_str(&extra);
    std::fs::write(&config, text).expect("write the configuration");
    let log = dir.path().join("gateway.log");
    let process = GatewayProcess::start(Path::new(env!("CARGO_BIN_EXE_gateway")), &config, &log);
    let callback = |merchant: &str| {
        let url = format!("{}/callbacks/{merchant}", process.url);
        simulate(&["newInstance", "--url", &url, "--access-key", KEY])
    };
    let served = callback("demo");
    assert_eq!(served.status.code(), Some(0), "{}", stdout(&served));
    for merchant in ["wrong", "missing"] {
        let refused = callback(merchant);
        let out = stdout(&refused);
        assert_eq!(refused.status.code(), Some(3), "{merchant}: {out}");
        assert!(out.contains("resultCode: 000005"), "{merchant}: {out}");
        assert!(out.contains("Body-Sign: valid"), "{merchant}: {out}");
    }
    let unavailable = process.wait_for_log(
        &["merchant unavailable", "\"wrong\"", "does not export"],
        Duration::from_secs(5),
    );
    assert!(
        unavailable.contains("wrong-world") || unavailable.contains("wrong_world"),
        "{unavailable}"
    );
    process.wait_for_log(
        &["merchant unavailable", "\"missing\"", "cannot read plugin"],
        Duration::from_secs(5),
    );
}
