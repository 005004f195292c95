//! A real `gateway serve` with two merchants side by side: `good` runs the
//! reference plugin, `evil` the misbehave plugin (it loops, sleeps, bombs
//! memory, floods its output… as its order id says). Shared by the tests
//! that attack one merchant and watch the other.

pub mod fairness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koogallery_protocol::marketplace;
use serde_json::json;
use test_support::callbacks::{code, post, signed_v2};
use test_support::process::GatewayProcess;

/// Both merchants' access key.
pub const KEY: &str = "hardening-test-key";

/// Starts the gateway in `dir`; `extra` is spliced into the configuration's
/// top level (before any table).
pub fn start(dir: &tempfile::TempDir, extra: &str) -> GatewayProcess {
    start_with(dir, extra, "")
}

/// [`start`], with `evil` spliced into the hostile merchant's table.
pub fn start_with(dir: &tempfile::TempDir, extra: &str, evil: &str) -> GatewayProcess {
    let config = write_config(dir.path(), extra, evil);
    GatewayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_gateway")),
        &config,
        &dir.path().join("gateway.log"),
    )
}

/// Writes the configuration into `dir` (see [`start_with`]).
pub fn write_config(dir: &Path, extra: &str, evil: &str) -> PathBuf {
    let plugin = |name: &str| test_support::plugin_path(name).display().to_string();
    let text = format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "data"
        shutdown_grace_secs = 2
        {extra}
        [admin]
        listen = "127.0.0.1:0"
        [[merchants]]
        id = "good"
        access_keys = ["{KEY}"]
        plugin = "{reference}"

        [[merchants]]
        id = "evil"
        access_keys = ["{KEY}"]
        plugin = "{misbehave}"
        deadline_ms = 1000
        {evil}
        "#,
        reference = plugin("reference"),
        misbehave = plugin("misbehave"),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// A newInstance body for `order` (the misbehave plugin reads its
/// behaviour from the order id).
pub fn create(order: &str) -> serde_json::Value {
    json!({"activity": "newInstance", "orderId": order, "orderLineId": format!("{order}-1")})
}

/// A fresh order id.
pub fn order() -> String {
    format!("CS{}", marketplace::random_token(14))
}

/// How long one signed create of a fresh order to `merchant` takes, and its
/// code.
pub async fn timed_create(
    client: &reqwest::Client,
    base: &str,
    merchant: &str,
) -> (Duration, String) {
    let (url, body) = signed_v2(base, merchant, KEY, &create(&order()));
    let started = Instant::now();
    let answer = post(client, &url, body).await;
    (started.elapsed(), code(&answer).to_string())
}
