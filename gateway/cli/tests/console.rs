//! The merchant console in a real browser: headless Chromium (Debian's,
//! driven through ChromeDriver) against a real `gateway serve`.
//!
//! A merchant signs in with its token, uploads a broken module and sees the
//! refusal, uploads the reference plugin and activates it, sends a signed
//! callback and finds it in the list; a failing version makes a create
//! fail, the good version is activated again, the failed callback is
//! re-driven from its page and answers 000000. The merchant's token cannot
//! reach another merchant's pages; the language switches to Chinese; the
//! cookie and headers are what the console promises. A screenshot of each
//! page is kept in `target/console-screenshots/`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use koogallery_protocol::marketplace;
use serde_json::{Value, json};
use test_support::callbacks::{code, post, signed_v2};
use test_support::process::GatewayProcess;

const KEY: &str = "console-test-access-key";
const OPERATOR: &str = "console-operator-token-0123456789abcdef";

/// A `gateway serve` in `dir` with an admin listener and the operator
/// token; the process and its admin URL.
fn start_gateway(dir: &tempfile::TempDir) -> (GatewayProcess, String) {
    let token_file = dir.path().join("operator.token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).expect("the token file");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         token_file = \"{}\"\n",
        token_file.display()
    );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).expect("the configuration");
    let gateway = GatewayProcess::start(
        Path::new(env!("CARGO_BIN_EXE_gateway")),
        &config,
        &dir.path().join("gateway.log"),
    );
    let admin = gateway.admin_url.clone().expect("an admin listener");
    (gateway, admin)
}

/// ChromeDriver on a port of its own, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/browser installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "chromedriver never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    // fantoccini's client is built with rustls, which needs a provider
    // chosen for the process (ring, as everywhere in the gateway).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,800", "--lang=en-US"],
            "prefs": {"intl.accept_languages": "en-US,en"},
        }),
    );
    ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Saves a screenshot of the page as `name`.png (a test artefact).
async fn screenshot(client: &Client, name: &str) {
    let dir = test_support::repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("saved");
}

async fn text_of(client: &Client, css: &str) -> String {
    text_when(client, css, |_| true).await
}

