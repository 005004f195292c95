//! The key-value store's SQL (see `sql`).

pub const GET: &str = "SELECT value FROM kv_entries WHERE merchant_id = $1 AND key = $2";
pub const ENTRY_SIZE: &str =
    "SELECT CAST(length(value) AS BIGINT) FROM kv_entries WHERE merchant_id = $1 AND key = $2";
pub const USAGE: &str = "SELECT bytes, keys FROM kv_usage WHERE merchant_id = $1";
/// PostgreSQL: the usage row, made if missing and locked until commit, so
/// that concurrent writers of one merchant check the quota one at a time
/// (SQLite's single writer does that by itself).
pub const ENSURE_USAGE: &str = "INSERT INTO kv_usage (merchant_id, bytes, keys) VALUES ($1, 0, 0) \
     ON CONFLICT (merchant_id) DO NOTHING";
pub const LOCK_USAGE: &str = "SELECT bytes, keys FROM kv_usage WHERE merchant_id = $1 FOR UPDATE";
pub const PUT: &str = "INSERT INTO kv_entries (merchant_id, key, value, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, key) \
     DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
pub const SET_USAGE: &str = "INSERT INTO kv_usage (merchant_id, bytes, keys) VALUES ($1, $2, $3) \
     ON CONFLICT (merchant_id) DO UPDATE SET bytes = excluded.bytes, keys = excluded.keys";
pub const DELETE: &str = "DELETE FROM kv_entries WHERE merchant_id = $1 AND key = $2";
// `key >= $2` lets the primary key find the first candidate; the prefix
// test ends the range.
pub const KEYS: &str = "SELECT key FROM kv_entries WHERE merchant_id = $1 AND key >= $2 \
     AND substr(key, 1, length($2)) = $2 AND (CAST($3 AS TEXT) IS NULL OR key > $3) \
     ORDER BY key LIMIT $4";
