//! The idempotency rules, in process, on a real SQLite store and real
//! plugins: what is replayed and what re-executes, per activity; fingerprint
//! mismatches; operations on instances the gateway never assigned; a claim
//! held by a dead worker; a store that cannot write; the completer and the
//! reaper.

use std::time::Duration;

use e2e::served::{KEY, Reply, TestGateway, WriteLock};
use gateway::config::{StoreConfig, lower};
use gateway::operations::RecordedOperation;
use gateway::operations::upkeep::UpkeepSettings;
use gateway_store::Claim;
use koogallery_protocol::{
    self as protocol, EncryptType, Generation, ParseContext, marketplace, time::now_ms,
};
use serde_json::{Value, json};

fn order() -> String {
    format!("CS{}", marketplace::random_token(14))
}

fn create(order_id: &str, customer: &str) -> Value {
    json!({"activity": "newInstance", "orderId": order_id, "orderLineId": format!("{order_id}-1"),
           "businessId": marketplace::random_nonce(), "buyerInfo": {"customerId": customer}})
}

fn renew(instance: &str, order_id: &str) -> Value {
    json!({"activity": "refreshInstance", "orderId": order_id, "orderLineId": format!("{order_id}-1"),
           "instanceId": instance, "scene": "RENEWAL", "expireTime": "20301231235959"})
}

fn status(instance: &str, change: &str) -> Value {
    json!({"activity": "updateInstanceStatus", "instanceId": instance, "status": change})
}

fn instance_of(reply: &Reply) -> String {
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    reply.json["instanceId"]
        .as_str()
        .expect("an instance id")
        .to_string()
}

fn series(merchant: &str, kind: &str, path: &str) -> String {
    format!("gateway_operations_total{{merchant=\"{merchant}\",kind=\"{kind}\",path=\"{path}\"}}")
}

#[tokio::test]
async fn the_same_order_with_other_business_fields_is_refused_and_logged() {
    let gw = TestGateway::new().await;
    let order_id = order();
    let first = gw.v2("reference", &create(&order_id, "buyer-1"), KEY).await;
    let instance = instance_of(&first);

    let changed = gw.v2("reference", &create(&order_id, "buyer-2"), KEY).await;
    changed.assert_signed_by(KEY);
    assert_eq!(changed.code(), "000002", "{:?}", changed.json);
    assert!(changed.message().contains("different business fields"));

    let again = gw.v2("reference", &create(&order_id, "buyer-1"), KEY).await;
    assert_eq!(instance_of(&again), instance, "the original still replays");
    assert_eq!(again.json, first.json, "the very same business answer");
    assert_eq!(
        gw.metric(&series("reference", "create", "executed")).await,
        Some(1)
    );
    assert_eq!(
        gw.metric(&series("reference", "create", "fingerprint_mismatch"))
            .await,
        Some(1)
    );
}

#[tokio::test]
async fn a_duplicate_renewal_answers_success_without_extending_twice() {
    let gw = TestGateway::new().await;
    let instance = instance_of(&gw.v2("reference", &create(&order(), "s"), KEY).await);
    let renewal = order();
    for _ in 0..3 {
        let reply = gw.v2("reference", &renew(&instance, &renewal), KEY).await;
        assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    }
    assert_eq!(
        gw.metric(&series("reference", "renew", "executed")).await,
        Some(1)
    );
    assert_eq!(
        gw.metric(&series("reference", "renew", "replayed_cache"))
            .await,
        Some(2)
    );
    let next_year = gw.v2("reference", &renew(&instance, &order()), KEY).await;
    assert_eq!(next_year.code(), "000000");
    assert_eq!(
        gw.metric(&series("reference", "renew", "executed")).await,
        Some(2),
        "another renewal order is another operation"
    );
    let expiry = "SELECT expires_at FROM instances WHERE instance_id = $1";
    assert_eq!(gw.count(expiry, &instance).await, 1_924_991_999);
}

