//! Three `gateway serve` processes on one PostgreSQL database (a scratch
//! schema of the test's own), as replicas behind a load balancer: the
//! marketplace's guarantees hold across them exactly as within one.
//!
//! - a storm of 300 identical newInstance callbacks spread over the three
//!   runs the plugin once, and every answer carries the one instance id;
//! - a replica SIGKILLed mid-call: the others keep answering, and its
//!   claim is taken over (same idempotency key, the next attempt);
//! - a nonce accepted by one replica is refused by the others;
//! - a version activated through one replica serves on all within the
//!   documented bound (`store.follow_changes_ms` and a plugin load).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_store::test_support::ScratchSchema;
use koogallery_protocol::ids;
use koogallery_protocol::marketplace;
use koogallery_protocol::time::now_ms;
use serde_json::{Value, json};
use test_support::callbacks::{code, post, signed_v2, signed_v2_at, until_taken_over};
use test_support::process::{GatewayProcess, executions};

const KEY: &str = "replicas-test-access-key";
const OPERATOR: &str = "replicas-operator-token-0123456789abcdef";
/// How often each replica asks the store for the others' changes.
const FOLLOW_MS: u64 = 200;
const REPLICAS: usize = 3;

/// Three replicas' configurations: one database, one master key, a data
/// directory (compiled-plugin cache) and a log each.
struct Cluster {
    dir: tempfile::TempDir,
    schema: ScratchSchema,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let schema = ScratchSchema::create().await;
        let token_file = dir.path().join("operator.token");
        std::fs::write(&token_file, format!("{OPERATOR}\n")).expect("the token file");
        for replica in 0..REPLICAS {
            let text = format!(
                r#"
                listen = "127.0.0.1:0"
                data_dir = "data-{replica}"
                key_file = "{key_file}"
                answer_budget_ms = 2500
                shutdown_grace_secs = 2
                [admin]
                listen = "127.0.0.1:0"
                token_file = "{token_file}"
                [store]
                url = "{url}"
                # Several replicas of several tests share the server's 100
                # connections.
                max_connections = 6
                lease_ms = 3000
                follow_changes_ms = {FOLLOW_MS}
                [[merchants]]
                id = "slow"
                access_keys = ["{KEY}"]
                plugin = "{misbehave}"
                deadline_ms = 1500
                "#,
                key_file = dir.path().join("master.key").display(),
                token_file = token_file.display(),
                url = schema.url(),
                misbehave = test_support::plugin_path("misbehave").display(),
            );
            std::fs::write(Self::config_in(dir.path(), replica), text).expect("a configuration");
        }
        Cluster { dir, schema }
    }

    fn config_in(dir: &Path, replica: usize) -> PathBuf {
        dir.join(format!("gateway-{replica}.toml"))
    }

    fn start(&self, replica: usize) -> GatewayProcess {
        GatewayProcess::start(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &Self::config_in(self.dir.path(), replica),
            &self.dir.path().join(format!("gateway-{replica}.log")),
        )
    }

    /// All replicas, started one after the other (the first creates the
    /// master key and migrates; the others find both).
    fn start_all(&self) -> Vec<GatewayProcess> {
        (0..REPLICAS).map(|replica| self.start(replica)).collect()
    }
}

fn new_instance(order_id: &str) -> Value {
    json!({"activity": "newInstance", "orderId": order_id,
           "orderLineId": format!("{order_id}-1"), "businessId": marketplace::random_nonce()})
}

fn assigned_id(merchant: &str, order_id: &str) -> String {
    ids::instance_id(merchant, order_id, Some(&format!("{order_id}-1")))
}

/// Every replica's executions of the misbehave plugin on `order_id`.
fn executions_everywhere(replicas: &[GatewayProcess], order_id: &str) -> Vec<(usize, u32, String)> {
    replicas
        .iter()
        .enumerate()
        .flat_map(|(replica, gateway)| {
            executions(&gateway.log(), order_id)
                .into_iter()
                .map(move |ran| (replica, ran.attempt, ran.idempotency_key))
        })
        .collect()
}

