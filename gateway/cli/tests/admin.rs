//! The merchant's path with the CLI alone against a running `gateway
//! serve` (the admin API issue's "done when"): the operator creates the
//! account and a merchant token; with that token the merchant uploads the
//! reference plugin and activates it, a signed callback is answered, a
//! broken module is refused with its reason, v2 is activated under a load
//! of callbacks with none failing, and a rollback brings v1 back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use koogallery_protocol::marketplace;
use serde_json::{Value, json};
use test_support::callbacks::{self, code, post};
use test_support::process::GatewayProcess;

const KEY: &str = "cli-admin-test-access-key";
const OPERATOR: &str = "cli-operator-token-0123456789abcdef";
/// How often a gateway asks the store for other processes' changes.
const FOLLOW_MS: u64 = 200;

fn write_config(dir: &Path) -> PathBuf {
    let token_file = dir.join("operator.token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).expect("write the token file");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         token_file = \"{}\"\n\n[store]\nfollow_changes_ms = {FOLLOW_MS}\n",
        token_file.display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// `gateway <command> --url <admin> --token <token> --output json`; the
/// command's words are separated by spaces.
fn cli(admin: &str, token: &str, command: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(command.split_whitespace())
        .args(["--url", admin, "--token", token, "--output", "json"])
        .env_remove("GATEWAY_ADMIN_TOKEN")
        .env_remove("GATEWAY_ADMIN_URL")
        .output()
        .expect("the CLI runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn succeeded(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    json_of(output)
}

fn plugin(name: &str) -> String {
    test_support::plugin_path(name).display().to_string()
}

fn front_end_url(answer: &Value) -> &str {
    answer["appInfo"]["frontEndUrl"].as_str().unwrap_or("")
}

async fn create(client: &reqwest::Client, base: &str) -> Value {
    let order = format!("CS{}", &marketplace::random_nonce()[..15]);
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    let (url, bytes) = callbacks::signed_v2(base, "acme", KEY, &body);
    post(client, &url, bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_goes_live_updates_under_load_and_rolls_back_with_the_cli_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path());
    let gateway = GatewayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_gateway")),
        &config,
        &dir.path().join("gateway.log"),
    );
    let admin = gateway.admin_url.clone().expect("an admin listener");
    let settings = r#"{"config":{"base_url":"https://acme.example.com"}}"#;

    // The operator: the account, and a token for the merchant.
    let create_merchant =
        format!("admin merchants create acme --access-key {KEY} --settings {settings}");
    let created = cli(&admin, OPERATOR, &create_merchant);
    assert_eq!(succeeded(&created)["id"], "acme");
    let token = succeeded(&cli(&admin, OPERATOR, "admin tokens create acme"));
    let token = token["token"]
        .as_str()
        .expect("the token, once")
        .to_string();

    // The merchant, with its own token from here on.
    let upload = |name: &str| format!("plugin upload {} --merchant acme", plugin(name));
    let v1 = succeeded(&cli(&admin, &token, &(upload("reference") + " --activate")));
    assert_eq!(
        (v1["version"].clone(), v1["active"].clone()),
        (json!(1), json!(true)),
        "{v1}"
    );
    let client = reqwest::Client::new();
    let answer = create(&client, &gateway.url).await;
    assert_eq!(code(&answer), "000000", "{answer}");
    assert!(
        answer["appInfo"]["frontEndUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://acme.example.com")),
        "{answer}"
    );

    let broken = cli(&admin, &token, &upload("wrong-world"));
    assert_eq!(broken.status.code(), Some(2), "a refusal is exit 2");
    // With `--output json` the refusal is the API's error document, on stdout.
    let refusal = json_of(&broken);
    assert_eq!(refusal["error"]["code"], "wrong_world", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("koogallery:plugin")),
        "the reason is clear: {refusal}"
    );

    let v2 = succeeded(&cli(&admin, &token, &upload("misbehave")));
    assert_eq!(
        (v2["version"].clone(), v2["active"].clone()),
        (json!(2), json!(false))
    );

    // Activate v2, then roll back, while callbacks keep coming.
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (client, base, stop) = (client.clone(), gateway.url.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                codes.push(code(&create(&client, &base).await).to_string());
            }
            codes
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let activated = succeeded(&cli(&admin, &token, "admin plugins activate acme 2"));
    assert_eq!(activated["active_version"], 2, "{activated}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = create(&client, &gateway.url).await;
    assert!(
        answer["appInfo"]["frontEndUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://misbehave.example.com")),
        "v2 answers now: {answer}"
    );
    let rolled_back = succeeded(&cli(&admin, &token, "admin plugins rollback acme"));
    assert_eq!(rolled_back["active_version"], 1, "{rolled_back}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for sender in senders {
        let codes = sender.await.expect("no sender failed");
        assert!(
            codes.iter().all(|c| c == "000000"),
            "a callback failed: {codes:?}"
        );
        answered += codes.len();
    }
    assert!(answered > 20, "the load was real: {answered} callbacks");
    let answer = create(&client, &gateway.url).await;
    assert!(
        answer["appInfo"]["frontEndUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://acme.example.com")),
        "v1 answers again: {answer}"
    );

    let listed = succeeded(&cli(&admin, OPERATOR, "admin merchants list"));
    assert_eq!(listed[0]["id"], "acme", "{listed}");
    assert_eq!(listed[0]["active_version"], 1, "{listed}");

    // The merchant's token is for its own merchant only; the audit shows
    // who did what.
    let other = cli(&admin, &token, "admin merchants show someone-else");
    assert_eq!(other.status.code(), Some(2));
    let audit = succeeded(&cli(&admin, OPERATOR, "admin audit --merchant acme"));
    let actions: Vec<&str> = audit
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["action"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        [
            "plugin.rollback",
            "plugin.activate",
            "plugin.upload",
            "merchant.create"
        ]
        .iter()
        .all(|a| actions.contains(a)),
        "{audit}"
    );

    // A gateway that is not there: exit 3.
    let unreachable = cli("http://127.0.0.1:9", &token, "admin plugins list acme");
    assert_eq!(unreachable.status.code(), Some(3));
}

