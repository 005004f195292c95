//! The callback log: the merchant's view of its callbacks (what was asked,
//! how it was answered, by which plugin version, with the plugin's own log
//! records), written *behind* the answer.
//!
//! - The callback handler builds a [`CallbackRecord`] once the answer is
//!   known and hands it to [`CallbackLogger::record`], which never waits: a
//!   bounded queue, and past it the record is dropped and counted
//!   (`gateway_callback_log_dropped_total`). A background task lets records
//!   gather for up to 250 ms (or 1,024 of them) and writes them in one lazy
//!   commit (no fsync of its own), so the log adds no wait to the callback
//!   path, and a lost record never loses or changes an answer.
//! - What only the plugin call knows (attempt, plugin version and hash, its
//!   log records) reaches the record through [`CallTraces`], keyed by the
//!   callback's request id: the executor leaves it, the handler takes it.
//! - The request is kept with the buyer's personal data masked
//!   ([`masked_request`]); never keys, signatures or credentials (the
//!   answer's app info is not kept at all). docs/callback-log.md lists
//!   every field.
//! - The same task prunes records past their retention (1,000 at a time,
//!   hourly) and reports each merchant's oldest unresolved failure
//!   (`gateway_oldest_unresolved_failure_seconds`).

use std::sync::Arc;
use std::time::Duration;

use gateway_sandbox::PluginLogRecord;
use gateway_store::{Backend, CallbackRecord};
use koogallery_contract::OperationRequest;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::CallbackLogConfig;
use crate::metrics::Metrics;

/// Records written in one commit at most.
const BATCH: usize = 1024;
/// How long the writer lets records gather after the first of a batch (less
/// once a batch's worth is waiting): one transaction for many records
/// instead of one each, which is what a record costs at a low rate.
const LINGER: Duration = Duration::from_millis(250);
/// How often a lingering writer looks whether a batch's worth is waiting.
const LINGER_STEP: Duration = Duration::from_millis(10);
/// Records pruned per statement, so that pruning never holds the writer long.
const PRUNE_STEP: u32 = 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How long a call's trace waits for its callback to take it.
const TRACE_TTL: Duration = Duration::from_secs(120);

/// What only the plugin call knows, for the callback's record.
#[derive(Clone, Debug, Default)]
pub struct CallTrace {
    pub attempt: u32,
    pub plugin_version: Option<i64>,
    pub plugin_sha256: Option<Arc<str>>,
    /// The plugin's log records as JSON, within the configured bound.
    pub plugin_logs_json: Option<String>,
    /// Why the call produced no answer (a trap and its detail, a deadline…):
    /// the merchant's own plugin, so its to see.
    pub failure: Option<String>,
}

/// Traces of recent plugin calls by request id (see the module docs).
#[derive(Clone)]
pub struct CallTraces {
    traces: moka::sync::Cache<String, Arc<CallTrace>>,
    max_log_bytes: usize,
}

impl CallTraces {
    fn new(max_log_bytes: usize) -> Self {
        CallTraces {
            traces: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(TRACE_TTL)
                .build(),
            max_log_bytes,
        }
    }

    /// Leaves the trace of a call made for `request`.
    pub fn leave(
        &self,
        request: &OperationRequest,
        plugin: Option<(i64, Arc<str>)>,
        logs: &[PluginLogRecord],
        failure: Option<String>,
    ) {
        let call = request.call();
        let (plugin_version, plugin_sha256) = plugin.unzip();
        let trace = CallTrace {
            attempt: call.attempt,
            plugin_version,
            plugin_sha256,
            plugin_logs_json: bounded_logs(logs, self.max_log_bytes),
            failure,
        };
        self.traces.insert(call.request_id.clone(), Arc::new(trace));
    }

    pub fn take(&self, request_id: &str) -> Option<Arc<CallTrace>> {
        self.traces.remove(request_id)
    }
}

