//! A gateway served in-process for the router tests: merchants on real
//! plugins, requests signed by `gateway::protocol::marketplace` exactly as
//! the marketplace signs them, answers checked like the marketplace checks.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use gateway::config::{Config, lower};
use gateway::server::{self, App};
use gateway_sandbox::Runtime;
use koogallery_protocol::{marketplace, signing};
use serde_json::Value;
use tower::ServiceExt as _;

/// The access key of every test merchant (the shared vectors' key).
pub const KEY: &str = "00000000-test-key-0000-000000000000";

/// A gateway with merchants `reference` (the reference plugin) and
/// `misbehave` (the misbehave plugin), built from `extra` TOML merged into
/// each merchant's table.
pub struct TestGateway {
    pub app: Arc<App>,
    config: Config,
    keys: gateway::keys::Keys,
    router: Router,
    admin: Router,
    database: std::path::PathBuf,
    _data: tempfile::TempDir,
}

/// The body of an admin API request.
pub enum AdminBody {
    Empty,
    Json(Value),
    Wasm(Vec<u8>),
}

/// An answer as the marketplace sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body_sign: Option<String>,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["resultCode"].as_str().unwrap_or("<none>")
    }

    pub fn message(&self) -> &str {
        self.json["resultMsg"].as_str().unwrap_or("<none>")
    }

    /// Asserts HTTP 200 and a `Body-Sign` by `key` over the exact bytes.
    pub fn assert_signed_by(&self, key: &str) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "always HTTP 200");
        let header = self
            .body_sign
            .as_deref()
            .expect("every answer has Body-Sign");
        assert_eq!(
            signing::verify_body_sign(key, &self.bytes, header),
            Ok(()),
            "Body-Sign over {}",
            String::from_utf8_lossy(&self.bytes)
        );
        self
    }
}

pub use koogallery_protocol::time::now_ms;

/// The configuration text of the test gateway.
pub fn config_text(global: &str, merchant_extra: &str) -> String {
    let path = |name: &str| test_support::plugin_path(name).display().to_string();
    format!(
        r#"
        {global}
        [[merchants]]
        id = "reference"
        access_keys = ["{KEY}"]
        plugin = "{reference}"
        {merchant_extra}
        [merchants.config]
        base_url = "https://ref.example.com"
        sold_out_skus = "sku-gone"

        [[merchants]]
        id = "misbehave"
        access_keys = ["{KEY}"]
        plugin = "{misbehave}"
        deadline_ms = 300
        "#,
        reference = path("reference"),
        misbehave = path("misbehave"),
    )
}

impl TestGateway {
    pub async fn new() -> TestGateway {
        TestGateway::with_config("", "").await
    }

    pub async fn with_config(global: &str, merchant_extra: &str) -> TestGateway {
        TestGateway::build(global, merchant_extra, &|_| None).await
    }

