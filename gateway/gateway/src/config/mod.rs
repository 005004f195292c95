//! The `gateway serve` configuration: a TOML file with defaults for
//! everything but the merchants, environment overrides, and validation that
//! names the offending key. Nothing else reads configuration, and every
//! default lives here once ([`defaults`] and the sections' `Default`);
//! [`lower`] builds each layer's settings from it.
//!
//! Relative paths (`data_dir`, each merchant's `plugin`) are resolved
//! against the directory of the configuration file, so a configuration
//! works the same from any working directory.
//!
//! Environment overrides: `GATEWAY_LISTEN`, `GATEWAY_DATA_DIR`,
//! `GATEWAY_STORE_URL` (a PostgreSQL store),
//! `GATEWAY_ANSWER_BUDGET_MS`, and `GATEWAY_MERCHANT_<ID>_ACCESS_KEYS`
//! (comma-separated; `<ID>` upper-cased with non-alphanumerics as `_`), so
//! keys need not be written into the file.

pub mod lower;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use koogallery_protocol::{EncryptType, Generation};
use serde::{Deserialize, Serialize};

pub use koogallery_protocol::AccessKey;

/// The marketplace gives up after 5 s; the gateway must answer before.
pub const MARKETPLACE_TIMEOUT_MS: u64 = 5_000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the marketplace's callbacks arrive on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Connections served at once (both listeners); past it new ones wait
    /// in the kernel's backlog.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// How long a client may take to send its request head, in seconds.
    #[serde(default = "defaults::header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Threads serving the callback port's connections, each with a
    /// single-threaded runtime (`server::connection_threads`); absent: one
    /// per core; 0: on the main, work-stealing runtime.
    #[serde(default)]
    pub connection_threads: Option<usize>,
    /// The embedded store and precompiled plugin artifacts live here
    /// (created owner-only).
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// The master key (see `keys`), unless `GATEWAY_KEY` holds it: created
    /// on first start. Relative to `data_dir`; better kept outside it.
    #[serde(default = "defaults::key_file")]
    pub key_file: PathBuf,
    /// Every callback is answered within this many milliseconds, whatever
    /// the plugin does. Must stay below the marketplace's 5 s.
    #[serde(default = "defaults::answer_budget_ms")]
    pub answer_budget_ms: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Longest query string read at all (before authentication), in bytes.
    #[serde(default = "defaults::max_query_bytes")]
    pub max_query_bytes: usize,
    /// Most query parameters read at all (before authentication).
    #[serde(default = "defaults::max_query_params")]
    pub max_query_params: usize,
    /// How long shutdown waits for in-flight callbacks, in seconds.
    #[serde(default = "defaults::shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// How long one merchant's plugin may take to load (compile) at start
    /// before the merchant is marked unavailable, in seconds.
    #[serde(default = "defaults::load_timeout_secs")]
    pub load_timeout_secs: u64,
    #[serde(default)]
    pub signature: SignatureConfig,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub outbound_http: OutboundHttpConfig,
    #[serde(default)]
    pub kv: KvConfig,
    #[serde(default)]
    pub callback_log: CallbackLogConfig,
    /// Bootstrapped into the store at start (see `crate::registry`); more
    /// are made through the admin API.
    #[serde(default)]
    pub merchants: Vec<MerchantConfig>,
}

/// The admin listener: metrics, status and the admin API (`/admin/v1`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where it listens; absent = no admin listener (no metrics, no admin
    /// API). Keep it on loopback or a private network.
    pub listen: Option<SocketAddr>,
    /// A file holding the operator token (used when `GATEWAY_ADMIN_TOKEN`
    /// is not set); relative to `data_dir`.
    pub token_file: Option<PathBuf>,
    /// The operator token, from `GATEWAY_ADMIN_TOKEN` or `token_file`.
    /// Without one, only merchant tokens exist, and none can be made.
    #[serde(skip)]
    pub token: Option<AdminToken>,
    /// Metric series per merchant (label `merchant`); off, every merchant's
    /// callbacks count under `merchant="*"` — for platforms whose thousands
    /// of merchants would make every scrape megabytes long.
    pub per_merchant_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            token_file: None,
            token: None,
            per_merchant_metrics: true,
        }
    }
}

/// A secret admin token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The environment variable holding the operator token.
pub const ADMIN_TOKEN_ENV: &str = "GATEWAY_ADMIN_TOKEN";

