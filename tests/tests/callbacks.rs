//! The served gateway, in process: every activity of both generations
//! through real plugins, every result code on the wire, the negative
//! signature set, validation, and the operational endpoints.

use std::time::Instant;

use axum::http::{Method, StatusCode};
use e2e::served::{KEY, Reply, TestGateway, now_ms};
use koogallery_protocol::ResultCode;
use koogallery_protocol::credentials::{self, EncryptType};
use koogallery_protocol::ids;
use koogallery_protocol::marketplace;
use serde_json::json;

fn order() -> String {
    format!("CS{}", &marketplace::random_nonce()[..15])
}

async fn create_v2(gw: &TestGateway, order_id: &str) -> Reply {
    let body = json!({"activity": "newInstance", "orderId": order_id,
        "orderLineId": format!("{order_id}-000001"), "businessId": marketplace::random_nonce()});
    gw.v2("reference", &body, KEY).await
}

/// A new instance's id (operations on instances the gateway never
/// assigned answer 000003).
async fn new_instance(gw: &TestGateway) -> String {
    let reply = create_v2(gw, &order()).await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    reply.json["instanceId"]
        .as_str()
        .expect("an instance id")
        .to_string()
}

#[tokio::test]
async fn v2_new_instance_answers_the_assigned_id_with_encrypted_credentials_and_body_sign() {
    let gw = TestGateway::new().await;
    let order_id = order();
    let reply = create_v2(&gw, &order_id).await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    let expected = ids::instance_id("reference", &order_id, Some(&format!("{order_id}-000001")));
    assert_eq!(reply.json["instanceId"], expected.as_str());
    assert_eq!(reply.json["encryptType"], "1");
    let user = reply.json["appInfo"]["userName"]
        .as_str()
        .expect("userName");
    let plain = credentials::decrypt(KEY, EncryptType::Aes256, user).expect("decrypts");
    assert!(plain.starts_with("admin@"), "{plain}");
    assert!(!String::from_utf8_lossy(&reply.bytes).contains(&plain));
    assert!(
        reply.json["appInfo"]["frontEndUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://ref.example.com/"))
    );

    // A marketplace retry: new businessId, nonce and timestamp, same order line.
    let again = create_v2(&gw, &order_id).await;
    assert_eq!(again.json["instanceId"], expected.as_str());
}

#[tokio::test]
async fn every_v2_activity_reaches_its_operation() {
    let gw = TestGateway::new().await;
    let instance = new_instance(&gw).await;
    let instance = instance.as_str();
    let cases = [
        json!({"activity": "queryInstance", "instanceId": format!("{instance},other-1")}),
        json!({"activity": "refreshInstance", "orderId": order(), "orderLineId": "L-1",
               "instanceId": instance, "scene": "RENEWAL", "expireTime": "20301231235959"}),
        json!({"activity": "refreshInstance", "orderId": order(), "orderLineId": "L-1",
               "instanceId": instance, "scene": "TRIAL_TO_FORMAL", "expireTime": "20301231235959",
               "productId": "P2"}),
        json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "FREEZE"}),
        json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": "UNFREEZE"}),
        json!({"activity": "releaseInstance", "instanceId": instance, "testFlag": "1"}),
        json!({"activity": "upgradeInstance", "instanceId": instance, "orderId": order(),
               "orderLineId": "L-2", "productInfo": {"productId": "P3", "skuCode": "sku-pro"}}),
        json!({"activity": "changeInstanceCheck", "instanceId": instance,
               "productInfo": "{\"productId\":\"P4\",\"skuCode\":\"sku-pro\"}"}),
        json!({"activity": "getLicenseAsync", "instanceId": instance, "eventId": "E-1",
               "effectiveTime": "2023-10-27 10:30:15 z", "expireTime": "2024-10-27 10:30:15 z"}),
    ];
    for body in cases {
        let reply = gw.v2("reference", &body, KEY).await;
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), "000000", "{body}: {:?}", reply.json);
    }
    let query = json!({"activity": "queryInstance", "instanceId": format!("{instance},other-1")});
    let reply = gw.v2("reference", &query, KEY).await;
    let info = reply.json["info"].as_array().expect("info[]");
    assert_eq!(info.len(), 2);
    assert_eq!(info[0]["instanceId"], instance);
    assert_eq!(
        reply.json["encryptType"], "1",
        "credentials in info are encrypted too"
    );

    let license = json!({"activity": "getLicenseAsync", "instanceId": instance, "eventId": "E-2",
        "effectiveTime": "2023-10-27 10:30:15 z"});
    let first = gw.v2("reference", &license, KEY).await;
    let second = gw.v2("reference", &license, KEY).await;
    assert!(
        first.json["license"]
            .as_str()
            .is_some_and(|l| l.starts_with("LIC-"))
    );
    assert_eq!(
        first.json["license"], second.json["license"],
        "same event, same license"
    );
}

