//! The admin API, called in process: each request goes through the API's
//! own router with the signed-in token as its bearer, so that it is
//! authorized, validated and audited exactly as it would be over HTTP.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tower::ServiceExt;

/// The largest API answer the console reads (a page of callbacks in full).
const MAX_ANSWER_BYTES: usize = 16 << 20;

#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// An API refusal, as the API put it (status, stable code, message).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl Refused {
    fn internal(message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            message: message.into(),
        }
    }
}

/// One path segment, percent-encoded.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    pub async fn get(&self, token: &str, path: &str) -> Result<Value, Refused> {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> Result<Value, Refused> {
        let body = (body.to_string().into_bytes(), "application/json");
        self.call(token, Method::POST, path, Some(body)).await
    }

    pub async fn post_wasm(
        &self,
        token: &str,
        path: &str,
        wasm: Vec<u8>,
    ) -> Result<Value, Refused> {
        self.call(token, Method::POST, path, Some((wasm, "application/wasm")))
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Result<Value, Refused> {
        self.call(token, Method::DELETE, path, None).await
    }

    /// Sends one request to `/admin/v1{path}`; an answer without a body
    /// (204) reads as `null`.
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Value, Refused> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/admin/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some((bytes, kind)) => {
                request = request.header(header::CONTENT_TYPE, kind);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|e| Refused::internal(e.to_string()))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| Refused::internal(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Refused::internal(e.to_string()))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| Refused::internal(e.to_string()))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let text = |key: &str| value["error"][key].as_str().unwrap_or_default().to_string();
        Err(Refused {
            status,
            code: text("code"),
            message: text("message"),
        })
    }
}
