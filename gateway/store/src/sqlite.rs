//! The embedded default store: one SQLite file under `data_dir`, through
//! sqlx. WAL journal, `synchronous=FULL` (an fsync per commit: these are
//! order records) but for batches of writes a crash may lose harmlessly
//! (`writer::Durability`), a busy timeout. Every write goes through the
//! group-commit writer (`store::writer`): one connection, `BEGIN IMMEDIATE`
//! (a transaction never has to upgrade a read lock, which
//! `SQLITE_BUSY_SNAPSHOT` would fail without waiting), one fsync per batch.
//! Reads use a pool of their own.
//!
//! One host only: several processes may share the file on one machine,
//! replicas on several machines need the PostgreSQL store.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Row as _, SqliteConnection};

use super::sql;
use super::writer::{Durability, Writer};
use super::{
    Claim, Completion, Health, InstanceRecord, NewOperation, OperationId, OperationRecord,
    OperationStatus, Reaped, Remembered, Store, StoreError, StuckRow,
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

/// Connections for reads (WAL readers never wait for the writer).
const READ_CONNECTIONS: u32 = 8;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads (WAL: they never wait for the writer).
    pool: SqlitePool,
    /// Every write, group-committed on one connection.
    writer: Writer,
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
        let opened = |source| StoreError::Open {
            path: settings.path.clone(),
            source,
        };
        create_private(&settings.path).map_err(|e| opened(sqlx::Error::Io(e)))?;
        let mut options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(opened)?
            .filename(&settings.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true)
            .pragma("page_size", PAGE_SIZE.to_string())
            // `max_size_bytes` caps the database, not its WAL: this bounds
            // what the WAL keeps after each checkpoint.
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string());
        if let Some(bytes) = settings.max_size_bytes {
            options = options.pragma("max_page_count", (bytes / PAGE_SIZE).max(1).to_string());
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(opened)?;
        migrate(&pool).await?;
        let conn = options.connect().await.map_err(opened)?;
        Ok(SqliteStore {
            pool,
            writer: Writer::start(conn),
        })
    }

    /// Closes every connection (tests reopen the same file).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies the migrations this gateway knows and the store lacks, each in
