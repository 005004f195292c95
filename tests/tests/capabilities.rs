//! Plugins' capabilities in process, against real components and real
//! sockets on loopback: outbound HTTP goes where the operator granted and
//! nowhere else (every denial gives the plugin a clear error and the
//! marketplace a retryable 000005), secrets reach the plugin and nothing
//! else, the key-value store keeps each merchant to its own keys and quota,
//! and a component built against the first contract still serves.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use e2e::http_stub::{Behaviour, HttpStub};
use e2e::served::{AdminBody, KEY, Reply, TestGateway};
use koogallery_protocol::marketplace;
use serde_json::{Value, json};

const OPERATOR: &str = "operator-token-0123456789abcdef";
const SECRET: &str = "s3cret-bearer-token-4f1c9a";

async fn gateway() -> TestGateway {
    let global =
        "[outbound_http]\nmax_response_body_kib = 64\n[kv]\nmax_value_kib = 4\nmax_total_mib = 1\n";
    TestGateway::build(global, "", &|name| {
        (name == "GATEWAY_ADMIN_TOKEN").then(|| OPERATOR.to_string())
    })
    .await
}

fn plugin(name: &str) -> Vec<u8> {
    std::fs::read(test_support::plugin_path(name)).expect("the test plugin is built")
}

async fn admin(gw: &TestGateway, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        AdminBody::Empty
    } else {
        AdminBody::Json(body)
    };
    gw.admin(method, path, Some(OPERATOR), body).await
}

/// Creates merchant `id` with `settings` and activates `plugin_name` for it.
async fn merchant(gw: &TestGateway, id: &str, plugin_name: &str, settings: Value) {
    let (status, body) = admin(
        gw,
        Method::POST,
        "/admin/v1/merchants",
        json!({"id": id, "access_keys": [KEY], "settings": settings}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/admin/v1/merchants/{id}/plugins?activate=true");
    let (status, body) = gw
        .admin(
            Method::POST,
            &path,
            Some(OPERATOR),
            AdminBody::Wasm(plugin(plugin_name)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The outbound plugin's merchant, calling `url`.
fn outbound(url: &str, allowed: &[String], private: bool) -> Value {
    json!({
        "deadline_ms": 1500,
        "config": {"url": url},
        "secrets": {"token": SECRET},
        "allowed_outbound_hosts": allowed,
        "allow_private_networks": private,
    })
}

fn order() -> String {
    format!("CS{}", &marketplace::random_nonce()[..15])
}

async fn create(gw: &TestGateway, merchant: &str) -> Reply {
    let order = order();
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    gw.v2(merchant, &body, KEY).await
}

fn memo(reply: &Reply) -> &str {
    reply.json["appInfo"]["memo"]
        .as_str()
        .unwrap_or("<no memo>")
}

async fn outbound_metric(gw: &TestGateway, merchant: &str, outcome: &str) -> u64 {
    let series =
        format!("gateway_outbound_requests_total{{merchant=\"{merchant}\",reason=\"{outcome}\"}}");
    gw.metric(&series).await.unwrap_or(0)
}

#[tokio::test]
async fn a_granted_request_reaches_the_backend_with_the_secret_and_the_idempotency_key() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::Answer).await;
    let url = format!("{}/ok?x=1", stub.origin());
    merchant(
        &gw,
        "granted",
        "outbound",
        outbound(&url, &[stub.origin()], true),
    )
    .await;

    let reply = create(&gw, "granted").await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    assert_eq!(memo(&reply), "status=200 bytes=5");
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let head = requests[0].to_ascii_lowercase();
    assert!(head.starts_with("get /ok?x=1 http/1.1"), "{head}");
    assert!(head.contains(&format!(
        "authorization: bearer {}",
        SECRET.to_ascii_lowercase()
    )));
    assert!(head.contains("idempotency-key: "), "{head}");
    assert!(head.contains("user-agent: koogallery-gateway/"), "{head}");
    assert_eq!(outbound_metric(&gw, "granted", "ok").await, 1);
}

#[tokio::test]
async fn every_denial_is_a_clear_error_for_the_plugin_and_000005_for_the_marketplace() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::Answer).await;
    let other = HttpStub::start(Behaviour::Answer).await;
    let origin = stub.origin();
    let cases: [(&str, Value, &str, &str); 4] = [
        // A host outside the allow-list (another port of the same address).
        (
            "outside",
            outbound(
                &format!("{}/", other.origin()),
                std::slice::from_ref(&origin),
                true,
            ),
            "HttpRequestDenied",
            "denied",
        ),
        // A granted name that resolves to loopback, without the private grant.
        (
            "loopback",
            outbound(
                &format!("http://localhost:{}/", stub.port),
                &[format!("http://localhost:{}", stub.port)],
                false,
            ),
            "DestinationIpProhibited",
            "prohibited",
        ),
        // The cloud metadata address: refused even with the private grant.
        (
            "metadata",
            outbound(
                "http://169.254.169.254/latest/meta-data/",
                &["http://169.254.169.254".to_string()],
                true,
            ),
            "DestinationIpProhibited",
            "prohibited",
        ),
        // An IPv4-mapped IPv6 literal of loopback.
        (
            "mapped",
            outbound(
                &format!("http://[::ffff:127.0.0.1]:{}/", stub.port),
                &[format!("http://[::ffff:127.0.0.1]:{}", stub.port)],
                false,
            ),
            "DestinationIpProhibited",
            "prohibited",
        ),
    ];
    for (id, settings, code, outcome) in cases {
        merchant(&gw, id, "outbound", settings).await;
        let reply = create(&gw, id).await;
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), "000005", "{id}: {:?}", reply.json);
        assert!(reply.message().contains(code), "{id}: {}", reply.message());
        assert_eq!(outbound_metric(&gw, id, outcome).await, 1, "{id}");
    }
    assert!(
        stub.requests().is_empty() && other.requests().is_empty(),
        "nothing left the gateway"
    );
}

