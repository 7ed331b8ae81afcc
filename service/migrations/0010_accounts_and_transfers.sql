-- Money accounts and transfers between them (issue 13), with balances kept by triggers in the same
-- transaction as every write, as the daily and monthly totals are: listing accounts reads one row
-- per account however long its history.
--
--   accounts      a user's places of money; exactly one is their default (`Main`, made for every
--                 user by users_default_account, and here for every existing user).
--   transactions  gain account_id, NOT NULL, every existing row in its user's default account.
--   transfers     money moved between two accounts of one user; never income or expense.
--   balance       = opening_balance + income - expense + transfers in - transfers out, over all of
--                 the account's records, kept by the *_balances triggers through add_to_balances,
--                 which locks the account rows in id order (transfers A->B and B->A at once cannot
--                 deadlock); refresh_balances() recomputes every balance from the rows.
--   locks         every writer of a transaction's totals first locks its accounts (in id order), even
--                 when their balances do not move (a change of only the category or the date): the
--                 totals' keys hold the account, so writers of the same totals queue on the account
--                 rows instead of locking totals rows in different orders and deadlocking.
--
-- Both composite foreign keys (user_id, account_id) -> accounts (user_id, id) make an account of
-- another user unusable, and are NO ACTION: an account that a transaction or a transfer names
-- cannot be deleted, while a user's deletion cascades through accounts, transactions and transfers
-- in one statement.
--
-- The daily and monthly totals gain account_id in their keys (GET /analytics?account_id= reads them,
-- never the rows); transfers never count in them.
--
-- On a populated database: the backfill of account_id is one rewrite of transactions (no trigger
-- fires for it), the balances and the totals one set-based rebuild each: 1,000,000 transactions of
-- 1,000 users migrated in 8 s (2 cores), holding transactions locked meanwhile.

-- Altering transactions and users locks them: give up rather than queue every request behind a long
-- transaction (the migration fails, and its init container or Job retries).
SET LOCAL lock_timeout = '5s';

-- Accounts ------------------------------------------------------------------------------------------

CREATE TABLE accounts (
    id              bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text           NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    kind            text           NOT NULL
        CHECK (kind IN ('checking', 'savings', 'cash', 'credit_card', 'investment', 'other')),
    -- May be negative (a credit card); NaN compares greater than every number, so it is excluded.
    opening_balance numeric(14, 2) NOT NULL DEFAULT 0 CHECK (opening_balance <> 'NaN'),
    -- Kept by triggers; an INSERT without it starts at the opening balance (accounts_balance).
    balance         numeric(20, 2) NOT NULL,
    is_default      boolean        NOT NULL DEFAULT false,
    archived        boolean        NOT NULL DEFAULT false,
    created_at      timestamptz    NOT NULL DEFAULT now(),
    -- The target of the composite foreign keys: a record's account is one of its user's.
    CONSTRAINT accounts_user_id_id_key UNIQUE (user_id, id),
    CONSTRAINT accounts_default_not_archived CHECK (NOT (is_default AND archived))
);
-- Names are unique per user whatever their case.
CREATE UNIQUE INDEX accounts_user_name_key ON accounts (user_id, lower(name));
-- At most one default per user (the users trigger and this migration give each user one).
CREATE UNIQUE INDEX accounts_one_default ON accounts (user_id) WHERE is_default;

-- A new account's balance is its opening balance (its records come after it); a changed opening
-- balance moves the balance by the difference.
CREATE FUNCTION accounts_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.balance := coalesce(NEW.balance, NEW.opening_balance);
    ELSE
        NEW.balance := NEW.balance - OLD.opening_balance + NEW.opening_balance;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER accounts_balance
    BEFORE INSERT OR UPDATE OF opening_balance ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_balance();

-- Every existing user gets their default account.
INSERT INTO accounts (user_id, name, kind, is_default)
SELECT id, 'Main', 'checking', true FROM users ORDER BY id;

-- And every new one, once per statement (the bench inserts 1,000 users in one).
CREATE FUNCTION users_default_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts (user_id, name, kind, is_default)
    SELECT id, 'Main', 'checking', true FROM new_users ORDER BY id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_default_account
    AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_users
    FOR EACH STATEMENT EXECUTE FUNCTION users_default_account();

-- Transactions gain their account ---------------------------------------------------------------

