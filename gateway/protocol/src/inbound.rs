//! The whole inbound path, "raw query + raw body → verify → parse":
//! [`detect_generation`], then [`read_callback`] (or [`verify`] alone).
//! The server calls them, the property tests and the fuzz targets hammer
//! them. Nothing in a body is parsed before its signature verified.

use serde_json::{Map, Value};

use crate::callback::{self, Callback, Generation, ParseContext};
use crate::fields::{FieldError, Fields};
use crate::signing::{self, AuthError};
use crate::{query, time};

/// The longest nonce remembered; longer ones are refused outright.
pub const MAX_NONCE_CHARS: usize = 128;

/// How requests are authenticated (the gateway builds it from its
/// configuration, where the defaults live).
#[derive(Clone, Copy, Debug)]
pub struct VerifyPolicy {
    /// V2: the most a `timestamp` may differ from the gateway's clock.
    pub window_ms: i64,
    /// V1: the same for `timeStamp` (always checked).
    pub v1_window_ms: i64,
    /// The longest raw query string read at all, in bytes.
    pub max_query_bytes: usize,
    /// The most query parameters read at all.
    pub max_query_params: usize,
}

/// A request whose signature verified.
#[derive(Debug)]
pub struct Verified {
    pub generation: Generation,
    /// Which of the merchant's access keys verified it.
    pub key_index: usize,
    /// When the marketplace signed it (its `timestamp` / `timeStamp`), in
    /// Unix milliseconds.
    pub signed_at_ms: i64,
    /// What the caller must remember against replays.
    pub replay: ReplayGuard,
    pub fields: Fields,
}

/// What guards a verified request against replay; the caller keeps it in
/// shared state for the generation's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayGuard {
    /// V2: the nonce, which must never be seen twice.
    Nonce(String),
    /// V1 (no nonce): the `authToken`, bound to a digest of the exact
    /// parameters it signed. The same token again with the same parameters
    /// is a resend of the same request; with other parameters it is forged.
    Token {
        token: String,
        params_digest: String,
    },
}

/// Why a request gets no further than the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 000001: not signed by the merchant's key (or not signed at all).
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// 000002: signed, but not an acceptable request.
    #[error("invalid request: {0}")]
    Invalid(#[from] FieldError),
}

/// The generation a request's shape says it is: `authToken` in the query
/// means V1, `signature` means V2, and otherwise the method decides (GET is
/// V1, anything else V2), so that a missing parameter is reported by name.
pub fn detect_generation(is_get: bool, raw_query: &str) -> Generation {
    let names: Vec<&str> = query::split(raw_query)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if names.contains(&"authToken") {
        Generation::V1
    } else if names.contains(&"signature") || !is_get {
        Generation::V2
    } else {
        Generation::V1
    }
}

/// Authenticates a request: V2 over the raw body bytes, V1 over the decoded
/// query. Nothing in `body` is parsed before its signature verified, and the
/// query costs linear time whatever it holds: its length and parameter
/// count are bounded before anything is decoded.
pub fn verify<K: AsRef<str>>(
    generation: Generation,
    raw_query: &str,
    body: &[u8],
    access_keys: &[K],
    now_ms: i64,
    policy: &VerifyPolicy,
) -> Result<Verified, Rejection> {
    check_query_size(raw_query, policy)?;
    match generation {
        Generation::V2 => verify_v2(raw_query, body, access_keys, now_ms, policy),
        Generation::V1 => verify_v1(raw_query, access_keys, now_ms, policy),
    }
}

fn verify_v2<K: AsRef<str>>(
    raw_query: &str,
    body: &[u8],
    access_keys: &[K],
    now_ms: i64,
    policy: &VerifyPolicy,
) -> Result<Verified, Rejection> {
    let params = query::decode(raw_query, query::Decoding::Percent).map_err(auth_query_error)?;
    let param = |name: &'static str| {
        query::get(&params, name)
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::Missing(name))
    };
    let (signature, timestamp, nonce) = (param("signature")?, param("timestamp")?, param("nonce")?);
    if nonce.chars().count() > MAX_NONCE_CHARS {
        return Err(AuthError::BadEncoding("accompanied by a nonce of sane length").into());
    }
    let signed_at_ms = signing::check_timestamp(timestamp, now_ms, policy.window_ms)?;
    let key_index = signing::verify_v2(access_keys, nonce, timestamp, body, signature)?;
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(FieldError::NotJson("a JSON value but not an object".into()).into()),
        Err(e) => return Err(FieldError::NotJson(e.to_string()).into()),
    };
    Ok(Verified {
        generation: Generation::V2,
        key_index,
        signed_at_ms,
        replay: ReplayGuard::Nonce(nonce.to_string()),
        fields: Fields::new(map),
    })
}

