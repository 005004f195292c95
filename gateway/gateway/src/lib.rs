//! The KooGallery merchant adapter gateway: everything that turns the pure
//! protocol, the sandbox and the store into a served endpoint.
//!
//! - [`config`] — the `gateway serve` configuration: TOML, defaults (their
//!   one home), environment overrides, validation, and [`config::lower`],
//!   the one place each layer's settings are built from it.
//! - [`merchants`] — the merchants served right now: keys, plugin version,
//!   limits, answer options, and the decoy for unknown ids; swapped one
//!   merchant at a time.
//! - [`plugins`] — their compiled plugins, by content hash: loaded when
//!   first needed, evicted least recently used, reloaded from artifacts.
//! - [`registry`] — the store's merchants (bootstrapped from the
//!   configuration file) turned into served ones, at start and after every
//!   administrative change.
//! - [`callback_log`] — one record per callback answered, written behind
//!   the answer (search, re-drive and shadow checks read it).
//! - [`capabilities`] — what plugins may use besides computing: outbound
//!   HTTP grants, the key-value store, secrets (sealed at rest).
//! - [`executor`] — runs a merchant's plugin and turns the outcome into an
//!   unsigned answer (the one outcome → result code mapping);
//!   [`plugin_tasks`] — where those calls run (the main runtime).
//! - [`operations`] — idempotency: the recorded operation, the hot cache,
//!   single-flight, claim → plugin → fenced completion, and upkeep.
//! - [`server`] — the HTTP side: the router, one callback's flow, serving
//!   and draining.
//! - [`metrics`] — the Prometheus registry.
//! - [`keys`] — the master key and the keys derived from it; [`sealing`]
//!   seals customer data at rest with one of them.
//! - [`request_json`] — typed requests from partial JSON, with defaults
//!   (`plugin invoke`, tests, benches).
//!
//! Below it: `koogallery_protocol` (wire protocol, pure), `gateway_sandbox`
//! (the only crate with wasmtime), `gateway_store` (the only crate with an
//! SQL driver), `koogallery_contract` (the plugin contract's data). ARCHITECTURE.md
//! at the repository root describes how these fit together.

pub mod callback_log;
pub mod capabilities;
pub mod config;
pub mod executor;
pub mod keys;
pub mod merchants;
pub mod metrics;
pub mod operations;
pub mod plugin_tasks;
pub mod plugins;
pub mod registry;
pub mod request_json;
pub mod sealing;
pub mod server;