/// The text of the first `css` element once `wanted` accepts it. A click
/// that submits a form returns before the next page is there: the element
/// found may be the old page's, or go stale while it is read; both are
/// looked for again, for up to ten seconds.
async fn text_when(client: &Client, css: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        let found = client
            .wait()
            .at_most(deadline.saturating_duration_since(Instant::now()))
            .for_element(Locator::Css(css))
            .await;
        if let Ok(element) = found {
            match element.text().await {
                Ok(text) if wanted(&text) => return text,
                Ok(text) => last = Some(text),
                Err(_stale) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let source = client.source().await.unwrap_or_default();
    panic!("`{css}` read {last:?}, not what was wanted, on:\n{source}")
}

/// Waits for the page whose heading is `title`.
async fn expect_heading(client: &Client, title: &str) {
    text_when(client, "h1", |text| text == title).await;
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
}

/// Loads `url` again until it shows a `css` element: the callback log is
/// written behind the answer, so a callback is listed a moment later.
async fn reload_until_listed(client: &Client, url: &str, css: &str) {
    let started = Instant::now();
    loop {
        client.goto(url).await.expect("the callbacks page");
        if client.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "`{css}` never listed at {url}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Uploads `file` on the versions page, optionally activating it; returns
/// the notice the page shows.
async fn upload(client: &Client, admin: &str, file: &Path, activate: bool) -> String {
    client
        .goto(&format!("{admin}/console/m/acme/versions"))
        .await
        .expect("the versions page");
    let input = client
        .find(Locator::Css("input#module"))
        .await
        .expect("the file input");
    let file = file.canonicalize().expect("the file exists");
    input
        .send_keys(&file.display().to_string())
        .await
        .expect("the file chosen");
    if activate {
        click(client, "input[name=activate]").await;
    }
    click(client, "form[data-upload] button[type=submit]").await;
    text_of(client, ".notice").await
}

async fn admin_api(client: &reqwest::Client, admin: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{admin}/admin/v1{path}"))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the admin API answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON")
}

fn new_instance(order: &str) -> Value {
    json!({"activity": "newInstance", "orderId": order, "orderLineId": format!("{order}-1"),
           "businessId": marketplace::random_nonce()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_delivers_finds_a_failure_and_redrives_it_in_the_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (gateway, admin) = start_gateway(&dir);
    let http = reqwest::Client::new();
    // The operator's part: two merchants, a token for one. The misbehave
    // plugin fails acme's creates (its configuration says so); the
    // reference plugin ignores that setting.
    for id in ["acme", "other"] {
        let settings = json!({"config": {"create_behaviour": "error-internal",
                                         "base_url": "https://acme.example.com"}});
        admin_api(
            &http,
            &admin,
            "/merchants",
            json!({"id": id, "access_keys": [KEY], "settings": settings}),
        )
        .await;
    }
    let token = admin_api(&http, &admin, "/merchants/acme/tokens", json!({})).await;
    let token = token["token"].as_str().expect("a token").to_string();

    let driver = Driver::start();
    let client = browser(&driver).await;

    // Sign in with the merchant's token: its overview.
    client
        .goto(&format!("{admin}/console/login"))
        .await
        .expect("the sign-in page");
    screenshot(&client, "01-sign-in").await;
    client
        .find(Locator::Css("input#token"))
        .await
        .expect("the token field")
        .send_keys(&token)
        .await
        .expect("typed");
    click(&client, "form button[type=submit]").await;
    expect_heading(&client, "Overview").await;
    assert!(
        client
            .current_url()
            .await
            .expect("a URL")
            .path()
            .ends_with("/console/m/acme")
    );

    // A broken module is refused, with the reason shown inline.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"this is not a component").expect("written");
    let refusal = upload(&client, &admin, &broken, false).await;
    assert!(refusal.contains("not_wasm"), "{refusal}");
    screenshot(&client, "02-versions-refused").await;

    // The good one, activated at upload.
    let accepted = upload(
        &client,
        &admin,
        &test_support::plugin_path("reference"),
        true,
    )
    .await;
    assert!(accepted.contains("v1"), "{accepted}");
    assert!(accepted.contains("active"), "{accepted}");

    // A signed callback, found in the list by its order id.
    let order = format!("CS{}", marketplace::random_token(12));
    let (url, body) = signed_v2(&gateway.url, "acme", KEY, &new_instance(&order));
    assert_eq!(code(&post(&http, &url, body).await), "000000");
    let list = format!("{admin}/console/m/acme/callbacks?order_id={order}");
    reload_until_listed(&client, &list, "table.callbacks tbody tr").await;
    assert!(
        text_of(&client, "table.callbacks tbody")
            .await
            .contains("000000")
    );

    // A failing version: a create fails (000005).
    let failing = upload(
        &client,
        &admin,
        &test_support::plugin_path("misbehave"),
        true,
    )
    .await;
    assert!(failing.contains("v2"), "{failing}");
    let failed_order = format!("CS{}", marketplace::random_token(12));
    let (url, body) = signed_v2(&gateway.url, "acme", KEY, &new_instance(&failed_order));
    assert_eq!(code(&post(&http, &url, body).await), "000005");

    // The overview shows it; the fix (v1 again) is activated after a confirmation.
    client
        .goto(&format!("{admin}/console/m/acme"))
        .await
        .expect("the overview");
    screenshot(&client, "03-overview").await;
    client
        .goto(&format!("{admin}/console/m/acme/versions/1/activate"))
        .await
        .expect("confirm");
    screenshot(&client, "04-confirm-activate").await;
    click(&client, "form.confirm button[type=submit]").await;
    assert!(text_of(&client, ".notice").await.contains("v1"));
    screenshot(&client, "05-versions").await;

    // The failed callback, found by its order id, re-driven from its page.
    let list = format!("{admin}/console/m/acme/callbacks?order_id={failed_order}");
    reload_until_listed(&client, &list, "table.callbacks tbody tr a").await;
    assert!(
        text_of(&client, "table.callbacks tbody")
            .await
            .contains("000005")
    );
    screenshot(&client, "06-callbacks").await;
    click(&client, "table.callbacks tbody tr a").await;
    assert!(text_of(&client, "dl.record").await.contains("000005"));
    screenshot(&client, "07-callback").await;
    click(&client, "a.button.primary").await;
    click(&client, "form.confirm button[type=submit]").await;
    assert!(
        text_of(&client, "#redrive-code")
            .await
            .starts_with("000000"),
        "re-driven to success"
    );
    screenshot(&client, "08-redriven").await;

    // The marketplace's next retry gets the re-driven answer.
    let (url, body) = signed_v2(&gateway.url, "acme", KEY, &new_instance(&failed_order));
    assert_eq!(code(&post(&http, &url, body).await), "000000");

    // A shadow check of the failing version against the recorded requests:
    // the creates that succeeded would now fail, shown as regressions.
    client
        .goto(&format!("{admin}/console/m/acme/versions"))
        .await
        .expect("the versions page");
    click(&client, "form[action$='/versions/2/shadow'] button").await;
    expect_heading(&client, "Shadow check").await;
    let regressions = text_of(&client, "dl.summary dd.bad").await;
    assert!(
        regressions.parse::<u32>().is_ok_and(|n| n >= 1),
        "regressions: {regressions}"
    );
    assert!(
        text_of(&client, "tr.regression").await.contains("000005"),
        "a success that would become 000005"
    );
    screenshot(&client, "09-shadow-check").await;

    // Settings: the key's handle, no token management for a merchant.
    client
        .goto(&format!("{admin}/console/m/acme/settings"))
        .await
        .expect("settings");
    assert!(
        text_of(&client, "main")
            .await
            .contains("Tokens are issued by the operator")
    );
    screenshot(&client, "10-settings").await;

    // Another merchant's pages are refused for this token.
    client
        .goto(&format!("{admin}/console/m/other/callbacks"))
        .await
        .expect("a page");
    let refused = text_of(&client, ".notice").await;
    assert!(refused.contains("forbidden"), "{refused}");
    screenshot(&client, "11-other-merchant-refused").await;

    // Chinese, chosen from the page, kept across pages.
    client
        .goto(&format!("{admin}/console/m/acme"))
        .await
        .expect("the overview");
    click(&client, "a[hreflang=zh]").await;
    expect_heading(&client, "概览").await;
    client
        .goto(&format!("{admin}/console/m/acme/callbacks"))
        .await
        .expect("callbacks");
    expect_heading(&client, "回调").await;
    screenshot(&client, "12-callbacks-zh").await;

    // A phone's width: the same page, still readable (no sideways scroll of
    // the page itself; the table's rows stack).
    client
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    client.refresh().await.expect("reloaded");
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .expect("measured");
    assert_eq!(
        overflow,
        json!(false),
        "the page scrolls sideways on a phone"
    );
    screenshot(&client, "13-callbacks-phone").await;
    client
        .set_window_size(1280, 800)
        .await
        .expect("back to a desktop window");

    // Signing out ends the session.
    click(&client, "form[action='/console/logout'] button").await;
    client
        .goto(&format!("{admin}/console/m/acme"))
        .await
        .expect("a page");
    assert!(
        client
            .current_url()
            .await
            .expect("a URL")
            .path()
            .ends_with("/console/login")
    );
    client.close().await.expect("the browser closes");
}

/// What the browser is told: a session cookie it cannot read or send
/// elsewhere, a strict CSP, and changes refused without the form's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_headers_and_csrf_hold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_gateway, admin) = start_gateway(&dir);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let wrong = http
        .post(format!("{admin}/console/login"))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .expect("an answer");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let signed_in = http
        .post(format!("{admin}/console/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", OPERATOR)])
        .send()
        .await
        .expect("an answer");
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains(OPERATOR),
        "the token is sealed, not in clear"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();

    let page = http
        .get(format!("{admin}/console/merchants"))
        .header("cookie", &session)
        .send()
        .await
        .expect("an answer");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("text");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    // A change without the session's CSRF token is refused and changes nothing.
    let forged = http
        .post(format!("{admin}/console/m/acme/keys"))
        .header("cookie", &session)
        .form(&[("access_key", "forged-key-0123456789"), ("csrf", "guess")])
        .send()
        .await
        .expect("an answer");
    assert_eq!(forged.status(), 403);

    // An altered cookie is no session.
    let altered = session.replacen('=', "=A", 1);
    let page = http
        .get(format!("{admin}/console/merchants"))
        .header("cookie", altered)
        .send()
        .await
        .expect("an answer");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/console/login");
}
