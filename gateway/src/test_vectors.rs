//! The shared test vectors (`../shared/spec/vectors/koogallery.json`), for
//! unit tests. `KOOGALLERY_VECTORS` points elsewhere if needed.

pub(crate) fn vectors() -> serde_json::Value {
    let path = std::env::var("KOOGALLERY_VECTORS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/spec/vectors/koogallery.json"
        )
        .into()
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the shared vectors at {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}
