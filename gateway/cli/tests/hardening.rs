//! The security review's findings that need a real `gateway serve` process
//! to reproduce: CPU burnt before authentication, a stderr nobody reads,
//! oversized and slow request heads, and plugin output in the log. (One
//! merchant's hostile plugins next to a well-behaved one: `fairness.rs`.)

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::callbacks::{code, post, signed_v2};

#[allow(dead_code)]
mod common;
use common::{KEY, create, start, timed_create, write_config};

/// H1: clients looping on the largest queries the HTTP layer accepts do
/// not delay signed callbacks (the parameter check was quadratic and ran
/// before authentication: legitimate creates took 5.7–8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_flooding_huge_queries_do_not_delay_signed_callbacks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = start(&dir, "");
    let names: Vec<String> = (0..10_000).map(|i| format!("p{i}")).collect();
    let attack = format!(
        "/callbacks/unknown?{}&authToken=A&timeStamp=1",
        names.join("&")
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, attack, stop) = (addr.clone(), attack.clone(), stop.clone());
            std::thread::spawn(move || {
                let request =
                    format!("GET {attack} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut sent = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(mut stream) = TcpStream::connect(&addr) {
                        let _ = stream.write_all(request.as_bytes());
                        let _ = stream.read_to_end(&mut Vec::new());
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (took, code) = timed_create(&client, &gateway.url, "good").await;
        assert_eq!(code, "000000");
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u32 = attackers
        .into_iter()
        .map(|t| t.join().expect("an attacker"))
        .sum();
    assert!(sent > 40, "the attack ran ({sent} requests)");
    assert!(
        slowest < Duration::from_millis(1500),
        "a signed create took {slowest:?} during the attack"
    );
}

/// M7: with stderr a pipe nobody reads, the gateway keeps answering (it
/// stopped after 95 refused requests), and refusals are logged throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_never_stalls_the_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), "", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "--log-format",
            "json",
            "--log",
            "debug",
            "serve",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway starts");
    let mut first_line = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
        first_line.push(byte[0] as char);
    }
    let base = first_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| format!("http://{addr}"))
        .expect("the gateway says where it listens");
    let client = reqwest::Client::new();
    for i in 0..2_000 {
        let response = client
            .get(format!("{base}/callbacks/nobody?authToken=x&timeStamp={i}"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        assert!(
            response.is_ok(),
            "request {i} was not answered: {response:?}"
        );
    }
    let healthy = client
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .map(|r| r.status().is_success());
    assert!(matches!(healthy, Ok(true)), "{healthy:?}");
    let (_, code) = timed_create(&client, &base, "good").await;
    assert_eq!(code, "000000");
    let _ = child.kill();
    let _ = child.wait();
}

/// M8: a bloated request head is cut at once, and a slow one when its
/// time is up; neither holds its memory.
#[test]
fn oversized_and_slow_request_heads_are_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = start(&dir, "header_read_timeout_secs = 1");
    let addr = gateway.url.trim_start_matches("http://").to_string();

    let mut big = TcpStream::connect(&addr).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("a timeout");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(380 << 10)
    );
    let _ = big.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let started = Instant::now();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost:")
        .expect("a partial head");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "cut after {waited:?}"
    );
}

/// M7: what a plugin prints is one escaped log event per stream.
#[tokio::test]
async fn plugin_output_is_one_bounded_event_per_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = start(&dir, "");
    let client = reqwest::Client::new();
    let (url, body) = signed_v2(&gateway.url, "evil", KEY, &create("chatty"));
    assert_eq!(code(&post(&client, &url, body).await), "000000");
    let line = gateway.wait_for_log(&["plugin output", "stdout"], Duration::from_secs(5));
    assert!(line.contains("dropped_bytes"), "{line}");
    gateway.wait_for_log(&["plugin output", "stderr"], Duration::from_secs(5));
    let log = gateway.log();
    let outputs = log
        .lines()
        .filter(|l| l.contains("\"plugin output\""))
        .count();
    assert_eq!(outputs, 2, "one event per stream");
    let raw_lines = log
        .lines()
        .filter(|l| l.contains("chatter chatter") && !l.contains("plugin output"))
        .filter(|l| !l.contains("\"chatter\""))
        .count();
    assert_eq!(raw_lines, 0, "no line per printed line");
}