/// Replicas started at the same moment on an empty database: one creates
/// the configured merchant, and none serves it as unavailable meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_together_bootstrap_the_merchant_once_and_all_serve_it() {
    let cluster = Cluster::new().await;
    let replicas: Vec<GatewayProcess> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..REPLICAS)
            .map(|replica| {
                let cluster = &cluster;
                scope.spawn(move || cluster.start(replica))
            })
            .collect();
        starting
            .into_iter()
            .map(|started| started.join().expect("a replica started"))
            .collect()
    });
    let client = reqwest::Client::new();
    for gateway in &replicas {
        let order = format!("plain-{}", marketplace::random_token(12));
        let (url, body) = signed_v2(&gateway.url, "slow", KEY, &new_instance(&order));
        let answer = post(&client, &url, body).await;
        assert_eq!(code(&answer), "000000", "{answer}");
        let log = gateway.log();
        assert!(
            !log.contains("merchant unavailable"),
            "served as unavailable while another replica bootstrapped it:\n{log}"
        );
    }
    let versions = cluster
        .schema
        .number(
            "SELECT COUNT(DISTINCT sha256) FROM plugin_versions WHERE merchant_id = $1",
            "slow",
        )
        .await;
    assert_eq!(versions, 1, "one module for the configured plugin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_across_three_replicas_runs_the_plugin_once() {
    let cluster = Cluster::new().await;
    let replicas = cluster.start_all();
    let order_id = format!("slow-500-{}", marketplace::random_token(12));
    let client = reqwest::Client::new();
    let storm = (0..300).map(|i| {
        // Each retry its own businessId, nonce, timestamp; spread round-robin.
        let base = &replicas[i % REPLICAS].url;
        let (url, body) = signed_v2_at(
            base,
            "slow",
            KEY,
            &new_instance(&order_id),
            now_ms() - i as i64 * 7,
        );
        let client = client.clone();
        tokio::spawn(async move { post(&client, &url, body).await })
    });
    let mut answers = Vec::new();
    for reply in storm.collect::<Vec<_>>() {
        answers.push(reply.await.expect("the request task"));
    }
    let mut codes = std::collections::BTreeMap::<&str, usize>::new();
    for answer in &answers {
        *codes.entry(code(answer)).or_default() += 1;
    }
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        ["000000"],
        "answers by code: {codes:?}"
    );
    let instance_ids: BTreeSet<&str> = answers
        .iter()
        .map(|a| a["instanceId"].as_str().unwrap_or("<none>"))
        .collect();
    let expected = assigned_id("slow", &order_id);
    assert_eq!(instance_ids, BTreeSet::from([expected.as_str()]));
    let ran = executions_everywhere(&replicas, &order_id);
    assert_eq!(ran.len(), 1, "one execution across the replicas: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_call_is_taken_over_while_the_others_answer() {
    let cluster = Cluster::new().await;
    let mut replicas = cluster.start_all();
    let client = reqwest::Client::new();
    let order_id = format!("slow-1200-{}", marketplace::random_token(12));
    let (url, body) = signed_v2(&replicas[0].url, "slow", KEY, &new_instance(&order_id));
    let doomed = tokio::spawn({
        let client = client.clone();
        async move { client.post(&url).body(body).send().await }
    });
    replicas[0].wait_for_log(&["executing", &order_id], Duration::from_secs(10));
    replicas[0].sigkill();
    assert!(
        doomed.await.expect("the task").is_err(),
        "the killed replica never answered"
    );

    // The survivors answer other orders at once.
    for gateway in &replicas[1..] {
        let other = format!("plain-{}", marketplace::random_token(12));
        let (url, body) = signed_v2(&gateway.url, "slow", KEY, &new_instance(&other));
        let answer = post(&client, &url, body).await;
        assert_eq!(code(&answer), "000000", "{answer}");
    }

    // The marketplace retries on a survivor: "in progress" until the dead
    // replica's lease passes, then a takeover answers with the same id.
    let answer = until_taken_over(async || {
        let (url, body) = signed_v2(&replicas[1].url, "slow", KEY, &new_instance(&order_id));
        post(&client, &url, body).await
    })
    .await;
    assert_eq!(
        answer["instanceId"],
        assigned_id("slow", &order_id).as_str()
    );
    let ran = executions_everywhere(&replicas, &order_id);
    let [(0, 1, first_key), (1, 2, second_key)] = &ran[..] else {
        panic!("attempt 1 on the killed replica, attempt 2 on the survivor: {ran:?}")
    };
    assert_eq!(first_key, second_key, "the same idempotency key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_accepted_by_one_replica_is_refused_by_the_others() {
    let cluster = Cluster::new().await;
    let replicas = cluster.start_all();
    let client = reqwest::Client::new();
    let order_id = format!("plain-{}", marketplace::random_token(12));
    let (url, body) = signed_v2(&replicas[0].url, "slow", KEY, &new_instance(&order_id));
    let first = post(&client, &url, body.clone()).await;
    assert_eq!(code(&first), "000000", "{first}");
    let query = url
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    for gateway in &replicas[1..] {
        let replayed = format!("{}/callbacks/slow?{query}", gateway.url);
        let answer = post(&client, &replayed, body.clone()).await;
        assert_eq!(
            code(&answer),
            "000001",
            "a captured request replayed: {answer}"
        );
    }
}

/// Posts to the admin API of `admin` as the operator.
async fn admin_post(
    client: &reqwest::Client,
    admin: &str,
    path: &str,
    body: reqwest::Body,
) -> Value {
    let response = client
        .post(format!("{admin}/admin/v1{path}"))
        .bearer_auth(OPERATOR)
        .body(body)
        .send()
        .await
        .expect("the admin API answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("the body");
    let answer: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_activated_through_one_replica_serves_on_all_within_the_bound() {
    let cluster = Cluster::new().await;
    let replicas = cluster.start_all();
    let admin = replicas[0].admin_url.clone().expect("an admin listener");
    let client = reqwest::Client::new();
    let merchant = json!({"id": "acme", "access_keys": [KEY],
        "settings": {"config": {"base_url": "https://acme.example.com"}}});
    let merchant = reqwest::Body::from(merchant.to_string());
    let created = client
        .post(format!("{admin}/admin/v1/merchants"))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body(merchant)
        .send()
        .await
        .expect("the admin API answers");
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let upload = |plugin: &str| reqwest::Body::from(test_support::plugin_bytes(plugin));
    admin_post(
        &client,
        &admin,
        "/merchants/acme/plugins?activate=true",
        upload("reference"),
    )
    .await;

    // How long until `gateway` answers acme's creates from `prefix`.
    let served = |gateway: &GatewayProcess, prefix: &'static str| {
        let (client, base) = (client.clone(), gateway.url.clone());
        async move {
            let started = Instant::now();
            loop {
                let order = format!("CS{}", marketplace::random_token(14));
                let (url, body) = signed_v2(&base, "acme", KEY, &new_instance(&order));
                let answer = post(&client, &url, body).await;
                let front_end = answer["appInfo"]["frontEndUrl"].as_str().unwrap_or("");
                if code(&answer) == "000000" && front_end.starts_with(prefix) {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "never served: {answer}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    for gateway in &replicas {
        served(gateway, "https://acme.example.com").await;
    }
    admin_post(
        &client,
        &admin,
        "/merchants/acme/plugins?activate=true",
        upload("misbehave"),
    )
    .await;
    let bound = Duration::from_millis(FOLLOW_MS * 5);
    for gateway in &replicas[1..] {
        let after = served(gateway, "https://misbehave.example.com").await;
        assert!(
            after < bound,
            "served {after:?} after the activation (bound {bound:?})"
        );
    }
}

/// A TCP proxy between the gateway and PostgreSQL that the test can cut:
/// every open connection dropped and new ones closed on arrival, until it
/// is restored — the database gone, as the gateway sees it.
struct CuttableProxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl CuttableProxy {
    async fn start(upstream: &'static str) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue; // dropped: closed on arrival
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        CuttableProxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_retryable_and_heals_by_itself() {
    let cluster = Cluster::new().await;
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    // Replica 0's configuration, pointed at the database through the proxy.
    let config = Cluster::config_in(cluster.dir.path(), 0);
    let direct = cluster.schema.url();
    let through_proxy = direct.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        direct, through_proxy,
        "the test database is at 127.0.0.1:5432"
    );
    let text = std::fs::read_to_string(&config).expect("the configuration");
    std::fs::write(&config, text.replace(&direct, &through_proxy)).expect("rewritten");
    let gateway = cluster.start(0);
    let client = reqwest::Client::new();
    let ready = |client: reqwest::Client, base: String| async move {
        let response = client.get(format!("{base}/readyz")).send().await;
        response.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(ready(client.clone(), gateway.url.clone()).await, 200);

    // Creates of fresh orders, one after another, during all that follows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (client, base, stop) = (client.clone(), gateway.url.clone(), stop.clone());
        async move {
            let mut answered = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let order = format!("plain-{}", marketplace::random_token(12));
                let (url, body) = signed_v2(&base, "slow", KEY, &new_instance(&order));
                let answer = post(&client, &url, body).await;
                answered.push((order, code(&answer).to_string()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answered
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_cut(true);
    let started = Instant::now();
    while ready(client.clone(), gateway.url.clone()).await != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_cut(false);
    let started = Instant::now();
    while ready(client.clone(), gateway.url.clone()).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = load.await.expect("the load task");

    let codes: BTreeSet<&str> = answered.iter().map(|(_, code)| code.as_str()).collect();
    assert_eq!(codes, BTreeSet::from(["000000", "000005"]), "{answered:?}");
    let last = answered.last().map(|(_, code)| code.as_str());
    assert_eq!(last, Some("000000"), "healed by itself: {answered:?}");
    // Never a success that the database does not hold.
    let succeeded = "SELECT COUNT(*) FROM operations o JOIN instances i \
         ON i.merchant_id = o.merchant_id AND i.instance_id = o.instance_id \
         WHERE i.order_id = $1 AND o.status = 'succeeded'";
    for (order, code) in &answered {
        if code == "000000" {
            assert_eq!(cluster.schema.number(succeeded, order).await, 1, "{order}");
        }
    }
}
