//! The security review's findings, each reproduced in process against the
//! real router, store and plugins (the ones that need real processes are in
//! `gateway/cli/tests/hardening.rs`).

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use e2e::served::{KEY, TestGateway, WriteLock};
use gateway::operations::{Decision, RecordedOperation};
use koogallery_protocol::{
    EncryptType, Generation, ParseContext, marketplace, read_callback, time::now_ms,
};
use serde_json::{Value, json};

fn order() -> String {
    format!("CS{}", marketplace::random_token(14))
}

fn series(merchant: &str, kind: &str, path: &str) -> String {
    format!("gateway_operations_total{{merchant=\"{merchant}\",kind=\"{kind}\",path=\"{path}\"}}")
}

/// H1: a query of thousands of parameters is refused before it is decoded.
#[tokio::test]
async fn a_huge_query_is_refused_before_anything_is_decoded() {
    let gw = TestGateway::new().await;
    // About 60 KB: just under what the HTTP layer takes in a URI.
    let names: Vec<String> = (0..10_000).map(|i| format!("p{i}")).collect();
    let query = format!("{}&authToken=A&timeStamp=1", names.join("&"));
    let started = Instant::now();
    let reply = gw.get_query("reference", &query).await;
    let took = started.elapsed();
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000002", "{:?}", reply.json);
    assert!(
        reply.message().contains("longer than 8192 bytes"),
        "{}",
        reply.message()
    );
    // Quadratic work took about a second here; linear work is negligible.
    assert!(took < Duration::from_millis(250), "took {took:?}");
    let many = (0..100)
        .map(|i| format!("p{i}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let reply = gw.get_query("reference", &many).await;
    assert!(
        reply.message().contains("more than 64 parameters"),
        "{}",
        reply.message()
    );
}

/// H2: a value that would re-parse as another parameter (`%26testFlag%3D1`)
/// does not let one V1 token sign two requests.
#[tokio::test]
async fn a_v1_token_cannot_be_folded_into_another_request() {
    let gw = TestGateway::new().await;
    let order_id = order();
    let params = [
        ("activity", "newInstance"),
        ("orderId", order_id.as_str()),
        ("customerId", "c-1"),
        ("productId", "P"),
        ("testFlag", "1"),
        ("expireTime", "20301231235959"),
    ];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let query = marketplace::v1_query(KEY, &owned, now_ms());
    let test_create = gw.get_query("reference", &query).await;
    assert_eq!(test_create.code(), "000000", "{:?}", test_create.json);
    // The attack: drop testFlag and fold it into the parameter before it.
    let folded = query
        .replace("productId=P&", "productId=P%26testFlag%3D1&")
        .replace("&testFlag=1", "");
    assert_ne!(folded, query);
    let live = gw.get_query("reference", &folded).await;
    live.assert_signed_by(KEY);
    assert_eq!(live.code(), "000001", "{:?}", live.json);
    assert_eq!(
        gw.metric(&series("reference", "create", "executed")).await,
        Some(1),
        "only the test create ran"
    );
    // The marketplace resending the very same URL is not refused.
    let resent = gw.get_query("reference", &query).await;
    assert_eq!(resent.code(), "000000", "{:?}", resent.json);
}

/// H3: an old signed V1 URL is refused, and a replayed status change older
/// than the last one applied is not applied again.
#[tokio::test]
async fn old_v1_urls_and_stale_status_changes_are_not_applied() {
    let gw = TestGateway::new().await;
    let created = gw
        .v2(
            "reference",
            &json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L1"}),
            KEY,
        )
        .await;
    let instance = created.json["instanceId"]
        .as_str()
        .expect("an id")
        .to_string();
    let status = |change: &str| {
        vec![
            ("activity".to_string(), "instanceStatus".to_string()),
            ("instanceId".to_string(), instance.clone()),
            ("instanceStatus".to_string(), change.to_string()),
        ]
    };
    let thirty_days_ago = now_ms() - 30 * 24 * 3600 * 1000;
    let ancient = marketplace::v1_query(KEY, &status("FREEZE"), thirty_days_ago);
    let reply = gw.get_query("reference", &ancient).await;
    assert_eq!(reply.code(), "000001", "a 30-day-old URL: {:?}", reply.json);

    let freeze = marketplace::v1_query(KEY, &status("FREEZE"), now_ms() - 60_000);
    let unfreeze = marketplace::v1_query(KEY, &status("NORMAL"), now_ms() - 30_000);
    for query in [&freeze, &unfreeze] {
        let reply = gw.get_query("reference", query).await;
        assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    }
    // The captured FREEZE URL again, after the later unfreeze.
    let replayed = gw.get_query("reference", &freeze).await;
    assert_eq!(replayed.code(), "000000", "{:?}", replayed.json);
    assert!(
        replayed.message().contains("superseded"),
        "{}",
        replayed.message()
    );
    assert_eq!(
        gw.metric(&series("reference", "status:freeze", "superseded"))
            .await,
        Some(1)
    );
    assert_eq!(
        gw.metric(&series("reference", "status:freeze", "executed"))
            .await,
        Some(1),
        "the freeze ran once"
    );
    let active = "SELECT COUNT(*) FROM instances WHERE instance_id = $1 AND status = 'active'";
    assert_eq!(gw.count(active, &instance).await, 1, "still unfrozen");
}

/// The recorded operation a signed V2 body becomes.
fn recorded(gw: &TestGateway, merchant: &str, body: &Value) -> RecordedOperation {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let now = now_ms();
    let query = marketplace::v2_query(KEY, &bytes, now, &marketplace::random_nonce());
    let ctx = ParseContext {
        merchant,
        request_id: "r",
        access_key: KEY,
        encrypt_type: EncryptType::default(),
    };
    let policy = gateway::config::lower::verify_policy(gw.config());
    let (verified, callback) =
        read_callback(Generation::V2, &query, &bytes, &[KEY], now, &policy, &ctx)
            .expect("a valid callback");
    RecordedOperation::from_callback(merchant, &callback, verified.signed_at_ms, false, None)
        .expect("recorded")
}

/// H4: with creates in flight answered as successes, a caller that stops
/// waiting before the claim committed is told 000004, never an instance id
/// the store does not hold.
#[tokio::test]
async fn no_instance_id_is_answered_before_its_claim_commits() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 1000\n[store]\nbusy_timeout_ms = 600",
        "deadline_ms = 500\ncreate_in_flight = \"success\"",
    )
    .await;
    let order_id = order();
    let op = recorded(
        &gw,
        "reference",
        &json!({"activity": "newInstance", "orderId": order_id, "orderLineId": "L1"}),
    );
    let lock = WriteLock::take(&gw).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let ran = gw.app.operations().run(op, deadline).await;
    let decision = ran.map(|(decision, _)| decision);
    assert_eq!(
        decision.ok(),
        Some(Decision::InProgress { instance_id: None }),
        "no committed claim, no instance id"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    lock.release().await;
    let rows = "SELECT COUNT(*) FROM instances WHERE order_id = $1";
    assert_eq!(gw.count(rows, &order_id).await, 0, "nothing was recorded");
}

/// Claims commit without an fsync; a create in flight is named as a success
/// only after a synced commit has made its claim durable — and when that
/// commit cannot happen in time, it is 000004 instead.
#[tokio::test]
async fn a_create_in_flight_is_named_only_once_its_claim_is_durable() {
    let provisioner = format!(
        "answer_budget_ms = 1000\n[store]\nbusy_timeout_ms = 300\n\
         [[merchants]]\nid = \"provisioner\"\naccess_keys = [\"{KEY}\"]\nplugin = \"{}\"\n\
         deadline_ms = 950\ncreate_in_flight = \"success\"\n",
        test_support::plugin_path("misbehave").display()
    );
    let gw = TestGateway::with_config(&provisioner, "deadline_ms = 500").await;
    // The plugin sleeps past the answer budget: the answer is "in flight".
    let create =
        |line: &str| json!({"activity": "newInstance", "orderId": "sleep", "orderLineId": line});

    let named = gw.v2("provisioner", &create("L-durable"), KEY).await;
    assert_eq!(named.code(), "000000", "{:?}", named.json);
    let expected = koogallery_protocol::ids::instance_id("provisioner", "sleep", Some("L-durable"));
    assert_eq!(named.json["instanceId"], expected.as_str());

    let locked = create("L-locked");
    let (reply, lock) = tokio::join!(gw.v2("provisioner", &locked, KEY), async {
        // After the claim has committed, before the answer is due.
        tokio::time::sleep(Duration::from_millis(300)).await;
        WriteLock::take(&gw).await
    });
    assert_eq!(reply.code(), "000004", "{:?}", reply.json);
    assert!(reply.json.get("instanceId").is_none(), "{:?}", reply.json);
    lock.release().await;
}

/// M2: a locked store makes callbacks answer 000005 within the budget, and
/// readiness say so until the store writes again.
#[tokio::test]
async fn a_locked_store_answers_in_time_and_shows_in_readiness() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 1000\n[store]\nbusy_timeout_ms = 300",
        "deadline_ms = 500",
    )
    .await;
    let lock = WriteLock::take(&gw).await;
    let started = Instant::now();
    let reply = gw
        .v2(
            "reference",
            &json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L1"}),
            KEY,
        )
        .await;
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let (status, text) = gw.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("store unavailable"), "{text}");
    lock.release().await;
    let (status, text) = gw.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "recovers by itself: {text}");
}