/// its own immediate transaction; refuses a store from a newer gateway.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(sql::CREATE_MIGRATIONS_TABLE)
        .execute(pool)
        .await?;
    let known = sql::MIGRATIONS.last().map_or(0, |(v, _)| *v);
    for &(version, script) in sql::MIGRATIONS {
        let failed = |source| StoreError::Migrate { version, source };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
        let found: i64 = sqlx::query_scalar(sql::SCHEMA_VERSION)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        if found >= version {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(sql::RECORD_MIGRATION)
            .bind(version)
            .bind(unix_ms())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}

/// The wall clock in Unix milliseconds (0 before 1970), for bookkeeping
/// columns the store fills itself.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn record(row: &SqliteRow) -> Result<OperationRecord, StoreError> {
    let attempt: i64 = row.try_get("attempt")?;
    Ok(OperationRecord {
        id: OperationId {
            merchant_id: row.try_get("merchant_id")?,
            idempotency_key: row.try_get("idempotency_key")?,
        },
        test: row.try_get("test")?,
        kind: row.try_get("kind")?,
        business_key: row.try_get("business_key")?,
        instance_id: row.try_get("instance_id")?,
        fingerprint: row.try_get("fingerprint")?,
        status: OperationStatus::parse(row.try_get("status")?)?,
        attempt: fence(attempt)?,
        locked_until: row.try_get("locked_until")?,
        request_json: row.try_get("request_json")?,
        result_json: row.try_get("result_json")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A stuck row, or why it cannot be read (its key is always readable: the
/// columns are `NOT NULL` text).
fn stuck_row(row: &SqliteRow) -> StuckRow {
    match record(row) {
        Ok(record) => StuckRow::Record(record),
        Err(error) => StuckRow::Unreadable {
            id: OperationId {
                merchant_id: row.try_get("merchant_id").unwrap_or_default(),
                idempotency_key: row.try_get("idempotency_key").unwrap_or_default(),
            },
            why: error.to_string(),
        },
    }
}

fn fence(attempt: i64) -> Result<u32, StoreError> {
    u32::try_from(attempt).map_err(|_| StoreError::Corrupt(format!("attempt {attempt}")))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn claim(
        &self,
        op: &NewOperation,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let op = Arc::new(op.clone());
        // No fsync of its own: a claim lost with the machine is claimed again
        // by the marketplace's retry, with the same instance id (derived from
        // the order) and the same idempotency key, so the plugin cannot tell.
        // The completion's synced commit makes it durable; so does anything
        // that names the instance before that (`create_in_flight`).
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    let op = Arc::clone(&op);
                    Box::pin(async move { claim(conn, &op, now_ms, lease_ms).await })
                }),
            )
            .await
    }

    async fn load(&self, id: &OperationId) -> Result<Option<OperationRecord>, StoreError> {
        let row = sqlx::query(sql::LOAD_OPERATION)
            .bind(&id.merchant_id)
            .bind(&id.idempotency_key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn take_over(
        &self,
        id: &OperationId,
        seen_attempt: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        let id = Arc::new(id.clone());
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let id = Arc::clone(&id);
                    Box::pin(async move {
                        let attempt: Option<i64> = sqlx::query_scalar(sql::TAKE_OVER)
                            .bind(&id.merchant_id)
                            .bind(&id.idempotency_key)
                            .bind(i64::from(seen_attempt))
                            .bind(now_ms + lease_ms)
                            .bind(now_ms)
                            .fetch_optional(&mut *conn)
                            .await?;
                        attempt.map(fence).transpose()
                    })
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
        let work = Arc::new((id.clone(), completion.clone()));
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
                    let work = Arc::clone(&work);
                    Box::pin(async move {
                        let (id, completion) = &*work;
                        complete(conn, id, attempt, completion, now_ms).await
                    })
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
                    Box::pin(async move {
                        let rows = sqlx::query(sql::PARK_EXHAUSTED)
                            .bind(now_ms)
                            .bind(i64::from(max_attempts))
                            .fetch_all(&mut *conn)
                            .await?;
                        rows.iter()
                            .map(|row| {
                                let attempt: i64 = row.try_get("attempt")?;
                                Ok((
                                    row.try_get("merchant_id")?,
                                    row.try_get("business_key")?,
                                    fence(attempt)?,
                                ))
                            })
                            .collect()
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
        let rows = sqlx::query(sql::STUCK_OPERATIONS)
            .bind(now_ms)
            .bind(i64::from(max_attempts))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(stuck_row).collect())
    }

    async fn park(&self, id: &OperationId, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
        let work = Arc::new((id.clone(), reason.to_string()));
        self.writer
            .write(
                Durability::Synced,
                Box::new(move |conn| {
                    let work = Arc::clone(&work);
                    Box::pin(async move {
                        let (id, reason) = &*work;
                        let parked = sqlx::query(sql::PARK)
                            .bind(&id.merchant_id)
                            .bind(&id.idempotency_key)
                            .bind(now_ms)
                            .bind(reason)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        Ok(parked == 1)
                    })
                }),
            )
            .await
    }

    async fn instance(
        &self,
        merchant_id: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let row = sqlx::query(sql::LOAD_INSTANCE)
            .bind(merchant_id)
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(InstanceRecord {
            merchant_id: row.try_get("merchant_id")?,
            instance_id: row.try_get("instance_id")?,
            order_id: row.try_get("order_id")?,
            order_line_key: row.try_get("order_line_key")?,
            origin: row.try_get("origin")?,
            status: row.try_get("status")?,
            expires_at: row.try_get("expires_at")?,
            status_changed_at: row.try_get("status_changed_at")?,
        }))
    }

    async fn remember_nonce(
        &self,
        merchant_id: &str,
        nonce: &str,
        binding: Option<&str>,
        now_ms: i64,
        memory_ms: i64,
    ) -> Result<Remembered, StoreError> {
        let work = Arc::new((
            merchant_id.to_string(),
            nonce.to_string(),
            binding.map(str::to_string),
        ));
        // A nonce lost in a crash lets that one request be replayed once
        // more; every effect of a request is a synced write after its
        // nonce's (which makes the nonce durable too), and replays of those
        // are answered from the operation record.
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    let work = Arc::clone(&work);
                    Box::pin(async move {
                        let (merchant_id, nonce, binding) = &*work;
                        let expires_at = now_ms.saturating_add(memory_ms);
                        let inserted = sqlx::query(sql::REMEMBER_NONCE)
                            .bind(merchant_id)
                            .bind(nonce)
                            .bind(expires_at)
                            .bind(binding)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        if inserted == 1 {
                            return Ok(Remembered::New);
                        }
                        let refreshed = sqlx::query(sql::REFRESH_EXPIRED_NONCE)
                            .bind(merchant_id)
                            .bind(nonce)
                            .bind(expires_at)
                            .bind(now_ms)
                            .bind(binding)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        if refreshed == 1 {
                            return Ok(Remembered::New);
                        }
                        let stored: Option<String> = sqlx::query_scalar(sql::NONCE_BINDING)
                            .bind(merchant_id)
                            .bind(nonce)
                            .fetch_one(&mut *conn)
                            .await?;
                        Ok(Remembered::Again {
                            same_binding: stored == *binding,
                        })
                    })
                }),
            )
            .await
    }

    fn health(&self) -> Health {
        self.writer.health()
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.writer
            .write(Durability::Synced, Box::new(|_| Box::pin(async { Ok(()) })))
            .await
    }

    async fn reap_nonces(&self, now_ms: i64) -> Result<u64, StoreError> {
        // Reaping lost in a crash is redone by the next pass.
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    Box::pin(async move {
                        Ok(sqlx::query(sql::REAP_NONCES)
                            .bind(now_ms)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected())
                    })
                }),
            )
            .await
    }

    async fn reap(&self, operations_before_ms: i64, now_ms: i64) -> Result<Reaped, StoreError> {
        self.writer
            .write(
                Durability::Lazy,
                Box::new(move |conn| {
                    Box::pin(async move {
                        let operations = sqlx::query(sql::REAP_OPERATIONS)
                            .bind(operations_before_ms)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        let nonces = sqlx::query(sql::REAP_NONCES)
                            .bind(now_ms)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        Ok(Reaped { operations, nonces })
                    })
                }),
            )
            .await
    }
}

