-- Token revocation, checked by the one query that authenticates each request.

-- A password change bumps the user's token version; a token carries the version it was issued
-- under (claim `ver`, 0 when absent) and is refused once they differ. A counter rather than a
-- time, so a token issued in the same second as the change is told apart exactly.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0);

-- Tokens revoked one by one (logout), by their `jti`, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        text        PRIMARY KEY CHECK (char_length(jti) BETWEEN 1 AND 128),
    expires_at timestamptz NOT NULL
);
-- Purging the rows of tokens that have expired reads only those rows.
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
