//! Property tests of the inbound path, "raw query + raw body → verify →
//! parse": unsigned input of any shape never panics the verifier; signed
//! input of any shape (so that it reaches the parser) never panics the
//! parser and is either read or refused as invalid, never as forged; what
//! the marketplace signs always verifies; and any change to a signed byte is
//! refused.
//!
//! CI runs the default number of cases; a longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p koogallery-protocol --test protocol_props`.

use koogallery_protocol::{
    self as protocol, EncryptType, Generation, ParseContext, Rejection, VerifyPolicy, marketplace,
};
use proptest::prelude::*;

const KEY: &str = "00000000-test-key-0000-000000000000";
const NOW: i64 = 1_716_363_778_801;
const POLICY: VerifyPolicy = VerifyPolicy {
    window_ms: 60_000,
    v1_window_ms: 4 * 3600 * 1000,
    max_query_bytes: 8192,
    max_query_params: 64,
};

fn ctx() -> ParseContext<'static> {
    ParseContext {
        merchant: "m",
        request_id: "r",
        access_key: KEY,
        encrypt_type: EncryptType::Aes256,
    }
}

fn read(is_get: bool, query: &str, body: &[u8]) -> Result<(), Rejection> {
    protocol::read_callback(
        protocol::detect_generation(is_get, query),
        query,
        body,
        &[KEY],
        NOW,
        &POLICY,
        &ctx(),
    )
    .map(|_| ())
}

/// Query strings made of the characters that matter to the parser.
fn query_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("signature=".to_string()),
            Just("timestamp=1716363778801".to_string()),
            Just("nonce=".to_string()),
            Just("authToken=".to_string()),
            Just("timeStamp=20240522073658801".to_string()),
            Just("activity=newInstance".to_string()),
            "[a-zA-Z0-9%+=&._~-]{0,24}",
            "\\PC{0,8}",
        ],
        0..8,
    )
    .prop_map(|parts| parts.join("&"))
}

/// JSON bodies shaped like callbacks, with arbitrary values.
fn callback_body() -> impl Strategy<Value = serde_json::Value> {
    let activity = prop_oneof![
        Just("newInstance"),
        Just("queryInstance"),
        Just("refreshInstance"),
        Just("updateInstanceStatus"),
        Just("releaseInstance"),
        Just("upgradeInstance"),
        Just("changeInstanceCheck"),
        Just("getLicenseAsync"),
        Just("nonsense"),
    ];
    let value = prop_oneof![
        "\\PC{0,80}".prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::json!({"productId": "P", "linearValue": 3})),
        Just(serde_json::json!([{"orderId": "CS1", "productInfo": [{"skuCode": "s"}]}])),
        Just(serde_json::Value::Null),
    ];
    let names = prop_oneof![
        Just("orderId"),
        Just("orderLineId"),
        Just("instanceId"),
        Just("expireTime"),
        Just("scene"),
        Just("status"),
        Just("productInfo"),
        Just("orderInfo"),
        Just("buyerInfo"),
        Just("testFlag"),
        Just("effectiveTime"),
        Just("eventId"),
    ];
    (
        activity,
        proptest::collection::btree_map(names, value, 0..8),
    )
        .prop_map(|(activity, fields)| {
            let mut map: serde_json::Map<String, serde_json::Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            map.insert("activity".into(), activity.into());
            serde_json::Value::Object(map)
        })
}

/// Bodies the parser must survive once they are signed: arbitrary bytes,
/// arbitrary text, and callback-shaped JSON.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "\\PC{0,200}".prop_map(String::into_bytes),
        callback_body().prop_map(|body| serde_json::to_vec(&body).unwrap_or_default()),
    ]
}

proptest! {
    #[test]
    fn arbitrary_unsigned_input_never_panics(
        is_get in any::<bool>(),
        query in query_text(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = read(is_get, &query, &body);
    }

    #[test]
    fn arbitrary_signed_bodies_reach_the_parser_and_never_panic_it(body in any_body()) {
        let query = marketplace::v2_query(KEY, &body, NOW, "nonce-1");
        match read(false, &query, &body) {
            Ok(()) | Err(Rejection::Invalid(_)) => {}
            Err(Rejection::Auth(error)) => prop_assert!(false, "a signed body was refused: {error}"),
        }
    }

    #[test]
    fn signed_callbacks_verify_and_parse_or_are_refused_as_invalid(body in callback_body()) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let query = marketplace::v2_query(KEY, &bytes, NOW, "nonce-1");
        match read(false, &query, &bytes) {
            Ok(()) | Err(Rejection::Invalid(_)) => {}
            Err(Rejection::Auth(error)) => prop_assert!(false, "a signed body was refused: {error}"),
        }
    }

    #[test]
    fn flipping_any_signed_byte_is_refused(
        body in callback_body(),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let query = marketplace::v2_query(KEY, &bytes, NOW, "nonce-1");
        let mut tampered = bytes.clone();
        let at = position.index(tampered.len());
        tampered[at] ^= 1 << bit;
        prop_assert!(matches!(read(false, &query, &tampered), Err(Rejection::Auth(_))));

        let signature_at = query.find("signature=").map(|at| at + "signature=".len());
        prop_assert!(signature_at.is_some(), "the signed query has a signature: {query}");
        let signature_at = signature_at.unwrap_or_default() + position.index(64);
        let mut query_bytes = query.into_bytes();
        let original = query_bytes[signature_at];
        query_bytes[signature_at] = if original == b'0' { b'1' } else { b'0' };
        let query = String::from_utf8(query_bytes).unwrap_or_default();
        prop_assert!(matches!(read(false, &query, &bytes), Err(Rejection::Auth(_))));
    }

    #[test]
    fn v1_round_trips_for_any_values_that_cannot_re_parse(
        values in proptest::collection::vec("\\PC{0,40}", 1..5),
    ) {
        let mut params = vec![("activity".to_string(), "releaseInstance".to_string())];
        params.extend(values.iter().enumerate().map(|(i, v)| (format!("f{i}"), v.clone())));
        let query = marketplace::v1_query(KEY, &params, NOW);
        let verified = protocol::verify(Generation::V1, &query, b"", &[KEY], NOW, &POLICY);
        // A value holding `&…=` would sign the same string as two parameters.
        let ambiguous = values
            .iter()
            .any(|v| v.split('&').skip(1).any(|rest| rest.contains('=')));
        if ambiguous {
            prop_assert!(
                matches!(verified, Err(Rejection::Auth(protocol::AuthError::Ambiguous(_)))),
                "{:?}",
                verified
            );
        } else {
            prop_assert!(verified.is_ok(), "{:?}", verified.err());
        }
    }
}
