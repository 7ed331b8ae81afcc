"""Accounts and transfers over HTTP, and balances recomputed from the API's own lists (issue 13)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx

from . import assert_error

ACCOUNT_FIELDS = {
    "id", "name", "kind", "currency", "opening_balance", "balance", "is_default", "archived", "created_at"
}
TRANSFER_FIELDS = {
    "id", "from_account_id", "to_account_id", "amount", "currency", "occurred_at", "description", "created_at"
}
KINDS = ("checking", "savings", "cash", "credit_card", "investment", "other")
# An id no account or transfer has (the tests' tables start empty).
MISSING_ID = 987654321


def open_account(client: httpx.Client, headers: dict, name: str | None = None, kind: str = "savings", **fields) -> dict:
    body = {"name": name or f"acct-{uuid.uuid4().hex[:8]}", "kind": kind, **fields}
    response = client.post("/accounts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def account_list(client: httpx.Client, headers: dict, **params) -> dict:
    response = client.get("/accounts", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def all_accounts(client: httpx.Client, headers: dict) -> list[dict]:
    return account_list(client, headers, include_archived="true")["items"]


def get_account(client: httpx.Client, headers: dict, account_id: int) -> dict:
    response = client.get(f"/accounts/{account_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def default_account(client: httpx.Client, headers: dict) -> dict:
    (found,) = [item for item in all_accounts(client, headers) if item["is_default"]]
    return found


def balances(client: httpx.Client, headers: dict) -> dict[int, Decimal]:
    return {item["id"]: Decimal(item["balance"]) for item in all_accounts(client, headers)}


def move(client: httpx.Client, headers: dict, source: int, target: int, amount: str = "10.00", **fields) -> dict:
    """Transfer amount from one account to another; return the transfer."""
    body = {"from_account_id": source, "to_account_id": target, "amount": amount, **fields}
    response = client.post("/transfers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def walk(client: httpx.Client, headers: dict, path: str, **params) -> list[dict]:
    """Every item of a paged list, following next_cursor to the last page."""
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination does not end")


def recomputed_balances(client: httpx.Client, headers: dict) -> dict[int, Decimal]:
    """Each account's balance recomputed from the API's own lists: its opening balance, plus its
    income, minus its expenses (GET /transactions?account_id=), plus transfers in, minus transfers
    out (GET /transfers?account_id=). Checks on the way that the per-account lists partition the
    whole lists."""
    accounts = all_accounts(client, headers)
    every_transaction = walk(client, headers, "/transactions")
    every_transfer = walk(client, headers, "/transfers")
    seen_transactions: list[int] = []
    seen_transfers: set[int] = set()
    result = {}
    for account in accounts:
        account_id = account["id"]
        balance = Decimal(account["opening_balance"])
        transactions = walk(client, headers, "/transactions", account_id=account_id)
        for item in transactions:
            assert item["account_id"] == account_id, item
            balance += Decimal(item["amount"]) if item["type"] == "income" else -Decimal(item["amount"])
        seen_transactions += [item["id"] for item in transactions]
        for item in walk(client, headers, "/transfers", account_id=account_id):
            assert account_id in (item["from_account_id"], item["to_account_id"]), item
            balance += Decimal(item["amount"]) if item["to_account_id"] == account_id else -Decimal(item["amount"])
            seen_transfers.add(item["id"])
        result[account_id] = balance
    assert sorted(seen_transactions) == sorted(item["id"] for item in every_transaction)
    assert seen_transfers == {item["id"] for item in every_transfer}
    for item in every_transaction:
        assert item["account_id"] in result, item
    return result


def assert_balances_exact(client: httpx.Client, headers: dict) -> dict[int, Decimal]:
    """Every balance the API shows (list and item) equals the recomputation, and total_balance is
    the sum of the listed ones, with and without the archived accounts; returns the balances."""
    expected = recomputed_balances(client, headers)
    shown = all_accounts(client, headers)
    assert {item["id"]: Decimal(item["balance"]) for item in shown} == expected
    for item in shown:
        assert item["balance"] == f"{expected[item['id']]:.2f}", item
        assert get_account(client, headers, item["id"])["balance"] == item["balance"]
    for params in ({}, {"include_archived": "true"}):
        listed = account_list(client, headers, **params)
        total = sum((Decimal(item["balance"]) for item in listed["items"]), Decimal("0.00"))
        assert listed["total_balance"] == f"{total:.2f}", listed
    return expected


def validation_error(response: httpx.Response, field: str) -> dict:
    """A 400 validation_error naming field."""
    error = assert_error(response, 400, "validation_error")
    assert field in error.get("fields", {}), error
    return error
