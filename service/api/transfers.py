"""Transfers between the logged-in user's own accounts."""

from __future__ import annotations

from flask import g
from flask_restx import Namespace

from .. import db
from ..core import transfers
from ..schemas import (
    TransferCreate,
    TransferListQuery,
    TransferPage,
    TransferPublic,
    TransferUpdate,
    transaction_cursor,
)
from .common import (
    UserResource,
    accepts_json,
    accepts_query,
    create_idempotently,
    idempotent,
    responds,
    settings,
    user_item_route,
    user_route,
    with_currency,
)
from .docs import refusal

ns = Namespace("transfers", path="/", description="Money moved between the logged-in user's accounts")


@user_route(ns, "/transfers")
class TransferCollection(UserResource):
    @accepts_query(ns, TransferListQuery, invalid="Invalid filter, limit or cursor")
    @responds(ns, 200, "One page of transfers, newest first", TransferPage)
    def get(self, query: dict):
        """List transfers, newest first, one page at a time."""
        limit, after = query.pop("limit"), query.pop("cursor", None)
        rows, position = transfers.list_page(
            db.connection(), user_id=g.user_id, filters=query, limit=limit, after=after, timezone=settings().timezone
        )
        next_cursor = transaction_cursor(position) if position else None
        return {"items": [with_currency(row) for row in rows], "next_cursor": next_cursor}

    @accepts_json(ns, TransferCreate, invalid="Invalid transfer, or an account that is not the user's")
    @responds(ns, 201, "Created; Location names it", TransferPublic)
    @idempotent(ns)
    @refusal(ns, 409, "An archived account (account_archived)", "account_archived")
    def post(self, data: dict):
        """Move money from one of the user's accounts to another."""
        return create_idempotently(transfers.create, "/transfers", data)


@user_item_route(ns, "/transfers", "transfer")
class TransferItem(UserResource):
    @responds(ns, 200, "The transfer", TransferPublic)
    def get(self, transfer_id: int):
        """Read one transfer."""
        return with_currency(transfers.get(db.connection(), user_id=g.user_id, transfer_id=transfer_id))

    @accepts_json(ns, TransferUpdate, invalid="Invalid change")
    @responds(ns, 200, "The changed transfer", TransferPublic)
    def patch(self, changes: dict, transfer_id: int):
        """Change a transfer's amount, date or description."""
        changed = transfers.update(db.connection(), user_id=g.user_id, transfer_id=transfer_id, changes=changes)
        return with_currency(changed)

    @ns.response(204, "Deleted")
    def delete(self, transfer_id: int):
        """Delete a transfer (both balances follow)."""
        transfers.delete(db.connection(), user_id=g.user_id, transfer_id=transfer_id)
        return None, 204