#[tokio::test]
async fn every_v1_activity_reaches_its_operation() {
    let gw = TestGateway::new().await;
    let order_id = order();
    let create = [
        ("activity", "newInstance"),
        ("orderId", order_id.as_str()),
        ("businessId", "61e834ba-7b97-4418-b8f7-e5345137278c"),
        ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
        ("productId", "00301-666666-0--0"),
        ("expireTime", "20301231235959"),
        ("periodType", "year"),
        ("periodNumber", "1"),
        ("customerName", "Zhang San+Li Si"),
    ];
    let reply = gw.v1("reference", &create, KEY).await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    let instance = ids::instance_id("reference", &order_id, Some("00301-666666-0--0"));
    assert_eq!(reply.json["instanceId"], instance.as_str());

    let instance = instance.as_str();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("activity", "refreshInstance"),
            ("orderId", "CS2"),
            ("instanceId", instance),
            ("expireTime", "20311231235959"),
        ],
        vec![
            ("activity", "expireInstance"),
            ("orderId", "CS1"),
            ("instanceId", instance),
        ],
        vec![
            ("activity", "instanceStatus"),
            ("instanceId", instance),
            ("instanceStatus", "NORMAL"),
        ],
        vec![
            ("activity", "releaseInstance"),
            ("orderId", "CS1"),
            ("instanceId", instance),
        ],
        vec![
            ("activity", "upgrade"),
            ("orderId", "CS3"),
            ("instanceId", instance),
            ("productId", "P9"),
            ("skuCode", "sku-pro"),
            ("amount", "20"),
        ],
        vec![("activity", "queryInstance"), ("instanceId", instance)],
        vec![
            ("activity", "getLicense"),
            ("orderId", "CS4"),
            ("customerId", "c1"),
            ("productId", "P1"),
        ],
    ];
    for params in cases {
        let reply = gw.v1("reference", &params, KEY).await;
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), "000000", "{params:?}: {:?}", reply.json);
    }
}

/// The misbehave plugin declines with the error its order id names.
async fn misbehave_create(gw: &TestGateway, order_id: &str) -> Reply {
    let body = json!({"activity": "newInstance", "orderId": order_id, "orderLineId": "L-1"});
    gw.v2("misbehave", &body, KEY).await
}

#[tokio::test]
async fn every_result_code_reaches_the_wire_signed() {
    let gw = TestGateway::new().await;
    let mut seen = Vec::new();
    let mut record = |reply: Reply, expected: ResultCode| {
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), expected.code(), "{:?}", reply.json);
        assert!(!reply.message().is_empty());
        seen.push(expected);
    };
    record(create_v2(&gw, &order()).await, ResultCode::Success);
    let wrong = gw
        .v2("reference", &json!({"activity": "newInstance"}), "wrong")
        .await;
    record(wrong, ResultCode::AuthFailed);
    let missing = gw
        .v2("reference", &json!({"activity": "newInstance"}), KEY)
        .await;
    record(missing, ResultCode::InvalidParams);
    let declines = [
        ("error-instance-not-found", ResultCode::InstanceNotFound),
        ("error-in-progress", ResultCode::Processing),
        ("trap", ResultCode::Internal),
        ("error-service-error", ResultCode::ServiceError),
        ("error-already-subscribed", ResultCode::AlreadySubscribed),
    ];
    for (order_id, code) in declines {
        record(misbehave_create(&gw, order_id).await, code);
    }
    let too_many = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L",
        "orderInfo": [{"productInfo": [{"linearValue": 5000}]}]});
    record(
        gw.v2("reference", &too_many, KEY).await,
        ResultCode::NoResources,
    );
    let gone = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L",
        "orderInfo": [{"productInfo": [{"skuCode": "sku-gone"}]}]});
    record(gw.v2("reference", &gone, KEY).await, ResultCode::SoldOut);
    seen.sort_by_key(|c| c.code());
    assert_eq!(
        seen,
        ResultCode::ALL.to_vec(),
        "every code of the table was produced"
    );
}

