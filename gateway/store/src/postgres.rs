//! The shared store: PostgreSQL, for several gateway replicas on one
//! database (through `tokio-postgres` and a `deadpool` connection pool).
//!
//! The same SQL as SQLite's (`sql`), the same rows (`rows`); what differs
//! is how several processes on several hosts keep the guarantees one
//! SQLite writer thread gave for free:
//! - **Claims and fences** need nothing more: `INSERT … ON CONFLICT DO
//!   NOTHING` makes a second inserter wait for the first transaction and
//!   then find its row, and a fenced `UPDATE … WHERE attempt = $n` that
//!   loses a race re-reads the row and matches nothing (READ COMMITTED).
//!   So a completer on every replica may pick the same stuck record; only
//!   one takes it over, and only that one runs the plugin.
//! - **Singleton sweeps** (parking exhausted records, reaping) take a
//!   transaction-scoped advisory lock with `pg_try_advisory_xact_lock`: a
//!   replica that finds it taken skips its pass. Transaction-scoped, so a
//!   replica killed mid-sweep cannot leave it held.
//! - **Administrative changes** take a transaction-scoped advisory lock
//!   before they write (`AUDIT_LOCK`), so that the audit log's numbers are
//!   committed in order: every replica follows the log by number
//!   (`audit_after`), and a number committed after a higher one would be
//!   skipped. Changes are rare; serialising them costs nothing that shows.
//! - **Quotas** lock the merchant's usage row (`FOR UPDATE`).
//! - **Durability per write**: what SQLite's writer commits lazily (claims,
//!   nonces, transient completions, the callback log) commits here on a
//!   second pool whose sessions run with `synchronous_commit = off` (the
//!   server flushes within a fraction of a second, and a crash of the
//!   gateway loses nothing); final completions and every administrative
//!   change go through the first pool and wait for the flush. The two
//!   share `max_connections` half and half.
//!
//! The connection is TLS (rustls, verified by name) unless the database is
//! on this machine; the URL's `sslmode` decides when it says.
//!
//! A lost database answers `StoreError`s (000005 on the wire, retried by
//! the marketplace), counts as failing in [`Health`] for `/readyz`, and
//! heals by itself: the pool drops closed connections and opens new ones.

mod callback_log;
mod kv;
mod registry;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;

use super::rows::{self, fence};
use super::sql;
use super::{
    Claim, Completion, Health, InstanceRecord, NewOperation, OperationId, OperationRecord, Reaped,
    Remembered, ReplayGuard, Store, StoreError, StuckRow,
};

/// How to reach the PostgreSQL store (built from the gateway's
/// configuration).
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// `postgres://user[:password]@host[:port]/database[?options]`.
    pub url: String,
    /// Connections kept at most (each replica has its own pool).
    pub max_connections: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before it fails.
    pub acquire_timeout: Duration,
    /// PEM certificates of the authority that signed the database's
    /// certificate, trusted besides the public (webpki) roots.
    pub ca_file: Option<PathBuf>,
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    /// Reads, and writes that wait for the server's flush.
    pool: Pool,
    /// Writes that do not (`synchronous_commit = off` for the session): a
    /// lazy write costs no round trip of its own to say so.
    lazy: Pool,
    health: Arc<HealthState>,
}

/// Calls in a row that could not reach the database, and why the last did.
#[derive(Default)]
struct HealthState {
    failing: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

/// A parameter, as the driver binds it.
type Arg<'a> = &'a (dyn ToSql + Sync);

/// Advisory lock keys (arbitrary, fixed: every replica uses the same).
const MIGRATION_LOCK: i64 = 0x6b6f_6f67_0001;
const AUDIT_LOCK: i64 = 0x6b6f_6f67_0002;
const PARK_LOCK: i64 = 0x6b6f_6f67_0003;
const REAP_LOCK: i64 = 0x6b6f_6f67_0004;
const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";

/// Whether a transaction's commit waits for the server's flush.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    Synced,
    /// `synchronous_commit = off` (the lazy pool's sessions): lost only
    /// if the database server itself crashes within its flush delay.
    Lazy,
}