#[tokio::test]
async fn freeze_unfreeze_freeze_runs_every_change() {
    let gw = TestGateway::new().await;
    let instance = instance_of(&gw.v2("reference", &create(&order(), "s"), KEY).await);
    for change in ["FREEZE", "FREEZE", "UNFREEZE", "FREEZE"] {
        let reply = gw.v2("reference", &status(&instance, change), KEY).await;
        assert_eq!(reply.code(), "000000", "{change}: {:?}", reply.json);
    }
    let frozen = "SELECT COUNT(*) FROM instances WHERE instance_id = $1 AND status = 'frozen'";
    assert_eq!(gw.count(frozen, &instance).await, 1);
    let freeze = "status:freeze";
    assert_eq!(
        gw.metric(&series("reference", freeze, "executed")).await,
        Some(2),
        "the freeze after the unfreeze ran again"
    );
    assert_eq!(
        gw.metric(&series("reference", freeze, "replayed_store"))
            .await,
        Some(1),
        "the immediate duplicate replayed (toggles are never replayed from memory)"
    );
}

#[tokio::test]
async fn an_instance_the_gateway_never_assigned_gets_000003_unless_a_test_or_imported() {
    let gw = TestGateway::new().await;
    let stranger = "legacy-instance-1";
    let reply = gw.v2("reference", &renew(stranger, &order()), KEY).await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000003", "{:?}", reply.json);
    assert_eq!(
        gw.metric(&series("reference", "renew", "unknown_instance"))
            .await,
        Some(1)
    );
    assert_eq!(
        gw.metric(&series("reference", "renew", "executed")).await,
        None,
        "the plugin never ran (the unknown_instance series above proves the labels)"
    );

    let mut probe = renew(stranger, &order());
    probe["testFlag"] = json!("1");
    let reply = gw.v2("reference", &probe, KEY).await;
    assert_eq!(
        reply.code(),
        "000000",
        "marketplace probes reach the plugin"
    );

    let importing = TestGateway::with_config("", "unknown_instances = \"import\"").await;
    let reply = importing
        .v2("reference", &renew(stranger, &order()), KEY)
        .await;
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    let imported = "SELECT COUNT(*) FROM instances WHERE instance_id = $1 AND origin = 'imported'";
    assert_eq!(importing.count(imported, stranger).await, 1);
}

/// Claims `body` exactly as a gateway would, as a worker that then died:
/// the record stays in flight until its lease runs out.
async fn claim_as_a_dead_worker(gw: &TestGateway, merchant: &str, body: &Value, lease_ms: i64) {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let now = now_ms();
    let query = marketplace::v2_query(KEY, &bytes, now, &marketplace::random_nonce());
    let policy = lower::verify_policy(gw.config());
    let ctx = ParseContext {
        merchant,
        request_id: "dead-worker",
        access_key: KEY,
        encrypt_type: EncryptType::default(),
    };
    let (verified, callback) =
        protocol::read_callback(Generation::V2, &query, &bytes, &[KEY], now, &policy, &ctx)
            .expect("a valid callback");
    let op =
        RecordedOperation::from_callback(merchant, &callback, verified.signed_at_ms, false, None)
            .expect("recorded");
    let store = gw.app.operations().store();
    let claim = store
        .claim(&op.new_record(&gw.sealer()), now, lease_ms)
        .await
        .expect("the store answers");
    assert!(matches!(claim, Claim::Won { .. }), "{claim:?}");
}

#[tokio::test]
async fn a_claim_held_elsewhere_answers_in_progress_then_is_taken_over() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 600\n[store]\nlease_ms = 1000\nbusy_timeout_ms = 200",
        "deadline_ms = 500",
    )
    .await;
    let order_id = order();
    let body = create(&order_id, "s");
    claim_as_a_dead_worker(&gw, "reference", &body, 1_000).await;
    let waiting = gw.v2("reference", &body, KEY).await;
    waiting.assert_signed_by(KEY);
    assert_eq!(waiting.code(), "000004", "{:?}", waiting.json);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = gw.v2("reference", &body, KEY).await;
    let expected = koogallery_protocol::ids::instance_id(
        "reference",
        &order_id,
        Some(&format!("{order_id}-1")),
    );
    assert_eq!(instance_of(&taken), expected);
    let attempt = "SELECT attempt FROM operations WHERE instance_id = $1";
    assert_eq!(
        gw.count(attempt, &expected).await,
        2,
        "taken over under a new fence"
    );
}

