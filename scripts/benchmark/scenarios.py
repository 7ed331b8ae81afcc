"""The requests measured, in the order they run, and the deep page's cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from benchmark.seed import PASSWORD, other_username
from service.records import Position
from service.schemas import transaction_cursor

DEEP_PAGE_AFTER = 90_000  # the deep page starts after this many of the heavy user's rows
PAGE_LIMIT = 50
LOGIN_USERS = 50  # POST /login takes these users in turn


@dataclass(frozen=True)
class Scenario:
    """One request, as wrk sends it over and over."""

    key: str
    label: str
    method: str
    path: str
    bodies: tuple[dict, ...] = ()  # request bodies, taken in turn
    authenticated: bool = True
    # SQL run (as the superuser, with %(user_id)s the heavy user's id) before the scenario.
    setup: str = ""


ANALYTICS_MONTH = Scenario(
    "analytics_month", "GET /analytics?period=current_month", "GET", "/analytics?period=current_month"
)
# The heavy user's three accounts with their balances: kept by triggers, so one row per account is read.
ACCOUNTS = Scenario("accounts", "GET /accounts", "GET", "/accounts")
# The heavy user's 20 budgets (seed.BUDGETS) with the current month's spending, read from the monthly
# totals (a lookup per budget), never from its rows.
BUDGETS = Scenario("budgets", "GET /budgets", "GET", "/budgets")
# The heavy user's recurring rules (seed.RULES), listed whole.
RECURRING = Scenario("recurring", "GET /recurring-transactions", "GET", "/recurring-transactions")
# The heavy user's first 100 events (seed.seed_events gives it one per transaction).
EVENTS = Scenario("events", "GET /events?limit=100 (first page)", "GET", "/events?limit=100")
# The heavy user gets a webhook for transaction.created before this scenario: each POST then writes a
# delivery too (the bench runs no dispatcher; what is measured is the API's cost of a subscriber).
ONE_WEBHOOK = (
    "INSERT INTO webhooks (user_id, url, events, secret)"
    " VALUES (%(user_id)s, 'https://hooks.example.com/finance', '{transaction.created}',"
    " 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')"
)
# Measured with 10,000 and with 1,000,000 rows in the tenant (the data-size comparison).
AT_BOTH_SIZES = (ANALYTICS_MONTH, ACCOUNTS, BUDGETS)
TRANSFER_AMOUNT = "25.00"


def deep_page_path(cursor: str) -> str:
    """The list of the heavy user's rows after DEEP_PAGE_AFTER of them."""
    return f"/transactions?limit={PAGE_LIMIT}&cursor={cursor}"


def transfer_bodies(first: int, second: int) -> tuple[dict, dict]:
    """Between two of the heavy user's accounts, one way then back (no Idempotency-Key)."""
    return tuple(
        {"from_account_id": source, "to_account_id": target, "amount": TRANSFER_AMOUNT, "description": "Bench"}
        for source, target in ((first, second), (second, first))
    )


def in_run_order(deep_path: str, transfer_accounts: tuple[int, int]) -> tuple[Scenario, ...]:
    """Reads first, on exactly the seeded data; the writes (which add rows to the heavy user's
    current month, or move money between two of its accounts) and the KDF-bound login last."""
    expense = {"type": "expense", "amount": "12.34", "description": "Coffee", "category": "dining"}
    return (
        Scenario("health", "GET /health", "GET", "/health", authenticated=False),
        ANALYTICS_MONTH,
        Scenario("analytics_year", "GET /analytics?period=last_year&group_by=month", "GET",
                 "/analytics?period=last_year&group_by=month"),
        Scenario("list_first", "GET /transactions?limit=50 (first page)", "GET",
                 f"/transactions?limit={PAGE_LIMIT}"),
        Scenario("list_deep", "GET /transactions?limit=50 (after 90,000 rows)", "GET", deep_path),
        # Read from the monthly totals (a row per month, type and category), not the 100,000 rows.
        Scenario("categories", "GET /categories", "GET", "/categories"),
        ACCOUNTS,
        BUDGETS,
        RECURRING,
        EVENTS,
        Scenario("create", "POST /transactions", "POST", "/transactions", bodies=(expense,)),
        Scenario("create_webhook", "POST /transactions (one active webhook)", "POST", "/transactions",
                 bodies=(expense,), setup=ONE_WEBHOOK),
        # Every transfer locks the same two account rows (their balances): the writes queue there.
        Scenario("transfer", "POST /transfers", "POST", "/transfers", bodies=transfer_bodies(*transfer_accounts)),
        # Several users in turn: parallel logins of one username count as attempts in flight
        # and would trip its lockout (429), which is not what this scenario measures.
        Scenario("login", "POST /login", "POST", "/login", authenticated=False, bodies=tuple(
            {"username": other_username(n), "password": PASSWORD} for n in range(1, LOGIN_USERS + 1)
        )),
    )


def cursor_after(occurred_at: datetime, row_id: int) -> str:
    """The next_cursor the API returns after the row (occurred_at, id) in the default sort.

    The app's connections run with TimeZone=UTC, so its keys print with +00:00.
    """
    return transaction_cursor(Position("-occurred_at", occurred_at.astimezone(UTC), row_id))


def deep_page_cursor(conn, heavy_id: int) -> str:
    occurred_at, row_id = conn.execute(
        "SELECT occurred_at, id FROM transactions WHERE user_id = %s"
        " ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
        (heavy_id, DEEP_PAGE_AFTER - 1),
    ).fetchone()
    return cursor_after(occurred_at, row_id)


def row_id_at(conn, heavy_id: int, position: int) -> int:
    """The id of the heavy user's row at 1-based position in the default sort (newest first)."""
    return conn.execute(
        "SELECT id FROM transactions WHERE user_id = %s ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
        (heavy_id, position - 1),
    ).fetchone()[0]
