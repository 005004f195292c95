//! The sandbox: loads merchants' plugin components once, then runs each
//! operation in a fresh, limited instance. The only crate that depends on
//! wasmtime; it speaks the contract in `koogallery_contract`'s plain types
//! and converts to its generated bindings privately (`bindings`).
//!
//! - One [`Runtime`] per process owns the wasmtime `Engine` (pooling
//!   allocator, epoch interruption), the `Linker` (WASI without ambient
//!   authority + the contract's host imports), a semaphore in front of the
//!   pool, and the cache of loaded plugins (in memory by content hash; on disk
//!   as precompiled artifacts).
//! - [`Runtime::load`] validates and compiles a component once; it is the only
//!   place that compiles. Loading the same bytes again is a cache hit.
//! - [`Runtime::invoke`] runs one operation: wait for a sandbox slot, fresh
//!   `Store` with the merchant's limits, instantiate from the cached
//!   `InstancePre`, call, drop. It never fails as a Rust error: every way a
//!   call can go wrong is an [`Outcome::Failed`] with a typed [`CallError`].

mod artifacts;
mod bindings;
mod engine;
mod error;
mod host;
mod kv;
pub mod limits;
mod outbound;
mod output;
mod shares;
mod threads;
mod validate;
mod wasm_cpu;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

pub use artifacts::ArtifactSettings;
pub use engine::{EngineSettings, PagemapScan, SlotReset};
pub use error::{CallError, LoadError, RuntimeError};
pub use gateway_egress::EgressPolicy;
pub use host::{PluginConfig, PluginLogRecord};
pub use kv::{KeyValue, KvError, KvQuota, KvScope, MAX_LIST_KEYS};
pub use limits::CallLimits;
pub use output::Captured;
pub use shares::{MerchantShare, ShareLimits};
pub use threads::ThreadSettings;
pub use validate::ComponentReport;

use artifacts::ArtifactStore;
use bindings::Functions;
use host::HostState;
use koogallery_contract::{OperationOutput, OperationRequest, PluginError};
use wasm_cpu::WasmCpu;

/// The loaded plugins, least recently used evicted first, bounded by count
/// and by code bytes: each weighs its code but at least an even share of
/// the byte bound, so that the count bound holds too.
fn plugin_cache(max_count: u64, max_bytes: u64) -> moka::sync::Cache<String, Arc<LoadedPlugin>> {
    let min_weight = max_bytes / max_count.max(1);
    moka::sync::Cache::builder()
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .max_capacity(max_bytes)
        .weigher(move |_, plugin: &Arc<LoadedPlugin>| {
            let weight = (plugin.code_bytes as u64).max(min_weight);
            u32::try_from(weight).unwrap_or(u32::MAX)
        })
        .build()
}

/// How the runtime is set up (built from the gateway's configuration; the
/// defaults live there).
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    pub engine: EngineSettings,
    /// Where precompiled artifacts are kept across restarts, and the key
    /// that authenticates them; `None` keeps them in memory only.
    pub artifacts: Option<ArtifactSettings>,
    /// The largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Loaded plugins kept in memory (each holds its compiled code)…
    pub max_cached_plugins: u64,
    /// …and the bytes of compiled code they may hold together. The least
    /// recently used plugin is evicted past either bound; reloading it from
    /// its artifact on disk takes a millisecond or two.
    pub max_cached_plugin_bytes: u64,
    /// Linear memory all running calls may hold together, in bytes.
    pub memory_budget_bytes: usize,
    /// The threads plugin calls run on.
    pub threads: ThreadSettings,
}

/// A validated, compiled plugin, ready to be instantiated many times.
pub struct LoadedPlugin {
    pre: InstancePre<HostState>,
    /// Its provisioning functions, found at load.
    functions: Functions,
    report: ComponentReport,
    /// The size of its compiled code (its weight in the cache).
    code_bytes: usize,
}

impl LoadedPlugin {
    pub fn report(&self) -> &ComponentReport {
        &self.report
    }

    pub fn code_bytes(&self) -> usize {
        self.code_bytes
    }
}

