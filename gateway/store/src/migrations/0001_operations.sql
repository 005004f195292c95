-- The business mapping: which instance id the gateway assigned to which
-- order line. Kept forever; it is the contract the marketplace relies on.
CREATE TABLE instances (
    merchant_id    TEXT NOT NULL,
    instance_id    TEXT NOT NULL,
    -- NULL for instances imported from before the gateway (legacy import).
    order_id       TEXT,
    -- orderLineId (V2) or productId (V1 pay-per-use); NULL when imported.
    order_line_key TEXT,
    -- assigned | imported
    origin         TEXT NOT NULL,
    -- provisioning | active | frozen | released | failed
    status         TEXT NOT NULL,
    -- Unix seconds, as last told by a create or renew.
    expires_at     BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, instance_id)
);
CREATE UNIQUE INDEX instances_by_order_line
    ON instances (merchant_id, order_id, order_line_key);

-- One record per business operation: single-flight, replay and crash
-- recovery. Reaped after the retention window.
CREATE TABLE operations (
    merchant_id     TEXT NOT NULL,
    -- The key the plugin gets: stable across every marketplace retry.
    idempotency_key TEXT NOT NULL,
    test            BOOLEAN NOT NULL,
    -- create | renew | status:freeze | status:unfreeze | release | upgrade | license
    kind            TEXT NOT NULL,
    -- The business key in readable form, for operators.
    business_key    TEXT NOT NULL,
    instance_id     TEXT,
    -- sha256 (hex) of the canonical business fields.
    fingerprint     TEXT NOT NULL,
    -- in_flight | succeeded | failed_final | failed_retryable | parked
    status          TEXT NOT NULL,
    -- The fencing token: every completion write names the attempt it ran.
    attempt         BIGINT NOT NULL,
    -- Unix ms; an in_flight row whose lease has passed may be taken over.
    locked_until    BIGINT,
    -- The request as the plugin got it (JSON), so that the completer can
    -- re-drive the operation without the marketplace.
    request_json    TEXT NOT NULL,
    -- The business result to replay (the answer without its signature).
    result_json     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, idempotency_key)
);
CREATE INDEX operations_by_status ON operations (status, locked_until);
CREATE INDEX operations_by_instance ON operations (merchant_id, instance_id);
CREATE INDEX operations_by_age ON operations (updated_at);

-- V2 nonces already seen, shared by every process on the store.
CREATE TABLE seen_nonces (
    merchant_id TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX seen_nonces_by_expiry ON seen_nonces (expires_at);
