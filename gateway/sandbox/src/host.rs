//! The state of one sandboxed call (the `T` of `Store<T>`) and the host
//! functions the contract imports: structured logging, merchant configuration
//! (secrets included), the merchant's key-value store (`kv`), outbound HTTP
//! through `wasi:http` as the merchant's grant allows (`outbound`), and WASI
//! with no ambient authority (no files, environment, or sockets; stdout and
//! stderr captured).
//!
//! Nothing a plugin passes to the host is copied before its size is known to
//! fit the call's budget: `log` reads its message in place and lifts at most
//! [`MAX_LOG_FIELDS`] fields, and the resource table is bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, ResourceTable, WasmList, WasmStr};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::{CallLimits, MemoryLimiter};
use super::output::CapturedOutput;
use crate::MerchantContext;
use crate::bindings::{LogLevel, config_import, kv_import, types_import};
use crate::kv::KvHost;
use crate::outbound::OutboundHooks;
use crate::shares::MemoryAccount;

/// The most structured fields kept from one log record.
pub const MAX_LOG_FIELDS: usize = 32;
/// What an entry of a log record costs in the budget besides its text, so
/// that a flood of empty fields or messages is bounded too.
const LOG_ENTRY_OVERHEAD: usize = 16;
/// Resources (streams, pollables…) one call may hold at once.
const MAX_RESOURCES: usize = 4096;

/// A merchant's plugin configuration values, as the operator set them.
pub type PluginConfig = BTreeMap<String, String>;

/// One record a plugin logged through the `log` interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginLogRecord {
    pub level: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

/// The per-call state of a sandbox. Created fresh for every call.
pub(crate) struct HostState {
    merchant: Arc<str>,
    config: Arc<PluginConfig>,
    pub(crate) limiter: MemoryLimiter,
    logs: LogSink,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: OutboundHooks,
    kv: KvHost,
}

impl HostState {
    pub(crate) fn new(
        merchant: &MerchantContext,
        limits: &CallLimits,
        memory_accounts: Vec<Arc<MemoryAccount>>,
        deadline: Instant,
    ) -> Self {
        let stdout = CapturedOutput::new(limits.max_log_bytes);
        let stderr = CapturedOutput::new(limits.max_log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            // Deny-by-default already; said explicitly so that a change of
            // upstream defaults cannot open the network to plugins.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let label = merchant.label.clone();
        HostState {
            merchant: label.clone(),
            config: merchant.config.clone(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHooks::new(label.clone(), merchant.egress.as_ref(), deadline),
            kv: KvHost::new(label, merchant.kv.clone()),
            limiter: MemoryLimiter::new(limits.memory_bytes, memory_accounts),
            logs: LogSink::new(limits.max_log_bytes),
            stdout,
            stderr,
            wasi,
            table,
        }
    }

    pub(crate) fn take_logs(&mut self) -> (Vec<PluginLogRecord>, usize) {
        (
            std::mem::take(&mut self.logs.records),
            std::mem::take(&mut self.logs.dropped),
        )
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl types_import::Host for HostState {}

impl kv_import::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv_import::KvError> {
        self.kv.get(key).await
    }
    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv_import::KvError> {
        self.kv.set(key, value).await
    }
    async fn delete(&mut self, key: String) -> Result<bool, kv_import::KvError> {
        self.kv.delete(key).await
    }
    async fn list_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, kv_import::KvError> {
        self.kv.list_keys(prefix, after, limit).await
    }
}

/// A log field as it sits in the guest's memory, read in place.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawField {
    key: WasmStr,
    value: WasmStr,
}

/// The contract's host imports: `config` through its generated bindings,
/// `log` by hand, so that it can measure before it copies (see the module
/// docs).
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    types_import::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    config_import::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    kv_import::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    let log_interface = format!("koogallery:plugin/log@{}", koogallery_contract::VERSION);
    let mut instance = linker.instance(&log_interface)?;
    instance.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, HostState>,
         (level, message, fields): (LogLevel, WasmStr, WasmList<RawField>)| {
            log(&mut store, level, &message, &fields)
        },
    )
}

