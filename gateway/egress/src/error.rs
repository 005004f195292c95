//! Every way an outbound request can fail, as the plugin and the log see
//! it. The sandbox maps each case to the `wasi:http` error code of the same
//! meaning, so a plugin in any language can tell a denial from a timeout.

/// Why an outbound request did not produce (all of) a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The merchant's grant does not cover this destination; `hint` names
    /// the entry that would.
    #[error("{url} is not in the merchant's allowed_outbound_hosts; {hint}")]
    Denied { url: String, hint: String },
    /// The request's URL cannot be checked (no host, user info, a scheme
    /// other than http/https).
    #[error("outbound request refused: {0}")]
    InvalidUrl(String),
    /// The call has made as many requests as it may.
    #[error("this call already made its {0} outbound requests")]
    TooManyRequests(u32),
    /// Nothing of the call's deadline is left for another request.
    #[error("the call's deadline leaves no time for an outbound request")]
    NoTimeLeft,
    #[error("DNS lookup of {0} timed out")]
    DnsTimeout(String),
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
    /// Every address the name resolved to is in a refused range.
    #[error("{host} resolves only to refused addresses ({addresses}); {hint}")]
    Prohibited {
        host: String,
        addresses: String,
        hint: String,
    },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("connecting to {host} failed: {reason}")]
    Connect { host: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    /// No response head within the first-byte timeout.
    #[error("no response within {0} ms")]
    FirstByteTimeout(u64),
    /// The response body stalled for longer than the between-bytes timeout.
    #[error("the response body stalled for {0} ms")]
    BetweenBytesTimeout(u64),
    #[error("the request body exceeds {0} bytes")]
    RequestBodyTooLarge(u64),
    #[error("the response body exceeds {0} bytes")]
    ResponseBodyTooLarge(u64),
    /// The peer broke HTTP/1.1, or the connection ended early.
    #[error("HTTP exchange failed: {0}")]
    Protocol(String),
    /// The request's own body could not be read from the plugin.
    #[error("reading the request body failed: {0}")]
    RequestBody(String),
}

impl EgressError {
    /// The outcome label of this error in the log and in `/metrics`.
    pub fn outcome(&self) -> &'static str {
        match self {
            EgressError::Denied { .. } | EgressError::InvalidUrl(_) => "denied",
            EgressError::Prohibited { .. } => "prohibited",
            EgressError::TooManyRequests(_) => "too_many_requests",
            EgressError::NoTimeLeft
            | EgressError::DnsTimeout(_)
            | EgressError::ConnectTimeout(_)
            | EgressError::FirstByteTimeout(_)
            | EgressError::BetweenBytesTimeout(_) => "timeout",
            EgressError::Dns { .. } => "dns_error",
            EgressError::Connect { .. } => "connect_error",
            EgressError::Tls { .. } => "tls_error",
            EgressError::RequestBodyTooLarge(_) | EgressError::ResponseBodyTooLarge(_) => {
                "too_large"
            }
            EgressError::Protocol(_) | EgressError::RequestBody(_) => "protocol_error",
        }
    }
}
