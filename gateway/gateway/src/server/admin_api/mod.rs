//! The admin API, `/admin/v1` on the admin listener (never the callback
//! port): merchants, their access keys, plugin versions (upload, validate,
//! activate, roll back), admin tokens and the audit log. JSON in and out;
//! every refusal is a 4xx whose body is `{"error": {"code", "message"}}`
//! with a stable `code`. The OpenAPI document is generated from the
//! handlers (utoipa) and served at `/admin/v1/openapi.json`.
//!
//! - [`auth`]: who is asking — the operator (token from configuration:
//!   everything) or a merchant (a token made through the API: its own
//!   merchant only). Tokens are stored hashed; a refusal changes nothing.
//! - [`callbacks`]: the callback log (search, one record), re-drive,
//!   parked operations and the shadow check of an inactive version.
//! - [`routes`]: the handlers of merchants, keys, plugins, tokens, audit. Every change is written with its audit
//!   entry in one transaction, then the merchant is reloaded and swapped in
//!   (`crate::registry`); changes are serialized, so the last one written is
//!   the one served.

mod auth;
mod callbacks;
mod error;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::Semaphore;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{BearerScheme, Principal, principal};
pub use error::ApiError;

use crate::config::Config;
use crate::server::App;

/// The prefix of every admin API route.
pub const PREFIX: &str = "/admin/v1";

/// What the admin API keeps besides the app.
pub struct AdminState {
    /// sha256 of the operator token, if one is configured.
    operator_token: Option<[u8; 32]>,
    /// The gateway's configuration (the bounds merchant settings are
    /// checked against).
    config: Config,
    /// One upload compiling at a time: a hostile module ties up one
    /// thread at most.
    compiles: Semaphore,
    /// How long an upload may take to validate and compile.
    compile_limit: Duration,
    /// The largest plugin accepted, in bytes.
    pub(crate) max_plugin_bytes: usize,
}

impl AdminState {
    pub fn new(config: &Config) -> AdminState {
        AdminState {
            operator_token: config
                .admin
                .token
                .as_ref()
                .map(|token| auth::digest(&token.0)),
            config: config.clone(),
            compiles: Semaphore::new(1),
            compile_limit: Duration::from_secs(config.load_timeout_secs),
            max_plugin_bytes: crate::config::lower::max_component_bytes(&config.sandbox),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "KooGallery gateway admin API",
        version = "1",
        description = "Merchants, access keys, plugin versions, admin tokens, the audit log, \
                       the callback log, re-drives and shadow checks. \
                       Authenticate with `Authorization: Bearer <token>`: the operator token \
                       (everything) or a merchant token (its own merchant only)."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The admin API's routes and its OpenAPI document, built together so that
/// every route is documented.
pub fn router_and_document() -> (OpenApiRouter<Arc<App>>, utoipa::openapi::OpenApi) {
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::list_merchants, routes::create_merchant))
        .routes(routes!(routes::show_merchant, routes::update_merchant))
        .routes(routes!(routes::add_key))
        .routes(routes!(routes::retire_key))
        .routes(routes!(routes::list_plugins, routes::upload_plugin))
        .routes(routes!(routes::show_plugin, routes::delete_plugin))
        .routes(routes!(routes::activate_plugin))
        .routes(routes!(routes::rollback_plugin))
        .routes(routes!(routes::create_token))
        .routes(routes!(routes::list_tokens))
        .routes(routes!(routes::revoke_token))
        .routes(routes!(routes::merchant_audit))
        .routes(routes!(routes::audit))
        .routes(routes!(callbacks::list_callbacks))
        .routes(routes!(callbacks::show_callback))
        .routes(routes!(callbacks::redrive))
        .routes(routes!(callbacks::list_parked))
        .routes(routes!(callbacks::report))
        .routes(routes!(callbacks::shadow))
        .split_for_parts();
    (OpenApiRouter::from(router), document)
}

/// The admin API router (mounted on the admin listener).
pub fn router(state: Arc<App>) -> Router {
    let (routes, document) = router_and_document();
    let document = Arc::new(document);
    let max_body = state.admin_api.max_plugin_bytes.saturating_add(1);
    Router::from(routes)
        .route(
            &format!("{PREFIX}/openapi.json"),
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json((*document).clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such admin API route") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}
