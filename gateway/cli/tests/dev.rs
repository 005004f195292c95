//! `gateway dev`: a plugin served as a local merchant answers a signed
//! callback at once; a broken build keeps the previous version serving and
//! says why; a good build is reloaded and answers the next callback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use koogallery_protocol::marketplace;
use serde_json::{Value, json};
use test_support::callbacks::{self, code, post};

const KEY: &str = "dev-test-access-key";

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Dev {
    /// Waits for a line of standard output containing `needle`.
    fn line_with(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no line with `{needle}`"),
            }
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create(client: &reqwest::Client, base: &str) -> Value {
    let order = format!("CS{}", marketplace::random_token(12));
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    let (url, bytes) = callbacks::signed_v2(base, "dev", KEY, &body);
    post(client, &url, bytes).await
}

/// Replaces the watched file's content in one step (as a build does).
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, bytes).expect("stage the build");
    std::fs::rename(&staged, path).expect("replace the build");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_plugin_is_reloaded_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().expect("a directory");
    let wasm = dir.path().join("plugin.wasm");
    std::fs::write(&wasm, test_support::plugin_bytes("reference")).expect("the plugin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["dev", "--listen", "127.0.0.1:0", "--access-key", KEY])
        .arg(&wasm)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let dev = Dev { child, lines };
    let serving = dev.line_with("serving");
    let base = serving
        .split(" on ")
        .nth(1)
        .and_then(|url| url.strip_suffix("/callbacks/dev"))
        .expect("the URL")
        .to_string();
    assert!(
        dev.line_with("try:")
            .contains("gateway simulate newInstance")
    );
    let client = reqwest::Client::new();
    let answer = create(&client, &base).await;
    assert_eq!(code(&answer), "000000", "{answer}");
    assert!(
        answer["appInfo"]["frontEndUrl"].is_string(),
        "the reference plugin: {answer}"
    );

    replace(&wasm, b"not a component");
    assert!(dev.line_with("!").contains("does not load"));
    let answer = create(&client, &base).await;
    assert_eq!(
        code(&answer),
        "000000",
        "the previous version still serves: {answer}"
    );

    replace(&wasm, &test_support::plugin_bytes("contract-0-1-0"));
    dev.line_with("reloaded");
    let answer = create(&client, &base).await;
    assert_eq!(code(&answer), "000000", "{answer}");
    assert_eq!(
        answer["appInfo"]["memo"], "built against 0.1.0; plan basic",
        "{answer}"
    );
}
