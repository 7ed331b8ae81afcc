-- An idempotency key remembers which operation it was first used for, so that one key sent to two
-- different creates (a transaction, later a transfer) is refused rather than replayed across them.
-- Keys used before this migration were all for creating a transaction. The default stays for
-- servers of the previous version still running during a rolling upgrade; this version always
-- names the operation.
-- Adding a column locks the table for a moment: give up rather than queue requests behind a long
-- transaction (the migration fails, and its init container or Job retries).
SET LOCAL lock_timeout = '5s';
ALTER TABLE idempotency_keys ADD COLUMN operation text NOT NULL DEFAULT 'create_transaction';
COMMENT ON COLUMN idempotency_keys.body IS 'The first result, the created record as JSON, replayed to retries';
