//! Request authentication and response signing: the V2 `signature`, the V1
//! `authToken`, timestamps, and the `Body-Sign` header of every answer.
//!
//! Every comparison decodes the received MAC (hex or base64) and checks it
//! with `Mac::verify_slice`: constant time and length-checked, so an empty or
//! truncated signature never verifies. Several access keys may be configured
//! (rotation); any one verifies and the index of the one that did is
//! returned, so the answer can be signed with the key the marketplace used.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused. The message is for logs; the
/// marketplace only ever sees "authentication failed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing query parameter `{0}`")]
    Missing(&'static str),
    #[error("query parameter `{0}` appears more than once")]
    Duplicate(String),
    #[error("`{0}` is not a valid timestamp")]
    BadTimestamp(&'static str),
    #[error("timestamp is {skew_ms} ms from the gateway's clock (window ±{window_ms} ms)")]
    OutsideWindow { skew_ms: i64, window_ms: i64 },
    #[error("the signature is not {0}")]
    BadEncoding(&'static str),
    #[error("the signature does not match any access key")]
    Mismatch,
    #[error("nonce already used")]
    ReplayedNonce,
    #[error("this authToken was already used to sign other parameters")]
    ReusedToken,
    #[error("parameter `{0}` holds `&name=` and would re-parse as other parameters")]
    Ambiguous(String),
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The V2 canonical request: `accessKey + nonce + timestamp + hex(HMAC(accessKey, body))`.
fn v2_canonical(access_key: &str, nonce: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let payload_mac = hex::encode(hmac_sha256(access_key.as_bytes(), body));
    [access_key, nonce, timestamp, &payload_mac]
        .concat()
        .into_bytes()
}

/// The V2 request `signature` (lowercase hex), as the marketplace computes it.
pub fn v2_signature(access_key: &str, nonce: &str, timestamp: &str, body: &[u8]) -> String {
    let canonical = v2_canonical(access_key, nonce, timestamp, body);
    hex::encode(hmac_sha256(access_key.as_bytes(), &canonical))
}

/// Verifies a V2 `signature` (hex, either case) over the raw body. Returns
/// the index of the key that verified.
pub fn verify_v2<K: AsRef<str>>(
    access_keys: &[K],
    nonce: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> Result<usize, AuthError> {
    let received = hex::decode(signature).map_err(|_| AuthError::BadEncoding("hex"))?;
    access_keys
        .iter()
        .position(|key| {
            let key = key.as_ref();
            let mut m = mac(key.as_bytes());
            m.update(&v2_canonical(key, nonce, timestamp, body));
            m.verify_slice(&received).is_ok()
        })
        .ok_or(AuthError::Mismatch)
}

/// Checks a V2 `timestamp` against `now_ms`: 13-digit milliseconds, or
/// 10-digit seconds, within `window_ms` in either direction. Returns it in
/// milliseconds.
pub fn check_timestamp(timestamp: &str, now_ms: i64, window_ms: i64) -> Result<i64, AuthError> {
    let digits = timestamp.len();
    if !(timestamp.bytes().all(|b| b.is_ascii_digit()) && (digits == 10 || digits == 13)) {
        return Err(AuthError::BadTimestamp("timestamp"));
    }
    let value: i64 = timestamp
        .parse()
        .map_err(|_| AuthError::BadTimestamp("timestamp"))?;
    let ms = if digits == 10 { value * 1000 } else { value };
    check_skew(ms, now_ms, window_ms).map(|()| ms)
}

/// Refuses a time (ms) more than `window_ms` from `now_ms`, either way.
pub fn check_skew(ms: i64, now_ms: i64, window_ms: i64) -> Result<(), AuthError> {
    let skew_ms = ms.saturating_sub(now_ms);
    if skew_ms.unsigned_abs() > window_ms.unsigned_abs() {
        return Err(AuthError::OutsideWindow { skew_ms, window_ms });
    }
    Ok(())
}

/// The V1 canonical string: `k1=v1&k2=v2…` over every parameter but
/// `authToken`, sorted by name (ordinal, like Java's `TreeMap`).
pub fn v1_canonical<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(name, _)| *name != "authToken")
        .collect();
    pairs.sort_unstable();
    let mut joined = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            joined.push('&');
        }
        joined.push_str(name);
        joined.push('=');
        joined.push_str(value);
    }
    joined
}