impl PostgresStore {
    /// Connects and migrates the store (every replica may do so at once:
    /// migrations take an advisory lock).
    pub async fn open(settings: &PostgresSettings) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| StoreError::PostgresOpen(format!("the store's url: {e}")))?;
        config.connect_timeout(settings.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("koogallery-gateway");
        }
        if !settings.url.contains("sslmode=") {
            config.ssl_mode(default_ssl_mode(&config));
        }
        let tls = tls(settings.ca_file.as_deref())?;
        let mut lazy_config = config.clone();
        let options = config.get_options().unwrap_or_default();
        lazy_config.options(format!("{options} -c synchronous_commit=off").trim());
        let lazy_share = (settings.max_connections / 2).max(1);
        let durable_share = settings.max_connections.saturating_sub(lazy_share).max(1);
        let pool = pool_of(config, tls.clone(), durable_share, settings)?;
        let lazy = pool_of(lazy_config, tls, lazy_share, settings)?;
        let store = PostgresStore {
            pool,
            lazy,
            health: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes the pool (its connections end as they are returned).
    pub fn close(&self) {
        self.pool.close();
        self.lazy.close();
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let known = sql::POSTGRES_MIGRATIONS.last().map_or(0, |(v, _)| *v);
        for &(version, script) in sql::POSTGRES_MIGRATIONS {
            let failed = |source| StoreError::PostgresMigrate { version, source };
            let tx = client.transaction().await.map_err(failed)?;
            tx.execute(LOCK, &[&MIGRATION_LOCK]).await.map_err(failed)?;
            tx.batch_execute(sql::CREATE_MIGRATIONS_TABLE)
                .await
                .map_err(failed)?;
            let found: i64 = tx
                .query_one(sql::SCHEMA_VERSION, &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(failed)?;
            if found > known {
                return Err(StoreError::TooNew { found, known });
            }
            if found >= version {
                continue;
            }
            tx.batch_execute(script).await.map_err(failed)?;
            tx.execute(sql::RECORD_MIGRATION, &[&version, &crate::unix_ms()])
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
        }
        Ok(())
    }

    /// A connection for reads and synced writes.
    async fn client(&self) -> Result<Object, StoreError> {
        self.connection(Commit::Synced).await
    }

    /// A connection whose commits wait for the server's flush, or not.
    async fn connection(&self, commit: Commit) -> Result<Object, StoreError> {
        let pool = match commit {
            Commit::Synced => &self.pool,
            Commit::Lazy => &self.lazy,
        };
        pool.get()
            .await
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))
    }

    /// Every row of `sql` with `args`, read into records with `read`.
    async fn read_all<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        read: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.observed(async {
            let client = self.client().await?;
            let rows = query_all(&client, sql, args).await?;
            rows.iter().map(read).collect()
        })
        .await
    }

    /// The first row of `sql` with `args`, if any, read with `read`.
    async fn read_one<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        read: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.observed(async {
            let client = self.client().await?;
            let row = query_row(&client, sql, args).await?;
            row.as_ref().map(read).transpose()
        })
        .await
    }

    /// Runs `work`, keeping count of calls that could not reach the
    /// database (a query the database refused is not an outage).
    async fn observed<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = work.await;
        match &result {
            Ok(_) => self.health.failing.store(0, Ordering::Relaxed),
            Err(error) if is_outage(error) => {
                self.health.failing.fetch_add(1, Ordering::Relaxed);
                *self
                    .health
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
            }
            Err(_) => {}
        }
        result
    }
}

/// A pool of at most `size` connections made with `config`.
fn pool_of(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    size: usize,
    settings: &PostgresSettings,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // A connection the server closed is dropped on return; a
            // half-open one fails its next query, which the caller answers
            // as retryable.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .build()
        .map_err(|e| StoreError::PostgresOpen(e.to_string()))
}

/// Without `sslmode` in the URL: TLS required, but to this machine itself
/// (loopback, a Unix socket), where there is no network to protect and a
/// local server often has no certificate worth the name.
fn default_ssl_mode(config: &tokio_postgres::Config) -> SslMode {
    let local = config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    if local {
        SslMode::Disable
    } else {
        SslMode::Require
    }
}

