//! The embedded default store: one SQLite file under `data_dir`, through
//! rusqlite, run synchronously. WAL journal, `synchronous=FULL` (an fsync
//! per commit: these are order records) but for batches of writes a crash
//! may lose harmlessly (`writer::Durability`), a busy timeout.
//!
//! Every write goes through the group-commit writer (`store::writer`): one
//! connection on a thread of its own, `BEGIN IMMEDIATE` (a transaction never
//! has to upgrade a read lock, which `SQLITE_BUSY_SNAPSHOT` would fail
//! without waiting), one fsync per batch.
//!
//! Reads run in place, on the caller's thread, on connections of their own:
//! a WAL read of a few indexed rows takes microseconds and does not wait for
//! the writer, so a hop to another thread would cost more than the read.
//! (The exception, a reader meeting a checkpoint or recovery, waits at most
//! the busy timeout, which the configuration keeps below the answer budget.)
//!
//! One host only: several processes may share the file on one machine,
//! replicas on several machines need the PostgreSQL store.

mod callback_log;
mod kv;
mod registry;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ToSql};

use super::checkpoint;
use super::rows::{self, fence};
use super::sql;
use super::writer::{Durability, Writer};
use super::{
    Claim, Completion, Health, InstanceRecord, NewOperation, OperationId, OperationRecord, Reaped,
    Remembered, ReplayGuard, Store, StoreError, StuckRow,
};

/// How to open the SQLite store (built from the gateway's configuration).
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    pub path: PathBuf,
    /// How long a writer waits for the lock before the write fails.
    pub busy_timeout: Duration,
    /// Refuse to grow the file past this many bytes (writes then fail as on
    /// a full disk). `None`: no cap.
    pub max_size_bytes: Option<u64>,
}

/// Idle read connections kept for reuse (more are opened while busy).
const IDLE_READERS: usize = 8;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads (WAL: they never wait for the writer).
    readers: Arc<Readers>,
    /// Every write, group-committed on one connection.
    writer: Writer,
}

/// Read connections: one is taken for each read and put back after.
struct Readers {
    settings: SqliteSettings,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `read` on an idle connection, or a new one.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connection(&self.settings)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// SQLite's page size, for turning a byte cap into `max_page_count`.
const PAGE_SIZE: u64 = 4096;

/// What the WAL is truncated to after a checkpoint.
const WAL_LIMIT_BYTES: u64 = 64 << 20;

/// Creates the database file owner-only (0600) if it does not exist yet;
/// SQLite gives its WAL and shared-memory files the same mode.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

impl SqliteStore {
    /// Opens (creating if needed, readable by its owner only) and migrates
    /// the store.
    pub async fn open(settings: &SqliteSettings) -> Result<SqliteStore, StoreError> {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(settings))
            .await
            .map_err(|e| StoreError::Commit(format!("opening the store stopped: {e}")))?
    }

    fn open_blocking(settings: SqliteSettings) -> Result<SqliteStore, StoreError> {
        let opened = |reason: String| StoreError::Open {
            path: settings.path.clone(),
            reason,
        };
        create_private(&settings.path).map_err(|e| opened(e.to_string()))?;
        let mut conn = connection(&settings)?;
        migrate(&mut conn)?;
        // Checkpoints run on a thread of their own (`checkpoint`); the
        // writer's own only if that one falls behind.
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_FALLBACK_PAGES,
        )
        .map_err(|e| opened(e.to_string()))?;
        let writer = Writer::start(conn).map_err(|e| opened(e.to_string()))?;
        let checkpoints = connection(&settings)?;
        let path = settings.path.clone();
        let readers = Arc::new(Readers {
            settings,
            idle: Mutex::new(Vec::new()),
        });
        checkpoint::start(checkpoints, path.clone(), Arc::downgrade(&readers)).map_err(|e| {
            StoreError::Open {
                path,
                reason: e.to_string(),
            }
        })?;
        Ok(SqliteStore { readers, writer })
    }

    /// Closes the idle read connections (tests reopen the same file; the
    /// writer's closes with the last handle of the store).
    pub async fn close(&self) {
        self.readers
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A connection to the store: WAL, `synchronous=FULL`, the busy timeout, the
/// size cap.
fn connection(settings: &SqliteSettings) -> Result<Connection, StoreError> {
    let opened = |error: rusqlite::Error| StoreError::Open {
        path: settings.path.clone(),
        reason: error.to_string(),
    };
    let conn = Connection::open(&settings.path).map_err(opened)?;
    conn.busy_timeout(settings.busy_timeout).map_err(opened)?;
    // `max_size_bytes` caps the database, not its WAL: `journal_size_limit`
    // bounds what the WAL keeps after each checkpoint. The page size only
    // takes effect on a new file.
    let mut pragmas = format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
    );
    if let Some(bytes) = settings.max_size_bytes {
        let pages = (bytes / PAGE_SIZE).max(1);
        pragmas.push_str(&format!(" PRAGMA max_page_count = {pages};"));
    }
    conn.execute_batch(&pragmas).map_err(opened)?;
    Ok(conn)
}