-- Every existing transaction in its user's default account, in one rewrite of the table: the column
-- is added empty, then rewritten with its value (ALTER COLUMN ... TYPE ... USING rewrites every row
-- once and builds each index afresh). On 1,000,000 rows (2 cores) that took 5.5 s, and the table kept
-- its size; an UPDATE took 20 s, left a dead copy of every row and updated every index row by row.
-- No trigger fires for either (no row trigger is bound to UPDATE OF account_id yet).
CREATE FUNCTION pg_temp.default_account_of(p_user_id bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM accounts WHERE user_id = p_user_id AND is_default
$$;
ALTER TABLE transactions ADD COLUMN account_id bigint;
ALTER TABLE transactions
    ALTER COLUMN account_id TYPE bigint USING pg_temp.default_account_of(user_id),
    ALTER COLUMN account_id SET NOT NULL;
DROP FUNCTION pg_temp.default_account_of(bigint);
ALTER TABLE transactions
    ADD CONSTRAINT transactions_account_fkey FOREIGN KEY (user_id, account_id) REFERENCES accounts (user_id, id);
-- Listing a user's transactions of one account with keyset pagination; also the foreign key's
-- check when an account is deleted.
CREATE INDEX transactions_user_account_occurred_idx ON transactions (user_id, account_id, occurred_at, id);

-- An insert that names no account goes to the user's default one: a server of the previous version,
-- still running during a rolling upgrade, inserts without it. (The WHEN is evaluated without calling
-- the function, so an insert that names its account costs nothing more.)
CREATE FUNCTION transactions_default_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.account_id := (SELECT id FROM accounts WHERE user_id = NEW.user_id AND is_default);
    RETURN NEW;
END;
$$;
CREATE TRIGGER transactions_default_account
    BEFORE INSERT ON transactions
    FOR EACH ROW WHEN (NEW.account_id IS NULL) EXECUTE FUNCTION transactions_default_account();

-- Daily and monthly totals by account -------------------------------------------------------------
-- GET /analytics?account_id= reads the totals, never the rows: account_id joins their keys (last, so
-- a user's days stay together for analytics of every account). Transfers never count in them. The
-- totals are rebuilt from the transactions, by refresh_totals() below, set-based.

TRUNCATE daily_totals, monthly_totals;
ALTER TABLE daily_totals ADD COLUMN account_id bigint NOT NULL;
ALTER TABLE daily_totals DROP CONSTRAINT daily_totals_pkey,
    ADD CONSTRAINT daily_totals_pkey PRIMARY KEY (user_id, day, type, category, account_id);
ALTER TABLE monthly_totals ADD COLUMN account_id bigint NOT NULL;
ALTER TABLE monthly_totals DROP CONSTRAINT monthly_totals_pkey,
    ADD CONSTRAINT monthly_totals_pkey PRIMARY KEY (user_id, month, type, category, account_id);

-- The account joins add_to_totals' arguments (a new signature: dropped and made again; no trigger
-- is bound to it, transactions_totals calls it by name).
DROP FUNCTION add_to_totals(bigint, timestamptz, text, text, numeric, integer);
CREATE FUNCTION add_to_totals(
    p_user_id bigint, p_account_id bigint, p_at timestamptz, p_type text, p_category text, p_amount numeric,
    p_count integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_day date := (p_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date;
    v_category text := coalesce(p_category, '');
BEGIN
    INSERT INTO daily_totals AS d (user_id, day, type, category, account_id, total, count)
    VALUES (p_user_id, v_day, p_type, v_category, p_account_id, p_amount, p_count)
    ON CONFLICT (user_id, day, type, category, account_id)
    DO UPDATE SET total = d.total + excluded.total, count = d.count + excluded.count;

    INSERT INTO monthly_totals AS m (user_id, month, type, category, account_id, total, count)
    VALUES (p_user_id, date_trunc('month', v_day)::date, p_type, v_category, p_account_id, p_amount, p_count)
    ON CONFLICT (user_id, month, type, category, account_id)
    DO UPDATE SET total = m.total + excluded.total, count = m.count + excluded.count;
END;
$$;

-- Updates and deletes, per row: a transaction moved to another account moves its amount between
-- the two accounts' totals. (The INSERT branch is idle since 0007, kept as it was.)
CREATE OR REPLACE FUNCTION transactions_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A delete cascading from the user's own deletion leaves their totals to users_totals.
    IF TG_OP = 'UPDATE' OR (TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)) THEN
        PERFORM add_to_totals(OLD.user_id, OLD.account_id, OLD.occurred_at, OLD.type, OLD.category, -OLD.amount, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM add_to_totals(NEW.user_id, NEW.account_id, NEW.occurred_at, NEW.type, NEW.category, NEW.amount, 1);
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER transactions_totals ON transactions;
CREATE TRIGGER transactions_totals
    AFTER DELETE OR UPDATE OF user_id, account_id, type, amount, category, occurred_at ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_totals();

-- Inserts (COPY included), once per statement, in key order as in 0007.
CREATE OR REPLACE FUNCTION transactions_inserted_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_timezone text := (SELECT timezone FROM rollup_settings);
BEGIN
    -- Daily rows first, then monthly ones, each in key order. An import and a concurrent update or
    -- delete of the same totals cannot deadlock: both have locked the account rows first
    -- (transactions_inserted_balances and transactions_balances fire before, by name).
    -- (Two statements, not one with a writing CTE: PostgreSQL does not order a CTE's writes.)
    INSERT INTO daily_totals AS d (user_id, day, type, category, account_id, total, count)
    SELECT user_id, (occurred_at AT TIME ZONE v_timezone)::date, type, coalesce(category, ''), account_id,
           sum(amount), count(*)
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (user_id, day, type, category, account_id)
    DO UPDATE SET total = d.total + excluded.total, count = d.count + excluded.count;

    INSERT INTO monthly_totals AS m (user_id, month, type, category, account_id, total, count)
    SELECT user_id, date_trunc('month', (occurred_at AT TIME ZONE v_timezone)::date)::date, type,
           coalesce(category, ''), account_id, sum(amount), count(*)
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (user_id, month, type, category, account_id)
    DO UPDATE SET total = m.total + excluded.total, count = m.count + excluded.count;
    RETURN NULL;
END;
$$;

-- Rebuild every daily and monthly total from the transactions (after a time-zone change, or a
-- bulk load that disabled the trigger); writers wait meanwhile.
CREATE OR REPLACE FUNCTION refresh_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE transactions IN SHARE MODE;
    DELETE FROM daily_totals;
    DELETE FROM monthly_totals;
    -- In key order: a user's totals of neighbouring days share pages.
    INSERT INTO daily_totals (user_id, day, type, category, account_id, total, count)
    SELECT user_id,
           (occurred_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date AS day,
           type,
           coalesce(category, '') AS category,
           account_id,
           sum(amount),
           count(*)
    FROM transactions
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5;
    INSERT INTO monthly_totals (user_id, month, type, category, account_id, total, count)
    SELECT user_id, date_trunc('month', day)::date, type, category, account_id, sum(total), sum(count)
    FROM daily_totals
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5;
END;
$$;

SELECT refresh_totals();

-- Transfers -------------------------------------------------------------------------------------

CREATE TABLE transfers (
    id              bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_account_id bigint         NOT NULL,
    to_account_id   bigint         NOT NULL,
    amount          numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
    description     text           CHECK (char_length(description) <= 500),
    occurred_at     timestamptz    NOT NULL DEFAULT now(),
    created_at      timestamptz    NOT NULL DEFAULT now(),
    updated_at      timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT transfers_distinct_accounts CHECK (from_account_id <> to_account_id),
    CONSTRAINT transfers_from_account_fkey FOREIGN KEY (user_id, from_account_id) REFERENCES accounts (user_id, id),
    CONSTRAINT transfers_to_account_fkey FOREIGN KEY (user_id, to_account_id) REFERENCES accounts (user_id, id)
);
-- Listing newest first (and oldest first) with keyset pagination.
CREATE INDEX transfers_user_occurred_idx ON transfers (user_id, occurred_at, id);
-- Filtering by either side, and the foreign keys' checks when an account is deleted.
CREATE INDEX transfers_from_account_idx ON transfers (from_account_id);
CREATE INDEX transfers_to_account_idx ON transfers (to_account_id);

-- Balances --------------------------------------------------------------------------------------

-- Add amounts to accounts' balances (one id may come several times). Every account given is locked
-- in id order first, its net change 0 or not, so that writers touching the same accounts (their
-- balances, or their totals: the callers lock before writing the totals) in any order queue instead
-- of deadlocking; FOR NO KEY UPDATE, as the UPDATE itself locks, does not wait for the KEY SHARE
-- locks that the foreign-key checks of concurrent inserts hold. Only the accounts whose net change
-- is not 0 are updated. An account that is gone (its user being deleted in this statement) is
-- skipped.
CREATE FUNCTION add_to_balances(p_account_ids bigint[], p_amounts numeric[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts
    WHERE id = ANY (p_account_ids)
    ORDER BY id
    FOR NO KEY UPDATE;
    UPDATE accounts a SET balance = a.balance + c.amount
    FROM (SELECT c.id, sum(c.amount) AS amount FROM unnest(p_account_ids, p_amounts) AS c (id, amount)
          GROUP BY c.id HAVING sum(c.amount) <> 0) AS c
    WHERE a.id = c.id;
END;
$$;

-- Transactions: inserts (COPY included) once per statement, one UPDATE per account touched.
CREATE FUNCTION transactions_inserted_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_to_balances(array_agg(account_id), array_agg(amount))
    FROM (SELECT account_id, sum(CASE type WHEN 'income' THEN amount ELSE -amount END) AS amount
          FROM inserted GROUP BY account_id) AS s;
    RETURN NULL;
END;
$$;
-- Named to fire before transactions_inserted_totals: accounts are locked before totals, as the row
-- triggers below (transactions_balances before transactions_totals) lock them. Every account of
-- the statement is locked, those whose rows net to 0 too: their totals are written.
CREATE TRIGGER transactions_inserted_balances
    AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_inserted_balances();

-- Updates of any column the totals depend on (those of transactions_totals), and deletes, per row;
-- it fires before transactions_totals (by name), so the accounts are locked before the totals rows.
-- A change of only the category or the date (or a description beside them) moves no balance: the
-- old and new amounts cancel, and add_to_balances only locks the account. A delete cascading from
-- the user's own deletion changes nothing: their accounts go too.
CREATE FUNCTION transactions_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM add_to_balances(
            ARRAY[OLD.account_id, NEW.account_id],
            ARRAY[CASE OLD.type WHEN 'income' THEN -OLD.amount ELSE OLD.amount END,
                  CASE NEW.type WHEN 'income' THEN NEW.amount ELSE -NEW.amount END]);
    ELSIF EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id) THEN
        PERFORM add_to_balances(
            ARRAY[OLD.account_id],
            ARRAY[CASE OLD.type WHEN 'income' THEN -OLD.amount ELSE OLD.amount END]);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER transactions_balances
    AFTER DELETE OR UPDATE OF user_id, account_id, type, amount, category, occurred_at ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_balances();

-- Transfers: inserts and deletes once per statement, updates per row.
CREATE FUNCTION transfers_inserted_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_to_balances(array_agg(account_id), array_agg(amount))
    FROM (SELECT from_account_id, -amount FROM inserted
          UNION ALL SELECT to_account_id, amount FROM inserted) AS s (account_id, amount);
    RETURN NULL;
END;
$$;
CREATE TRIGGER transfers_inserted_balances
    AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_inserted_balances();

CREATE FUNCTION transfers_deleted_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Transfers going with their user's deletion change nothing: the accounts go too.
    PERFORM add_to_balances(array_agg(account_id), array_agg(amount))
    FROM (SELECT from_account_id, amount, user_id FROM deleted
          UNION ALL SELECT to_account_id, -amount, user_id FROM deleted) AS s (account_id, amount, user_id)
    WHERE EXISTS (SELECT 1 FROM users WHERE id = s.user_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER transfers_deleted_balances
    AFTER DELETE ON transfers
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_deleted_balances();

CREATE FUNCTION transfers_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_to_balances(
        ARRAY[OLD.from_account_id, OLD.to_account_id, NEW.from_account_id, NEW.to_account_id],
        ARRAY[OLD.amount, -OLD.amount, -NEW.amount, NEW.amount]);
    RETURN NULL;
END;
$$;
CREATE TRIGGER transfers_balances
    AFTER UPDATE OF from_account_id, to_account_id, amount ON transfers
    FOR EACH ROW EXECUTE FUNCTION transfers_balances();

-- Recompute every balance from the rows (after a restore, a bulk load that disabled the triggers,
-- or in tests); writers of records wait meanwhile.
CREATE FUNCTION refresh_balances() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE transactions, transfers IN SHARE MODE;
    UPDATE accounts a SET balance = b.opening_balance + coalesce(s.amount, 0)
    FROM accounts b
    LEFT JOIN (
        SELECT account_id, sum(amount) AS amount
        FROM (SELECT account_id, CASE type WHEN 'income' THEN amount ELSE -amount END FROM transactions
              UNION ALL SELECT to_account_id, amount FROM transfers
              UNION ALL SELECT from_account_id, -amount FROM transfers) AS m (account_id, amount)
        GROUP BY account_id
    ) AS s ON s.account_id = b.id
    WHERE a.id = b.id AND a.balance <> b.opening_balance + coalesce(s.amount, 0);
END;
$$;

SELECT refresh_balances();
