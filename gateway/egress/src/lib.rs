//! Plugins' outbound HTTP, as a capability the operator grants per merchant.
//!
//! The sandbox implements `wasi:http`'s request hook with this crate (the
//! upstream default sender is compiled out, so no request can leave without
//! passing here). For each request of a call:
//!
//! 1. [`EgressCall::prepare`] (synchronous, in the call): the URL's scheme,
//!    host and port against the merchant's [`AllowList`] — a denial names the
//!    entry to add —, the per-call request count, and every timeout clamped
//!    to the operator's maximum and to what is left of the call's deadline
//!    (less a reserve for the plugin to answer).
//! 2. [`Exchange::send`] (asynchronous): DNS by the host, every resolved
//!    address classified (`addresses`) and the refused ones dropped, a
//!    connection to a vetted address only, TLS verified against the name,
//!    HTTP/1.1, no redirects followed, bodies capped (`body`).
//! 3. One record per request (`report`): logged under target `egress` and
//!    handed to an [`EgressObserver`] for `/metrics`; never headers, paths or
//!    bodies.
//!
//! This crate knows nothing of wasmtime: it speaks `http` types, and the
//! sandbox maps [`EgressError`] to `wasi:http` error codes.

mod addresses;
mod allow_list;
mod body;
mod error;
mod report;
mod send;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;

pub use addresses::{AddressClass, classify};
pub use allow_list::{AllowList, AllowListError, AllowedHost, Destination};
pub use body::{RequestBody, ResponseBody};
pub use error::EgressError;
pub use report::{EgressObserver, EgressRecord};
pub use send::Connection;

/// The operator's limits on every merchant's outbound requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressLimits {
    /// Longest DNS lookup, connect and TLS handshake (each).
    pub connect_timeout: Duration,
    /// Longest wait for a response head after the request is sent.
    pub first_byte_timeout: Duration,
    /// Longest pause while a response body streams in.
    pub between_bytes_timeout: Duration,
    pub max_request_body_bytes: u64,
    pub max_response_body_bytes: u64,
    /// Requests one plugin call may make.
    pub max_requests_per_call: u32,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(4),
            between_bytes_timeout: Duration::from_secs(2),
            max_request_body_bytes: 64 << 10,
            max_response_body_bytes: 1 << 20,
            max_requests_per_call: 8,
        }
    }
}

/// What a plugin asked for in `wasi:http`'s request options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestTimeouts {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub between_bytes: Option<Duration>,
}

/// The timeouts a request runs with, after clamping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

/// What the process shares among all merchants' outbound requests.
pub struct EgressClient {
    tls: Arc<rustls::ClientConfig>,
    observer: Option<Arc<dyn EgressObserver>>,
}

impl EgressClient {
    pub fn new(observer: Option<Arc<dyn EgressObserver>>) -> Result<Arc<Self>, EgressSetupError> {
        let tls = send::tls_config().map_err(|e| EgressSetupError(e.to_string()))?;
        Ok(Arc::new(EgressClient { tls, observer }))
    }
}

/// The TLS client could not be configured.
#[derive(Debug, thiserror::Error)]
#[error("setting up outbound TLS: {0}")]
pub struct EgressSetupError(String);

/// One merchant's outbound grant, as the operator configured it.
pub struct EgressPolicy {
    merchant: Arc<str>,
    allowed: AllowList,
    allow_private_networks: bool,
    limits: EgressLimits,
    client: Arc<EgressClient>,
}

impl std::fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressPolicy")
            .field("merchant", &self.merchant)
            .field("allowed", &self.allowed)
            .field("allow_private_networks", &self.allow_private_networks)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EgressPolicy {
    pub fn new(
        merchant: Arc<str>,
        allowed: AllowList,
        allow_private_networks: bool,
        limits: EgressLimits,
        client: Arc<EgressClient>,
    ) -> Arc<Self> {
        Arc::new(EgressPolicy {
            merchant,
            allowed,
            allow_private_networks,
            limits,
            client,
        })
    }

    /// The outbound requests of one plugin call that ends at `deadline`.
    pub fn start_call(self: &Arc<Self>, deadline: Instant) -> EgressCall {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Leave the plugin time to report a failed request before its own
        // deadline cuts it off.
        let reserve = (remaining / 10).min(Duration::from_millis(100));
        EgressCall {
            policy: self.clone(),
            usable_until: deadline.checked_sub(reserve).unwrap_or(deadline),
            requests: 0,
        }
    }
}

/// The outbound requests of one plugin call.
pub struct EgressCall {
    policy: Arc<EgressPolicy>,
    usable_until: Instant,
    requests: u32,
}

/// A request that passed the synchronous checks, ready to be sent.
pub struct Exchange {
    policy: Arc<EgressPolicy>,
    destination: Destination,
    timeouts: Timeouts,
    deadline: Instant,
}

impl EgressCall {
    /// The synchronous checks of a request to `uri` (see the crate docs).
    /// A refusal is logged and observed here.
    pub fn prepare(
        &mut self,
        method: &str,
        uri: &Uri,
        guest: GuestTimeouts,
    ) -> Result<(Exchange, PreparedReport), EgressError> {
        let policy = &self.policy;
        let destination = destination(uri);
        let shown = match &destination {
            Ok(to) => to.to_string(),
            Err(_) => "(invalid)".to_string(),
        };
        let mut reporter = report::Reporter::new(
            policy.merchant.clone(),
            shown,
            method.to_string(),
            policy.client.observer.clone(),
        );
        match self.checks(destination, guest) {
            Ok(exchange) => Ok((exchange, PreparedReport(reporter))),
            Err(error) => {
                reporter.fail(&error);
                Err(error)
            }
        }
    }

