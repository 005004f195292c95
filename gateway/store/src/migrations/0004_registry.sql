-- Merchants, their keys, plugin modules and versions, admin tokens and the
-- audit of administrative changes: what the admin API creates and changes
-- at run time (and the configuration file bootstraps).
CREATE TABLE merchants (
    merchant_id      TEXT PRIMARY KEY,
    -- The merchant's settings as JSON (the gateway's MerchantSettings:
    -- encryptType, signing, generations, limits, policies, plugin config).
    settings_json    TEXT NOT NULL,
    disabled         BOOLEAN NOT NULL,
    -- The plugin version callbacks run on, and the one before it (rollback).
    active_version   BIGINT,
    previous_version BIGINT,
    -- sha256 of the configuration-file entry it was last bootstrapped
    -- from; NULL for a merchant made through the API.
    bootstrap_hash   TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Access keys (several at once: rotation). The key itself is sealed
-- (AES-256-GCM under a key derived from the gateway's master key): the
-- gateway needs it in clear to verify HMAC signatures, so it cannot be
-- hashed.
CREATE TABLE merchant_keys (
    merchant_id TEXT NOT NULL REFERENCES merchants (merchant_id),
    -- Public handle: the first 16 hex digits of the key's sha256.
    key_id      TEXT NOT NULL,
    sealed_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (merchant_id, key_id)
);

-- Plugin components, content-addressed: the same bytes are stored once.
CREATE TABLE modules (
    sha256     TEXT PRIMARY KEY,
    bytes      BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- A merchant's uploaded versions, numbered 1, 2, … per merchant.
CREATE TABLE plugin_versions (
    merchant_id      TEXT NOT NULL REFERENCES merchants (merchant_id),
    version          BIGINT NOT NULL,
    sha256           TEXT NOT NULL REFERENCES modules (sha256),
    size             BIGINT NOT NULL,
    contract_version TEXT NOT NULL,
    uploaded_at      BIGINT NOT NULL,
    uploaded_by      TEXT NOT NULL,
    PRIMARY KEY (merchant_id, version)
);
CREATE INDEX plugin_versions_by_module ON plugin_versions (sha256);

-- Admin API tokens: stored as the sha256 of the secret (the secret is
-- shown once, at creation). merchant_id NULL: an operator token.
CREATE TABLE admin_tokens (
    token_id    TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    merchant_id TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  BIGINT
);

-- Who (which token) did what to which merchant, when. Never a secret.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    merchant_id TEXT,
    action      TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
CREATE INDEX audit_log_by_merchant ON audit_log (merchant_id, seq);
