//! The SQL text of the store, portable between SQLite (≥ 3.35) and
//! PostgreSQL: `$n` parameters, `ON CONFLICT … DO NOTHING`, `RETURNING`,
//! `BIGINT` numbers and `BOOLEAN` flags. Only the connection set-up (pragmas,
//! how a write transaction begins) differs per engine, and the schema where
//! the dialects part (an auto-numbered key, a byte column): PostgreSQL has
//! its own copies of those migrations, under the same version numbers.

pub mod callback_log;
pub mod kv;
pub mod registry;

/// Versioned migrations (SQLite), applied in order, each in its own
/// transaction.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_operations.sql")),
    (2, include_str!("migrations/0002_park_reason.sql")),
    (
        3,
        include_str!("migrations/0003_replay_binding_and_status_order.sql"),
    ),
    (4, include_str!("migrations/0004_registry.sql")),
    (5, include_str!("migrations/0005_kv.sql")),
    (6, include_str!("migrations/0006_callback_log.sql")),
    (7, include_str!("migrations/0007_vacuum_settings.sql")),
];

/// The same versions for PostgreSQL: the first three are portable as they
/// stand; the next three spell `BYTEA` and identity columns; the seventh
/// tunes autovacuum (a no-op on SQLite).
pub const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_operations.sql")),
    (2, include_str!("migrations/0002_park_reason.sql")),
    (
        3,
        include_str!("migrations/0003_replay_binding_and_status_order.sql"),
    ),
    (4, include_str!("migrations/postgres/0004_registry.sql")),
    (5, include_str!("migrations/postgres/0005_kv.sql")),
    (6, include_str!("migrations/postgres/0006_callback_log.sql")),
    (
        7,
        include_str!("migrations/postgres/0007_vacuum_settings.sql"),
    ),
];

pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
pub const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
pub const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)";

/// Proposes an instance for an order line; an existing mapping wins.
pub const PROPOSE_INSTANCE: &str = "INSERT INTO instances \
     (merchant_id, instance_id, order_id, order_line_key, origin, status, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 'assigned', 'provisioning', $5, $5) \
     ON CONFLICT DO NOTHING";
pub const INSTANCE_FOR_ORDER_LINE: &str = "SELECT instance_id FROM instances \
     WHERE merchant_id = $1 AND order_id = $2 AND order_line_key = $3";

macro_rules! operation_columns {
    () => {
        "merchant_id, idempotency_key, test, kind, business_key, instance_id, fingerprint, \
         status, attempt, locked_until, request_json, result_json, created_at, updated_at"
    };
}

/// The claim: exactly one inserter gets a row back.
pub const CLAIM: &str = "INSERT INTO operations \
     (merchant_id, idempotency_key, test, kind, business_key, instance_id, fingerprint, \
      status, attempt, locked_until, request_json, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_flight', 1, $8, $9, $10, $10) \
     ON CONFLICT (merchant_id, idempotency_key) DO NOTHING \
     RETURNING attempt";

pub const LOAD_OPERATION: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations WHERE merchant_id = $1 AND idempotency_key = $2"
);

/// Fenced takeover: only from the attempt the caller saw, and only if that
/// attempt failed transiently, was parked, or its lease passed.
pub const TAKE_OVER: &str = "UPDATE operations \
     SET attempt = attempt + 1, status = 'in_flight', locked_until = $4, updated_at = $5, \
         park_reason = NULL \
     WHERE merchant_id = $1 AND idempotency_key = $2 AND attempt = $3 \
       AND (status IN ('failed_retryable', 'parked') \
            OR (status = 'in_flight' AND locked_until < $5)) \
     RETURNING attempt";

/// Fenced completion: a stale worker's write matches no row.
pub const COMPLETE: &str = "UPDATE operations \
     SET status = $4, result_json = $5, locked_until = NULL, updated_at = $6 \
     WHERE merchant_id = $1 AND idempotency_key = $2 AND attempt = $3 AND status = 'in_flight'";

pub const STUCK_OPERATIONS: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations \
     WHERE (status = 'failed_retryable' OR (status = 'in_flight' AND locked_until < $1)) \
       AND attempt < $2 \
     ORDER BY updated_at LIMIT $3"
);

