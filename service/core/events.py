"""Events: what changed in a user's records, one event per record changed, read as a feed.

The events are written by triggers in the transaction of each change (migration 0013), whatever
path made it; this module reads them and shows each one as the API shows its record, for GET /events
and for webhook deliveries alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from marshmallow import Schema

from .. import schemas
from ..db import Connection
from ..records import ACCOUNT, BUDGET, TRANSACTION, TRANSFER, FeedPosition, Record
from ..store import events
from ..store.events import START, TEST_TYPE, TYPES
from .budgets import with_figures

__all__ = ["START", "TEST_TYPE", "TYPES", "FeedPosition", "page", "present"]

# What each record's events show: its record (to read the row) and the schema the API shows it with.
_SHOWN: dict[str, tuple[Record, Schema]] = {
    "transaction": (TRANSACTION, schemas.TransactionPublic()),
    "transfer": (TRANSFER, schemas.TransferPublic()),
    "account": (ACCOUNT, schemas.AccountPublic()),
}
_BUDGET_STATUS = schemas.BudgetStatus()


def page(
    conn: Connection, *, user_id: int, after: FeedPosition | None, limit: int
) -> tuple[list[dict], FeedPosition | None]:
    """The user's next `limit` events after `after`, oldest first, and the position to read on from
    (`after` itself when there is nothing new yet)."""
    rows = events.feed(conn, user_id=user_id, after=after or START, limit=limit)
    if not rows:
        return [], after
    return rows, FeedPosition(rows[-1]["txid"], rows[-1]["id"])


def present(event: dict, currency: str) -> dict:
    """An event as clients see it: {id, type, timestamp, data}, data the record as the API shows it."""
    data = json.loads(event["data"], parse_float=Decimal)
    record_name = event["type"].partition(".")[0]
    if record_name in _SHOWN:
        record, schema = _SHOWN[record_name]
        data = schema.dump({**_row(record, data), "currency": currency})
    elif record_name == "budget":
        row = {**_row(BUDGET, data), "month": datetime.strptime(data["month"], "%Y-%m").date()}
        data = _BUDGET_STATUS.dump({**with_figures({**row, "spent": data["spent"]}), "currency": currency})
    return {"id": event["id"], "type": event["type"], "timestamp": _utc(event["created_at"]), "data": data}


def _row(record: Record, data: dict) -> dict:
    """The row the trigger wrote as JSON, in the record's types, its instants in UTC as the API's."""
    row = record.from_json(data)
    return {name: _utc(value) if isinstance(value, datetime) else value for name, value in row.items()}


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)
