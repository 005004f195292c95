//! Idempotency: the same business operation always gets the same answer,
//! and the plugin runs it once — across concurrent duplicates, marketplace
//! retries, client disconnects, crashes and restarts.
//!
//! [`Operations::run`] takes one [`RecordedOperation`] (made from a
//! verified callback) through:
//!
//! 1. **hot cache** (`cache`) — a completed result in this process is
//!    replayed without touching the store or the plugin;
//! 2. **unknown instance** — an operation on an instance the gateway never
//!    assigned answers 000003 without the plugin (unless the merchant
//!    imports legacy instances; test callbacks always pass);
//! 3. **single-flight** — concurrent duplicates in this process share one
//!    spawned *drive* (moka `try_get_with`); across processes the store's
//!    claim decides. Callers wait at most until their answer deadline, then
//!    hear 000004 (the drive goes on);
//! 4. **drive** (`drive`, a spawned task): claim → plugin with the assigned
//!    instance id, the idempotency key and the attempt → fenced completion;
//!    or replay, wait for, or take over an existing record.
//!
//! Final results (success, or a deterministic business refusal) are stored
//! and replayed, re-signed by the caller; transient ones are never final
//! (`koogallery_protocol::ResultCode::disposition`). A result that could not
//! be written durably is never answered as a success.
//!
//! The other files: `kind` (what is recorded, and its names), `recorded`
//! (one operation and what it writes), `envelope` (the versioned stored
//! form), [`upkeep`] (the completer and the reaper).

mod cache;
mod drive;
pub mod envelope;
pub mod kind;
mod recorded;
pub mod upkeep;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gateway_store::{OperationId, OperationRecord, Remembered, Store, StoreError};

use crate::plugin_tasks::PluginTasks;
use crate::sealing::Sealer;
use koogallery_contract::OperationRequest;
use koogallery_protocol::{AccessKey, Answer, Disposition, ResultCode};
use tracing::Instrument as _;

pub use cache::MIN_ENTRY_WEIGHT;
use cache::Settled;
use drive::{Unsettled, drive, drive_record};
pub use envelope::Unreadable;
pub use kind::Kind;
pub use recorded::RecordedOperation;

/// How operations are kept (built by `config::lower::operations`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a claim is held before another worker may take it over.
    /// Must be well above every plugin deadline.
    pub lease: Duration,
    /// Memory for completed results, in (estimated) bytes. Each entry
    /// weighs at least [`MIN_ENTRY_WEIGHT`], which also bounds the entries.
    pub hot_cache_bytes: u64,
    pub hot_cache_ttl: Duration,
}

impl Settings {
    /// How often a duplicate waiting on another process's claim looks again.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(50)
    }
}

/// What running the plugin produced, ready to store.
#[derive(Clone, Debug)]
pub struct Executed {
    /// The answer, unsigned (credentials already encrypted).
    pub answer: Answer,
    pub disposition: Disposition,
}

/// What the caller of an operation pinned for its execution: for a
/// callback, the merchant as served when it arrived (the version its keys
/// verified), so that an activation meanwhile cannot change which plugin
/// runs it. The executor knows its type; this layer only carries it.
pub type Pinned = Arc<dyn std::any::Any + Send + Sync>;

/// Runs an operation's plugin call. The gateway implements it over the
/// merchants' plugins (`crate::executor`); the completer re-drives with it.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs `request` for `merchant` (on `pinned`, if the caller pinned
    /// it), encrypting credentials with `sealing_key` (or the merchant's
    /// first key). `None` if the merchant is not served any more.
    async fn execute(
        &self,
        merchant: &str,
        pinned: Option<&Pinned>,
        request: OperationRequest,
        sealing_key: Option<AccessKey>,
    ) -> Option<Executed>;

    /// Whether `merchant` accepts operations on instances the gateway never
    /// assigned (legacy import).
    fn imports_unknown_instances(&self, merchant: &str) -> bool;
}

/// How one operation ended for its caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Answer this (a replay, a fresh result, or a refusal).
    Answer(Box<Answer>),
    /// Still running (here or elsewhere): 000004, or for a create possibly
    /// success with its instance id — which is only ever given when the
    /// claim that assigned it is known to be committed.
    InProgress { instance_id: Option<String> },
}

