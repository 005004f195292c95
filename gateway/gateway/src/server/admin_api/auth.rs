//! Who is asking: `Authorization: Bearer <token>`.
//!
//! - The **operator** token comes from the configuration
//!   (`GATEWAY_ADMIN_TOKEN` or `[admin] token_file`); it may do everything.
//!   Compared by its sha256, in constant time.
//! - A **merchant** token is made through the API (shown once), stored as
//!   its sha256 and found by it; it reaches its own merchant only. Asking
//!   about another merchant is refused with 403 whether that merchant
//!   exists or not.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::server::App;

/// The sha256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Merchant {
        merchant_id: String,
        token_id: String,
    },
}

impl Principal {
    /// Who it is, as the audit log records it (never the secret).
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".into(),
            Principal::Merchant { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// The merchant a merchant token belongs to (`None`: the operator).
    pub fn merchant(&self) -> Option<&str> {
        match self {
            Principal::Operator => None,
            Principal::Merchant { merchant_id, .. } => Some(merchant_id),
        }
    }

    /// Refuses unless the caller may act on `merchant_id`.
    pub fn may(&self, merchant_id: &str) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Merchant {
                merchant_id: own, ..
            } if own == merchant_id => Ok(()),
            Principal::Merchant { .. } => Err(ApiError::forbidden(
                "this token belongs to another merchant",
            )),
        }
    }

    /// Refuses unless the caller is the operator.
    pub fn operator_only(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Merchant { .. } => {
                Err(ApiError::forbidden("only the operator token may do this"))
            }
        }
    }
}

impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        principal(app, token).await
    }
}

/// Who `token` is: the operator, a merchant, or nobody (401). Used by the
/// API's extractor and by the console's sign-in.
pub async fn principal(app: &App, token: &str) -> Result<Principal, ApiError> {
    let hash = digest(token);
    if let Some(operator) = &app.admin_api.operator_token
        && constant_time_eq(operator, &hash)
    {
        return Ok(Principal::Operator);
    }
    match app
        .registry()
        .store()
        .token_by_hash(&hex::encode(hash))
        .await?
    {
        Some(row) => match row.merchant_id {
            Some(merchant_id) => Ok(Principal::Merchant {
                merchant_id,
                token_id: row.token_id,
            }),
            None => Ok(Principal::Operator),
        },
        None => Err(ApiError::unauthorized()),
    }
}

/// Declares the bearer scheme in the OpenAPI document.
pub struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
