//! The one place where each layer's settings are built from the
//! configuration. The layers' settings types have no defaults of their own:
//! `serve`, `plugin invoke`, the tests and the benches all get theirs from
//! here, so they cannot drift apart.

use std::time::Duration;

use gateway_sandbox::{
    ArtifactSettings, CallLimits, EngineSettings, MerchantContext, MerchantShare, PagemapScan,
    PluginConfig, RuntimeSettings, ShareLimits, ThreadSettings,
};
use gateway_store::{PostgresSettings, SqliteSettings};
use koogallery_protocol::VerifyPolicy;

use super::{
    Config, KvConfig, MerchantSettings, OutboundHttpConfig, PagemapScanConfig, SandboxConfig,
    SignatureConfig, StoreConfig, defaults,
};
use crate::keys::Keys;
use crate::operations::Settings as OperationSettings;
use crate::operations::upkeep::UpkeepSettings;

const MIB: u64 = 1 << 20;

/// The sandbox runtime for `sandbox`, keeping precompiled artifacts as
/// `artifacts` says (none: in memory only).
pub fn runtime(sandbox: &SandboxConfig, artifacts: Option<ArtifactSettings>) -> RuntimeSettings {
    RuntimeSettings {
        engine: EngineSettings {
            max_instances: sandbox.max_instances,
            max_memory_bytes: bytes(sandbox.max_memory_mib),
            pooling: sandbox.pooling,
            pagemap_scan: match sandbox.pagemap_scan {
                PagemapScanConfig::Auto => PagemapScan::Auto,
                PagemapScanConfig::On => PagemapScan::On,
                PagemapScanConfig::Off => PagemapScan::Off,
            },
        },
        artifacts,
        max_component_bytes: max_component_bytes(sandbox),
        max_cached_plugins: sandbox.max_cached_plugins,
        max_cached_plugin_bytes: bytes(sandbox.max_cached_plugin_mib) as u64,
        memory_budget_bytes: bytes(sandbox.memory_budget_mib),
        threads: ThreadSettings {
            threads: sandbox.threads,
            nice: sandbox.nice,
        },
    }
}

/// One merchant's share of the sandbox.
pub fn share_limits(sandbox: &SandboxConfig) -> ShareLimits {
    ShareLimits {
        max_instances: sandbox.merchant_max_instances,
        cpu_slots: sandbox.merchant_cpu_slots,
        memory_bytes: bytes(sandbox.merchant_memory_mib),
    }
}

/// The served gateway's runtime: artifacts under `data_dir`, authenticated
/// with a key derived from the master key.
pub fn served_runtime(config: &Config, keys: &Keys) -> RuntimeSettings {
    let artifacts = ArtifactSettings {
        dir: config.data_dir.join("artifacts"),
        key: keys.artifact_key(),
    };
    runtime(&config.sandbox, Some(artifacts))
}

/// The largest plugin component accepted, in bytes.
pub fn max_component_bytes(sandbox: &SandboxConfig) -> usize {
    bytes(sandbox.max_component_mib)
}

/// Who a call is for: a merchant `label`, the configuration its plugin
/// reads, its call limits, and a fresh share of the sandbox (one per
/// merchant: build it once and clone the context for each call).
pub fn merchant_context(
    label: &str,
    plugin_config: PluginConfig,
    limits: CallLimits,
    sandbox: &SandboxConfig,
) -> MerchantContext {
    MerchantContext {
        label: label.into(),
        config: std::sync::Arc::new(plugin_config),
        limits,
        share: std::sync::Arc::new(MerchantShare::new(share_limits(sandbox))),
        egress: None,
        kv: None,
    }
}