/// One `log` call: at most the budget's worth of text and
/// [`MAX_LOG_FIELDS`] fields leave the guest's memory.
fn log(
    store: &mut StoreContextMut<'_, HostState>,
    level: LogLevel,
    message: &WasmStr,
    fields: &WasmList<RawField>,
) -> wasmtime::Result<()> {
    let kept = fields.len().min(MAX_LOG_FIELDS);
    let mut raw = Vec::with_capacity(kept);
    for index in 0..kept {
        if let Some(field) = fields.get(&mut *store, index) {
            raw.push(field?);
        }
    }
    let mut size = message.to_str(&*store)?.len() + LOG_ENTRY_OVERHEAD;
    for field in &raw {
        size += field.key.to_str(&*store)?.len() + field.value.to_str(&*store)?.len();
        size += LOG_ENTRY_OVERHEAD;
    }
    if !store.data_mut().logs.fits(size) {
        let state = store.data_mut();
        state.logs.drop_one();
        if state.logs.just_exhausted() {
            tracing::warn!(merchant = %state.merchant, "plugin log budget exhausted; further records of this call are dropped");
        }
        return Ok(());
    }
    let message = message.to_str(&*store)?.into_owned();
    let mut pairs = BTreeMap::new();
    for field in &raw {
        let key = field.key.to_str(&*store)?.into_owned();
        let value = field.value.to_str(&*store)?.into_owned();
        pairs.insert(key, value);
    }
    if fields.len() > kept {
        pairs.insert(
            "dropped_fields".to_string(),
            (fields.len() - kept).to_string(),
        );
    }
    let state = store.data_mut();
    let record = state.logs.accept(level, message, pairs, size);
    emit_plugin_log(&state.merchant, &record);
    Ok(())
}

impl config_import::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
    fn get_all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Keeps a call's log records within its byte budget.
struct LogSink {
    budget: usize,
    used: usize,
    records: Vec<PluginLogRecord>,
    dropped: usize,
}

impl LogSink {
    fn new(budget: usize) -> Self {
        LogSink {
            budget,
            used: 0,
            records: Vec::new(),
            dropped: 0,
        }
    }

    /// Whether a record of `size` budget bytes still fits.
    fn fits(&self, size: usize) -> bool {
        self.used.saturating_add(size) <= self.budget
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
    }

    /// Keeps a record that [`fits`](Self::fits).
    fn accept(
        &mut self,
        level: LogLevel,
        message: String,
        fields: BTreeMap<String, String>,
        size: usize,
    ) -> PluginLogRecord {
        self.used += size;
        let record = PluginLogRecord {
            level: level_name(level),
            message,
            fields,
        };
        self.records.push(record.clone());
        record
    }

    /// True exactly once: on the first dropped record.
    fn just_exhausted(&self) -> bool {
        self.dropped == 1
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// Sends a plugin's record to the gateway's log under target `plugin`.
fn emit_plugin_log(merchant: &str, record: &PluginLogRecord) {
    let fields = FieldList(&record.fields);
    let message = record.message.as_str();
    match record.level {
        "trace" => tracing::trace!(target: "plugin", merchant, %fields, "{message}"),
        "debug" => tracing::debug!(target: "plugin", merchant, %fields, "{message}"),
        "info" => tracing::info!(target: "plugin", merchant, %fields, "{message}"),
        "warn" => tracing::warn!(target: "plugin", merchant, %fields, "{message}"),
        _ => tracing::error!(target: "plugin", merchant, %fields, "{message}"),
    }
}

/// Formats plugin fields as `key=value key=value` for a single log field.
struct FieldList<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sink_stops_at_its_budget_and_counts_what_it_drops() {
        let mut sink = LogSink::new(40);
        let fields = BTreeMap::from([("k".to_string(), "v".to_string())]);
        assert!(sink.fits(30));
        sink.accept(LogLevel::Info, "hello".into(), fields, 30);
        assert!(!sink.fits(11), "past the budget");
        sink.drop_one();
        assert!(sink.just_exhausted());
        assert!(sink.fits(10), "a small record still fits");
        sink.accept(LogLevel::Warn, "x".into(), BTreeMap::new(), 10);
        sink.drop_one();
        assert!(!sink.just_exhausted());
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.dropped, 2);
        assert_eq!(
            sink.records[0].fields.get("k").map(String::as_str),
            Some("v")
        );
    }
}