/// SHA-256 of `bytes`, in hex (binds a V1 token to what it signed).
pub fn digest_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(Sha256::digest(bytes))
}

/// The V1 `authToken`: base64 HMAC-SHA256 keyed by `accessKey + timeStamp`.
pub fn v1_auth_token(access_key: &str, time_stamp: &str, canonical: &str) -> String {
    let key = [access_key, time_stamp].concat();
    BASE64.encode(hmac_sha256(key.as_bytes(), canonical.as_bytes()))
}

/// Verifies a V1 `authToken` (already URL-decoded) against one canonical
/// string. Returns the index of the key that verified.
pub fn verify_v1<K: AsRef<str>>(
    access_keys: &[K],
    time_stamp: &str,
    canonical: &str,
    auth_token: &str,
) -> Result<usize, AuthError> {
    let received = BASE64
        .decode(auth_token.trim())
        .map_err(|_| AuthError::BadEncoding("base64"))?;
    access_keys
        .iter()
        .position(|key| {
            let mut m = mac([key.as_ref(), time_stamp].concat().as_bytes());
            m.update(canonical.as_bytes());
            m.verify_slice(&received).is_ok()
        })
        .ok_or(AuthError::Mismatch)
}

/// The response header's name. Case matters to the marketplace's debugger.
pub const BODY_SIGN_HEADER: &str = "Body-Sign";

/// The `Body-Sign` header value for the exact response bytes.
pub fn body_sign(access_key: &str, body: &[u8]) -> String {
    let signature = BASE64.encode(hmac_sha256(access_key.as_bytes(), body));
    format!("sign_type=\"HMAC-SHA256\", signature=\"{signature}\"")
}

/// Why a `Body-Sign` header does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodySignError {
    #[error("the Body-Sign header is not `sign_type=\"HMAC-SHA256\", signature=\"…\"`")]
    Malformed,
    #[error("the Body-Sign signature does not match the body")]
    Mismatch,
}

