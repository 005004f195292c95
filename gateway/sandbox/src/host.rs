//! The state of one sandboxed call (the `T` of `Store<T>`) and the host
//! functions the contract imports: structured logging, merchant configuration,
//! and WASI with no ambient authority (no files, environment, or sockets;
//! stdout and stderr captured).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{CallLimits, MemoryLimiter};
use super::output::CapturedOutput;
use crate::bindings::{LogField, LogLevel, config_import, log_import, types_import};

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
}

impl HostState {
    pub(crate) fn new(merchant: Arc<str>, config: Arc<PluginConfig>, limits: &CallLimits) -> Self {
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
        HostState {
            merchant,
            config,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            logs: LogSink::new(limits.max_log_bytes),
            stdout,
            stderr,
            wasi,
            table: ResourceTable::new(),
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

impl types_import::Host for HostState {}

impl log_import::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String, fields: Vec<LogField>) {
        let merchant = self.merchant.clone();
        if let Some(record) = self.logs.accept(level, message, fields) {
            emit_plugin_log(&merchant, &record);
        } else if self.logs.just_exhausted() {
            tracing::warn!(merchant = %merchant, "plugin log budget exhausted; further records of this call are dropped");
        }
    }
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

    fn accept(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<LogField>,
    ) -> Option<PluginLogRecord> {
        let size = message.len()
            + fields
                .iter()
                .map(|f| f.key.len() + f.value.len())
                .sum::<usize>();
        if self.used + size > self.budget {
            self.dropped += 1;
            return None;
        }
        self.used += size;
        let record = PluginLogRecord {
            level: level_name(level),
            message,
            fields: fields.into_iter().map(|f| (f.key, f.value)).collect(),
        };
        self.records.push(record.clone());
        Some(record)
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
        let mut sink = LogSink::new(10);
        let field = |k: &str, v: &str| LogField {
            key: k.into(),
            value: v.into(),
        };
        assert!(
            sink.accept(LogLevel::Info, "hello".into(), vec![field("k", "v")])
                .is_some()
        );
        assert!(
            sink.accept(LogLevel::Info, "again".into(), vec![])
                .is_none()
        );
        assert!(sink.just_exhausted());
        assert!(
            sink.accept(LogLevel::Warn, "x".into(), vec![]).is_some(),
            "a small record still fits"
        );
        assert!(sink.accept(LogLevel::Warn, "more".into(), vec![]).is_none());
        assert!(!sink.just_exhausted());
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.dropped, 2);
        assert_eq!(
            sink.records[0].fields.get("k").map(String::as_str),
            Some("v")
        );
    }
}
