//! The callback log's SQL (see `sql`).

use crate::callback_log::CallbackFilter;

macro_rules! callback_columns {
    () => {
        "seq, at_ms, merchant_id, request_id, generation, activity, order_id, \
     order_line_id, instance_id, result_code, result_msg, latency_us, path, reason, attempt, \
     plugin_version, plugin_sha256, idempotency_key, test, plugin_logs_json, request_json"
    };
}
pub const COLUMNS: &str = callback_columns!();
macro_rules! insert_into {
    () => {
        "INSERT INTO callback_log (at_ms, merchant_id, request_id, generation, \
     activity, order_id, order_line_id, instance_id, result_code, result_msg, latency_us, path, \
     reason, attempt, plugin_version, plugin_sha256, idempotency_key, test, plugin_logs_json, \
     request_json) VALUES "
    };
}
pub const INSERT: &str = concat!(
    insert_into!(),
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
);
/// The values an [`INSERT`] binds per record.
pub const INSERT_VALUES: usize = 20;

/// A record's values in [`INSERT`]'s order, as an array of references that
/// each engine's driver types (`insert_values!(record)`).
macro_rules! insert_values {
    ($r:expr) => {
        [
            &$r.at_ms,
            &$r.merchant_id,
            &$r.request_id,
            &$r.generation,
            &$r.activity,
            &$r.order_id,
            &$r.order_line_id,
            &$r.instance_id,
            &$r.result_code,
            &$r.result_msg,
            &$r.latency_us,
            &$r.path,
            &$r.reason,
            &$r.attempt,
            &$r.plugin_version,
            &$r.plugin_sha256,
            &$r.idempotency_key,
            &$r.test,
            &$r.plugin_logs_json,
            &$r.request_json,
        ]
    };
}
pub(crate) use insert_values;

/// One statement appending `rows` records, its parameters positional
/// (`?`, SQLite's syntax): record i's values are parameters
/// `i * INSERT_VALUES + 1 ..`.
pub fn insert_many_sqlite(rows: usize) -> String {
    let row = format!("({})", vec!["?"; INSERT_VALUES].join(", "));
    format!("{}{}", insert_into!(), vec![row; rows].join(", "))
}
pub const COUNTS: &str = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN result_code <> '000000' THEN 1 ELSE 0 END), 0) \
     FROM callback_log WHERE merchant_id = $1 AND at_ms >= $2";
/// The oldest records, in the order they were appended (≈ time order).
pub const OLDEST: &str = "SELECT seq, at_ms FROM callback_log ORDER BY seq LIMIT $1";
pub const PRUNE_UP_TO: &str = "DELETE FROM callback_log WHERE seq <= $1";
pub const BY_SEQ: &str = concat!(
    "SELECT ",
    callback_columns!(),
    " FROM callback_log WHERE seq = $1"
);

/// A search argument: bound by each engine's driver.
pub enum SearchArg {
    Text(String),
    Int(i64),
}

/// The search's SQL and its arguments: a condition per filter given.
pub fn search(filter: &CallbackFilter) -> (String, Vec<SearchArg>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    let mut text = |column: &str, value: &Option<String>| {
        if let Some(value) = value {
            args.push(SearchArg::Text(value.clone()));
            conditions.push(format!("{column} = ${}", args.len()));
        }
    };
    text("merchant_id", &filter.merchant_id);
    text("order_id", &filter.order_id);
    text("instance_id", &filter.instance_id);
    text("result_code", &filter.result_code);
    text("activity", &filter.activity);
    text("path", &filter.path);
    for (column, op, value) in [
        ("at_ms", ">=", filter.since_ms),
        ("at_ms", "<", filter.until_ms),
        ("seq", "<", filter.before_seq),
    ] {
        if let Some(value) = value {
            args.push(SearchArg::Int(value));
            conditions.push(format!("{column} {op} ${}", args.len()));
        }
    }
    args.push(SearchArg::Int(i64::from(filter.limit)));
    let limit = args.len();
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let sql =
        format!("SELECT {COLUMNS} FROM callback_log {condition}ORDER BY seq DESC LIMIT ${limit}");
    (sql, args)
}