/// Two `gateway serve` processes on one store: merchants created and
/// versions activated through one are served by the other within the
/// follow interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_store_serves_what_the_first_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path());
    let start = || {
        GatewayProcess::start(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &config,
            &dir.path().join("gateway.log"),
        )
    };
    let (first, second) = (start(), start());
    let admin = first.admin_url.clone().expect("an admin listener");
    let client = reqwest::Client::new();
    let settings = r#"{"config":{"base_url":"https://acme.example.com"}}"#;
    let create_merchant =
        format!("admin merchants create acme --access-key {KEY} --settings {settings}");
    succeeded(&cli(&admin, OPERATOR, &create_merchant));
    let upload = |name: &str| format!("plugin upload {} --merchant acme", plugin(name));
    succeeded(&cli(
        &admin,
        OPERATOR,
        &(upload("reference") + " --activate"),
    ));

    // Polls the second process until its answer comes from `url_prefix`.
    let served_by_second = |url_prefix: &'static str| {
        let (client, base) = (client.clone(), second.url.clone());
        async move {
            let started = std::time::Instant::now();
            loop {
                let answer = create(&client, &base).await;
                if code(&answer) == "000000" && front_end_url(&answer).starts_with(url_prefix) {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "the second process never served it: {answer}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let created_after = served_by_second("https://acme.example.com").await;
    succeeded(&cli(
        &admin,
        OPERATOR,
        &(upload("misbehave") + " --activate"),
    ));
    let activated_after = served_by_second("https://misbehave.example.com").await;
    let bound = std::time::Duration::from_millis(FOLLOW_MS * 5);
    assert!(
        created_after < bound && activated_after < bound,
        "within the follow interval and a load: {created_after:?}, {activated_after:?}"
    );
}