/// TLS to the database, verified by name against the public roots and the
/// operator's own authority, if given (rustls on ring, as everywhere else
/// in the gateway).
fn tls(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let refused = |why: String| StoreError::PostgresOpen(why);
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| refused(format!("reading the CA file {}: {e}", path.display())))?;
        let mut added = 0;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| refused(format!("the CA file {}: {e}", path.display())))?;
            roots
                .add(certificate)
                .map_err(|e| refused(format!("the CA file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(refused(format!(
                "the CA file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// An error and its causes, on one line (the pool's own message hides why
/// a connection failed: a refused certificate, a wrong password).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Whether `error` says the database could not be reached (rather than
/// that it refused a query).
fn is_outage(error: &StoreError) -> bool {
    match error {
        StoreError::Unavailable(_) => true,
        StoreError::Postgres(error) => match error.as_db_error() {
            None => true,
            // Connection exceptions, operator intervention (shutdown),
            // insufficient resources.
            Some(db) => ["08", "57", "53"]
                .iter()
                .any(|class| db.code().code().starts_with(class)),
        },
        _ => false,
    }
}

/// Runs `sql` with `args`; how many rows it changed.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, args).await?)
}

/// The first row of `sql` with `args`, if any.
async fn query_row(
    client: &impl GenericClient,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, args).await?.into_iter().next())
}

/// Every row of `sql` with `args`.
async fn query_all(
    client: &impl GenericClient,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, args).await?)
}

/// Takes the singleton lock `key` for this transaction, if it is free.
async fn try_lock(client: &impl GenericClient, key: i64) -> Result<bool, StoreError> {
    let row = query_row(client, TRY_LOCK, &[&key]).await?;
    Ok(row
        .map(|row| row.try_get::<_, bool>(0))
        .transpose()?
        .unwrap_or(false))
}

impl rows::Columns for Row {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn maybe_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn maybe_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.try_get(name)?)
    }
}

