"""The webhook dispatcher's statements over webhook_deliveries (with their webhooks and events).

Each is one short statement in its own transaction (autocommit): no transaction stays open while a
delivery is sent, since an open writing transaction would hold back the event feed (it shows only
events below the snapshot's xmin). A claimed delivery is leased instead: its next_attempt_at moves
past the send's time limit, so that no other dispatcher takes it meanwhile, and back when the
attempt's outcome is recorded. A dispatcher that dies mid-send leaves the lease to run out, and the
delivery is sent again (at least once; the same webhook-id).

The webhooks API keeps its own statements over these tables (GET /webhooks/{id}/deliveries, ...):
this module holds only the dispatcher's.
"""

from __future__ import annotations

from datetime import timedelta

from ..db import Connection

# How many deliveries of one user may be out at once (of one webhook: one).
MAX_SENDING_PER_USER = 2


def claim(conn: Connection, *, limit: int, lease: timedelta) -> list[dict]:
    """Take up to `limit` pending deliveries that are due, oldest due first, fairly: at most one per
    webhook out at a time (its oldest due), and at most MAX_SENDING_PER_USER per user, so that a
    user whose receivers are slow, or who queued a million deliveries, holds up no one else. The
    webhooks with pending deliveries are found by skipping from one webhook_id to the next in the
    pending index (one probe each, however many deliveries each has). A delivery another dispatcher
    is taking at this moment is skipped; each one taken has its attempt counted and is leased
    (next_attempt_at and leased_until moved `lease` ahead). Returns them with their webhook (url,
    secret, active) and their event (as core.events.present reads it)."""
    return conn.execute(
        "WITH RECURSIVE pending (webhook_id) AS ("
        "   (SELECT webhook_id FROM webhook_deliveries WHERE status = 'pending' ORDER BY webhook_id LIMIT 1)"
        "   UNION ALL"
        "   SELECT (SELECT d.webhook_id FROM webhook_deliveries d"
        "           WHERE d.status = 'pending' AND d.webhook_id > p.webhook_id ORDER BY d.webhook_id LIMIT 1)"
        "   FROM pending p WHERE p.webhook_id IS NOT NULL"
        " ), candidates AS ("
        "   SELECT n.id, n.next_attempt_at,"
        "     row_number() OVER (PARTITION BY w.user_id ORDER BY n.next_attempt_at) + ("
        "       SELECT count(*) FROM webhooks o JOIN webhook_deliveries b ON b.webhook_id = o.id"
        "       WHERE o.user_id = w.user_id AND b.leased_until > now()) AS nth"
        "   FROM pending p"
        "   JOIN webhooks w ON w.id = p.webhook_id"
        "   CROSS JOIN LATERAL ("
        "     SELECT d.id, d.next_attempt_at FROM webhook_deliveries d"
        "     WHERE d.webhook_id = p.webhook_id AND d.status = 'pending' AND d.next_attempt_at <= now()"
        "     ORDER BY d.next_attempt_at LIMIT 1) n"
        "   WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries b WHERE b.webhook_id = w.id AND b.leased_until > now())"
        " )"
        " UPDATE webhook_deliveries d"
        " SET next_attempt_at = now() + %(lease)s, leased_until = now() + %(lease)s, attempts = d.attempts + 1,"
        "     updated_at = now()"
        " FROM webhooks w, events e"
        " WHERE w.id = d.webhook_id AND e.id = d.event_id AND d.id IN ("
        "   SELECT id FROM webhook_deliveries"
        "   WHERE status = 'pending' AND next_attempt_at <= now()"
        "     AND id IN (SELECT id FROM candidates WHERE nth <= %(per_user)s ORDER BY next_attempt_at LIMIT %(limit)s)"
        "   FOR UPDATE SKIP LOCKED)"
        " RETURNING d.id, d.webhook_id, d.attempts, d.created_at AS queued_at,"
        "   w.url, w.secret, w.active,"
        "   e.id AS event_id, e.type, e.created_at, e.data::text AS data",
        {"limit": limit, "lease": lease, "per_user": MAX_SENDING_PER_USER},
    ).fetchall()


def delivered(conn: Connection, *, delivery_id: int, status_code: int) -> None:
    """The receiver took it (a 2xx). Recorded even when the lease ran out meanwhile and another
    dispatcher took it again: it was delivered."""
    conn.execute(
        "UPDATE webhook_deliveries"
        " SET status = 'delivered', next_attempt_at = NULL, leased_until = NULL, last_status_code = %(code)s,"
        "     last_error = NULL,"
        "     updated_at = now()"
        " WHERE id = %(id)s AND status = 'pending'",
        {"id": delivery_id, "code": status_code},
    )


def retry(
    conn: Connection, *, delivery_id: int, attempts: int, after: timedelta, status_code: int | None, error: str
) -> None:
    """The attempt failed: try again `after` from now. Only the dispatcher holding the latest claim
    (its attempt count) records it: one whose lease ran out must not move another's."""
    conn.execute(
        "UPDATE webhook_deliveries"
        " SET next_attempt_at = now() + %(after)s, leased_until = NULL, last_status_code = %(code)s,"
        "     last_error = %(error)s,"
        "     updated_at = now()"
        " WHERE id = %(id)s AND status = 'pending' AND attempts = %(attempts)s",
        {"id": delivery_id, "attempts": attempts, "after": after, "code": status_code, "error": error},
    )


def failed(conn: Connection, *, delivery_id: int, attempts: int, status_code: int | None, error: str) -> None:
    """The attempt failed and no other follows: the delivery is failed (by the latest claim only)."""
    conn.execute(
        "UPDATE webhook_deliveries"
        " SET status = 'failed', next_attempt_at = NULL, leased_until = NULL, last_status_code = %(code)s,"
        "     last_error = %(error)s,"
        "     updated_at = now()"
        " WHERE id = %(id)s AND status = 'pending' AND attempts = %(attempts)s",
        {"id": delivery_id, "attempts": attempts, "code": status_code, "error": error},
    )


def turn_off(conn: Connection, *, webhook_id: int, delivery_id: int, status_code: int, error: str) -> int:
    """The receiver answered that the webhook is gone (410): the webhook is made inactive and every
    pending delivery of it failed, this one with its status code, in one statement. Returns how many
    deliveries were failed."""
    return conn.execute(
        "WITH off AS ("
        "   UPDATE webhooks SET active = false, updated_at = now() WHERE id = %(webhook_id)s RETURNING id)"
        " UPDATE webhook_deliveries"
        " SET status = 'failed', next_attempt_at = NULL, leased_until = NULL, last_error = %(error)s,"
        "     updated_at = now(),"
        "     last_status_code = CASE WHEN id = %(id)s THEN %(code)s ELSE last_status_code END"
        " WHERE webhook_id IN (SELECT id FROM off) AND status = 'pending'",
        {"webhook_id": webhook_id, "id": delivery_id, "code": status_code, "error": error},
    ).rowcount
