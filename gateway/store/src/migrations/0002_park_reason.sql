-- Why an operation was parked, for the human who resolves it: its attempts
-- ran out, or its record could not be read.
ALTER TABLE operations ADD COLUMN park_reason TEXT;
