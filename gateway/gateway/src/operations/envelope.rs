//! The persisted form of an operation's request and answer: a versioned
//! envelope around the gateway's own types, so that a later gateway can
//! change its types and still read what an earlier one stored.
//!
//! - request: `{"v":1,"op":"create","request":{…},"sealed":{"customer":"…"}}`,
//!   the request in `koogallery_contract`'s frozen serde form, its buyer
//!   (name, phone, e-mail…) taken out and sealed (`crate::sealing`);
//! - answer: `{"v":1,"answer":{…}}`, the answer in the marketplace's own
//!   field names (`koogallery_protocol::Answer`).
//!
//! Rows written before the envelope existed (version 0) hold the bare
//! request (its operation known from the row's kind) or the bare answer;
//! they are read as such. Anything else is [`Unreadable`], with a reason:
//! the caller parks the row for a human instead of failing on it.

use koogallery_contract::{Customer, Operation, OperationRequest};
use koogallery_protocol::Answer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sealing::Sealer;

/// The envelope version this gateway writes.
const VERSION: u64 = 1;

/// Why a stored request or answer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

#[derive(Serialize)]
struct RequestOut<'a> {
    v: u64,
    op: &'a str,
    request: &'a OperationRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

/// What a stored request holds sealed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    customer: String,
}

#[derive(Serialize)]
struct AnswerOut<'a> {
    v: u64,
    answer: &'a Answer,
}

/// The stored text of a request, its buyer sealed.
pub fn write_request(request: &OperationRequest, sealer: &Sealer) -> String {
    let mut stored = request.clone();
    let customer = stored.customer_mut().and_then(Option::take);
    let sealed = customer.map(|customer| Sealed {
        // Plain data with string keys: serialising cannot fail.
        customer: sealer.seal(&serde_json::to_vec(&customer).unwrap_or_default()),
    });
    let envelope = RequestOut {
        v: VERSION,
        op: request.operation().name(),
        request: &stored,
        sealed,
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The stored text of an answer.
pub fn write_answer(answer: &Answer) -> String {
    serde_json::to_string(&AnswerOut { v: VERSION, answer }).unwrap_or_default()
}

/// Reads a stored request, opening what it holds sealed. `legacy_operation`
/// is what a version-0 row (a bare request) holds, known from the row's
/// kind.
pub fn read_request(
    text: &str,
    legacy_operation: Option<Operation>,
    sealer: &Sealer,
) -> Result<OperationRequest, Unreadable> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Unreadable(format!("the stored request is not JSON: {e}")))?;
    let (operation, request, sealed) = match version(&value)? {
        0 => {
            let operation = legacy_operation.ok_or_else(|| {
                Unreadable("a bare stored request of an unknown kind".to_string())
            })?;
            (operation, value, None)
        }
        VERSION => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct RequestIn {
                #[allow(dead_code)]
                v: u64,
                op: String,
                request: Value,
                #[serde(default)]
                sealed: Option<Sealed>,
            }
            let envelope: RequestIn = serde_json::from_value(value)
                .map_err(|e| Unreadable(format!("the stored request envelope: {e}")))?;
            let operation = envelope
                .op
                .parse::<Operation>()
                .map_err(|e| Unreadable(e.to_string()))?;
            (operation, envelope.request, envelope.sealed)
        }
        other => return Err(too_new("request", other)),
    };
    let mut request = OperationRequest::from_json(operation, request)
        .map_err(|e| Unreadable(format!("the stored `{operation}` request: {e}")))?;
    if let Some(sealed) = sealed {
        let opened = sealer
            .open(&sealed.customer)
            .map_err(|e| Unreadable(format!("the sealed buyer: {e}")))?;
        let customer: Customer = serde_json::from_slice(&opened)
            .map_err(|e| Unreadable(format!("the sealed buyer: {e}")))?;
        let slot = request.customer_mut().ok_or_else(|| {
            Unreadable(format!("a `{operation}` request holds no buyer to unseal"))
        })?;
        *slot = Some(customer);
    }
    Ok(request)
}

/// Reads a stored answer.
pub fn read_answer(text: &str) -> Result<Answer, Unreadable> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Unreadable(format!("the stored answer is not JSON: {e}")))?;
    let answer = match version(&value)? {
        0 => value,
        VERSION => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct AnswerIn {
                #[allow(dead_code)]
                v: u64,
                answer: Value,
            }
            serde_json::from_value::<AnswerIn>(value)
                .map_err(|e| Unreadable(format!("the stored answer envelope: {e}")))?
                .answer
        }
        other => return Err(too_new("answer", other)),
    };
    serde_json::from_value(answer).map_err(|e| Unreadable(format!("the stored answer: {e}")))
}

