//! The admin listener's router: what operators see and never the
//! marketplace. Bind it to loopback or a private network (`[admin] listen`).
//!
//! - `GET /metrics` — the Prometheus text exposition;
//! - `GET /status` — JSON: readiness, the store's health, and the merchants
//!   that cannot serve with the reason;
//! - `/admin/v1/…` — the admin API ([`super::admin_api`]);
//! - `/console` — the merchant console ([`super::console`]), a client of
//!   that API.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::App;

pub fn router(state: Arc<App>) -> Router {
    // Built once: served here, and called in process by the console.
    let api = super::admin_api::router(state.clone());
    let console = super::console::router(state.clone(), api.clone(), state.console_key);
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .with_state(state)
        .merge(console)
        .merge(api)
}

async fn metrics_text(State(app): State<Arc<App>>) -> impl IntoResponse {
    let text = app
        .metrics
        .render(app.runtime.stats(), app.operations.cached_results().await);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn status(State(app): State<Arc<App>>) -> impl IntoResponse {
    let store = app.store_status().await;
    let unavailable: serde_json::Map<String, serde_json::Value> = app
        .merchants
        .unavailable()
        .into_iter()
        .map(|(id, why)| (id, json!(why)))
        .collect();
    axum::Json(json!({
        "ready": app.ready.load(std::sync::atomic::Ordering::SeqCst) && store.is_ok(),
        "store": match &store { Ok(()) => json!("ok"), Err(why) => json!(why) },
        "merchants": app.merchants.ids().len(),
        "unavailable_merchants": unavailable,
    }))
}
