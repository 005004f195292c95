//! What the benches share: the bench gateway (reference plugin and its
//! native twin) and small helpers.

#![allow(dead_code)] // each bench uses its own part

use std::sync::Arc;

use gateway::config::{AccessKey, Config, lower};
use gateway::merchants::NativeHandler;
use gateway::server::{self, App};
use gateway_sandbox::{Outcome, Runtime};
use koogallery_contract::{AppInfo, Created, OperationOutput, OperationRequest};
use sha2::{Digest, Sha256};

pub const KEY: &str = "00000000-test-key-0000-000000000000";

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the reference plugin's `create` does, natively.
pub fn native_reference() -> NativeHandler {
    Arc::new(|request: &OperationRequest| {
        let OperationRequest::Create(create) = request else {
            return Outcome::Answered(OperationOutput::Done);
        };
        let digest = hex::encode(Sha256::digest(format!("demo\0{}", create.instance_id)));
        let tenant = format!("t-{}", &digest[..12]);
        let base = format!("https://bench.example.com/{tenant}");
        Outcome::Answered(OperationOutput::Created(Created {
            instance_id: create.instance_id.clone(),
            app_info: Some(AppInfo {
                admin_url: Some(format!("{base}/admin")),
                front_end_url: Some(base),
                user_name: Some(format!("admin@{tenant}")),
                password: Some(digest[12..28].to_string()),
                memo: Some("subscription".into()),
            }),
        }))
    })
}

/// The bench gateway: merchant `plugin` on the reference plugin and
/// merchant `native` on [`native_reference`], on a fresh store in the
/// temporary directory `name`.
pub async fn build_app(name: &str) -> Arc<App> {
    let plugin = test_support::plugin_path("reference");
    let data = std::env::temp_dir().join(name);
    let text = format!(
        "data_dir = {data:?}\n[[merchants]]\nid = \"plugin\"\naccess_keys = [\"{KEY}\"]\nplugin = {plugin:?}\n[merchants.config]\nbase_url = \"https://bench.example.com\"\n",
        data = data.display().to_string(),
        plugin = plugin.display().to_string(),
    );
    let config = Config::from_toml(&text, "bench.toml".as_ref(), ".".as_ref(), |_| None)
        .expect("bench configuration");
    let _ = std::fs::remove_dir_all(&data);
    let store = server::open_store(&config).await.expect("store");
    let keys = server::load_keys(&config).expect("the master key");
    let runtime = Arc::new(Runtime::new(lower::served_runtime(&config, &keys)).expect("runtime"));
    let app = App::new(&config, &keys, runtime, store)
        .await
        .expect("the merchants load");
    app.merchants()
        .install_native("native", vec![AccessKey::new(KEY)], native_reference());
    Arc::new(app)
}
