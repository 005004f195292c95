-- Each merchant's key-value store (the plugins' `kv` import), and what each
-- merchant's entries weigh, kept in the same transaction as every change so
-- that a quota check reads one row.
CREATE TABLE kv_entries (
    merchant_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, key)
);

CREATE TABLE kv_usage (
    merchant_id TEXT PRIMARY KEY,
    -- Bytes of keys and values together.
    bytes       BIGINT NOT NULL,
    keys        BIGINT NOT NULL
);
