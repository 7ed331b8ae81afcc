"""The events table's statements: the feed of one user's events, and the purge of old ones.

Events are written by triggers only (migration 0013), in the transaction of the change they tell of.
"""

from __future__ import annotations

from datetime import timedelta

from ..db import Connection
from ..records import FeedPosition

# Shown by webhooks only (POST /webhooks/{id}/test), never in the feed: the feed's query and index
# (migration 0013) name it as a constant, so that the partial index serves the query.
TEST_TYPE = "webhook.test"
# Every type a client may see in the feed or subscribe a webhook to: what the triggers of migration
# 0013 write. (Here rather than in core.events, which shows them: the schemas refuse any other type
# in a webhook's events, and core.events imports the schemas.)
TYPES = (
    *(
        f"{record}.{change}"
        for record in ("transaction", "transfer", "account")
        for change in ("created", "updated", "deleted")
    ),
    "budget.exceeded",
)


START = FeedPosition(0, 0)


def feed(conn: Connection, *, user_id: int, after: FeedPosition, limit: int) -> list[dict]:
    """The user's events after `after` in (txid, id) order, only those of transactions older than
    every transaction still running: one still running may yet commit events with lower ids, and
    will have a txid at least the snapshot's xmin, so nothing shown later sorts before a position
    handed out. `data` is the JSON text, to be read with exact decimals."""
    return conn.execute(FEED, feed_parameters(user_id, after, limit)).fetchall()


# Ordered by the table's columns (e.txid, not the output's txid, a bigint): so the index serves the
# order and a page reads 100 rows, not all of the user's events and a sort.
FEED = (
    "SELECT e.id, e.type, e.created_at, e.data::text AS data, e.txid::text::bigint AS txid FROM events e"
    " WHERE e.user_id = %(user_id)s AND (e.txid, e.id) > (%(txid)s::text::xid8, %(id)s)"
    "   AND e.txid < pg_snapshot_xmin(pg_current_snapshot()) AND e.type <> 'webhook.test'"
    " ORDER BY e.txid, e.id LIMIT %(limit)s"
)


def feed_parameters(user_id: int, after: FeedPosition, limit: int) -> dict:
    return {"user_id": user_id, "txid": str(after.txid), "id": after.id, "limit": limit}


def purge(conn: Connection, *, older_than: timedelta, batch: int) -> int:
    """Delete up to `batch` events (of every user) written more than `older_than` ago, oldest first;
    their webhook deliveries go with them. Returns how many went."""
    return conn.execute(
        "DELETE FROM events WHERE id IN ("
        " SELECT id FROM events WHERE created_at < now() - %(age)s ORDER BY created_at LIMIT %(batch)s"
        " FOR UPDATE SKIP LOCKED)",
        {"age": older_than, "batch": batch},
    ).rowcount
