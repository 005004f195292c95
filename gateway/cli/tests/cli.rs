//! The `gateway plugin` commands, run as a real process against real plugins:
//! output, messages and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .output()
        .expect("the gateway binary runs")
}

fn plugin(name: &str) -> String {
    test_support::plugin_path(name).display().to_string()
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn request_file(json: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(json.as_bytes()).expect("write request");
    file
}

#[test]
fn check_accepts_the_reference_plugin_and_describes_it() {
    let output = gateway(&["plugin", "check", &plugin("reference")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("valid plugin"), "{text}");
    assert!(
        text.contains("contract:   koogallery:plugin@0.1.1"),
        "{text}"
    );
    assert!(
        text.contains("koogallery:plugin/provisioning@0.1.1"),
        "{text}"
    );
}

#[test]
fn check_refuses_bad_components_with_a_reason_and_exit_1() {
    let cases = [
        (
            plugin("wrong-world"),
            "does not export `koogallery:plugin/provisioning@0.1.x`",
        ),
        (
            plugin("fs-reader"),
            "imports what the gateway does not grant: wasi:filesystem",
        ),
        (
            "/no/such/plugin.wasm".to_string(),
            "cannot read /no/such/plugin.wasm",
        ),
    ];
    for (file, expected) in cases {
        let output = gateway(&["plugin", "check", &file]);
        assert_eq!(output.status.code(), Some(1), "{file}");
        assert!(
            stderr(&output).contains(expected),
            "{file}: {}",
            stderr(&output)
        );
    }
    let big = gateway(&[
        "plugin",
        "check",
        &plugin("reference"),
        "--max-size-mib",
        "0",
    ]);
    assert_eq!(big.status.code(), Some(1));
    assert!(
        stderr(&big).contains("more than the 0-byte limit"),
        "{}",
        stderr(&big)
    );
}

#[test]
fn invoke_create_prints_the_instance_app_info_code_duration_and_memory() {
    let request = request_file(
        r#"{"order_id": "CS1", "order_line_id": "CS1-000001", "kind": "Trial",
        "expire_at": {"unix_seconds": 1795000000}, "product": {"sku_code": "basic"}}"#,
    );
    let path = request.path().display().to_string();
    let output = gateway(&[
        "plugin",
        "invoke",
        &plugin("reference"),
        "create",
        "--request",
        &path,
        "--merchant",
        "acme",
        "--config",
        "base_url=https://acme.example.com",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout_json(&output);
    assert_eq!(report["result_code"], "000000");
    assert_eq!(report["outcome"], "answered");
    let created = &report["result"]["created"];
    let expected_id = koogallery_protocol::ids::instance_id("acme", "CS1", Some("CS1-000001"));
    assert_eq!(created["instance-id"], expected_id.as_str());
    let app = &created["app-info"];
    assert!(
        app["front-end-url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://acme.example.com/t-")),
        "{app}"
    );
    for field in ["admin-url", "user-name", "password"] {
        assert!(
            app[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} in {app}"
        );
    }
    assert_eq!(app["memo"], "trial until 20261118110640 (test)");
    assert!(report["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
    assert!(report["peak_memory_bytes"].as_u64().is_some_and(|m| m > 0));
    assert_eq!(report["logs"][0]["message"], "tenant provisioned");
}

#[test]
fn invoke_reads_the_request_from_stdin_and_reports_a_declined_call_with_exit_3() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "plugin",
            "invoke",
            &plugin("reference"),
            "create",
            "--request",
            "-",
        ])
        .args(["--config", "sold_out_skus=gold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let request = br#"{"order_id": "CS2", "product": {"sku_code": "gold"}}"#;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request)
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let report = stdout_json(&output);
    assert_eq!(report["result_code"], "000106");
    assert_eq!(report["result_msg"], "sku gold is sold out");
    assert_eq!(report["error"]["sold-out"], "sku gold is sold out");
}

#[test]
fn invoke_of_a_runaway_plugin_reports_the_deadline() {
    let request = request_file(r#"{"order_id": "loop"}"#);
    let path = request.path().display().to_string();
    let output = gateway(&[
        "plugin",
        "invoke",
        &plugin("misbehave"),
        "create",
        "--request",
        &path,
        "--deadline-ms",
        "300",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let report = stdout_json(&output);
    assert_eq!(report["result_code"], "000005");
    assert_eq!(report["result_msg"], "plugin deadline exceeded");
    assert_eq!(report["failure"]["error"]["kind"], "deadline");
    assert!(report["duration_ms"].as_f64().is_some_and(|d| d >= 300.0));
}

#[test]
fn invoke_explains_bad_input() {
    // (request file contents, operation, extra arguments, exit code, message)
    let cases: [(&str, &str, &[&str], i32, &str); 4] = [
        ("{ order_id: CS1 ", "create", &[], 1, "is not valid JSON"),
        (
            r#"{"instance_id": "i-1"}"#,
            "renew",
            &[],
            1,
            "not a valid `renew` request: missing field `order_id`",
        ),
        ("{}", "explode", &[], 2, "unknown operation `explode`"),
        (
            "{}",
            "create",
            &["--config", "novalue"],
            2,
            "expected KEY=VALUE",
        ),
    ];
    for (contents, operation, extra, code, message) in cases {
        let request = request_file(contents);
        let path = request.path().display().to_string();
        let mut args = vec!["plugin", "invoke", "--request", &path];
        let reference = plugin("reference");
        args.extend([reference.as_str(), operation]);
        args.extend(extra);
        let output = gateway(&args);
        assert_eq!(output.status.code(), Some(code), "{operation} {contents}");
        assert!(
            stderr(&output).contains(message),
            "{operation} {contents}: {}",
            stderr(&output)
        );
    }
}

/// The example requests in `examples/requests/` (one per operation, named
/// after it) all succeed against the reference plugin, so the README's
/// examples cannot rot.
#[test]
fn every_example_request_succeeds_against_the_reference_plugin() {
    let dir = test_support::repo_root().join("examples/requests");
    let mut seen = Vec::new();
    for operation in koogallery_contract::Operation::ALL {
        let file = dir.join(format!("{operation}.json"));
        let path = file.display().to_string();
        let output = gateway(&[
            "plugin",
            "invoke",
            &plugin("reference"),
            operation.name(),
            "--request",
            &path,
        ]);
        assert!(
            output.status.success(),
            "{path}: {}{}",
            stderr(&output),
            String::from_utf8_lossy(&output.stdout)
        );
        assert_eq!(stdout_json(&output)["result_code"], "000000", "{path}");
        seen.push(operation);
    }
    assert_eq!(seen.len(), 8);
}

/// `plugin invoke --marketplace`: a callback as the seller console shows it
/// (a V2 body, a V1 query string) runs as the gateway would run it.
#[test]
fn invoke_replays_a_marketplace_callback_as_the_gateway_reads_it() {
    let reference = plugin("reference");
    let v2 = request_file(
        r#"{"activity":"newInstance","orderId":"CS-M1","orderLineId":"CS-M1-000001","businessId":"b","testFlag":"1"}"#,
    );
    let v2_path = v2.path().display().to_string();
    let output = gateway(&["plugin", "invoke", &reference, "--marketplace", &v2_path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["operation"], "create");
    let expected = koogallery_protocol::ids::instance_id("local", "CS-M1", Some("CS-M1-000001"));
    assert_eq!(
        report["result"]["created"]["instance-id"],
        expected.as_str(),
        "{report}"
    );

    let v1 = request_file(
        "https://isv.example.com/produce?activity=refreshInstance&instanceId=i-1&orderId=CS-R1&expireTime=20301231235959&authToken=x&timeStamp=1",
    );
    let v1_path = v1.path().display().to_string();
    let output = gateway(&["plugin", "invoke", &reference, "--marketplace", &v1_path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["operation"], "renew");

    let bad = request_file(r#"{"activity":"newInstance","businessId":"b"}"#);
    let bad_path = bad.path().display().to_string();
    let output = gateway(&["plugin", "invoke", &reference, "--marketplace", &bad_path]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("would refuse"),
        "{}",
        stderr(&output)
    );
}

/// A plugin that keeps facts in its key-value store reads them back under
/// `plugin invoke` (an in-memory store for the run).
#[test]
fn invoke_gives_the_plugin_a_key_value_store_in_memory() {
    let request = request_file(
        r#"{"instance-id": "i-1", "order-id": "CS-R1", "scene": "renewal", "expire-at": {"unix-seconds": 1900000000}}"#,
    );
    let path = request.path().display().to_string();
    let outbound = plugin("outbound");
    let output = gateway(&["plugin", "invoke", &outbound, "renew", "--request", &path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// `--allow-outbound` grants the plugin its backend for a local run, as an
/// operator grants a merchant; without it the request is denied.
#[test]
fn invoke_grants_outbound_http_only_when_asked() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("url={origin}/");
    let request = request_file(r#"{"order-id": "CS-O1"}"#);
    let path = request.path().display().to_string();
    let outbound = plugin("outbound");
    let base = [
        "plugin",
        "invoke",
        outbound.as_str(),
        "create",
        "--request",
        path.as_str(),
        "--live",
        "--config",
        url.as_str(),
    ];
    let denied = gateway(&base);
    assert_eq!(denied.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&denied.stdout).contains("HttpRequestDenied"));
    let mut granted = base.to_vec();
    granted.extend([
        "--allow-outbound",
        origin.as_str(),
        "--allow-private-networks",
    ]);
    let output = gateway(&granted);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let report = stdout_json(&output);
    assert_eq!(
        report["result"]["created"]["app-info"]["memo"], "status=200 bytes=2",
        "{report}"
    );
}
