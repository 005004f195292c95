//! Sending one vetted request: resolve the name (with a timeout), drop every
//! address the merchant may not reach, connect to the survivors only (no
//! second resolution, so no DNS-rebinding window), TLS verified against the
//! host *name*, HTTP/1.1 through hyper, bodies capped (`body`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::addresses::{AddressClass, classify};
use crate::body::{RequestBody, ResponseBody};
use crate::report::Reporter;
use crate::{Destination, EgressError, Exchange};

/// What the gateway sends as `User-Agent` when the plugin sets none.
const USER_AGENT: &str = concat!("koogallery-gateway/", env!("CARGO_PKG_VERSION"));

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The connection task of an exchange: it must be polled (the sandbox's
/// `wasi:http` spawns it) for the response body to flow.
pub type Connection = std::pin::Pin<Box<dyn Future<Output = Result<(), EgressError>> + Send>>;

pub(crate) async fn exchange<B>(
    exchange: Exchange,
    request: Request<B>,
    mut reporter: Reporter,
) -> Result<(Response<ResponseBody>, Connection), EgressError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let Exchange {
        policy,
        destination,
        timeouts,
        deadline,
    } = exchange;
    let limits = &policy.limits;
    if let Some(length) = content_length(request.headers())
        && length > limits.max_request_body_bytes
    {
        let error = EgressError::RequestBodyTooLarge(limits.max_request_body_bytes);
        reporter.fail(&error);
        return Err(error);
    }
    let sent = reporter.request_bytes();
    let head = async {
        let stream = open(&policy, &destination, timeouts.connect).await?;
        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream));
        let (mut sender, connection) = tokio::time::timeout(timeouts.connect, handshake)
            .await
            .map_err(|_| EgressError::ConnectTimeout(destination.to_string()))?
            .map_err(|e| EgressError::Connect {
                host: destination.host.clone(),
                reason: e.to_string(),
            })?;
        let request = as_sent(request, sent, policy.limits.max_request_body_bytes)?;
        let mut connection: Option<Connection> =
            Some(Box::pin(
                async move { connection.await.map_err(hyper_error) },
            ));
        let first_byte_ms = timeouts.first_byte.as_millis() as u64;
        let send = sender.send_request(request);
        tokio::pin!(send);
        let response = tokio::time::timeout(timeouts.first_byte, async {
            // Drive the connection while waiting for the response head; it
            // may end first (`connection: close` after a short answer).
            loop {
                let driving = async {
                    match connection.as_mut() {
                        Some(running) => running.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    response = &mut send => break response.map_err(hyper_error),
                    ended = driving => {
                        connection = None;
                        ended?;
                    }
                }
            }
        })
        .await
        .map_err(|_| EgressError::FirstByteTimeout(first_byte_ms))??;
        let connection = connection.unwrap_or_else(|| Box::pin(async { Ok(()) }));
        Ok::<_, EgressError>((response, connection))
    };
    let head = tokio::time::timeout_at(deadline.into(), head)
        .await
        .map_err(|_| EgressError::NoTimeLeft)
        .and_then(|head| head);
    let (response, connection) = match head {
        Ok(head) => head,
        Err(error) => {
            reporter.fail(&error);
            return Err(error);
        }
    };
    reporter.status(response.status().as_u16());
    if let Some(length) = content_length(response.headers())
        && length > limits.max_response_body_bytes
    {
        let error = EgressError::ResponseBodyTooLarge(limits.max_response_body_bytes);
        reporter.fail(&error);
        return Err(error);
    }
    let (max, between) = (limits.max_response_body_bytes, timeouts.between_bytes);
    let response =
        response.map(|incoming| ResponseBody::new(incoming, max, between, deadline, reporter));
    Ok((response, connection))
}

/// The request as it goes on the wire: origin-form target (scheme and
/// authority are the connection's), our `User-Agent` unless the plugin set
/// one, the body capped.
fn as_sent<B>(
    mut request: Request<B>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    max_body: u64,
) -> Result<Request<RequestBody<B>>, EgressError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| EgressError::InvalidUrl("the path is not valid".into()))?;
    *request.uri_mut() = target;
    if !request.headers().contains_key(http::header::USER_AGENT) {
        let agent = HeaderValue::from_static(USER_AGENT);
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, agent);
    }
    Ok(request.map(|body| RequestBody::new(body, sent, max_body)))
}

/// A connection to a vetted address of `destination`, TLS when https.
async fn open(
    policy: &crate::EgressPolicy,
    destination: &Destination,
    timeout: Duration,
) -> Result<Box<dyn Stream>, EgressError> {
    let addresses = vetted_addresses(policy, destination, timeout).await?;
    let stream = connect(destination, &addresses, timeout).await?;
    if destination.https {
        tls(&policy.client.tls, destination, stream, timeout).await
    } else {
        Ok(Box::new(stream))
    }
}

fn hyper_error(error: hyper::Error) -> EgressError {
    unwrap_hyper(&error).unwrap_or_else(|| EgressError::Protocol(error.to_string()))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Our own error, when hyper failed because a body of ours refused.
fn unwrap_hyper(error: &hyper::Error) -> Option<EgressError> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(ours) = cause.downcast_ref::<EgressError>() {
            return Some(ours.clone());
        }
        source = cause.source();
    }
    None
}

/// The addresses of `destination` this merchant may reach, resolved once.
async fn vetted_addresses(
    policy: &crate::EgressPolicy,
    destination: &Destination,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, EgressError> {
    let host = destination.host.as_str();
    let resolved: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, destination.port)],
        Err(_) => tokio::time::timeout(timeout, tokio::net::lookup_host((host, destination.port)))
            .await
            .map_err(|_| EgressError::DnsTimeout(host.to_string()))?
            .map_err(|e| EgressError::Dns {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if resolved.is_empty() {
        return Err(EgressError::Dns {
            host: host.to_string(),
            reason: "no addresses".into(),
        });
    }
    let allow_private = policy.allow_private_networks;
    let (reachable, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
        .into_iter()
        .partition(|address| classify(address.ip()).reachable(allow_private));
    if !reachable.is_empty() {
        return Ok(reachable);
    }
    let private = refused
        .iter()
        .any(|address| classify(address.ip()) == AddressClass::Private);
    let hint = if private && !allow_private {
        format!(
            "private networks are reachable only if the operator sets allow_private_networks = true for merchant {}",
            policy.merchant
        )
    } else {
        "link-local (cloud metadata), multicast and reserved ranges are never reachable".into()
    };
    let addresses = refused
        .iter()
        .map(|address| address.ip().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(EgressError::Prohibited {
        host: host.to_string(),
        addresses,
        hint,
    })
}

async fn connect(
    destination: &Destination,
    addresses: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, EgressError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addresses))
        .await
        .map_err(|_| EgressError::ConnectTimeout(destination.to_string()))?
        .map_err(|e| EgressError::Connect {
            host: destination.host.clone(),
            reason: e.to_string(),
        })?;
    // Small requests and answers: do not wait to fill segments.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn tls(
    config: &Arc<rustls::ClientConfig>,
    destination: &Destination,
    stream: TcpStream,
    timeout: Duration,
) -> Result<Box<dyn Stream>, EgressError> {
    let fail = |reason: String| EgressError::Tls {
        host: destination.host.clone(),
        reason,
    };
    let name = rustls::pki_types::ServerName::try_from(destination.host.clone())
        .map_err(|e| fail(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
        .await
        .map_err(|_| EgressError::ConnectTimeout(destination.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    Ok(Box::new(stream))
}

/// The TLS client configuration: webpki roots, ring, TLS 1.2 and 1.3.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
