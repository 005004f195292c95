//! Idempotency against real processes, a real SQLite file and the real
//! misbehave plugin (which logs every execution with its idempotency key
//! and attempt): a duplicate storm, SIGKILL in the middle of a plugin call,
//! a client that hangs up mid-call, and a nonce replayed across a restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koogallery_protocol::ids;
use koogallery_protocol::marketplace;
use koogallery_protocol::time::now_ms;
use serde_json::{Value, json};
use test_support::callbacks::{self, code, post, until_taken_over};
use test_support::process::{GatewayProcess, executions, store_number};

const KEY: &str = "durability-test-key";
const MERCHANT: &str = "slow";

/// A configuration on its own data directory, kept across restarts.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugin = test_support::plugin_path("misbehave");
        let text = format!(
            r#"
            listen = "127.0.0.1:0"
            data_dir = "data"
            answer_budget_ms = 2500
            shutdown_grace_secs = 5
            [store]
            lease_ms = 3000
            [[merchants]]
            id = "{MERCHANT}"
            access_keys = ["{KEY}"]
            plugin = "{plugin}"
            deadline_ms = 1500
            "#,
            plugin = plugin.display(),
        );
        std::fs::write(dir.path().join("gateway.toml"), text).expect("write the configuration");
        Site { dir }
    }

    fn start(&self) -> GatewayProcess {
        GatewayProcess::start(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &self.dir.path().join("gateway.toml"),
            &self.dir.path().join("gateway.log"),
        )
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data/gateway.db")
    }
}

fn new_instance(order_id: &str) -> Value {
    json!({"activity": "newInstance", "orderId": order_id,
           "orderLineId": format!("{order_id}-1"), "businessId": marketplace::random_nonce()})
}

fn assigned_id(order_id: &str) -> String {
    ids::instance_id(MERCHANT, order_id, Some(&format!("{order_id}-1")))
}

/// A signed V2 request: the URL (with its own nonce and timestamp) and body.
fn signed(base: &str, body: &Value, timestamp_ms: i64) -> (String, Vec<u8>) {
    callbacks::signed_v2_at(base, MERCHANT, KEY, body, timestamp_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_two_hundred_duplicates_runs_the_plugin_once() {
    let site = Site::new();
    let mut gateway = site.start();
    let order_id = format!("slow-700-{}", marketplace::random_token(12));
    let client = reqwest::Client::new();
    let storm = (0..200).map(|i| {
        // Each retry has its own businessId, nonce, timestamp and signature.
        let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms() - i * 7);
        let client = client.clone();
        tokio::spawn(async move { post(&client, &url, body).await })
    });
    let mut answers = Vec::new();
    for reply in storm.collect::<Vec<_>>() {
        answers.push(reply.await.expect("the request task"));
    }
    let codes: BTreeSet<&str> = answers.iter().map(code).collect();
    assert_eq!(codes, BTreeSet::from(["000000"]), "{answers:?}");
    let instance_ids: BTreeSet<&str> = answers
        .iter()
        .filter_map(|a| a["instanceId"].as_str())
        .collect();
    let expected = assigned_id(&order_id);
    assert_eq!(instance_ids, BTreeSet::from([expected.as_str()]));

    assert!(gateway.sigterm().success());
    let ran = executions(&gateway.log(), &order_id);
    assert_eq!(ran.len(), 1, "exactly one plugin execution: {ran:?}");
    assert_eq!(ran[0].attempt, 1);
    let db = site.database();
    let instances = "SELECT COUNT(*) FROM instances WHERE order_id = $1";
    assert_eq!(store_number(&db, instances, &order_id).await, 1);
    let operations = "SELECT COUNT(*) FROM operations WHERE instance_id = $1";
    assert_eq!(store_number(&db, operations, &expected).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_call_then_a_retry_after_restart_reuses_the_instance_and_the_key() {
    let site = Site::new();
    let mut gateway = site.start();
    let order_id = format!("slow-1000-{}", marketplace::random_token(12));
    let client = reqwest::Client::new();
    let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms());
    let doomed = tokio::spawn({
        let client = client.clone();
        async move { client.post(&url).body(body).send().await }
    });
    gateway.wait_for_log(&["executing", &order_id], Duration::from_secs(10));
    gateway.sigkill();
    assert!(
        doomed.await.expect("the request task").is_err(),
        "the killed gateway never answered"
    );

    let gateway = site.start();
    let answer = until_taken_over(async || {
        let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms());
        post(&client, &url, body).await
    })
    .await;
    assert_eq!(answer["instanceId"], assigned_id(&order_id).as_str());

    let ran = executions(&gateway.log(), &order_id);
    assert_eq!(ran.len(), 2, "the killed attempt and the takeover: {ran:?}");
    assert_eq!(ran[0].idempotency_key, ran[1].idempotency_key);
    assert!(ran[0].idempotency_key.starts_with("kg-"));
    assert_eq!((ran[0].attempt, ran[1].attempt), (1, 2), "the fence moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_call_leaves_the_work_done_and_replayed() {
    let site = Site::new();
    let gateway = site.start();
    let order_id = format!("slow-800-{}", marketplace::random_token(12));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .expect("a client");
    let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms());
    assert!(impatient.post(&url).body(body).send().await.is_err());

    // Nobody is waiting any more; the work finishes and is recorded anyway.
    let expected = assigned_id(&order_id);
    let succeeded =
        "SELECT COUNT(*) FROM operations WHERE instance_id = $1 AND status = 'succeeded'";
    let started = Instant::now();
    while store_number(&site.database(), succeeded, &expected).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::new();
    let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms());
    let answer = post(&client, &url, body).await;
    assert_eq!(code(&answer), "000000", "{answer}");
    assert_eq!(answer["instanceId"], expected.as_str());
    let ran = executions(&gateway.log(), &order_id);
    assert_eq!(ran.len(), 1, "replayed, not re-run: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_is_refused_after_a_restart_and_the_order_replayed() {
    let site = Site::new();
    let mut gateway = site.start();
    let order_id = format!("plain-{}", marketplace::random_token(12));
    let client = reqwest::Client::new();
    let (url, body) = signed(&gateway.url, &new_instance(&order_id), now_ms());
    let first = post(&client, &url, body.clone()).await;
    assert_eq!(code(&first), "000000", "{first}");
    assert!(gateway.sigterm().success());

    let restarted = site.start();
    // The same port is not guaranteed: replay the same query on the new one.
    let query = url
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let replayed_url = format!("{}/callbacks/{MERCHANT}?{query}", restarted.url);
    let replay = post(&client, &replayed_url, body).await;
    assert_eq!(
        code(&replay),
        "000001",
        "a captured request replayed: {replay}"
    );

    let (url, body) = signed(&restarted.url, &new_instance(&order_id), now_ms());
    let retry = post(&client, &url, body).await;
    assert_eq!(code(&retry), "000000", "{retry}");
    assert_eq!(retry["instanceId"], first["instanceId"]);
    let ran = executions(&restarted.log(), &order_id);
    assert_eq!(
        ran.len(),
        1,
        "replayed from the store after the restart: {ran:?}"
    );
}
