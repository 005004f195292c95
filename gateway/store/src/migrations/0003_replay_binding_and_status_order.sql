-- V1 requests carry no nonce: their authToken is remembered instead, bound
-- to a digest of the exact parameters it signed (a token reused for other
-- parameters is forged). NULL for V2 nonces.
ALTER TABLE seen_nonces ADD COLUMN binding TEXT;
-- When the marketplace signed the last status change applied to the
-- instance (Unix ms, its clock): an older freeze or unfreeze is stale.
ALTER TABLE instances ADD COLUMN status_changed_at BIGINT;
