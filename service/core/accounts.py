"""Money accounts of one user: create, list with their balances, read, change, delete."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from ..db import Connection
from ..periods import instant_bounds
from ..records import ACCOUNT
from ..store import accounts, owned
from . import quotas
from .errors import Conflict, Invalid, found

# The most accounts one user may have: GET /accounts lists them all in one answer (at most about
# 200 KB at this count, names at their longest).
MAX_ACCOUNTS = 1000


def _name_taken() -> Conflict:
    return Conflict("account_exists", "You already have an account of this name.")


def unknown_account(field: str) -> Invalid:
    """The answer to an account id in a request that is not one of the user's: the same whether it
    is another user's or none at all."""
    return Invalid("validation_error", "The request is not valid.", fields={field: ["No such account."]})


def archived(field: str) -> Conflict:
    return Conflict("account_archived", f"The account of {field} is archived: it takes no new records.")


def check_owned(conn: Connection, *, user_id: int, account_id: int, field: str) -> dict:
    """The account of an id in a request (`field`), or a 400 naming the field when it is not the user's."""
    account = owned.get(conn, ACCOUNT, user_id=user_id, id=account_id)
    if account is None:
        raise unknown_account(field)
    return account


def list_filters(conn: Connection, *, user_id: int, filters: dict, timezone: ZoneInfo) -> dict:
    """Validated filters of a list of the user's records, for the store: an account_id checked as
    one of the user's (a 400 otherwise), from/to dates or date-times as instant bounds."""
    filters = dict(filters)
    if filters.get("account_id") is not None:
        check_owned(conn, user_id=user_id, account_id=filters["account_id"], field="account_id")
    start, end = instant_bounds(filters.pop("from_", None), filters.pop("to", None), timezone)
    return {**filters, "start": start, "end": end}


def check_usable(conn: Connection, *, user_id: int, account_id: int, field: str) -> None:
    """Refuse an account id that is not the user's (400 naming `field`) or is archived (409)."""
    if check_owned(conn, user_id=user_id, account_id=account_id, field=field)["archived"]:
        raise archived(field)


def create(conn: Connection, *, user_id: int, data: dict) -> dict:
    """Open an account; a user has at most MAX_ACCOUNTS, so that listing them is bounded work."""
    with conn.transaction():
        quotas.make_room(
            conn, ACCOUNT, user_id=user_id, cap=MAX_ACCOUNTS, code="too_many_accounts", what="accounts"
        )
        try:
            return accounts.create_account(conn, user_id=user_id, data=data)
        except accounts.NameTaken as exc:
            raise _name_taken() from exc


def get(conn: Connection, *, user_id: int, account_id: int) -> dict:
    return found(owned.get(conn, ACCOUNT, user_id=user_id, id=account_id), "account")


def list_all(conn: Connection, *, user_id: int, include_archived: bool) -> tuple[list[dict], Decimal]:
    """The user's accounts (the default first, then by name) and the sum of their balances."""
    items = accounts.list_accounts(conn, user_id=user_id, include_archived=include_archived)
    return items, sum((item["balance"] for item in items), Decimal("0.00"))


def update(conn: Connection, *, user_id: int, account_id: int, changes: dict) -> dict:
    """Change an account; the default cannot be archived, and an archived account cannot become the
    default unless the same change unarchives it."""
    with conn.transaction():
        owned.lock_user(conn, user_id=user_id)
        current = get(conn, user_id=user_id, account_id=account_id)
        stays_default = changes.get("is_default", current["is_default"])
        stays_archived = changes.get("archived", current["archived"])
        if stays_default and stays_archived:
            raise Conflict("account_is_default", "The default account cannot be archived; make another the default.")
        try:
            account = accounts.update_account(conn, user_id=user_id, account_id=account_id, changes=changes)
        except accounts.NameTaken as exc:
            raise _name_taken() from exc
    return found(account, "account")


def delete(conn: Connection, *, user_id: int, account_id: int) -> None:
    """Delete an account nothing refers to; the default one, or one with records, is archived instead."""
    in_use = Conflict(
        "account_in_use",
        "The account is the default, or transactions, transfers or recurring transactions use it; archive it instead.",
    )
    with conn.transaction():
        owned.lock_user(conn, user_id=user_id)
        if get(conn, user_id=user_id, account_id=account_id)["is_default"]:
            raise in_use
        try:
            deleted = accounts.delete_account(conn, user_id=user_id, account_id=account_id)
        except accounts.InUse as exc:
            raise in_use from exc
    found(deleted, "account")