/// Parks what used all its attempts and is still not done.
pub const PARK_EXHAUSTED: &str = "UPDATE operations SET status = 'parked', locked_until = NULL, \
     updated_at = $1, park_reason = 'attempts exhausted' \
     WHERE (status = 'failed_retryable' OR (status = 'in_flight' AND locked_until < $1)) \
       AND attempt >= $2 \
     RETURNING merchant_id, business_key, attempt";

/// Parks one record, whatever its state, with a reason.
pub const PARKED: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations WHERE merchant_id = $1 AND status = 'parked' \
     ORDER BY updated_at DESC LIMIT $2"
);

/// A forced re-drive: a final record becomes a transient failure, fenced.
pub const REOPEN: &str = "UPDATE operations SET status = 'failed_retryable', updated_at = $4 \
     WHERE merchant_id = $1 AND idempotency_key = $2 AND attempt = $3 \
       AND status IN ('succeeded', 'failed_final')";

pub const OLDEST_FAILURES: &str = "SELECT merchant_id, MIN(created_at) FROM operations \
     WHERE status IN ('failed_retryable', 'parked') GROUP BY merchant_id";

pub const PARK: &str = "UPDATE operations SET status = 'parked', locked_until = NULL, \
     updated_at = $3, park_reason = $4 \
     WHERE merchant_id = $1 AND idempotency_key = $2";

/// A success teaches the instance row; an import inserts it.
pub const UPSERT_INSTANCE: &str = "INSERT INTO instances \
     (merchant_id, instance_id, order_id, order_line_key, origin, status, expires_at, \
      status_changed_at, created_at, updated_at) \
     VALUES ($1, $2, NULL, NULL, 'imported', COALESCE($3, 'active'), $4, $6, $5, $5) \
     ON CONFLICT (merchant_id, instance_id) DO UPDATE \
     SET status = COALESCE($3, instances.status), \
         expires_at = COALESCE($4, instances.expires_at), updated_at = $5, \
         status_changed_at = CASE \
             WHEN CAST($6 AS BIGINT) IS NULL THEN instances.status_changed_at \
             WHEN instances.status_changed_at IS NULL OR instances.status_changed_at < $6 THEN $6 \
             ELSE instances.status_changed_at END";
/// `$6`: when the applied status change was signed; the row keeps the latest.
pub const UPDATE_INSTANCE: &str = "UPDATE instances \
     SET status = COALESCE($3, status), expires_at = COALESCE($4, expires_at), updated_at = $5, \
         status_changed_at = CASE \
             WHEN CAST($6 AS BIGINT) IS NULL THEN status_changed_at \
             WHEN status_changed_at IS NULL OR status_changed_at < $6 THEN $6 \
             ELSE status_changed_at END \
     WHERE merchant_id = $1 AND instance_id = $2";

/// Settled records of another kind on the same instance stop replaying.
pub const SUPERSEDE: &str = "DELETE FROM operations \
     WHERE merchant_id = $1 AND instance_id = $2 AND kind = $3 \
       AND status IN ('succeeded', 'failed_final')";

pub const LOAD_INSTANCE: &str = "SELECT merchant_id, instance_id, order_id, order_line_key, origin, \
     status, expires_at, status_changed_at FROM instances \
     WHERE merchant_id = $1 AND instance_id = $2";

pub const REMEMBER_NONCE: &str = "INSERT INTO seen_nonces (merchant_id, nonce, expires_at, binding) \
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// A nonce whose memory expired may be seen again (it is outside the
/// timestamp window by then, so the signature check refuses it anyway).
pub const REFRESH_EXPIRED_NONCE: &str = "UPDATE seen_nonces SET expires_at = $3, binding = $5 \
     WHERE merchant_id = $1 AND nonce = $2 AND expires_at < $4";
pub const NONCE_BINDING: &str = "SELECT binding FROM seen_nonces \
     WHERE merchant_id = $1 AND nonce = $2";

/// Final records past retention. Everything else is still someone's work:
/// in flight (its worker, or a takeover), failing (the completer, which
/// parks it in the end) or parked (a human).
pub const REAP_OPERATIONS: &str = "DELETE FROM operations WHERE updated_at < $1 \
     AND status IN ('succeeded', 'failed_final')";
pub const REAP_NONCES: &str = "DELETE FROM seen_nonces WHERE expires_at < $1";
