//! The gateway's durable state: the only crate that speaks SQL (and the
//! only one that depends on an SQL driver).
//!
//! It owns three things (schema in `migrations/`):
//! - **instances**: which instance id the gateway assigned to which order
//!   line. Written in the same transaction as the create's claim, before the
//!   plugin runs; never reaped.
//! - **operations**: one record per business operation, the arbiter of
//!   single-flight (an atomic `INSERT … ON CONFLICT DO NOTHING` claim), of
//!   replay (the stored business result) and of crash recovery (a lease and
//!   a fencing attempt number). Reaped after the retention window.
//! - **seen nonces**: V2 replay protection shared by every process on the
//!   store and surviving restarts.
//! - **the callback log** ([`callback_log`]): one record per callback
//!   answered, searched by merchant, order, instance, code; pruned.
//! - **key-value entries** ([`kv`]): each merchant's plugin store, with a
//!   usage row per merchant for its quota.
//! - **the registry** ([`registry`]): merchants, sealed access keys, plugin
//!   modules (content-addressed) and versions, the active version, hashed
//!   admin tokens and the audit of administrative changes.
//!
//! [`Store`] is the abstraction; [`SqliteStore`] the embedded default for
//! one host, [`PostgresStore`] the shared one for several replicas. The SQL
//! text lives in `sql`, one query set for both engines (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, `BIGINT`), and rows are read into records
//! once for both (`rows`). What the rows
//! *mean* (when to claim, take over, replay) is decided by the gateway's
//! idempotency layer, not here; this crate stores text it does not parse.

pub mod callback_log;
mod checkpoint;
pub mod kv;
pub mod order_log;
mod postgres;
pub mod registry;
mod rows;
mod sql;
mod sqlite;
pub mod test_support;
mod wal_files;
mod writer;

use std::path::PathBuf;

pub use callback_log::{CallbackFilter, CallbackLog, CallbackRecord};
pub use kv::{KeyValueStore, KvLimits, KvWrite};
pub use registry::Registry;

/// Everything the gateway keeps: operations and nonces ([`Store`]), the
/// registry ([`Registry`]) and merchants' key-value entries
/// ([`KeyValueStore`]), on one backend.
pub trait Backend: Store + Registry + KeyValueStore + CallbackLog {}

impl<T: Store + Registry + KeyValueStore + CallbackLog> Backend for T {}
pub use postgres::{PostgresSettings, PostgresStore};
pub use sqlite::{SqliteSettings, SqliteStore};
pub use writer::Health;

/// The wall clock in Unix milliseconds (0 before 1970), for bookkeeping
/// columns the store fills itself.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why the store could not do what was asked. Every one of these is
/// transient from the marketplace's point of view (000005, retried).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("migrating the store to version {version}: {source}")]
    Migrate {
        version: i64,
        source: rusqlite::Error,
    },
    #[error("the store has schema version {found}, newer than this gateway knows ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("opening the PostgreSQL store: {0}")]
    PostgresOpen(String),
    #[error("migrating the PostgreSQL store to version {version}: {source}")]
    PostgresMigrate {
        version: i64,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL query failed: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no PostgreSQL connection: {0}")]
    Unavailable(String),
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("the store did not commit: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    Closed,
    #[error("the store is too busy: its write queue is full")]
    Busy,
}

/// Identifies one operation: the merchant and the plugin idempotency key
/// (derived from merchant, test flag and business key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperationId {
    pub merchant_id: String,
    pub idempotency_key: String,
}

/// The life of an operation record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationStatus {
    /// Claimed; a worker holds the lease.
    InFlight,
    /// Done; the result is replayed.
    Succeeded,
    /// The plugin declined for a business reason; the result is replayed.
    FailedFinal,
    /// The attempt failed transiently; the next retry re-executes.
    FailedRetryable,
    /// The completer gave up after its attempts; a marketplace retry still
    /// re-executes it.
    Parked,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::InFlight => "in_flight",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::FailedFinal => "failed_final",
            OperationStatus::FailedRetryable => "failed_retryable",
            OperationStatus::Parked => "parked",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "in_flight" => OperationStatus::InFlight,
            "succeeded" => OperationStatus::Succeeded,
            "failed_final" => OperationStatus::FailedFinal,
            "failed_retryable" => OperationStatus::FailedRetryable,
            "parked" => OperationStatus::Parked,
            other => return Err(StoreError::Corrupt(format!("operation status `{other}`"))),
        })
    }

    /// Whether the stored result is the final answer.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::FailedFinal
        )
    }
}