/// The operator's limits on outbound HTTP.
pub fn egress_limits(http: &OutboundHttpConfig) -> gateway_egress::EgressLimits {
    gateway_egress::EgressLimits {
        connect_timeout: Duration::from_millis(http.connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(http.first_byte_timeout_ms),
        between_bytes_timeout: Duration::from_millis(http.between_bytes_timeout_ms),
        max_request_body_bytes: http.max_request_body_kib * 1024,
        max_response_body_bytes: http.max_response_body_kib * 1024,
        max_requests_per_call: http.max_requests_per_call,
    }
}

/// Each merchant's key-value quota.
pub fn kv_quota(kv: &KvConfig) -> gateway_sandbox::KvQuota {
    gateway_sandbox::KvQuota {
        max_key_bytes: kv.max_key_bytes,
        max_value_bytes: kv.max_value_kib * 1024,
        max_total_bytes: kv.max_total_mib * MIB,
        max_keys: kv.max_keys,
    }
}

/// A merchant's call limits.
pub fn call_limits(settings: &MerchantSettings) -> CallLimits {
    limits(settings.deadline_ms, settings.memory_mib)
}

/// Call limits from a deadline and a memory size.
pub fn limits(deadline_ms: u64, memory_mib: u64) -> CallLimits {
    CallLimits::new(Duration::from_millis(deadline_ms), bytes(memory_mib))
}

/// The limits a merchant gets when its configuration says nothing.
pub fn default_call_limits() -> CallLimits {
    limits(defaults::deadline_ms(), defaults::memory_mib())
}

/// The SQLite store.
pub fn sqlite(store: &StoreConfig) -> SqliteSettings {
    SqliteSettings {
        path: store.path.clone(),
        busy_timeout: Duration::from_millis(store.busy_timeout_ms),
        max_size_bytes: store.max_size_mib.map(|mib| mib.saturating_mul(MIB)),
    }
}

/// The PostgreSQL store, if one is configured.
pub fn postgres(store: &StoreConfig) -> Option<PostgresSettings> {
    let url = store.url.as_ref()?;
    Some(PostgresSettings {
        url: url.0.clone(),
        max_connections: usize::try_from(store.max_connections).unwrap_or(usize::MAX),
        connect_timeout: Duration::from_millis(store.connect_timeout_ms),
        acquire_timeout: Duration::from_millis(store.acquire_timeout_ms),
        ca_file: store.ca_file.clone(),
    })
}

/// The idempotency layer.
pub fn operations(store: &StoreConfig) -> OperationSettings {
    OperationSettings {
        lease: Duration::from_millis(store.lease_ms),
        hot_cache_bytes: store.hot_cache_mib.saturating_mul(MIB),
        hot_cache_ttl: Duration::from_secs(store.hot_cache_ttl_secs),
    }
}

/// The completer and the reaper.
pub fn upkeep(store: &StoreConfig) -> UpkeepSettings {
    UpkeepSettings {
        completer_interval: Duration::from_secs(store.completer_interval_secs),
        max_attempts: store.max_attempts,
        reaper_interval: Duration::from_secs(store.reaper_interval_secs),
        retention: Duration::from_secs(store.retention_days.saturating_mul(24 * 3600)),
    }
}

/// How requests are authenticated.
pub fn verify_policy(config: &Config) -> VerifyPolicy {
    VerifyPolicy {
        window_ms: millis(config.signature.window_secs),
        v1_window_ms: millis(config.signature.v1_window_secs),
        max_query_bytes: config.max_query_bytes,
        max_query_params: config.max_query_params,
    }
}

/// How long V1 tokens are remembered: their window, in both directions.
pub fn v1_token_memory_ms(signature: &SignatureConfig) -> i64 {
    millis(signature.v1_window_secs.saturating_mul(2))
}

/// How long V2 nonces are remembered, in milliseconds.
pub fn nonce_memory_ms(signature: &SignatureConfig) -> i64 {
    millis(signature.nonce_memory_secs)
}

fn bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(MIB)).unwrap_or(usize::MAX)
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The documented defaults (README's configuration block), lowered.
    #[test]
    fn the_default_configuration_lowers_to_the_documented_numbers() {
        let text = r#"
            [[merchants]]
            id = "m"
            access_keys = ["k"]
            plugin = "m.wasm"
        "#;
        let config = Config::from_toml(text, Path::new("t.toml"), Path::new("/srv"), |_| None)
            .expect("valid");

        let runtime = served_runtime(&config, &Keys::from_bytes([0; 32]));
        assert_eq!(runtime.engine.max_instances, 256);
        assert_eq!(runtime.engine.max_memory_bytes, 128 << 20);
        assert!(runtime.engine.pooling);
        assert_eq!(runtime.max_component_bytes, 64 << 20);
        assert_eq!(runtime.max_cached_plugins, 1024);
        assert_eq!(runtime.memory_budget_bytes, 2048 << 20);
        let share = share_limits(&config.sandbox);
        assert_eq!(
            (share.max_instances, share.cpu_slots, share.memory_bytes),
            (32, 1, 512 << 20)
        );
        assert_eq!(
            runtime.artifacts.map(|a| a.dir),
            Some(Path::new("/srv/./data/artifacts").to_path_buf())
        );
        assert_eq!(config.key_file, Path::new("/srv/./data/gateway.key"));

        let limits = call_limits(&config.merchants[0].settings);
        assert_eq!(limits.deadline, Duration::from_millis(2000));
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits, default_call_limits());

        let sqlite = sqlite(&config.store);
        assert_eq!(sqlite.path, Path::new("/srv/./data/gateway.db"));
        assert_eq!(sqlite.busy_timeout, Duration::from_millis(1000));
        assert_eq!(sqlite.max_size_bytes, None);

        let operations = operations(&config.store);
        assert_eq!(operations.lease, Duration::from_secs(30));
        assert_eq!(operations.hot_cache_bytes, 64 << 20);
        assert_eq!(operations.hot_cache_ttl, Duration::from_secs(600));

        let upkeep = upkeep(&config.store);
        assert_eq!(upkeep.completer_interval, Duration::from_secs(30));
        assert_eq!(upkeep.max_attempts, 5);
        assert_eq!(upkeep.reaper_interval, Duration::from_secs(3600));
        assert_eq!(upkeep.retention, Duration::from_secs(7 * 24 * 3600));

        let policy = verify_policy(&config);
        assert_eq!(policy.window_ms, 60_000);
        assert_eq!(policy.v1_window_ms, 4 * 3600 * 1000);
        assert_eq!(policy.max_query_bytes, 8192);
        assert_eq!(policy.max_query_params, 64);
        assert_eq!(nonce_memory_ms(&config.signature), 300_000);
        assert_eq!(v1_token_memory_ms(&config.signature), 8 * 3600 * 1000);

        let egress = egress_limits(&config.outbound_http);
        assert_eq!(egress.connect_timeout, Duration::from_secs(2));
        assert_eq!(egress.first_byte_timeout, Duration::from_secs(4));
        assert_eq!(egress.between_bytes_timeout, Duration::from_secs(2));
        assert_eq!(
            (
                egress.max_request_body_bytes,
                egress.max_response_body_bytes
            ),
            (64 << 10, 1 << 20)
        );
        assert_eq!(egress.max_requests_per_call, 8);
        let kv = kv_quota(&config.kv);
        assert_eq!((kv.max_key_bytes, kv.max_value_bytes), (256, 64 << 10));
        assert_eq!((kv.max_total_bytes, kv.max_keys), (16 << 20, 10_000));
        let settings = &config.merchants[0].settings;
        assert!(settings.allowed_outbound_hosts.is_empty() && !settings.allow_private_networks);

        assert_eq!(config.answer_budget_ms, 4000);
        assert_eq!(config.max_body_bytes, 65536);
        assert_eq!(config.shutdown_grace_secs, 30);
    }

    /// Every example configuration in the repository is valid as it stands.
    #[test]
    fn the_example_configurations_are_valid() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&examples).expect("the examples directory") {
            let path = entry.expect("an entry").path().join("gateway.toml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let base = path.parent().expect("a directory");
            let parsed = Config::from_toml(&text, &path, base, |_| None);
            assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed.err());
            checked += 1;
        }
        assert!(
            checked >= 3,
            "demo, backend and replicas at least: {checked}"
        );
    }

    /// README's configuration block is the third copy of the defaults: it
    /// must parse, and say what the code says.
    #[test]
    fn the_readme_configuration_block_matches_the_defaults() {
        let readme = include_str!("../../../../README.md");
        let block = readme
            .split("```toml\n")
            .find(|block| block.contains("[[merchants]]") && block.contains("[store]"))
            .and_then(|rest| rest.split("```").next())
            .expect("README has the annotated configuration block");
        let documented =
            Config::from_toml(block, Path::new("README.md"), Path::new("/srv"), |_| None)
                .expect("README's configuration block is valid");
        let minimal = "[[merchants]]\nid = \"acme\"\naccess_keys = [\"k\"]\nplugin = \"p.wasm\"\n";
        let defaults = Config::from_toml(minimal, Path::new("t.toml"), Path::new("/srv"), |_| None)
            .expect("valid");
        assert_eq!(
            format!("{:?}", (&documented.signature, &documented.sandbox)),
            format!("{:?}", (&defaults.signature, &defaults.sandbox)),
        );
        assert_eq!(
            format!("{:?}", documented.store),
            format!("{:?}", defaults.store),
        );
        let (ours, theirs) = (&documented.merchants[0], &defaults.merchants[0]);
        assert_eq!(
            MerchantSettings {
                config: Default::default(),
                ..ours.settings.clone()
            },
            theirs.settings
        );
        // Every top-level key too: the merchants aside, the whole
        // configuration reads the same.
        let (mut documented, mut defaults) = (documented, defaults);
        documented.merchants.clear();
        defaults.merchants.clear();
        assert_eq!(format!("{documented:?}"), format!("{defaults:?}"));
    }
}