/// Refuses a query too long, or with too many parameters, to be worth
/// reading: before authentication, nothing may cost more than linear time.
fn check_query_size(raw_query: &str, policy: &VerifyPolicy) -> Result<(), Rejection> {
    if raw_query.len() > policy.max_query_bytes {
        return Err(FieldError::QueryTooLarge(format!(
            "the query string is longer than {} bytes",
            policy.max_query_bytes
        ))
        .into());
    }
    let params = raw_query.split('&').filter(|s| !s.is_empty()).count();
    if params > policy.max_query_params {
        return Err(FieldError::QueryTooLarge(format!(
            "the query string has more than {} parameters",
            policy.max_query_params
        ))
        .into());
    }
    Ok(())
}

fn auth_query_error(error: query::QueryError) -> AuthError {
    match error {
        query::QueryError::Duplicate(name) => AuthError::Duplicate(name),
        query::QueryError::NotUtf8(_) => {
            AuthError::BadEncoding("readable (invalid UTF-8 in the query)")
        }
    }
}

fn verify_v1<K: AsRef<str>>(
    raw_query: &str,
    access_keys: &[K],
    now_ms: i64,
    policy: &VerifyPolicy,
) -> Result<Verified, Rejection> {
    let mut last_error = AuthError::Mismatch;
    let mut tried: Vec<Vec<query::Param>> = Vec::new();
    for decoding in query::Decoding::ALL {
        let params = match query::decode(raw_query, decoding) {
            Ok(params) => params,
            Err(error) => {
                last_error = auth_query_error(error);
                continue;
            }
        };
        if tried.contains(&params) {
            continue;
        }
        let token = query::get(&params, "authToken").ok_or(AuthError::Missing("authToken"))?;
        let time_stamp = query::get(&params, "timeStamp")
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::Missing("timeStamp"))?;
        // The signing key is accessKey + timeStamp: only a well-formed,
        // current timeStamp is worth an HMAC.
        let signed_at_ms =
            time::parse_compact_millis(time_stamp).ok_or(AuthError::BadTimestamp("timeStamp"))?;
        signing::check_skew(signed_at_ms, now_ms, policy.v1_window_ms)?;
        let canonical =
            signing::v1_canonical(params.iter().map(|p| (p.name.as_str(), p.value.as_str())));
        match signing::verify_v1(access_keys, time_stamp, &canonical, token) {
            Ok(key_index) => {
                refuse_ambiguous(&params)?;
                let replay = ReplayGuard::Token {
                    token: token.to_string(),
                    params_digest: signing::digest_hex(canonical.as_bytes()),
                };
                let map: Map<String, Value> = params
                    .into_iter()
                    .filter(|p| p.name != "authToken" && p.name != "timeStamp")
                    .map(|p| (p.name, Value::String(p.value)))
                    .collect();
                return Ok(Verified {
                    generation: Generation::V1,
                    key_index,
                    signed_at_ms,
                    replay,
                    fields: Fields::new(map),
                });
            }
            Err(error) => last_error = error,
        }
        tried.push(params);
    }
    Err(last_error.into())
}

/// The V1 canonical string joins `name=value` pairs with `&` unescaped, so a
/// value holding `&other=…` signs the same string as two parameters would:
/// one token would verify several requests. Such names and values are
/// refused; an `&` that starts no `name=` (`Smith & Co`) is harmless.
fn refuse_ambiguous(params: &[query::Param]) -> Result<(), AuthError> {
    for param in params {
        let name_ambiguous = param.name.contains(['&', '=']);
        let value_ambiguous = param
            .value
            .split('&')
            .skip(1)
            .any(|rest| rest.contains('='));
        if name_ambiguous || value_ambiguous {
            return Err(AuthError::Ambiguous(param.name.chars().take(64).collect()));
        }
    }
    Ok(())
}

/// The whole inbound path for one merchant once its generation is known
/// ([`detect_generation`]): verify, then parse. The caller still has to
/// check [`Verified::replay`] (it needs shared state).
pub fn read_callback<K: AsRef<str>>(
    generation: Generation,
    raw_query: &str,
    body: &[u8],
    access_keys: &[K],
    now_ms: i64,
    policy: &VerifyPolicy,
    ctx: &ParseContext<'_>,
) -> Result<(Verified, Callback), Rejection> {
    let mut verified = verify(generation, raw_query, body, access_keys, now_ms, policy)?;
    let fields = std::mem::replace(&mut verified.fields, Fields::new(Map::new()));
    let key = access_keys
        .get(verified.key_index)
        .map(AsRef::as_ref)
        .unwrap_or_default();
    let ctx = ParseContext {
        access_key: key,
        ..*ctx
    };
    let callback = callback::parse(generation, fields, &ctx)?;
    Ok((verified, callback))
}
