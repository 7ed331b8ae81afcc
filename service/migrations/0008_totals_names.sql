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

ALTER FUNCTION add_to_daily_total(bigint, timestamptz, text, text, numeric, integer) RENAME TO add_to_totals;
ALTER FUNCTION transactions_daily_totals() RENAME TO transactions_totals;
ALTER FUNCTION users_daily_totals() RENAME TO users_totals;
ALTER FUNCTION refresh_daily_totals() RENAME TO refresh_totals;

-- The body of 0002, calling add_to_totals. (Its INSERT branch has been idle since 0007 moved
-- inserts to transactions_inserted_totals; kept, so the function does what it did.)
CREATE OR REPLACE FUNCTION transactions_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A delete cascading from the user's own deletion leaves their totals to users_totals.
    IF TG_OP = 'UPDATE' OR (TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)) THEN
        PERFORM add_to_totals(OLD.user_id, OLD.occurred_at, OLD.type, OLD.category, -OLD.amount, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM add_to_totals(NEW.user_id, NEW.occurred_at, NEW.type, NEW.category, NEW.amount, 1);
    END IF;
    RETURN NULL;
END;
$$;

ALTER TRIGGER transactions_daily_totals ON transactions RENAME TO transactions_totals;
ALTER TRIGGER users_daily_totals ON users RENAME TO users_totals;
