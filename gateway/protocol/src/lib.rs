//! The Huawei Cloud KooGallery (云商店) production-interface protocol, as
//! pure functions: no I/O, no async runtime, no sandbox, no database. Anyone
//! writing a native adapter can use it on its own.
//!
//! - [`inbound`] — the whole inbound path: [`detect_generation`], then
//!   [`read_callback`] (verify the signature over the raw bytes, then parse).
//! - [`signing`] — V2 `signature`, V1 `authToken`, `Body-Sign`, timestamps.
//! - [`query`] — raw query strings and their decodings.
//! - [`fields`] and [`callback`] — a verified callback's fields to the
//!   contract's typed request ([`koogallery_contract::OperationRequest`]),
//!   one reader per activity family.
//! - [`ids`] — the identifiers the gateway derives and keeps forever
//!   (instance id, idempotency key, business keys, fingerprint, stored kind
//!   names). Frozen; each has golden tests.
//! - [`result_code`] — the six-digit result codes, which ones are final, and
//!   the one mapping from a plugin's error to a code.
//! - [`answer`] — the JSON bodies the marketplace reads, credentials
//!   encrypted by [`credentials`] (SHA1PRNG-keyed AES).
//! - [`time`] — the marketplace's time formats.
//! - [`marketplace`] — signing callbacks as the marketplace does (the
//!   simulator, the tests, the benchmarks).
//!
//! ```ignore
//! let generation = koogallery_protocol::detect_generation(is_get, raw_query);
//! let (verified, callback) = koogallery_protocol::read_callback(
//!     generation, raw_query, &body, &access_keys, now_ms, &policy, &ctx)?;
//! // callback.request is the typed request; answer with Answer::success(..)
//! // and sign the exact bytes with signing::body_sign.
//! ```

pub mod access_key;
pub mod answer;
pub mod callback;
pub mod credentials;
pub mod fields;
pub mod ids;
pub mod inbound;
pub mod marketplace;
pub mod query;
pub mod result_code;
pub mod signing;
pub mod time;

pub use access_key::AccessKey;
pub use answer::{Answer, Encryption};
pub use callback::{Activity, Callback, Generation, ParseContext};
pub use credentials::EncryptType;
pub use fields::{FieldError, Fields};
pub use inbound::{
    MAX_NONCE_CHARS, Rejection, Verified, VerifyPolicy, detect_generation, read_callback, verify,
};
pub use result_code::{CodedResult, Disposition, ResultCode};
pub use signing::AuthError;

#[cfg(test)]
mod test_vectors;
