-- The merchants' view of their callbacks: one record per callback answered,
-- written behind the answer (never before it), pruned after its retention.
-- What it holds is documented in docs/callback-log.md: ids, codes, timings,
-- the plugin's own log records (bounded), the request with the buyer's
-- personal data masked; never keys, signatures or credentials.
CREATE TABLE callback_log (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms            BIGINT NOT NULL,
    merchant_id      TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    generation       TEXT NOT NULL,
    activity         TEXT NOT NULL,
    order_id         TEXT,
    order_line_id    TEXT,
    instance_id      TEXT,
    result_code      TEXT NOT NULL,
    result_msg       TEXT NOT NULL,
    latency_us       BIGINT NOT NULL,
    -- executed, replayed_cache, replayed_store, coalesced, in_progress, … or
    -- refused (why in `reason`).
    path             TEXT NOT NULL,
    reason           TEXT,
    attempt          BIGINT,
    plugin_version   BIGINT,
    plugin_sha256    TEXT,
    -- The operation record it answered for (re-drive).
    idempotency_key  TEXT,
    test             BOOLEAN NOT NULL,
    plugin_logs_json TEXT,
    request_json     TEXT
);
-- One index only, appended to at its right edge like the table itself: a
-- batch of records dirties a few pages, where an index on orders would
-- dirty one page per distinct order. A search (by order, instance, code…)
-- walks the merchant's records newest first; pruning walks the oldest by
-- `seq` (records are appended in time order).
CREATE INDEX callback_log_by_merchant ON callback_log (merchant_id, seq);