/// The shortest operator token accepted (it guards every merchant).
const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// The durable store and the idempotency rules kept in it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A PostgreSQL store shared by several replicas
    /// (`postgres://user@host:5432/db`; also `GATEWAY_STORE_URL`). Unset:
    /// the embedded SQLite file `path`.
    pub url: Option<StoreUrl>,
    /// The most connections this process keeps to PostgreSQL.
    pub max_connections: u64,
    /// How long opening a PostgreSQL connection may take, in ms.
    pub connect_timeout_ms: u64,
    /// How long a store call waits for a free PostgreSQL connection, in ms
    /// (then it fails, and the callback answers 000005).
    pub acquire_timeout_ms: u64,
    /// PEM certificates of a private authority that signed PostgreSQL's
    /// certificate (relative to `data_dir`); the public roots are trusted
    /// anyway. TLS is required unless the database is on this machine or
    /// the URL says `sslmode=disable`.
    pub ca_file: Option<PathBuf>,
    /// The SQLite file; relative to `data_dir`.
    pub path: PathBuf,
    /// How long a write waits for another writer's lock, in ms.
    pub busy_timeout_ms: u64,
    /// Refuse to grow the store past this size (writes then fail, and
    /// callbacks answer 000005, as on a full disk). Unset: no cap.
    pub max_size_mib: Option<u64>,
    /// How long a claimed operation is held before another worker may take
    /// it over (a crashed worker's lease), in ms. At least twice every
    /// merchant's `deadline_ms` and at least `answer_budget_ms`.
    pub lease_ms: u64,
    /// How long settled operation records are kept (replayed), in days.
    /// The instance mapping is kept forever.
    pub retention_days: u64,
    /// Memory for completed results replayed without the store, in MiB
    /// (estimated; at least 256 bytes an entry, so this bounds entries too).
    pub hot_cache_mib: u64,
    pub hot_cache_ttl_secs: u64,
    /// How often the completer re-drives stuck operations, in seconds.
    pub completer_interval_secs: u64,
    /// Attempts before an operation is parked for a human.
    pub max_attempts: u32,
    /// How often old records and nonces are reaped, in seconds.
    pub reaper_interval_secs: u64,
    /// How often the store is asked for administrative changes made by
    /// another process sharing it, in ms: such a change is served here
    /// within this (plus its plugin's load).
    pub follow_changes_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            max_connections: 16,
            connect_timeout_ms: 2_000,
            acquire_timeout_ms: 1_000,
            ca_file: None,
            path: PathBuf::from("gateway.db"),
            busy_timeout_ms: 1_000,
            max_size_mib: None,
            lease_ms: 30_000,
            retention_days: 7,
            hot_cache_mib: 64,
            hot_cache_ttl_secs: 600,
            completer_interval_secs: 30,
            max_attempts: 5,
            reaper_interval_secs: 3_600,
            follow_changes_ms: 1_000,
        }
    }
}

/// A PostgreSQL connection URL. It may hold a password: shown without it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `scheme://user:password@host/db` → `scheme://…@host/db`.
        match (self.0.split_once("://"), self.0.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, rest))) => write!(f, "\"{scheme}://…@{rest}\""),
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// `sandbox.pagemap_scan`: reset only the pages a call dirtied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PagemapScanConfig {
    /// Where the kernel has it (Linux ≥ 6.7) and no swap is active.
    #[default]
    Auto,
    /// Always (start fails without kernel support); swap must stay off.
    On,
    Off,
}

/// What a duplicate newInstance hears while the first is still running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateInFlight {
    /// 000004: the marketplace retries and gets the final answer. Safe: the
    /// marketplace never believes in an instance the plugin may yet refuse.
    #[default]
    Processing,
    /// 000000 with the already-assigned instanceId (the marketplace allows
    /// asynchronous creation). The plugin's later refusal is then only
    /// visible through queryInstance.
    Success,
}

/// What an operation on an instance the gateway never assigned gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownInstances {
    /// 000003 without reaching the plugin.
    #[default]
    Reject,
    /// Passed to the plugin; on success the instance is recorded as
    /// imported (merchants moving to the gateway with live instances).
    Import,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignatureConfig {
    /// V2: how far `timestamp` may be from the gateway's clock, either way.
    pub window_secs: u64,
    /// V2: how long a nonce is remembered in the store (at least twice the
    /// window). Shared by every process on the store; survives restarts.
    pub nonce_memory_secs: u64,
    /// V1: how far `timeStamp` may be from the gateway's clock, either way.
    /// V1 documents no window; the marketplace retries for hours, so the
    /// default covers its retry schedule. V1 tokens are remembered (bound to
    /// what they signed) for twice this.
    pub v1_window_secs: u64,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            window_secs: 60,
            nonce_memory_secs: 300,
            v1_window_secs: 4 * 3600,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Plugin calls running at once (pool slots).
    pub max_instances: u32,
    /// Linear memory of one pool slot, in MiB: the most any merchant gets.
    pub max_memory_mib: u64,
    /// The largest plugin component any merchant may be allowed, in MiB
    /// (each merchant's own limit is its `max_plugin_mib`).
    pub max_component_mib: u64,
    /// Compiled plugins kept in memory (shared by the merchants running the
    /// same module), least recently used evicted first…
    pub max_cached_plugins: u64,
    /// …and the compiled code they may hold together, in MiB. An evicted
    /// plugin is reloaded from its precompiled artifact on its next call.
    pub max_cached_plugin_mib: u64,
    /// The pooling allocator (about 3× cheaper per call); turn it off only
    /// where address space is scarce.
    pub pooling: bool,
    /// Linear memory all running calls may hold together, in MiB.
    pub memory_budget_mib: u64,
    /// One merchant's share: calls holding a sandbox at once…
    pub merchant_max_instances: u32,
    /// …calls running wasm at once (CPU)…
    pub merchant_cpu_slots: u32,
    /// …and linear memory of its running calls together, in MiB.
    pub merchant_memory_mib: u64,
    /// Threads of their own for the calls of merchants demoted after a
    /// heavy call (long-running wasm, much memory, a limit hit), `nice`
    /// below normal priority; other calls run in place. 0: every call runs
    /// on the gateway's own threads.
    pub threads: usize,
    /// How far below normal OS priority those threads run (0–19), so that
    /// the request path gets a core first.
    pub nice: i32,
    /// Reset only the pages a call dirtied when a pool slot is reused.
    pub pagemap_scan: PagemapScanConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_instances: 256,
            max_memory_mib: 128,
            max_component_mib: 64,
            max_cached_plugins: 1024,
            max_cached_plugin_mib: 512,
            pooling: true,
            memory_budget_mib: 2048,
            merchant_max_instances: 32,
            merchant_cpu_slots: 1,
            merchant_memory_mib: 512,
            threads: 2,
            nice: 10,
            pagemap_scan: PagemapScanConfig::Auto,
        }
    }
}

