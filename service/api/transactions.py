"""Transactions: create (idempotently), list, read, update, delete, export and import as CSV."""

from __future__ import annotations

from datetime import datetime

from flask import Response, g, request
from flask_restx import Namespace

from .. import csvio, db
from ..core import idempotency, transactions
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
from .common import UserResource, load_body, load_query, settings
from .docs import authenticated, error_model, model, query_params

ns = Namespace("transactions", path="/", description="Income and expense records of the logged-in user")
# Schemas are built once: building one per request costs more than using it.
_import_result = ImportResult()
_transaction_create = TransactionCreate()
_transaction_filters = TransactionFilters()
_transaction_list_query = TransactionListQuery()
_transaction_page = TransactionPage()
_transaction_public = TransactionPublic()
_transaction_update = TransactionUpdate()
error = error_model(ns)
transaction_model = model(ns, TransactionPublic)
create_model = model(ns, TransactionCreate, for_input=True)


def _public(row: dict) -> dict:
    return _transaction_public.dump({**row, "currency": settings().currency})


def create_transaction() -> tuple[dict, int, dict]:
    """Create a transaction; with an Idempotency-Key, a retry replays the first response."""
    row, replayed = transactions.create(
        db.connection(),
        user_id=g.user_id,
        data=load_body(_transaction_create),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    headers = {"Location": f"/transactions/{row['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _public(row), 201, headers


# The Swagger description both create paths share.
_documented_create = ns.doc(
    expect=[create_model],
    params={
        "Idempotency-Key": {
            "in": "header",
            "type": "string",
            "description": "Retries with the same key and body replay the first response.",
            "pattern": idempotency.KEY.pattern,
        }
    },
    responses={
        201: ("Created; Location names it", transaction_model),
        400: ("Invalid transaction", error),
        413: ("Larger than 1 MiB", error),
        415: ("The body is not JSON", error),
        422: ("Idempotency-Key reused with a different body", error),
    },
)


@ns.route("/transactions")
@authenticated(ns)
class TransactionCollection(UserResource):

    @ns.doc(params=query_params(TransactionListQuery))
    @ns.response(200, "One page of transactions", model(ns, TransactionPage))
    @ns.response(400, "Invalid filter, sort, limit or cursor", error)
    def get(self):
        """List transactions, newest first by default, one page at a time."""
        query = load_query(_transaction_list_query)
        sort, limit, after = query.pop("sort"), query.pop("limit"), query.pop("cursor", None)
        rows, position = transactions.list_page(
            db.connection(), user_id=g.user_id, filters=query, sort=sort, limit=limit, after=after,
            timezone=settings().timezone,
        )
        return _transaction_page.dump(
            {
                "items": [{**row, "currency": settings().currency} for row in rows],
                "next_cursor": transaction_cursor(position) if position else None,
            }
        )

    @_documented_create
    def post(self):
        """Record an income or an expense."""
        return create_transaction()


@ns.route("/transaction")
@authenticated(ns)
class LegacyTransaction(UserResource):

    @_documented_create
    def post(self):
        """Record an income or an expense (the original clients' path; same as POST /transactions)."""
        return create_transaction()


# Ids are PostgreSQL bigints; a larger number in the path is simply not found.
@ns.route("/transactions/<int(max=9223372036854775807):transaction_id>")
@ns.param("transaction_id", "The transaction's id")
@authenticated(ns)
class TransactionItem(UserResource):

    @ns.response(200, "The transaction", transaction_model)
    @ns.response(404, "No such transaction of this user", error)
    def get(self, transaction_id: int):
        """Read one transaction."""
        return _public(transactions.get(db.connection(), user_id=g.user_id, transaction_id=transaction_id))

    @ns.expect(model(ns, TransactionUpdate, for_input=True))
    @ns.response(200, "The updated transaction", transaction_model)
    @ns.response(400, "Invalid change", error)
    @ns.response(404, "No such transaction of this user", error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "The body is not JSON", error)
    def patch(self, transaction_id: int):
        """Change some fields of a transaction."""
        changes = load_body(_transaction_update)
        return _public(
            transactions.update(db.connection(), user_id=g.user_id, transaction_id=transaction_id, changes=changes)
        )

    @ns.response(204, "Deleted")
    @ns.response(404, "No such transaction of this user", error)
    def delete(self, transaction_id: int):
        """Delete a transaction."""
        transactions.delete(db.connection(), user_id=g.user_id, transaction_id=transaction_id)
        return None, 204


@ns.route("/transactions/export")
@authenticated(ns)
class TransactionExport(UserResource):

    @ns.doc(params=query_params(TransactionFilters))
    # The CSV, or the JSON error envelope (Swagger 2 names the media types per operation).
    @ns.produces(["text/csv", "application/json"])
    @ns.response(200, "CSV with a header row, oldest first")
    @ns.response(400, f"Invalid filter, or more than {transactions.EXPORT_LIMITS}", error)
    def get(self):
        """Download transactions as CSV (same filters as the list), at most 100,000 rows and 32 MiB."""
        filters = load_query(_transaction_filters)
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


@ns.route("/transactions/import")
@authenticated(ns)
class TransactionImport(UserResource):

    @ns.doc(
        consumes=["text/csv", "multipart/form-data"],
        params={"file": {"in": "formData", "type": "file", "required": True, "description": "The CSV (multipart)"}},
    )
    @ns.response(201, "Every row imported", model(ns, ImportResult))
    @ns.response(400, "Not a readable CSV file", error)
    @ns.response(413, "Larger than 1 MiB", error)
    @ns.response(415, "Neither text/csv nor multipart/form-data", error)
    @ns.response(422, "Some rows are invalid; nothing was imported", error)
    @ns.response(429, limits.DOCUMENTED_429, error, headers=limits.RETRY_AFTER_HEADER)
    def post(self):
        """Import transactions from CSV: all rows or none."""
        limits.enforce("import", account=str(g.user_id))
        imported = transactions.import_csv(
            db.connection(), user_id=g.user_id, raw=_uploaded_csv(), currency=settings().currency
        )
        return _import_result.dump({"imported": imported}), 201


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
