"""Transfers between a user's own accounts: they move money, never count as income or expense."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ..db import Connection
from ..records import TRANSFER, Position
from ..store import owned, transfers
from . import accounts, idempotency
from .errors import found


def create(conn: Connection, *, user_id: int, data: dict, idempotency_key: str | None = None) -> tuple[dict, bool]:
    """Move an amount between two of the user's accounts; returns the transfer and whether it
    replays an earlier create with the same idempotency key."""

    def refused() -> None:  # either account is not the user's, or is archived: say which
        for field in ("from_account_id", "to_account_id"):
            accounts.check_usable(conn, user_id=user_id, account_id=data[field], field=field)

    return idempotency.once(
        conn, user_id=user_id, key=idempotency_key, operation="create_transfer", request=data,
        record=TRANSFER, perform=lambda: transfers.create_transfer(conn, user_id=user_id, data=data), refused=refused,
    )


def get(conn: Connection, *, user_id: int, transfer_id: int) -> dict:
    return found(owned.get(conn, TRANSFER, user_id=user_id, id=transfer_id), "transfer")


def update(conn: Connection, *, user_id: int, transfer_id: int, changes: dict) -> dict:
    row = owned.update(conn, TRANSFER, user_id=user_id, id=transfer_id, changes=changes)
    return found(row, "transfer")


def delete(conn: Connection, *, user_id: int, transfer_id: int) -> None:
    found(owned.delete(conn, TRANSFER, user_id=user_id, id=transfer_id), "transfer")


def list_page(
    conn: Connection, *, user_id: int, filters: dict, limit: int, after: Position | None, timezone: ZoneInfo
) -> tuple[list[dict], Position | None]:
    """One page of the user's transfers, newest first, and where it ended (None on the last page)."""
    filters = accounts.list_filters(conn, user_id=user_id, filters=filters, timezone=timezone)
    return transfers.list_transfers(conn, user_id=user_id, filters=filters, limit=limit, after=after)
