//! The callback log issue's "done when", with the CLI against a running
//! `gateway serve`: a plugin version fails a create; the merchant finds the
//! failure by order id, activates a fixed version and re-drives the
//! operation; the marketplace's next retry gets 000000 with the same
//! instance id. A shadow check of a version that breaks renewals reports
//! exactly those rows and exits non-zero. A merchant token sees only its
//! own records.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use koogallery_protocol::{ids, marketplace};
use serde_json::{Value, json};
use test_support::callbacks::{self, code, post};
use test_support::process::GatewayProcess;

const KEY: &str = "cli-callback-log-test-key";
const OPERATOR: &str = "cli-operator-token-callback-log-0123";

fn write_config(dir: &Path) -> PathBuf {
    let token_file = dir.join("operator.token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).expect("write the token file");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         token_file = \"{}\"\n",
        token_file.display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// `gateway <args…> --url <admin> --token <token> --output json`.
fn cli(admin: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .args(["--url", admin, "--token", token, "--output", "json"])
        .env_remove("GATEWAY_ADMIN_TOKEN")
        .env_remove("GATEWAY_ADMIN_URL")
        .output()
        .expect("the CLI runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// One JSON object per line.
fn records(output: &Output) -> Vec<Value> {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
        .collect()
}

fn plugin(name: &str) -> String {
    test_support::plugin_path(name).display().to_string()
}

fn new_instance(order: &str) -> Value {
    json!({"activity": "newInstance", "orderId": order, "orderLineId": format!("{order}-000001"),
        "businessId": marketplace::random_nonce()})
}

async fn callback(client: &reqwest::Client, base: &str, merchant: &str, body: &Value) -> Value {
    let (url, bytes) = callbacks::signed_v2(base, merchant, KEY, body);
    post(client, &url, bytes).await
}

/// The log is written behind the answers: wait for `count` records.
fn wait_for_records(admin: &str, token: &str, args: &[&str], count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found = records(&cli(admin, token, args));
        if found.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_create_is_found_fixed_redriven_and_a_broken_version_is_caught_by_shadow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gateway = GatewayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_gateway")),
        &write_config(dir.path()),
        &dir.path().join("gateway.log"),
    );
    let admin = gateway.admin_url.clone().expect("an admin listener");
    let client = reqwest::Client::new();
    for (id, settings) in [
        (
            "acme",
            r#"{"config":{"create_behaviour":"error-internal"}}"#,
        ),
        ("other", r#"{}"#),
    ] {
        let made = cli(
            &admin,
            OPERATOR,
            &[
                "admin",
                "merchants",
                "create",
                id,
                "--access-key",
                KEY,
                "--settings",
                settings,
            ],
        );
        succeeded(&made);
    }
    let token = succeeded(&cli(
        &admin,
        OPERATOR,
        &["admin", "tokens", "create", "acme"],
    ));
    let token = token["token"].as_str().expect("a token").to_string();
    let upload = |name: &str, activate: bool| {
        let file = plugin(name);
        let mut args = vec!["plugin", "upload", file.as_str(), "--merchant", "acme"];
        if activate {
            args.push("--activate");
        }
        succeeded(&cli(&admin, &token, &args))
    };
    upload("misbehave", true);

    // A create fails (the plugin declines with an internal error).
    let order = format!("CS{}", marketplace::random_token(12));
    let answer = callback(&client, &gateway.url, "acme", &new_instance(&order)).await;
    assert_eq!(code(&answer), "000005", "{answer}");

    // Found by order id, with the merchant's own token.
    let search = [
        "admin",
        "callbacks",
        "--merchant",
        "acme",
        "--order-id",
        order.as_str(),
    ];
    let found = wait_for_records(&admin, &token, &search, 1);
    assert_eq!(
        found.len(),
        1,
        "{found:?} all: {:?} log: {}",
        records(&cli(
            &admin,
            &token,
            &["admin", "callbacks", "--merchant", "acme"]
        )),
        gateway.log()
    );
    let failed = &found[0];
    let expected_instance = ids::instance_id("acme", &order, Some(&format!("{order}-000001")));
    assert_eq!(failed["result_code"], "000005");
    assert_eq!(failed["activity"], "newInstance");
    assert_eq!(failed["path"], "retryable", "ran and failed transiently");
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["order_id"], order.as_str());
    assert_eq!(failed["instance_id"], expected_instance.as_str());
    assert_eq!(failed["plugin_sha256"].as_str().map(str::len), Some(64));
    let key = failed["idempotency_key"]
        .as_str()
        .expect("the operation's key")
        .to_string();
    let full = succeeded(&cli(
        &admin,
        &token,
        &[
            "admin",
            "callback",
            "--merchant",
            "acme",
            &failed["seq"].to_string(),
        ],
    ));
    assert!(
        full["plugin_logs"].to_string().contains("executing"),
        "{full}"
    );
    assert_eq!(
        full["request"]["request"]["order_id"],
        order.as_str(),
        "{full}"
    );

    // Scoped: not another merchant's records.
    let refused = cli(
        &admin,
        &token,
        &["admin", "callbacks", "--merchant", "other"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));

    // The fix: a version that answers, then the re-drive.
    upload("reference", true);
    let redriven = succeeded(&cli(
        &admin,
        &token,
        &["admin", "redrive", "--merchant", "acme", "--key", &key],
    ));
    assert_eq!(redriven["result_code"], "000000", "{redriven}");
    assert_eq!(redriven["status"], "succeeded");
    assert_eq!(redriven["attempt"], 2, "a higher attempt");
    let again = cli(
        &admin,
        &token,
        &["admin", "redrive", "--merchant", "acme", "--key", &key],
    );
    assert_eq!(
        again.status.code(),
        Some(2),
        "a final answer is not re-driven unforced"
    );
    let retry = callback(&client, &gateway.url, "acme", &new_instance(&order)).await;
    assert_eq!(code(&retry), "000000", "{retry}");
    assert_eq!(retry["instanceId"], expected_instance.as_str());

    // Traffic on the fixed version: creates and renewals.
    let mut instances = Vec::new();
    for _ in 0..3 {
        let order = format!("CS{}", marketplace::random_token(12));
        let answer = callback(&client, &gateway.url, "acme", &new_instance(&order)).await;
        assert_eq!(code(&answer), "000000", "{answer}");
        instances.push(
            answer["instanceId"]
                .as_str()
                .expect("an instance")
                .to_string(),
        );
    }
    for instance in &instances[..2] {
        let renew = json!({"activity": "refreshInstance", "instanceId": instance,
            "orderId": format!("CS{}", marketplace::random_token(12)), "orderLineId": "L-1",
            "scene": "RENEWAL", "expireTime": "20301231235959", "businessId": marketplace::random_nonce()});
        let answer = callback(&client, &gateway.url, "acme", &renew).await;
        assert_eq!(code(&answer), "000000", "{answer}");
    }

    // A version that breaks renewals, uploaded but not activated.
    let settings = r#"{"config":{"renew_behaviour":"error-internal"}}"#;
    succeeded(&cli(
        &admin,
        &token,
        &[
            "admin",
            "merchants",
            "update",
            "acme",
            "--settings",
            settings,
        ],
    ));
    let candidate = upload("misbehave", false);
    let version = candidate["version"].to_string();
    let renewals = [
        "admin",
        "callbacks",
        "--merchant",
        "acme",
        "--activity",
        "refreshInstance",
    ];
    let logged = wait_for_records(&admin, &token, &renewals, 2);
    assert_eq!(logged.len(), 2);
    let shadow = cli(
        &admin,
        &token,
        &["plugin", "shadow", &version, "--merchant", "acme"],
    );
    assert_eq!(
        shadow.status.code(),
        Some(4),
        "regressions exit 4: {}",
        stdout(&shadow)
    );
    let report: Value = serde_json::from_slice(&shadow.stdout).expect("the report");
    let regressions: Vec<i64> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|row| row["regression"] == true)
        .filter_map(|row| row["seq"].as_i64())
        .collect();
    let mut renewal_seqs: Vec<i64> = logged.iter().filter_map(|r| r["seq"].as_i64()).collect();
    renewal_seqs.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(regressions, renewal_seqs, "exactly the renewals: {report}");
    assert_eq!(report["regressions"], 2);
    // Nothing live changed: the active version still answers renewals.
    let renew = json!({"activity": "refreshInstance", "instanceId": instances[2],
        "orderId": format!("CS{}", marketplace::random_token(12)), "orderLineId": "L-1",
        "scene": "RENEWAL", "expireTime": "20301231235959", "businessId": marketplace::random_nonce()});
    assert_eq!(
        code(&callback(&client, &gateway.url, "acme", &renew).await),
        "000000"
    );
}
