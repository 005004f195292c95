//! The marketplace's side of the protocol: signing callbacks the way
//! KooGallery does. Used by `gateway simulate`, the tests and the
//! benchmarks, so that all of them sign with exactly one implementation —
//! the inverse of what the gateway verifies.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::{signing, time};

/// Characters left as they are in query values (RFC 3986 unreserved); the
/// marketplace encodes everything else.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `len` random upper-case alphanumerics (order ids, nonces).
pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(|b| char::from(b).to_ascii_uppercase())
        .collect()
}

/// A fresh nonce like the marketplace's (32 upper-case alphanumerics).
pub fn random_nonce() -> String {
    random_token(32)
}

/// The V2 query string (`signature`, `timestamp`, `nonce`) for `body`.
pub fn v2_query(access_key: &str, body: &[u8], timestamp_ms: i64, nonce: &str) -> String {
    let timestamp = timestamp_ms.to_string();
    let signature = signing::v2_signature(access_key, nonce, &timestamp, body);
    format!("signature={signature}&timestamp={timestamp}&nonce={nonce}")
}

/// The V1 `timeStamp` (`yyyyMMddHHmmssSSS`, UTC) for a Unix time in ms.
pub fn v1_time_stamp(unix_ms: i64) -> String {
    format!(
        "{}{:03}",
        time::format_compact(unix_ms.div_euclid(1000)),
        unix_ms.rem_euclid(1000)
    )
}

/// The complete V1 query string: `params` plus `timeStamp` and `authToken`,
/// every name and value percent-encoded.
pub fn v1_query(access_key: &str, params: &[(String, String)], timestamp_ms: i64) -> String {
    let time_stamp = v1_time_stamp(timestamp_ms);
    let mut all: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.push(("timeStamp", &time_stamp));
    let canonical = signing::v1_canonical(all.iter().copied());
    let token = signing::v1_auth_token(access_key, &time_stamp, &canonical);
    all.push(("authToken", &token));
    all.iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, QUERY_VALUE),
                utf8_percent_encode(value, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Generation, VerifyPolicy, verify};

    const POLICY: VerifyPolicy = VerifyPolicy {
        window_ms: 60_000,
        v1_window_ms: 4 * 3600 * 1000,
        max_query_bytes: 8192,
        max_query_params: 64,
    };

    #[test]
    fn what_the_marketplace_signs_the_gateway_verifies() {
        let now = 1_716_363_778_801;
        let body = br#"{"activity":"releaseInstance","instanceId":"i 1+2"}"#;
        let query = v2_query("k", body, now, &random_nonce());
        let verified = verify(Generation::V2, &query, body, &["k"], now, &POLICY);
        assert!(verified.is_ok(), "{verified:?}");

        let params = vec![
            ("activity".to_string(), "releaseInstance".to_string()),
            ("instanceId".to_string(), "a+b=c/é & co".to_string()),
        ];
        let query = v1_query("k", &params, now);
        let verified =
            verify(Generation::V1, &query, b"", &["k"], now, &POLICY).expect("V1 verifies");
        assert_eq!(verified.key_index, 0);
        let other = verify(Generation::V1, &query, b"", &["x"], now, &POLICY);
        assert!(other.is_err());
    }
}
