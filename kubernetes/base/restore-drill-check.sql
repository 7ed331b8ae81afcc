-- The restore drill's checks of a restored tenant database; raises an exception (so psql with
-- ON_ERROR_STOP=1 exits 3, a driver's execute() raises) at the first check that fails, and reports
-- what it found as NOTICEs. Run by the restore-drill CronJob (restore-drill.sh) and by
-- `scripts/restore-tenant --drill --local`, the same file.
--
-- Contract:
--   * Run it whole, in one session, connected to the restored tenant database (kubernetes: the
--     database `finance`) as a role that may read every table of schema public (the superuser, the
--     app's role or the backup role). It writes nothing: the session is made read-only first.
--   * Optional setting drill.newest_migration: the newest migration the deployed app knows (the
--     file name of the last of service/migrations/*.sql without `.sql`, e.g. 0007_set_based_insert_totals),
--     set at connection time (PGOPTIONS='-c drill.newest_migration=0007_...', or libpq's `options`)
--     or with SET before the script. Set, schema_migrations must hold it; unset or empty,
--     schema_migrations must only be non-empty.
--   * Plain SQL, no psql meta-command: psql -X -v ON_ERROR_STOP=1 -f restore-drill-check.sql, or one
--     execute() of the whole text (simple query protocol, no parameters).
--
-- The checks: the migrations are current; every table of the schema can be read whole (rows per
-- table reported); every transaction belongs to an existing user; and daily_totals and
-- monthly_totals equal a recomputation from the transactions, in the time zone they are keyed by
-- (rollup_settings), as refresh_totals() (service/migrations) would rebuild them (by account, from
-- migration 0010 on). Rows a delete brought down to zero (count 0, total 0) are left out of the
-- comparison: the triggers keep them. From 0010 on also: every user has exactly one default account,
-- and every account's balance equals its opening balance + income - expense + transfers in -
-- transfers out, as refresh_balances() would recompute it.

SET default_transaction_read_only = on;
SET client_min_messages = notice;

DO $check$
DECLARE
    newest   text := nullif(current_setting('drill.newest_migration', true), '');
    applied  text;
    versions bigint;
    tz       text;
    tbl      regclass;
    counted  bigint;
    wrong    bigint;
    -- The totals' keys: by account from migration 0010 on.
    by_account text := CASE WHEN to_regclass('public.accounts') IS NULL THEN '' ELSE ', account_id' END;
BEGIN
    -- Migrations.
    IF to_regclass('public.schema_migrations') IS NULL THEN
        RAISE EXCEPTION 'restore drill: no schema_migrations table: this is not a migrated tenant database';
    END IF;
    SELECT count(*), max(version) INTO versions, applied FROM public.schema_migrations;
    IF versions = 0 THEN
        RAISE EXCEPTION 'restore drill: schema_migrations is empty';
    END IF;
    IF newest IS NOT NULL AND NOT EXISTS (SELECT FROM public.schema_migrations WHERE version = newest) THEN
        RAISE EXCEPTION 'restore drill: migration % is not applied (newest applied: %)', newest, applied;
    END IF;
    RAISE NOTICE 'restore drill: % migrations applied, newest %', versions, applied;

    -- Every table read whole, its rows counted.
    FOR tbl IN
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s', tbl) INTO counted;
        RAISE NOTICE 'restore drill: % rows in %', counted, tbl;
    END LOOP;

    IF to_regclass('public.transactions') IS NULL OR to_regclass('public.users') IS NULL THEN
        RAISE EXCEPTION 'restore drill: the tables users and transactions are missing';
    END IF;
    SELECT count(*) INTO wrong FROM public.transactions t
    WHERE NOT EXISTS (SELECT FROM public.users u WHERE u.id = t.user_id);
    IF wrong > 0 THEN
        RAISE EXCEPTION 'restore drill: % transactions belong to no user', wrong;
    END IF;

    -- The totals against a recomputation from the transactions.
    IF to_regclass('public.daily_totals') IS NULL THEN
        RAISE NOTICE 'restore drill: no totals tables yet (before migration 0002): nothing to recompute';
        RETURN;
    END IF;
    SELECT timezone INTO tz FROM public.rollup_settings;
    IF tz IS NULL THEN
        RAISE EXCEPTION 'restore drill: rollup_settings holds no time zone';
    END IF;

    EXECUTE format($sql$
        WITH recomputed AS (
            SELECT user_id, (occurred_at AT TIME ZONE %1$L)::date AS day, type, coalesce(category, '') AS category
                   %2$s, sum(amount) AS total, count(*) AS count
            FROM public.transactions
            GROUP BY 1, 2, 3, 4 %2$s
        ), stored AS (
            SELECT user_id, day, type, category %2$s, total, count FROM public.daily_totals WHERE count <> 0 OR total <> 0
        )
        SELECT count(*) FROM ((SELECT * FROM recomputed EXCEPT SELECT * FROM stored)
                              UNION ALL (SELECT * FROM stored EXCEPT SELECT * FROM recomputed)) AS differing
    $sql$, tz, by_account) INTO wrong;
    IF wrong > 0 THEN
        RAISE EXCEPTION 'restore drill: % daily_totals rows differ from a recomputation from transactions', wrong;
    END IF;

    IF to_regclass('public.monthly_totals') IS NOT NULL THEN
        EXECUTE format($sql$
            WITH recomputed AS (
                SELECT user_id, date_trunc('month', (occurred_at AT TIME ZONE %1$L)::date)::date AS month, type,
                       coalesce(category, '') AS category %2$s, sum(amount) AS total, count(*) AS count
                FROM public.transactions
                GROUP BY 1, 2, 3, 4 %2$s
            ), stored AS (
                SELECT user_id, month, type, category %2$s, total, count FROM public.monthly_totals WHERE count <> 0 OR total <> 0
            )
            SELECT count(*) FROM ((SELECT * FROM recomputed EXCEPT SELECT * FROM stored)
                                  UNION ALL (SELECT * FROM stored EXCEPT SELECT * FROM recomputed)) AS differing
        $sql$, tz, by_account) INTO wrong;
        IF wrong > 0 THEN
            RAISE EXCEPTION 'restore drill: % monthly_totals rows differ from a recomputation from transactions', wrong;
        END IF;
    END IF;
    RAISE NOTICE 'restore drill: daily and monthly totals equal their recomputation (time zone %)', tz;

    -- Accounts (from migration 0010 on): one default per user, balances against a recomputation.
    IF to_regclass('public.accounts') IS NOT NULL THEN
        SELECT count(*) INTO wrong FROM public.users u
        WHERE (SELECT count(*) FROM public.accounts a WHERE a.user_id = u.id AND a.is_default) <> 1;
        IF wrong > 0 THEN
            RAISE EXCEPTION 'restore drill: % users have not exactly one default account', wrong;
        END IF;
        SELECT count(*) INTO wrong
        FROM public.accounts a
        LEFT JOIN (
            SELECT account_id, sum(amount) AS amount
            FROM (SELECT account_id, CASE type WHEN 'income' THEN amount ELSE -amount END FROM public.transactions
                  UNION ALL SELECT to_account_id, amount FROM public.transfers
                  UNION ALL SELECT from_account_id, -amount FROM public.transfers) AS m (account_id, amount)
            GROUP BY account_id
        ) AS s ON s.account_id = a.id
        WHERE a.balance <> a.opening_balance + coalesce(s.amount, 0);
        IF wrong > 0 THEN
            RAISE EXCEPTION 'restore drill: % account balances differ from a recomputation from transactions and transfers', wrong;
        END IF;
        RAISE NOTICE 'restore drill: every user has one default account; balances equal their recomputation';
    END IF;
END
$check$;