#[tokio::test]
async fn a_merchant_may_answer_a_create_in_flight_with_its_assigned_id() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 600\n[store]\nlease_ms = 1000\nbusy_timeout_ms = 200",
        "deadline_ms = 500\ncreate_in_flight = \"success\"",
    )
    .await;
    let order_id = order();
    let body = create(&order_id, "s");
    claim_as_a_dead_worker(&gw, "reference", &body, 1_000).await;
    let early = gw.v2("reference", &body, KEY).await;
    let expected = koogallery_protocol::ids::instance_id(
        "reference",
        &order_id,
        Some(&format!("{order_id}-1")),
    );
    assert_eq!(instance_of(&early), expected);
    assert!(
        early.json.get("appInfo").is_none(),
        "nothing provisioned yet"
    );
    let renewal = gw.v2("reference", &renew(&expected, &order()), KEY).await;
    assert_eq!(
        renewal.code(),
        "000000",
        "the instance is known from the claim on"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_business_refusals_replayed() {
    let gw = TestGateway::new().await;
    let failing = json!({"activity": "newInstance", "orderId": "error-internal",
        "orderLineId": order()});
    for attempt in 1..=2 {
        let reply = gw.v2("misbehave", &failing, KEY).await;
        assert_eq!(
            reply.code(),
            "000005",
            "attempt {attempt}: {:?}",
            reply.json
        );
    }
    assert_eq!(
        gw.metric(&series("misbehave", "create", "retryable")).await,
        Some(2)
    );
    let line = failing["orderLineId"].as_str().unwrap_or_default();
    let instance = koogallery_protocol::ids::instance_id("misbehave", "error-internal", Some(line));
    let attempts = "SELECT attempt FROM operations WHERE instance_id = $1";
    assert_eq!(
        gw.count(attempts, &instance).await,
        2,
        "re-executed, same key"
    );

    let sold_out = json!({"activity": "newInstance", "orderId": "error-sold-out",
        "orderLineId": order()});
    for _ in 0..2 {
        let reply = gw.v2("misbehave", &sold_out, KEY).await;
        assert_eq!(reply.code(), "000106", "{:?}", reply.json);
    }
    assert_eq!(
        gw.metric(&series("misbehave", "create", "executed")).await,
        Some(1)
    );
    assert_eq!(
        gw.metric(&series("misbehave", "create", "replayed_cache"))
            .await,
        Some(1)
    );
}

#[tokio::test]
async fn the_completer_redrives_then_parks_and_the_reaper_keeps_parked_work_and_instances() {
    let gw = TestGateway::new().await;
    let failing = json!({"activity": "newInstance", "orderId": "error-internal",
        "orderLineId": order()});
    assert_eq!(gw.v2("misbehave", &failing, KEY).await.code(), "000005");
    let line = failing["orderLineId"].as_str().unwrap_or_default();
    let instance = koogallery_protocol::ids::instance_id("misbehave", "error-internal", Some(line));
    let settings = UpkeepSettings {
        max_attempts: 3,
        ..lower::upkeep(&StoreConfig::default())
    };
    let operations = gw.app.operations();
    for expected_attempt in [2, 3] {
        let pass = operations.complete_stuck(&settings).await.expect("a pass");
        assert_eq!((pass.redriven, pass.parked), (1, 0), "{pass:?}");
        let attempts = "SELECT attempt FROM operations WHERE instance_id = $1";
        assert_eq!(gw.count(attempts, &instance).await, expected_attempt);
    }
    let pass = operations.complete_stuck(&settings).await.expect("a pass");
    assert_eq!((pass.redriven, pass.parked), (0, 1), "{pass:?}");
    let parked = "SELECT COUNT(*) FROM operations WHERE instance_id = $1 AND status = 'parked'";
    assert_eq!(gw.count(parked, &instance).await, 1);

    // A settled record goes after its retention; the parked one waits for
    // a human, however old.
    let settled = json!({"activity": "newInstance", "orderId": order(), "orderLineId": order()});
    assert_eq!(gw.v2("misbehave", &settled, KEY).await.code(), "000000");
    let everything = UpkeepSettings {
        retention: Duration::ZERO,
        ..settings
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reaped = operations.reap(&everything).await.expect("a pass");
    assert_eq!(reaped.operations, 1, "the settled record: {reaped:?}");
    assert_eq!(gw.count(parked, &instance).await, 1, "the parked one stays");
    let kept = "SELECT COUNT(*) FROM instances WHERE instance_id = $1";
    assert_eq!(
        gw.count(kept, &instance).await,
        1,
        "instances are kept for good"
    );
}

#[tokio::test]
async fn unreadable_and_corrupt_records_are_parked_alone_and_never_starve_the_completer() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 600\n[store]\nlease_ms = 1000\nbusy_timeout_ms = 200",
        "deadline_ms = 500",
    )
    .await;
    // A good operation whose worker died: the completer should finish it.
    let order_id = order();
    claim_as_a_dead_worker(&gw, "reference", &create(&order_id, "s"), 1).await;
    // Older than it, 20 records this gateway cannot read (a kind from another
    // version) and one with a column out of range.
    {
        let conn = rusqlite::Connection::open(gw.database()).expect("a second connection");
        for i in 0..21 {
            let (kind, attempt) = if i < 20 {
                ("status:suspend", 1)
            } else {
                ("renew", -1)
            };
            conn.execute(
                "INSERT INTO operations (merchant_id, idempotency_key, test, kind, business_key, \
                 instance_id, fingerprint, status, attempt, locked_until, request_json, \
                 result_json, created_at, updated_at) VALUES ('reference', ?1, FALSE, ?2, \
                 'other', 'i', 'f', 'failed_retryable', ?3, NULL, '{}', NULL, 1, 1)",
                rusqlite::params![format!("kg-unreadable-{i}"), kind, attempt],
            )
            .expect("an unreadable row");
        }
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let settings = lower::upkeep(&StoreConfig::default());
    let pass = gw
        .app
        .operations()
        .complete_stuck(&settings)
        .await
        .expect("one corrupt row fails no pass");
    assert_eq!(pass.unreadable, 21, "{pass:?}");
    assert_eq!(pass.completed, 1, "the good one was completed: {pass:?}");
    let instance = koogallery_protocol::ids::instance_id(
        "reference",
        &order_id,
        Some(&format!("{order_id}-1")),
    );
    let done = "SELECT COUNT(*) FROM operations WHERE instance_id = $1 AND status = 'succeeded'";
    assert_eq!(gw.count(done, &instance).await, 1);
    let parked = "SELECT COUNT(*) FROM operations WHERE status = 'parked' \
                  AND park_reason LIKE 'unreadable: %' AND business_key = $1";
    assert_eq!(gw.count(parked, "other").await, 21);
    let next = gw
        .app
        .operations()
        .complete_stuck(&settings)
        .await
        .expect("a pass");
    assert_eq!(next, Default::default(), "parked rows do not come back");
}

#[tokio::test]
async fn a_store_that_cannot_write_never_yields_a_success() {
    let gw = TestGateway::with_config(
        "answer_budget_ms = 1000\n[store]\nlease_ms = 1000\nbusy_timeout_ms = 200",
        "deadline_ms = 400",
    )
    .await;
    // Before the claim: nothing is recorded, nothing runs.
    let lock = WriteLock::take(&gw).await;
    let order_id = order();
    let refused = gw.v2("reference", &create(&order_id, "b"), KEY).await;
    refused.assert_signed_by(KEY);
    assert_eq!(refused.code(), "000005", "{:?}", refused.json);
    lock.release().await;
    let executed = series("reference", "create", "executed");
    assert_eq!(gw.metric(&executed).await, None, "nothing ran");
    let retried = gw.v2("reference", &create(&order_id, "b"), KEY).await;
    assert_eq!(retried.code(), "000000", "{:?}", retried.json);
    assert_eq!(gw.metric(&executed).await, Some(1), "only the retry ran");

    // After the plugin ran: its success could not be written, so it is not
    // answered; the retry after the lease takes over and succeeds.
    let slow = json!({"activity": "newInstance", "orderId": "slow-200-write-lock",
        "orderLineId": order()});
    let gw = std::sync::Arc::new(gw);
    let first = tokio::spawn({
        let (gw, slow) = (gw.clone(), slow.clone());
        async move { gw.v2("misbehave", &slow, KEY).await }
    });
    tokio::time::sleep(Duration::from_millis(80)).await;
    let lock = WriteLock::take(&gw).await;
    let first = first.await.expect("the request task");
    assert_eq!(first.code(), "000005", "{:?}", first.json);
    lock.release().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let retried = gw.v2("misbehave", &slow, KEY).await;
    assert_eq!(retried.code(), "000000", "{:?}", retried.json);
}