/// Runs `sql` with `args` bound to `$1`, `$2`… (the portable SQL's numbered
/// parameters, which SQLite treats as names: bound by name, whatever order
/// they first appear in).
fn execute(conn: &Connection, sql: &str, args: &[&dyn ToSql]) -> Result<usize, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    Ok(statement.raw_execute()?)
}

/// The first row of `sql` with `args` (see [`execute`]), mapped.
fn query_row<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    map: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let mut rows = statement.raw_query();
    match rows.next()? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

/// Every row of `sql` with `args`, mapped.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let mut rows = statement.raw_query();
    let mut mapped = Vec::new();
    while let Some(row) = rows.next()? {
        mapped.push(map(row)?);
    }
    Ok(mapped)
}

/// The names of the portable SQL's parameters, `$1` to `$20` (the most any
/// statement takes: a callback log record), so that binding allocates
/// nothing.
const PARAMETERS: [&str; 20] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16", "$17", "$18", "$19", "$20",
];

fn bind(statement: &mut rusqlite::Statement<'_>, args: &[&dyn ToSql]) -> Result<(), StoreError> {
    if args.len() > PARAMETERS.len() {
        return Err(StoreError::Corrupt(format!("{} parameters", args.len())));
    }
    for (position, (name, arg)) in PARAMETERS.iter().zip(args).enumerate() {
        let index = parameter_index(statement, position + 1, name)?;
        statement.raw_bind_parameter(index, arg)?;
    }
    Ok(())
}

/// Where `$n` is in `statement`: at position n when the parameters first
/// appear in order (most statements; checked, no allocation), else found by
/// name (SQLite's lookup copies the name and scans every parameter).
fn parameter_index(
    statement: &rusqlite::Statement<'_>,
    n: usize,
    name: &str,
) -> Result<usize, StoreError> {
    if statement.parameter_name(n) == Some(name) {
        return Ok(n);
    }
    statement
        .parameter_index(name)?
        .ok_or_else(|| StoreError::Corrupt(format!("no parameter {name} in the statement")))
}

/// Applies the migrations this gateway knows and the store lacks, each in
/// its own immediate transaction; refuses a store from a newer gateway.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(sql::CREATE_MIGRATIONS_TABLE)?;
    let known = sql::MIGRATIONS.last().map_or(0, |(v, _)| *v);
    for &(version, script) in sql::MIGRATIONS {
        let failed = |source| StoreError::Migrate { version, source };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        let found: i64 = tx
            .query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))
            .map_err(failed)?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found >= version {
            continue;
        }
        tx.execute_batch(script).map_err(failed)?;
        let args: [&dyn ToSql; 2] = [&version, &crate::unix_ms()];
        execute(&tx, sql::RECORD_MIGRATION, &args).map_err(|e| match e {
            StoreError::Sql(source) => failed(source),
            other => other,
        })?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

impl rows::Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.get(name)?)
    }
    fn maybe_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.get(name)?)
    }
    fn maybe_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(name)?)
    }
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.get(name)?)
    }
}

fn record(row: &rusqlite::Row<'_>) -> Result<OperationRecord, StoreError> {
    rows::operation(row)
}

