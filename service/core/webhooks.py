"""A user's webhooks: where their events are sent, the secret deliveries are signed with, and what
was delivered. Sending is the dispatcher's (`python -m service deliver-webhooks`); this module only
keeps the webhooks and queues the test event.

A webhook's URL is checked for server-side request forgery (service/outbound.py) when it is saved,
before any transaction opens (the check resolves the host name); the dispatcher checks it again at
each delivery. The secret is made here, returned once by `create`, and never by anything else.
"""

from __future__ import annotations

import base64
import secrets

from .. import outbound
from ..db import Connection
from ..records import WEBHOOK
from ..store import owned, webhooks
from . import quotas
from .errors import Conflict, Invalid, found

# The most webhooks one user may have (GET /webhooks answers them all; each event of the user's is
# one delivery per webhook that takes it).
MAX_WEBHOOKS = 10
# Standard Webhooks' form of a secret: this prefix and base64 (service/delivery.py signs with it).
SECRET_PREFIX = "whsec_"  # noqa: S105 - the form's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: whsec_ and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def check_url(url: str, *, allow_loopback: bool) -> None:
    """Refuse (400 validation_error on `url`) a URL the service must not send to."""
    try:
        outbound.check(url, allow_loopback=allow_loopback)
    except outbound.Refused as exc:
        raise Invalid("validation_error", "The request is not valid.", fields={"url": [str(exc)]}) from exc


def create(conn: Connection, *, user_id: int, data: dict, allow_loopback: bool) -> dict:
    """Save a webhook (active); returns it with its secret, the only answer that holds it."""
    check_url(data["url"], allow_loopback=allow_loopback)
    with conn.transaction():
        quotas.make_room(conn, WEBHOOK, user_id=user_id, cap=MAX_WEBHOOKS, code="too_many_webhooks", what="webhooks")
        return webhooks.create_webhook(conn, user_id=user_id, data=data, secret=new_secret())


def list_all(conn: Connection, *, user_id: int) -> list[dict]:
    return owned.list_all(conn, WEBHOOK, user_id=user_id)


def get(conn: Connection, *, user_id: int, webhook_id: int) -> dict:
    return found(owned.get(conn, WEBHOOK, user_id=user_id, id=webhook_id), "webhook")


def update(conn: Connection, *, user_id: int, webhook_id: int, changes: dict, allow_loopback: bool) -> dict:
    """Change a webhook's url (checked again), events, description or active (true takes up a
    webhook the dispatcher turned off again)."""
    if "url" in changes:
        check_url(changes["url"], allow_loopback=allow_loopback)
    return found(owned.update(conn, WEBHOOK, user_id=user_id, id=webhook_id, changes=changes), "webhook")


def delete(conn: Connection, *, user_id: int, webhook_id: int) -> None:
    """Delete a webhook with its deliveries, sent or not."""
    found(owned.delete(conn, WEBHOOK, user_id=user_id, id=webhook_id), "webhook")


def send_test(conn: Connection, *, user_id: int, webhook_id: int) -> dict:
    """Queue a webhook.test event to this webhook alone; returns its delivery (pending)."""
    with conn.transaction():
        # The user's row before the webhook's, as the user's deletion takes them: the event's
        # foreign key to the user then waits for nothing this transaction does not hold.
        owned.lock_user(conn, user_id=user_id, share=True)
        webhook = found(owned.get(conn, WEBHOOK, user_id=user_id, id=webhook_id, lock=True), "webhook")
        if not webhook["active"]:
            raise Conflict("webhook_inactive", "This webhook is not active; set active to true to test it.")
        return webhooks.queue_test(conn, user_id=user_id, webhook_id=webhook_id)


def deliveries(
    conn: Connection, *, user_id: int, webhook_id: int, before: int | None, limit: int
) -> tuple[list[dict], int | None]:
    """One page of the webhook's deliveries, newest first, and the id the next page starts below
    (None on the last page)."""
    get(conn, user_id=user_id, webhook_id=webhook_id)
    rows = webhooks.deliveries(conn, user_id=user_id, webhook_id=webhook_id, before=before, limit=limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, rows[-1]["id"]
