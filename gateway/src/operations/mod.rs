//! Idempotency: the same business operation always gets the same answer,
//! and the plugin runs it once — across concurrent duplicates, marketplace
//! retries, client disconnects, crashes and restarts.
//!
//! One operation (an [`Operation`], made from a verified callback) goes:
//!
//! 1. **hot cache** — a completed result in this process is replayed
//!    without touching the store or the plugin;
//! 2. **unknown instance** — an operation on an instance the gateway never
//!    assigned answers 000003 without the plugin (unless the merchant
//!    imports legacy instances; test callbacks always pass);
//! 3. **single-flight** — concurrent duplicates in this process share one
//!    spawned *drive* (moka `try_get_with`); across processes the store's
//!    claim decides. Callers wait at most until their answer deadline, then
//!    hear 000004 (the drive goes on);
//! 4. **drive** (a spawned task, so a disconnect never cuts it halfway):
//!    claim → on a win, run the plugin with the assigned instance id, the
//!    idempotency key and the attempt → fenced completion. Losers replay a
//!    final record, poll one in flight, or take over (attempt + 1) one that
//!    failed transiently or whose lease ran out.
//!
//! Final results (success, or a deterministic business refusal) are stored
//! and replayed, re-signed by the caller. Transient failures (deadline,
//! trap, 000004/000005/000104 from the plugin, store errors) are never
//! final: the next retry re-executes with the same idempotency key. A result
//! that could not be written durably is never answered as a success.
//!
//! [`upkeep`] re-drives stuck operations in the background and reaps old
//! records.

pub mod upkeep;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::AccessKey;
use crate::contract::{Operation as ContractOperation, OperationRequest, StatusChange};
use crate::protocol::time::now_ms;
use crate::protocol::{Answer, Callback};
use crate::result_code::ResultCode;
use crate::store::{
    Claim, Completion, InstanceAssignment, InstanceChange, NewOperation, OperationId,
    OperationRecord, OperationStatus, Store, StoreError,
};

/// How operations are kept.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a claim is held before another worker may take it over.
    /// Must be well above every plugin deadline.
    pub lease: Duration,
    /// How often a duplicate waiting on another process's claim looks again.
    pub poll_interval: Duration,
    /// Memory for completed results, in (estimated) bytes. Each entry
    /// weighs at least [`MIN_ENTRY_WEIGHT`], which also bounds the entries.
    pub hot_cache_bytes: u64,
    pub hot_cache_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(50),
            hot_cache_bytes: 64 << 20,
            hot_cache_ttl: Duration::from_secs(600),
        }
    }
}

/// Whether the plugin's answer is the final word on the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Success or a deterministic business refusal: stored and replayed.
    Final,
    /// Worth re-executing: released for the next retry.
    Retryable,
}

/// What running the plugin produced, ready to store.
#[derive(Clone, Debug)]
pub struct Executed {
    /// The answer, unsigned (credentials already encrypted).
    pub answer: Answer,
    pub disposition: Disposition,
}

/// A boxed, sendable future (the executor is a trait object).
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Runs an operation's plugin call. The server implements it over the
/// merchants' plugins; the completer uses it to re-drive.
pub trait Executor: Send + Sync + 'static {
    /// Runs `request` for `merchant`, encrypting credentials with
    /// `sealing_key` (or the merchant's first key). `None` if the merchant
    /// is no longer configured.
    fn execute(
        &self,
        merchant: &str,
        request: OperationRequest,
        sealing_key: Option<AccessKey>,
    ) -> BoxFuture<Option<Executed>>;

    /// Whether `merchant` accepts operations on instances the gateway never
    /// assigned (legacy import).
    fn imports_unknown_instances(&self, merchant: &str) -> bool;
}

/// The kinds of operation that are recorded. queryInstance and
/// changeInstanceCheck are reads: answered by the plugin, never recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Create,
    Renew,
    Freeze,
    Unfreeze,
    Release,
    Upgrade,
    License,
}

