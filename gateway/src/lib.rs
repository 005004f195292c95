//! The KooGallery merchant adapter gateway.
//!
//! The marketplace calls a merchant's production interface for every
//! purchase, renewal, expiry, release and upgrade; the gateway answers for the
//! merchant by running the merchant's sandboxed WebAssembly plugin.
//!
//! - [`contract`] — the WIT contract seen from the host: operations, typed
//!   requests and outputs.
//! - [`runtime`] — the wasmtime sandbox: engine, limits, plugin cache,
//!   one fresh instance per call.
//! - [`result_code`] — the marketplace's result codes and the one mapping
//!   from a plugin call's outcome to a code.
//! - [`protocol`] — the marketplace's wire protocol: signatures, fields,
//!   credential encryption, answers. Pure functions.
//! - [`server`] — the served gateway: router, one callback's flow, metrics.
//! - [`operations`] — idempotency: claim, single-flight, replay, takeover,
//!   the completer and the reaper.
//! - [`store`] — the durable store (SQLite): instance mapping, operation
//!   records, nonces. The only module that speaks SQL.
//! - [`config`] — the `gateway serve` configuration.
//! - [`ids`] — identifiers the gateway assigns (instance ids).
//! - [`request_json`] — typed requests from partial JSON, with defaults.
//! - [`cli`] — the `gateway` command line.
//!
//! ARCHITECTURE.md at the repository root describes how these fit together.

pub mod cli;
pub mod config;
pub mod contract;
pub mod ids;
pub mod operations;
pub mod protocol;
pub mod request_json;
pub mod result_code;
pub mod runtime;
pub mod server;
pub mod store;

#[cfg(test)]
mod test_vectors;
