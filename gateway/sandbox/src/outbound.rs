//! `wasi:http`'s request hook for plugins: every outbound request goes
//! through the merchant's [`EgressPolicy`] (`gateway-egress`), or is denied
//! when the merchant has no grant. wasmtime-wasi-http is built without its
//! default sender, so this is the only way a request can leave.
//!
//! A refusal is a `wasi:http` error code the plugin sees (for example
//! `HTTP-request-denied`, `destination-IP-prohibited`), never a trap: the
//! plugin decides what to answer, and the gateway logs why.

use std::sync::Arc;
use std::time::Instant;

use gateway_egress::{EgressCall, EgressError, EgressPolicy, GuestTimeouts};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

type Io = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), HttpError>> + Send>;

/// The outbound requests of one call: its merchant's grant, if any.
pub(crate) struct OutboundHooks {
    merchant: Arc<str>,
    call: Option<EgressCall>,
}

impl OutboundHooks {
    pub(crate) fn new(
        merchant: Arc<str>,
        policy: Option<&Arc<EgressPolicy>>,
        deadline: Instant,
    ) -> Self {
        OutboundHooks {
            merchant,
            call: policy.map(|policy| policy.start_call(deadline)),
        }
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Io,
    ) -> Sent {
        let Some(call) = &mut self.call else {
            tracing::warn!(
                target: "egress",
                merchant = %self.merchant,
                "outbound request denied: the merchant has no allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let guest = options.map_or_else(GuestTimeouts::default, |o| GuestTimeouts {
            connect: o.connect_timeout,
            first_byte: o.first_byte_timeout,
            between_bytes: o.between_bytes_timeout,
        });
        let prepared = call.prepare(request.method().as_str(), request.uri(), guest);
        Box::new(async move {
            let (exchange, report) = prepared.map_err(|e| to_http_error(&e))?;
            let (response, connection) = exchange
                .send(request, report)
                .await
                .map_err(|e| to_http_error(&e))?;
            let response = response.map(|body| body.map_err(|e| to_http_error(&e)).boxed_unsync());
            let io: Io = Box::new(async move { connection.await.map_err(|e| to_http_error(&e)) });
            Ok((response, io))
        })
    }
}

/// The `wasi:http` error code of the same meaning.
fn to_http_error(error: &EgressError) -> HttpError {
    match error {
        EgressError::Denied { .. } => HttpError::HttpRequestDenied,
        EgressError::InvalidUrl(_) => HttpError::HttpRequestUriInvalid,
        EgressError::TooManyRequests(_) => HttpError::ConnectionLimitReached,
        EgressError::NoTimeLeft | EgressError::FirstByteTimeout(_) => {
            HttpError::HttpResponseTimeout
        }
        EgressError::DnsTimeout(_) => HttpError::DnsTimeout,
        EgressError::Dns { reason, .. } => HttpError::DnsError {
            rcode: Some(reason.clone()),
            info_code: None,
        },
        EgressError::Prohibited { .. } => HttpError::DestinationIpProhibited,
        EgressError::ConnectTimeout(_) => HttpError::ConnectionTimeout,
        EgressError::Connect { .. } => HttpError::ConnectionRefused,
        EgressError::Tls { .. } => HttpError::TlsProtocolError,
        EgressError::BetweenBytesTimeout(_) => HttpError::ConnectionReadTimeout,
        EgressError::RequestBodyTooLarge(max) => HttpError::HttpRequestBodySize(Some(*max)),
        EgressError::ResponseBodyTooLarge(max) => HttpError::HttpResponseBodySize(Some(*max)),
        EgressError::Protocol(_) | EgressError::RequestBody(_) => HttpError::HttpProtocolError,
    }
}