    /// With environment overrides (`GATEWAY_MERCHANT_REFERENCE_ACCESS_KEYS`…).
    pub async fn build(
        global: &str,
        merchant_extra: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> TestGateway {
        let data = tempfile::tempdir().expect("a temporary data dir");
        TestGateway::in_dir(data, global, merchant_extra, env).await
    }

    /// A gateway on the data directory `data` (a second gateway on the same
    /// store: another process, or a restart).
    pub async fn in_dir(
        data: tempfile::TempDir,
        global: &str,
        merchant_extra: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> TestGateway {
        let text = config_text(global, merchant_extra);
        let config = Config::from_toml(&text, Path::new("test.toml"), data.path(), env)
            .expect("the test configuration is valid");
        let store = server::open_store(&config).await.expect("the store opens");
        let keys = server::load_keys(&config).expect("the master key");
        let runtime = Arc::new(
            Runtime::new(lower::served_runtime(&config, &keys)).expect("the runtime starts"),
        );
        let app = Arc::new(
            App::new(&config, &keys, runtime, store)
                .await
                .expect("the merchants load"),
        );
        TestGateway {
            router: server::app(app.clone()),
            admin: server::admin::router(app.clone()),
            app,
            config: config.clone(),
            keys,
            database: config.store.path.clone(),
            _data: data,
        }
    }

    /// What seals customer data in its store (to write records as it would).
    pub fn sealer(&self) -> gateway::sealing::Sealer {
        gateway::sealing::Sealer::new(&self.keys.sealing_key())
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store's SQLite file.
    pub fn database(&self) -> &Path {
        &self.database
    }

    /// One number from the store: `sql` with `bind` as `$1`.
    pub async fn count(&self, sql: &'static str, bind: &str) -> i64 {
        test_support::process::store_number(&self.database, sql, bind).await
    }

    /// The value of the metric series `series` (exactly as exposed, labels
    /// included), or `None` if the gateway exposes no such series: a typo or
    /// a label in another order is `None`, never a silent zero.
    pub async fn metric(&self, series: &str) -> Option<u64> {
        let (_, text) = self.get_admin("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Gives up the gateway, keeping its data directory.
    pub fn into_data(self) -> tempfile::TempDir {
        self._data
    }

    /// Sends a raw request through the router.
    pub async fn send(&self, method: Method, uri: &str, body: Vec<u8>) -> Reply {
        self.send_body(method, uri, Body::from(body)).await
    }

    /// Sends a request with any body (a stream, for slow clients).
    pub async fn send_body(&self, method: Method, uri: &str, body: Body) -> Reply {
        send_to(&self.router, method, uri, body).await
    }

    /// A GET on the admin listener's router.
    pub async fn get_admin(&self, path: &str) -> (StatusCode, String) {
        let reply = send_to(&self.admin, Method::GET, path, Body::empty()).await;
        (
            reply.status,
            String::from_utf8_lossy(&reply.bytes).into_owned(),
        )
    }
    /// A request to the admin API (on the admin listener's router), with a
    /// bearer `token`; the answer's status and JSON body (`null` if empty).
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: AdminBody,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            AdminBody::Empty => Body::empty(),
            AdminBody::Json(value) => {
                request = request.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&value).expect("JSON"))
            }
            AdminBody::Wasm(bytes) => {
                request = request.header("content-type", "application/wasm");
                Body::from(bytes)
            }
        };
        let request = request.body(body).expect("a valid request");
        let response = self
            .admin
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body reads");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A V2 callback signed with `key` now.
    pub async fn v2(&self, merchant: &str, body: &Value, key: &str) -> Reply {
        let bytes = serde_json::to_vec(body).expect("JSON");
        let query = marketplace::v2_query(key, &bytes, now_ms(), &marketplace::random_nonce());
        self.send(
            Method::POST,
            &format!("/callbacks/{merchant}?{query}"),
            bytes,
        )
        .await
    }

    /// A V1 callback of `params` signed with `key` now.
    pub async fn v1(&self, merchant: &str, params: &[(&str, &str)], key: &str) -> Reply {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let query = marketplace::v1_query(key, &params, now_ms());
        self.get_query(merchant, &query).await
    }

    /// A GET callback with `query` exactly as given (a V1 URL as captured).
    pub async fn get_query(&self, merchant: &str, query: &str) -> Reply {
        let uri = format!("/callbacks/{merchant}?{query}");
        self.send(Method::GET, &uri, Vec::new()).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let reply = self.send(Method::GET, path, Vec::new()).await;
        (
            reply.status,
            String::from_utf8_lossy(&reply.bytes).into_owned(),
        )
    }
}

/// Sends a request through `router` and reads the answer as the
/// marketplace would.
async fn send_to(router: &Router, method: Method, uri: &str, body: Body) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json;charset=utf8")
        .body(body)
        .expect("a valid request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router never fails");
    let status = response.status();
    let body_sign = response
        .headers()
        .get("body-sign")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a readable answer")
        .to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        body_sign,
        bytes,
        json,
    }
}

/// Another connection holding the store's write lock (a stuck writer, a
/// backup tool): every write of the gateway fails after its busy timeout.
pub struct WriteLock(rusqlite::Connection);

impl WriteLock {
    pub async fn take(gw: &TestGateway) -> WriteLock {
        let conn = rusqlite::Connection::open(gw.database()).expect("a second connection");
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("the write lock");
        WriteLock(conn)
    }

    pub async fn release(self) {
        self.0.execute_batch("COMMIT").expect("released");
    }
}