/// A V2 callback to the reference merchant under a nonce of the test's
/// choosing.
async fn v2_with_nonce(gw: &TestGateway, body: &serde_json::Value, nonce: &str) -> Reply {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let query = marketplace::v2_query(KEY, &bytes, now_ms(), nonce);
    let uri = format!("/callbacks/reference?{query}");
    gw.send(Method::POST, &uri, bytes).await
}

#[tokio::test]
async fn a_nonce_remembered_by_a_claim_is_refused_everywhere_else_and_claims_nothing() {
    let gw = TestGateway::new().await;
    let create = |order_id: &str| {
        json!({"activity": "newInstance", "orderId": order_id,
            "orderLineId": format!("{order_id}-000001"), "businessId": marketplace::random_nonce()})
    };
    let (first, second) = (order(), order());
    let created = v2_with_nonce(&gw, &create(&first), "claimed-nonce").await;
    assert_eq!(created.code(), "000000", "{:?}", created.json);

    // Another order under the same nonce: refused, and nothing of it stored.
    let refused = v2_with_nonce(&gw, &create(&second), "claimed-nonce").await;
    assert_eq!(refused.code(), "000001", "{:?}", refused.json);
    let second_id = ids::instance_id("reference", &second, Some(&format!("{second}-000001")));
    let store = gw.app.operations().store().clone();
    let instance = store.instance("reference", &second_id).await;
    assert_eq!(
        instance.ok(),
        Some(None),
        "the refused create proposed no instance"
    );

    // A read meets the nonce a claim remembered, and a claim the one a read did.
    let instance = created.json["instanceId"].as_str().expect("an instance id");
    let query = json!({"activity": "queryInstance", "instanceId": instance});
    let read = v2_with_nonce(&gw, &query, "claimed-nonce").await;
    assert_eq!(read.code(), "000001", "{:?}", read.json);
    let read = v2_with_nonce(&gw, &query, "read-nonce").await;
    assert_eq!(read.code(), "000000", "{:?}", read.json);
    let refused = v2_with_nonce(&gw, &create(&second), "read-nonce").await;
    assert_eq!(refused.code(), "000001", "{:?}", refused.json);

    // Under a fresh nonce, the second order is created as usual.
    let created = v2_with_nonce(&gw, &create(&second), "fresh-nonce").await;
    assert_eq!(created.code(), "000000", "{:?}", created.json);
    assert_eq!(created.json["instanceId"], second_id.as_str());
}

