//! One log line and one observation per outbound request: where it went
//! (scheme, host, port — never the path, headers or bodies, which may carry
//! customer data or credentials), its status, bytes, time and outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What is known about one finished outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRecord {
    pub merchant: Arc<str>,
    /// `scheme://host[:port]`.
    pub destination: String,
    pub method: String,
    /// The response status, when a response head arrived.
    pub status: Option<u16>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub elapsed: Duration,
    /// `ok`, or an [`EgressError::outcome`](crate::EgressError::outcome) label.
    pub outcome: &'static str,
}

/// Receives every [`EgressRecord`] (the gateway counts them in `/metrics`).
pub trait EgressObserver: Send + Sync {
    fn finished(&self, record: &EgressRecord);
}

/// Emits a request's record exactly once: when its response body ends,
/// fails or is dropped, or when the request fails before a response.
pub(crate) struct Reporter {
    record: Option<EgressRecord>,
    started: Instant,
    request_bytes: Arc<AtomicU64>,
    observer: Option<Arc<dyn EgressObserver>>,
}

impl Reporter {
    pub(crate) fn new(
        merchant: Arc<str>,
        destination: String,
        method: String,
        observer: Option<Arc<dyn EgressObserver>>,
    ) -> Reporter {
        Reporter {
            record: Some(EgressRecord {
                merchant,
                destination,
                method,
                status: None,
                request_bytes: 0,
                response_bytes: 0,
                elapsed: Duration::ZERO,
                outcome: "ok",
            }),
            started: Instant::now(),
            request_bytes: Arc::new(AtomicU64::new(0)),
            observer,
        }
    }

    /// The counter the request body adds its bytes to.
    pub(crate) fn request_bytes(&self) -> Arc<AtomicU64> {
        self.request_bytes.clone()
    }

    pub(crate) fn status(&mut self, status: u16) {
        if let Some(record) = &mut self.record {
            record.status = Some(status);
        }
    }

    pub(crate) fn add_response_bytes(&mut self, bytes: u64) {
        if let Some(record) = &mut self.record {
            record.response_bytes += bytes;
        }
    }

    /// Ends the record with `error`, logging why.
    pub(crate) fn fail(&mut self, error: &crate::EgressError) {
        if let Some(record) = &mut self.record {
            record.outcome = error.outcome();
            tracing::warn!(
                target: "egress",
                merchant = %record.merchant,
                destination = %record.destination,
                outcome = record.outcome,
                "outbound request failed: {error}"
            );
        }
        self.emit();
    }

    pub(crate) fn emit(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.elapsed = self.started.elapsed();
        record.request_bytes = self.request_bytes.load(Ordering::Relaxed);
        tracing::info!(
            target: "egress",
            merchant = %record.merchant,
            destination = %record.destination,
            method = %record.method,
            status = record.status,
            request_bytes = record.request_bytes,
            response_bytes = record.response_bytes,
            elapsed_ms = record.elapsed.as_millis() as u64,
            outcome = record.outcome,
            "outbound request"
        );
        if let Some(observer) = &self.observer {
            observer.finished(&record);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.emit();
    }
}
