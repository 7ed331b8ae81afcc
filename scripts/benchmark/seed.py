"""The tenant's data: 1,000 users and 1,000,000 transactions written with COPY, in two phases.

The transactions carry every column a client writes (records.TRANSACTION); transaction_line gives each a value.
Every user has its default account (made by the users trigger of migration 0010); the heavy user opens two
more, and its rows go to the three in turn; everyone else's go to their default account. Every user also has
BUDGETS (one per category, nine of them on the expense categories the rows use) and RULES (recurring
transactions in its default account, as if made up to today), inserted with the users, before any row.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice

import tenancy
from psycopg import sql

from service.records import BUDGET, RECURRING, TRANSACTION
from service.recurrence import dates_after, next_after
from service.security import hash_password

TENANT = tenancy.Tenant("bench", {"TENANT_TIMEZONE": "UTC", "TENANT_CURRENCY": "USD"})

USERS = 1_000
TOTAL_ROWS = 1_000_000
HEAVY_ROWS = 100_000
SMALL_TENANT_ROWS = 10_000  # phase A of the data-size comparison
HISTORY = timedelta(days=730)  # transactions span the last two years
HEAVY_USERNAME = "heavy@bench.example"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway password of a throwaway database
SEED = 20_261_124
# The seeded columns: every column a client writes (service/records.py), for each user.
COPY_COLUMNS = ("user_id", *TRANSACTION.writable)
# Added by the daily-rollup migration, when it is there: kept off during COPY, then rebuilt.
ROLLUP_TRIGGER = "transactions_totals"
ROLLUP_REFRESH = "refresh_totals"
# The accounts' balances are kept by triggers of transactions too (migration 0010): off with the
# rollup's during COPY, so rebuilt as well.
BALANCES_REFRESH = "refresh_balances"
# The heavy user's accounts besides its default one (name, kind, opening balance).
HEAVY_EXTRA_ACCOUNTS = (("Savings", "savings", "5000.00"), ("Credit card", "credit_card", "0.00"))


@dataclass(frozen=True)
class SeededUsers:
    """The users' ids and the accounts their rows go to."""

    heavy_id: int
    heavy_accounts: tuple[int, ...]  # its default account first, then HEAVY_EXTRA_ACCOUNTS'
    others: list[tuple[int, int]]  # (user id, default account id) of everyone else, by user id


@dataclass(frozen=True)
class Category:
    """What the rows of one category look like: its type, how often, amounts and descriptions."""

    name: str
    type: str
    weight: int  # relative frequency
    low_cents: int
    high_cents: int
    descriptions: tuple[str, ...]


# About one transaction in eight is income; the rest spreads over everyday expense categories.
CATEGORIES = (
    Category("salary", "income", 6, 150_000, 900_000, ("Monthly salary", "Salary bonus", "Payroll")),
    Category("freelance", "income", 6, 10_000, 300_000, ("Freelance invoice", "Consulting fee", "Side project")),
    Category("groceries", "expense", 22, 800, 18_000, ("Supermarket", "Farmers market", "Corner shop", "Bakery")),
    Category("dining", "expense", 16, 300, 12_000, ("Coffee", "Lunch", "Dinner out", "Takeaway")),
    Category("transport", "expense", 14, 200, 9_000, ("Metro card", "Fuel", "Taxi ride", "Parking")),
    Category("utilities", "expense", 6, 3_000, 25_000, ("Electricity bill", "Water bill", "Internet", "Phone plan")),
    Category("rent", "expense", 2, 70_000, 250_000, ("Monthly rent",)),
    Category("shopping", "expense", 10, 1_000, 60_000, ("Clothes", "Electronics", "Books", "Home goods")),
    Category("entertainment", "expense", 8, 500, 15_000, ("Cinema", "Streaming subscription", "Concert tickets")),
    Category("health", "expense", 5, 1_000, 40_000, ("Pharmacy", "Dentist", "Gym membership")),
    Category("travel", "expense", 5, 4_000, 150_000, ("Flight", "Hotel", "Train ticket")),
)
_CATEGORY_TABLE = tuple(category for category in CATEGORIES for _ in range(category.weight))
UNCATEGORISED_SHARE = 0.05  # rows written by the original clients carry neither category nor description

