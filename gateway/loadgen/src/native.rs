//! The native baseline: what a merchant would write by hand with the
//! protocol crate and axum. It verifies each V2 callback (timestamp window,
//! HMAC over the raw body), reads it, answers a create with the
//! deterministic instance id and encrypted credentials like the reference
//! plugin's, everything else with success, and signs the answer. It keeps
//! nothing: no nonces, no records, no fsync — the ceiling the gateway is
//! measured against.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use koogallery_contract::{AppInfo, Created, OperationOutput, OperationRequest};
use koogallery_protocol::{
    Answer, EncryptType, Encryption, Generation, ParseContext, ResultCode, VerifyPolicy,
    read_callback, signing, time,
};

struct Baseline {
    key: String,
    policy: VerifyPolicy,
}

/// `POST /callbacks/{merchant}`, answered as described in the module docs.
pub fn app(key: &str) -> Router {
    let baseline = Baseline {
        key: key.to_string(),
        policy: VerifyPolicy {
            window_ms: 60_000,
            v1_window_ms: 4 * 3_600_000,
            max_query_bytes: 8 << 10,
            max_query_params: 64,
        },
    };
    Router::new()
        .route("/callbacks/{merchant}", post(callback))
        .with_state(Arc::new(baseline))
}

async fn callback(
    State(baseline): State<Arc<Baseline>>,
    Path(merchant): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let context = ParseContext {
        merchant: &merchant,
        request_id: "native",
        access_key: "",
        encrypt_type: EncryptType::Aes256,
    };
    let read = read_callback(
        Generation::V2,
        query.as_deref().unwrap_or(""),
        &body,
        &[baseline.key.as_str()],
        time::now_ms(),
        &baseline.policy,
        &context,
    );
    let answer = match read {
        Ok((_, callback)) => {
            let encryption = Encryption {
                access_key: &baseline.key,
                encrypt_type: EncryptType::Aes256,
            };
            Answer::success(&output(&merchant, &callback.request), encryption)
        }
        Err(_) => Answer::new(ResultCode::AuthFailed, ""),
    };
    let bytes = answer.to_bytes();
    let sign = signing::body_sign(&baseline.key, &bytes);
    let mut response = (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        bytes,
    )
        .into_response();
    if let Ok(sign) = HeaderValue::from_str(&sign) {
        response
            .headers_mut()
            .insert(signing::BODY_SIGN_HEADER, sign);
    }
    response
}

/// What the reference plugin answers, computed in place.
fn output(merchant: &str, request: &OperationRequest) -> OperationOutput {
    let OperationRequest::Create(create) = request else {
        return OperationOutput::Done;
    };
    let digest = signing::digest_hex(format!("{merchant}\0{}", create.instance_id).as_bytes());
    let tenant = format!("t-{}", &digest[..12]);
    let base = format!("https://bench.example.com/{tenant}");
    OperationOutput::Created(Created {
        instance_id: create.instance_id.clone(),
        app_info: Some(AppInfo {
            admin_url: Some(format!("{base}/admin")),
            front_end_url: Some(base),
            user_name: Some(format!("admin@{tenant}")),
            password: Some(digest[12..28].to_string()),
            memo: Some("subscription".into()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::client::{Callback, Checked, Connection};

    const KEY: &str = "loadgen-test-key";

    async fn serve() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app(KEY)).await });
        format!("http://{address}/callbacks/bench")
    }

    /// The baseline answers a signed create with the instance id the
    /// gateway would assign, signed; the client's checks accept it, again
    /// on a retry, and refuse what a wrong key gets.
    #[tokio::test]
    async fn the_baseline_answers_like_the_gateway_and_the_client_checks_it() {
        let url = serve().await;
        let mut connection = Connection::open(&url, KEY).await.expect("connect");
        let create = Callback::create("bench", "CS0000000000001");
        for _ in 0..2 {
            let (_, checked) = connection
                .send(&create, Instant::now())
                .await
                .expect("sent");
            assert!(matches!(checked, Checked::Ok), "{checked:?}");
        }
        for callback in [
            Callback::renew("bench", "CS0000000000001", "CS0000000000002"),
            Callback::query("bench", "CS0000000000001"),
        ] {
            let (_, checked) = connection
                .send(&callback, Instant::now())
                .await
                .expect("sent");
            assert!(matches!(checked, Checked::Ok), "{checked:?}");
        }

        let mut wrong = Connection::open(&url, "another-key")
            .await
            .expect("connect");
        let (_, checked) = wrong.send(&create, Instant::now()).await.expect("sent");
        // Signed with the baseline's key, which the client does not hold.
        assert!(matches!(checked, Checked::Broken(_)), "{checked:?}");
    }

    /// A create whose answer carries another instance id is broken.
    #[tokio::test]
    async fn a_changed_instance_id_is_caught() {
        let url = serve().await;
        let mut connection = Connection::open(&url, KEY).await.expect("connect");
        let mut create = Callback::create("bench", "CS0000000000003");
        create.expect_instance = Some("not-the-id".into());
        let (_, checked) = connection
            .send(&create, Instant::now())
            .await
            .expect("sent");
        assert!(matches!(checked, Checked::Broken(ref why) if why.contains("instanceId")));
    }
}