    fn checks(
        &mut self,
        destination: Result<Destination, EgressError>,
        guest: GuestTimeouts,
    ) -> Result<Exchange, EgressError> {
        let policy = &self.policy;
        let destination = destination?;
        if !policy.allowed.admits(&destination) {
            return Err(EgressError::Denied {
                url: destination.to_string(),
                hint: format!(
                    "add \"{}\" to allowed_outbound_hosts of merchant {}",
                    destination.as_entry(),
                    policy.merchant
                ),
            });
        }
        if self.requests >= policy.limits.max_requests_per_call {
            return Err(EgressError::TooManyRequests(
                policy.limits.max_requests_per_call,
            ));
        }
        self.requests += 1;
        let left = self.usable_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(EgressError::NoTimeLeft);
        }
        let limits = &policy.limits;
        let clamp =
            |asked: Option<Duration>, max: Duration| asked.unwrap_or(max).min(max).min(left);
        Ok(Exchange {
            policy: policy.clone(),
            destination,
            timeouts: Timeouts {
                connect: clamp(guest.connect, limits.connect_timeout),
                first_byte: clamp(guest.first_byte, limits.first_byte_timeout),
                between_bytes: clamp(guest.between_bytes, limits.between_bytes_timeout),
            },
            deadline: self.usable_until,
        })
    }
}

/// The record of a prepared request, finished by [`Exchange::send`].
pub struct PreparedReport(report::Reporter);

impl Exchange {
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Sends the request; the response body streams while the returned
    /// [`Connection`] is polled.
    pub async fn send<B>(
        self,
        request: Request<B>,
        report: PreparedReport,
    ) -> Result<(Response<ResponseBody>, Connection), EgressError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        send::exchange(self, request, report.0).await
    }
}

/// Where a request goes, from its URL.
fn destination(uri: &Uri) -> Result<Destination, EgressError> {
    let invalid = |why: &str| EgressError::InvalidUrl(why.to_string());
    let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("only http and https are supported")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("the URL has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user info in the URL is not allowed"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("the URL has no host"));
    }
    Ok(Destination {
        https,
        host: host.to_ascii_lowercase(),
        port: authority
            .port_u16()
            .unwrap_or(Destination::default_port(https)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str], limits: EgressLimits) -> Arc<EgressPolicy> {
        let client = EgressClient::new(None).expect("TLS set-up");
        let allowed = AllowList::parse(entries).expect("allow-list");
        EgressPolicy::new("m1".into(), allowed, false, limits, client)
    }

    fn uri(text: &str) -> Uri {
        text.parse().expect("a URI")
    }

    #[test]
    fn a_denial_names_the_entry_to_add() {
        let policy = policy(&["https://api.example.com"], EgressLimits::default());
        let mut call = policy.start_call(Instant::now() + Duration::from_secs(2));
        let denied = call
            .prepare(
                "GET",
                &uri("http://other.example.com:8080/x?secret=1"),
                GuestTimeouts::default(),
            )
            .err();
        let Some(EgressError::Denied { url, hint }) = denied else {
            panic!("expected a denial, got {denied:?}");
        };
        assert_eq!(
            url, "http://other.example.com:8080",
            "no path or query in messages"
        );
        assert!(hint.contains("\"http://other.example.com:8080\""), "{hint}");
        assert!(hint.contains("merchant m1"), "{hint}");
        for bad in ["https://user@api.example.com/", "ftp://api.example.com/"] {
            let refused = call
                .prepare("GET", &uri(bad), GuestTimeouts::default())
                .err();
            assert!(
                matches!(refused, Some(EgressError::InvalidUrl(_))),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn timeouts_are_clamped_to_the_operator_and_the_deadline() {
        let limits = EgressLimits {
            connect_timeout: Duration::from_millis(500),
            ..EgressLimits::default()
        };
        let policy = policy(&["https://api.example.com"], limits);
        let mut call = policy.start_call(Instant::now() + Duration::from_secs(1));
        let asked = GuestTimeouts {
            connect: Some(Duration::from_secs(60)),
            first_byte: Some(Duration::from_millis(50)),
            between_bytes: None,
        };
        let (exchange, _report) = call
            .prepare("GET", &uri("https://api.example.com/"), asked)
            .expect("allowed");
        let t = exchange.timeouts();
        assert_eq!(t.connect, Duration::from_millis(500), "operator's maximum");
        assert_eq!(
            t.first_byte,
            Duration::from_millis(50),
            "a shorter wish is kept"
        );
        assert!(
            t.between_bytes <= Duration::from_millis(900),
            "the deadline, less a reserve: {t:?}"
        );
    }

    #[test]
    fn a_call_makes_at_most_its_share_of_requests() {
        let limits = EgressLimits {
            max_requests_per_call: 2,
            ..EgressLimits::default()
        };
        let policy = policy(&["https://api.example.com"], limits);
        let mut call = policy.start_call(Instant::now() + Duration::from_secs(2));
        let target = uri("https://api.example.com/");
        assert!(
            call.prepare("GET", &target, GuestTimeouts::default())
                .is_ok()
        );
        assert!(
            call.prepare("GET", &target, GuestTimeouts::default())
                .is_ok()
        );
        let third = call.prepare("GET", &target, GuestTimeouts::default()).err();
        assert_eq!(third, Some(EgressError::TooManyRequests(2)));
    }

    #[test]
    fn a_spent_deadline_leaves_no_request() {
        let policy = policy(&["https://api.example.com"], EgressLimits::default());
        let mut call = policy.start_call(Instant::now());
        let refused = call
            .prepare(
                "GET",
                &uri("https://api.example.com/"),
                GuestTimeouts::default(),
            )
            .err();
        assert_eq!(refused, Some(EgressError::NoTimeLeft));
    }
}
