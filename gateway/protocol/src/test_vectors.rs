//! The protocol's test vectors (`vectors/koogallery.json` in this crate,
//! copied from the research notes: facts, not fixtures), for unit tests.

pub(crate) fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../vectors/koogallery.json"))
        .unwrap_or_else(|e| panic!("vectors/koogallery.json is not JSON: {e}"))
}