/// The plugin's records as a JSON array, as many whole records as fit.
fn bounded_logs(logs: &[PluginLogRecord], max_bytes: usize) -> Option<String> {
    if logs.is_empty() || max_bytes == 0 {
        return None;
    }
    let mut kept = Vec::new();
    let mut size = 2;
    for record in logs {
        let Ok(json) = serde_json::to_value(record) else {
            continue;
        };
        size += json.to_string().len() + 1;
        if size > max_bytes {
            break;
        }
        kept.push(json);
    }
    if kept.len() < logs.len() {
        kept.push(serde_json::json!({ "dropped": logs.len() - kept.len() }));
    }
    Some(serde_json::Value::Array(kept).to_string())
}

/// The order, order line and instance a request names.
pub fn request_ids(request: &OperationRequest) -> (Option<String>, Option<String>, Option<String>) {
    use OperationRequest as R;
    match request {
        R::Create(r) => (
            Some(r.order_id.clone()),
            r.order_line_id.clone(),
            Some(r.instance_id.clone()),
        ),
        R::Query(r) => (None, None, r.instance_ids.first().cloned()),
        R::Renew(r) => (
            Some(r.order_id.clone()),
            r.order_line_id.clone(),
            Some(r.instance_id.clone()),
        ),
        R::UpdateStatus(r) => (r.order_id.clone(), None, Some(r.instance_id.clone())),
        R::Release(r) => (
            r.order_id.clone(),
            r.order_line_id.clone(),
            Some(r.instance_id.clone()),
        ),
        R::Upgrade(r) => (
            Some(r.order_id.clone()),
            r.order_line_id.clone(),
            Some(r.instance_id.clone()),
        ),
        R::ChangeCheck(r) => (None, None, Some(r.instance_id.clone())),
        R::IssueLicense(r) => (r.order_id.clone(), None, r.instance_id.clone()),
    }
}

/// What replaces a masked value.
pub const MASK: &str = "***";

/// The request as the log keeps it: `{"op": <operation>, "request": <the
/// contract's JSON form>}` (it can be run again in test mode: `plugin
/// shadow`), with the buyer's name, user name, phone and e-mail masked.
pub fn masked_request(request: &OperationRequest) -> Option<String> {
    let mut request = request.clone();
    if let Some(Some(customer)) = request.customer_mut() {
        for value in [
            &mut customer.name,
            &mut customer.user_name,
            &mut customer.mobile_phone,
            &mut customer.email,
        ] {
            if value.is_some() {
                *value = Some(MASK.to_string());
            }
        }
    }
    let logged = serde_json::json!({
        "op": request.operation().name(),
        "request": request,
    });
    Some(logged.to_string())
}

/// A request [`masked_request`] wrote.
pub fn logged_request(text: &str) -> Option<OperationRequest> {
    let mut logged: serde_json::Value = serde_json::from_str(text).ok()?;
    let operation = logged.get("op")?.as_str()?.parse().ok()?;
    let request = logged.get_mut("request")?.take();
    OperationRequest::from_json(operation, request).ok()
}

/// Writes callback records behind the answers (see the module docs).
pub struct CallbackLogger {
    queue: Option<mpsc::Sender<Pending>>,
    traces: CallTraces,
    dropped: Counter,
}

