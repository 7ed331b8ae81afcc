"""Each record described once: its columns, what a client may write, its sort keys, its CSV columns.

The store builds its SQL from these descriptions, the CSV export and import take their columns from
them, the schemas their sort orders, and the benchmark its seeded columns. A new column is one edit
here (plus its migration, and its rules in the record's marshmallow schemas).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Record:
    table: str
    # Every column a read returns, in this order, with the Python type it reads as.
    columns: dict[str, type]
    # The columns a client may set on create and update (the keys of a validated create or update).
    writable: tuple[str, ...]
    # The columns a list may be sorted by, ascending or (with a leading "-") descending; a page
    # continues after the last row's (key, id).
    sort_keys: tuple[str, ...]
    # The columns of a CSV export, in order; an import accepts the writable ones among them.
    # `currency` is the tenant's, not a column: an import accepts only that one. `account` is the
    # name of the transaction's account (account_id): csvio and the store's export and import
    # translate it.
    csv_columns: tuple[str, ...]

    @property
    def sorts(self) -> tuple[str, ...]:
        """Every sort order a list accepts: each key ascending and descending."""
        return tuple(order for key in self.sort_keys for order in (key, f"-{key}"))

    @property
    def import_columns(self) -> tuple[str, ...]:
        return tuple(name for name in self.csv_columns if name in self.writable)

    def json_value(self, name: str, value: Any) -> Any:
        """A column's value as JSON: a decimal as a string with two places, an instant in ISO 8601."""
        return _JSON_ENCODERS.get(self.columns[name], _same)(value)

    def to_json(self, row: dict[str, Any]) -> dict[str, Any]:
        return {name: self.json_value(name, row[name]) for name in self.columns}

    def from_json(self, data: dict[str, Any]) -> dict[str, Any]:
        """The row that to_json wrote (other keys are ignored; a column added since reads as None)."""
        return {name: _JSON_DECODERS.get(kind, _same)(data.get(name)) for name, kind in self.columns.items()}

    def __post_init__(self) -> None:
        unknown = {kind.__name__ for kind in self.columns.values()} - {kind.__name__ for kind in _JSON_TYPES}
        if unknown:
            raise TypeError(f"{self.table}: no JSON form for {', '.join(sorted(unknown))} (see records._JSON_TYPES)")


class Position(NamedTuple):
    """Where a page ended: its sort order, and the last row's sort key and id."""

    sort: str
    key: Any
    id: int


class FeedPosition(NamedTuple):
    """Where a client's reading of the event feed stands: the last event's transaction id and id."""

    txid: int
    id: int


def _same(value: Any) -> Any:
    return value


def _optional(convert):
    return lambda value: None if value is None else convert(value)


_JSON_ENCODERS = {
    Decimal: _optional(lambda value: f"{value:.2f}"),
    datetime: _optional(datetime.isoformat),
    date: _optional(date.isoformat),
}
_JSON_DECODERS = {
    Decimal: _optional(Decimal),
    datetime: _optional(datetime.fromisoformat),
    date: _optional(date.fromisoformat),
}
# The column types a record may have: JSON's own (a list: a text[] column, as an array of strings),
# and those with an encoder and a decoder above.
_JSON_TYPES = (int, str, bool, list, *_JSON_ENCODERS)


TRANSACTION = Record(
    table="transactions",
    columns={
        "id": int,
        "account_id": int,
        "type": str,
        "amount": Decimal,
        "description": str,
        "category": str,
        "occurred_at": datetime,
        # The recurring rule it was made by (null for others); set by the service only.
        "recurring_id": int,
        "created_at": datetime,
        "updated_at": datetime,
    },
    writable=("account_id", "type", "amount", "description", "category", "occurred_at"),
    sort_keys=("occurred_at", "amount"),
    # `account` last: the columns of exports before accounts keep their positions.
    csv_columns=("id", "occurred_at", "type", "amount", "currency", "category", "description", "account"),
)

ACCOUNT = Record(
    table="accounts",
    columns={
        "id": int,
        "name": str,
        "kind": str,
        "opening_balance": Decimal,
        "balance": Decimal,
        "is_default": bool,
        "archived": bool,
        "created_at": datetime,
    },
    writable=("name", "kind", "opening_balance", "archived", "is_default"),
    sort_keys=(),
    csv_columns=(),
)

TRANSFER = Record(
    table="transfers",
    columns={
        "id": int,
        "from_account_id": int,
        "to_account_id": int,
        "amount": Decimal,
        "description": str,
        "occurred_at": datetime,
        "created_at": datetime,
        "updated_at": datetime,
    },
    writable=("from_account_id", "to_account_id", "amount", "description", "occurred_at"),
    sort_keys=("occurred_at",),
    csv_columns=(),
)

BUDGET = Record(
    table="budgets",
    columns={"id": int, "category": str, "amount": Decimal, "created_at": datetime, "updated_at": datetime},
    writable=("category", "amount"),
    sort_keys=(),
    csv_columns=(),
)

RECURRING = Record(
    table="recurring_transactions",
    columns={
        "id": int,
        "account_id": int,
        "type": str,
        "amount": Decimal,
        "description": str,
        "category": str,
        "frequency": str,
        "interval": int,
        "start_date": date,
        "end_date": date,
        "last_occurrence": date,
        "next_occurrence": date,
        "created_at": datetime,
        "updated_at": datetime,
    },
    writable=(
        "account_id", "type", "amount", "description", "category", "frequency", "interval", "start_date", "end_date"
    ),
    sort_keys=(),
    csv_columns=(),
)

# A personal access token as the API shows it: never its secret, nor the secret's hash (a column
# of the table that no read selects; store.personal_access_tokens writes it).
PERSONAL_ACCESS_TOKEN = Record(
    table="personal_access_tokens",
    columns={
        "id": int,
        "name": str,
        "scope": str,
        "created_at": datetime,
        "expires_at": datetime,
        "last_used_at": datetime,
    },
    writable=("name", "scope"),
    sort_keys=(),
    csv_columns=(),
)

# A user's webhook. Its signing secret is not a column here: no read, change or list returns it
# (store.webhooks.create_webhook inserts it and returns it once).
WEBHOOK = Record(
    table="webhooks",
    columns={
        "id": int,
        "url": str,
        # Event types (core.events.TYPES), or ["*"] for all.
        "events": list,
        "description": str,
        # false: no deliveries are made for it (the client's choice, or the dispatcher's after a 410).
        "active": bool,
        "created_at": datetime,
    },
    writable=("url", "events", "description", "active"),
    sort_keys=(),
    csv_columns=(),
)

# One event's delivery to one webhook (made by a trigger on events, sent by the dispatcher). It has
# no user_id of its own: it is the user's through its webhook (store.webhooks scopes by that).
DELIVERY = Record(
    table="webhook_deliveries",
    columns={
        "id": int,
        "status": str,
        "attempts": int,
        "last_status_code": int,
        "last_error": str,
        "next_attempt_at": datetime,
        "created_at": datetime,
    },
    writable=(),
    sort_keys=(),
    csv_columns=(),
)