/// M3: a full store still replays final answers (no write needed), from
/// memory and from the store.
#[tokio::test]
async fn a_full_store_still_replays_final_answers() {
    let data = tempfile::tempdir().expect("a temporary data dir");
    let global = "[store]\nmax_size_mib = 1\nretention_days = 3650";
    let gw = TestGateway::in_dir(data, global, "", &|_| None).await;
    let create = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L1"});
    let first = gw.v2("reference", &create, KEY).await;
    assert_eq!(first.code(), "000000", "{:?}", first.json);
    // Fill the store to its cap.
    {
        let conn = rusqlite::Connection::open(gw.database()).expect("a second connection");
        conn.execute_batch("PRAGMA max_page_count = 256")
            .expect("the cap");
        // Nonces, large then smaller, until not one more fits: the next
        // request's own nonce then needs a page the store cannot have.
        let mut n = 0;
        for size in [8000, 1000, 100, 10] {
            loop {
                n += 1;
                let nonce = format!("{n}-{}", "x".repeat(size));
                let inserted = conn.execute(
                    "INSERT INTO seen_nonces (merchant_id, nonce, expires_at) VALUES ('filler', ?1, ?2)",
                    rusqlite::params![nonce, i64::MAX],
                );
                if inserted.is_err() {
                    break;
                }
            }
        }
    }
    let other = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L1"});
    assert_eq!(
        gw.v2("reference", &other, KEY).await.code(),
        "000005",
        "the store is full"
    );
    let replay = gw.v2("reference", &create, KEY).await;
    assert_eq!(replay.code(), "000000", "from memory: {:?}", replay.json);
    assert_eq!(replay.json["instanceId"], first.json["instanceId"]);
    // A restarted gateway has nothing in memory: the store replays it.
    let restarted = TestGateway::in_dir(gw.into_data(), global, "", &|_| None).await;
    let replay = restarted.v2("reference", &create, KEY).await;
    assert_eq!(replay.code(), "000000", "from the store: {:?}", replay.json);
    assert_eq!(replay.json["instanceId"], first.json["instanceId"]);
}