/// The claim's statements: propose the instance, insert the record, or read
/// the existing one.
async fn claim(
    conn: &mut SqliteConnection,
    op: &NewOperation,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Claim, StoreError> {
    let mut instance_id = op.instance_id.clone();
    if let Some(assignment) = &op.assignment {
        sqlx::query(sql::PROPOSE_INSTANCE)
            .bind(&op.id.merchant_id)
            .bind(&assignment.instance_id)
            .bind(&assignment.order_id)
            .bind(&assignment.order_line_key)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        let assigned: String = sqlx::query_scalar(sql::INSTANCE_FOR_ORDER_LINE)
            .bind(&op.id.merchant_id)
            .bind(&assignment.order_id)
            .bind(&assignment.order_line_key)
            .fetch_one(&mut *conn)
            .await?;
        instance_id = Some(assigned);
    }
    let won = sqlx::query(sql::CLAIM)
        .bind(&op.id.merchant_id)
        .bind(&op.id.idempotency_key)
        .bind(op.test)
        .bind(&op.kind)
        .bind(&op.business_key)
        .bind(&instance_id)
        .bind(&op.fingerprint)
        .bind(now_ms + lease_ms)
        .bind(&op.request_json)
        .bind(now_ms)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if won {
        return Ok(Claim::Won { instance_id });
    }
    let row = sqlx::query(sql::LOAD_OPERATION)
        .bind(&op.id.merchant_id)
        .bind(&op.id.idempotency_key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Claim::Exists(Box::new(record(&row)?)))
}

/// The fenced completion and what it teaches the instance row.
async fn complete(
    conn: &mut SqliteConnection,
    id: &OperationId,
    attempt: u32,
    completion: &Completion,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let written = sqlx::query(sql::COMPLETE)
        .bind(&id.merchant_id)
        .bind(&id.idempotency_key)
        .bind(i64::from(attempt))
        .bind(completion.status.as_str())
        .bind(&completion.result_json)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if !written {
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
    sqlx::query(statement)
        .bind(&id.merchant_id)
        .bind(&change.instance_id)
        .bind(change.status)
        .bind(change.expires_at)
        .bind(now_ms)
        .bind(change.status_changed_at)
        .execute(&mut *conn)
        .await?;
    for kind in &completion.supersedes {
        sqlx::query(sql::SUPERSEDE)
            .bind(&id.merchant_id)
            .bind(&change.instance_id)
            .bind(kind)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}