/// Who a call is for: the merchant's label (in logs, and the scope of its
/// key-value store), configuration values and secrets (visible to the
/// plugin), the call's limits, the merchant's share of the sandbox (the same
/// `Arc` for all its calls) and its capabilities.
#[derive(Clone, Debug)]
pub struct MerchantContext {
    pub label: Arc<str>,
    pub config: Arc<PluginConfig>,
    pub limits: CallLimits,
    pub share: Arc<MerchantShare>,
    /// Its outbound HTTP grant; `None`: every request is denied.
    pub egress: Option<Arc<EgressPolicy>>,
    /// Its key-value store; `None`: every operation reports `unavailable`.
    pub kv: Option<KvScope>,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The plugin answered with success.
    Answered(OperationOutput),
    /// The plugin declined with one of the contract's errors.
    Declined(PluginError),
    /// The call produced no answer from the plugin.
    Failed(CallError),
}

/// Everything known about one call.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub outcome: Outcome,
    pub duration: Duration,
    /// The most linear memory the sandbox held at once.
    pub peak_memory_bytes: usize,
    pub logs: Vec<PluginLogRecord>,
    pub dropped_log_records: usize,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled by this process (artifact and memory misses).
    pub compilations: u64,
    /// Components loaded from a precompiled artifact on disk.
    pub artifact_hits: u64,
    /// Loaded plugins in memory right now, and their compiled code.
    pub cached_plugins: u64,
    pub cached_plugin_bytes: u64,
    /// Sandboxes in use right now.
    pub busy_sandboxes: usize,
    /// Linear memory running calls hold right now, in bytes.
    pub memory_in_use: usize,
    /// How pool slots are reset (decided at start).
    pub slot_reset: SlotReset,
}

/// The plugin runtime. Share it behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    invoker: Invoker,
    /// None: calls run on the caller's runtime (`ThreadSettings::threads` 0).
    threads: Option<threads::PluginThreads>,
    max_permits: usize,
    plugins: moka::sync::Cache<String, Arc<LoadedPlugin>>,
    artifacts: ArtifactStore,
    settings: RuntimeSettings,
    slot_reset: SlotReset,
    compilations: AtomicU64,
    artifact_hits: AtomicU64,
}