#[tokio::test]
async fn a_backend_that_never_answers_costs_the_deadline_and_the_next_call_works() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::HangOnce).await;
    merchant(
        &gw,
        "hanging",
        "outbound",
        outbound(&format!("{}/", stub.origin()), &[stub.origin()], true),
    )
    .await;
    let started = Instant::now();
    let reply = create(&gw, "hanging").await;
    let took = started.elapsed();
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);
    assert!(
        reply.message().contains("HttpResponseTimeout"),
        "{}",
        reply.message()
    );
    assert!(
        took < Duration::from_millis(2500),
        "ended within the deadline: {took:?}"
    );
    assert_eq!(outbound_metric(&gw, "hanging", "timeout").await, 1);
    let reply = create(&gw, "hanging").await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
}

#[tokio::test]
async fn a_response_larger_than_the_cap_is_refused_announced_or_streamed() {
    let gw = gateway().await;
    for (id, behaviour) in [
        ("large", Behaviour::Large(200 << 10)),
        ("chunked", Behaviour::LargeChunked(200 << 10)),
    ] {
        let stub = HttpStub::start(behaviour).await;
        merchant(
            &gw,
            id,
            "outbound",
            outbound(&format!("{}/", stub.origin()), &[stub.origin()], true),
        )
        .await;
        let reply = create(&gw, id).await;
        assert_eq!(reply.code(), "000005", "{id}: {:?}", reply.json);
        // Announced: the error code; streamed: the host's text for it.
        let message = reply.message();
        assert!(
            message.contains("HttpResponseBodySize") || message.contains("body size exceeds limit"),
            "{id}: {message}"
        );
        assert_eq!(outbound_metric(&gw, id, "too_large").await, 1, "{id}");
    }
}

#[tokio::test]
async fn tls_is_verified_against_the_host_name() {
    let gw = gateway().await;
    let stub = HttpStub::start_tls(Behaviour::Answer).await;
    let origin = format!("https://localhost:{}", stub.port);
    merchant(
        &gw,
        "tls",
        "outbound",
        outbound(&format!("{origin}/"), std::slice::from_ref(&origin), true),
    )
    .await;
    let reply = create(&gw, "tls").await;
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);
    assert!(
        reply.message().contains("TlsProtocolError"),
        "{}",
        reply.message()
    );
    assert_eq!(outbound_metric(&gw, "tls", "tls_error").await, 1);
    assert!(
        stub.requests().is_empty(),
        "no request over an unverified connection"
    );
}

#[tokio::test]
async fn a_redirect_is_an_answer_for_the_plugin_not_a_request_to_follow() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::Redirect).await;
    merchant(
        &gw,
        "redirected",
        "outbound",
        outbound(&format!("{}/", stub.origin()), &[stub.origin()], true),
    )
    .await;
    let reply = create(&gw, "redirected").await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    assert_eq!(memo(&reply), "status=302 bytes=0");
    assert_eq!(
        outbound_metric(&gw, "redirected", "ok").await,
        1,
        "one request, not two"
    );
    assert_eq!(outbound_metric(&gw, "redirected", "prohibited").await, 0);
}