fn stuck_row(row: &rusqlite::Row<'_>) -> StuckRow {
    rows::stuck(row)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn claim(
        &self,
        op: &NewOperation,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let op = op.clone();
        // No fsync of its own: a claim lost with the machine is claimed again
        // by the marketplace's retry, with the same instance id (derived from
        // the order) and the same idempotency key, so the plugin cannot tell.
        // The completion's synced commit makes it durable; so does anything
        // that names the instance before that (`create_in_flight`).
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    if let Some(guard) = &op.replay_guard {
                        let remembered = remember_nonce(conn, &op.id.merchant_id, guard, now_ms)?;
                        if !guard.admits(remembered) {
                            return Ok(Claim::Replayed(remembered));
                        }
                    }
                    claim(conn, &op, now_ms, lease_ms)
                }),
            )
            .await
    }

    async fn load(&self, id: &OperationId) -> Result<Option<OperationRecord>, StoreError> {
        let args: [&dyn ToSql; 2] = [&id.merchant_id, &id.idempotency_key];
        self.readers
            .read(|conn| query_row(conn, sql::LOAD_OPERATION, &args, record))
    }

    async fn take_over(
        &self,
        id: &OperationId,
        seen_attempt: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        let id = id.clone();
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let args: [&dyn ToSql; 5] = [
                        &id.merchant_id,
                        &id.idempotency_key,
                        &i64::from(seen_attempt),
                        &(now_ms + lease_ms),
                        &now_ms,
                    ];
                    let attempt =
                        query_row(conn, sql::TAKE_OVER, &args, |row| Ok(row.get::<_, i64>(0)?))?;
                    attempt.map(fence).transpose()
                }),
            )
            .await
    }

    async fn complete(
        &self,
        id: &OperationId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let work = (id.clone(), completion.clone());
        // A final result is answered from the store on every retry: on disk
        // first. A transient one only says "run it again", which a lost
        // record says too (the claim's lease runs out and it is taken over).
        let durability = if completion.status.is_final() {
            Durability::Synced
        } else {
            Durability::Lazy
        };
        self.writer
            .write(
                durability,
                Box::new(move |conn| {
                    let (id, completion) = &work;
                    complete(conn, id, attempt, completion, now_ms)
                }),
            )
            .await
    }

    async fn park_exhausted(
        &self,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<Vec<(String, String, u32)>, StoreError> {
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let args: [&dyn ToSql; 2] = [&now_ms, &i64::from(max_attempts)];
                    query_all(conn, sql::PARK_EXHAUSTED, &args, |row| {
                        let attempt: i64 = row.get("attempt")?;
                        Ok((
                            row.get("merchant_id")?,
                            row.get("business_key")?,
                            fence(attempt)?,
                        ))
                    })
                }),
            )
            .await
    }

    async fn stuck(
        &self,
        now_ms: i64,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<StuckRow>, StoreError> {
        let args: [&dyn ToSql; 3] = [&now_ms, &i64::from(max_attempts), &i64::from(limit)];
        self.readers
            .read(|conn| query_all(conn, sql::STUCK_OPERATIONS, &args, |row| Ok(stuck_row(row))))
    }

    async fn park(&self, id: &OperationId, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
        let work = (id.clone(), reason.to_string());
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let (id, reason) = &work;
                    let args: [&dyn ToSql; 4] =
                        [&id.merchant_id, &id.idempotency_key, &now_ms, reason];
                    Ok(execute(conn, sql::PARK, &args)? == 1)
                }),
            )
            .await
    }

    async fn parked(&self, merchant_id: &str, limit: u32) -> Result<Vec<StuckRow>, StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &i64::from(limit)];
        self.readers
            .read(|conn| query_all(conn, sql::PARKED, &args, |row| Ok(stuck_row(row))))
    }

    async fn reopen(
        &self,
        id: &OperationId,
        attempt: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let args: [&dyn ToSql; 4] = [
                        &id.merchant_id,
                        &id.idempotency_key,
                        &i64::from(attempt),
                        &now_ms,
                    ];
                    Ok(execute(conn, sql::REOPEN, &args)? == 1)
                }),
            )
            .await
    }

    async fn oldest_failures(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.readers.read(|conn| {
            query_all(conn, sql::OLDEST_FAILURES, &[], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
        })
    }

    async fn instance(
        &self,
        merchant_id: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let args: [&dyn ToSql; 2] = [&merchant_id, &instance_id];
        self.readers
            .read(|conn| query_row(conn, sql::LOAD_INSTANCE, &args, |row| rows::instance(row)))
    }

    async fn remember_nonce(
        &self,
        merchant_id: &str,
        guard: &ReplayGuard,
        now_ms: i64,
    ) -> Result<Remembered, StoreError> {
        let (merchant_id, guard) = (merchant_id.to_string(), guard.clone());
        // A nonce lost in a crash lets that one request be replayed once
        // more; every effect of a request is a synced write after its
        // nonce's (which makes the nonce durable too), and replays of those
        // are answered from the operation record.
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| remember_nonce(conn, &merchant_id, &guard, now_ms)),
            )
            .await
    }

    fn health(&self) -> Health {
        self.writer.health()
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.writer
            .write(Durability::Synced, Box::new(|_| Ok(())))
            .await
    }

    async fn reap_nonces(&self, now_ms: i64) -> Result<u64, StoreError> {
        // Reaping lost in a crash is redone by the next pass.
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| Ok(execute(conn, sql::REAP_NONCES, &[&now_ms])? as u64)),
            )
            .await
    }

    async fn reap(&self, operations_before_ms: i64, now_ms: i64) -> Result<Reaped, StoreError> {
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    let operations = execute(conn, sql::REAP_OPERATIONS, &[&operations_before_ms])?;
                    let nonces = execute(conn, sql::REAP_NONCES, &[&now_ms])?;
                    Ok(Reaped {
                        operations: operations as u64,
                        nonces: nonces as u64,
                    })
                }),
            )
            .await
    }
}