/// M9: the buyer's data never reaches the store in clear, and the store is
/// readable by its owner only.
#[tokio::test]
async fn customer_data_is_sealed_at_rest_in_an_owner_only_store() {
    let gw = TestGateway::new().await;
    let create = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L1",
        "buyerInfo": {"customerId": "cust-7731", "customerName": "Zhang San",
                      "mobilePhone": "13812345678", "email": "zhang.san@example.com"}});
    assert_eq!(gw.v2("reference", &create, KEY).await.code(), "000000");
    let mut stored = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", gw.database().display());
        stored.extend(std::fs::read(&path).unwrap_or_default());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("kg-"), "the records are there");
    for secret in [
        "13812345678",
        "zhang.san@example.com",
        "Zhang San",
        "cust-7731",
    ] {
        assert!(!stored.contains(secret), "{secret} is stored in clear");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(gw.database())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the store is owner-only");
    }
}

/// L3 and L5: control characters in ids are refused, and whatever arrives
/// at a callback URL gets the contract's answer.
#[tokio::test]
async fn control_characters_and_odd_requests_get_contract_answers() {
    let gw = TestGateway::new().await;
    let nul = json!({"activity": "newInstance", "orderId": "A\u{0}X", "orderLineId": "L"});
    let reply = gw.v2("reference", &nul, KEY).await;
    assert_eq!(reply.code(), "000002", "{:?}", reply.json);
    assert!(
        reply.message().contains("control characters"),
        "{}",
        reply.message()
    );

    let put = gw
        .send(Method::PUT, "/callbacks/reference", Vec::new())
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.code(), "000002", "{:?}", put.json);
    put.assert_signed_by(KEY);

    let not_utf8 = gw.send(Method::GET, "/callbacks/%FF%FE", Vec::new()).await;
    assert_eq!(not_utf8.status, StatusCode::OK);
    assert_eq!(
        not_utf8.code(),
        "000001",
        "an unknown merchant: {:?}",
        not_utf8.json
    );
    assert!(not_utf8.body_sign.is_some(), "signed like a wrong key");

    let elsewhere = gw
        .send(Method::GET, "/callback/reference", Vec::new())
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.code(), "000002");
}