/// The instance a create claims: persisted with the claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceAssignment {
    pub order_id: String,
    /// orderLineId, or productId for V1 pay-per-use orders.
    pub order_line_key: String,
    /// The id the gateway proposes; an existing mapping wins.
    pub instance_id: String,
}

/// A new operation, as claimed.
#[derive(Clone, Debug)]
pub struct NewOperation {
    pub id: OperationId,
    pub test: bool,
    pub kind: String,
    pub business_key: String,
    /// The instance the operation acts on (absent for a create, which gets
    /// its id from `assignment`).
    pub instance_id: Option<String>,
    pub assignment: Option<InstanceAssignment>,
    pub fingerprint: String,
    pub request_json: String,
    /// The request's replay guard, remembered in the claim's own
    /// transaction (one commit where there were two); the claim is what
    /// lets a request cause an effect, so the guard is remembered before
    /// any. `None` for a re-drive, which has no request of its own.
    pub replay_guard: Option<ReplayGuard>,
}

/// A request's replay guard as the store remembers it: a V2 nonce, or a V1
/// token with the digest of the parameters it was bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayGuard {
    pub key: String,
    pub binding: Option<String>,
    /// How long it is remembered from now.
    pub memory_ms: i64,
}

impl ReplayGuard {
    /// Whether a request with this guard may go on, given what remembering
    /// it found: it is new, or it is a V1 request resent as it was (the same
    /// token over the same parameters is the marketplace resending).
    pub fn admits(&self, remembered: Remembered) -> bool {
        match remembered {
            Remembered::New => true,
            Remembered::Again { same_binding } => self.binding.is_some() && same_binding,
        }
    }
}

/// An operation record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRecord {
    pub id: OperationId,
    pub test: bool,
    pub kind: String,
    pub business_key: String,
    pub instance_id: Option<String>,
    pub fingerprint: String,
    pub status: OperationStatus,
    pub attempt: u32,
    pub locked_until: Option<i64>,
    pub request_json: String,
    pub result_json: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This caller inserted the record (attempt 1) and holds the lease. For
    /// a create, `instance_id` is the assigned id.
    Won { instance_id: Option<String> },
    /// The record already existed.
    Exists(Box<OperationRecord>),
    /// The request's replay guard was remembered already and does not admit
    /// it ([`ReplayGuard::admits`]): nothing was written.
    Replayed(Remembered),
}

/// How an attempt ended, written only if the attempt still holds the fence.
#[derive(Clone, Debug)]
pub struct Completion {
    pub status: OperationStatus,
    pub result_json: String,
    /// What the instance mapping learns from a success.
    pub instance: Option<InstanceChange>,
    /// Completed records of these kinds on the same instance stop being
    /// replayed (a freeze after an unfreeze must run again).
    pub supersedes: Vec<String>,
}

/// A change to an instance row after a successful operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceChange {
    pub instance_id: String,
    /// New status, if the operation sets one.
    pub status: Option<&'static str>,
    /// New expiry (Unix seconds), if the operation tells one.
    pub expires_at: Option<i64>,
    /// For a status change: when the marketplace signed it (Unix ms). The
    /// row keeps the latest, so that an older change can be told stale.
    pub status_changed_at: Option<i64>,
    /// Records an instance the gateway never assigned (legacy import).
    pub import: bool,
}

/// An instance row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    pub merchant_id: String,
    pub instance_id: String,
    pub order_id: Option<String>,
    pub order_line_key: Option<String>,
    pub origin: String,
    pub status: String,
    pub expires_at: Option<i64>,
    /// When the last applied status change was signed (Unix ms).
    pub status_changed_at: Option<i64>,
}

/// What remembering a nonce found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remembered {
    /// First seen (or its memory had expired): now remembered.
    New,
    /// Seen before, within its memory. `same_binding`: whether it was bound
    /// to the same value then.
    Again { same_binding: bool },
}

