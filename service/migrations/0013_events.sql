-- Events: one row per change of a user's records, written by triggers in the transaction of the
-- change (issue 15), so every path (the API, a CSV import, the scheduler's occurrences, whatever
-- comes next) writes exactly one per record changed, and a rolled-back change writes none.
--
--   events         {type, data}: data is the record's row as it was written (to_jsonb, without
--                  user_id); core.events shows it as the API shows the record. txid is the writing
--                  transaction's id: GET /events pages by (txid, id) and shows only the events of
--                  transactions older than every transaction still running, so a client polling
--                  with next_cursor sees each event exactly once even when writes commit out of id
--                  order (store.events.feed).
--   budget_alerts  the months in which a budget's category is over it: budget.exceeded is written
--                  when a month's row is added, once until its spending drops back within.
--
-- Expand-only: servers of the previous version never read the new tables, and their writes fire
-- the triggers as the new version's do. Nothing is rewritten; creating the triggers waits for the
-- writes in flight (lock_timeout below).

SET LOCAL lock_timeout = '5s';

CREATE TABLE events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       text        NOT NULL,
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    txid       xid8        NOT NULL DEFAULT pg_current_xact_id()
);
-- The feed: a user's events in (txid, id) order, without the webhook.test events only webhooks
-- see (store.events.feed names the same condition, so it never reads them).
CREATE INDEX events_feed_idx ON events (user_id, txid, id) WHERE type <> 'webhook.test';
-- The purge of events past their retention (store.events.purge).
CREATE INDEX events_created_idx ON events (created_at);

-- One event per row inserted or deleted by a statement, in id order. TG_ARGV[0] names the record
-- ('transaction'). A row deleted with its user writes nothing: the user's events go too.
CREATE FUNCTION record_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (user_id, type, data)
        SELECT r.user_id, TG_ARGV[0] || '.created', to_jsonb(r) - 'user_id' FROM new_rows r ORDER BY r.id;
    ELSE
        INSERT INTO events (user_id, type, data)
        SELECT r.user_id, TG_ARGV[0] || '.deleted', to_jsonb(r) - 'user_id' FROM old_rows r
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)
        ORDER BY r.id;
    END IF;
    RETURN NULL;
END;
$$;

-- One event per row an UPDATE changed. TG_ARGV[1], when given, is a column whose changes alone are
-- not the record's own (an account's balance moves with its transactions, which tell of it).
CREATE FUNCTION record_update_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF to_jsonb(NEW) - coalesce(TG_ARGV[1], '') IS DISTINCT FROM to_jsonb(OLD) - coalesce(TG_ARGV[1], '') THEN
        INSERT INTO events (user_id, type, data)
        VALUES (NEW.user_id, TG_ARGV[0] || '.updated', to_jsonb(NEW) - 'user_id');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER transactions_inserted_events AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('transaction');
CREATE TRIGGER transactions_deleted_events AFTER DELETE ON transactions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('transaction');
CREATE TRIGGER transactions_updated_events AFTER UPDATE ON transactions
    FOR EACH ROW EXECUTE FUNCTION record_update_event('transaction');

CREATE TRIGGER transfers_inserted_events AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('transfer');
CREATE TRIGGER transfers_deleted_events AFTER DELETE ON transfers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('transfer');
CREATE TRIGGER transfers_updated_events AFTER UPDATE ON transfers
    FOR EACH ROW EXECUTE FUNCTION record_update_event('transfer');

CREATE TRIGGER accounts_inserted_events AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('account');
CREATE TRIGGER accounts_deleted_events AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_events('account');
-- Only updates naming a column of the account's own: every transaction moves a balance.
CREATE TRIGGER accounts_updated_events
    AFTER UPDATE OF name, kind, opening_balance, archived, is_default ON accounts
    FOR EACH ROW EXECUTE FUNCTION record_update_event('account', 'balance');

-- Budgets exceeded -----------------------------------------------------------------------------

CREATE TABLE budget_alerts (
    budget_id bigint NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    -- The first day of the tenant's local month, as in monthly_totals.
    month     date   NOT NULL,
    PRIMARY KEY (budget_id, month)
);

-- A change of a month's expenses in a category, judged at the end of its transaction (a deferred
-- trigger: an edit takes its old amount out and puts its new one in, and only the sum at commit
-- counts): over the category's budget and not before writes budget.exceeded (its data the budget with
-- the month and what was spent); back within, the month is armed again. The budget's row is locked
-- first, so two transactions spending in the category at once (on different accounts, whose totals
-- are different rows) are judged one after the other, the second seeing the first's spending.
CREATE FUNCTION monthly_totals_budget_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_budget budgets;
    v_spent  numeric;
BEGIN
    SELECT * INTO v_budget FROM budgets WHERE user_id = NEW.user_id AND category = NEW.category
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT sum(total) INTO v_spent FROM monthly_totals
    WHERE user_id = NEW.user_id AND month = NEW.month AND type = 'expense' AND category = NEW.category;
    IF v_spent > v_budget.amount THEN
        INSERT INTO budget_alerts (budget_id, month) VALUES (v_budget.id, NEW.month) ON CONFLICT DO NOTHING;
        IF FOUND THEN
            INSERT INTO events (user_id, type, data)
            VALUES (NEW.user_id, 'budget.exceeded',
                    to_jsonb(v_budget) - 'user_id'
                    || jsonb_build_object('month', to_char(NEW.month, 'YYYY-MM'), 'spent', v_spent));
        END IF;
    ELSE
        DELETE FROM budget_alerts WHERE budget_id = v_budget.id AND month = NEW.month;
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER monthly_totals_budget_alerts
    AFTER INSERT OR UPDATE ON monthly_totals
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.type = 'expense')
    EXECUTE FUNCTION monthly_totals_budget_alerts();

-- A budget made or changed records the months already over it without an event: budget.exceeded
-- tells of a change of spending taking a month from within its budget to over it.
CREATE FUNCTION budgets_alerts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM budget_alerts WHERE budget_id = NEW.id;
    INSERT INTO budget_alerts (budget_id, month)
    SELECT NEW.id, month FROM monthly_totals
    WHERE user_id = NEW.user_id AND type = 'expense' AND category = NEW.category
    GROUP BY month
    HAVING sum(total) > NEW.amount;
    RETURN NULL;
END;
$$;
CREATE TRIGGER budgets_alerts
    AFTER INSERT OR UPDATE OF amount, category ON budgets
    FOR EACH ROW EXECUTE FUNCTION budgets_alerts();

-- The months already over their budgets when this migration runs: told of by no event.
INSERT INTO budget_alerts (budget_id, month)
SELECT b.id, m.month
FROM budgets b
JOIN monthly_totals m ON m.user_id = b.user_id AND m.type = 'expense' AND m.category = b.category
GROUP BY b.id, m.month, b.amount
HAVING sum(m.total) > b.amount;
