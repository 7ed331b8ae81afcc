"""Transactions of one user: create (idempotently), read, change, delete, list, export and import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from zoneinfo import ZoneInfo

from psycopg.errors import ForeignKeyViolation

from .. import csvio, db
from ..db import Connection
from ..records import TRANSACTION, Position
from ..store import accounts as accounts_store
from ..store import owned, transactions
from . import accounts, idempotency
from .errors import Invalid, Unprocessable, found

EXPORT_LIMITS = f"{csvio.MAX_EXPORT_ROWS} rows or {csvio.MAX_EXPORT_BYTES // 2**20} MiB"


def create(conn: Connection, *, user_id: int, data: dict, idempotency_key: str | None = None) -> tuple[dict, bool]:
    """Record an income or an expense in one of the user's accounts (the default one when none is
    given); returns the row and whether it replays an earlier create with the same idempotency key."""

    return idempotency.once(
        conn, user_id=user_id, key=idempotency_key, operation="create_transaction", request=data,
        record=TRANSACTION,
        perform=lambda: transactions.create_transaction(conn, user_id=user_id, data=data),
        # Nothing written: the account is not the user's, or is archived (never the default).
        refused=lambda: accounts.check_usable(
            conn, user_id=user_id, account_id=data.get("account_id", 0), field="account_id"
        ),
    )


def get(conn: Connection, *, user_id: int, transaction_id: int) -> dict:
    return found(owned.get(conn, TRANSACTION, user_id=user_id, id=transaction_id), "transaction")


def update(conn: Connection, *, user_id: int, transaction_id: int, changes: dict) -> dict:
    """Change some fields of a transaction; a new account_id must be one of the user's usable accounts."""
    if "account_id" in changes:
        accounts.check_usable(conn, user_id=user_id, account_id=changes["account_id"], field="account_id")
    try:
        row = owned.update(conn, TRANSACTION, user_id=user_id, id=transaction_id, changes=changes)
    except ForeignKeyViolation as exc:  # the account was deleted since it was checked
        raise accounts.unknown_account("account_id") from exc
    return found(row, "transaction")


def delete(conn: Connection, *, user_id: int, transaction_id: int) -> None:
    found(owned.delete(conn, TRANSACTION, user_id=user_id, id=transaction_id), "transaction")


def list_page(
    conn: Connection,
    *,
    user_id: int,
    filters: dict,
    sort: str,
    limit: int,
    after: Position | None,
    timezone: ZoneInfo,
) -> tuple[list[dict], Position | None]:
    """One page of the user's transactions in `sort` order after `after`, and where it ended
    (None on the last page)."""
    filters = accounts.list_filters(conn, user_id=user_id, filters=filters, timezone=timezone)
    return transactions.list_transactions(conn, user_id=user_id, filters=filters, sort=sort, limit=limit, after=after)


@contextmanager
def export(conn: Connection, *, user_id: int, filters: dict, timezone: ZoneInfo) -> Iterator[Iterator[dict]]:
    """The matching transactions, oldest first, streamed from one snapshot.

    The size check and the rows read the same snapshot, so an import committing in between cannot
    take the export past its limits; raises Invalid before any row when the export would be too
    large. Leaving the block ends the snapshot at once (a client that went away).
    """
    filters = accounts.list_filters(conn, user_id=user_id, filters=filters, timezone=timezone)
    with db.snapshot(conn):
        size = transactions.export_size(conn, user_id=user_id, filters=filters, at_most=csvio.MAX_EXPORT_ROWS + 1)
        if not csvio.export_within_limits(**size):
            raise Invalid(
                "export_too_large",
                f"The export would hold more than {EXPORT_LIMITS}; export a shorter span (from/to) at a time.",
            )
        with closing(transactions.iter_transactions(conn, user_id=user_id, filters=filters)) as rows:
            yield rows


def import_csv(conn: Connection, *, user_id: int, raw: bytes, currency: str) -> int:
    """Import every row of a CSV upload or none; returns how many were imported. A row's `account`
    names one of the user's accounts that is not archived, in any letter case (otherwise the row
    is invalid); a row without it goes to the default account."""
    try:
        upload = csvio.parse_import(raw, currency)
    except csvio.CsvError as exc:
        raise Invalid("invalid_csv", str(exc)) from exc
    with conn.transaction():
        if upload.named:
            # Locked until the rows are in: an account found here cannot be deleted under them.
            upload.resolve_accounts(accounts_store.accounts_named(conn, user_id=user_id, names=upload.account_names()))
        if upload.errors:
            errors = upload.errors
            at_least = "At least " if len(errors) >= csvio.MAX_REPORTED_ERRORS else ""
            raise Unprocessable(
                "invalid_rows",
                f"{at_least}{len(errors)} row(s) are invalid; nothing was imported.",
                details={"rows": errors[: csvio.MAX_REPORTED_ERRORS]},
            )
        if not upload.rows:
            raise Unprocessable("empty_import", "The file has a header but no rows.")
        default = accounts_store.default_account(conn, user_id=user_id)
        return transactions.import_transactions(conn, user_id=user_id, account_id=default["id"], rows=upload.rows)