/// A record the completer should look at, or why it cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StuckRow {
    Record(OperationRecord),
    /// A column holds what no gateway writes (an attempt out of range, an
    /// unknown status…): the row is skipped, not the batch.
    Unreadable {
        id: OperationId,
        why: String,
    },
}

/// What one reaper pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    pub operations: u64,
    pub nonces: u64,
}

/// The durable state of the gateway. Every method is one transaction.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims `op` atomically: exactly one caller across every process wins.
    /// The winner's record is `in_flight`, attempt 1, leased until
    /// `now_ms + lease_ms`; a create's instance is assigned in the same
    /// transaction. `op.replay_guard` is remembered first, in the same
    /// transaction; if it does not admit the request, nothing else is
    /// written ([`Claim::Replayed`]).
    async fn claim(
        &self,
        op: &NewOperation,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError>;

    /// The record of `id`, if any.
    async fn load(&self, id: &OperationId) -> Result<Option<OperationRecord>, StoreError>;

    /// Takes over a record whose attempt `seen_attempt` failed transiently,
    /// was parked, or whose lease expired. Returns the new attempt (the new
    /// fence), or `None` if someone else moved first.
    async fn take_over(
        &self,
        id: &OperationId,
        seen_attempt: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<u32>, StoreError>;

    /// Writes how `attempt` ended, only if it still holds the fence (the
    /// record is `in_flight` at that attempt). Returns whether it was written.
    /// A final completion is durable when this returns; a transient one may
    /// be lost in a crash (the lease then lets the next attempt take over).
    async fn complete(
        &self,
        id: &OperationId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Parks every record that used `max_attempts` attempts and is still
    /// not done; returns them (merchant, business key, attempt) for the log.
    async fn park_exhausted(
        &self,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<Vec<(String, String, u32)>, StoreError>;

    /// Records that the completer should re-drive: failed transiently or
    /// with an expired lease, fewer than `max_attempts` attempts, oldest
    /// first. A row that cannot be decoded is returned as unreadable, on its
    /// own.
    async fn stuck(
        &self,
        now_ms: i64,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<StuckRow>, StoreError>;

    /// Parks one record with the reason a human should read (whatever its
    /// state: used for records that cannot be read). Returns whether a row
    /// was parked.
    async fn park(&self, id: &OperationId, reason: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// The parked records of `merchant_id`, most recently parked first.
    async fn parked(&self, merchant_id: &str, limit: u32) -> Result<Vec<StuckRow>, StoreError>;

    /// Makes a final record re-drivable again (a forced re-drive), if it is
    /// still at `attempt`. Returns whether it was.
    async fn reopen(&self, id: &OperationId, attempt: u32, now_ms: i64)
    -> Result<bool, StoreError>;

    /// For each merchant with one, when its oldest unresolved failure (an
    /// operation failed transiently or parked) was recorded, in Unix ms.
    async fn oldest_failures(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// The instance `instance_id` of `merchant_id`, if the gateway knows it.
    async fn instance(
        &self,
        merchant_id: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceRecord>, StoreError>;

    /// Remembers `guard` until `now_ms + guard.memory_ms`. Not necessarily
    /// durable on return: a crash may forget it unless a durable write (the
    /// request's claim, its completion) followed.
    async fn remember_nonce(
        &self,
        merchant_id: &str,
        guard: &ReplayGuard,
        now_ms: i64,
    ) -> Result<Remembered, StoreError>;

    /// Deletes settled operation records last updated before
    /// `operations_before_ms` and nonces expired before `now_ms`. In-flight
    /// and parked records and instances are never reaped.
    async fn reap(&self, operations_before_ms: i64, now_ms: i64) -> Result<Reaped, StoreError>;

    /// Whether writes commit: how many batches in a row failed, and why.
    fn health(&self) -> Health;

    /// One empty write transaction: succeeds only if writes commit now, and
    /// makes every write committed before it durable (on SQLite the writer
    /// syncs the WAL for a synced batch that appended nothing; on PostgreSQL
    /// the transaction id it takes gives it a commit record to flush).
    async fn probe(&self) -> Result<(), StoreError>;

    /// Deletes nonces expired before `now_ms` (cheap: the completer runs it
    /// every pass, so that the table never grows far past a window).
    async fn reap_nonces(&self, now_ms: i64) -> Result<u64, StoreError>;
}