/// The operator's limits on plugins' outbound HTTP (granted per merchant by
/// `allowed_outbound_hosts`). A plugin's own timeouts are clamped to these
/// and to what is left of its call's deadline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundHttpConfig {
    /// DNS lookup, connect and TLS handshake, each, in milliseconds.
    pub connect_timeout_ms: u64,
    /// From sending the request to the response head, in milliseconds.
    pub first_byte_timeout_ms: u64,
    /// Longest pause while a response body streams in, in milliseconds.
    pub between_bytes_timeout_ms: u64,
    /// Largest request body a plugin may send, in KiB.
    pub max_request_body_kib: u64,
    /// Largest response body a plugin may receive, in KiB.
    pub max_response_body_kib: u64,
    /// Outbound requests one plugin call may make.
    pub max_requests_per_call: u32,
}

impl Default for OutboundHttpConfig {
    fn default() -> Self {
        OutboundHttpConfig {
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 4_000,
            between_bytes_timeout_ms: 2_000,
            max_request_body_kib: 64,
            max_response_body_kib: 1024,
            max_requests_per_call: 8,
        }
    }
}

/// The callback log: one record per callback answered, for merchants to
/// search and re-drive (see docs/callback-log.md for what a record holds).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackLogConfig {
    pub enabled: bool,
    /// Records older than this are pruned (in small steps, every hour).
    pub retention_days: u64,
    /// The plugin's own log records kept with a record, in KiB.
    pub max_plugin_log_kib: usize,
    /// Records waiting to be written; past it new ones are dropped (and
    /// counted), never the callback slowed.
    pub queue: usize,
}

impl Default for CallbackLogConfig {
    fn default() -> Self {
        CallbackLogConfig {
            enabled: true,
            retention_days: 7,
            max_plugin_log_kib: 4,
            queue: 8192,
        }
    }
}

/// The quota of each merchant's key-value store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    pub max_key_bytes: usize,
    pub max_value_kib: usize,
    /// Keys and values of one merchant together, in MiB.
    pub max_total_mib: u64,
    pub max_keys: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_key_bytes: 256,
            max_value_kib: 64,
            max_total_mib: 16,
            max_keys: 10_000,
        }
    }
}

/// A merchant in the configuration file: who it is, its keys, its plugin
/// file and its [`MerchantSettings`] (the same table: `deadline_ms = …`
/// sits next to `id = …`). Bootstraps the store's merchant (see
/// `crate::registry`).
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawMerchant")]
pub struct MerchantConfig {
    /// The `{merchant_id}` of `/callbacks/{merchant_id}`.
    pub id: String,
    /// Several keys = rotation: any one verifies; answers are signed with
    /// the one that verified the request (the first one otherwise).
    pub access_keys: Vec<AccessKey>,
    /// The merchant's plugin component (.wasm).
    pub plugin: PathBuf,
    pub settings: MerchantSettings,
}

/// A merchant's table as written: its identity, and the rest read as
/// [`MerchantSettings`] (which refuses unknown keys; `flatten` would not).
#[derive(Deserialize)]
struct RawMerchant {
    id: String,
    access_keys: Vec<AccessKey>,
    plugin: PathBuf,
    #[serde(flatten)]
    settings: toml::Table,
}

impl TryFrom<RawMerchant> for MerchantConfig {
    type Error = String;

    fn try_from(raw: RawMerchant) -> Result<Self, String> {
        let settings = toml::Value::Table(raw.settings)
            .try_into()
            .map_err(|e: toml::de::Error| format!("merchant `{}`: {e}", raw.id))?;
        Ok(MerchantConfig {
            id: raw.id,
            access_keys: raw.access_keys,
            plugin: raw.plugin,
            settings,
        })
    }
}

/// How a merchant is served: what the configuration file's merchant table
/// and the admin API both set, and what the store keeps (as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantSettings {
    /// 1 = AES-256 (default), 2 = AES-128, for appInfo credentials.
    #[serde(default)]
    pub encrypt_type: EncryptType,
    /// Add `Body-Sign` to every answer.
    #[serde(default = "defaults::yes")]
    pub sign_responses: bool,
    /// The protocol generations this merchant's product is integrated with
    /// (`["v2"]` for a product on the current interface). A callback of any
    /// other generation is refused as unauthenticated before its signature
    /// is read. Both by default, so that an upgrade never refuses a
    /// merchant's live callbacks; narrowing it takes the other generation's
    /// readers out of an attacker's reach.
    #[serde(default = "defaults::generations")]
    pub generations: Vec<Generation>,
    /// The plugin call's deadline, in milliseconds.
    #[serde(default = "defaults::deadline_ms")]
    pub deadline_ms: u64,
    /// The plugin's memory limit, in MiB.
    #[serde(default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// The largest plugin component this merchant may upload, in MiB (a
    /// Python or JavaScript component carries its interpreter: ~20 MB).
    #[serde(default = "defaults::max_plugin_mib")]
    pub max_plugin_mib: u64,
    /// What a duplicate newInstance hears while the first still runs.
    #[serde(default)]
    pub create_in_flight: CreateInFlight,
    /// Operations on instances the gateway never assigned.
    #[serde(default)]
    pub unknown_instances: UnknownInstances,
    /// Values the plugin reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Values the plugin reads through the `config` import too, but which
    /// never appear in logs, metrics or API answers, and are sealed at rest
    /// (see [`Secret`]).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// The outbound HTTP grant: `scheme://host[:port]` entries (see
    /// `gateway_egress::AllowList`). Empty: no outbound HTTP.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Let the plugin reach loopback and private networks (RFC 1918,
    /// shared address space, IPv6 unique-local). Link-local addresses (the
    /// cloud metadata service) stay refused.
    #[serde(default)]
    pub allow_private_networks: bool,
}