# Every user's budgets (issue 14 measures GET /budgets with 20): one per expense category the rows use,
# so their `spent` is read from monthly totals that exist, then categories no seeded row uses (spent 0).
# Only nine expense categories are seeded, and adding more would change every other scenario's data.
UNUSED_BUDGET_CATEGORIES = (
    "childcare", "education", "gifts", "insurance", "pets", "personal care", "subscriptions", "taxes",
    "charity", "home repair", "hobbies",
)
BUDGET_CATEGORIES = (
    *(category.name for category in CATEGORIES if category.type == "expense"), *UNUSED_BUDGET_CATEGORIES
)
# A monthly limit per budget, in turn: 100.00, 150.00, ... (what it is does not change the cost).
BUDGETS = tuple((category, f"{100 + 50 * n}.00") for n, category in enumerate(BUDGET_CATEGORIES))


@dataclass(frozen=True)
class Rule:
    """A recurring transaction every user has, in its default account; start_date is days before today."""

    type: str
    amount: str
    category: str
    description: str
    frequency: str
    interval: int
    days_ago: int
    ends_days_ago: int | None = None  # an end_date this many days before today (a rule that has ended)


RULES = (
    Rule("income", "3200.00", "salary", "Monthly salary", "monthly", 1, 300),
    Rule("expense", "1450.00", "rent", "Monthly rent", "monthly", 1, 330),
    Rule("expense", "12.99", "entertainment", "Streaming subscription", "monthly", 1, 200),
    Rule("expense", "45.00", "health", "Gym membership", "weekly", 2, 150),
    Rule("expense", "60.00", "utilities", "Internet", "monthly", 1, 90),
    Rule("expense", "640.00", "transport", "Car insurance", "yearly", 1, 120),
    Rule("expense", "4.50", "dining", "Coffee", "daily", 1, 60, ends_days_ago=10),
)
RULE_COLUMNS = (*RECURRING.writable, "last_occurrence", "next_occurrence")


def transaction_line(rng: random.Random, user_id: int, account_id: int, occurred: float) -> str:
    """One row of COPY text, in the order of COPY_COLUMNS."""
    category = _CATEGORY_TABLE[int(rng.random() * len(_CATEGORY_TABLE))]
    cents = rng.randint(category.low_cents, category.high_cents)
    if rng.random() < UNCATEGORISED_SHARE:
        description = name = "\\N"
    else:
        description = category.descriptions[int(rng.random() * len(category.descriptions))]
        name = category.name
    values = {
        "user_id": user_id,
        "account_id": account_id,
        "type": category.type,
        "amount": f"{cents // 100}.{cents % 100:02d}",
        "description": description,
        "category": name,
        "occurred_at": datetime.fromtimestamp(occurred, UTC).isoformat(sep=" "),
    }
    # A column the record gains and the bench does not fill fails here, loudly.
    return "\t".join(str(values[column]) for column in COPY_COLUMNS) + "\n"


@dataclass
class SeedPlan:
    """The rows of both phases: A holds SMALL_TENANT_ROWS, A + B hold TOTAL_ROWS.

    The heavy user's rows of the current month all go into phase A, so the measured analytics
    period is identical in both phases; B adds the heavy user's older rows and everyone else's.
    """

    heavy_current_month: list[str]
    heavy_older: list[str]
    others: Iterator[str]
    others_in_phase_a: int


def plan_seed(now: datetime, users: SeededUsers, rng: random.Random) -> SeedPlan:
    start, end = (now - HISTORY).timestamp(), now.timestamp() - 60
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    current, older = [], []
    accounts = users.heavy_accounts
    for n in range(HEAVY_ROWS):
        occurred = rng.uniform(start, end)
        # The accounts in turn, not drawn: the random sequence, so every other value, is as it was before.
        line = transaction_line(rng, users.heavy_id, accounts[n % len(accounts)], occurred)
        (current if occurred >= month_start else older).append(line)
    if len(current) > SMALL_TENANT_ROWS:
        raise RuntimeError(f"the heavy user's current month ({len(current)} rows) does not fit in phase A")

    def others() -> Iterator[str]:
        others = users.others
        for _ in range(TOTAL_ROWS - HEAVY_ROWS):
            user_id, account_id = others[int(rng.random() * len(others))]
            yield transaction_line(rng, user_id, account_id, rng.uniform(start, end))

    return SeedPlan(current, older, others(), SMALL_TENANT_ROWS - len(current))


