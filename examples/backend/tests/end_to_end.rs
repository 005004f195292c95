//! The example plugin against the example backend, as a merchant runs them:
//! `gateway serve` and `merchant-backend` as real processes, signed
//! marketplace callbacks over HTTP, the plugin provisioning tenants through
//! outbound HTTP with its token from a secret. The backend's own records
//! prove that an order line gets exactly one tenant under duplicate retries
//! and a SIGKILL of the gateway mid-call, and that renewal, freeze,
//! unfreeze and release reach it. The gateway's log and metrics are
//! searched for the secret token.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use koogallery_protocol::marketplace;
use koogallery_protocol::time::now_ms;
use serde_json::{Value, json};
use test_support::callbacks::{code, post, signed_v2_at, until_taken_over};
use test_support::process::GatewayProcess;

const KEY: &str = "example-backend-test-key";
const MERCHANT: &str = "tenants";
const TOKEN: &str = "backend-token-7d0e5b2a9c";

/// `merchant-backend` as a child process, killed on drop.
struct Backend {
    child: Child,
    url: String,
}

impl Backend {
    fn start(db: &Path, create_delay_ms: u64) -> Backend {
        let mut child = Command::new(env!("CARGO_BIN_EXE_merchant-backend"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--token",
                TOKEN,
                "--create-delay-ms",
            ])
            .arg(create_delay_ms.to_string())
            .arg("--db")
            .arg(db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the backend starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the backend says where it listens");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(url.starts_with("http://"), "unexpected first line {line:?}");
        Backend { child, url }
    }

    /// The backend's tenants of `instance_id`.
    async fn tenants(&self, instance_id: &str) -> Vec<Value> {
        let bytes = reqwest::Client::new()
            .get(format!("{}/tenants?instance_id={instance_id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the backend answers")
            .bytes()
            .await
            .expect("a body");
        let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
        answer["tenants"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway binary, built by the same `cargo test --workspace`.
fn gateway_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/debug");
    let binary = dir.join("gateway");
    assert!(
        binary.exists(),
        "build the gateway first (cargo build -p gateway-cli): {}",
        binary.display()
    );
    binary
}

fn write_config(dir: &Path, backend: &str) -> PathBuf {
    let plugin = test_support::plugin_path("tenant-provisioner");
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "data"
        answer_budget_ms = 3000
        [admin]
        listen = "127.0.0.1:0"
        [store]
        lease_ms = 4000
        [[merchants]]
        id = "{MERCHANT}"
        access_keys = ["{KEY}"]
        plugin = "{plugin}"
        deadline_ms = 2000
        allowed_outbound_hosts = ["{backend}"]
        allow_private_networks = true
        [merchants.config]
        backend_url = "{backend}"
        [merchants.secrets]
        backend_token = "{TOKEN}"
        "#,
        plugin = plugin.display(),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("the configuration");
    path
}

async fn callback(client: &reqwest::Client, gateway: &GatewayProcess, body: &Value) -> Value {
    let (url, bytes) = signed_v2_at(&gateway.url, MERCHANT, KEY, body, now_ms());
    post(client, &url, bytes).await
}

fn new_instance(order_id: &str) -> Value {
    json!({"activity": "newInstance", "businessId": marketplace::random_nonce(),
        "orderInfo": [{"orderId": order_id, "orderLineId": format!("{order_id}-1"),
            "chargingMode": "PERIOD", "expireTime": "20991231000000",
            "productInfo": [{"skuCode": "gold", "productId": "P-1"}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_order_provisions_exactly_one_tenant_through_retries_and_a_crash() {
    let dir = tempfile::tempdir().expect("a directory");
    let backend = Backend::start(&dir.path().join("backend.db"), 1000);
    let config = write_config(dir.path(), &backend.url);
    let log = dir.path().join("gateway.log");
    let client = reqwest::Client::new();

    // Duplicate retries of one order line, all at once.
    let mut gateway = GatewayProcess::start(&gateway_binary(), &config, &log);
    let order = format!("CS{}", marketplace::random_token(12));
    let storm: Vec<_> = (0..6)
        .map(|_| {
            let (client, body) = (client.clone(), new_instance(&order));
            let (url, bytes) = signed_v2_at(&gateway.url, MERCHANT, KEY, &body, now_ms());
            tokio::spawn(async move { post(&client, &url, bytes).await })
        })
        .collect();
    let mut instance = None;
    for reply in storm {
        let answer = reply.await.expect("the request task");
        assert!(["000000", "000004"].contains(&code(&answer)), "{answer}");
        if code(&answer) == "000000" {
            instance = answer["instanceId"].as_str().map(str::to_string);
        }
    }
    let instance = instance.expect("one of the duplicates was answered 000000");
    let tenants = backend.tenants(&instance).await;
    assert_eq!(tenants.len(), 1, "one tenant: {tenants:?}");
    assert_eq!(tenants[0]["plan"], "gold");

    // A crash mid-call: the backend finishes the tenant, the gateway never
    // answers; after a restart the marketplace's retry is re-executed with
    // the same idempotency key and finds that tenant.
    let order = format!("CS{}", marketplace::random_token(12));
    let doomed = {
        let (url, bytes) =
            signed_v2_at(&gateway.url, MERCHANT, KEY, &new_instance(&order), now_ms());
        let client = client.clone();
        tokio::spawn(async move { client.post(&url).body(bytes).send().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.sigkill();
    assert!(
        doomed.await.expect("the task").is_err(),
        "the killed gateway never answered"
    );
    let gateway = GatewayProcess::start(&gateway_binary(), &config, &log);
    let answer =
        until_taken_over(async || callback(&client, &gateway, &new_instance(&order)).await).await;
    let crashed = answer["instanceId"]
        .as_str()
        .expect("an instance")
        .to_string();
    let tenants = backend.tenants(&crashed).await;
    assert_eq!(
        tenants.len(),
        1,
        "one tenant despite the crash: {tenants:?}"
    );

    // The rest of the tenant's life reaches the backend.
    let lifecycle = [
        (
            json!({"activity": "refreshInstance", "instanceId": instance, "orderId": format!("{order}-R"),
            "orderLineId": format!("{order}-R-1"), "scene": "RENEWAL", "expireTime": "20991231000000"}),
            "active",
        ),
        (
            json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "FREEZE"}),
            "frozen",
        ),
        (
            json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "UNFREEZE"}),
            "active",
        ),
        (
            json!({"activity": "releaseInstance", "instanceId": instance}),
            "deleted",
        ),
    ];
    for (mut body, status) in lifecycle {
        body["businessId"] = json!(marketplace::random_nonce());
        let answer = callback(&client, &gateway, &body).await;
        assert_eq!(code(&answer), "000000", "{body}: {answer}");
        let tenants = backend.tenants(&instance).await;
        assert_eq!(tenants[0]["status"], status, "{body}: {tenants:?}");
    }
    assert_eq!(
        backend.tenants(&instance).await[0]["expire_at"],
        4102358400i64
    );

    // The token went to the backend and nowhere else.
    let metrics = reqwest::get(format!(
        "{}/metrics",
        gateway.admin_url.as_deref().expect("admin")
    ))
    .await
    .expect("metrics")
    .text()
    .await
    .expect("text");
    assert!(
        metrics.contains("gateway_outbound_requests_total{merchant=\"tenants\",reason=\"ok\"}"),
        "{metrics}"
    );
    drop(gateway);
    let logged = std::fs::read_to_string(&log).expect("the gateway's log");
    assert!(
        logged.contains("outbound request"),
        "outbound requests are logged"
    );
    for (what, text) in [("log", &logged), ("metrics", &metrics)] {
        assert!(
            !text.contains(TOKEN),
            "the secret is in the gateway's {what}"
        );
    }
}