/// How the caller was answered, counted in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerPath {
    Executed,
    /// Waited for a concurrent duplicate's execution in this process.
    Coalesced,
    ReplayedFromCache,
    ReplayedFromStore,
    InProgress,
    FingerprintMismatch,
    UnknownInstance,
    /// A status change older than the last one applied to its instance.
    Superseded,
    Retryable,
    StoreFailed,
}

impl AnswerPath {
    /// The `path` label of the operation metrics.
    pub fn label(self) -> &'static str {
        match self {
            AnswerPath::Executed => "executed",
            AnswerPath::Coalesced => "coalesced",
            AnswerPath::ReplayedFromCache => "replayed_cache",
            AnswerPath::ReplayedFromStore => "replayed_store",
            AnswerPath::InProgress => "in_progress",
            AnswerPath::FingerprintMismatch => "fingerprint_mismatch",
            AnswerPath::UnknownInstance => "unknown_instance",
            AnswerPath::Superseded => "superseded",
            AnswerPath::Retryable => "retryable",
            AnswerPath::StoreFailed => "store_failed",
        }
    }
}

/// How a completer's re-drive of one record ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redriven {
    /// The plugin ran and its final result was written.
    Completed,
    /// Another worker had finished it meanwhile (nothing ran here).
    AlreadySettled,
    /// Another worker holds it.
    InProgress,
    /// The plugin ran and failed transiently again.
    Retryable,
    /// No answer at all (the merchant is not served, the task failed).
    NoAnswer,
    /// The record's fingerprint does not match its own request.
    FingerprintMismatch,
    StoreFailed,
}

impl Redriven {
    pub fn label(self) -> &'static str {
        match self {
            Redriven::Completed => "completed",
            Redriven::AlreadySettled => "already_settled",
            Redriven::InProgress => "in_progress",
            Redriven::Retryable => "retryable",
            Redriven::NoAnswer => "no_answer",
            Redriven::FingerprintMismatch => "fingerprint_mismatch",
            Redriven::StoreFailed => "store_failed",
        }
    }
}

/// The idempotency layer: the store, the hot cache, the executor.
#[derive(Clone)]
pub struct Operations {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    settled: moka::future::Cache<OperationId, Arc<Settled>>,
    /// Operations whose claim is known to be committed, with the instance
    /// it assigned (creates): what a caller that stopped waiting may answer.
    claimed: moka::sync::Cache<OperationId, Option<String>>,
    /// Seals the buyer in stored requests.
    sealer: Sealer,
    settings: Settings,
    tasks: PluginTasks,
}

