-- Personal access tokens (issue 15): long-lived tokens a user makes for scripts and integrations,
-- each with a scope (read, or read_write) and an expiry, revoked one by one.
--
-- The secret itself is never stored: token_hash is the SHA-256 of the whole token string
-- (`fin_pat_` + 32 random bytes, base64url). A fast, unsalted hash is right here, unlike for a
-- password: the token has 256 bits of randomness, so no guess or precomputed table can reach it,
-- and a request's lookup is one index probe by the hash (core.tokens, store.personal_access_tokens).
--
-- Expand-only: servers of the previous version never read the new table; they refuse a
-- `fin_pat_` token as they refuse any string that is not a JWT.

CREATE TABLE personal_access_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The API trims surrounding whitespace of every kind; here at least the spaces are checked.
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100 AND name = btrim(name)),
    scope        text        NOT NULL CHECK (scope IN ('read', 'read_write')),
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Set by authentication, at most once a minute per token; null until the first use.
    last_used_at timestamptz,
    CONSTRAINT personal_access_tokens_expiry CHECK (expires_at > created_at)
);
-- Listing a user's tokens (and counting them against the cap).
CREATE INDEX personal_access_tokens_user_idx ON personal_access_tokens (user_id, id);