/// The first column of `row` as an `i64`.
fn first_int(row: &Row) -> Result<i64, StoreError> {
    Ok(row.try_get(0)?)
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn claim(
        &self,
        op: &NewOperation,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        // Lazy for the reason SQLite's claim is (see `SqliteStore::claim`).
        self.observed(async {
            let mut client = self.connection(Commit::Lazy).await?;
            let tx = client.transaction().await?;
            if let Some(guard) = &op.replay_guard {
                let remembered = remember_nonce(&tx, &op.id.merchant_id, guard, now_ms).await?;
                if !guard.admits(remembered) {
                    tx.commit().await?;
                    return Ok(Claim::Replayed(remembered));
                }
            }
            let claim = claim(&tx, op, now_ms, lease_ms).await?;
            tx.commit().await?;
            Ok(claim)
        })
        .await
    }

    async fn load(&self, id: &OperationId) -> Result<Option<OperationRecord>, StoreError> {
        let args: [Arg<'_>; 2] = [&id.merchant_id, &id.idempotency_key];
        self.read_one(sql::LOAD_OPERATION, &args, rows::operation)
            .await
    }

    async fn take_over(
        &self,
        id: &OperationId,
        seen_attempt: u32,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<u32>, StoreError> {
        self.observed(async {
            let client = self.client().await?;
            let args: [Arg<'_>; 5] = [
                &id.merchant_id,
                &id.idempotency_key,
                &i64::from(seen_attempt),
                &(now_ms + lease_ms),
                &now_ms,
            ];
            let row = query_row(&client, sql::TAKE_OVER, &args).await?;
            row.as_ref().map(|row| fence(first_int(row)?)).transpose()
        })
        .await
    }

    async fn complete(
        &self,
        id: &OperationId,
        attempt: u32,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let commit = if completion.status.is_final() {
            Commit::Synced
        } else {
            Commit::Lazy
        };
        self.observed(async {
            let mut client = self.connection(commit).await?;
            let tx = client.transaction().await?;
            let written = complete(&tx, id, attempt, completion, now_ms).await?;
            tx.commit().await?;
            Ok(written)
        })
        .await
    }

    async fn park_exhausted(
        &self,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<Vec<(String, String, u32)>, StoreError> {
        self.observed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if !try_lock(&tx, PARK_LOCK).await? {
                return Ok(Vec::new());
            }
            let args: [Arg<'_>; 2] = [&now_ms, &i64::from(max_attempts)];
            let parked = query_all(&tx, sql::PARK_EXHAUSTED, &args)
                .await?
                .iter()
                .map(|row| {
                    let attempt: i64 = row.try_get("attempt")?;
                    Ok((
                        row.try_get("merchant_id")?,
                        row.try_get("business_key")?,
                        fence(attempt)?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            tx.commit().await?;
            Ok(parked)
        })
        .await
    }

    async fn stuck(
        &self,
        now_ms: i64,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<StuckRow>, StoreError> {
        let args: [Arg<'_>; 3] = [&now_ms, &i64::from(max_attempts), &i64::from(limit)];
        self.read_all(sql::STUCK_OPERATIONS, &args, |row| Ok(rows::stuck(row)))
            .await
    }

    async fn park(&self, id: &OperationId, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.observed(async {
            let client = self.client().await?;
            let args: [Arg<'_>; 4] = [&id.merchant_id, &id.idempotency_key, &now_ms, &reason];
            Ok(execute(&client, sql::PARK, &args).await? == 1)
        })
        .await
    }

    async fn parked(&self, merchant_id: &str, limit: u32) -> Result<Vec<StuckRow>, StoreError> {
        let args: [Arg<'_>; 2] = [&merchant_id, &i64::from(limit)];
        self.read_all(sql::PARKED, &args, |row| Ok(rows::stuck(row)))
            .await
    }

    async fn reopen(
        &self,
        id: &OperationId,
        attempt: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.observed(async {
            let client = self.client().await?;
            let args: [Arg<'_>; 4] = [
                &id.merchant_id,
                &id.idempotency_key,
                &i64::from(attempt),
                &now_ms,
            ];
            Ok(execute(&client, sql::REOPEN, &args).await? == 1)
        })
        .await
    }

    async fn oldest_failures(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read_all(sql::OLDEST_FAILURES, &[], |row| {
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    async fn instance(
        &self,
        merchant_id: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let args: [Arg<'_>; 2] = [&merchant_id, &instance_id];
        self.read_one(sql::LOAD_INSTANCE, &args, rows::instance)
            .await
    }

    async fn remember_nonce(
        &self,
        merchant_id: &str,
        guard: &ReplayGuard,
        now_ms: i64,
    ) -> Result<Remembered, StoreError> {
        // Lazy for the reason SQLite's is (see `SqliteStore::remember_nonce`);
        // autocommit statements, no transaction: the common case (a new
        // nonce) is one round trip, and each statement decides alone.
        self.observed(async {
            let client = self.connection(Commit::Lazy).await?;
            remember_nonce(&client, merchant_id, guard, now_ms).await
        })
        .await
    }

    async fn reap(&self, operations_before_ms: i64, now_ms: i64) -> Result<Reaped, StoreError> {
        self.observed(async {
            let mut client = self.connection(Commit::Lazy).await?;
            let tx = client.transaction().await?;
            if !try_lock(&tx, REAP_LOCK).await? {
                return Ok(Reaped::default());
            }
            let operations = execute(&tx, sql::REAP_OPERATIONS, &[&operations_before_ms]).await?;
            let nonces = execute(&tx, sql::REAP_NONCES, &[&now_ms]).await?;
            tx.commit().await?;
            Ok(Reaped { operations, nonces })
        })
        .await
    }

    fn health(&self) -> Health {
        Health {
            failing_batches: self.health.failing.load(Ordering::Relaxed),
            last_failure: self
                .health
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    async fn probe(&self) -> Result<(), StoreError> {
        // `txid_current()` allocates a transaction id: it fails where
        // writes cannot commit (a standby, a read-only database).
        self.observed(async {
            let client = self.client().await?;
            client.simple_query("SELECT txid_current()").await?;
            Ok(())
        })
        .await
    }

    async fn reap_nonces(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.observed(async {
            let mut client = self.connection(Commit::Lazy).await?;
            let tx = client.transaction().await?;
            let reaped = execute(&tx, sql::REAP_NONCES, &[&now_ms]).await?;
            tx.commit().await?;
            Ok(reaped)
        })
        .await
    }
}

/// Remembers a merchant's replay guard for its memory, or says it was seen
/// before. Each statement decides alone, in a transaction or out of one.
async fn remember_nonce(
    client: &impl GenericClient,
    merchant_id: &str,
    guard: &ReplayGuard,
    now_ms: i64,
) -> Result<Remembered, StoreError> {
    let (nonce, binding) = (&guard.key, guard.binding.as_deref());
    let expires_at = now_ms.saturating_add(guard.memory_ms);
    let args: [Arg<'_>; 4] = [&merchant_id, &nonce, &expires_at, &binding];
    if execute(client, sql::REMEMBER_NONCE, &args).await? == 1 {
        return Ok(Remembered::New);
    }
    let args: [Arg<'_>; 5] = [&merchant_id, &nonce, &expires_at, &now_ms, &binding];
    if execute(client, sql::REFRESH_EXPIRED_NONCE, &args).await? == 1 {
        return Ok(Remembered::New);
    }
    let args: [Arg<'_>; 2] = [&merchant_id, &nonce];
    let row = query_row(client, sql::NONCE_BINDING, &args).await?;
    let stored: Option<String> = row.map(|row| row.try_get(0)).transpose()?.flatten();
    Ok(Remembered::Again {
        same_binding: stored.as_deref() == binding,
    })
}

/// The claim's statements (see SQLite's `claim`).
async fn claim(
    tx: &impl GenericClient,
    op: &NewOperation,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Claim, StoreError> {
    let merchant = &op.id.merchant_id;
    let mut instance_id = op.instance_id.clone();
    if let Some(assignment) = &op.assignment {
        let (order, line) = (&assignment.order_id, &assignment.order_line_key);
        let args: [Arg<'_>; 5] = [merchant, &assignment.instance_id, order, line, &now_ms];
        execute(tx, sql::PROPOSE_INSTANCE, &args).await?;
        let args: [Arg<'_>; 3] = [merchant, order, line];
        let row = query_row(tx, sql::INSTANCE_FOR_ORDER_LINE, &args)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the proposed instance is not there".into()))?;
        instance_id = Some(row.try_get(0)?);
    }
    let args: [Arg<'_>; 10] = [
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
    if query_row(tx, sql::CLAIM, &args).await?.is_some() {
        return Ok(Claim::Won { instance_id });
    }
    let args: [Arg<'_>; 2] = [merchant, &op.id.idempotency_key];
    let existing = query_row(tx, sql::LOAD_OPERATION, &args)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a claim lost to a record that is not there".into()))?;
    Ok(Claim::Exists(Box::new(rows::operation(&existing)?)))
}

/// The fenced completion and what it teaches the instance row.
async fn complete(
    tx: &impl GenericClient,
    id: &OperationId,
    attempt: u32,
    completion: &Completion,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let args: [Arg<'_>; 6] = [
        &id.merchant_id,
        &id.idempotency_key,
        &i64::from(attempt),
        &completion.status.as_str(),
        &completion.result_json,
        &now_ms,
    ];
    if execute(tx, sql::COMPLETE, &args).await? != 1 {
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
    let args: [Arg<'_>; 6] = [
        &id.merchant_id,
        &change.instance_id,
        &change.status,
        &change.expires_at,
        &now_ms,
        &change.status_changed_at,
    ];
    execute(tx, statement, &args).await?;
    for kind in &completion.supersedes {
        let args: [Arg<'_>; 3] = [&id.merchant_id, &change.instance_id, kind];
        execute(tx, sql::SUPERSEDE, &args).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> SslMode {
        let config: tokio_postgres::Config = url.parse().expect("a URL");
        default_ssl_mode(&config)
    }

    /// Lazy writes go through sessions that do not wait for the flush;
    /// everything else through sessions that do.
    #[tokio::test]
    async fn the_lazy_pool_does_not_wait_for_the_flush_and_the_other_does() {
        let schema = crate::test_support::ScratchSchema::create().await;
        let settings = PostgresSettings {
            url: schema.url(),
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            ca_file: None,
        };
        let store = PostgresStore::open(&settings).await.expect("opens");
        for (commit, expected) in [(Commit::Lazy, "off"), (Commit::Synced, "on")] {
            let client = store.connection(commit).await.expect("a connection");
            let row = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .expect("shown");
            assert_eq!(row.get::<_, String>(0), expected);
            // The schema the URL names is kept on both.
            let row = client
                .query_one("SHOW search_path", &[])
                .await
                .expect("shown");
            assert_eq!(row.get::<_, String>(0), schema.name());
        }
    }

    #[test]
    fn tls_is_required_unless_the_database_is_on_this_machine() {
        assert_eq!(mode("postgres://u@127.0.0.1/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@localhost:5433/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@[::1]/db"), SslMode::Disable);
        assert_eq!(
            mode("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"),
            SslMode::Disable
        );
        assert_eq!(mode("postgres://u@db.internal/db"), SslMode::Require);
        assert_eq!(mode("postgres://u@10.0.0.5/db"), SslMode::Require);
        assert_eq!(
            mode("postgres://u@localhost,db.internal/db"),
            SslMode::Require
        );
    }
}
