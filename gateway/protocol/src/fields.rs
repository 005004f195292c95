//! A callback's business fields, whichever generation sent them, with the
//! checks every activity needs: presence, maximum length, formats. Each
//! error names the field, and becomes `000002` on the wire.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::time;

/// Why a callback's fields are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{0} is missing")]
    Missing(String),
    #[error("{field} is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("{field} {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
    #[error("unknown activity `{0}`")]
    UnknownActivity(String),
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("{0}")]
    QueryTooLarge(String),
}

impl FieldError {
    pub(crate) fn invalid(field: &str, expected: &'static str) -> Self {
        FieldError::Invalid {
            field: field.to_string(),
            expected,
        }
    }
}

/// Fields by name: a V2 JSON object, or V1 query parameters as strings.
/// Remembers which ones were read, so the rest can travel as extensions.
#[derive(Debug)]
pub struct Fields {
    map: Map<String, Value>,
    /// A prefix for error messages of nested objects (`orderInfo[0].`).
    path: String,
    read: BTreeSet<&'static str>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Fields {
            map,
            path: String::new(),
            read: BTreeSet::new(),
        }
    }

    /// The nested object at `name` (or the first element of an array of
    /// objects there), if present.
    pub fn nested(&mut self, name: &'static str) -> Result<Option<Fields>, FieldError> {
        self.read.insert(name);
        let (value, suffix) = match self.map.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(items)) => (items.first().cloned(), "[0]"),
            Some(other) => (Some(other.clone()), ""),
        };
        let path = format!("{}{name}{suffix}.", self.path);
        match value {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                map,
                path,
                read: BTreeSet::new(),
            })),
            // Some marketplace code sends nested objects as JSON text.
            Some(Value::String(text)) => match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => Ok(Some(Fields {
                    map,
                    path,
                    read: BTreeSet::new(),
                })),
                _ => Err(FieldError::invalid(&self.name(name), "must be an object")),
            },
            Some(_) => Err(FieldError::invalid(&self.name(name), "must be an object")),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.path)
    }

    /// The raw JSON value of a field, marking it read.
    pub fn raw(&mut self, name: &'static str) -> Option<&Value> {
        self.read.insert(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// An optional text field of at most `max` characters. Numbers are
    /// accepted as their text; blank text counts as absent.
    pub fn text(&mut self, name: &'static str, max: usize) -> Result<Option<String>, FieldError> {
        let full_name = self.name(name);
        let text = match self.raw(name) {
            None => return Ok(None),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(FieldError::invalid(&full_name, "must be text")),
        };
        if text.is_empty() {
            return Ok(None);
        }
        // Control characters have no business in marketplace fields, and in
        // ids they would let two orders collide on one NUL-separated key.
        if text.chars().any(char::is_control) {
            return Err(FieldError::invalid(
                &full_name,
                "must not contain control characters",
            ));
        }
        if text.chars().count() > max {
            return Err(FieldError::TooLong {
                field: full_name,
                max,
            });
        }
        Ok(Some(text))
    }

    /// A mandatory text field of at most `max` characters.
    pub fn required(&mut self, name: &'static str, max: usize) -> Result<String, FieldError> {
        self.text(name, max)?
            .ok_or_else(|| FieldError::Missing(self.name(name)))
    }

    /// An optional `yyyyMMddHHmmss` time, as Unix seconds.
    pub fn compact_time(&mut self, name: &'static str) -> Result<Option<i64>, FieldError> {
        let full_name = self.name(name);
        match self.text(name, 20)? {
            None => Ok(None),
            Some(text) => time::parse_compact(&text).map(Some).ok_or_else(|| {
                FieldError::invalid(&full_name, "must be a UTC time as yyyyMMddHHmmss")
            }),
        }
    }

    /// An optional time as `yyyy-MM-dd HH:mm:ss[ z]` or `yyyyMMddHHmmss`.
    pub fn flexible_time(
        &mut self,
        name: &'static str,
        max: usize,
    ) -> Result<Option<i64>, FieldError> {
        let full_name = self.name(name);
        match self.text(name, max)? {
            None => Ok(None),
            Some(text) => time::parse_flexible(&text).map(Some).ok_or_else(|| {
                FieldError::invalid(&full_name, "must be a UTC time as yyyy-MM-dd HH:mm:ss")
            }),
        }
    }

    /// An optional non-negative integer (text or number).
    pub fn count(&mut self, name: &'static str) -> Result<Option<u64>, FieldError> {
        let full_name = self.name(name);
        match self.text(name, 20)? {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .map(Some)
                .map_err(|_| FieldError::invalid(&full_name, "must be a non-negative integer")),
        }
    }

    /// `testFlag`: `1` is a test call; absent or `0` is not.
    pub fn test_flag(&mut self) -> Result<bool, FieldError> {
        match self.text("testFlag", 2)?.as_deref() {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(FieldError::invalid(
                &self.name("testFlag"),
                "must be 0 or 1",
            )),
        }
    }

    /// Every field not read yet, as name/value text (JSON text for
    /// structured values), except `skip`.
    pub fn unread(&self, skip: &[&str]) -> Vec<(String, String)> {
        self.map
            .iter()
            .filter(|(name, value)| {
                !self.read.contains(name.as_str())
                    && !skip.contains(&name.as_str())
                    && !value.is_null()
            })
            .map(|(name, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        match value {
            Value::Object(map) => Fields::new(map),
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn text_fields_are_checked_and_named() {
        let mut f =
            fields(json!({"a": " x ", "n": 12, "blank": "", "long": "é".repeat(65), "o": {}}));
        assert_eq!(f.required("a", 64), Ok("x".into()));
        assert_eq!(f.text("n", 64), Ok(Some("12".into())));
        assert_eq!(f.text("blank", 64), Ok(None));
        assert_eq!(
            f.required("blank", 64),
            Err(FieldError::Missing("blank".into()))
        );
        assert_eq!(
            f.required("long", 64).map_err(|e| e.to_string()),
            Err("long is longer than 64 characters".into())
        );
        assert_eq!(
            f.text("o", 64).map_err(|e| e.to_string()),
            Err("o must be text".into())
        );
        assert!(f.text("long", 65).is_ok(), "characters, not bytes");
    }

    #[test]
    fn nested_objects_name_their_path_and_unread_fields_remain() {
        let mut f = fields(json!({
            "orderInfo": [{"orderId": "CS1", "expireTime": "2022"}],
            "buyerInfo": "{\"customerId\":\"c\"}",
            "extra": {"k": 1},
            "businessId": "b"
        }));
        let mut order = f.nested("orderInfo").expect("ok").expect("present");
        assert_eq!(order.required("orderId", 64), Ok("CS1".into()));
        assert_eq!(
            order.compact_time("expireTime").map_err(|e| e.to_string()),
            Err("orderInfo[0].expireTime must be a UTC time as yyyyMMddHHmmss".into())
        );
        let mut buyer = f.nested("buyerInfo").expect("ok").expect("present");
        assert_eq!(buyer.required("customerId", 64), Ok("c".into()));
        assert_eq!(
            f.unread(&["businessId"]),
            vec![("extra".into(), "{\"k\":1}".into())]
        );
    }

    #[test]
    fn test_flag_values() {
        assert_eq!(fields(json!({})).test_flag(), Ok(false));
        assert_eq!(fields(json!({"testFlag": "1"})).test_flag(), Ok(true));
        assert_eq!(fields(json!({"testFlag": 0})).test_flag(), Ok(false));
        assert!(fields(json!({"testFlag": "yes"})).test_flag().is_err());
    }
}