/// A secret value: as written (in the configuration file or an admin API
/// request) or as stored, sealed. Its `Debug` shows neither; its serde
/// form is the sealed one (`{"sealed": "…"}`), and a value not yet sealed
/// serializes as `{"sealed": null}`, so it cannot leak through a
/// serialization that forgot to seal it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    Sealed(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Secret::Sealed(sealed) => map.serialize_entry("sealed", sealed)?,
            Secret::Plain(_) => map.serialize_entry("sealed", &None::<String>)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Plain(String),
            Sealed { sealed: String },
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Plain(text) => Secret::Plain(text),
            Form::Sealed { sealed } => Secret::Sealed(sealed),
        })
    }
}

impl Default for MerchantSettings {
    fn default() -> Self {
        MerchantSettings {
            encrypt_type: EncryptType::default(),
            sign_responses: true,
            generations: defaults::generations(),
            deadline_ms: defaults::deadline_ms(),
            memory_mib: defaults::memory_mib(),
            max_plugin_mib: defaults::max_plugin_mib(),
            create_in_flight: CreateInFlight::default(),
            unknown_instances: UnknownInstances::default(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            allow_private_networks: false,
        }
    }
}

/// The defaults of top-level and per-merchant keys (the sections' defaults
/// are their `Default` impls).
pub mod defaults {
    use super::*;
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn header_read_timeout_secs() -> u64 {
        5
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("./data")
    }
    pub fn key_file() -> PathBuf {
        PathBuf::from("gateway.key")
    }
    pub fn answer_budget_ms() -> u64 {
        4_000
    }
    pub fn max_body_bytes() -> usize {
        64 << 10
    }
    pub fn max_query_bytes() -> usize {
        8 << 10
    }
    pub fn max_query_params() -> usize {
        64
    }
    pub fn shutdown_grace_secs() -> u64 {
        30
    }
    pub fn load_timeout_secs() -> u64 {
        60
    }
    pub fn yes() -> bool {
        true
    }
    pub fn generations() -> Vec<Generation> {
        vec![Generation::V1, Generation::V2]
    }
    pub fn deadline_ms() -> u64 {
        2_000
    }
    pub fn memory_mib() -> u64 {
        64
    }
    pub fn max_plugin_mib() -> u64 {
        10
    }
}

impl Config {
    /// Threads serving the callback port's connections: as configured, else
    /// one per core.
    pub fn connection_threads(&self) -> usize {
        self.connection_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Reads, overrides from the process environment, resolves and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, path, base, |name| std::env::var(name).ok())
    }

    /// Parses `text` (named `origin` in messages), applies overrides from
    /// `env`, resolves relative paths against `base` and validates.
    pub fn from_toml(
        text: &str,
        origin: &Path,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.apply_env(env)?;
        config.resolve_paths(base);
        config.read_admin_token()?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(listen) = env("GATEWAY_LISTEN") {
            self.listen = listen
                .parse()
                .map_err(|e| invalid("GATEWAY_LISTEN", format!("{e}")))?;
        }
        if let Some(listen) = env("GATEWAY_ADMIN_LISTEN") {
            self.admin.listen = Some(
                listen
                    .parse()
                    .map_err(|e| invalid("GATEWAY_ADMIN_LISTEN", format!("{e}")))?,
            );
        }
        if let Some(url) = env("GATEWAY_STORE_URL").filter(|url| !url.trim().is_empty()) {
            self.store.url = Some(StoreUrl(url.trim().to_string()));
        }
        if let Some(dir) = env("GATEWAY_DATA_DIR") {
            self.data_dir = PathBuf::from(dir);
        }
        if let Some(token) = env(ADMIN_TOKEN_ENV) {
            self.admin.token = Some(AdminToken(token.trim().to_string()));
        }
        if let Some(budget) = env("GATEWAY_ANSWER_BUDGET_MS") {
            self.answer_budget_ms = budget
                .parse()
                .map_err(|e| invalid("GATEWAY_ANSWER_BUDGET_MS", format!("{e}")))?;
        }
        for merchant in &mut self.merchants {
            if let Some(keys) = env(&merchant_env_name(&merchant.id, "ACCESS_KEYS")) {
                merchant.access_keys = keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(AccessKey::new)
                    .collect();
            }
        }
        Ok(())
    }