#[tokio::test]
async fn the_negative_set_answers_000001_and_never_reaches_the_plugin() {
    let gw = TestGateway::new().await;
    // Were any of these to reach the plugin, it would trap (and be counted).
    let body = br#"{"activity":"newInstance","orderId":"trap","orderLineId":"L-1"}"#.to_vec();
    let now = now_ms();
    let signed = |ts: i64, nonce: &str| marketplace::v2_query(KEY, &body, ts, nonce);
    let good = signed(now, "fixed-nonce-1");
    let signature = good
        .split('&')
        .next()
        .and_then(|p| p.strip_prefix("signature="))
        .unwrap_or("");
    let rest = good.split_once('&').map(|(_, r)| r).unwrap_or("");
    let mut tampered = body.clone();
    tampered[15] ^= 0x01;
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("tampered body", good.clone(), tampered),
        (
            "wrong key",
            marketplace::v2_query("wrong", &body, now, "n2"),
            body.clone(),
        ),
        (
            "empty signature",
            format!("signature=&{rest}"),
            body.clone(),
        ),
        (
            "truncated signature",
            format!("signature={}&{rest}", &signature[..32]),
            body.clone(),
        ),
        ("61 s in the past", signed(now - 61_000, "n3"), body.clone()),
        (
            "61 s in the future",
            signed(now + 61_000, "n4"),
            body.clone(),
        ),
        ("no signature", rest.to_string(), body.clone()),
        (
            "no timestamp",
            good.replace(&format!("&timestamp={now}"), ""),
            body.clone(),
        ),
        (
            "no nonce",
            good.replace("&nonce=fixed-nonce-1", ""),
            body.clone(),
        ),
        (
            "duplicated signature",
            format!("{good}&signature={signature}"),
            body.clone(),
        ),
    ];
    for (name, query, body) in cases {
        let reply = gw
            .send(Method::POST, &format!("/callbacks/misbehave?{query}"), body)
            .await;
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), "000001", "{name}: {:?}", reply.json);
        assert_eq!(
            reply.message(),
            "authentication failed",
            "{name}: reveals nothing"
        );
    }
    // A replay: the first use of the nonce passes (and traps), the second is refused.
    let replayed = signed(now, "replayed-nonce");
    let first = gw
        .send(
            Method::POST,
            &format!("/callbacks/misbehave?{replayed}"),
            body.clone(),
        )
        .await;
    assert_eq!(first.code(), "000005");
    let second = gw
        .send(
            Method::POST,
            &format!("/callbacks/misbehave?{replayed}"),
            body.clone(),
        )
        .await;
    assert_eq!(second.code(), "000001", "a replayed nonce is refused");

    // V1: missing authToken, missing timeStamp, a tampered parameter.
    let params = vec![
        ("activity".to_string(), "newInstance".to_string()),
        ("orderId".to_string(), "trap".to_string()),
    ];
    let v1 = marketplace::v1_query(KEY, &params, now);
    let without = |name: &str| {
        v1.split('&')
            .filter(|p| !p.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            .join("&")
    };
    for query in [
        without("authToken"),
        without("timeStamp"),
        v1.replace("trap", "trip"),
    ] {
        let reply = gw.get_query("misbehave", &query).await;
        assert_eq!(reply.code(), "000001", "{query}: {:?}", reply.json);
    }

    let (_, metrics) = gw.get_admin("/metrics").await;
    let traps: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("gateway_plugin_failures_total") && l.contains("trap"))
        .collect();
    assert_eq!(
        traps,
        ["gateway_plugin_failures_total{merchant=\"misbehave\",reason=\"trap\"} 1"],
        "only the first use of the replayed nonce reached the plugin"
    );
}

