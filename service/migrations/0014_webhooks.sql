-- Webhooks and their deliveries (issue 15).
--
--   webhooks            a user's receiver: its URL, the event types it takes ('*': all), its signing
--                       secret (Standard Webhooks, whsec_<base64>; the dispatcher needs it whole to
--                       sign, so it is kept as it was given out, and shown only once).
--   webhook_deliveries  one per event and webhook, made by a trigger on events in the transaction
--                       that wrote the event: a committed change has its deliveries, a rolled-back
--                       one none, and the unique key makes a second one impossible. The dispatcher
--                       (`python -m service deliver-webhooks`) sends the pending ones whose
--                       next_attempt_at has come, and records each attempt here.
--
-- Expand-only: new tables, and a trigger on the new events table.

SET LOCAL lock_timeout = '5s';

CREATE TABLE webhooks (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text        NOT NULL CHECK (char_length(url) <= 2048),
    events      text[]      NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 20),
    description text        CHECK (char_length(description) <= 500),
    secret      text        NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A user's webhooks, for the list and for the fan-out below.
CREATE INDEX webhooks_user_idx ON webhooks (user_id, id);

CREATE TABLE webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       bigint      NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the dispatcher may take it next (a taken one is pushed past its send's time limit, so
    -- that no other dispatcher sends it meanwhile); null once delivered or failed.
    next_attempt_at  timestamptz DEFAULT now(),
    -- Set while a dispatcher sends it (the lease's end, as next_attempt_at then), null otherwise:
    -- a webhook with a delivery out is sent nothing else, and a user at most two at once
    -- (store.dispatch.claim), so that one user's slow receivers never hold up everyone's.
    leased_until     timestamptz,
    last_status_code integer,
    last_error       text        CHECK (char_length(last_error) <= 500),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id),
    CONSTRAINT webhook_deliveries_due CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- What is pending, by webhook, for the dispatcher: the webhooks with pending deliveries (a skip
-- from one webhook_id to the next) and each one's next due.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (webhook_id, next_attempt_at)
    WHERE status = 'pending';
-- The deliveries being sent, by webhook.
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (webhook_id) WHERE leased_until IS NOT NULL;
-- A webhook's deliveries, newest first, for GET /webhooks/{id}/deliveries (the unique key serves
-- webhook_id alone, not its order by id).
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- The purge of old events takes their deliveries with them.
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- Every event of the statement to every active webhook of its user that takes its type. A
-- webhook.test event goes only to the webhook it tests, queued by the API itself.
CREATE FUNCTION events_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT w.id, e.id
    FROM new_events e
    JOIN webhooks w ON w.user_id = e.user_id
    WHERE w.active AND e.type <> 'webhook.test' AND (e.type = ANY (w.events) OR '*' = ANY (w.events))
    ORDER BY e.id, w.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_webhook_deliveries AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION events_webhook_deliveries();
