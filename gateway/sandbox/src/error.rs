//! The typed errors of the runtime: why a plugin could not be loaded, and why
//! a call did not produce an answer from the plugin.

use serde::Serialize;

/// Why a component was refused. Every message tells a plugin author what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the component is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic number)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin for the \
         `wasm32-wasip2` target (`cargo build --release --target wasm32-wasip2`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "the component does not export `{expected}@0.1.x`, so it does not target this \
         gateway's world (`koogallery:plugin/plugin`); it exports: {found}"
    )]
    WrongWorld {
        expected: &'static str,
        found: String,
    },
    #[error(
        "the component targets contract version {found} of `koogallery:plugin`; this gateway \
         supports 0.1.x"
    )]
    UnsupportedVersion { found: String },
    #[error(
        "the component imports what the gateway does not grant: {0}; plugins may use only \
         logging, configuration, the key-value store, outbound HTTP (wasi:http, when \
         granted), clocks, randomness and stdio"
    )]
    ForbiddenImports(String),
    /// The component imports `wasi:http` and its merchant has no grant.
    #[error(
        "the plugin imports wasi:http/outgoing-handler, but merchant {merchant} has no \
         outbound HTTP grant; the operator adds the hosts it calls to the merchant's \
         allowed_outbound_hosts (for example [\"https://api.example.com\"])"
    )]
    NeedsOutboundGrant { merchant: String },
    #[error("the component does not link against the gateway's world: {0}")]
    Link(String),
    #[error("the component needs more than the sandbox allows: {0}")]
    ExceedsSandbox(String),
    /// The caller could not supply the component's bytes (a store that is
    /// down, a module missing from it): nothing is known about the
    /// component itself, so a later load may succeed.
    #[error("the component's bytes could not be read: {0}")]
    Source(String),
}

/// Why a call produced no answer from the plugin. All are retryable from the
/// marketplace's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallError {
    /// No sandbox slot became free within the call's deadline.
    #[error("the gateway is overloaded: no sandbox was free within {waited_ms} ms")]
    Overloaded { waited_ms: u64 },
    /// The merchant's own calls held all of its share of sandboxes for the
    /// call's whole deadline.
    #[error("the merchant's {max_instances} concurrent calls were all busy for {waited_ms} ms")]
    MerchantBusy { waited_ms: u64, max_instances: u32 },
    /// The call ran past its deadline and was stopped.
    #[error(
        "the plugin exceeded its {deadline_ms} ms deadline{}",
        if *blocked_in_host { " while blocked in a host call" } else { "" }
    )]
    Deadline {
        deadline_ms: u64,
        blocked_in_host: bool,
    },
    /// The plugin tried to grow its memory past its limit.
    #[error(
        "the plugin exceeded its memory limit of {limit_bytes} bytes (it asked for {requested_bytes})"
    )]
    MemoryLimit {
        limit_bytes: usize,
        requested_bytes: usize,
    },
    /// The plugin tried to grow its memory while its merchant's running
    /// calls (`merchant`) or all running calls (`gateway`) held their budget.
    #[error("the {scope}'s memory budget of {budget_bytes} bytes is in use by running calls")]
    MemoryBudget {
        scope: &'static str,
        budget_bytes: usize,
    },
    /// The plugin trapped: a panic, `unreachable`, a stack overflow, an
    /// out-of-bounds access…
    #[error("the plugin trapped: {trap}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Trap {
        trap: String,
        detail: Option<String>,
    },
    /// The plugin answered with more data than an answer may carry.
    #[error("the plugin's answer is {bytes} bytes, more than the {limit} allowed")]
    OutputTooLarge { bytes: usize, limit: usize },
    /// A failure of the host itself (instantiation, a host function).
    #[error("the sandbox failed: {0}")]
    Host(String),
}

impl CallError {
    /// A short, fixed name of the failure kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Overloaded { .. } => "overloaded",
            CallError::MerchantBusy { .. } => "merchant_busy",
            CallError::Deadline { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory_limit",
            CallError::MemoryBudget { .. } => "memory_budget",
            CallError::Trap { .. } => "trap",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::Host(_) => "host",
        }
    }

    /// A message fit for the marketplace's `resultMsg`: what kind of failure,
    /// never the plugin's internals (a trap's detail stays in the log).
    pub fn public_message(&self) -> String {
        match self {
            CallError::Overloaded { .. } | CallError::MerchantBusy { .. } => {
                "gateway busy, please retry".into()
            }
            CallError::Deadline { .. } => "plugin deadline exceeded".into(),
            CallError::MemoryLimit { .. } => "plugin memory limit exceeded".into(),
            CallError::MemoryBudget { .. } => "gateway busy, please retry".into(),
            CallError::Trap { .. } => "plugin failed".into(),
            CallError::OutputTooLarge { .. } => "plugin answer too large".into(),
            CallError::Host(_) => "internal service error".into(),
        }
    }
}

/// The runtime could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid runtime settings: {0}")]
    Settings(String),
    #[error("creating the wasm engine: {0}")]
    Engine(String),
    #[error("artifact directory {path}: {source}")]
    ArtifactDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
