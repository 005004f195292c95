//! A store written by an earlier gateway is read by this one: the fixture
//! `tests/fixtures/store-before-split.db` was produced by the gateway before
//! the crates were split (operation records holding bare requests and
//! answers, schema version 1). Its retries must replay the same answers, its
//! retryable operation must be re-driven from its stored request, and its
//! instances must still be known.

use e2e::served::{KEY, TestGateway};
use gateway::config::{StoreConfig, lower};
use serde_json::json;

const CREATED_INSTANCE: &str = "3fefb756-a89a-5a0c-81fd-1d5d2d16c783";

fn series(merchant: &str, kind: &str, path: &str) -> String {
    format!("gateway_operations_total{{merchant=\"{merchant}\",kind=\"{kind}\",path=\"{path}\"}}")
}

/// A gateway on a copy of the fixture store.
async fn gateway_on_the_fixture() -> TestGateway {
    let data = tempfile::tempdir().expect("a temporary data dir");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-before-split.db");
    std::fs::create_dir_all(data.path().join("data")).expect("the data dir");
    std::fs::copy(&fixture, data.path().join("data/gateway.db")).expect("a copy of the fixture");
    TestGateway::in_dir(data, "", "", &|_| None).await
}

#[tokio::test]
async fn retries_of_operations_stored_before_the_split_replay_their_answers() {
    let gw = gateway_on_the_fixture().await;
    // The same business fields the fixture's gateway received.
    let create = json!({"activity": "newInstance", "orderId": "CSFIXTURE1",
        "orderLineId": "CSFIXTURE1-000001", "businessId": "a-retry",
        "buyerInfo": {"customerId": "c-1"}, "orderInfo": [{"chargingMode": "PERIOD",
        "periodType": "month", "periodNumber": 1, "expireTime": "20301231235959",
        "productInfo": [{"skuCode": "basic", "productId": "P-1", "linearValue": 5}]}]});
    let reply = gw.v2("reference", &create, KEY).await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);
    assert_eq!(reply.json["instanceId"], CREATED_INSTANCE);
    assert_eq!(
        reply.json["appInfo"]["frontEndUrl"],
        "https://ref.example.com/t-95ccadc10a73"
    );
    assert_eq!(
        gw.metric(&series("reference", "create", "replayed_store"))
            .await,
        Some(1),
        "replayed from the old record, not executed"
    );

    let v1 = gw
        .v1(
            "reference",
            &[
                ("activity", "newInstance"),
                ("orderId", "CSFIXTURE3"),
                ("customerId", "c-3"),
                ("productId", "P-3"),
                ("expireTime", "20301231235959"),
            ],
            KEY,
        )
        .await;
    assert_eq!(
        v1.json["instanceId"],
        "ab9bb5d5-7dbc-5d2e-a7b6-e5f07ae8aa50"
    );

    let license = json!({"activity": "getLicenseAsync", "instanceId": CREATED_INSTANCE,
        "eventId": "EVFIXTURE", "effectiveTime": "2023-10-27 10:30:15 z"});
    let reply = gw.v2("reference", &license, KEY).await;
    assert_eq!(reply.json["license"], "LIC-6E088AEFD3381902FB4DE844");

    let sold_out = json!({"activity": "newInstance", "orderId": "error-sold-out",
        "orderLineId": "L1"});
    assert_eq!(gw.v2("misbehave", &sold_out, KEY).await.code(), "000106");
    assert_eq!(
        gw.metric(&series("misbehave", "create", "executed")).await,
        None,
        "a business refusal stored before is replayed, not run again"
    );
    assert_eq!(
        gw.metric(&series("reference", "create", "executed")).await,
        None
    );

    // The instance is still known: an unfreeze reaches the plugin.
    let unfreeze = json!({"activity": "updateInstanceStatus", "instanceId": CREATED_INSTANCE,
        "status": "UNFREEZE"});
    assert_eq!(gw.v2("reference", &unfreeze, KEY).await.code(), "000000");
    let active = "SELECT COUNT(*) FROM instances WHERE instance_id = $1 AND status = 'active'";
    assert_eq!(gw.count(active, CREATED_INSTANCE).await, 1);
    let version = "SELECT MAX(version) FROM schema_migrations WHERE $1 = $1";
    assert!(
        gw.count(version, "").await > 1,
        "migrated forward from the fixture's version 1"
    );
}

#[tokio::test]
async fn the_completer_redrives_a_retryable_operation_stored_before_the_split() {
    let gw = gateway_on_the_fixture().await;
    let settings = lower::upkeep(&StoreConfig::default());
    let pass = gw
        .app
        .operations()
        .complete_stuck(&settings)
        .await
        .expect("a pass");
    assert_eq!(pass.unreadable, 0, "{pass:?}");
    assert_eq!(pass.redriven, 1, "{pass:?}");
    let attempts = "SELECT attempt FROM operations WHERE business_key = $1";
    assert_eq!(
        gw.count(attempts, "create / error-internal / L1").await,
        2,
        "the old bare request was read and run again"
    );
}
