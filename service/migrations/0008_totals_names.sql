-- The functions and triggers that keep the daily AND monthly totals (0003) were still named for
-- the daily ones alone (0002). Renamed to say what they keep; nothing else changes:
--   add_to_daily_total         -> add_to_totals
--   transactions_daily_totals  -> transactions_totals  (function and trigger)
--   users_daily_totals         -> users_totals         (function and trigger)
--   refresh_daily_totals       -> refresh_totals
--   transactions_inserted_totals (0007) already says what it keeps.
-- A trigger is bound to its function by OID, so the triggers keep firing the renamed functions.
-- A plpgsql body calls other functions by name at run time, so the one body that calls a renamed
-- function (transactions_totals calls add_to_totals) is recreated with the new name, in this same
-- transaction: no write ever sees it call a name that is gone. No total is rebuilt: the rows and
-- the arithmetic are those of 0003 and 0007. Renaming a trigger locks its table for a moment.

-- Renaming a trigger locks its table: give up rather than queue every request behind a long one
-- (the migration fails, and its init container or Job retries).
SET LOCAL lock_timeout = '5s';

ALTER FUNCTION add_to_daily_total(bigint, timestamptz, text, text, numeric, integer) RENAME TO add_to_totals;
ALTER FUNCTION transactions_daily_totals() RENAME TO transactions_totals;
ALTER FUNCTION users_daily_totals() RENAME TO users_totals;
ALTER FUNCTION refresh_daily_totals() RENAME TO refresh_totals;

-- The body of 0002 as it stands, with the new names in it. (Its INSERT branch has been idle since
-- 0007 moved inserts to transactions_inserted_totals; kept, so the function does what it did.)
DO $$
BEGIN
    EXECUTE replace(replace(pg_get_functiondef('transactions_totals()'::regprocedure),
        'add_to_daily_total(', 'add_to_totals('), 'users_daily_totals', 'users_totals');
    IF pg_get_functiondef('transactions_totals()'::regprocedure) LIKE '%daily_total%' THEN
        RAISE EXCEPTION 'transactions_totals still names an old function';
    END IF;
END;
$$;

ALTER TRIGGER transactions_daily_totals ON transactions RENAME TO transactions_totals;
ALTER TRIGGER users_daily_totals ON users RENAME TO users_totals;
