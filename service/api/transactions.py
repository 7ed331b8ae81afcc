"""Transactions: create (idempotently), list, read, update, delete, export and import as CSV."""

from __future__ import annotations

from datetime import datetime

from flask import Response, g, request
from flask_restx import Namespace

from .. import csvio, db
from ..core import transactions
from ..errors import ApiError
from ..schemas import (
    ImportResult,
    TransactionCreate,
    TransactionFilters,
    TransactionListQuery,
    TransactionPage,
    TransactionPublic,
    TransactionUpdate,
    transaction_cursor,
)
from . import limits
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

ns = Namespace("transactions", path="/", description="Income and expense records of the logged-in user")


def create_transaction(data: dict) -> tuple[dict, dict]:
    """Create a transaction; with an Idempotency-Key, a retry replays the first response."""
    return create_idempotently(transactions.create, "/transactions", data)


def _documented_create(method):
    """The Swagger description both create paths share."""
    method = idempotent(ns)(responds(ns, 201, "Created; Location names it", TransactionPublic)(method))
    method = refusal(ns, 409, "The account is archived (account_archived)", "account_archived")(method)
    return accepts_json(ns, TransactionCreate, invalid="Invalid transaction, or an account that is not the user's")(
        method
    )


@user_route(ns, "/transactions")
class TransactionCollection(UserResource):

    @accepts_query(ns, TransactionListQuery, invalid="Invalid filter, sort, limit or cursor")
    @responds(ns, 200, "One page of transactions", TransactionPage)
    def get(self, query: dict):
        """List transactions, newest first by default, one page at a time."""
        sort, limit, after = query.pop("sort"), query.pop("limit"), query.pop("cursor", None)
        rows, position = transactions.list_page(
            db.connection(), user_id=g.user_id, filters=query, sort=sort, limit=limit, after=after,
            timezone=settings().timezone,
        )
        return {
            "items": [with_currency(row) for row in rows],
            "next_cursor": transaction_cursor(position) if position else None,
        }

    @_documented_create
    def post(self, data: dict):
        """Record an income or an expense."""
        return create_transaction(data)


@user_route(ns, "/transaction")
class LegacyTransaction(UserResource):

    @_documented_create
    def post(self, data: dict):
        """Record an income or an expense (the original clients' path; same as POST /transactions)."""
        return create_transaction(data)


@user_item_route(ns, "/transactions", "transaction")
class TransactionItem(UserResource):

    @responds(ns, 200, "The transaction", TransactionPublic)
    def get(self, transaction_id: int):
        """Read one transaction."""
        return with_currency(transactions.get(db.connection(), user_id=g.user_id, transaction_id=transaction_id))

    @accepts_json(ns, TransactionUpdate, invalid="Invalid change, or an account that is not the user's")
    @refusal(ns, 409, "The account is archived (account_archived)", "account_archived")
    @responds(ns, 200, "The updated transaction", TransactionPublic)
    def patch(self, changes: dict, transaction_id: int):
        """Change some fields of a transaction."""
        return with_currency(
            transactions.update(db.connection(), user_id=g.user_id, transaction_id=transaction_id, changes=changes)
        )

    @ns.response(204, "Deleted")
    def delete(self, transaction_id: int):
        """Delete a transaction."""
        transactions.delete(db.connection(), user_id=g.user_id, transaction_id=transaction_id)
        return None, 204


@user_route(ns, "/transactions/export")
class TransactionExport(UserResource):

    @accepts_query(ns, TransactionFilters, invalid=f"Invalid filter, or more than {transactions.EXPORT_LIMITS}")
    # The CSV, or the JSON error envelope (Swagger 2 names the media types per operation).
    @ns.produces(["text/csv", "application/json"])
    @ns.response(200, "CSV with a header row, oldest first")
    def get(self, filters: dict):
        """Download transactions as CSV (same filters as the list), at most 100,000 rows and 32 MiB."""
        user_id, config = g.user_id, settings()

        def lines():
            with (
                db.streaming_connection() as conn,
                transactions.export(conn, user_id=user_id, filters=filters, timezone=config.timezone) as rows,
            ):
                yield from csvio.export_lines(rows, config.currency)

        stream = lines()
        header = next(stream)  # after the size check: a refusal is raised here, before any byte

        def body():
            try:
                yield header
                yield from stream
            finally:
                stream.close()  # ends the snapshot at once if the client goes away

        filename = f"transactions-{config.tenant_id}-{datetime.now(config.timezone).date().isoformat()}.csv"
        return Response(
            body(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


@user_route(ns, "/transactions/import")
class TransactionImport(UserResource):

    @ns.doc(
        consumes=["text/csv", "multipart/form-data"],
        params={"file": {"in": "formData", "type": "file", "required": True, "description": "The CSV (multipart)"}},
    )
    @responds(ns, 201, "Every row imported", ImportResult)
    @refusal(ns, 400, "Not a readable CSV file (invalid_csv), or no file part", "invalid_csv", "validation_error")
    @refusal(ns, 413, "Larger than 1 MiB", "payload_too_large")
    @refusal(ns, 415, "Neither text/csv nor multipart/form-data", "unsupported_media_type")
    @refusal(
        ns, 422, "Some rows are invalid (invalid_rows) or there are none (empty_import); nothing was imported",
        "invalid_rows", "empty_import", "request_too_expensive",
    )
    @limits.documented(ns)
    def post(self):
        """Import transactions from CSV: all rows or none."""
        limits.enforce("import", account=str(g.user_id))
        imported = transactions.import_csv(
            db.connection(), user_id=g.user_id, raw=_uploaded_csv(), currency=settings().currency
        )
        return {"imported": imported}


def _uploaded_csv() -> bytes:
    """The CSV bytes of a text/csv body or of the `file` part of a multipart form."""
    if request.mimetype == "text/csv":
        return request.get_data(cache=True)
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "validation_error", "Attach the CSV as the form field `file`.",
                           fields={"file": ["Missing data for required field."]})
        return upload.read()
    raise ApiError(415, "unsupported_media_type", "Send the CSV as text/csv or multipart/form-data.")