#[tokio::test]
async fn invalid_fields_answer_000002_naming_the_field() {
    let gw = TestGateway::new().await;
    let cases = [
        (
            json!({"activity": "newInstance", "orderId": "CS1"}),
            "orderLineId is missing",
        ),
        (
            json!({"activity": "newInstance", "orderId": "x".repeat(65), "orderLineId": "L"}),
            "orderId is longer than 64 characters",
        ),
        (
            json!({"activity": "refreshInstance", "orderId": "CS1", "orderLineId": "L",
                "instanceId": "i", "scene": "RENEWAL", "expireTime": "2030-12-31"}),
            "expireTime must be a UTC time as yyyyMMddHHmmss",
        ),
        (
            json!({"activity": "refreshInstance", "orderId": "CS1", "orderLineId": "L",
                "instanceId": "i", "scene": "FOREVER", "expireTime": "20301231235959"}),
            "scene must be RENEWAL",
        ),
        (
            json!({"activity": "updateInstanceStatus", "instanceId": "i", "status": "PAUSE"}),
            "status must be FREEZE or UNFREEZE",
        ),
        (json!({"activity": "explode"}), "unknown activity `explode`"),
        (
            json!({"activity": "upgrade", "instanceId": "i"}),
            "unknown activity `upgrade`",
        ),
        (
            json!({"activity": "newInstance", "orderId": "CS1", "orderLineId": "L", "testFlag": "2"}),
            "testFlag must be 0 or 1",
        ),
        (
            json!({"activity": "queryInstance", "instanceId": vec!["i"; 101].join(",")}),
            "instanceId lists more than 100 ids",
        ),
        (json!({"orderId": "CS1"}), "activity is missing"),
    ];
    for (body, expected) in cases {
        let reply = gw.v2("reference", &body, KEY).await;
        reply.assert_signed_by(KEY);
        assert_eq!(reply.code(), "000002", "{body}");
        assert!(
            reply.message().contains(expected),
            "{body}: {}",
            reply.message()
        );
    }
    // Signed, but not JSON; and a body over the limit.
    for body in [b"not json".to_vec(), b"[1,2]".to_vec()] {
        let query = marketplace::v2_query(KEY, &body, now_ms(), &marketplace::random_nonce());
        let reply = gw
            .send(Method::POST, &format!("/callbacks/reference?{query}"), body)
            .await;
        assert_eq!(reply.code(), "000002", "{:?}", reply.json);
    }
    let huge = format!(
        r#"{{"activity":"newInstance","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let reply = gw
        .v2(
            "reference",
            &serde_json::from_str(&huge).expect("json"),
            KEY,
        )
        .await;
    assert_eq!(reply.code(), "000002");
    assert!(
        reply.message().contains("larger than 65536 bytes"),
        "{}",
        reply.message()
    );

    // Unknown extra fields are accepted.
    let body = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L",
        "somethingNew": {"nested": true}});
    assert_eq!(gw.v2("reference", &body, KEY).await.code(), "000000");
}

#[tokio::test]
async fn an_unknown_merchant_is_refused_exactly_like_a_wrong_key() {
    let gw = TestGateway::new().await;
    let body = json!({"activity": "newInstance", "orderId": "CS1", "orderLineId": "L"});
    let unknown = gw.v2("nobody", &body, KEY).await;
    let wrong_key = gw.v2("reference", &body, "wrong").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.bytes, wrong_key.bytes, "the same answer body");
    let header = unknown
        .body_sign
        .as_deref()
        .expect("signed like any answer");
    assert!(
        header.starts_with("sign_type=\"HMAC-SHA256\", signature=\""),
        "{header}"
    );
    let (_, metrics) = gw.get_admin("/metrics").await;
    assert!(
        !metrics.contains("nobody"),
        "unknown ids never become metric labels"
    );
    assert!(metrics.contains("merchant=\"unknown\""));
}

#[tokio::test]
async fn test_calls_reach_the_plugin_marked_as_tests() {
    let gw = TestGateway::new().await;
    for (flag, marked) in [("1", true), ("0", false)] {
        let body = json!({"activity": "newInstance", "orderId": order(), "orderLineId": "L",
            "testFlag": flag});
        let reply = gw.v2("reference", &body, KEY).await;
        assert_eq!(reply.code(), "000000");
        let memo = reply.json["appInfo"]["memo"].as_str().unwrap_or_default();
        assert_eq!(memo.contains("(test)"), marked, "{memo}");
    }
}

#[tokio::test]
async fn a_plugin_past_its_deadline_gets_000005_well_within_the_budget() {
    let gw = TestGateway::new().await;
    let started = Instant::now();
    let reply = misbehave_create(&gw, "loop").await;
    let elapsed = started.elapsed();
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000005");
    assert_eq!(reply.message(), "plugin deadline exceeded");
    assert!(
        elapsed.as_millis() < 4_000,
        "answered in {elapsed:?}, inside the budget"
    );
    // The sandbox is fine afterwards.
    assert_eq!(misbehave_create(&gw, "fine").await.code(), "000000");
}