impl Kind {
    /// The recorded kind of a request, `None` for reads.
    pub fn of(request: &OperationRequest) -> Option<Kind> {
        Some(match request {
            OperationRequest::Create(_) => Kind::Create,
            OperationRequest::Renew(_) => Kind::Renew,
            OperationRequest::UpdateStatus(r) => match r.change {
                StatusChange::Freeze => Kind::Freeze,
                StatusChange::Unfreeze => Kind::Unfreeze,
            },
            OperationRequest::Release(_) => Kind::Release,
            OperationRequest::Upgrade(_) => Kind::Upgrade,
            OperationRequest::IssueLicense(_) => Kind::License,
            OperationRequest::Query(_) | OperationRequest::ChangeCheck(_) => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Renew => "renew",
            Kind::Freeze => "status:freeze",
            Kind::Unfreeze => "status:unfreeze",
            Kind::Release => "release",
            Kind::Upgrade => "upgrade",
            Kind::License => "license",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [
            Kind::Create,
            Kind::Renew,
            Kind::Freeze,
            Kind::Unfreeze,
            Kind::Release,
            Kind::Upgrade,
            Kind::License,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    fn operation(self) -> ContractOperation {
        match self {
            Kind::Create => ContractOperation::Create,
            Kind::Renew => ContractOperation::Renew,
            Kind::Freeze | Kind::Unfreeze => ContractOperation::UpdateStatus,
            Kind::Release => ContractOperation::Release,
            Kind::Upgrade => ContractOperation::Upgrade,
            Kind::License => ContractOperation::IssueLicense,
        }
    }

    /// Freeze and unfreeze toggle: once one succeeds, the other's record
    /// must stop replaying, so they are never hot-cached and each supersedes
    /// the other.
    fn toggles(self) -> Option<Kind> {
        match self {
            Kind::Freeze => Some(Kind::Unfreeze),
            Kind::Unfreeze => Some(Kind::Freeze),
            _ => None,
        }
    }

    /// What a success teaches the instance row.
    fn instance_status_after_success(self) -> Option<&'static str> {
        match self {
            Kind::Create | Kind::Renew | Kind::Unfreeze => Some("active"),
            Kind::Freeze => Some("frozen"),
            Kind::Release => Some("released"),
            Kind::Upgrade | Kind::License => None,
        }
    }
}

/// One recorded business operation, ready to run.
#[derive(Clone, Debug)]
pub struct Operation {
    pub id: OperationId,
    pub kind: Kind,
    pub test: bool,
    /// The business key, readable (for logs and operators).
    pub business_key: String,
    /// sha256 of the canonical business fields.
    pub fingerprint: String,
    pub request: OperationRequest,
    /// The instance acted on (not for a create).
    pub instance_id: Option<String>,
    /// The instance a create proposes.
    pub assignment: Option<InstanceAssignment>,
    /// Record an unknown instance on success instead of refusing it.
    pub import_unknown_instance: bool,
    /// The key credentials in the answer are encrypted with.
    pub sealing_key: Option<AccessKey>,
}

impl Operation {
    /// The recorded operation of a verified callback; `None` for reads.
    pub fn from_callback(
        merchant: &str,
        callback: &Callback,
        import_unknown_instance: bool,
        sealing_key: Option<AccessKey>,
    ) -> Option<Operation> {
        let kind = Kind::of(&callback.request)?;
        let request = &callback.request;
        Some(Operation {
            id: OperationId {
                merchant_id: merchant.to_string(),
                idempotency_key: request.call().idempotency_key.clone(),
            },
            kind,
            test: callback.test,
            business_key: callback.business_key.replace('\0', " / "),
            fingerprint: fingerprint(request),
            instance_id: acted_on(request),
            assignment: assignment_of(request),
            request: request.clone(),
            import_unknown_instance,
            sealing_key,
        })
    }

    /// An operation rebuilt from its record, for the completer.
    fn from_record(record: &OperationRecord, executor: &dyn Executor) -> Option<Operation> {
        let kind = Kind::parse(&record.kind)?;
        let value = serde_json::from_str(&record.request_json).ok()?;
        let request = OperationRequest::from_json(kind.operation(), value).ok()?;
        Some(Operation {
            id: record.id.clone(),
            kind,
            test: record.test,
            business_key: record.business_key.clone(),
            fingerprint: record.fingerprint.clone(),
            instance_id: acted_on(&request),
            assignment: assignment_of(&request),
            request,
            import_unknown_instance: executor.imports_unknown_instances(&record.id.merchant_id),
            sealing_key: None,
        })
    }

    /// The record a claim of this operation inserts.
    pub fn new_record(&self) -> NewOperation {
        NewOperation {
            id: self.id.clone(),
            test: self.test,
            kind: self.kind.as_str().to_string(),
            business_key: self.business_key.clone(),
            instance_id: self.instance_id.clone(),
            assignment: self.assignment.clone(),
            fingerprint: self.fingerprint.clone(),
            request_json: serde_json::to_string(&self.request).unwrap_or_default(),
        }
    }

    /// The request for one attempt: its fence number, and for a create the
    /// instance id the store assigned.
    fn request_for(&self, attempt: u32, assigned: Option<&str>) -> OperationRequest {
        let mut request = self.request.clone();
        request.call_mut().attempt = attempt;
        if let (OperationRequest::Create(create), Some(id)) = (&mut request, assigned) {
            create.instance_id = id.to_string();
        }
        request
    }

    fn completion(&self, executed: &Executed, instance_id: Option<&str>) -> Completion {
        let status = match executed.disposition {
            Disposition::Retryable => OperationStatus::FailedRetryable,
            Disposition::Final if executed.answer.result_code == ResultCode::Success.code() => {
                OperationStatus::Succeeded
            }
            Disposition::Final => OperationStatus::FailedFinal,
        };
        let instance = instance_id.and_then(|id| {
            let status = match status {
                OperationStatus::Succeeded => self.kind.instance_status_after_success(),
                OperationStatus::FailedFinal if self.kind == Kind::Create => Some("failed"),
                _ => return None,
            };
            Some(InstanceChange {
                instance_id: id.to_string(),
                status,
                expires_at: expiry(&self.request),
                import: self.import_unknown_instance && self.kind != Kind::Create,
            })
        });
        let supersedes = match (status, self.kind.toggles()) {
            (OperationStatus::Succeeded, Some(other)) => vec![other.as_str().to_string()],
            _ => Vec::new(),
        };
        Completion {
            status,
            result_json: serde_json::to_string(&executed.answer).unwrap_or_default(),
            instance,
            supersedes,
        }
    }
}

/// The instance a create proposes for its order line. V2 keys the line on
/// orderLineId; V1 (no lines) on productId.
fn assignment_of(request: &OperationRequest) -> Option<InstanceAssignment> {
    let OperationRequest::Create(create) = request else {
        return None;
    };
    let line = create
        .order_line_id
        .as_ref()
        .or(create.product.product_id.as_ref());
    Some(InstanceAssignment {
        order_id: create.order_id.clone(),
        order_line_key: line.cloned().unwrap_or_default(),
        instance_id: create.instance_id.clone(),
    })
}

/// The instance a request acts on, if it names one.
fn acted_on(request: &OperationRequest) -> Option<String> {
    match request {
        OperationRequest::Renew(r) => Some(r.instance_id.clone()),
        OperationRequest::UpdateStatus(r) => Some(r.instance_id.clone()),
        OperationRequest::Release(r) => Some(r.instance_id.clone()),
        OperationRequest::Upgrade(r) => Some(r.instance_id.clone()),
        OperationRequest::ChangeCheck(r) => Some(r.instance_id.clone()),
        OperationRequest::IssueLicense(r) => r.instance_id.clone(),
        OperationRequest::Create(_) | OperationRequest::Query(_) => None,
    }
}

fn expiry(request: &OperationRequest) -> Option<i64> {
    match request {
        OperationRequest::Create(r) => r.expire_at.map(|at| at.unix_seconds),
        OperationRequest::Renew(r) => Some(r.expire_at.unix_seconds),
        _ => None,
    }
}

/// sha256 over the canonical business fields: the typed request without its
/// call context (request id, attempt) and without `extensions`, which hold
/// fields the gateway does not know and so cannot tell from transport
/// fields that change on every retry.
pub fn fingerprint(request: &OperationRequest) -> String {
    let mut canonical = request.clone();
    *canonical.call_mut() = crate::contract::CallContext {
        idempotency_key: String::new(),
        attempt: 0,
        test: false,
        request_id: String::new(),
    };
    if let Some(extensions) = canonical.extensions_mut() {
        extensions.clear();
    }
    let mut hasher = HashWriter(Sha256::new());
    // Serialising into a hasher cannot fail (no I/O, string keys).
    let _ = serde_json::to_writer(&mut hasher, &canonical);
    hex::encode(hasher.0.finalize())
}

/// Feeds serialised bytes straight into the digest.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How one operation ended for the caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Answer this (a replay, a fresh result, or a refusal).
    Answer(Box<Answer>),
    /// Still running (here or elsewhere): 000004, or for a create possibly
    /// success with the already-assigned instance id.
    InProgress { instance_id: Option<String> },
}

/// What a caller learns, counted in the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Executed,
    /// Waited for a concurrent duplicate's execution in this process.
    Coalesced,
    ReplayedFromCache,
    ReplayedFromStore,
    InProgress,
    FingerprintMismatch,
    UnknownInstance,
    Retryable,
    StoreFailed,
}

impl Path {
    pub fn label(self) -> &'static str {
        match self {
            Path::Executed => "executed",
            Path::Coalesced => "coalesced",
            Path::ReplayedFromCache => "replayed_cache",
            Path::ReplayedFromStore => "replayed_store",
            Path::InProgress => "in_progress",
            Path::FingerprintMismatch => "fingerprint_mismatch",
            Path::UnknownInstance => "unknown_instance",
            Path::Retryable => "retryable",
            Path::StoreFailed => "store_failed",
        }
    }
}