impl Runtime {
    pub fn new(settings: RuntimeSettings) -> Result<Self, RuntimeError> {
        let (engine, slot_reset) = engine::build_engine(&settings.engine)?;
        engine::spawn_epoch_ticker(&engine, engine::EPOCH_TICK)
            .map_err(|e| RuntimeError::Engine(format!("starting the epoch ticker: {e}")))?;
        let linker = build_linker(&engine)?;
        let artifacts = ArtifactStore::new(settings.artifacts.clone(), &engine)?;
        let max_permits = settings.engine.max_instances as usize;
        let threads = threads::PluginThreads::start(settings.threads)
            .map_err(|e| RuntimeError::Engine(format!("starting the plugin threads: {e}")))?;
        let invoker = Invoker {
            engine: engine.clone(),
            permits: Arc::new(Semaphore::new(max_permits)),
            memory: Arc::new(shares::MemoryAccount::new(
                "gateway",
                settings.memory_budget_bytes,
            )),
            max_memory_bytes: settings.engine.max_memory_bytes,
        };
        Ok(Runtime {
            engine,
            linker,
            invoker,
            threads,
            max_permits,
            plugins: plugin_cache(
                settings.max_cached_plugins,
                settings.max_cached_plugin_bytes,
            ),
            artifacts,
            settings,
            slot_reset,
            compilations: AtomicU64::new(0),
            artifact_hits: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> RuntimeStats {
        // Apply pending evictions, so that the counts are exact.
        self.plugins.run_pending_tasks();
        RuntimeStats {
            cached_plugins: self.plugins.entry_count(),
            cached_plugin_bytes: self.plugins.iter().map(|(_, p)| p.code_bytes as u64).sum(),
            compilations: self.compilations.load(Ordering::Relaxed),
            artifact_hits: self.artifact_hits.load(Ordering::Relaxed),
            busy_sandboxes: self.max_permits - self.invoker.permits.available_permits(),
            memory_in_use: self.invoker.memory.used(),
            slot_reset: self.slot_reset,
        }
    }

    /// Validates and loads a component. Compiles only on the first load of
    /// these bytes (per process, and per artifact directory); this blocks for
    /// tens of milliseconds then, so async callers use `spawn_blocking`.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<LoadedPlugin>, LoadError> {
        validate::precheck(wasm, self.settings.max_component_bytes)?;
        let hash = hex::encode(Sha256::digest(wasm));
        self.cache_or_load(&hash, || {
            self.load_uncached(&hash, wasm.len(), || Ok(wasm.to_vec()))
        })
    }

    /// The cached plugin `hash`, or `load`'s (cached). Concurrent callers
    /// share one load. After an insertion, evictions are applied at once,
    /// so that the cache's bounds hold at every moment rather than
    /// eventually (a miss is rare and costs far more than that).
    fn cache_or_load(
        &self,
        hash: &str,
        load: impl FnOnce() -> Result<Arc<LoadedPlugin>, LoadError>,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let mut inserted = false;
        let loaded = self
            .plugins
            .try_get_with(hash.to_string(), || {
                inserted = true;
                load()
            })
            .map_err(|e| (*e).clone());
        if inserted {
            self.plugins.run_pending_tasks();
        }
        loaded
    }

    /// The loaded plugin with content hash `hash`, if it is in memory now.
    /// Cheap: the callback path asks this first.
    pub fn cached(&self, hash: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.get(hash)
    }

    /// Loads the component with content hash `hash` (of `size` bytes),
    /// known to have been accepted before: from memory, else from its
    /// precompiled artifact, else from the bytes `fetch` returns (checked
    /// against `hash`, validated and compiled). Concurrent loads of one hash
    /// share one load. Blocking, like [`Runtime::load`].
    pub fn load_stored(
        &self,
        hash: &str,
        size: usize,
        fetch: impl FnOnce() -> Result<Vec<u8>, LoadError>,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let max_bytes = self.settings.max_component_bytes;
        let fetch_checked = || {
            let wasm = fetch()?;
            if hex::encode(Sha256::digest(&wasm)) != hash {
                return Err(LoadError::Source(format!(
                    "the bytes read for component {hash} have another sha256"
                )));
            }
            validate::precheck(&wasm, max_bytes)?;
            Ok(wasm)
        };
        self.cache_or_load(hash, || self.load_uncached(hash, size, fetch_checked))
    }

    /// Loads from the artifact if there is one, else compiles `wasm()`.
    fn load_uncached(
        &self,
        hash: &str,
        size: usize,
        wasm: impl FnOnce() -> Result<Vec<u8>, LoadError>,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let (component, code_bytes, fresh_artifact) = match self.artifacts.load(&self.engine, hash)
        {
            Some((component, code_bytes)) => {
                self.artifact_hits.fetch_add(1, Ordering::Relaxed);
                (component, code_bytes, None)
            }
            None => {
                let cwasm = self.compile(&wasm()?)?;
                // SAFETY: `cwasm` was produced just now by this very engine.
                let component = unsafe { Component::deserialize(&self.engine, &cwasm) }
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                (component, cwasm.len(), Some(cwasm))
            }
        };
        let report = validate::inspect(&self.engine, &component, hash, size)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let functions = Functions::find(&pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        // Build the copy-on-write memory image now rather than on the first call.
        component
            .initialize_copy_on_write_image()
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        if let Some(cwasm) = fresh_artifact {
            self.artifacts.save(hash, &cwasm);
        }
        Ok(Arc::new(LoadedPlugin {
            pre,
            functions,
            report,
            code_bytes,
        }))
    }

    fn compile(&self, wasm: &[u8]) -> Result<Vec<u8>, LoadError> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        self.engine
            .precompile_component(wasm)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Runs one operation of `plugin` for `merchant` in a fresh sandbox, on
    /// the plugin threads (see `threads`). The deadline counts from now.
    pub async fn invoke(
        &self,
        plugin: &Arc<LoadedPlugin>,
        merchant: &MerchantContext,
        request: &OperationRequest,
    ) -> Invocation {
        let started = Instant::now();
        let threads = match &self.threads {
            Some(threads) if merchant.share.demoted() => threads,
            _ => {
                return self
                    .invoker
                    .invoke(plugin, merchant, request, started)
                    .await;
            }
        };
        let (invoker, plugin) = (self.invoker.clone(), plugin.clone());
        let (merchant, request) = (merchant.clone(), request.clone());
        let call = threads
            .spawn(async move { invoker.invoke(&plugin, &merchant, &request, started).await });
        match call.join().await {
            Ok(invocation) => invocation,
            Err(error) => {
                let why = format!("the call's task ended without an answer: {error}");
                Invocation::failed(CallError::Host(why), started)
            }
        }
    }
}

/// What a call needs of the [`Runtime`], cheap to clone onto the plugin
/// threads.
#[derive(Clone)]
struct Invoker {
    engine: Engine,
    /// In front of the pool: one per sandbox slot.
    permits: Arc<Semaphore>,
    /// The gateway-wide memory budget of running calls.
    memory: Arc<shares::MemoryAccount>,
    max_memory_bytes: usize,
}

impl Invoker {
    async fn invoke(
        &self,
        plugin: &LoadedPlugin,
        merchant: &MerchantContext,
        request: &OperationRequest,
        started: Instant,
    ) -> Invocation {
        let limits = &merchant.limits;
        let deadline_at = started + limits.deadline;
        let share = &merchant.share;
        // The merchant's share first, so that one merchant never queues for
        // (or holds) every slot of the pool.
        let Some(merchant_permit) = permit_by(&share.instances, deadline_at).await else {
            let waited_ms = millis(started.elapsed());
            let max_instances = share.limits.max_instances;
            let busy = CallError::MerchantBusy {
                waited_ms,
                max_instances,
            };
            return Invocation::failed(busy, started);
        };
        let Some(permit) = permit_by(&self.permits, deadline_at).await else {
            let waited_ms = millis(started.elapsed());
            return Invocation::failed(CallError::Overloaded { waited_ms }, started);
        };

        // A merchant cannot be given more memory than a pool slot holds; past
        // it, growth would fail inside wasmtime instead of in our limiter.
        let limits = &CallLimits {
            memory_bytes: limits.memory_bytes.min(self.max_memory_bytes),
            ..*limits
        };
        let accounts = vec![share.memory.clone(), self.memory.clone()];
        let mut store = Store::new(
            &self.engine,
            HostState::new(merchant, limits, accounts, deadline_at),
        );
        store.limiter(|state| &mut state.limiter);
        let turn = shares::CpuTurn::new(share, deadline_at);
        store.call_hook_async(shares::CpuTurnHook(turn.clone()));
        let wasm_cpu = Arc::new(WasmCpu::default());
        store.epoch_deadline_callback(on_epoch_tick(deadline_at, turn, wasm_cpu.clone()));
        store.set_epoch_deadline(1);

        // Epochs only see running wasm; this wall-clock guard also covers a
        // guest blocked in a host call. Dropping the future abandons the
        // instance, which is never reused.
        let grace = engine::EPOCH_TICK * 2;
        let ran = tokio::time::timeout_at(
            (deadline_at + grace).into(),
            run(plugin, &mut store, request),
        )
        .await;
        let collected = Collected::drain(&mut store);
        let deadline_ms = millis(limits.deadline);
        let outcome = match ran {
            Err(_elapsed) => Outcome::Failed(CallError::Deadline {
                deadline_ms,
                blocked_in_host: true,
            }),
            Ok(Ok(Ok(output))) => {
                let output = keep_assigned_instance_id(&merchant.label, request, output);
                check_output_size(output, limits.max_output_bytes)
            }
            Ok(Ok(Err(declined))) => Outcome::Declined(declined),
            Ok(Err(error)) => Outcome::Failed(classify(
                &error,
                store.data(),
                deadline_ms,
                &collected.stderr.text,
            )),
        };
        let heavy = wasm_cpu.heavy()
            || collected.peak_memory_bytes > engine::INLINE_RESET_BYTES
            || matches!(
                outcome,
                Outcome::Failed(CallError::Deadline { .. } | CallError::MemoryLimit { .. })
            );
        if heavy {
            share.demote();
        }
        // Dropping the store resets its pool slot (and releases its memory
        // from the budgets); only then may another call have the permits.
        let release = move || {
            drop(store);
            drop(permit);
            drop(merchant_permit);
        };
        if collected.peak_memory_bytes <= engine::INLINE_RESET_BYTES {
            release();
        } else {
            reset_in_background(share, release);
        }
        collected.into_invocation(&merchant.label, outcome, started)
    }
}

/// A permit of `semaphore`, waiting for one until `deadline_at` at most.
/// A free one is taken at once, without arming a timer (the common case).
async fn permit_by(
    semaphore: &Arc<Semaphore>,
    deadline_at: Instant,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Some(permit);
    }
    tokio::time::timeout_at(deadline_at.into(), semaphore.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Resets a slot that held much memory away from the answering task: giving
/// 64 MiB back to the kernel takes about 8 ms, which would hold up the tokio
/// worker and the callback's answer. The reset runs on the merchant's CPU
/// turn, so that a merchant's memory-hungry calls pay for their resets out
/// of its own share; its permits stay taken until the slot is clean.
fn reset_in_background(share: &MerchantShare, release: impl FnOnce() + Send + 'static) {
    let turn = shares::CpuTurn::new(share, Instant::now() + RESET_TURN_WAIT);
    tokio::spawn(async move {
        // Late or not, the slot is reset: a permit must not leak.
        let _ = turn.take().await;
        let _ = tokio::task::spawn_blocking(release).await;
        turn.give_back();
    });
}

/// How long a background reset waits for its merchant's CPU turn.
const RESET_TURN_WAIT: Duration = Duration::from_secs(5);

/// What happens at each epoch tick while the guest runs wasm: measure the
/// CPU it ran since the last tick (`wasm_cpu`); past the deadline, stop it;
/// otherwise give its merchant's CPU slot back, let other tasks run, and
/// queue for a slot again behind the merchant's other calls (see `shares`).
fn on_epoch_tick(
    deadline_at: Instant,
    turn: shares::CpuTurn,
    wasm_cpu: Arc<WasmCpu>,
) -> impl FnMut(wasmtime::StoreContextMut<'_, HostState>) -> wasmtime::Result<UpdateDeadline>
+ Send
+ Sync
+ 'static {
    move |_| {
        wasm_cpu.tick();
        if Instant::now() >= deadline_at {
            return Ok(UpdateDeadline::Interrupt);
        }
        turn.give_back();
        let turn = turn.clone();
        let wasm_cpu = wasm_cpu.clone();
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                // Past the deadline without a slot: the next tick stops it.
                turn.take().await;
                // Wasm resumes on this thread once this future is done.
                wasm_cpu.resume();
            }),
        ))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn build_linker(engine: &Engine) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .and_then(|()| host::add_to_linker(&mut linker))
        .map_err(|e| RuntimeError::Engine(format!("linking host functions: {e:#}")))?;
    Ok(linker)
}

async fn run(
    plugin: &LoadedPlugin,
    store: &mut Store<HostState>,
    request: &OperationRequest,
) -> wasmtime::Result<Result<OperationOutput, PluginError>> {
    let instance = plugin.pre.instantiate_async(&mut *store).await?;
    bindings::dispatch(&plugin.functions, &instance, store, request).await
}

/// The instance id is the gateway's to assign (the marketplace's contract
/// depends on it): a plugin that reports another one is overruled, loudly.
/// The one place this rule is enforced: every caller (the served gateway,
/// `plugin invoke`) gets outputs through here.
fn keep_assigned_instance_id(
    merchant: &str,
    request: &OperationRequest,
    output: OperationOutput,
) -> OperationOutput {
    match (request, output) {
        (OperationRequest::Create(req), OperationOutput::Created(mut created))
            if created.instance_id != req.instance_id =>
        {
            tracing::error!(
                merchant,
                assigned = %req.instance_id,
                reported = %created.instance_id,
                "plugin reported a different instance id; keeping the assigned one"
            );
            created.instance_id = req.instance_id.clone();
            OperationOutput::Created(created)
        }
        (_, output) => output,
    }
}

/// Refuses answers larger than an answer may be (measured as JSON, the form
/// they leave the gateway in, without building the JSON).
fn check_output_size(output: OperationOutput, limit: usize) -> Outcome {
    let mut counter = ByteCounter(0);
    let bytes = match serde_json::to_writer(&mut counter, &output) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    };
    if bytes > limit {
        return Outcome::Failed(CallError::OutputTooLarge { bytes, limit });
    }
    Outcome::Answered(output)
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Names what went wrong in a failed call. A trap keeps the gist of what the
/// guest wrote to stderr (a panic's location and message).
fn classify(
    error: &wasmtime::Error,
    state: &HostState,
    deadline_ms: u64,
    stderr: &str,
) -> CallError {
    match state.limiter.refused() {
        Some(limits::Refusal::Limit(requested_bytes)) => {
            return CallError::MemoryLimit {
                limit_bytes: state.limiter.limit(),
                requested_bytes,
            };
        }
        Some(limits::Refusal::Budget { scope, budget }) => {
            return CallError::MemoryBudget {
                scope,
                budget_bytes: budget,
            };
        }
        None => {}
    }
    if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return CallError::Overloaded { waited_ms: 0 };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline {
            deadline_ms,
            blocked_in_host: false,
        },
        Some(trap) => CallError::Trap {
            trap: trap.to_string(),
            detail: last_lines(stderr),
        },
        None => CallError::Host(format!("{error:#}")),
    }
}

