//! Raw query strings: split, decode, and the decodings a V1 `authToken` may
//! have been computed over.
//!
//! The marketplace URL-encodes every V1 value. Public implementations differ
//! on how they decode before signing: percent-decoding only,
//! form decoding (`+` is a space, as Java servlets do), or decoding twice.
//! The gateway verifies against each distinct decoding, in that order; each
//! is a full HMAC check, so this widens nothing for someone without the key.

use std::borrow::Cow;
use std::collections::HashSet;

use percent_encoding::percent_decode;

/// One decoded query parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// How raw `name=value` text was turned into characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// `%XX` decoded once; `+` stays `+`.
    Percent,
    /// `%XX` decoded once and `+` read as a space (HTML forms, servlets).
    Form,
    /// `%XX` decoded twice (a value encoded twice on the way).
    Twice,
}

impl Decoding {
    pub const ALL: [Decoding; 3] = [Decoding::Percent, Decoding::Form, Decoding::Twice];
}

/// Why a query string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query parameter `{0}` is not valid UTF-8 once decoded")]
    NotUtf8(String),
    #[error("query parameter `{0}` appears more than once")]
    Duplicate(String),
}

/// The raw `name=value` pairs of a query string, in order. A pair without
/// `=` has an empty value; empty segments (`a=1&&b=2`) are skipped.
pub fn split(raw: &str) -> Vec<(&str, &str)> {
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
        .collect()
}

fn decode_one(raw: &str, decoding: Decoding) -> Result<String, ()> {
    let plus_fixed: Cow<str> = if decoding == Decoding::Form {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    let once = percent_decode(plus_fixed.as_bytes())
        .decode_utf8()
        .map_err(|_| ())?;
    if decoding == Decoding::Twice {
        return percent_decode(once.as_bytes())
            .decode_utf8()
            .map(Cow::into_owned)
            .map_err(|_| ());
    }
    Ok(once.into_owned())
}

/// Decodes every pair of `raw` with `decoding`, in linear time. Names are
/// unique: a repeated name is an error, since a signature over it would be
/// ambiguous.
pub fn decode(raw: &str, decoding: Decoding) -> Result<Vec<Param>, QueryError> {
    let pairs = split(raw);
    let mut params: Vec<Param> = Vec::with_capacity(pairs.len());
    let mut seen = HashSet::with_capacity(pairs.len());
    for (raw_name, raw_value) in pairs {
        let name =
            decode_one(raw_name, decoding).map_err(|()| QueryError::NotUtf8(shown(raw_name)))?;
        let value =
            decode_one(raw_value, decoding).map_err(|()| QueryError::NotUtf8(shown(&name)))?;
        if !seen.insert(name.clone()) {
            return Err(QueryError::Duplicate(shown(&name)));
        }
        params.push(Param { name, value });
    }
    Ok(params)
}

/// A parameter name as it may appear in a log line: at most 64 characters,
/// escaped (it comes from anyone, before authentication).
fn shown(name: &str) -> String {
    name.chars().take(64).flat_map(char::escape_debug).collect()
}

/// The value of `name`, if present.
pub fn get<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodings_differ_only_where_they_should() {
        let raw = "authToken=pqlrW7%2BPHC%2F1JE%3D&name=a+b%2520c&empty=&flag";
        let percent = decode(raw, Decoding::Percent).expect("valid");
        assert_eq!(get(&percent, "authToken"), Some("pqlrW7+PHC/1JE="));
        assert_eq!(
            get(&percent, "name"),
            Some("a+b%20c"),
            "a raw + is not a space"
        );
        assert_eq!(get(&percent, "empty"), Some(""));
        assert_eq!(get(&percent, "flag"), Some(""));
        let form = decode(raw, Decoding::Form).expect("valid");
        assert_eq!(get(&form, "name"), Some("a b%20c"));
        let twice = decode(raw, Decoding::Twice).expect("valid");
        assert_eq!(get(&twice, "name"), Some("a+b c"));
    }

    #[test]
    fn duplicates_and_invalid_utf8_are_refused() {
        assert_eq!(
            decode("a=1&b=2&a=3", Decoding::Percent),
            Err(QueryError::Duplicate("a".into()))
        );
        assert_eq!(
            decode("a=%FF", Decoding::Percent),
            Err(QueryError::NotUtf8("a".into()))
        );
        assert_eq!(split("&&a=1&&"), vec![("a", "1")]);
        assert_eq!(
            decode("a%0Ab=1&a%0Ab=2", Decoding::Percent),
            Err(QueryError::Duplicate("a\\nb".into())),
            "names are escaped for the log"
        );
    }
}
