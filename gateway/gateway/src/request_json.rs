//! Requests from partial JSON, for `gateway plugin invoke`, the tests and the
//! benchmarks: what the author writes is merged over a complete default
//! request, so it only needs the fields that matter (`{"order-id": "CS1"}` is
//! a valid create request).
//!
//! Authors write the WIT's own names (`order-id`, `"kind": "purchase"`,
//! `"charging-mode": "pay-per-use"`) — [`from_wit_names`] turns them into the
//! contract's stored serde form (`order_id`, `Purchase`), which is accepted
//! as well — and read results in them ([`to_wit_names`]).

use serde_json::{Value, json};

use koogallery_contract::{Operation, OperationRequest};
use koogallery_protocol::ids;

/// Why partial JSON is not a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestJsonError {
    #[error("the request must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("the request is not a valid `{operation}` request: {source}")]
    Invalid {
        operation: Operation,
        source: serde_json::Error,
    },
}

/// Builds the typed request for `operation` from partial JSON: the call
/// context (idempotency key derived from the JSON, attempt 1, the test flag),
/// empty extensions, the operation's usual defaults and, for `create`, the
/// instance id the gateway would assign to `merchant`'s order line.
pub fn build(
    operation: Operation,
    merchant: &str,
    user: Value,
    test: bool,
) -> Result<OperationRequest, RequestJsonError> {
    if !user.is_object() {
        return Err(RequestJsonError::NotAnObject(kind_of(&user)));
    }
    let user = from_wit_names(user);
    let mut request = defaults(operation, test, &user);
    merge(&mut request, user);
    if operation == Operation::Create && request.get("instance_id").is_none() {
        let order = request["order_id"].as_str().unwrap_or_default();
        let line = request["order_line_id"].as_str();
        request["instance_id"] = json!(ids::instance_id(merchant, order, line));
    }
    OperationRequest::from_json(operation, request)
        .map_err(|source| RequestJsonError::Invalid { operation, source })
}

/// A complete request but for the business fields only the author knows.
fn defaults(operation: Operation, test: bool, user: &Value) -> Value {
    // Stable for the same request file, like a marketplace retry.
    let key = format!(
        "cli-{operation}-{}",
        &hex::encode(sha2_of(&user.to_string()))[..16]
    );
    let mut request = json!({
        "call": {"idempotency_key": key, "attempt": 1, "test": test, "request_id": "cli"},
        "extensions": [],
    });
    let extra = match operation {
        Operation::Create => json!({"kind": "Purchase", "product": {}}),
        Operation::Upgrade | Operation::ChangeCheck => json!({"product": {}}),
        Operation::UpdateStatus => json!({"cause": "Marketplace"}),
        Operation::Renew => json!({"scene": "Renewal"}),
        Operation::Query | Operation::Release | Operation::IssueLicense => json!({}),
    };
    merge(&mut request, extra);
    request
}

fn sha2_of(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else
/// replaces.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Fields whose values are WIT enum cases.
const ENUM_FIELDS: [&str; 6] = ["kind", "charging_mode", "unit", "scene", "change", "cause"];

/// The WIT's names (kebab-case fields and enum cases) in the contract's
/// serde form (snake_case fields, PascalCase cases); that form passes as is.
pub fn from_wit_names(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = key.replace('-', "_");
                    let value = match value {
                        Value::String(case) if ENUM_FIELDS.contains(&key.as_str()) => {
                            Value::String(pascal(&case))
                        }
                        other => from_wit_names(other),
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(from_wit_names).collect()),
        other => other,
    }
}

/// The contract's serde form (a typed request, a result, a plugin error) in
/// the WIT's names: fields and variant tags kebab-case, enum cases too.
pub fn to_wit_names(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(case) if ENUM_FIELDS.contains(&key.as_str()) => {
                            Value::String(kebab(&case))
                        }
                        other => to_wit_names(other),
                    };
                    (kebab(&key), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(to_wit_names).collect()),
        other => other,
    }
}

/// `pay-per-use` → `PayPerUse` (and `PayPerUse` stays).
fn pascal(case: &str) -> String {
    case.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `PayPerUse` or `pay_per_use` → `pay-per-use`.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_names_and_the_serde_form_map_both_ways() {
        let wit = json!({"order-id": "CS1", "kind": "pay-per-use",
            "period": {"unit": "month", "count": 1}, "call": {"idempotency-key": "k"}});
        let serde_form = from_wit_names(wit.clone());
        assert_eq!(
            serde_form,
            json!({"order_id": "CS1", "kind": "PayPerUse",
                "period": {"unit": "Month", "count": 1}, "call": {"idempotency_key": "k"}})
        );
        assert_eq!(
            from_wit_names(serde_form.clone()),
            serde_form,
            "the serde form passes"
        );
        assert_eq!(to_wit_names(serde_form), wit);
        assert_eq!(
            to_wit_names(json!({"SoldOut": "x"})),
            json!({"sold-out": "x"})
        );
    }
    use koogallery_contract::CreateKind;

    #[test]
    fn a_minimal_create_gets_defaults_and_a_derived_instance_id() {
        let request = build(
            Operation::Create,
            "acme",
            json!({"order_id": "CS1", "order_line_id": "CS1-1"}),
            true,
        )
        .expect("valid");
        let OperationRequest::Create(create) = request else {
            panic!("not a create: {request:?}")
        };
        assert_eq!(
            create.instance_id,
            ids::instance_id("acme", "CS1", Some("CS1-1"))
        );
        assert_eq!(create.kind, CreateKind::Purchase);
        assert!(create.call.test);
        assert_eq!(create.call.attempt, 1);
        assert!(create.call.idempotency_key.starts_with("cli-create-"));
    }

    #[test]
    fn the_authors_fields_win_and_nested_objects_merge() {
        let user = json!({"order_id": "CS1", "kind": "Trial", "call": {"attempt": 3}});
        let OperationRequest::Create(create) =
            build(Operation::Create, "m", user, false).expect("valid")
        else {
            panic!("not a create")
        };
        assert_eq!(create.kind, CreateKind::Trial);
        assert_eq!(create.call.attempt, 3);
        assert!(!create.call.test);
        assert_eq!(
            create.call.request_id, "cli",
            "untouched defaults survive the merge"
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let not_object = build(Operation::Release, "m", json!([1]), true).expect_err("array");
        assert!(
            not_object.to_string().contains("JSON object, not an array"),
            "{not_object}"
        );
        let missing = build(Operation::Renew, "m", json!({"instance_id": "i"}), true)
            .expect_err("incomplete");
        assert!(
            missing.to_string().contains("not a valid `renew` request"),
            "{missing}"
        );
        assert!(missing.to_string().contains("order_id"), "{missing}");
    }
}