def _batches(lines: Iterable[str], size: int = 20_000) -> Iterator[str]:
    iterator = iter(lines)
    while chunk := "".join(islice(iterator, size)):
        yield chunk


def rollup_present(conn) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('public.transactions') AND tgname = %s",
        (ROLLUP_TRIGGER,),
    ).fetchone()
    return row is not None


def copy_transactions(conn, lines: Iterable[str]) -> int:
    """COPY the rows in one transaction; with the rollup triggers (every user trigger of the table:
    the row one of updates and deletes, the statement one of inserts, the balances' too) off during
    COPY, then a rebuild of the totals and the balances."""
    rollup = rollup_present(conn)
    count = 0
    with conn.transaction():
        if rollup:
            conn.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(TRANSACTION.table), sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
        )
        with conn.cursor().copy(copy_sql) as copy:
            for chunk in _batches(lines):
                copy.write(chunk)
                count += chunk.count("\n")
        if rollup:
            conn.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
            for refresh in (ROLLUP_REFRESH, BALANCES_REFRESH):
                conn.execute(sql.SQL("SELECT {}()").format(sql.Identifier(refresh)))
    # As autovacuum would after such an insert: statistics, and the visibility map that lets
    # index-only scans skip the heap. Done now so autovacuum does not start during a measurement.
    conn.execute("VACUUM (ANALYZE)")
    # Write the load's dirty pages now: otherwise the spread checkpoint that the load's WAL
    # triggers keeps writing them (and fsyncing) through the first minutes of measurements.
    conn.execute("CHECKPOINT")
    return count


def other_username(n: int) -> str:
    return f"user{n:04d}@bench.example"


def seed_users(conn) -> SeededUsers:
    """1,000 users sharing one argon2 hash (computed once), each with its default account (the users
    trigger makes them, COPY included), and the heavy user's two more accounts."""
    password_hash = hash_password(PASSWORD)
    usernames = [HEAVY_USERNAME] + [other_username(n) for n in range(1, USERS)]
    with conn.cursor().copy("COPY users (username, password_hash) FROM STDIN") as copy:
        for username in usernames:
            copy.write_row((username, password_hash))
    rows = conn.execute(
        "SELECT u.username, u.id, a.id FROM users u LEFT JOIN accounts a ON a.user_id = u.id AND a.is_default"
    ).fetchall()
    missing = [username for username, _, account_id in rows if account_id is None]
    if missing:
        raise RuntimeError(f"{len(missing)} users without a default account, {missing[0]} among them")
    ids = {username: (user_id, account_id) for username, user_id, account_id in rows}
    heavy_id, heavy_default = ids[HEAVY_USERNAME]
    extra = tuple(
        conn.execute(
            "INSERT INTO accounts (user_id, name, kind, opening_balance) VALUES (%s, %s, %s, %s) RETURNING id",
            (heavy_id, *account),
        ).fetchone()[0]
        for account in HEAVY_EXTRA_ACCOUNTS
    )
    return SeededUsers(heavy_id, (heavy_default, *extra), sorted(ids[name] for name in usernames[1:]))


def rule_row(rule: Rule, today: date) -> dict:
    """The rule's columns (RULE_COLUMNS but account_id) as the service leaves them once it has made
    every occurrence up to today: last_occurrence the last made, next_occurrence the next due (None when
    the rule has ended)."""
    row = {
        "type": rule.type, "amount": rule.amount, "description": rule.description, "category": rule.category,
        "frequency": rule.frequency, "interval": rule.interval, "start_date": today - timedelta(days=rule.days_ago),
        "end_date": None if rule.ends_days_ago is None else today - timedelta(days=rule.ends_days_ago),
    }
    made = dates_after(row, None, until=today, limit=rule.days_ago + 1)
    last = made[-1] if made else None
    return {**row, "last_occurrence": last, "next_occurrence": next_after(row, last)}


