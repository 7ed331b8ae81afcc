-- Monthly totals beside the daily ones, kept by the same trigger in the same transaction: a
-- calendar month costs one row per type and category instead of one per day, so a year by
-- month sums a few hundred rows, not thousands of rows spread over thousands of pages.

CREATE TABLE monthly_totals (
    user_id  bigint         NOT NULL,
    -- The first day of the tenant's local month.
    month    date           NOT NULL CHECK (extract(day FROM month) = 1),
    type     text           NOT NULL,
    -- '' stands for "no category", as in daily_totals.
    category text           NOT NULL,
    total    numeric(20, 2) NOT NULL,
    count    bigint         NOT NULL,
    PRIMARY KEY (user_id, month, type, category)
);

CREATE OR REPLACE FUNCTION add_to_daily_total(
    p_user_id bigint, p_at timestamptz, p_type text, p_category text, p_amount numeric, p_count integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_day date := (p_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date;
    v_category text := coalesce(p_category, '');
BEGIN
    INSERT INTO daily_totals AS d (user_id, day, type, category, total, count)
    VALUES (p_user_id, v_day, p_type, v_category, p_amount, p_count)
    ON CONFLICT (user_id, day, type, category)
    DO UPDATE SET total = d.total + excluded.total, count = d.count + excluded.count;

    INSERT INTO monthly_totals AS m (user_id, month, type, category, total, count)
    VALUES (p_user_id, date_trunc('month', v_day)::date, p_type, v_category, p_amount, p_count)
    ON CONFLICT (user_id, month, type, category)
    DO UPDATE SET total = m.total + excluded.total, count = m.count + excluded.count;
END;
$$;

CREATE OR REPLACE FUNCTION users_daily_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM daily_totals WHERE user_id = OLD.id;
    DELETE FROM monthly_totals WHERE user_id = OLD.id;
    RETURN NULL;
END;
$$;

-- Rebuild every daily and monthly total from the transactions (after a time-zone change, or a
-- bulk load that disabled the trigger); writers wait meanwhile.
CREATE OR REPLACE FUNCTION refresh_daily_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE transactions IN SHARE MODE;
    DELETE FROM daily_totals;
    DELETE FROM monthly_totals;
    -- In key order: a user's totals of neighbouring days share pages.
    INSERT INTO daily_totals (user_id, day, type, category, total, count)
    SELECT user_id,
           (occurred_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date AS day,
           type,
           coalesce(category, '') AS category,
           sum(amount),
           count(*)
    FROM transactions
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4;
    INSERT INTO monthly_totals (user_id, month, type, category, total, count)
    SELECT user_id, date_trunc('month', day)::date, type, category, sum(total), sum(count)
    FROM daily_totals
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4;
END;
$$;

SELECT refresh_daily_totals();