impl CallbackLogger {
    /// Starts the writer task (it flushes and ends when `stop` fires).
    pub fn start(
        config: &CallbackLogConfig,
        store: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Arc<CallbackLogger> {
        let traces = CallTraces::new(config.max_plugin_log_kib * 1024);
        let dropped = metrics.callback_log_dropped.clone();
        if !config.enabled {
            return Arc::new(CallbackLogger {
                queue: None,
                traces,
                dropped,
            });
        }
        let (queue, records) = mpsc::channel(config.queue);
        let writer = Writer {
            store,
            metrics,
            dropped: dropped.clone(),
            retention: Duration::from_secs(config.retention_days.saturating_mul(24 * 3600)),
        };
        tokio::spawn(writer.run(records, stop));
        Arc::new(CallbackLogger {
            queue: Some(queue),
            traces,
            dropped,
        })
    }

    pub fn traces(&self) -> &CallTraces {
        &self.traces
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `record` for writing; never waits. Its ids (and, if
    /// `keep_request`, the masked request) are filled in from `request` by
    /// the writer, off the callback path.
    pub fn record(
        &self,
        record: CallbackRecord,
        request: Option<OperationRequest>,
        keep_request: bool,
    ) {
        let Some(queue) = &self.queue else {
            return;
        };
        let pending = Pending {
            record,
            request,
            keep_request,
        };
        if queue.try_send(pending).is_err() {
            self.dropped.inc();
        }
    }
}

/// A record waiting for the writer.
struct Pending {
    record: CallbackRecord,
    request: Option<OperationRequest>,
    keep_request: bool,
}

impl Pending {
    fn complete(self) -> CallbackRecord {
        let mut record = self.record;
        if let Some(request) = &self.request {
            let (order_id, order_line_id, instance_id) = request_ids(request);
            record.order_id = record.order_id.or(order_id);
            record.order_line_id = record.order_line_id.or(order_line_id);
            record.instance_id = record.instance_id.or(instance_id);
            record.test = request.call().test;
            if self.keep_request {
                record.request_json = masked_request(request);
            }
        }
        record
    }
}

struct Writer {
    store: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    dropped: Counter,
    retention: Duration,
}

impl Writer {
    async fn run(self, mut records: mpsc::Receiver<Pending>, stop: CancellationToken) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut report = tokio::time::interval(REPORT_EVERY);
        loop {
            let first = tokio::select! {
                record = records.recv() => record,
                _ = prune.tick() => { self.prune().await; continue; }
                _ = report.tick() => { self.report_failures().await; continue; }
                () = stop.cancelled() => None,
            };
            let Some(first) = first else {
                // Stopping: write what is queued, then end.
                records.close();
                let rest: Vec<CallbackRecord> = std::iter::from_fn(|| records.try_recv().ok())
                    .map(Pending::complete)
                    .collect();
                for batch in rest.chunks(BATCH) {
                    self.write(batch.to_vec()).await;
                }
                return;
            };
            let linger_until = tokio::time::Instant::now() + LINGER;
            while records.len() + 1 < BATCH
                && tokio::time::Instant::now() < linger_until
                && !stop.is_cancelled()
            {
                tokio::time::sleep(LINGER_STEP).await;
            }
            let mut batch = vec![first.complete()];
            while batch.len() < BATCH {
                match records.try_recv() {
                    Ok(pending) => batch.push(pending.complete()),
                    Err(_) => break,
                }
            }
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<CallbackRecord>) {
        let count = batch.len() as u64;
        if let Err(error) = self.store.log_callbacks(batch).await {
            self.dropped.inc_by(count);
            tracing::warn!(%error, count, "callback log records could not be written; dropped");
        }
    }

    /// Deletes expired records a step at a time until none is left.
    async fn prune(&self) {
        let now = crate::registry::now_ms();
        let before =
            now.saturating_sub(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        loop {
            match self.store.prune_callbacks(before, PRUNE_STEP).await {
                Ok(pruned) if pruned == u64::from(PRUNE_STEP) => tokio::task::yield_now().await,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "pruning the callback log failed; the next pass retries");
                    return;
                }
            }
        }
    }

    async fn report_failures(&self) {
        report_oldest_failures(self.store.as_ref(), &self.metrics).await;
    }
}

/// Sets `gateway_oldest_unresolved_failure_seconds` from the store (the
/// writer task does it every 30 s).
pub async fn report_oldest_failures(store: &dyn Backend, metrics: &Metrics) {
    match store.oldest_failures().await {
        Ok(oldest) => metrics.set_oldest_failures(&oldest, crate::registry::now_ms()),
        Err(error) => tracing::warn!(%error, "reading unresolved failures failed"),
    }
}