/// Remembers a merchant's replay guard for its memory, or says it was seen
/// before.
fn remember_nonce(
    conn: &Connection,
    merchant_id: &str,
    guard: &ReplayGuard,
    now_ms: i64,
) -> Result<Remembered, StoreError> {
    let (nonce, binding) = (&guard.key, guard.binding.as_deref());
    let expires_at = now_ms.saturating_add(guard.memory_ms);
    let args: [&dyn ToSql; 4] = [&merchant_id, &nonce, &expires_at, &binding];
    if execute(conn, sql::REMEMBER_NONCE, &args)? == 1 {
        return Ok(Remembered::New);
    }
    let args: [&dyn ToSql; 5] = [&merchant_id, &nonce, &expires_at, &now_ms, &binding];
    if execute(conn, sql::REFRESH_EXPIRED_NONCE, &args)? == 1 {
        return Ok(Remembered::New);
    }
    let args: [&dyn ToSql; 2] = [&merchant_id, &nonce];
    let stored = query_row(conn, sql::NONCE_BINDING, &args, |row| {
        Ok(row.get::<_, Option<String>>(0)?)
    })?
    .flatten();
    Ok(Remembered::Again {
        same_binding: stored.as_deref() == binding,
    })
}

/// The claim's statements: propose the instance, insert the record, or read
/// the existing one.
fn claim(
    conn: &Connection,
    op: &NewOperation,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Claim, StoreError> {
    let merchant = &op.id.merchant_id;
    let mut instance_id = op.instance_id.clone();
    if let Some(assignment) = &op.assignment {
        let (order, line) = (&assignment.order_id, &assignment.order_line_key);
        let args: [&dyn ToSql; 5] = [merchant, &assignment.instance_id, order, line, &now_ms];
        execute(conn, sql::PROPOSE_INSTANCE, &args)?;
        let args: [&dyn ToSql; 3] = [merchant, order, line];
        let assigned = query_row(conn, sql::INSTANCE_FOR_ORDER_LINE, &args, |row| {
            Ok(row.get::<_, String>(0)?)
        })?
        .ok_or_else(|| StoreError::Corrupt("the proposed instance is not there".into()))?;
        instance_id = Some(assigned);
    }
    let args: [&dyn ToSql; 10] = [
        merchant,
        &op.id.idempotency_key,
        &op.test,
        &op.kind,
        &op.business_key,
        &instance_id,
        &op.fingerprint,
        &(now_ms + lease_ms),
        &op.request_json,
        &now_ms,
    ];
    if query_row(conn, sql::CLAIM, &args, |_| Ok(()))?.is_some() {
        return Ok(Claim::Won { instance_id });
    }
    let args: [&dyn ToSql; 2] = [merchant, &op.id.idempotency_key];
    let existing = query_row(conn, sql::LOAD_OPERATION, &args, record)?
        .ok_or_else(|| StoreError::Corrupt("a claim lost to a record that is not there".into()))?;
    Ok(Claim::Exists(Box::new(existing)))
}

/// The fenced completion and what it teaches the instance row.
fn complete(
    conn: &Connection,
    id: &OperationId,
    attempt: u32,
    completion: &Completion,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let args: [&dyn ToSql; 6] = [
        &id.merchant_id,
        &id.idempotency_key,
        &i64::from(attempt),
        &completion.status.as_str(),
        &completion.result_json,
        &now_ms,
    ];
    if execute(conn, sql::COMPLETE, &args)? != 1 {
        return Ok(false);
    }
    let Some(change) = &completion.instance else {
        return Ok(true);
    };
    let statement = if change.import {
        sql::UPSERT_INSTANCE
    } else {
        sql::UPDATE_INSTANCE
    };
    let args: [&dyn ToSql; 6] = [
        &id.merchant_id,
        &change.instance_id,
        &change.status,
        &change.expires_at,
        &now_ms,
        &change.status_changed_at,
    ];
    execute(conn, statement, &args)?;
    for kind in &completion.supersedes {
        let args: [&dyn ToSql; 3] = [&id.merchant_id, &change.instance_id, kind];
        execute(conn, sql::SUPERSEDE, &args)?;
    }
    Ok(true)
}
