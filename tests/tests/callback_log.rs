//! The callback log in process: what a record keeps (ids, path, plugin
//! version, the plugin's log records, the request with the buyer masked)
//! and what it never keeps; search filters and the cursor; refusals after
//! authentication are kept, unauthenticated ones are not.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use e2e::served::{AdminBody, KEY, TestGateway};
use koogallery_protocol::marketplace;
use serde_json::{Value, json};

const OPERATOR: &str = "operator-token-0123456789abcdef";

async fn gateway() -> TestGateway {
    TestGateway::build("", "", &|name| {
        (name == "GATEWAY_ADMIN_TOKEN").then(|| OPERATOR.to_string())
    })
    .await
}

async fn search(gw: &TestGateway, merchant: &str, query: &str, at_least: usize) -> Value {
    let started = Instant::now();
    loop {
        let path = format!("/admin/v1/merchants/{merchant}/callbacks?{query}");
        let (status, page) = gw
            .admin(Method::GET, &path, Some(OPERATOR), AdminBody::Empty)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found = page["records"].as_array().map_or(0, Vec::len);
        if found >= at_least || started.elapsed() > Duration::from_secs(5) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_record_keeps_what_a_merchant_needs_and_masks_the_buyer() {
    let gw = gateway().await;
    let order = format!("CS{}", &marketplace::random_nonce()[..15]);
    let body = json!({"activity": "newInstance", "businessId": marketplace::random_nonce(),
        "buyerInfo": {"customerId": "c-1", "customerName": "Zhang San", "mobilePhone": "13800000000",
            "email": "zhang@example.com"},
        "orderInfo": [{"orderId": order, "orderLineId": format!("{order}-000001"), "chargingMode": "PERIOD", "expireTime": "20301231000000",
            "productInfo": [{"skuCode": "sku-1", "productId": "P-1"}]}]});
    let reply = gw.v2("reference", &body, KEY).await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    let page = search(&gw, "reference", &format!("order_id={order}"), 1).await;
    let record = &page["records"][0];
    assert_eq!(record["path"], "executed", "{page}");
    assert_eq!(record["instance_id"], reply.json["instanceId"]);
    assert_eq!(record["attempt"], 1);
    assert_eq!(record["plugin_version"], 1);
    assert!(record.get("request").is_none(), "the list is brief");
    let seq = record["seq"].as_i64().expect("a seq");
    let path = format!("/admin/v1/merchants/reference/callbacks/{seq}");
    let (status, full) = gw
        .admin(Method::GET, &path, Some(OPERATOR), AdminBody::Empty)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = full.to_string();
    for secret in ["Zhang San", "13800000000", "zhang@example.com", KEY] {
        assert!(!text.contains(secret), "{secret} is in the log: {text}");
    }
    assert_eq!(
        full["request"]["request"]["customer"]["email"], "***",
        "{full}"
    );
    assert_eq!(
        full["request"]["request"]["customer"]["id"], "c-1",
        "ids are kept"
    );
    assert!(full["plugin_logs"].is_array(), "{full}");

    // A replay is logged as one, without the request.
    let mut retry = body.clone();
    retry["businessId"] = json!(marketplace::random_nonce());
    let again = gw.v2("reference", &retry, KEY).await;
    assert_eq!(again.code(), "000000");
    let page = search(&gw, "reference", &format!("order_id={order}"), 2).await;
    assert_eq!(page["records"][0]["path"], "replayed_cache", "{page}");

    // Refused after authentication: kept, with why. Unauthenticated: not.
    let bad = gw
        .v2("reference", &json!({"activity": "newInstance"}), KEY)
        .await;
    assert_eq!(bad.code(), "000002");
    let forged = gw.v2("reference", &body, "not-the-key").await;
    assert_eq!(forged.code(), "000001");
    let page = search(&gw, "reference", "path=refused", 1).await;
    let refused = page["records"].as_array().expect("records");
    assert_eq!(refused.len(), 1, "{page}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("orderId"),
        "{page}"
    );
}

#[tokio::test]
async fn search_narrows_and_pages_newest_first() {
    let gw = gateway().await;
    for _ in 0..5 {
        let order = format!("CS{}", &marketplace::random_nonce()[..15]);
        let body = json!({"activity": "newInstance", "orderId": order,
            "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
        assert_eq!(gw.v2("reference", &body, KEY).await.code(), "000000");
    }
    let all = search(&gw, "reference", "limit=100", 5).await;
    let seqs: Vec<i64> = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["seq"].as_i64())
        .collect();
    assert_eq!(seqs.len(), 5);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    let first = search(&gw, "reference", "limit=2", 2).await;
    assert_eq!(first["records"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_i64().expect("a cursor");
    let second = search(&gw, "reference", &format!("limit=2&before={next}"), 2).await;
    let page: Vec<i64> = second["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["seq"].as_i64())
        .collect();
    assert_eq!(page, seqs[2..4]);
    let none = search(&gw, "reference", "result_code=000106", 0).await;
    assert_eq!(none["records"].as_array().map(Vec::len), Some(0));
    let misbehave = search(&gw, "misbehave", "", 0).await;
    assert_eq!(
        misbehave["records"].as_array().map(Vec::len),
        Some(0),
        "per merchant"
    );
}

async fn redrive(gw: &TestGateway, merchant: &str, key: &str, force: bool) -> (StatusCode, Value) {
    let path = format!("/admin/v1/merchants/{merchant}/operations/redrive");
    let body = AdminBody::Json(json!({"idempotency_key": key, "force": force}));
    gw.admin(Method::POST, &path, Some(OPERATOR), body).await
}

#[tokio::test]
async fn a_final_answer_is_redriven_only_when_forced_and_audited() {
    let gw = gateway().await;
    let order = format!("CS{}", &marketplace::random_nonce()[..15]);
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    assert_eq!(gw.v2("reference", &body, KEY).await.code(), "000000");
    let page = search(&gw, "reference", &format!("order_id={order}"), 1).await;
    let key = page["records"][0]["idempotency_key"]
        .as_str()
        .expect("a key")
        .to_string();
    let (status, refused) = redrive(&gw, "reference", &key, false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "final_answer");
    let (status, forced) = redrive(&gw, "reference", &key, true).await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(
        (forced["status"].as_str(), forced["attempt"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    let (_, audit) = gw
        .admin(
            Method::GET,
            "/admin/v1/merchants/reference/audit",
            Some(OPERATOR),
            AdminBody::Empty,
        )
        .await;
    assert_eq!(audit[0]["action"], "operation.redrive.force", "{audit}");
    let (status, missing) = redrive(&gw, "reference", "kg-no-such-key", false).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

#[tokio::test]
async fn a_parked_operation_is_listed_resumed_and_its_age_reported() {
    let gw = gateway().await;
    let order = "error-internal".to_string();
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    assert_eq!(gw.v2("misbehave", &body, KEY).await.code(), "000005");
    let page = search(&gw, "misbehave", "result_code=000005", 1).await;
    let key = page["records"][0]["idempotency_key"]
        .as_str()
        .expect("a key")
        .to_string();
    let store = gw.app.registry().store().clone();
    let id = gateway_store::OperationId {
        merchant_id: "misbehave".into(),
        idempotency_key: key.clone(),
    };
    assert!(
        store
            .park(
                &id,
                "given up by the test",
                koogallery_protocol::time::now_ms()
            )
            .await
            .expect("parked")
    );

    gateway::callback_log::report_oldest_failures(store.as_ref(), gw.app.metrics()).await;
    let (_, metrics) = gw.get_admin("/metrics").await;
    assert!(
        metrics.contains("gateway_oldest_unresolved_failure_seconds{merchant=\"misbehave\"}"),
        "{metrics}"
    );

    let (status, parked) = gw
        .admin(
            Method::GET,
            "/admin/v1/merchants/misbehave/operations/parked",
            Some(OPERATOR),
            AdminBody::Empty,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(parked[0]["idempotency_key"], key.as_str(), "{parked}");
    let (status, resumed) = redrive(&gw, "misbehave", &key, false).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(
        resumed["status"], "failed_retryable",
        "the plugin still declines: {resumed}"
    );
    assert_eq!(resumed["attempt"], 2);
}