impl Inner {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

impl Operations {
    /// `tasks` runs the drives (and shutdown waits for them); `sealer`
    /// seals customer data in what is stored.
    pub fn new(
        store: Arc<dyn Store>,
        executor: Arc<dyn Executor>,
        sealer: Sealer,
        settings: Settings,
        tasks: PluginTasks,
    ) -> Operations {
        let settled = moka::future::Cache::builder()
            .max_capacity(settings.hot_cache_bytes)
            .weigher(|id: &OperationId, settled: &Arc<Settled>| settled.weight(id))
            .time_to_live(settings.hot_cache_ttl)
            .build();
        let claimed = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.lease)
            .build();
        Operations {
            inner: Arc::new(Inner {
                store,
                executor,
                settled,
                claimed,
                sealer,
                settings,
                tasks,
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Forgets what this process holds of `id` (a forced re-drive replaces
    /// a final result; other processes replay theirs until their hot cache
    /// lets it go, `hot_cache_ttl_secs`).
    pub async fn forget(&self, id: &OperationId) {
        self.inner.settled.invalidate(id).await;
        self.inner.claimed.invalidate(id);
    }

    /// Completed results held in memory.
    pub async fn cached_results(&self) -> u64 {
        self.inner.settled.run_pending_tasks().await;
        self.inner.settled.entry_count()
    }

    /// The answer of `op` if this process holds its final result: no store,
    /// no plugin. Safe to answer before anything is written (a replayed
    /// request gets the same final answer either way).
    pub async fn cached(&self, op: &RecordedOperation) -> Option<(Decision, AnswerPath)> {
        let settled = self.inner.settled.get(&op.id).await?;
        Some(replay(op, &settled, AnswerPath::ReplayedFromCache))
    }

    /// The answer of `op` if the store holds its final result; read-only,
    /// for when the store cannot take the writes a new request needs.
    pub async fn stored(&self, op: &RecordedOperation) -> Option<(Decision, AnswerPath)> {
        let record = self.inner.store.load(&op.id).await.ok()??;
        if !record.status.is_final() {
            return None;
        }
        let settled = drive::settled_from(&record).ok()?;
        Some(replay(op, &settled, AnswerPath::ReplayedFromStore))
    }

    /// Runs `op` once across every duplicate and answers it, waiting at most
    /// until `deadline`. `Err` when the store had seen `op.replay_guard`
    /// before (nothing ran for this request; the caller refuses it).
    ///
    /// The guard is remembered by the claim, in its transaction: the claim
    /// is what lets a request run the plugin, so the guard is remembered
    /// before any effect. What is answered without a claim of its own — a
    /// final result this process holds, a concurrent duplicate's result, a
    /// precheck's refusal — ran nothing for this request, and writes
    /// nothing for it (as [`Operations::cached`]).
    pub async fn run(
        &self,
        op: RecordedOperation,
        deadline: tokio::time::Instant,
    ) -> Result<(Decision, AnswerPath), Remembered> {
        let inner = &self.inner;
        if let Some(settled) = inner.settled.get(&op.id).await {
            return Ok(replay(&op, &settled, AnswerPath::ReplayedFromCache));
        }
        match tokio::time::timeout_at(deadline, self.precheck(&op)).await {
            Ok(Some(refusal)) => return Ok(refusal),
            Ok(None) => {}
            Err(_elapsed) => return Ok(store_too_slow()),
        }
        let initiated = Arc::new(AtomicBool::new(false));
        let init = {
            let (inner, op, initiated) = (inner.clone(), op.clone(), initiated.clone());
            async move {
                initiated.store(true, Ordering::Relaxed);
                let drive = inner
                    .tasks
                    .spawn(drive(inner.clone(), op, deadline).in_current_span());
                drive.await.unwrap_or_else(|join| {
                    Err(Unsettled::Failed(format!(
                        "the operation task failed: {join}"
                    )))
                })
            }
        };
        let waited =
            tokio::time::timeout_at(deadline, inner.settled.try_get_with(op.id.clone(), init))
                .await;
        if op.kind.toggles().is_some() {
            // Toggles are never replayed from memory (see Kind::toggles).
            inner.settled.invalidate(&op.id).await;
        }
        let initiated = initiated.load(Ordering::Relaxed);
        Ok(match waited {
            Ok(Ok(settled)) => {
                let path = match (initiated, settled.executed) {
                    (false, _) => AnswerPath::Coalesced,
                    (true, true) => AnswerPath::Executed,
                    (true, false) => AnswerPath::ReplayedFromStore,
                };
                replay(&op, &settled, path)
            }
            Ok(Err(unsettled)) => match &*unsettled {
                Unsettled::Replayed(remembered) if initiated => return Err(*remembered),
                unsettled => unsettled_decision(&op, unsettled),
            },
            // Still running: name the instance only if its claim committed.
            Err(_elapsed) => in_progress(&op, inner.claimed.get(&op.id).flatten()),
        })
    }

    /// What the instance row says before anything runs: an operation on an
    /// instance the gateway never assigned (000003), or a status change
    /// older than the last one applied (answered as done, not run).
    async fn precheck(&self, op: &RecordedOperation) -> Option<(Decision, AnswerPath)> {
        let instance_id = op.instance_id.as_deref()?;
        let may_be_unknown = op.test || op.import_unknown_instance;
        if may_be_unknown && op.signed_at_ms.is_none() {
            return None;
        }
        let instance = match self
            .inner
            .store
            .instance(&op.id.merchant_id, instance_id)
            .await
        {
            Ok(instance) => instance,
            Err(error) => return Some(store_failed(&error)),
        };
        let Some(instance) = instance else {
            if may_be_unknown {
                return None;
            }
            tracing::warn!(
                instance_id,
                kind = op.kind.label(),
                "an operation on an instance this gateway never assigned; answered 000003"
            );
            let message = format!("instance {instance_id} does not exist");
            return Some((
                answer(ResultCode::InstanceNotFound, &message),
                AnswerPath::UnknownInstance,
            ));
        };
        match (instance.status_changed_at, op.signed_at_ms) {
            (Some(applied), Some(signed)) if signed < applied => {
                tracing::warn!(
                    instance_id,
                    kind = op.kind.label(),
                    signed_at_ms = signed,
                    last_applied_ms = applied,
                    "a status change older than the last one applied; answered done, not run"
                );
                let message = "superseded by a later status change";
                Some((answer(ResultCode::Success, message), AnswerPath::Superseded))
            }
            _ => None,
        }
    }

    /// Re-drives one stuck record (the completer). A record that cannot be
    /// read back into an operation is `Unreadable`: the caller parks it.
    pub async fn redrive(&self, record: &OperationRecord) -> Result<Redriven, Unreadable> {
        let imports = self
            .inner
            .executor
            .imports_unknown_instances(&record.id.merchant_id);
        let op = RecordedOperation::from_record(record, imports, &self.inner.sealer)?;
        let far = tokio::time::Instant::now() + self.inner.settings.lease;
        let result = drive_record(self.inner.clone(), op, record.clone(), far).await;
        Ok(match result {
            Ok(settled) if settled.executed => Redriven::Completed,
            Ok(_) => Redriven::AlreadySettled,
            Err(Unsettled::InProgress { .. }) => Redriven::InProgress,
            Err(Unsettled::Retryable(_)) => Redriven::Retryable,
            Err(Unsettled::Mismatch { .. }) => Redriven::FingerprintMismatch,
            Err(Unsettled::Store(_)) => Redriven::StoreFailed,
            // A re-drive has no replay guard of its own.
            Err(Unsettled::Failed(_) | Unsettled::Replayed(_)) => Redriven::NoAnswer,
        })
    }
}

fn answer(code: ResultCode, message: &str) -> Decision {
    Decision::Answer(Box::new(Answer::new(code, message)))
}

fn replay(op: &RecordedOperation, settled: &Settled, path: AnswerPath) -> (Decision, AnswerPath) {
    if settled.fingerprint != op.fingerprint {
        return mismatch(op, &settled.fingerprint);
    }
    (Decision::Answer(Box::new(settled.answer.clone())), path)
}

fn mismatch(op: &RecordedOperation, stored: &str) -> (Decision, AnswerPath) {
    tracing::error!(
        business_key = %op.business_key,
        kind = op.kind.label(),
        stored_fingerprint = stored,
        fingerprint = %op.fingerprint,
        "the same business key arrived with different business fields; refused with 000002"
    );
    let message = "this order was already received with different business fields";
    (
        answer(ResultCode::InvalidParams, message),
        AnswerPath::FingerprintMismatch,
    )
}

/// Still running. Only a create names its instance, and only one whose
/// claim is known to be committed (`committed`): a merchant that answers
/// creates in flight as successes must never be told of an instance the
/// store does not hold.
fn in_progress(op: &RecordedOperation, committed: Option<String>) -> (Decision, AnswerPath) {
    let instance_id = op.assignment.as_ref().and(committed);
    (Decision::InProgress { instance_id }, AnswerPath::InProgress)
}

fn store_failed(error: &StoreError) -> (Decision, AnswerPath) {
    tracing::error!(%error, "the store failed; answered 000005 so that the marketplace retries");
    let message = "the order could not be recorded; please retry";
    (
        answer(ResultCode::Internal, message),
        AnswerPath::StoreFailed,
    )
}

fn store_too_slow() -> (Decision, AnswerPath) {
    tracing::error!("the store did not answer within the answer budget; answered 000005");
    let message = "the order could not be recorded in time; please retry";
    (
        answer(ResultCode::Internal, message),
        AnswerPath::StoreFailed,
    )
}

fn unsettled_decision(op: &RecordedOperation, unsettled: &Unsettled) -> (Decision, AnswerPath) {
    match unsettled {
        Unsettled::InProgress { instance_id } => in_progress(op, instance_id.clone()),
        Unsettled::Retryable(answer) => (Decision::Answer(answer.clone()), AnswerPath::Retryable),
        Unsettled::Mismatch { stored } => mismatch(op, stored),
        // The drive logged these (it logs whether or not anyone waits).
        Unsettled::Store(_) => (
            answer(
                ResultCode::Internal,
                "the order could not be recorded; please retry",
            ),
            AnswerPath::StoreFailed,
        ),
        Unsettled::Failed(_) => (answer(ResultCode::Internal, ""), AnswerPath::Retryable),
        // Another request's guard, replayed while this one waited on its
        // drive: this one is not refused for it, and its retry runs.
        Unsettled::Replayed(_) => in_progress(op, None),
    }
}
