//! Every operation of the contract round-trips through the reference plugin,
//! including each of its refusals and the result code it maps to.

use std::time::Duration;

use e2e::{answered, declined, load, merchant, request, runtime};
use gateway::executor::coded_outcome;
use gateway_sandbox::Invocation;
use koogallery_contract::{Operation, OperationOutput, PluginError};
use koogallery_protocol::ResultCode;
use serde_json::json;

const INSTANCE: &str = "c968a516-7124-5800-b3f7-7490575410b0";

fn code(invocation: &Invocation) -> ResultCode {
    coded_outcome(&invocation.outcome).code
}

fn create_fields() -> serde_json::Value {
    json!({
        "instance_id": INSTANCE, "order_id": "CS2211181819B4LVS", "order_line_id": "CS2211181819B4LVS-000001",
        "kind": "Purchase", "charging_mode": "Period", "period": {"unit": "Month", "count": 1},
        "expire_at": {"unix_seconds": 1_795_000_000}, "product": {"sku_code": "basic", "linear_value": 5},
        "customer": {"id": "68cbc86abc2018ab880d92f36422fa0e", "name": "Buyer"},
    })
}

#[tokio::test]
async fn create_returns_the_assigned_instance_and_app_info_and_query_agrees() {
    let rt = runtime(8);
    let plugin = load(&rt, "reference");
    let acme = merchant(
        &[("base_url", "https://acme.example.com/")],
        Duration::from_secs(2),
    );

    let created = rt
        .invoke(&plugin, &acme, &request(Operation::Create, create_fields()))
        .await;
    let OperationOutput::Created(created_output) = answered(&created) else {
        panic!("not a create output")
    };
    assert_eq!(created_output.instance_id, INSTANCE);
    let app = created_output
        .app_info
        .clone()
        .expect("app info on a synchronous create");
    let front = app.front_end_url.clone().expect("frontEndUrl");
    assert!(front.starts_with("https://acme.example.com/t-"), "{front}");
    assert_eq!(
        app.admin_url.as_deref(),
        Some(format!("{front}/admin").as_str())
    );
    assert!(
        app.user_name
            .as_deref()
            .is_some_and(|u| u.starts_with("admin@t-"))
    );
    assert_eq!(app.password.as_deref().map(str::len), Some(16));
    assert_eq!(
        app.memo.as_deref(),
        Some("subscription until 20261118110640 (test)")
    );
    assert_eq!(code(&created), ResultCode::Success);
    assert_eq!(
        created.logs.len(),
        1,
        "the plugin logs one record: {:?}",
        created.logs
    );
    assert_eq!(
        created.logs[0]
            .fields
            .get("instance_id")
            .map(String::as_str),
        Some(INSTANCE)
    );
    assert!(created.peak_memory_bytes > 0);

    let again = rt
        .invoke(&plugin, &acme, &request(Operation::Create, create_fields()))
        .await;
    assert_eq!(
        answered(&again),
        answered(&created),
        "a retry gets the identical answer"
    );

    let query = json!({"instance_ids": [INSTANCE, "another-instance"]});
    let queried = rt
        .invoke(&plugin, &acme, &request(Operation::Query, query))
        .await;
    let OperationOutput::Instances(reports) = answered(&queried) else {
        panic!("not a query output")
    };
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].instance_id, INSTANCE);
    let reported = reports[0].app_info.clone().expect("app info");
    assert_eq!(
        (reported.front_end_url, reported.password),
        (app.front_end_url, app.password)
    );
    assert_ne!(reports[1].app_info, reports[0].app_info);
}

#[tokio::test]
async fn create_refusals_map_to_their_result_codes() {
    let rt = runtime(8);
    let plugin = load(&rt, "reference");
    let config = [
        ("sold_out_skus", "gold, platinum"),
        ("max_linear_value", "10"),
    ];
    let shop = merchant(&config, Duration::from_secs(2));
    let cases = [
        (
            json!({"product": {"sku_code": "gold"}}),
            ResultCode::SoldOut,
        ),
        (
            json!({"product": {"linear_value": 11}}),
            ResultCode::NoResources,
        ),
        (
            json!({"kind": "Trial", "charging_mode": null, "expire_at": null}),
            ResultCode::InvalidParams,
        ),
        (json!({"kind": "PayPerUse"}), ResultCode::InvalidParams),
        (json!({"order_id": "  "}), ResultCode::InvalidParams),
    ];
    for (change, expected) in cases {
        let mut fields = create_fields();
        if let (Some(fields), serde_json::Value::Object(change)) =
            (fields.as_object_mut(), change.clone())
        {
            fields.extend(change);
        }
        let invocation = rt
            .invoke(&plugin, &shop, &request(Operation::Create, fields))
            .await;
        declined(&invocation);
        assert_eq!(
            code(&invocation),
            expected,
            "for {change}: {:?}",
            invocation.outcome
        );
    }
}

