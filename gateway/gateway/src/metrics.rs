//! The gateway's Prometheus metrics (text exposition at `/metrics`).
//!
//! Label values are bounded: `merchant` is a configured id or `unknown`,
//! `activity` a known wire name or `unknown`, so a scanner hitting random
//! URLs cannot grow the series without limit. A platform with thousands of
//! merchants may keep series off the merchant id altogether
//! (`admin.per_merchant_metrics = false`: every merchant is `*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use gateway_sandbox::RuntimeStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    pub merchant: String,
    // Static names: no allocation per callback for them.
    pub generation: &'static str,
    pub activity: &'static str,
    pub result_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub merchant: String,
    pub activity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub merchant: String,
    pub kind: String,
    /// How the idempotency layer answered (`operations::AnswerPath::label`).
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MerchantLabels {
    pub merchant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub merchant: String,
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// Every metric the server records.
pub struct Metrics {
    registry: Registry,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub plugin_failures: Family<ReasonLabels, Counter>,
    pub budget_overruns: Family<ReasonLabels, Counter>,
    pub operations: Family<OperationLabels, Counter>,
    /// Plugins' outbound HTTP requests, by merchant and outcome (`ok`,
    /// `denied`, `prohibited`, `timeout`, `too_large`…).
    pub outbound_requests: Family<ReasonLabels, Counter>,
    /// Callback log records dropped (queue full, a failed write).
    pub callback_log_dropped: Counter,
    /// Per merchant, the age of its oldest unresolved failure.
    oldest_failure: Family<MerchantLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub in_flight: Gauge,
    busy_sandboxes: Gauge,
    slot_reset: Family<ModeLabels, Gauge>,
    compilations: Gauge,
    artifact_hits: Gauge,
    cached_results: Gauge,
    per_merchant: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The `merchant` label of every merchant when series are not per merchant.
pub const ALL_MERCHANTS: &str = "*";

impl Metrics {
    /// Series per merchant.
    pub fn new() -> Metrics {
        Metrics::with_merchant_series(true)
    }

    /// `per_merchant`: whether series carry the merchant's id, or
    /// [`ALL_MERCHANTS`] for all of them.
    pub fn with_merchant_series(per_merchant: bool) -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let callbacks = Family::<CallbackLabels, Counter>::default();
        registry.register(
            "callbacks",
            "Callbacks answered, by merchant, generation, activity and result code",
            callbacks.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "callback_duration_seconds",
            "Time from request to answer",
            latency.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Callbacks refused with 000001, by reason",
            auth_failures.clone(),
        );
        let plugin_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Plugin calls that produced no answer (deadline, trap, memory, overload…)",
            plugin_failures.clone(),
        );
        let outbound_requests = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "outbound_requests",
            "Plugins' outbound HTTP requests, by merchant and outcome",
            outbound_requests.clone(),
        );
        let callback_log_dropped = Counter::default();
        registry.register(
            "callback_log_dropped",
            "Callback log records dropped (queue full or a failed write); answers are unaffected",
            callback_log_dropped.clone(),
        );
        let oldest_failure =
            Family::<MerchantLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "oldest_unresolved_failure_seconds",
            "Per merchant, the age of its oldest operation that failed transiently or was parked \
             and has not succeeded since (the marketplace gives up after about 3 hours)",
            oldest_failure.clone(),
        );
        let budget_overruns = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "budget_overruns",
            "Callbacks answered 000004 because the answer budget ran out",
            budget_overruns.clone(),
        );
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "operations",
            "Recorded operations by kind and how they were answered \
             (executed, coalesced, replayed_cache, replayed_store, in_progress, \
             fingerprint_mismatch, unknown_instance, retryable, store_failed)",
            operations.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let in_flight = gauge(
            &mut registry,
            "callbacks_in_flight",
            "Callbacks being handled",
        );
        let busy_sandboxes = gauge(&mut registry, "sandboxes_busy", "Plugin sandboxes in use");
        let compilations = gauge(
            &mut registry,
            "plugin_compilations",
            "Plugin components compiled by this process (cache misses)",
        );
        let artifact_hits = gauge(
            &mut registry,
            "plugin_artifact_hits",
            "Plugin components loaded from precompiled artifacts (cache hits)",
        );
        let slot_reset = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "sandbox_slot_reset",
            "How pool slots are reset between calls (1 for the mode in use): \
             dirty_pages (pagemap scan), clear_resident or on_demand",
            slot_reset.clone(),
        );
        let cached_results = gauge(
            &mut registry,
            "operation_results_cached",
            "Completed operation results held in memory for replay",
        );
        Metrics {
            per_merchant,
            registry,
            callbacks,
            latency,
            auth_failures,
            plugin_failures,
            budget_overruns,
            operations,
            outbound_requests,
            callback_log_dropped,
            oldest_failure,
            in_flight,
            busy_sandboxes,
            compilations,
            artifact_hits,
            cached_results,
            slot_reset,
        }
    }

    /// The text exposition, with the sampled values brought up to date.
    pub fn render(&self, runtime: RuntimeStats, cached_results: u64) -> String {
        self.busy_sandboxes.set(runtime.busy_sandboxes as i64);
        self.compilations.set(runtime.compilations as i64);
        self.artifact_hits.set(runtime.artifact_hits as i64);
        self.cached_results.set(cached_results as i64);
        let mode = runtime.slot_reset.label().to_string();
        self.slot_reset.get_or_create(&ModeLabels { mode }).set(1);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts a callback in flight until dropped, even if its handler is
/// cancelled (a client disconnect drops the handler future).
pub struct InFlightGuard(Gauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn in_flight_guard(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard(self.in_flight.clone())
    }
}

impl Metrics {
    /// The `merchant` label for `id` (see [`Metrics::with_merchant_series`]).
    pub fn merchant<'a>(&self, id: &'a str) -> &'a str {
        if self.per_merchant { id } else { ALL_MERCHANTS }
    }
}

impl Metrics {
    /// Sets the oldest unresolved failure of each merchant that has one
    /// (`oldest`: merchant id and when, in Unix ms); the others have none.
    pub fn set_oldest_failures(&self, oldest: &[(String, i64)], now_ms: i64) {
        self.oldest_failure.clear();
        for (merchant, since_ms) in oldest {
            let age = now_ms.saturating_sub(*since_ms).max(0) as f64 / 1000.0;
            let labels = MerchantLabels {
                merchant: self.merchant(merchant).to_string(),
            };
            let gauge = self.oldest_failure.get_or_create(&labels);
            if age > gauge.get() {
                gauge.set(age);
            }
        }
    }
}

impl gateway_egress::EgressObserver for Metrics {
    fn finished(&self, record: &gateway_egress::EgressRecord) {
        let merchant = self.merchant(&record.merchant);
        count(&self.outbound_requests, merchant, record.outcome);
    }
}

/// Counts one event under `merchant` and `reason`.
pub fn count(family: &Family<ReasonLabels, Counter>, merchant: &str, reason: &str) {
    family
        .get_or_create(&ReasonLabels {
            merchant: merchant.to_string(),
            reason: reason.to_string(),
        })
        .inc();
}