/// What a sandbox produced besides its result, taken out of the store
/// before the store is dropped.
struct Collected {
    peak_memory_bytes: usize,
    logs: Vec<PluginLogRecord>,
    dropped_log_records: usize,
    stdout: Captured,
    stderr: Captured,
}

impl Collected {
    fn drain(store: &mut Store<HostState>) -> Collected {
        let state = store.data_mut();
        let (logs, dropped_log_records) = state.take_logs();
        Collected {
            peak_memory_bytes: state.limiter.peak(),
            logs,
            dropped_log_records,
            stdout: state.stdout.take(),
            stderr: state.stderr.take(),
        }
    }

    /// Sends the captured output to the log and completes the invocation.
    fn into_invocation(self, merchant: &str, outcome: Outcome, started: Instant) -> Invocation {
        log_captured(merchant, "stdout", &self.stdout);
        log_captured(merchant, "stderr", &self.stderr);
        // The one warning per failed call; callers count, they do not log.
        if let Outcome::Failed(error) = &outcome {
            tracing::warn!(merchant, error = %error, "plugin call failed");
        }
        Invocation {
            outcome,
            duration: started.elapsed(),
            peak_memory_bytes: self.peak_memory_bytes,
            logs: self.logs,
            dropped_log_records: self.dropped_log_records,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}
impl Invocation {
    fn failed(error: CallError, started: Instant) -> Invocation {
        Invocation {
            outcome: Outcome::Failed(error),
            duration: started.elapsed(),
            peak_memory_bytes: 0,
            logs: Vec::new(),
            dropped_log_records: 0,
            stdout: Captured::default(),
            stderr: Captured::default(),
        }
    }
}

/// What a call wrote to one stream, as one log event: bounded by the
/// capture budget, escaped (it cannot forge log lines), and with what was
/// dropped counted.
fn log_captured(merchant: &str, stream: &'static str, captured: &Captured) {
    if captured.text.trim().is_empty() && captured.dropped_bytes == 0 {
        return;
    }
    tracing::info!(
        target: "plugin",
        merchant,
        stream,
        output = ?captured.text,
        dropped_bytes = captured.dropped_bytes,
        "plugin output"
    );
}

/// The last two meaningful lines of `text` (a panic's location and message),
/// at most 300 characters.
fn last_lines(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let tail = lines[lines.len().saturating_sub(2)..].join(" ");
    (!tail.is_empty()).then(|| tail.chars().take(300).collect())
}
