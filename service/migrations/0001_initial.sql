-- Users, their transactions, idempotency keys and login-failure counters.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL CHECK (char_length(username) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique whatever their case.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

CREATE TABLE transactions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text          NOT NULL CHECK (type IN ('income', 'expense')),
    -- numeric(14,2) holds up to 999,999,999,999.99; NaN compares greater than every number in
    -- PostgreSQL, so it is excluded explicitly.
    amount      numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
    description text          CHECK (char_length(description) <= 500),
    category    text          CHECK (char_length(category) BETWEEN 1 AND 64),
    occurred_at timestamptz   NOT NULL DEFAULT now(),
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
-- Listing newest first (and oldest first) with keyset pagination, and analytics over a period.
CREATE INDEX transactions_user_occurred_idx
    ON transactions (user_id, occurred_at, id) INCLUDE (type, amount, category);
-- Listing by amount with keyset pagination.
CREATE INDEX transactions_user_amount_idx ON transactions (user_id, amount, id);
-- Listing categories and filtering by one.
CREATE INDEX transactions_user_category_idx ON transactions (user_id, category);

CREATE TABLE idempotency_keys (
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status       smallint,
    body         jsonb,
    location     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE TABLE login_failures (
    username_key      text        PRIMARY KEY,
    failures          integer     NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);
