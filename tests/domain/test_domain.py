"""The domain layer (service/core) against the real database, without HTTP: the rules a new resource
reuses. The API tests prove the same rules through the wire; these prove the mechanisms alone."""

from __future__ import annotations

from decimal import Decimal

import pytest
from marshmallow import Schema
from psycopg.types.json import Jsonb

from service import schemas
from service.core import idempotency
from service.core.errors import Unprocessable
from service.records import TRANSACTION
from service.store import transactions
from tests.utils import count_transactions, insert_user, user_with_headers

EXPENSE = {"type": "expense", "amount": Decimal("12.50"), "category": "food"}


def _create(db, user_id: int, key: str | None, operation: str = "create_transaction", data: dict = EXPENSE):
    return idempotency.once(
        db, user_id=user_id, key=key, operation=operation, request=data, record=TRANSACTION, refused=lambda: None,
        perform=lambda: transactions.create_transaction(db, user_id=user_id, data=data),
    )


def test_a_replay_returns_the_first_row_with_its_types(db):
    user_id = insert_user(db)
    first, replayed_first = _create(db, user_id, "k1")
    again, replayed_again = _create(db, user_id, "k1")
    assert (replayed_first, replayed_again) == (False, True)
    assert again == first
    assert [type(again[name]) for name in ("amount", "created_at")] == [Decimal, type(first["created_at"])]
    assert count_transactions(db, user_id) == 1


def test_one_key_for_two_operations_is_refused_and_performs_nothing(db):
    user_id = insert_user(db)
    _create(db, user_id, "k1")
    with pytest.raises(Unprocessable) as refused:
        _create(db, user_id, "k1", operation="create_transfer")
    assert refused.value.code == "idempotency_key_reused"
    assert count_transactions(db, user_id) == 1


def test_a_failed_create_releases_its_key(db):
    user_id = insert_user(db)

    def failing():
        transactions.create_transaction(db, user_id=user_id, data=EXPENSE)
        raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError):
        idempotency.once(db, user_id=user_id, key="k1", operation="create_transaction", request=EXPENSE,
                         record=TRANSACTION, perform=failing, refused=lambda: None)
    assert count_transactions(db, user_id) == 0
    row, replayed = _create(db, user_id, "k1")
    assert not replayed and count_transactions(db, user_id) == 1


def test_keys_are_per_user(db):
    first, second = insert_user(db), insert_user(db)
    _create(db, first, "k1")
    _, replayed = _create(db, second, "k1")
    assert not replayed and count_transactions(db, second) == 1


# --- The record description agrees with what derives from it -------------------------------------


def _fields(schema: type[Schema]) -> set[str]:
    return {field.data_key or name for name, field in schema().fields.items()}


def test_the_transaction_schemas_carry_the_records_columns():
    assert _fields(schemas.TransactionCreate) == set(TRANSACTION.writable)
    assert _fields(schemas.TransactionUpdate) == set(TRANSACTION.writable)
    assert _fields(schemas.TransactionPublic) == set(TRANSACTION.columns) | {"currency"}
    assert set(schemas.SORTS) == {order for key in TRANSACTION.sort_keys for order in (key, f"-{key}")}


def test_the_records_columns_are_its_tables(db):
    table = {row["column_name"] for row in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (TRANSACTION.table,))}
    assert set(TRANSACTION.columns) <= table
    assert set(TRANSACTION.csv_columns) - set(TRANSACTION.columns) == {"currency", "account"}


def test_a_key_kept_before_migration_0009_replays_as_it_did(client, db):
    """Rows of the previous version kept the whole response (status, body with currency, Location)."""
    user_id, headers = user_with_headers(client)
    headers = {**headers, "Idempotency-Key": "before-0009"}
    first = client.post("/transactions", json={"type": "expense", "amount": "3.10"}, headers=headers)
    db.execute(
        "UPDATE idempotency_keys SET status = 201, body = %s, location = %s WHERE user_id = %s",
        (Jsonb(first.json()), first.headers["Location"], user_id),
    )
    again = client.post("/transactions", json={"type": "expense", "amount": "3.10"}, headers=headers)
    assert (again.status_code, again.json(), again.headers["Location"]) == (
        201, first.json(), first.headers["Location"]
    )
    assert again.headers["Idempotent-Replayed"] == "true"
