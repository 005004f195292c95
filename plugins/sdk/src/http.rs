//! Outbound HTTP for plugins: a small blocking client over the standard
//! `wasi:http/outgoing-handler`.
//!
//! The operator grants it per merchant (`allowed_outbound_hosts`); the
//! gateway checks every request against the grant, refuses private and
//! link-local addresses unless granted, clamps every timeout to the call's
//! deadline and caps bodies. A refusal arrives here as an [`HttpError`]
//! naming the `wasi:http` error code, never as a trap.
//!
//! The whole response body is read into memory (the gateway caps it, 1 MiB
//! by default); timeouts apply to connecting, to the response head and
//! between body bytes.
//!
//! ```ignore
//! use koogallery_plugin_sdk::http::Request;
//!
//! let token = config::require("backend_token")?;   // a secret
//! let created: Tenant = Request::post(&format!("{base}/tenants"))
//!     .bearer(&token)
//!     .idempotency_key(&req.call.idempotency_key)
//!     .json(&NewTenant { id: &req.instance_id })?
//!     .timeout_ms(1500)
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::PluginError;

/// Bytes written to the request body at once (the host's per-write limit
/// is larger; this keeps the guest's buffer small).
const WRITE_CHUNK: usize = 4096;
/// Bytes read from the response body at once.
const READ_CHUNK: u64 = 16 * 1024;

/// Why a request produced no (complete) response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL could not be used (no scheme, host…).
    InvalidUrl(String),
    /// The gateway refused or the exchange failed; the text is the
    /// `wasi:http` error code (for example `HttpRequestDenied`,
    /// `DestinationIpProhibited`, `ConnectionTimeout`).
    Transport(String),
    /// The response's status was not a success (from
    /// [`Response::error_for_status`]).
    Status { status: u16, body: String },
    /// A JSON body could not be written or read.
    Json(String),
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HttpError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpError::Transport(code) => write!(f, "outbound request failed: {code}"),
            HttpError::Status { status, body } => {
                let body: String = body.chars().take(200).collect();
                write!(f, "the backend answered {status}: {body}")
            }
            HttpError::Json(why) => write!(f, "JSON: {why}"),
        }
    }
}

/// A failed request is an internal error (000005: the marketplace
/// retries), unless the backend said the request itself was wrong (4xx but
/// 408/429: invalid request, 000002).
impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> PluginError {
        match &error {
            HttpError::Status { status, .. }
                if (400..500).contains(status) && *status != 408 && *status != 429 =>
            {
                crate::error::invalid_request(error.to_string())
            }
            _ => crate::error::internal(error.to_string()),
        }
    }
}

/// An outbound request, built then [`send`](Request::send)-ed.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout_ms: Option<u64>,
}

impl Request {
    pub fn new(method: Method, url: &str) -> Request {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }
    pub fn get(url: &str) -> Request {
        Request::new(Method::Get, url)
    }
    pub fn post(url: &str) -> Request {
        Request::new(Method::Post, url)
    }
    pub fn put(url: &str) -> Request {
        Request::new(Method::Put, url)
    }
    pub fn delete(url: &str) -> Request {
        Request::new(Method::Delete, url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// `Idempotency-Key: <key>`: pass `req.call.idempotency_key`, so that a
    /// retry never provisions twice.
    pub fn idempotency_key(self, key: &str) -> Request {
        self.header("idempotency-key", key)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// A JSON body (and its content type).
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Request, HttpError> {
        let body = serde_json::to_vec(value).map_err(|e| HttpError::Json(e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// The longest wait for connecting, for the response head and between
    /// body bytes, each. The gateway shortens it to what is left of the
    /// call's deadline.
    pub fn timeout_ms(mut self, ms: u64) -> Request {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let (scheme, authority, path) = split_url(&self.url)?;
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers
                .append(name, value)
                .map_err(|e| HttpError::InvalidUrl(format!("header {name}: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| HttpError::InvalidUrl(what.to_string());
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let body = request.body().map_err(|()| invalid("body"))?;
        let options = self.timeout_ms.map(|ms| {
            let options = RequestOptions::new();
            let nanos = Some(ms.saturating_mul(1_000_000));
            // Unsupported timeouts are the host's to ignore.
            let _ = options.set_connect_timeout(nanos);
            let _ = options.set_first_byte_timeout(nanos);
            let _ = options.set_between_bytes_timeout(nanos);
            options
        });
        let pending = outgoing_handler::handle(request, options).map_err(transport)?;
        write_body(&body, &self.body)?;
        OutgoingBody::finish(body, None).map_err(transport)?;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(transport(code)),
            Some(Err(())) | None => return Err(HttpError::Transport("no response".into())),
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Transport("the body was taken".into()))?;
        let body = read_body(incoming)?;
        Ok(Response {
            status,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
                .collect(),
            body,
        })
    }
}

/// The error code's name, as `wasi:http` spells it in Rust
/// (`HttpRequestDenied`, `DestinationIpProhibited`…).
fn transport(code: ErrorCode) -> HttpError {
    let name = format!("{code:?}");
    HttpError::Transport(name.trim_start_matches("ErrorCode::").to_string())
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| HttpError::Transport("the request body was taken".into()))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(stream_error)?;
    }
    Ok(())
}

fn read_body(incoming: IncomingBody) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| HttpError::Transport("the body stream was taken".into()))?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(error) => return Err(stream_error(error)),
            }
        }
    }
    let trailers = IncomingBody::finish(incoming);
    trailers.subscribe().block();
    if let Some(Ok(Err(code))) = trailers.get() {
        return Err(transport(code));
    }
    Ok(body)
}

/// A stream failure, with the `wasi:http` error code when the host gave one.
fn stream_error(error: StreamError) -> HttpError {
    match error {
        StreamError::LastOperationFailed(error) => {
            match wasip2::http::types::http_error_code(&error) {
                Some(code) => transport(code),
                None => HttpError::Transport(error.to_debug_string()),
            }
        }
        StreamError::Closed => HttpError::Transport("the connection closed".into()),
    }
}

/// `scheme://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::InvalidUrl(format!("{url}: no scheme")))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(HttpError::InvalidUrl(format!("scheme {other}"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!("{url}: no host")));
    }
    Ok((
        scheme,
        authority,
        if path.starts_with('?') { "/" } else { path },
    ))
}

/// A whole response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Itself if the status is 2xx, else [`HttpError::Status`].
    pub fn error_for_status(self) -> Result<Response, HttpError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(HttpError::Status {
                status: self.status,
                body: self.text(),
            })
        }
    }

    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Json(e.to_string()))
    }
}
