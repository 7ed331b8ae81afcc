-- Monthly budgets per category and recurring transactions (issue 14).
--
--   budgets                  a monthly spending limit for one of a user's categories (as the category
--                            filter of GET /transactions matches it: the trimmed name, exactly). What
--                            was spent is read from monthly_totals, never from the rows.
--   recurring_transactions   rules whose occurrences the service turns into ordinary transactions
--                            (core.recurring): at once when a rule is created or changed, and for
--                            later days by `python -m service run-scheduled`. last_occurrence is the
--                            date of the last occurrence passed: made, or skipped while the rule's
--                            account was archived (null before the first); next_occurrence
--                            the next one due (null when none is left); both change only with the rule
--                            row locked, in the transaction that inserts the occurrences, so no
--                            occurrence is made twice and none is lost.
--   transactions.recurring_id  the rule an occurrence came from, null for others. No foreign key: a
--                            deleted rule leaves its transactions exactly as they were.
--
-- Expand-only: servers of the previous version never read the new tables, and insert transactions
-- without recurring_id (null). Adding a nullable column without a default rewrites nothing; the
-- partial index holds no row yet, but its build reads every transaction once under a SHARE lock
-- (writes wait): 75 ms on 1,000,000 rows (2 cores).

SET LOCAL lock_timeout = '5s';

CREATE TABLE budgets (
    id         bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category   text           NOT NULL CHECK (char_length(category) BETWEEN 1 AND 64),
    amount     numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
    created_at timestamptz    NOT NULL DEFAULT now(),
    updated_at timestamptz    NOT NULL DEFAULT now(),
    -- One budget per category per user; also the index GET /budgets lists them by.
    CONSTRAINT budgets_user_category_key UNIQUE (user_id, category)
);

CREATE TABLE recurring_transactions (
    id              bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id      bigint         NOT NULL,
    type            text           NOT NULL CHECK (type IN ('income', 'expense')),
    amount          numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
    description     text           CHECK (char_length(description) <= 500),
    category        text           CHECK (char_length(category) BETWEEN 1 AND 64),
    frequency       text           NOT NULL CHECK (frequency IN ('daily', 'weekly', 'monthly', 'yearly')),
    "interval"      integer        NOT NULL DEFAULT 1 CHECK ("interval" BETWEEN 1 AND 366),
    start_date      date           NOT NULL,
    end_date        date,
    last_occurrence date,
    next_occurrence date,
    created_at      timestamptz    NOT NULL DEFAULT now(),
    updated_at      timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT recurring_transactions_dates CHECK (end_date >= start_date),
    -- NO ACTION, as for transactions: an account a rule uses cannot be deleted (archive it instead).
    CONSTRAINT recurring_transactions_account_fkey FOREIGN KEY (user_id, account_id)
        REFERENCES accounts (user_id, id)
);
-- Listing a user's rules; the scheduler's due rules; the foreign key's check when an account goes.
CREATE INDEX recurring_transactions_user_idx ON recurring_transactions (user_id, id);
CREATE INDEX recurring_transactions_due_idx ON recurring_transactions (next_occurrence, id)
    WHERE next_occurrence IS NOT NULL;
CREATE INDEX recurring_transactions_account_idx ON recurring_transactions (account_id);

ALTER TABLE transactions ADD COLUMN recurring_id bigint;
-- GET /transactions?recurring_id= with keyset pagination.
CREATE INDEX transactions_user_recurring_idx ON transactions (user_id, recurring_id, occurred_at, id)
    WHERE recurring_id IS NOT NULL;