    /// The operator token from `token_file`, unless the environment gave
    /// one.
    fn read_admin_token(&mut self) -> Result<(), ConfigError> {
        if self.admin.token.is_some() {
            return Ok(());
        }
        if let Some(file) = &self.admin.token_file {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            self.admin.token = Some(AdminToken(text.trim().to_string()));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        if self.data_dir.is_relative() {
            self.data_dir = base.join(&self.data_dir);
        }
        if self.store.path.is_relative() {
            self.store.path = self.data_dir.join(&self.store.path);
        }
        if self.key_file.is_relative() {
            self.key_file = self.data_dir.join(&self.key_file);
        }
        if let Some(file) = &mut self.store.ca_file
            && file.is_relative()
        {
            *file = self.data_dir.join(&*file);
        }
        if let Some(file) = &mut self.admin.token_file
            && file.is_relative()
        {
            *file = self.data_dir.join(&*file);
        }
        for merchant in &mut self.merchants {
            if merchant.plugin.is_relative() {
                merchant.plugin = base.join(&merchant.plugin);
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.answer_budget_ms == 0 || self.answer_budget_ms >= MARKETPLACE_TIMEOUT_MS {
            return Err(invalid(
                "answer_budget_ms",
                format!(
                    "must be between 1 and {} (the marketplace waits 5 s)",
                    MARKETPLACE_TIMEOUT_MS - 1
                ),
            ));
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 16 << 20 {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if self.max_query_bytes < 1024 || self.max_query_bytes > 1 << 20 {
            return Err(invalid(
                "max_query_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if self.max_connections == 0 || self.max_connections > 1 << 20 {
            return Err(invalid("max_connections", "must be between 1 and 1048576"));
        }
        if self
            .connection_threads
            .is_some_and(|threads| threads > 1024)
        {
            return Err(invalid("connection_threads", "must be at most 1024"));
        }
        if self.header_read_timeout_secs == 0 || self.header_read_timeout_secs > 60 {
            return Err(invalid(
                "header_read_timeout_secs",
                "must be between 1 and 60",
            ));
        }
        // Port 0 asks the kernel for a fresh port each time: never the same.
        if self.listen.port() != 0 && self.admin.listen == Some(self.listen) {
            return Err(invalid(
                "admin.listen",
                "must differ from listen: the admin listener is never the callback port",
            ));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(invalid("shutdown_grace_secs", "must be at most 3600"));
        }
        if self.load_timeout_secs == 0 || self.load_timeout_secs > 3600 {
            return Err(invalid("load_timeout_secs", "must be between 1 and 3600"));
        }
        if self.max_query_params < 16 || self.max_query_params > 4096 {
            return Err(invalid("max_query_params", "must be between 16 and 4096"));
        }
        let signature = &self.signature;
        if signature.window_secs == 0 || signature.window_secs > 3600 {
            return Err(invalid(
                "signature.window_secs",
                "must be between 1 and 3600",
            ));
        }
        if signature.nonce_memory_secs > 7 * 24 * 3600 {
            return Err(invalid(
                "signature.nonce_memory_secs",
                "must be at most 604800 (7 days)",
            ));
        }
        if signature.v1_window_secs == 0 || signature.v1_window_secs > 7 * 24 * 3600 {
            return Err(invalid(
                "signature.v1_window_secs",
                "must be between 1 and 604800 (7 days)",
            ));
        }
        if signature.nonce_memory_secs < 2 * signature.window_secs {
            return Err(invalid(
                "signature.nonce_memory_secs",
                "must be at least twice signature.window_secs, or a replay could outlive the memory",
            ));
        }
        if self.sandbox.max_instances == 0 {
            return Err(invalid("sandbox.max_instances", "must be at least 1"));
        }
        if self.sandbox.max_memory_mib == 0 || self.sandbox.max_memory_mib > 4095 {
            return Err(invalid(
                "sandbox.max_memory_mib",
                "must be between 1 and 4095 (plugins have 32-bit memories)",
            ));
        }
        if self.sandbox.max_component_mib == 0 || self.sandbox.max_component_mib > 1024 {
            return Err(invalid(
                "sandbox.max_component_mib",
                "must be between 1 and 1024",
            ));
        }
        if self.sandbox.max_cached_plugins == 0 {
            return Err(invalid("sandbox.max_cached_plugins", "must be at least 1"));
        }
        if self.sandbox.max_cached_plugin_mib == 0 {
            return Err(invalid(
                "sandbox.max_cached_plugin_mib",
                "must be at least 1",
            ));
        }
        self.validate_shares()?;
        self.validate_store()?;
        self.validate_capabilities()?;
        if let Some(token) = &self.admin.token
            && token.0.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(invalid(
                "admin.token",
                format!(
                    "the operator token ({ADMIN_TOKEN_ENV} or admin.token_file) must be at least \
                     {MIN_ADMIN_TOKEN_CHARS} characters"
                ),
            ));
        }
        if self.merchants.is_empty() && self.admin.listen.is_none() {
            return Err(invalid(
                "merchants",
                "at least one merchant is needed (or an admin listener to create them)",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, merchant) in self.merchants.iter().enumerate() {
            self.validate_merchant(&format!("merchants[{i}]"), merchant)?;
            if !seen.insert(merchant.id.as_str()) {
                return Err(invalid(
                    format!("merchants[{i}].id"),
                    format!("`{}` is used twice", merchant.id),
                ));
            }
        }
        Ok(())
    }

    fn validate_shares(&self) -> Result<(), ConfigError> {
        let sandbox = &self.sandbox;
        if sandbox.memory_budget_mib < sandbox.max_memory_mib || sandbox.memory_budget_mib > 1 << 20
        {
            return Err(invalid(
                "sandbox.memory_budget_mib",
                format!(
                    "must be between sandbox.max_memory_mib ({}) and 1048576",
                    sandbox.max_memory_mib
                ),
            ));
        }
        if sandbox.merchant_max_instances == 0
            || sandbox.merchant_max_instances > sandbox.max_instances
        {
            return Err(invalid(
                "sandbox.merchant_max_instances",
                format!(
                    "must be between 1 and sandbox.max_instances ({})",
                    sandbox.max_instances
                ),
            ));
        }
        if sandbox.merchant_cpu_slots == 0 || sandbox.merchant_cpu_slots > 1024 {
            return Err(invalid(
                "sandbox.merchant_cpu_slots",
                "must be between 1 and 1024",
            ));
        }
        if sandbox.threads > 1024 {
            return Err(invalid("sandbox.threads", "must be at most 1024"));
        }
        if !(0..=19).contains(&sandbox.nice) {
            return Err(invalid("sandbox.nice", "must be between 0 and 19"));
        }
        if sandbox.merchant_memory_mib < sandbox.max_memory_mib
            || sandbox.merchant_memory_mib > sandbox.memory_budget_mib
        {
            return Err(invalid(
                "sandbox.merchant_memory_mib",
                format!(
                    "must be between sandbox.max_memory_mib ({}) and sandbox.memory_budget_mib ({})",
                    sandbox.max_memory_mib, sandbox.memory_budget_mib
                ),
            ));
        }
        Ok(())
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        let longest_deadline = self.merchants.iter().map(|m| m.settings.deadline_ms).max();
        let lease_floor = longest_deadline
            .unwrap_or(0)
            .saturating_mul(2)
            .max(self.answer_budget_ms);
        if store.lease_ms < lease_floor {
            return Err(invalid(
                "store.lease_ms",
                format!(
                    "must be at least {lease_floor} (twice the longest deadline_ms and at least \
                     answer_budget_ms), or a slow call could be taken over while still running"
                ),
            ));
        }
        if store.busy_timeout_ms == 0 || store.busy_timeout_ms >= self.answer_budget_ms {
            return Err(invalid(
                "store.busy_timeout_ms",
                format!(
                    "must be between 1 and answer_budget_ms ({}) - 1: a write waiting on a \
                     lock past the budget would answer too late",
                    self.answer_budget_ms
                ),
            ));
        }
        if let Some(url) = &store.url
            && !(url.0.starts_with("postgres://") || url.0.starts_with("postgresql://"))
        {
            return Err(invalid(
                "store.url",
                "must be a PostgreSQL URL (postgres://user@host:5432/database); leave it out \
                 for the embedded SQLite store at store.path"
                    .to_string(),
            ));
        }
        if store.url.is_some() && store.acquire_timeout_ms >= self.answer_budget_ms {
            return Err(invalid(
                "store.acquire_timeout_ms",
                format!(
                    "must be below answer_budget_ms ({}): a call waiting for a connection past \
                     the budget would answer too late",
                    self.answer_budget_ms
                ),
            ));
        }
        const DAY_SECS: u64 = 24 * 3600;
        // Bounds that keep every derived duration and size representable.
        let bounded = [
            ("store.lease_ms", store.lease_ms, 1, DAY_SECS * 1000),
            ("store.retention_days", store.retention_days, 1, 10 * 365),
            ("store.hot_cache_mib", store.hot_cache_mib, 1, 1 << 20),
            (
                "store.hot_cache_ttl_secs",
                store.hot_cache_ttl_secs,
                1,
                DAY_SECS,
            ),
            (
                "store.completer_interval_secs",
                store.completer_interval_secs,
                1,
                DAY_SECS,
            ),
            (
                "store.reaper_interval_secs",
                store.reaper_interval_secs,
                1,
                DAY_SECS,
            ),
            (
                "store.follow_changes_ms",
                store.follow_changes_ms,
                50,
                3_600_000,
            ),
            ("store.max_attempts", u64::from(store.max_attempts), 1, 1000),
            ("store.max_connections", store.max_connections, 1, 1000),
            (
                "store.connect_timeout_ms",
                store.connect_timeout_ms,
                100,
                60_000,
            ),
            (
                "store.acquire_timeout_ms",
                store.acquire_timeout_ms,
                10,
                60_000,
            ),
            (
                "store.max_size_mib",
                store.max_size_mib.unwrap_or(1),
                1,
                1 << 30,
            ),
        ];
        for (key, value, min, max) in bounded {
            if !(min..=max).contains(&value) {
                return Err(invalid(key, format!("must be between {min} and {max}")));
            }
        }
        Ok(())
    }

    fn validate_capabilities(&self) -> Result<(), ConfigError> {
        let http = &self.outbound_http;
        let ranges: [(&str, u64, u64, u64); 8] = [
            (
                "outbound_http.connect_timeout_ms",
                http.connect_timeout_ms,
                1,
                60_000,
            ),
            (
                "outbound_http.first_byte_timeout_ms",
                http.first_byte_timeout_ms,
                1,
                60_000,
            ),
            (
                "outbound_http.between_bytes_timeout_ms",
                http.between_bytes_timeout_ms,
                1,
                60_000,
            ),
            (
                "outbound_http.max_request_body_kib",
                http.max_request_body_kib,
                1,
                16 << 10,
            ),
            (
                "outbound_http.max_response_body_kib",
                http.max_response_body_kib,
                1,
                16 << 10,
            ),
            (
                "outbound_http.max_requests_per_call",
                u64::from(http.max_requests_per_call),
                1,
                100,
            ),
            ("kv.max_key_bytes", self.kv.max_key_bytes as u64, 1, 4096),
            ("kv.max_value_kib", self.kv.max_value_kib as u64, 1, 1024),
        ];
        for (key, value, min, max) in ranges {
            if value < min || value > max {
                return Err(invalid(key, format!("must be between {min} and {max}")));
            }
        }
        let log = &self.callback_log;
        if log.retention_days == 0 || log.retention_days > 3650 {
            return Err(invalid(
                "callback_log.retention_days",
                "must be between 1 and 3650",
            ));
        }
        if log.max_plugin_log_kib > 64 || log.queue == 0 || log.queue > 1 << 20 {
            return Err(invalid(
                "callback_log",
                "max_plugin_log_kib must be at most 64 and queue between 1 and 1048576",
            ));
        }
        if self.kv.max_total_mib == 0 || self.kv.max_keys == 0 {
            return Err(invalid(
                "kv",
                "max_total_mib and max_keys must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_merchant(&self, at: &str, merchant: &MerchantConfig) -> Result<(), ConfigError> {
        let id_ok = !merchant.id.is_empty()
            && merchant.id.len() <= 64
            && merchant
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid(
                format!("{at}.id"),
                "must be 1-64 characters of A-Z, a-z, 0-9, - and _",
            ));
        }
        if merchant.access_keys.is_empty() {
            return Err(invalid(
                format!("{at}.access_keys"),
                "at least one key is needed",
            ));
        }
        if merchant
            .access_keys
            .iter()
            .any(|k| k.expose().trim().is_empty())
        {
            return Err(invalid(
                format!("{at}.access_keys"),
                "keys must not be blank",
            ));
        }
        self.validate_settings(at, &merchant.settings)
    }

    /// Checks a merchant's settings against this gateway's bounds (also for
    /// settings sent to the admin API); the error names `{at}.<key>`.
    pub fn validate_settings(
        &self,
        at: &str,
        settings: &MerchantSettings,
    ) -> Result<(), ConfigError> {
        if settings.generations.is_empty() {
            return Err(invalid(
                format!("{at}.generations"),
                "at least one of \"v1\" and \"v2\" is needed",
            ));
        }
        if settings.deadline_ms == 0 || settings.deadline_ms >= self.answer_budget_ms {
            return Err(invalid(
                format!("{at}.deadline_ms"),
                format!(
                    "must be between 1 and answer_budget_ms ({}) - 1",
                    self.answer_budget_ms
                ),
            ));
        }
        if settings.max_plugin_mib == 0 || settings.max_plugin_mib > self.sandbox.max_component_mib
        {
            return Err(invalid(
                format!("{at}.max_plugin_mib"),
                format!(
                    "must be between 1 and sandbox.max_component_mib ({})",
                    self.sandbox.max_component_mib
                ),
            ));
        }
        if let Err(e) = gateway_egress::AllowList::parse(&settings.allowed_outbound_hosts) {
            return Err(invalid(
                format!("{at}.allowed_outbound_hosts"),
                format!("{}: {}", e.entry, e.reason),
            ));
        }
        if let Some(name) = settings
            .secrets
            .keys()
            .find(|name| settings.config.contains_key(*name))
        {
            return Err(invalid(
                format!("{at}.secrets.{name}"),
                "is also in config; a plugin reads both the same way, so a name may be in only one",
            ));
        }
        if settings.memory_mib == 0 || settings.memory_mib > self.sandbox.max_memory_mib {
            return Err(invalid(
                format!("{at}.memory_mib"),
                format!(
                    "must be between 1 and sandbox.max_memory_mib ({})",
                    self.sandbox.max_memory_mib
                ),
            ));
        }
        Ok(())
    }
}

/// `GATEWAY_MERCHANT_<ID>_<SUFFIX>` for a merchant id.
pub fn merchant_env_name(id: &str, suffix: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("GATEWAY_MERCHANT_{id}_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[merchants]]
        id = "acme"
        access_keys = ["k1"]
        plugin = "plugins/acme.wasm"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(
            text,
            Path::new("gateway.toml"),
            Path::new("/etc/gw"),
            |_| None,
        )
    }

    #[test]
    fn a_postgresql_store_comes_from_the_file_or_the_environment_and_hides_its_password() {
        let url = "postgres://gw:s3cret-pass@db.internal:5432/gateway";
        let from_env =
            Config::from_toml(MINIMAL, Path::new("g.toml"), Path::new("/etc/gw"), |name| {
                (name == "GATEWAY_STORE_URL").then(|| url.to_string())
            })
            .expect("valid");
        assert_eq!(from_env.store.url, Some(StoreUrl(url.into())));
        let shown = format!("{:?}", from_env.store);
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(shown.contains("db.internal:5432/gateway"), "{shown}");

        let in_file = format!("[store]\nurl = \"{url}\"\n{MINIMAL}");
        assert_eq!(
            parse(&in_file).expect("valid").store.url,
            Some(StoreUrl(url.into()))
        );
        let other = "[store]\nurl = \"mysql://db/gateway\"\n".to_string() + MINIMAL;
        let refused = parse(&other).expect_err("not PostgreSQL");
        assert!(refused.to_string().contains("store.url"), "{refused}");
        let slow = format!("[store]\nurl = \"{url}\"\nacquire_timeout_ms = 4000\n{MINIMAL}");
        let refused = parse(&slow).expect_err("past the budget");
        assert!(
            refused.to_string().contains("store.acquire_timeout_ms"),
            "{refused}"
        );
    }

    #[test]
    fn defaults_fill_everything_but_the_merchants() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.data_dir, Path::new("/etc/gw/./data"));
        assert_eq!(config.answer_budget_ms, 4_000);
        assert_eq!(config.store.path, Path::new("/etc/gw/./data/gateway.db"));
        assert_eq!(config.store.retention_days, 7);
        let merchant = &config.merchants[0];
        assert_eq!(
            merchant.settings.create_in_flight,
            CreateInFlight::Processing
        );
        assert_eq!(
            merchant.settings.unknown_instances,
            UnknownInstances::Reject
        );
        assert_eq!(merchant.plugin, Path::new("/etc/gw/plugins/acme.wasm"));
        assert_eq!(merchant.settings.encrypt_type, EncryptType::Aes256);
        assert!(merchant.settings.sign_responses);
        assert_eq!(
            merchant.settings.generations,
            [Generation::V1, Generation::V2]
        );
        assert!(!format!("{merchant:?}").contains("k1"), "keys are redacted");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let cases = [
            (format!("{MINIMAL}\nlisten_port = 1"), "listen_port"),
            (
                format!("answer_budget_ms = 5000\n{MINIMAL}"),
                "answer_budget_ms",
            ),
            (
                format!("{MINIMAL}\nencrypt_type = 3"),
                "encrypt_type must be 1",
            ),
            (
                format!("{MINIMAL}\ndeadline_ms = 4000"),
                "merchants[0].deadline_ms",
            ),
            (
                format!("{MINIMAL}\nmemory_mib = 500"),
                "merchants[0].memory_mib",
            ),
            (
                format!("{MINIMAL}\ngenerations = []"),
                "merchants[0].generations",
            ),
            (
                format!("{MINIMAL}\ngenerations = [\"v3\"]"),
                "unknown variant `v3`",
            ),
            (format!("{MINIMAL}\nsurprise = true"), "surprise"),
            (MINIMAL.replace("\"acme\"", "\"a/b\""), "merchants[0].id"),
            (
                MINIMAL.replace("[\"k1\"]", "[]"),
                "merchants[0].access_keys",
            ),
            (format!("{MINIMAL}{MINIMAL}"), "is used twice"),
            ("listen = \"nowhere\"\nmerchants = []".into(), "listen"),
            ("merchants = []".into(), "at least one merchant"),
            (
                format!("[signature]\nnonce_memory_secs = 60\n{MINIMAL}"),
                "nonce_memory_secs",
            ),
            (
                format!("[store]\nlease_ms = 3000\n{MINIMAL}"),
                "store.lease_ms",
            ),
            (
                format!("[store]\nretention_days = 0\n{MINIMAL}"),
                "store.retention_days",
            ),
            (
                format!("[store]\nlease_ms = 9223372036854775807\n{MINIMAL}"),
                "store.lease_ms",
            ),
            (
                format!("[store]\nbusy_timeout_ms = 4000\n{MINIMAL}"),
                "store.busy_timeout_ms",
            ),
            (
                format!("[signature]\nv1_window_secs = 0\n{MINIMAL}"),
                "signature.v1_window_secs",
            ),
            (
                format!("max_query_bytes = 10\n{MINIMAL}"),
                "max_query_bytes",
            ),
            (
                format!("[store]\nmax_attempts = 0\n{MINIMAL}"),
                "store.max_attempts",
            ),
            (
                format!("{MINIMAL}\ncreate_in_flight = \"maybe\""),
                "create_in_flight",
            ),
            (
                format!("{MINIMAL}\nunknown_instances = \"ignore\""),
                "unknown_instances",
            ),
            (
                format!("[admin]\nlisten = \"127.0.0.1:8080\"\n{MINIMAL}"),
                "admin.listen",
            ),
            (format!("max_connections = 0\n{MINIMAL}"), "max_connections"),
            (format!("[sandbox]\nnice = -5\n{MINIMAL}"), "sandbox.nice"),
            (
                format!("header_read_timeout_secs = 0\n{MINIMAL}"),
                "header_read_timeout_secs",
            ),
            (
                format!("connection_threads = 4096\n{MINIMAL}"),
                "connection_threads",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text).expect_err(expected).to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn both_listeners_may_ask_for_ephemeral_ports() {
        let text =
            format!("listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{MINIMAL}");
        let config = parse(&text).expect("port 0 twice is two fresh ports");
        assert_eq!(config.admin.listen, Some(config.listen));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let env = |name: &str| match name {
            "GATEWAY_LISTEN" => Some("0.0.0.0:9000".to_string()),
            "GATEWAY_MERCHANT_ACME_ACCESS_KEYS" => Some("new, old".to_string()),
            _ => None,
        };
        let config =
            Config::from_toml(MINIMAL, Path::new("g.toml"), Path::new("."), env).expect("valid");
        assert_eq!(config.listen.port(), 9000);
        let keys: Vec<&str> = config.merchants[0]
            .access_keys
            .iter()
            .map(AccessKey::expose)
            .collect();
        assert_eq!(keys, ["new", "old"]);
        let bad = |name: &str| (name == "GATEWAY_ANSWER_BUDGET_MS").then(|| "soon".to_string());
        let error = Config::from_toml(MINIMAL, Path::new("g.toml"), Path::new("."), bad)
            .expect_err("not a number")
            .to_string();
        assert!(error.contains("GATEWAY_ANSWER_BUDGET_MS"), "{error}");
    }
}
