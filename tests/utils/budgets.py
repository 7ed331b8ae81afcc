"""Budgets and recurring transactions over HTTP (issue 14): requests, the fields they answer, and the
calendar of tenant1 (America/New_York) computed apart from the service's own arithmetic."""

from __future__ import annotations

import calendar
import os
import subprocess
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import localstack

from .accounts import walk

# tenant1's time zone: its months and its days.
NEW_YORK = ZoneInfo("America/New_York")

BUDGET_FIELDS = {"id", "category", "amount", "currency", "created_at", "updated_at"}
BUDGET_ITEM_FIELDS = BUDGET_FIELDS | {"spent", "remaining", "percent_used"}
BUDGET_LIST_FIELDS = {"month", "currency", "items", "total_budgeted", "total_spent"}
RULE_FIELDS = {
    "id", "account_id", "type", "amount", "currency", "description", "category", "frequency", "interval",
    "start_date", "end_date", "last_occurrence", "next_occurrence", "created_at", "updated_at",
}


def today() -> date:
    """Today in tenant1's time zone."""
    return datetime.now(NEW_YORK).date()


def midnight(day: date) -> datetime:
    """The start of a day in tenant1's time zone."""
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)


def add_months(day: date, months: int) -> date:
    """The same day `months` later (earlier when negative), or the last day of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def set_budget(client: httpx.Client, headers: dict, category: str, amount: str) -> dict:
    response = client.post("/budgets", json={"category": category, "amount": amount}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def budgets_of(client: httpx.Client, headers: dict, month: str | None = None) -> dict:
    """GET /budgets for a month (the default one when None)."""
    response = client.get("/budgets", params={"month": month} if month else {}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def spent_by_category(client: httpx.Client, headers: dict, month: str) -> dict[str, str]:
    """Each budget's spent in a month, by category."""
    return {item["category"]: item["spent"] for item in budgets_of(client, headers, month)["items"]}


def spend(client: httpx.Client, headers: dict, amount: str, category: str | None, occurred_at: str, **fields) -> dict:
    body = {"type": "expense", "amount": amount, "category": category, "occurred_at": occurred_at, **fields}
    response = client.post("/transactions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def expense_sum(client: httpx.Client, headers: dict, category: str, month: str) -> Decimal:
    """The category's expenses in the month as GET /transactions?category= lists them, in New York."""
    first = date(int(month[:4]), int(month[5:]), 1)
    following = add_months(first, 1)
    items = walk(
        client, headers, "/transactions", category=category, type="expense",
        **{"from": midnight(first).isoformat(), "to": (midnight(following) - timedelta(microseconds=1)).isoformat()},
    )
    return sum((Decimal(item["amount"]) for item in items), Decimal("0.00"))


def new_rule(client: httpx.Client, headers: dict, **fields) -> dict:
    body = {"type": "expense", "amount": "10.00", "frequency": "daily", "start_date": today().isoformat(), **fields}
    response = client.post("/recurring-transactions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def made_by(client: httpx.Client, headers: dict, rule_id: int) -> list[dict]:
    """The transactions GET /transactions?recurring_id= lists, oldest first."""
    return walk(client, headers, "/transactions", recurring_id=rule_id, sort="occurred_at")


def days_of(transactions: list[dict]) -> list[date]:
    """The New York day of each transaction, each checked to be dated the start of that day."""
    days = []
    for item in transactions:
        at = datetime.fromisoformat(item["occurred_at"])
        day = at.astimezone(NEW_YORK).date()
        assert at == midnight(day), item
        days.append(day)
    return days


def move_back(db, rule_ids: list[int], days: int) -> None:
    """As if the rules had been created `days` days earlier and the scheduler had not run since:
    their dates and the transactions they made, moved back by whole New York days."""
    with db.transaction():
        _move_back(db, rule_ids, days)


def _move_back(db, rule_ids: list[int], days: int) -> None:
    db.execute(
        "UPDATE recurring_transactions SET start_date = start_date - %(days)s,"
        " end_date = end_date - %(days)s, last_occurrence = last_occurrence - %(days)s,"
        " next_occurrence = next_occurrence - %(days)s WHERE id = ANY(%(ids)s)",
        {"days": days, "ids": rule_ids},
    )
    db.execute(
        "UPDATE transactions SET occurred_at ="
        " ((occurred_at AT TIME ZONE 'America/New_York') - make_interval(days => %(days)s))"
        " AT TIME ZONE 'America/New_York' WHERE recurring_id = ANY(%(ids)s)",
        {"days": days, "ids": rule_ids},
    )


def scheduler(env: dict[str, str], *args: str, **popen) -> subprocess.Popen:
    """`python -m service run-scheduled` as its own process, with a tenant's environment."""
    return subprocess.Popen(
        [str(localstack.VENV_PYTHON), "-m", "service", "run-scheduled", *args],
        env={**os.environ, **env}, cwd=localstack.ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def run_scheduler(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    process = scheduler(env)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