/// A final result, as cached and replayed.
#[derive(Debug)]
struct Settled {
    fingerprint: String,
    answer: Answer,
    /// Whether this drive ran the plugin (else it read the store).
    executed: bool,
}

/// The least a cached result is taken to weigh (keys, bookkeeping).
pub const MIN_ENTRY_WEIGHT: u32 = 256;

impl Settled {
    /// Roughly the bytes the entry holds.
    fn weight(&self, id: &OperationId) -> u32 {
        let answer = &self.answer;
        let app_info = answer.app_info.as_ref().map_or(0, |info| {
            [
                &info.front_end_url,
                &info.admin_url,
                &info.user_name,
                &info.password,
                &info.memo,
            ]
            .iter()
            .map(|field| field.as_ref().map_or(0, String::len))
            .sum()
        });
        let text = id.merchant_id.len()
            + id.idempotency_key.len()
            + self.fingerprint.len()
            + answer.result_msg.len()
            + answer.instance_id.as_ref().map_or(0, String::len)
            + answer.license.as_ref().map_or(0, String::len)
            + app_info;
        u32::try_from(text)
            .unwrap_or(u32::MAX)
            .saturating_add(MIN_ENTRY_WEIGHT)
    }
}

/// Why a drive produced no final result. Never cached.
#[derive(Debug)]
enum Unsettled {
    /// Someone else holds the lease (or our fence was taken).
    InProgress {
        instance_id: Option<String>,
    },
    /// This attempt failed transiently; answer it, retry re-executes.
    Retryable(Box<Answer>),
    /// The stored operation has other business fields.
    Mismatch {
        stored: String,
    },
    Store(StoreError),
    /// No answer from the handler: the task failed, or the merchant is no
    /// longer configured (a completer re-driving an old record).
    Failed(String),
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
    settings: Settings,
    tasks: TaskTracker,
}

