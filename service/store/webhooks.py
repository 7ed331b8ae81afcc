"""The webhooks table's own statements, and the deliveries a user may read: the insert that keeps the
signing secret (no other statement here returns it), the test event queued to one webhook, and a
webhook's deliveries newest first. (Read, change, delete, list: store.owned with records.WEBHOOK.)

A delivery has no user_id: every statement reaches it through its webhook, scoped by the webhook's
user_id."""

from __future__ import annotations

from psycopg import sql
from psycopg.types.json import Jsonb

from ..db import Connection, fetch_one
from ..records import DELIVERY, WEBHOOK
from . import names, placeholders
from .events import TEST_TYPE

_DELIVERY_COLUMNS = sql.SQL(", ").join(sql.Identifier("d", name) for name in DELIVERY.columns)


def create_webhook(conn: Connection, *, user_id: int, data: dict, secret: str) -> dict:
    """Insert the user's webhook with its secret; the row as WEBHOOK reads it, plus `secret`."""
    fields = [name for name in WEBHOOK.writable if name in data]
    query = sql.SQL(
        "INSERT INTO webhooks (user_id, secret, {names}) VALUES (%s, %s, {values}) RETURNING {columns}, secret"
    ).format(names=names(fields), values=placeholders(len(fields)), columns=names(WEBHOOK.columns))
    return fetch_one(conn.execute(query, [user_id, secret, *(data[name] for name in fields)]))


def queue_test(conn: Connection, *, user_id: int, webhook_id: int) -> dict:
    """Write a webhook.test event of the user's and its one delivery, to this webhook (the fan-out
    trigger skips webhook.test). The caller holds the webhook, and checked it is the user's."""
    event = fetch_one(conn.execute(
        "INSERT INTO events (user_id, type, data) VALUES (%s, %s, %s) RETURNING id, type",
        (user_id, TEST_TYPE, Jsonb({"webhook_id": webhook_id})),
    ))
    query = sql.SQL(
        "INSERT INTO webhook_deliveries AS d (webhook_id, event_id)"
        " SELECT w.id, %s FROM webhooks w WHERE w.id = %s AND w.user_id = %s"
        " RETURNING {columns}"
    ).format(columns=_DELIVERY_COLUMNS)
    delivery = fetch_one(conn.execute(query, (event["id"], webhook_id, user_id)))
    return {**delivery, "event_type": event["type"]}


def deliveries(conn: Connection, *, user_id: int, webhook_id: int, before: int | None, limit: int) -> list[dict]:
    """Up to `limit` of the user's webhook's deliveries, newest first, those with an id below
    `before` when given; each with its event's type. (A page is a range of the index on
    (webhook_id, id), wherever it starts.)"""
    conditions = [sql.SQL("d.webhook_id = %s"), sql.SQL("w.user_id = %s")]
    params: list = [webhook_id, user_id]
    if before is not None:
        conditions.append(sql.SQL("d.id < %s"))
        params.append(before)
    query = sql.SQL(
        "SELECT {columns}, e.type AS event_type"
        " FROM webhook_deliveries d"
        " JOIN webhooks w ON w.id = d.webhook_id"
        " JOIN events e ON e.id = d.event_id"
        " WHERE {where}"
        " ORDER BY d.id DESC LIMIT %s"
    ).format(columns=_DELIVERY_COLUMNS, where=sql.SQL(" AND ").join(conditions))
    return conn.execute(query, [*params, limit]).fetchall()