#[tokio::test]
async fn merchant_options_aes128_and_unsigned_answers() {
    let gw = TestGateway::with_config("", "encrypt_type = 2\nsign_responses = false").await;
    let reply = create_v2(&gw, &order()).await;
    assert_eq!(reply.code(), "000000");
    assert_eq!(reply.json["encryptType"], "2");
    let password = reply.json["appInfo"]["password"]
        .as_str()
        .expect("password");
    assert!(credentials::decrypt(KEY, EncryptType::Aes128, password).is_ok());
    assert!(reply.body_sign.is_none(), "signing switched off");
}

#[tokio::test]
async fn rotated_keys_verify_and_answers_are_signed_with_the_key_used() {
    let env = |name: &str| {
        (name == "GATEWAY_MERCHANT_REFERENCE_ACCESS_KEYS").then(|| format!("new-key,{KEY}"))
    };
    let gw = TestGateway::build("", "", &env).await;
    let instance = new_instance(&gw).await;
    let body = json!({"activity": "releaseInstance", "instanceId": instance});
    for key in ["new-key", KEY] {
        let reply = gw.v2("reference", &body, key).await;
        reply.assert_signed_by(key);
        assert_eq!(reply.code(), "000000");
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = TestGateway::new().await;
    assert_eq!(gw.get("/healthz").await, (StatusCode::OK, "ok".to_string()));
    assert_eq!(gw.get("/readyz").await.0, StatusCode::OK);
    let instance = new_instance(&gw).await;
    let params = [
        ("activity", "releaseInstance"),
        ("orderId", "CS1"),
        ("instanceId", instance.as_str()),
    ];
    gw.v1("reference", &params, KEY).await;
    gw.v1("reference", &params, KEY).await;
    let (status, metrics) = gw.get_admin("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "gateway_callbacks_total{merchant=\"reference\",generation=\"v2\",activity=\"newInstance\",result_code=\"000000\"} 1",
        "gateway_callbacks_total{merchant=\"reference\",generation=\"v1\",activity=\"releaseInstance\",result_code=\"000000\"} 2",
        "gateway_operations_total{merchant=\"reference\",kind=\"release\",path=\"executed\"} 1",
        "gateway_operations_total{merchant=\"reference\",kind=\"release\",path=\"replayed_cache\"} 1",
        "gateway_operation_results_cached 2",
        "gateway_callback_duration_seconds_count{merchant=\"reference\",activity=\"newInstance\"} 1",
        "gateway_plugin_compilations",
        "gateway_sandboxes_busy 0",
        "gateway_sandbox_slot_reset{mode=\"",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    // Merchant ids and volumes are not for the callback port: there,
    // /metrics is no endpoint at all (answered in the contract's shape).
    let public = gw.send(Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(public.status, StatusCode::NOT_FOUND);
    assert_eq!(public.code(), "000002");
    assert!(!String::from_utf8_lossy(&public.bytes).contains("reference"));
    let (_, status) = gw.get_admin("/status").await;
    assert!(status.contains(r#""store":"ok""#), "{status}");
    assert!(gw.app.drain(std::time::Duration::from_secs(1)).await);
    assert_eq!(gw.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_body_that_never_finishes_is_answered_within_the_budget() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 600\n[store]\nbusy_timeout_ms = 200",
        "deadline_ms = 500",
    )
    .await;
    let first_chunk = futures_util::stream::once(async { Ok::<_, std::io::Error>(b"{".to_vec()) });
    let never_ending = futures_util::StreamExt::chain(first_chunk, futures_util::stream::pending());
    let query = marketplace::v2_query(KEY, b"{}", now_ms(), &marketplace::random_nonce());
    let started = Instant::now();
    let reply = gw
        .send_body(
            Method::POST,
            &format!("/callbacks/reference?{query}"),
            axum::body::Body::from_stream(never_ending),
        )
        .await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000002");
    assert!(
        reply.message().contains("not received within"),
        "{}",
        reply.message()
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed.as_millis() >= 500 && elapsed.as_millis() < 2_000,
        "{elapsed:?}"
    );
}