/// The envelope version of a stored value: its `v`, or 0 for a bare value.
fn version(value: &Value) -> Result<u64, Unreadable> {
    match value.get("v") {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Unreadable(format!("envelope version `{v}` is not a number"))),
    }
}

fn too_new(what: &str, version: u64) -> Unreadable {
    Unreadable(format!(
        "the stored {what} has envelope version {version}; this gateway reads up to {VERSION}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery_contract::{CallContext, CreateKind, CreateRequest, Product, ReleaseRequest};
    use koogallery_protocol::ResultCode;

    fn sealer() -> Sealer {
        Sealer::new(&[3; 32])
    }

    fn release() -> OperationRequest {
        OperationRequest::Release(ReleaseRequest {
            call: CallContext {
                idempotency_key: "kg-1".into(),
                attempt: 1,
                test: false,
                request_id: "r".into(),
            },
            instance_id: "i-1".into(),
            order_id: None,
            order_line_id: None,
        })
    }

    #[test]
    fn the_written_forms_are_pinned_and_read_back() {
        let text = write_request(&release(), &sealer());
        assert_eq!(
            text,
            r#"{"v":1,"op":"release","request":{"call":{"idempotency_key":"kg-1","attempt":1,"test":false,"request_id":"r"},"instance_id":"i-1","order_id":null,"order_line_id":null}}"#
        );
        assert_eq!(read_request(&text, None, &sealer()), Ok(release()));
        let answer = Answer::new(ResultCode::SoldOut, "gone");
        let text = write_answer(&answer);
        assert_eq!(
            text,
            r#"{"v":1,"answer":{"resultCode":"000106","resultMsg":"gone"}}"#
        );
        assert_eq!(read_answer(&text), Ok(answer));
    }

    #[test]
    fn bare_rows_from_before_the_envelope_are_read() {
        let bare = r#"{"call":{"idempotency_key":"kg-1","attempt":1,"test":false,"request_id":"r"},"instance_id":"i-1","order_id":null,"order_line_id":null}"#;
        assert_eq!(
            read_request(bare, Some(Operation::Release), &sealer()),
            Ok(release())
        );
        assert!(
            read_request(bare, None, &sealer()).is_err(),
            "a bare row needs its kind"
        );
        let answer =
            read_answer(r#"{"resultCode":"000000","resultMsg":"success","instanceId":"i"}"#)
                .expect("a bare answer");
        assert_eq!(answer.instance_id.as_deref(), Some("i"));
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let cases = [
            (read_request("not json", None, &sealer()).err(), "not JSON"),
            (
                read_request(r#"{"v":2,"op":"release","request":{}}"#, None, &sealer()).err(),
                "envelope version 2",
            ),
            (
                read_request(r#"{"v":1,"op":"explode","request":{}}"#, None, &sealer()).err(),
                "unknown operation",
            ),
            (
                read_request(r#"{"v":1,"op":"release","request":{}}"#, None, &sealer()).err(),
                "missing field",
            ),
            (
                read_answer(r#"{"resultCode":"999999","resultMsg":"x"}"#).err(),
                "unknown result code",
            ),
            (read_answer(r#"{"v":"one"}"#).err(), "not a number"),
        ];
        for (error, expected) in cases {
            let error = error.expect(expected);
            assert!(error.0.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn the_buyer_is_stored_sealed_and_read_back_with_the_key_only() {
        let create = OperationRequest::Create(CreateRequest {
            call: CallContext {
                idempotency_key: "kg-2".into(),
                attempt: 1,
                test: false,
                request_id: "r".into(),
            },
            instance_id: "i".into(),
            order_id: "CS1".into(),
            order_line_id: Some("L".into()),
            kind: CreateKind::Purchase,
            customer: Some(Customer {
                id: "c-1".into(),
                name: Some("Zhang San".into()),
                user_id: None,
                user_name: None,
                mobile_phone: Some("13812345678".into()),
                email: Some("zhang.san@example.com".into()),
            }),
            product: Product::default(),
            charging_mode: None,
            period: None,
            expire_at: None,
            extensions: vec![],
        });
        let text = write_request(&create, &sealer());
        for secret in ["Zhang", "13812345678", "zhang.san", "c-1"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains(r#""customer":null"#), "{text}");
        assert_eq!(read_request(&text, None, &sealer()), Ok(create));
        let other_key = read_request(&text, None, &Sealer::new(&[4; 32]))
            .expect_err("another key cannot open it");
        assert!(other_key.0.contains("sealed buyer"), "{other_key}");
    }
}
