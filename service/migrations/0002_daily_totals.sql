-- Daily totals per user, local day of the tenant, type and category, kept by triggers in the
-- same transaction as every write, so analytics sums a few hundred rows per month instead of
-- reading every transaction of the period, and is never out of step with the rows.

-- The time zone whose calendar days the totals are keyed by. `python -m service migrate` sets it
-- to TENANT_TIMEZONE (re-keying the totals when it changes); readiness fails while it differs.
CREATE TABLE rollup_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    timezone  text    NOT NULL
);
INSERT INTO rollup_settings (timezone) VALUES ('UTC');

CREATE TABLE daily_totals (
    user_id  bigint         NOT NULL,
    day      date           NOT NULL,
    type     text           NOT NULL,
    -- '' stands for "no category": a primary key cannot hold NULL, and a real category is never ''.
    category text           NOT NULL,
    total    numeric(20, 2) NOT NULL,
    count    bigint         NOT NULL,
    PRIMARY KEY (user_id, day, type, category)
);

CREATE FUNCTION add_to_daily_total(
    p_user_id bigint, p_at timestamptz, p_type text, p_category text, p_amount numeric, p_count integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO daily_totals AS d (user_id, day, type, category, total, count)
    VALUES (
        p_user_id,
        (p_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date,
        p_type,
        coalesce(p_category, ''),
        p_amount,
        p_count
    )
    ON CONFLICT (user_id, day, type, category)
    DO UPDATE SET total = d.total + excluded.total, count = d.count + excluded.count;
$$;

CREATE FUNCTION transactions_daily_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A delete cascading from the user's own deletion leaves their totals to users_daily_totals.
    IF TG_OP = 'UPDATE' OR (TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)) THEN
        PERFORM add_to_daily_total(OLD.user_id, OLD.occurred_at, OLD.type, OLD.category, -OLD.amount, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM add_to_daily_total(NEW.user_id, NEW.occurred_at, NEW.type, NEW.category, NEW.amount, 1);
    END IF;
    RETURN NULL;
END;
$$;

-- Fires for inserts (COPY included), deletes (cascades from users included) and updates of the
-- columns the totals depend on; a changed description costs nothing.
CREATE TRIGGER transactions_daily_totals
    AFTER INSERT OR DELETE OR UPDATE OF user_id, type, amount, category, occurred_at ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_daily_totals();

-- A deleted user's totals go with them.
CREATE FUNCTION users_daily_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM daily_totals WHERE user_id = OLD.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_daily_totals AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_daily_totals();

-- Rebuild every total from the transactions (after a time-zone change, or a bulk load that
-- disabled the trigger); writers wait meanwhile.
CREATE FUNCTION refresh_daily_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE transactions IN SHARE MODE;
    DELETE FROM daily_totals;
    INSERT INTO daily_totals (user_id, day, type, category, total, count)
    SELECT user_id,
           (occurred_at AT TIME ZONE (SELECT timezone FROM rollup_settings))::date,
           type,
           coalesce(category, ''),
           sum(amount),
           count(*)
    FROM transactions
    GROUP BY 1, 2, 3, 4;
END;
$$;

SELECT refresh_daily_totals();
