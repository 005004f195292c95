//! Console sessions: who is signed in, sealed into a cookie.
//!
//! The cookie holds the token (the API needs it for every call), the CSRF
//! token of the session and when it ends, sealed with AES-256-GCM under the
//! console's own derived key: unreadable and unforgeable for the browser,
//! and readable by every replica that shares the master key. A revoked
//! token stops working at once (every page calls the API with it).

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::Console;
use super::i18n::Lang;
use super::layout::Ctx;
use crate::server::admin_api::Principal;

pub const SESSION_COOKIE: &str = "gw_console";
pub const LANG_COOKIE: &str = "gw_console_lang";
/// How long a sign-in lasts.
const SESSION_MS: i64 = 8 * 3600 * 1000;

/// A signed-in user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// The token, for the API calls made on the user's behalf.
    pub token: String,
    /// `None`: the operator; else the merchant the token belongs to.
    pub merchant: Option<String>,
    /// Carried by every form that changes something.
    pub csrf: String,
    pub expires_ms: i64,
}

impl Session {
    pub fn new(token: String, principal: &Principal) -> Session {
        Session {
            token,
            merchant: principal.merchant().map(str::to_string),
            csrf: hex::encode(rand::random::<[u8; 16]>()),
            expires_ms: crate::registry::now_ms() + SESSION_MS,
        }
    }

    pub fn is_operator(&self) -> bool {
        self.merchant.is_none()
    }

    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The `Set-Cookie` value that carries this session.
    pub fn cookie(&self, console: &Console, secure: bool) -> HeaderValue {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let sealed = console.sessions.seal(&json);
        cookie_value(
            &format!("{SESSION_COOKIE}={sealed}; Max-Age={}", SESSION_MS / 1000),
            secure,
        )
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn cleared_cookie(secure: bool) -> HeaderValue {
    cookie_value(&format!("{SESSION_COOKIE}=; Max-Age=0"), secure)
}

/// The `Set-Cookie` value that keeps a language choice (a year).
pub fn lang_cookie(lang: Lang, secure: bool) -> HeaderValue {
    cookie_value(
        &format!("{LANG_COOKIE}={}; Max-Age=31536000", lang.code()),
        secure,
    )
}

fn cookie_value(start: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{start}; Path=/console; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the browser reached us over TLS (through a proxy that says so:
/// the admin listener itself speaks plain HTTP).
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A cookie's value from the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// No session (or an expired or altered one): to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        let mut response = Redirect::to("/console/login").into_response();
        response
            .headers_mut()
            .append(SET_COOKIE, cleared_cookie(false));
        response
    }
}

/// The session the request's cookie carries, if it opens and is current.
pub fn read(console: &Console, headers: &HeaderMap) -> Option<Session> {
    let sealed = cookie(headers, SESSION_COOKIE)?;
    let json = console.sessions.open(sealed).ok()?;
    let session: Session = serde_json::from_slice(&json).ok()?;
    (session.expires_ms > crate::registry::now_ms()).then_some(session)
}

impl FromRequestParts<Console> for Session {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, SignIn> {
        read(console, &parts.headers).ok_or(SignIn)
    }
}

/// What every signed-in page starts from: who, in which language, and the
/// page's own path.
pub struct Visit {
    pub session: Session,
    pub lang: Lang,
    pub here: String,
}

impl Visit {
    /// The page context, for `merchant`'s pages or none.
    pub fn ctx<'a>(&'a self, merchant: Option<&'a str>) -> Ctx<'a> {
        Ctx {
            lang: self.lang,
            session: Some(&self.session),
            merchant,
            here: &self.here,
        }
    }
}

impl FromRequestParts<Console> for Visit {
    type Rejection = SignIn;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, SignIn> {
        let session = read(console, &parts.headers).ok_or(SignIn)?;
        let Ok(lang) = Lang::from_request_parts(parts, console).await;
        Ok(Visit {
            session,
            lang,
            here: parts.uri.path().to_string(),
        })
    }
}
