-- Inserts update the daily and monthly totals once per statement, not once per row.
-- A CSV import is one COPY of up to 1 MiB (about 100,000 rows): the row trigger of 0002/0003
-- ran two upserts per row and could not finish within the statement timeout. A statement
-- trigger reads the inserted rows as a transition table and adds one row per user, day, type and
-- category touched, then one per month, in key order (every writer locks them in one order).
-- Measured on PostgreSQL 15: a COPY of 104,850 rows 0.95 s instead of 159 s; a single insert
-- 352 us instead of 336 us. Updates and deletes keep the row trigger.

CREATE FUNCTION transactions_inserted_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_timezone text := (SELECT timezone FROM rollup_settings);
BEGIN
    -- Daily rows first, then monthly ones, each in key order: the order the row trigger of
    -- updates and deletes locks them in, so an import and a concurrent update cannot deadlock.
    -- (Two statements, not one with a writing CTE: PostgreSQL does not order a CTE's writes.)
    INSERT INTO daily_totals AS d (user_id, day, type, category, total, count)
    SELECT user_id, (occurred_at AT TIME ZONE v_timezone)::date, type, coalesce(category, ''),
           sum(amount), count(*)
    FROM inserted
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, day, type, category)
    DO UPDATE SET total = d.total + excluded.total, count = d.count + excluded.count;

    INSERT INTO monthly_totals AS m (user_id, month, type, category, total, count)
    SELECT user_id, date_trunc('month', (occurred_at AT TIME ZONE v_timezone)::date)::date, type,
           coalesce(category, ''), sum(amount), count(*)
    FROM inserted
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, month, type, category)
    DO UPDATE SET total = m.total + excluded.total, count = m.count + excluded.count;
    RETURN NULL;
END;
$$;

DROP TRIGGER transactions_daily_totals ON transactions;
CREATE TRIGGER transactions_daily_totals
    AFTER DELETE OR UPDATE OF user_id, type, amount, category, occurred_at ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_daily_totals();
CREATE TRIGGER transactions_inserted_totals
    AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_inserted_totals();