impl Operations {
    /// `tasks` tracks the drives, so that shutdown waits for them.
    pub fn new(
        store: Arc<dyn Store>,
        executor: Arc<dyn Executor>,
        settings: Settings,
        tasks: TaskTracker,
    ) -> Operations {
        let settled = moka::future::Cache::builder()
            .max_capacity(settings.hot_cache_bytes)
            .weigher(|id: &OperationId, settled: &Arc<Settled>| settled.weight(id))
            .time_to_live(settings.hot_cache_ttl)
            .build();
        Operations {
            inner: Arc::new(Inner {
                store,
                executor,
                settled,
                settings,
                tasks,
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Completed results held in memory.
    pub async fn cached_results(&self) -> u64 {
        self.inner.settled.run_pending_tasks().await;
        self.inner.settled.entry_count()
    }

    /// Runs `op` once across every duplicate and answers it, waiting at most
    /// until `deadline`.
    pub async fn run(&self, op: Operation, deadline: tokio::time::Instant) -> (Decision, Path) {
        let inner = &self.inner;
        if let Some(settled) = inner.settled.get(&op.id).await {
            return replay(&op, &settled, Path::ReplayedFromCache);
        }
        if let Some(refusal) = self.refuse_unknown_instance(&op).await {
            return refusal;
        }
        let id = op.id.clone();
        let kind = op.kind;
        let initiated = Arc::new(AtomicBool::new(false));
        let init = {
            let (inner, op, initiated) = (inner.clone(), op.clone(), initiated.clone());
            async move {
                initiated.store(true, Ordering::Relaxed);
                let drive = inner
                    .tasks
                    .spawn(drive(inner.clone(), op, deadline).in_current_span());
                match drive.await {
                    Ok(result) => result,
                    Err(join) => Err(Unsettled::Failed(format!(
                        "the operation task failed: {join}"
                    ))),
                }
            }
        };
        let waited = tokio::time::timeout_at(deadline, inner.settled.try_get_with(id, init)).await;
        if kind.toggles().is_some() {
            // Toggles are never replayed from memory (see Kind::toggles).
            inner.settled.invalidate(&op.id).await;
        }
        match waited {
            Ok(Ok(settled)) => {
                let path = match (initiated.load(Ordering::Relaxed), settled.executed) {
                    (false, _) => Path::Coalesced,
                    (true, true) => Path::Executed,
                    (true, false) => Path::ReplayedFromStore,
                };
                replay(&op, &settled, path)
            }
            Ok(Err(unsettled)) => unsettled_decision(&op, &unsettled),
            Err(_elapsed) => in_progress(&op, None),
        }
    }

    async fn refuse_unknown_instance(&self, op: &Operation) -> Option<(Decision, Path)> {
        let instance_id = op.instance_id.as_deref()?;
        if op.test || op.import_unknown_instance {
            return None;
        }
        match self
            .inner
            .store
            .instance(&op.id.merchant_id, instance_id)
            .await
        {
            Ok(Some(_)) => None,
            Ok(None) => {
                tracing::warn!(
                    instance_id,
                    kind = op.kind.as_str(),
                    "an operation on an instance this gateway never assigned; answered 000003"
                );
                let message = format!("instance {instance_id} does not exist");
                Some((
                    Decision::Answer(Box::new(Answer::new(ResultCode::InstanceNotFound, message))),
                    Path::UnknownInstance,
                ))
            }
            Err(error) => Some(store_failed(&error)),
        }
    }

    /// Re-drives one stuck record (the completer). Returns how it ended.
    pub async fn redrive(&self, record: &OperationRecord) -> Option<Path> {
        let op = Operation::from_record(record, self.inner.executor.as_ref())?;
        let far = tokio::time::Instant::now() + self.inner.settings.lease;
        let result = drive_record(self.inner.clone(), op, record.clone(), far).await;
        Some(match result {
            Ok(_) => Path::Executed,
            Err(Unsettled::InProgress { .. }) => Path::InProgress,
            Err(Unsettled::Retryable(_)) => Path::Retryable,
            Err(Unsettled::Mismatch { .. }) => Path::FingerprintMismatch,
            Err(Unsettled::Store(_)) => Path::StoreFailed,
            Err(Unsettled::Failed(_)) => Path::Retryable,
        })
    }
}

fn replay(op: &Operation, settled: &Settled, path: Path) -> (Decision, Path) {
    if settled.fingerprint != op.fingerprint {
        return mismatch(op, &settled.fingerprint);
    }
    (Decision::Answer(Box::new(settled.answer.clone())), path)
}

fn mismatch(op: &Operation, stored: &str) -> (Decision, Path) {
    tracing::error!(
        business_key = %op.business_key,
        kind = op.kind.as_str(),
        stored_fingerprint = stored,
        fingerprint = %op.fingerprint,
        "the same business key arrived with different business fields; refused with 000002"
    );
    let message = "this order was already received with different business fields";
    (
        Decision::Answer(Box::new(Answer::new(ResultCode::InvalidParams, message))),
        Path::FingerprintMismatch,
    )
}

/// Still running. Only a create names its (already-assigned) instance.
fn in_progress(op: &Operation, assigned: Option<String>) -> (Decision, Path) {
    let instance_id = op
        .assignment
        .as_ref()
        .map(|proposed| assigned.unwrap_or_else(|| proposed.instance_id.clone()));
    (Decision::InProgress { instance_id }, Path::InProgress)
}

fn store_failed(error: &StoreError) -> (Decision, Path) {
    tracing::error!(%error, "the store failed; answered 000005 so that the marketplace retries");
    let answer = Answer::new(
        ResultCode::Internal,
        "the order could not be recorded; please retry",
    );
    (Decision::Answer(Box::new(answer)), Path::StoreFailed)
}

fn unsettled_decision(op: &Operation, unsettled: &Unsettled) -> (Decision, Path) {
    match unsettled {
        Unsettled::InProgress { instance_id } => in_progress(op, instance_id.clone()),
        Unsettled::Retryable(answer) => (Decision::Answer(answer.clone()), Path::Retryable),
        Unsettled::Mismatch { stored } => mismatch(op, stored),
        Unsettled::Store(error) => store_failed(error),
        Unsettled::Failed(why) => {
            tracing::error!(why, "the operation produced no answer; answered 000005");
            let answer = Answer::new(ResultCode::Internal, ResultCode::Internal.default_message());
            (Decision::Answer(Box::new(answer)), Path::Retryable)
        }
    }
}

/// The claim → plugin → completion sequence of one operation.
async fn drive(
    inner: Arc<Inner>,
    op: Operation,
    wait_until: tokio::time::Instant,
) -> Result<Arc<Settled>, Unsettled> {
    let lease = lease_ms(&inner.settings);
    let claim = inner
        .store
        .claim(&op.new_record(), now_ms(), lease)
        .await
        .map_err(Unsettled::Store)?;
    match claim {
        Claim::Won { instance_id } => execute(&inner, &op, 1, instance_id).await,
        Claim::Exists(record) => drive_record(inner, op, *record, wait_until).await,
    }
}

/// Follows an existing record: replay it, wait for it, or take it over.
async fn drive_record(
    inner: Arc<Inner>,
    op: Operation,
    mut record: OperationRecord,
    wait_until: tokio::time::Instant,
) -> Result<Arc<Settled>, Unsettled> {
    let lease = lease_ms(&inner.settings);
    loop {
        if record.fingerprint != op.fingerprint {
            return Err(Unsettled::Mismatch {
                stored: record.fingerprint,
            });
        }
        if record.status.is_final() {
            return settled_from(&record);
        }
        let now = now_ms();
        let leased = record.status == OperationStatus::InFlight
            && record.locked_until.is_some_and(|until| until >= now);
        if !leased {
            let taken = inner
                .store
                .take_over(&record.id, record.attempt, now, lease)
                .await
                .map_err(Unsettled::Store)?;
            if let Some(attempt) = taken {
                tracing::info!(
                    business_key = %op.business_key,
                    attempt,
                    previous = record.status.as_str(),
                    "taking the operation over"
                );
                return execute(&inner, &op, attempt, record.instance_id.clone()).await;
            }
        } else if tokio::time::Instant::now() + inner.settings.poll_interval > wait_until {
            return Err(Unsettled::InProgress {
                instance_id: record.instance_id,
            });
        } else {
            tokio::time::sleep(inner.settings.poll_interval).await;
        }
        record = match inner.store.load(&op.id).await.map_err(Unsettled::Store)? {
            Some(record) => record,
            // Reaped under our feet: nothing to follow; the retry claims anew.
            None => return Err(Unsettled::InProgress { instance_id: None }),
        };
    }
}

/// Runs attempt `attempt` and writes its end under the fence.
async fn execute(
    inner: &Inner,
    op: &Operation,
    attempt: u32,
    instance_id: Option<String>,
) -> Result<Arc<Settled>, Unsettled> {
    if let (Some(assigned), Some(proposed)) = (&instance_id, &op.assignment)
        && *assigned != proposed.instance_id
    {
        tracing::info!(
            assigned,
            "the order line already has an instance; reusing it"
        );
    }
    let request = op.request_for(attempt, instance_id.as_deref());
    let executed = inner
        .executor
        .execute(&op.id.merchant_id, request, op.sealing_key.clone())
        .await;
    let Some(mut executed) = executed else {
        let why = format!("merchant {} is no longer configured", op.id.merchant_id);
        return Err(Unsettled::Failed(why));
    };
    if op.kind == Kind::Create && executed.answer.result_code == ResultCode::Success.code() {
        // The gateway's id is the contract, whatever the plugin said.
        executed.answer.instance_id = instance_id.clone();
    }
    let target = instance_id.as_deref().or(op.instance_id.as_deref());
    let completion = op.completion(&executed, target);
    match inner
        .store
        .complete(&op.id, attempt, &completion, now_ms())
        .await
    {
        Ok(true) if completion.status.is_final() => Ok(Arc::new(Settled {
            fingerprint: op.fingerprint.clone(),
            answer: executed.answer,
            executed: true,
        })),
        Ok(true) => Err(Unsettled::Retryable(Box::new(executed.answer))),
        Ok(false) => {
            tracing::warn!(
                business_key = %op.business_key,
                attempt,
                "another worker took the operation over; this attempt's result was not written"
            );
            Err(Unsettled::InProgress { instance_id })
        }
        Err(error) => Err(Unsettled::Store(error)),
    }
}

fn settled_from(record: &OperationRecord) -> Result<Arc<Settled>, Unsettled> {
    let corrupt = |why: String| Unsettled::Store(StoreError::Corrupt(why));
    let json = record
        .result_json
        .as_deref()
        .ok_or_else(|| corrupt(format!("{} has no result", record.business_key)))?;
    let answer: Answer =
        serde_json::from_str(json).map_err(|e| corrupt(format!("{}: {e}", record.business_key)))?;
    Ok(Arc::new(Settled {
        fingerprint: record.fingerprint.clone(),
        answer,
        executed: false,
    }))
}

fn lease_ms(settings: &Settings) -> i64 {
    i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The disposition of a result code from the plugin: only refusals that a
/// retry cannot change are final. 000104 (a dependency failed) is retried.
pub fn disposition_of(code: ResultCode) -> Disposition {
    match code {
        ResultCode::Processing | ResultCode::Internal | ResultCode::ServiceError => {
            Disposition::Retryable
        }
        ResultCode::Success
        | ResultCode::AuthFailed
        | ResultCode::InvalidParams
        | ResultCode::InstanceNotFound
        | ResultCode::NoResources
        | ResultCode::AlreadySubscribed
        | ResultCode::SoldOut => Disposition::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{CallContext, Param, ReleaseRequest, RenewRequest, RenewScene};

    fn renewal(request_id: &str, attempt: u32, extra: &str, expire: i64) -> OperationRequest {
        OperationRequest::Renew(RenewRequest {
            call: CallContext {
                idempotency_key: "kg-1".into(),
                attempt,
                test: false,
                request_id: request_id.into(),
            },
            instance_id: "i-1".into(),
            order_id: "CS1".into(),
            order_line_id: Some("L1".into()),
            scene: RenewScene::Renewal,
            product_id: None,
            expire_at: crate::contract::Instant {
                unix_seconds: expire,
            },
            extensions: vec![Param {
                name: "retryCount".into(),
                value: extra.into(),
            }],
        })
    }

    #[test]
    fn the_fingerprint_ignores_the_call_and_unknown_fields_but_not_business_fields() {
        let first = fingerprint(&renewal("r1", 1, "0", 100));
        assert_eq!(first, fingerprint(&renewal("r2", 3, "7", 100)));
        assert_ne!(first, fingerprint(&renewal("r1", 1, "0", 200)));
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn only_refusals_a_retry_cannot_change_are_final() {
        let retryable: Vec<ResultCode> = ResultCode::ALL
            .into_iter()
            .filter(|code| disposition_of(*code) == Disposition::Retryable)
            .collect();
        assert_eq!(
            retryable,
            [
                ResultCode::Processing,
                ResultCode::Internal,
                ResultCode::ServiceError
            ]
        );
    }

    #[test]
    fn reads_are_not_recorded_and_kinds_round_trip() {
        let release = OperationRequest::Release(ReleaseRequest {
            call: CallContext {
                idempotency_key: "k".into(),
                attempt: 1,
                test: false,
                request_id: "r".into(),
            },
            instance_id: "i".into(),
            order_id: None,
            order_line_id: None,
        });
        assert_eq!(Kind::of(&release), Some(Kind::Release));
        for kind in [Kind::Create, Kind::Freeze, Kind::Unfreeze, Kind::License] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::Freeze.toggles(), Some(Kind::Unfreeze));
        assert_eq!(Kind::Create.toggles(), None);
    }
}