#[tokio::test]
async fn lifecycle_operations_answer_and_refuse_bad_input() {
    let rt = runtime(8);
    let plugin = load(&rt, "reference");
    let shop = merchant(&[("sold_out_skus", "gold")], Duration::from_secs(2));
    let renew = json!({"instance_id": INSTANCE, "order_id": "CS-R1", "scene": "Renewal",
                       "expire_at": {"unix_seconds": 1_800_000_000}});
    let freeze = json!({"instance_id": INSTANCE, "change": "Freeze", "cause": "Expired"});
    let unfreeze = json!({"instance_id": INSTANCE, "change": "Unfreeze", "cause": "Marketplace"});
    let upgrade =
        json!({"instance_id": INSTANCE, "order_id": "CS-U1", "product": {"sku_code": "silver"}});
    let check_ok = json!({"instance_id": INSTANCE, "product": {"sku_code": "silver"}});
    let check_no = json!({"instance_id": INSTANCE, "product": {"sku_code": "gold"}});
    let cases = [
        (Operation::Renew, renew.clone(), ResultCode::Success),
        (
            Operation::Renew,
            json!({"instance_id": INSTANCE, "order_id": "CS-R1", "scene": "TrialToFormal",
                                   "expire_at": {"unix_seconds": 0}}),
            ResultCode::InvalidParams,
        ),
        (Operation::UpdateStatus, freeze, ResultCode::Success),
        (Operation::UpdateStatus, unfreeze, ResultCode::Success),
        (Operation::Upgrade, upgrade, ResultCode::Success),
        // V2's upgradeInstance names no product: accepted (issue 13).
        (
            Operation::Upgrade,
            json!({"instance_id": INSTANCE, "order_id": "CS-U1", "product": {}}),
            ResultCode::Success,
        ),
        (
            Operation::Upgrade,
            json!({"instance_id": INSTANCE, "order_id": "", "product": {}}),
            ResultCode::InvalidParams,
        ),
        (Operation::ChangeCheck, check_ok, ResultCode::Success),
        (Operation::ChangeCheck, check_no, ResultCode::InvalidParams),
        (
            Operation::Release,
            json!({"instance_id": INSTANCE, "order_id": "CS1"}),
            ResultCode::Success,
        ),
        (
            Operation::Release,
            json!({"instance_id": ""}),
            ResultCode::InvalidParams,
        ),
        (
            Operation::Query,
            json!({"instance_ids": []}),
            ResultCode::InvalidParams,
        ),
    ];
    for (operation, fields, expected) in cases {
        let invocation = rt
            .invoke(&plugin, &shop, &request(operation, fields.clone()))
            .await;
        assert_eq!(
            code(&invocation),
            expected,
            "{operation} {fields}: {:?}",
            invocation.outcome
        );
        if expected == ResultCode::Success {
            assert!(
                matches!(answered(&invocation), OperationOutput::Done),
                "{operation}"
            );
        }
    }
}

#[tokio::test]
async fn a_query_of_more_than_100_instances_is_refused() {
    let rt = runtime(4);
    let plugin = load(&rt, "reference");
    let ids: Vec<String> = (0..101).map(|i| format!("instance-{i}")).collect();
    let invocation = rt
        .invoke(
            &plugin,
            &merchant(&[], Duration::from_secs(2)),
            &request(Operation::Query, json!({"instance_ids": ids})),
        )
        .await;
    assert!(matches!(declined(&invocation), PluginError::InvalidRequest(m) if m.contains("100")));
}

#[tokio::test]
async fn the_same_license_request_yields_the_same_license() {
    let rt = runtime(4);
    let plugin = load(&rt, "reference");
    let shop = merchant(&[], Duration::from_secs(2));
    let fields = json!({"instance_id": INSTANCE, "event_id": "EV-1", "effective_at": {"unix_seconds": 1_700_000_000}});
    let first = rt
        .invoke(
            &plugin,
            &shop,
            &request(Operation::IssueLicense, fields.clone()),
        )
        .await;
    let second = rt
        .invoke(&plugin, &shop, &request(Operation::IssueLicense, fields))
        .await;
    let OperationOutput::License(license) = answered(&first) else {
        panic!("not a license")
    };
    assert!(license.content.starts_with("LIC-"), "{}", license.content);
    assert_eq!(answered(&first), answered(&second));
    let other = rt
        .invoke(
            &plugin,
            &shop,
            &request(
                Operation::IssueLicense,
                json!({"instance_id": INSTANCE, "event_id": "EV-2"}),
            ),
        )
        .await;
    assert_ne!(answered(&other), answered(&first));
    let nothing = rt
        .invoke(&plugin, &shop, &request(Operation::IssueLicense, json!({})))
        .await;
    assert_eq!(code(&nothing), ResultCode::InvalidParams);
}

/// The plugins link with a 128 KiB stack (`.cargo/config.toml`), not Rust's
/// 1 MiB default: a create holds well under 1 MiB of linear memory, which is
/// what a pool slot's reset clears without pagemap scanning.
#[tokio::test]
async fn a_create_holds_under_a_mebibyte_of_linear_memory() {
    let rt = runtime(2);
    let plugin = load(&rt, "reference");
    let invocation = rt
        .invoke(
            &plugin,
            &merchant(&[], Duration::from_secs(2)),
            &request(Operation::Create, create_fields()),
        )
        .await;
    answered(&invocation);
    assert!(
        invocation.peak_memory_bytes < 1 << 20,
        "{} bytes of linear memory",
        invocation.peak_memory_bytes
    );
}