def seed_budgets_and_rules(conn, today: date) -> tuple[int, int]:
    """Every user's BUDGETS and RULES (the latter in its default account), each table in one INSERT ... SELECT;
    the rules have made no transaction (their occurrences are not part of the seeded rows). The counts."""
    categories, amounts = (list(column) for column in zip(*BUDGETS, strict=True))
    budgets = conn.execute(
        sql.SQL(
            "INSERT INTO {} (user_id, category, amount)"
            " SELECT u.id, b.category, b.amount FROM users u"
            " CROSS JOIN unnest(%s::text[], %s::numeric[]) WITH ORDINALITY AS b (category, amount, n)"
            " ORDER BY u.id, b.n"
        ).format(sql.Identifier(BUDGET.table)),
        (categories, amounts),
    ).rowcount
    rows = [rule_row(rule, today) for rule in RULES]
    # Each column of RULES as an array, unnested side by side; account_id is the user's default account.
    columns = [column for column in RULE_COLUMNS if column != "account_id"]
    types = {"amount": "numeric", "interval": "integer", "start_date": "date", "end_date": "date",
             "last_occurrence": "date", "next_occurrence": "date"}
    rules = conn.execute(
        sql.SQL(
            "INSERT INTO {table} (user_id, {columns})"
            " SELECT a.user_id, {values} FROM accounts a"
            " CROSS JOIN unnest({arrays}) WITH ORDINALITY AS r ({names}, n)"
            " WHERE a.is_default ORDER BY a.user_id, r.n"
        ).format(
            table=sql.Identifier(RECURRING.table),
            columns=sql.SQL(", ").join(map(sql.Identifier, RULE_COLUMNS)),
            values=sql.SQL(", ").join(
                sql.Identifier("a", "id") if column == "account_id" else sql.Identifier("r", column)
                for column in RULE_COLUMNS
            ),
            arrays=sql.SQL(", ").join(
                sql.SQL("%s::{}[]").format(sql.SQL(types.get(column, "text"))) for column in columns
            ),
            names=sql.SQL(", ").join(map(sql.Identifier, columns)),
        ),
        [[row[column] for row in rows] for column in columns],
    ).rowcount
    return budgets, rules


def budget_spending(conn, user_id: int, month: date) -> dict[str, Decimal]:
    """The user's expenses by category in the month starting on `month` (UTC, the bench tenant's time
    zone), summed from its rows: what GET /budgets must read from the monthly totals."""
    following = (month + timedelta(days=32)).replace(day=1)
    rows = conn.execute(
        "SELECT category, sum(amount) FROM transactions WHERE user_id = %s AND type = 'expense'"
        " AND category IS NOT NULL AND occurred_at >= %s AND occurred_at < %s GROUP BY category",
        (user_id, *(datetime(day.year, day.month, 1, tzinfo=UTC) for day in (month, following))),
    ).fetchall()
    return dict(rows)


def account_balances(conn, user_id: int) -> dict[int, Decimal]:
    """The user's balances recomputed from its rows (what the triggers, or the rebuild, must have kept)."""
    rows = conn.execute(
        "SELECT a.id, a.opening_balance + coalesce(sum(m.amount), 0) FROM accounts a LEFT JOIN ("
        " SELECT account_id, CASE type WHEN 'income' THEN amount ELSE -amount END FROM transactions"
        " WHERE user_id = %(user)s"
        " UNION ALL SELECT to_account_id, amount FROM transfers WHERE user_id = %(user)s"
        " UNION ALL SELECT from_account_id, -amount FROM transfers WHERE user_id = %(user)s"
        ") AS m (account_id, amount) ON m.account_id = a.id WHERE a.user_id = %(user)s GROUP BY a.id",
        {"user": user_id},
    ).fetchall()
    return dict(rows)


def seed_events(conn, heavy_id: int) -> int:
    """One transaction.created event per row of the heavy user's, as the triggers COPY ran without
    would have written (other users' rows have none; GET /events reads one user's)."""
    return conn.execute(
        "INSERT INTO events (user_id, type, data)"
        " SELECT user_id, 'transaction.created', to_jsonb(t) - 'user_id' FROM transactions t"
        " WHERE user_id = %s ORDER BY id",
        (heavy_id,),
    ).rowcount


def heavy_month_rows(conn, heavy_id: int, now: datetime) -> int:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return conn.execute(
        "SELECT count(*) FROM transactions WHERE user_id = %s AND occurred_at >= %s", (heavy_id, month_start)
    ).fetchone()[0]