/// A merchant integrated with V2 only refuses a correctly signed V1 GET
/// before reading it; its V2 callbacks are served as before.
#[tokio::test]
async fn a_merchant_refuses_the_generation_it_does_not_use() {
    let gw = TestGateway::with_config("", "generations = [\"v2\"]").await;
    let order_id = order();
    let v1_create = [
        ("activity", "newInstance"),
        ("orderId", order_id.as_str()),
        ("customerId", "c-1"),
        ("productId", "P"),
        ("expireTime", "20301231235959"),
    ];
    let refused = gw.v1("reference", &v1_create, KEY).await;
    assert_eq!(refused.code(), "000001", "{:?}", refused.json);
    refused.assert_signed_by(KEY);
    let reason = "gateway_auth_failures_total{merchant=\"reference\",reason=\"generation\"}";
    assert_eq!(gw.metric(reason).await, Some(1));
    assert_eq!(
        gw.metric(&series("reference", "create", "executed")).await,
        None
    );

    let line = format!("{order_id}-000001");
    let v2_create = json!({"activity": "newInstance", "orderId": order_id, "orderLineId": line});
    let served = gw.v2("reference", &v2_create, KEY).await;
    assert_eq!(served.code(), "000000", "{:?}", served.json);
}

/// A merchant whose plugin cannot load answers 000005 and is named in
/// `/readyz` (still ready: the others serve) and, with the reason, in
/// `/status`.
#[tokio::test]
async fn a_merchant_that_cannot_load_is_named_where_operators_look() {
    let broken = format!(
        "[[merchants]]\nid = \"broken\"\naccess_keys = [\"{KEY}\"]\nplugin = \"/nowhere.wasm\"\n"
    );
    let gw = TestGateway::with_config(&broken, "").await;
    let create = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L-1"});
    assert_eq!(gw.v2("broken", &create, KEY).await.code(), "000005");
    assert_eq!(gw.v2("reference", &create, KEY).await.code(), "000000");

    let (status, text) = gw.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, "ready; unavailable merchants: broken");
    let (status, text) = gw.get_admin("/status").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let status: Value = serde_json::from_str(&text).expect("JSON");
    let reason = status["unavailable_merchants"]["broken"]
        .as_str()
        .unwrap_or("");
    assert!(
        reason.contains("cannot read plugin /nowhere.wasm"),
        "{status}"
    );
}

/// M6: a plugin cannot make the host copy more of its log than the budget.
#[tokio::test]
async fn a_flood_of_log_fields_is_cut_before_it_is_copied() {
    let rt = e2e::runtime(4);
    let plugin = e2e::load(&rt, "misbehave");
    let who = e2e::merchant(&[], Duration::from_secs(5));
    let request = e2e::request(
        koogallery_contract::Operation::Create,
        json!({"order_id": "log-flood", "order_line_id": "L"}),
    );
    let invocation = rt.invoke(&plugin, &who, &request).await;
    e2e::answered(&invocation);
    let flood = invocation
        .logs
        .iter()
        .find(|record| record.message == "flood")
        .expect("the flood record, cut");
    assert!(
        flood.fields.len() <= 33,
        "{} fields kept",
        flood.fields.len()
    );
    assert_eq!(
        flood.fields.get("dropped_fields").map(String::as_str),
        Some("299968")
    );
}