/// Verifies a `Body-Sign` header value (as the marketplace does; used by
/// `gateway simulate` and the tests). Tolerates the space after
/// `signature=` that the Java demo emits.
pub fn verify_body_sign(access_key: &str, body: &[u8], header: &str) -> Result<(), BodySignError> {
    let mut sign_type = None;
    let mut signature = None;
    for part in header.split(',') {
        let (name, value) = part.split_once('=').ok_or(BodySignError::Malformed)?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(BodySignError::Malformed)?;
        match name.trim() {
            "sign_type" => sign_type = Some(value),
            "signature" => signature = Some(value),
            _ => return Err(BodySignError::Malformed),
        }
    }
    if sign_type != Some("HMAC-SHA256") {
        return Err(BodySignError::Malformed);
    }
    let received = BASE64
        .decode(signature.ok_or(BodySignError::Malformed)?)
        .map_err(|_| BodySignError::Malformed)?;
    let mut m = mac(access_key.as_bytes());
    m.update(body);
    m.verify_slice(&received)
        .map_err(|_| BodySignError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::vectors;

    fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key}"))
    }

    #[test]
    fn v2_signature_matches_the_shared_vector_in_either_case() {
        let v = vectors();
        let key = s(&v, "access_key");
        let t = &v["v2_request_signature"];
        let body = s(t, "body").as_bytes();
        assert_eq!(
            hex::encode(hmac_sha256(key.as_bytes(), body)),
            s(t, "payload_mac")
        );
        let signature = v2_signature(key, s(t, "nonce"), s(t, "timestamp"), body);
        assert_eq!(signature, s(t, "signature"));
        for candidate in [signature.clone(), signature.to_uppercase()] {
            assert_eq!(
                verify_v2(&[key], s(t, "nonce"), s(t, "timestamp"), body, &candidate),
                Ok(0)
            );
        }
        // Rotation: the second key verifies.
        assert_eq!(
            verify_v2(
                &["old", key],
                s(t, "nonce"),
                s(t, "timestamp"),
                body,
                &signature
            ),
            Ok(1)
        );
    }

    #[test]
    fn v2_negative_set() {
        let v = vectors();
        let key = s(&v, "access_key");
        let t = &v["v2_request_signature"];
        let (nonce, ts, body) = (s(t, "nonce"), s(t, "timestamp"), s(t, "body"));
        let good = s(t, "signature");
        let mut tampered = body.as_bytes().to_vec();
        tampered[5] ^= 1;
        let check = |keys: &[&str], nonce: &str, ts: &str, body: &[u8], sig: &str| {
            verify_v2(keys, nonce, ts, body, sig)
        };
        assert_eq!(
            check(&[key], nonce, ts, &tampered, good),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&["wrong"], nonce, ts, body.as_bytes(), good),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&[], nonce, ts, body.as_bytes(), good),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&[key], nonce, ts, body.as_bytes(), ""),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&[key], nonce, ts, body.as_bytes(), &good[..62]),
            Err(AuthError::Mismatch),
            "a truncated signature never verifies"
        );
        assert_eq!(
            check(&[key], nonce, ts, body.as_bytes(), &good[..63]),
            Err(AuthError::BadEncoding("hex"))
        );
        assert_eq!(
            check(&[key], "other", ts, body.as_bytes(), good),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&[key], nonce, "1716363778802", body.as_bytes(), good),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            check(&[key], nonce, ts, body.as_bytes(), &format!(" {good}")),
            Err(AuthError::BadEncoding("hex"))
        );
    }

    #[test]
    fn timestamps_are_checked_in_both_directions_in_ms_or_seconds() {
        let now = 1_716_363_778_801_i64;
        assert_eq!(check_timestamp("1716363778801", now, 60_000), Ok(now));
        assert_eq!(
            check_timestamp("1716363778", now, 60_000),
            Ok(1_716_363_778_000)
        );
        assert_eq!(
            check_timestamp(&(now - 60_000).to_string(), now, 60_000),
            Ok(now - 60_000)
        );
        for skew in [-61_000, 61_000] {
            assert_eq!(
                check_timestamp(&(now + skew).to_string(), now, 60_000),
                Err(AuthError::OutsideWindow {
                    skew_ms: skew,
                    window_ms: 60_000
                })
            );
        }
        for bad in ["", "abc", "17163637788011", "-716363778801", "1716363778.8"] {
            assert_eq!(
                check_timestamp(bad, now, 60_000),
                Err(AuthError::BadTimestamp("timestamp")),
                "{bad}"
            );
        }
    }

    #[test]
    fn v1_auth_token_matches_the_shared_vector() {
        let v = vectors();
        let key = s(&v, "access_key");
        let t = &v["v1_auth_token"];
        let params: Vec<(String, String)> = t["params"]
            .as_object()
            .expect("params")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let canonical = v1_canonical(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let time_stamp = s(&t["params"], "timeStamp");
        assert_eq!(
            v1_auth_token(key, time_stamp, &canonical),
            s(t, "auth_token")
        );
        assert_eq!(
            verify_v1(&[key], time_stamp, &canonical, s(t, "auth_token")),
            Ok(0)
        );
        assert_eq!(
            verify_v1(&["wrong", key], time_stamp, &canonical, s(t, "auth_token")),
            Ok(1)
        );
        assert_eq!(
            verify_v1(
                &[key],
                time_stamp,
                &canonical.replace("CS19", "CS18"),
                s(t, "auth_token")
            ),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_v1(&[key], time_stamp, &canonical, ""),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_v1(&[key], time_stamp, &canonical, "%%%"),
            Err(AuthError::BadEncoding("base64"))
        );
    }

    #[test]
    fn body_sign_matches_the_shared_vector_and_verifies() {
        let v = vectors();
        let key = s(&v, "access_key");
        let t = &v["body_sign"];
        let body = s(t, "body").as_bytes();
        let header = body_sign(key, body);
        assert_eq!(
            header,
            format!(
                "sign_type=\"HMAC-SHA256\", signature=\"{}\"",
                s(t, "signature")
            )
        );
        assert_eq!(verify_body_sign(key, body, &header), Ok(()));
        let java_style = header.replace("signature=\"", "signature= \"");
        assert_eq!(verify_body_sign(key, body, &java_style), Ok(()));
        assert_eq!(
            verify_body_sign(key, b"{}", &header),
            Err(BodySignError::Mismatch)
        );
        assert_eq!(
            verify_body_sign("other", body, &header),
            Err(BodySignError::Mismatch)
        );
        for malformed in ["", "signature=\"\"", "sign_type=HMAC-SHA256", "x=\"y\""] {
            assert!(
                verify_body_sign(key, body, malformed).is_err(),
                "{malformed}"
            );
        }
    }
}
