//! The admin API in process, on a real store with real plugin components:
//! a merchant's whole life through the API (create, upload, activate,
//! answer a signed callback, refuse a broken module, roll back), the
//! authorization matrix (merchant A can neither read nor change anything of
//! merchant B, on every route), the OpenAPI document covering every route,
//! activation and rollback under a load of callbacks, and changes that
//! survive a restart.

use std::sync::Arc;

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

fn plugin(name: &str) -> Vec<u8> {
    std::fs::read(test_support::plugin_path(name)).expect("the test plugin is built")
}

async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = if body.is_null() {
        AdminBody::Empty
    } else {
        AdminBody::Json(body)
    };
    gw.admin(method, path, Some(token), body).await
}

/// Uploads `bytes` as a plugin of `merchant` (activated if asked) with `token`.
async fn upload(
    gw: &TestGateway,
    merchant: &str,
    bytes: Vec<u8>,
    activate: bool,
    token: &str,
) -> (StatusCode, Value) {
    let query = if activate { "?activate=true" } else { "" };
    let path = format!("/admin/v1/merchants/{merchant}/plugins{query}");
    gw.admin(Method::POST, &path, Some(token), AdminBody::Wasm(bytes))
        .await
}

/// Creates merchant `id` (key `KEY`) on the reference plugin, active.
async fn merchant_on_reference(gw: &TestGateway, id: &str) {
    let (status, body) = call(gw, Method::POST, "/admin/v1/merchants", OPERATOR,
        json!({"id": id, "access_keys": [KEY], "settings": {"config": {"base_url": "https://api.example.com"}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(gw, id, plugin("reference"), true, OPERATOR).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create(gw: &TestGateway, merchant: &str) -> e2e::served::Reply {
    let order = format!("CS{}", &marketplace::random_nonce()[..15]);
    let body = json!({"activity": "newInstance", "orderId": order,
        "orderLineId": format!("{order}-000001"), "businessId": marketplace::random_nonce()});
    gw.v2(merchant, &body, KEY).await
}

#[tokio::test]
async fn a_merchant_delivers_activates_answers_is_refused_a_broken_module_and_rolls_back() {
    let gw = gateway().await;
    // Before it exists: the decoy (a wrong key's answer).
    assert_eq!(create(&gw, "acme").await.code(), "000001");
    merchant_on_reference(&gw, "acme").await;
    let reply = create(&gw, "acme").await;
    reply.assert_signed_by(KEY);
    assert_eq!(reply.code(), "000000", "{:?}", reply.json);

    // A merchant token does the rest.
    let (status, token) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants/acme/tokens",
        OPERATOR,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = token["token"]
        .as_str()
        .expect("the token, once")
        .to_string();

    for (bytes, code) in [
        (b"not wasm at all".to_vec(), "not_wasm"),
        (plugin("wrong-world"), "wrong_world"),
        (plugin("fs-reader"), "forbidden_imports"),
    ] {
        let (status, body) = upload(&gw, "acme", bytes, false, &token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    let (status, v2) = upload(&gw, "acme", plugin("misbehave"), true, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2, "refused uploads took no version number");
    let reply = create(&gw, "acme").await;
    assert_eq!(reply.code(), "000000");
    assert_eq!(
        gw.app.merchants().get("acme").and_then(|m| m.version),
        Some(2)
    );

    let (status, body) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants/acme/rollback",
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active_version"], 1);
    assert_eq!(
        gw.app.merchants().get("acme").and_then(|m| m.version),
        Some(1)
    );
    assert_eq!(create(&gw, "acme").await.code(), "000000");

    let (_, audit) = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/acme/audit",
        &token,
        Value::Null,
    )
    .await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.rollback",
            "plugin.activate",
            "plugin.upload",
            "token.create",
            "plugin.activate",
            "plugin.upload",
            "merchant.create"
        ]
    );
    assert!(
        !audit.to_string().contains(KEY),
        "the audit never holds a key"
    );
    assert!(!audit.to_string().contains(&token), "nor a token");
}

/// Every route, with `{id}` the merchant it is about.
fn routes(id: &str) -> Vec<(Method, String, Value)> {
    let m = format!("/admin/v1/merchants/{id}");
    vec![
        (Method::GET, m.clone(), Value::Null),
        (Method::PATCH, m.clone(), json!({"disabled": true})),
        (
            Method::POST,
            format!("{m}/keys"),
            json!({"access_key": "stolen-key"}),
        ),
        (
            Method::DELETE,
            format!("{m}/keys/0000000000000000"),
            Value::Null,
        ),
        (Method::GET, format!("{m}/plugins"), Value::Null),
        (Method::POST, format!("{m}/plugins"), Value::Null),
        (Method::GET, format!("{m}/plugins/1"), Value::Null),
        (Method::DELETE, format!("{m}/plugins/1"), Value::Null),
        (Method::POST, format!("{m}/plugins/1/activate"), Value::Null),
        (Method::POST, format!("{m}/rollback"), Value::Null),
        (Method::POST, format!("{m}/tokens"), Value::Null),
        (Method::GET, format!("{m}/audit"), Value::Null),
        (Method::GET, format!("{m}/callbacks"), Value::Null),
        (Method::GET, format!("{m}/callbacks/1"), Value::Null),
        (
            Method::POST,
            format!("{m}/operations/redrive"),
            json!({"idempotency_key": "kg-0"}),
        ),
        (Method::GET, format!("{m}/operations/parked"), Value::Null),
        (Method::GET, format!("{m}/report"), Value::Null),
        (Method::POST, format!("{m}/plugins/1/shadow"), Value::Null),
    ]
}

/// Routes that are the operator's alone.
fn operator_routes() -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::POST,
            "/admin/v1/merchants".into(),
            json!({"id": "new", "access_keys": ["k"]}),
        ),
        (Method::GET, "/admin/v1/tokens".into(), Value::Null),
        (
            Method::DELETE,
            "/admin/v1/tokens/tok_000000000000".into(),
            Value::Null,
        ),
        (Method::GET, "/admin/v1/audit".into(), Value::Null),
    ]
}

#[tokio::test]
async fn merchant_a_can_neither_read_nor_change_anything_of_merchant_b() {
    let gw = gateway().await;
    merchant_on_reference(&gw, "alpha").await;
    merchant_on_reference(&gw, "beta").await;
    let (_, token) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants/alpha/tokens",
        OPERATOR,
        Value::Null,
    )
    .await;
    let alpha = token["token"].as_str().expect("a token").to_string();
    let before = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/beta/audit",
        OPERATOR,
        Value::Null,
    )
    .await
    .1;

    let mut checked = 0;
    for (method, path, body) in routes("beta")
        .into_iter()
        .chain(routes("nobody"))
        .chain(operator_routes())
    {
        let (status, answer) = call(&gw, method.clone(), &path, &alpha, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} with alpha's token: {answer}"
        );
        assert_eq!(answer["error"]["code"], "forbidden");
        let body = if body.is_null() {
            AdminBody::Empty
        } else {
            AdminBody::Json(body)
        };
        let (status, answer) = gw.admin(method.clone(), &path, None, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {answer}"
        );
        let (status, _) = call(&gw, method.clone(), &path, "gwt_made-up", Value::Null).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a made-up token"
        );
        checked += 1;
    }
    assert_eq!(checked, 40);
    // And every route of its own merchant is open to it (not 401/403).
    for (method, path, body) in routes("alpha") {
        if path.ends_with("/tokens") {
            continue;
        }
        let (status, answer) = call(&gw, method.clone(), &path, &alpha, body).await;
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{method} {path}: {status} {answer}"
        );
    }

    let after = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/beta/audit",
        OPERATOR,
        Value::Null,
    )
    .await
    .1;
    assert_eq!(before, after, "nothing of beta changed");
    let beta = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/beta",
        OPERATOR,
        Value::Null,
    )
    .await
    .1;
    assert_eq!(beta["disabled"], false);
    assert_eq!(beta["key_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        create(&gw, "beta").await.code(),
        "000000",
        "beta still serves"
    );

    // A revoked token stops working at once.
    let token_id = token["token_id"].as_str().expect("an id");
    let (status, _) = call(
        &gw,
        Method::DELETE,
        &format!("/admin/v1/tokens/{token_id}"),
        OPERATOR,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/alpha",
        &alpha,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_every_documented_route_is_served() {
    let gw = gateway().await;
    let (status, document) = gw
        .admin(
            Method::GET,
            "/admin/v1/openapi.json",
            None,
            AdminBody::Empty,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    // Every route the tests know is documented …
    for (method, path, _) in routes("{id}").into_iter().chain(operator_routes()) {
        let template = path
            .replace("/keys/0000000000000000", "/keys/{key_id}")
            .replace("/plugins/1", "/plugins/{version}")
            .replace("/callbacks/1", "/callbacks/{seq}")
            .replace("/tokens/tok_000000000000", "/tokens/{token_id}");
        assert!(
            documented.contains(&(method.to_string(), template.clone())),
            "{method} {template} is not documented"
        );
    }
    // … and every documented route is served (the fallback's 404 says
    // "no such admin API route").
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "nobody")
            .replace("{version}", "1")
            .replace("{seq}", "1")
            .replace("{key_id}", "k")
            .replace("{token_id}", "t");
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let (status, body) = call(&gw, method.clone(), &concrete, OPERATOR, Value::Null).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        assert!(
            !body.to_string().contains("no such admin API route"),
            "{method} {concrete} is not served"
        );
    }
    // The list of merchants is the one route the tables above leave out.
    assert_eq!(
        documented.len(),
        routes("x").len() + operator_routes().len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activation_and_rollback_under_load_fail_no_callback_and_each_answer_is_one_versions() {
    let gw = Arc::new(gateway().await);
    merchant_on_reference(&gw, "acme").await;
    let (status, _) = upload(&gw, "acme", plugin("misbehave"), false, OPERATOR).await;
    assert_eq!(status, StatusCode::CREATED);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (gw, stop) = (gw.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut seen = [0u32; 2];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = create(&gw, "acme").await;
                assert_eq!(reply.code(), "000000", "{:?}", reply.json);
                reply.assert_signed_by(KEY);
                let url = reply.json["appInfo"]["frontEndUrl"].as_str().unwrap_or("");
                match url {
                    u if u.starts_with("https://misbehave.example.com") => seen[1] += 1,
                    u if u.starts_with("https://api.example.com") => seen[0] += 1,
                    other => panic!(
                        "an answer from neither version: {other:?} in {:?}",
                        reply.json
                    ),
                }
            }
            seen
        }));
    }
    for round in 0..20 {
        let path = if round % 2 == 0 {
            "/admin/v1/merchants/acme/plugins/2/activate"
        } else {
            "/admin/v1/merchants/acme/rollback"
        };
        let (status, body) = call(&gw, Method::POST, path, OPERATOR, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut totals = [0u32; 2];
    for sender in senders {
        let seen = sender.await.expect("no sender failed");
        totals[0] += seen[0];
        totals[1] += seen[1];
    }
    assert!(
        totals[0] > 0 && totals[1] > 0,
        "both versions answered: {totals:?}"
    );
}

#[tokio::test]
async fn changes_made_through_the_api_survive_a_restart() {
    let gw = gateway().await;
    // The configuration's merchant, rolled back to nothing newer: upload,
    // activate, then restart on the same store.
    let (status, _) = upload(&gw, "reference", plugin("misbehave"), true, OPERATOR).await;
    assert_eq!(status, StatusCode::CREATED);
    merchant_on_reference(&gw, "made-by-api").await;
    let data = gw.into_data();
    let gw = TestGateway::in_dir(data, "", "", &|name| {
        (name == "GATEWAY_ADMIN_TOKEN").then(|| OPERATOR.to_string())
    })
    .await;
    assert_eq!(
        gw.app.merchants().get("reference").and_then(|m| m.version),
        Some(2),
        "the API's activation kept"
    );
    assert_eq!(create(&gw, "made-by-api").await.code(), "000000");
}

/// The smoke call at upload: a plugin that fails a plain test-mode create
/// with the merchant's own configuration is refused, and takes no version.
#[tokio::test]
async fn an_upload_whose_test_mode_create_traps_is_refused_with_the_reason() {
    let gw = gateway().await;
    let (status, body) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants",
        OPERATOR,
        json!({"id": "trapper", "access_keys": [KEY],
               "settings": {"config": {"create_behaviour": "panic"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&gw, "trapper", plugin("misbehave"), true, OPERATOR).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "smoke_call_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("trapped") && message.contains("panicked on purpose"),
        "the author sees why: {message}"
    );
    let (_, plugins) = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants/trapper/plugins",
        OPERATOR,
        Value::Null,
    )
    .await;
    assert_eq!(plugins["versions"], json!([]), "{plugins}");
    assert_eq!(plugins["active_version"], Value::Null);
}

/// Merchants whose plugins do not all fit the plugin cache: each call
/// takes its plugin back from the precompiled artifact (no compile), and
/// every answer is right.
#[tokio::test]
async fn merchants_beyond_the_plugin_cache_serve_from_their_artifacts() {
    let gw = TestGateway::with_config("[sandbox]\nmax_cached_plugins = 1\n", "").await;
    let runtime = gw.app.registry().runtime().clone();
    for round in 0..4 {
        for merchant in ["reference", "misbehave"] {
            let reply = create(&gw, merchant).await;
            assert_eq!(
                reply.code(),
                "000000",
                "{merchant}, round {round}: {:?}",
                reply.json
            );
        }
    }
    let stats = runtime.stats();
    assert_eq!(stats.cached_plugins, 1, "{stats:?}");
    assert_eq!(
        stats.compilations, 2,
        "each module compiled once: {stats:?}"
    );
    assert!(
        stats.artifact_hits >= 6,
        "evicted plugins came back from their artifacts: {stats:?}"
    );
}

/// A callback's plugin runs on the merchant it verified with, even if a
/// new version was activated in between; without a pin, on the current one.
#[tokio::test]
async fn an_operation_runs_on_the_merchant_it_pinned_not_the_one_activated_since() {
    use gateway::executor::HandlerExecutor;
    use gateway::operations::{Executor, Pinned};
    let gw = gateway().await;
    merchant_on_reference(&gw, "acme").await;
    let before = gw.app.merchants().get("acme").expect("served");
    let (status, body) = upload(&gw, "acme", plugin("misbehave"), true, OPERATOR).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let executor = HandlerExecutor {
        merchants: gw.app.merchants().clone(),
        plugins: gw.app.registry().plugins().clone(),
        metrics: Arc::new(gateway::metrics::Metrics::new()),
        traces: None,
    };
    let request = || {
        gateway::request_json::build(
            koogallery_contract::Operation::Create,
            "acme",
            json!({"order_id": "CS-PINNED"}),
            false,
        )
        .expect("a request")
    };
    let front_end_url = |executed: Option<gateway::operations::Executed>| {
        let answer = executed.expect("acme is served").answer;
        let json: Value = serde_json::from_slice(&answer.to_bytes()).expect("JSON");
        json["appInfo"]["frontEndUrl"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let pinned: Pinned = before;
    let on_pinned = executor
        .execute("acme", Some(&pinned), request(), None)
        .await;
    assert!(
        front_end_url(on_pinned).starts_with("https://api.example.com"),
        "v1"
    );
    let on_current = executor.execute("acme", None, request(), None).await;
    assert!(
        front_end_url(on_current).starts_with("https://misbehave.example.com"),
        "v2"
    );
}

/// A module whose bytes cannot be read when the gateway starts (here:
/// altered in the store, and no artifact) is not given up: its merchant
/// answers 000005 (the marketplace retries) and serves again as soon as
/// the bytes read right, without a restart.
#[tokio::test]
async fn a_module_unreadable_at_start_is_tried_again_on_each_call() {
    let gw = gateway().await;
    merchant_on_reference(&gw, "acme").await;
    let database = gw.database().to_path_buf();
    let artifacts = database.with_file_name("artifacts");
    let data = gw.into_data();
    let reference = plugin("reference");
    let sha = gateway::registry::sha256_hex(&reference);
    let set_module = |bytes: Vec<u8>| {
        let conn = rusqlite::Connection::open(&database).expect("the store");
        let changed = conn
            .execute(
                "UPDATE modules SET bytes = ?1 WHERE sha256 = ?2",
                rusqlite::params![bytes, sha],
            )
            .expect("update");
        assert_eq!(changed, 1);
    };
    set_module(b"not the module".to_vec());
    std::fs::remove_dir_all(&artifacts).expect("no artifacts");

    let gw = TestGateway::in_dir(data, "", "", &|name| {
        (name == "GATEWAY_ADMIN_TOKEN").then(|| OPERATOR.to_string())
    })
    .await;
    let unavailable = gw.app.merchants().unavailable();
    assert!(
        unavailable.iter().all(|(id, _)| id != "acme"),
        "not given up at start: {unavailable:?}"
    );
    let reply = create(&gw, "acme").await;
    assert_eq!(reply.code(), "000005", "{:?}", reply.json);

    set_module(reference);
    let reply = create(&gw, "acme").await;
    assert_eq!(reply.code(), "000000", "served again: {:?}", reply.json);
}

/// A platform with thousands of merchants may turn per-merchant series off:
/// every merchant's callbacks then count under `merchant="*"`.
#[tokio::test]
async fn metric_series_can_be_kept_off_the_merchant_id() {
    let series = |merchant: &str| {
        format!(
            "gateway_operations_total{{merchant=\"{merchant}\",kind=\"create\",path=\"executed\"}}"
        )
    };
    let per_merchant = TestGateway::new().await;
    assert_eq!(create(&per_merchant, "reference").await.code(), "000000");
    assert_eq!(per_merchant.metric(&series("reference")).await, Some(1));

    let aggregated = TestGateway::with_config("[admin]\nper_merchant_metrics = false\n", "").await;
    for merchant in ["reference", "misbehave"] {
        assert_eq!(create(&aggregated, merchant).await.code(), "000000");
    }
    assert_eq!(aggregated.metric(&series("*")).await, Some(2));
    let (_, text) = aggregated.get_admin("/metrics").await;
    assert!(
        !text.contains("merchant=\"reference\"") && !text.contains("merchant=\"misbehave\""),
        "no series names a merchant:\n{text}"
    );
}

/// A merchant's share of the sandbox (its concurrent calls, CPU turns,
/// memory, demotion) is the same before and after a change reloads it, so
/// calls still running on the old version and new ones share its limits.
#[tokio::test]
async fn a_reload_keeps_the_merchants_share_of_the_sandbox() {
    let gw = gateway().await;
    merchant_on_reference(&gw, "acme").await;
    let before = gw.app.merchants().get("acme").expect("served");
    let (status, body) = call(
        &gw,
        Method::PATCH,
        "/admin/v1/merchants/acme",
        OPERATOR,
        json!({"settings": {"deadline_ms": 1500, "config": {"base_url": "https://api.example.com"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = gw.app.merchants().get("acme").expect("served");
    assert!(!Arc::ptr_eq(&before, &after), "the merchant was reloaded");
    assert_eq!(after.context.limits.deadline.as_millis(), 1500);
    assert!(Arc::ptr_eq(&before.context.share, &after.context.share));
}

/// The merchant list comes a page at a time, by id: a platform with
/// thousands of merchants is listed without one answer holding them all.
#[tokio::test]
async fn merchants_are_listed_a_page_at_a_time_by_id() {
    let gw = gateway().await;
    for id in ["m3", "m1", "m5", "m2", "m4"] {
        let (status, body) = call(
            &gw,
            Method::POST,
            "/admin/v1/merchants",
            OPERATOR,
            json!({"id": id, "access_keys": [KEY]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let ids = |page: &Value| -> Vec<String> {
        page.as_array()
            .expect("a list")
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    };
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/admin/v1/merchants?limit=3&after={after}");
        let (status, page) = call(&gw, Method::GET, &path, OPERATOR, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = ids(&page);
        assert!(page.len() <= 3);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = last;
    }
    // The configuration's two merchants and the five made here, in order.
    assert_eq!(
        seen,
        ["m1", "m2", "m3", "m4", "m5", "misbehave", "reference"]
    );

    let (_, token) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants/m2/tokens",
        OPERATOR,
        Value::Null,
    )
    .await;
    let token = token["token"].as_str().expect("a token").to_string();
    let (status, own) = call(&gw, Method::GET, "/admin/v1/merchants", &token, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&own),
        ["m2"],
        "a merchant token lists its own merchant only"
    );
    let (_, after_own) = call(
        &gw,
        Method::GET,
        "/admin/v1/merchants?after=m2",
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(ids(&after_own), Vec::<String>::new());
}

#[tokio::test]
async fn a_merchants_upload_is_held_to_its_own_size_limit() {
    let gw = gateway().await;
    let (status, body) = call(
        &gw,
        Method::POST,
        "/admin/v1/merchants",
        OPERATOR,
        json!({"id": "small", "access_keys": [KEY], "settings": {"max_plugin_mib": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&gw, "small", vec![0u8; 3 << 19], false, OPERATOR).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "plugin_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_plugin_mib"),
        "{body}"
    );
    let (status, body) = call(
        &gw,
        Method::PATCH,
        "/admin/v1/merchants/small",
        OPERATOR,
        json!({"settings": {"max_plugin_mib": 65}}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "beyond sandbox.max_component_mib: {body}"
    );
}
