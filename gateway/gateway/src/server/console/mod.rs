//! The merchant console: web pages on the admin listener (`/console`) for
//! merchants and operators — what is live, versions (upload, activate, roll
//! back, shadow checks), callbacks (search, a record in full, re-drive) and
//! settings (keys, tokens, grants).
//!
//! The console is a client of the admin API, in process: every page reads
//! and every action writes by sending the API request itself, with the
//! signed-in token as its bearer ([`Api`]). So the console can do exactly
//! what the token may do through the API, no more, and it has no business
//! logic of its own to keep in step.
//!
//! Server-rendered HTML (`maud`, escaped by construction), one stylesheet
//! and one small script built into the binary; every page works without
//! the script (it adds drag and drop, progress and a chart's tooltips).
//! Sessions live in a cookie sealed under a key derived from the master key
//! (every replica opens it; nothing is kept server-side): `HttpOnly`,
//! `SameSite=Strict`, `Secure` behind TLS, eight hours. Every change is a
//! POST carrying the session's CSRF token. A strict Content-Security-Policy
//! allows this origin's stylesheet and script only.

mod api;
mod i18n;
mod layout;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::App;
use crate::keys::Keys;
use crate::sealing::Sealer;

pub use session::SESSION_COOKIE;

/// What the console needs besides the app: the API it is a client of, and
/// the sealer of its session cookies.
#[derive(Clone)]
pub struct Console {
    app: Arc<App>,
    api: api::Api,
    sessions: Arc<Sealer>,
}

impl Console {
    /// The key sessions are sealed under, derived from the master key.
    pub fn session_key(keys: &Keys) -> [u8; 32] {
        keys.derive("console-sessions")
    }
}

/// The console's router, mounted on the admin listener.
pub fn router(app: Arc<App>, api: Router, session_key: [u8; 32]) -> Router {
    let upload_limit = app.admin_api.max_plugin_bytes + (1 << 20);
    let console = Console {
        app,
        api: api::Api::new(api),
        sessions: Arc::new(Sealer::new(&session_key)),
    };
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", axum::routing::post(pages::logout))
        .route("/console/lang", get(pages::switch_language))
        .route("/console/merchants", get(pages::merchants))
        .route("/console/m/{id}", get(pages::overview))
        .route(
            "/console/m/{id}/versions",
            get(pages::versions).post(pages::upload),
        )
        .route(
            "/console/m/{id}/versions/{version}/activate",
            get(pages::confirm_activate).post(pages::activate),
        )
        .route(
            "/console/m/{id}/rollback",
            get(pages::confirm_rollback).post(pages::rollback),
        )
        .route(
            "/console/m/{id}/versions/{version}/shadow",
            axum::routing::post(pages::shadow),
        )
        .route("/console/m/{id}/callbacks", get(pages::callbacks))
        .route("/console/m/{id}/callbacks/{seq}", get(pages::callback))
        .route(
            "/console/m/{id}/callbacks/{seq}/redrive",
            get(pages::confirm_redrive).post(pages::redrive),
        )
        .route("/console/m/{id}/settings", get(pages::settings))
        .route("/console/m/{id}/keys", axum::routing::post(pages::add_key))
        .route(
            "/console/m/{id}/keys/{key_id}/retire",
            get(pages::confirm_retire).post(pages::retire_key),
        )
        .route(
            "/console/m/{id}/tokens",
            axum::routing::post(pages::create_token),
        )
        .route(
            "/console/m/{id}/tokens/{token_id}/revoke",
            get(pages::confirm_revoke).post(pages::revoke_token),
        )
        .route("/console/assets/{file}", get(asset))
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// Headers on every console answer: nothing from elsewhere may run, frame
/// or be framed; nothing is cached or sent on as a referrer.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (axum::http::StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