#[tokio::test]
async fn a_merchant_whose_grant_is_missing_or_withdrawn_does_not_run_its_http_plugin() {
    // Configured in the file without a grant: unavailable at start, saying why.
    let global = format!(
        "[[merchants]]\nid = \"nogrant\"\naccess_keys = [\"{KEY}\"]\nplugin = \"{}\"\n\
         [merchants.config]\nurl = \"http://127.0.0.1:9/\"\n",
        test_support::plugin_path("outbound").display()
    );
    let gw = TestGateway::build(&global, "", &|name| {
        (name == "GATEWAY_ADMIN_TOKEN").then(|| OPERATOR.to_string())
    })
    .await;
    let reply = create(&gw, "nogrant").await;
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);
    let (_, status) = gw.get_admin("/status").await;
    assert!(status.contains("allowed_outbound_hosts"), "{status}");

    // Granted through the API, it serves; the grant withdrawn, it stops.
    let stub = HttpStub::start(Behaviour::Answer).await;
    let granted = outbound(&format!("{}/", stub.origin()), &[stub.origin()], true);
    let (status, body) = admin(
        &gw,
        Method::PATCH,
        "/admin/v1/merchants/nogrant",
        json!({"settings": granted}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(create(&gw, "nogrant").await.code(), "000000");
    let withdrawn = outbound(&format!("{}/", stub.origin()), &[], true);
    let (status, body) = admin(
        &gw,
        Method::PATCH,
        "/admin/v1/merchants/nogrant",
        json!({"settings": withdrawn}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["unavailable"]
            .as_str()
            .unwrap_or_default()
            .contains("allowed_outbound_hosts"),
        "{body}"
    );
    assert_eq!(create(&gw, "nogrant").await.code(), "000005");
    assert_eq!(
        stub.requests().len(),
        1,
        "no request after the grant was withdrawn"
    );
}

#[tokio::test]
async fn a_plugin_that_needs_http_is_refused_for_a_merchant_without_the_grant() {
    let gw = gateway().await;
    let (status, body) = admin(&gw, Method::POST, "/admin/v1/merchants",
        json!({"id": "ungranted", "access_keys": [KEY], "settings": {"config": {"url": "http://x"}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = gw
        .admin(
            Method::POST,
            "/admin/v1/merchants/ungranted/plugins",
            Some(OPERATOR),
            AdminBody::Wasm(plugin("outbound")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "needs_outbound_grant", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("allowed_outbound_hosts"),
        "names the grant: {message}"
    );

    // Only the operator grants: the merchant's own token may not.
    let (status, token) = admin(
        &gw,
        Method::POST,
        "/admin/v1/merchants/ungranted/tokens",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = token["token"].as_str().expect("a token").to_string();
    let (status, body) = gw
        .admin(
            Method::PATCH,
            "/admin/v1/merchants/ungranted",
            Some(&token),
            AdminBody::Json(json!({"settings": {"allowed_outbound_hosts": ["https://*"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn secrets_reach_the_plugin_and_never_the_api_the_metrics_or_the_store() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::Answer).await;
    merchant(
        &gw,
        "secretive",
        "outbound",
        outbound(&format!("{}/", stub.origin()), &[stub.origin()], true),
    )
    .await;
    assert_eq!(create(&gw, "secretive").await.code(), "000000");
    assert!(stub.requests()[0].contains(SECRET), "the plugin read it");

    let (status, view) = admin(
        &gw,
        Method::GET,
        "/admin/v1/merchants/secretive",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["settings"]["secrets"]["token"], "(set)", "{view}");
    let (_, audit) = admin(&gw, Method::GET, "/admin/v1/audit", Value::Null).await;
    let (_, metrics) = gw.get_admin("/metrics").await;
    let stored = std::fs::read(gw.database()).expect("the store file");
    for (what, text) in [
        ("API", view.to_string()),
        ("audit", audit.to_string()),
        ("metrics", metrics),
        ("store", String::from_utf8_lossy(&stored).into_owned()),
    ] {
        assert!(!text.contains(SECRET), "the secret is in the {what}");
    }

    // A settings change that leaves the secrets out keeps them.
    let (status, body) = admin(&gw, Method::PATCH, "/admin/v1/merchants/secretive",
        json!({"settings": outbound(&format!("{}/", stub.origin()), &[stub.origin()], true)
            .as_object().map(|o| { let mut o = o.clone(); o.remove("secrets"); Value::Object(o) })})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(create(&gw, "secretive").await.code(), "000000");
    assert!(
        stub.requests()[1].contains(SECRET),
        "still set after the change"
    );
}

async fn renew(gw: &TestGateway, merchant: &str, instance: &str) -> Reply {
    let body = json!({"activity": "refreshInstance", "instanceId": instance, "orderId": order(),
        "orderLineId": format!("{}-000001", order()), "scene": "RENEWAL", "expireTime": "20991231000000",
        "businessId": marketplace::random_nonce()});
    gw.v2(merchant, &body, KEY).await
}

async fn release(gw: &TestGateway, merchant: &str, instance: &str) -> Reply {
    let body = json!({"activity": "releaseInstance", "instanceId": instance,
        "businessId": marketplace::random_nonce()});
    gw.v2(merchant, &body, KEY).await
}

#[tokio::test]
async fn each_merchant_keeps_its_own_keys_within_its_quota() {
    let gw = gateway().await;
    let stub = HttpStub::start(Behaviour::Answer).await;
    for id in ["kv-a", "kv-b"] {
        merchant(
            &gw,
            id,
            "outbound",
            outbound(&format!("{}/", stub.origin()), &[stub.origin()], true),
        )
        .await;
    }
    let a = create(&gw, "kv-a").await;
    let b = create(&gw, "kv-b").await;
    let instance = |reply: &Reply| {
        reply.json["instanceId"]
            .as_str()
            .expect("an instance")
            .to_string()
    };
    let (ia, ib) = (instance(&a), instance(&b));
    assert_eq!(renew(&gw, "kv-a", &ia).await.code(), "000000");
    assert_eq!(renew(&gw, "kv-b", &ib).await.code(), "000000");
    assert_eq!(
        gw.count(
            "SELECT COUNT(*) FROM kv_entries WHERE merchant_id = $1",
            "kv-a"
        )
        .await,
        1
    );
    assert_eq!(
        gw.count(
            "SELECT COUNT(*) FROM kv_entries WHERE merchant_id = $1",
            "kv-b"
        )
        .await,
        1
    );
    assert_eq!(
        gw.count("SELECT keys FROM kv_usage WHERE merchant_id = $1", "kv-a")
            .await,
        1
    );

    // Past the value limit (4 KiB here): the plugin's error, 000005.
    let (status, _) = admin(
        &gw,
        Method::PATCH,
        "/admin/v1/merchants/kv-a",
        json!({"settings": {"deadline_ms": 1500, "config": {"url": "x", "kv_value_bytes": "5000"},
            "allowed_outbound_hosts": [stub.origin()], "allow_private_networks": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reply = release(&gw, "kv-a", &ia).await;
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);
    assert!(
        reply.message().contains("quota exceeded"),
        "{}",
        reply.message()
    );
    assert_eq!(
        gw.count(
            "SELECT COUNT(*) FROM kv_entries WHERE merchant_id = $1",
            "kv-a"
        )
        .await,
        1,
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_component_built_against_contract_0_1_0_still_loads_and_answers() {
    let gw = gateway().await;
    merchant(
        &gw,
        "old",
        "contract-0-1-0",
        json!({"config": {"plan": "gold"}}),
    )
    .await;
    let reply = create(&gw, "old").await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    assert_eq!(memo(&reply), "built against 0.1.0; plan gold");
}

/// 20 sequential creates of merchant `fast`, their latencies sorted.
async fn fast_latencies(gw: &TestGateway) -> Vec<Duration> {
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(create(gw, "fast").await.code(), "000000");
        took.push(started.elapsed());
    }
    took.sort();
    took
}

#[tokio::test]
async fn one_merchants_hanging_backend_does_not_slow_another_merchants_callbacks() {
    let gw = gateway().await;
    let hang = HttpStub::start(Behaviour::Hang).await;
    merchant(
        &gw,
        "slow",
        "outbound",
        outbound(&format!("{}/", hang.origin()), &[hang.origin()], true),
    )
    .await;
    merchant(&gw, "fast", "contract-0-1-0", json!({})).await;
    let gw = std::sync::Arc::new(gw);
    let alone = fast_latencies(&gw).await;
    let stuck: Vec<_> = (0..16)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { create(&gw, "slow").await.code().to_string() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let beside = fast_latencies(&gw).await;
    eprintln!(
        "fast merchant p50: alone {:?}, while 16 calls hang on another's backend {:?} (max {:?})",
        alone[alone.len() / 2],
        beside[beside.len() / 2],
        beside[beside.len() - 1]
    );
    let p50 = beside[beside.len() / 2];
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
    for call in stuck {
        assert_eq!(call.await.expect("the call ends"), "000005");
    }
}
