//! The persisted form of an operation's request and answer: a versioned
//! envelope around the gateway's own types, so that a later gateway can
//! change its types and still read what an earlier one stored.
//!
//! - request: `{"v":1,"op":"create","request":{…}}`, the request in
//!   `koogallery_contract`'s frozen serde form;
//! - answer: `{"v":1,"answer":{…}}`, the answer in the marketplace's own
//!   field names (`koogallery_protocol::Answer`).
//!
//! Rows written before the envelope existed (version 0) hold the bare
//! request (its operation known from the row's kind) or the bare answer;
//! they are read as such. Anything else is [`Unreadable`], with a reason:
//! the caller parks the row for a human instead of failing on it.

use koogallery_contract::{Operation, OperationRequest};
use koogallery_protocol::Answer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}

#[derive(Serialize)]
struct AnswerOut<'a> {
    v: u64,
    answer: &'a Answer,
}

/// The stored text of a request.
pub fn write_request(request: &OperationRequest) -> String {
    let envelope = RequestOut {
        v: VERSION,
        op: request.operation().name(),
        request,
    };
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The stored text of an answer.
pub fn write_answer(answer: &Answer) -> String {
    serde_json::to_string(&AnswerOut { v: VERSION, answer }).unwrap_or_default()
}

/// Reads a stored request. `legacy_operation` is what a version-0 row (a
/// bare request) holds, known from the row's kind.
pub fn read_request(
    text: &str,
    legacy_operation: Option<Operation>,
) -> Result<OperationRequest, Unreadable> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Unreadable(format!("the stored request is not JSON: {e}")))?;
    let (operation, request) = match version(&value)? {
        0 => {
            let operation = legacy_operation.ok_or_else(|| {
                Unreadable("a bare stored request of an unknown kind".to_string())
            })?;
            (operation, value)
        }
        VERSION => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct RequestIn {
                #[allow(dead_code)]
                v: u64,
                op: String,
                request: Value,
            }
            let envelope: RequestIn = serde_json::from_value(value)
                .map_err(|e| Unreadable(format!("the stored request envelope: {e}")))?;
            let operation = envelope
                .op
                .parse::<Operation>()
                .map_err(|e| Unreadable(e.to_string()))?;
            (operation, envelope.request)
        }
        other => return Err(too_new("request", other)),
    };
    OperationRequest::from_json(operation, request)
        .map_err(|e| Unreadable(format!("the stored `{operation}` request: {e}")))
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
    use koogallery_contract::{CallContext, ReleaseRequest};
    use koogallery_protocol::ResultCode;

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
        let text = write_request(&release());
        assert_eq!(
            text,
            r#"{"v":1,"op":"release","request":{"call":{"idempotency_key":"kg-1","attempt":1,"test":false,"request_id":"r"},"instance_id":"i-1","order_id":null,"order_line_id":null}}"#
        );
        assert_eq!(read_request(&text, None), Ok(release()));
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
        assert_eq!(read_request(bare, Some(Operation::Release)), Ok(release()));
        assert!(
            read_request(bare, None).is_err(),
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
            (read_request("not json", None).err(), "not JSON"),
            (
                read_request(r#"{"v":2,"op":"release","request":{}}"#, None).err(),
                "envelope version 2",
            ),
            (
                read_request(r#"{"v":1,"op":"explode","request":{}}"#, None).err(),
                "unknown operation",
            ),
            (
                read_request(r#"{"v":1,"op":"release","request":{}}"#, None).err(),
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
}
