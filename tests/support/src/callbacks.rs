//! Signed marketplace callbacks over real HTTP, for the tests that drive a
//! `gateway serve` process.

use koogallery_protocol::{marketplace, time::now_ms};
use serde_json::Value;

/// A signed V2 request to `merchant` at `base`: its URL (with a fresh nonce
/// and the current timestamp) and its body.
pub fn signed_v2(base: &str, merchant: &str, key: &str, body: &Value) -> (String, Vec<u8>) {
    signed_v2_at(base, merchant, key, body, now_ms())
}

/// The same, signed at `timestamp_ms`.
pub fn signed_v2_at(
    base: &str,
    merchant: &str,
    key: &str,
    body: &Value,
    timestamp_ms: i64,
) -> (String, Vec<u8>) {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let query = marketplace::v2_query(key, &bytes, timestamp_ms, &marketplace::random_nonce());
    (format!("{base}/callbacks/{merchant}?{query}"), bytes)
}

/// Posts a signed request and reads the JSON answer.
pub async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Value {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let bytes = response.bytes().await.expect("the body");
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

/// The `resultCode` of an answer.
pub fn code(answer: &Value) -> &str {
    answer["resultCode"].as_str().unwrap_or("<none>")
}

/// Sends a create again and again (as the marketplace retries) until it is
/// answered 000000, and returns that answer: only "in progress" (000004)
/// may come before it, for up to 20 seconds (a dead worker's lease running
/// out, then a takeover).
pub async fn until_taken_over(mut send: impl AsyncFnMut() -> Value) -> Value {
    let started = std::time::Instant::now();
    loop {
        let answer = send().await;
        if code(&answer) == "000000" {
            return answer;
        }
        assert_eq!(
            code(&answer),
            "000004",
            "only 'in progress' before: {answer}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no takeover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
