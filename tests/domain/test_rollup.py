"""The daily and monthly totals analytics reads: always equal to the transactions, keyed by the
tenant's calendar."""

from __future__ import annotations

import random
import subprocess
import threading
import uuid
from decimal import Decimal

import httpx
import localstack
import psycopg
from psycopg import sql

from tests.utils import assert_error, auth_headers, create, poll

# daily_totals recomputed from scratch, without the rows whose transactions all went away.
EXPECTED = """
    SELECT user_id, (occurred_at AT TIME ZONE %(tz)s)::date AS day, type, coalesce(category, '') AS category,
           sum(amount) AS total, count(*) AS count
    FROM transactions GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
KEPT = "SELECT user_id, day, type, category, total, count FROM daily_totals WHERE count <> 0 ORDER BY 1, 2, 3, 4"
EXPECTED_MONTHLY = """
    SELECT user_id, date_trunc('month', occurred_at AT TIME ZONE %(tz)s)::date AS month, type,
           coalesce(category, '') AS category, sum(amount) AS total, count(*) AS count
    FROM transactions GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
KEPT_MONTHLY = (
    "SELECT user_id, month, type, category, total, count FROM monthly_totals WHERE count <> 0 ORDER BY 1, 2, 3, 4"
)


def test_totals_equal_the_transactions_after_any_mix_of_writes(client, db, servers):
    headers = auth_headers(client)
    other = auth_headers(client)
    rng = random.Random(7)
    moments = ["2026-01-31T23:30:00-05:00", "2026-02-01T04:59:59Z", "2026-02-01T05:00:00Z", "2026-06-15T12:00:00Z"]
    created = []
    for _ in range(40):
        fields = {
            "type": rng.choice(["income", "expense"]),
            "amount": f"{rng.randint(1, 99999) / 100:.2f}",
            "category": rng.choice([None, "food", "rent", "fun"]),
            "occurred_at": rng.choice(moments),
        }
        created.append(create(client, rng.choice([headers, other]), **fields))
    mine = [t for t in created if client.get(f"/transactions/{t['id']}", headers=headers).status_code == 200]
    for transaction in mine[:10]:
        change = rng.choice(
            [{"amount": "0.01"}, {"type": "income"}, {"category": "moved"}, {"category": None},
             {"occurred_at": rng.choice(moments)}, {"description": "only the text"}]
        )
        assert client.patch(f"/transactions/{transaction['id']}", json=change, headers=headers).status_code == 200
    for transaction in mine[10:15]:
        assert client.delete(f"/transactions/{transaction['id']}", headers=headers).status_code == 204
    csv = (
        "type,amount,category,occurred_at\n"
        "income,1.10,food,2026-02-01T00:00:00Z\nexpense,2.20,,2026-02-28T23:59:00Z\n"
    )
    response = client.post("/transactions/import", content=csv, headers={**headers, "Content-Type": "text/csv"})
    assert response.status_code == 201, response.text

    tz = servers["tenant1"].env["TENANT_TIMEZONE"]
    assert db.execute(KEPT).fetchall() == db.execute(EXPECTED, {"tz": tz}).fetchall()
    assert db.execute(KEPT_MONTHLY).fetchall() == db.execute(EXPECTED_MONTHLY, {"tz": tz}).fetchall()


def test_imports_and_updates_of_the_same_totals_at_once_neither_deadlock_nor_drift(client, db, servers):
    """The review found an import's statement trigger locking monthly totals before daily ones,
    the reverse of the row trigger of updates: an import beside updates of the same user's month
    deadlocked. Both now lock daily rows first; every request succeeds and the totals still equal
    the transactions."""
    headers = auth_headers(client)
    days = [f"2026-03-{day:02d}T12:00:00Z" for day in range(1, 29)]
    mine = [create(client, headers, occurred_at=day, category=f"c{n % 4}") for n, day in enumerate(days)]
    rows = "".join(f"expense,1.00,c{n % 4},{days[n % len(days)]}\n" for n in range(25_000))
    csv = "type,amount,category,occurred_at\n" + rows
    url = servers["tenant1"].url
    failures: list[str] = []

    importing = threading.Event()

    def import_once() -> None:
        with httpx.Client(base_url=url, timeout=60) as own:
            response = own.post("/transactions/import", content=csv, headers={**headers, "Content-Type": "text/csv"})
            if response.status_code != 201:
                failures.append(f"import {response.status_code} {response.text[:200]}")

    def update_while_importing(amount: str) -> None:
        """PATCH the user's March transactions in turn until the imports are done (at most 3,000)."""
        with httpx.Client(base_url=url, timeout=60) as own:
            importing.wait(10)
            for n in range(3_000):
                if not importing.is_set():
                    break
                transaction = mine[n % len(mine)]
                response = own.patch(f"/transactions/{transaction['id']}", json={"amount": amount}, headers=headers)
                if response.status_code != 200:
                    failures.append(f"update {response.status_code} {response.text[:200]}")

    imports = [threading.Thread(target=import_once) for _ in range(3)]
    updates = [threading.Thread(target=update_while_importing, args=(f"{n + 2}.00",)) for n in range(2)]
    for thread in updates + imports:
        thread.start()
    importing.set()
    for thread in imports:
        thread.join(120)
    importing.clear()
    for thread in updates:
        thread.join(120)
    assert failures == []
    tz = servers["tenant1"].env["TENANT_TIMEZONE"]
    assert db.execute(KEPT).fetchall() == db.execute(EXPECTED, {"tz": tz}).fetchall()
    assert db.execute(KEPT_MONTHLY).fetchall() == db.execute(EXPECTED_MONTHLY, {"tz": tz}).fetchall()

def test_a_deleted_users_totals_go_with_them(client, db):
    headers = auth_headers(client)
    create(client, headers, amount="5.00")
    user_id = db.execute("SELECT id FROM users").fetchone()["id"]
    db.execute("DELETE FROM users WHERE id = %s", (user_id,))
    for table in ("daily_totals", "monthly_totals"):
        query = sql.SQL("SELECT count(*) AS n FROM {} WHERE user_id = %s").format(sql.Identifier(table))
        count = db.execute(query, (user_id,)).fetchone()["n"]
        assert count == 0, table


def _migrate(database_url: str, timezone: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(localstack.VENV_PYTHON), "-m", "service", "migrate"],
        env={"DATABASE_URL": database_url, "TENANT_TIMEZONE": timezone, "PATH": "/usr/bin:/bin"},
        cwd=localstack.ROOT, capture_output=True, text=True, timeout=60, check=True,
    )


def test_migrate_rekeys_the_totals_when_the_time_zone_changes(stack):
    name = f"rekey_{uuid.uuid4().hex[:8]}"
    database_url = stack.cluster.ensure_database(name, "probe-password-123")
    _migrate(database_url, "UTC")
    with stack.cluster.connect(name) as conn:
        user = conn.execute("INSERT INTO users (username, password_hash) VALUES ('rekey', 'x') RETURNING id")
        user_id = user.fetchone()[0]
        conn.execute(
            "INSERT INTO transactions (user_id, type, amount, occurred_at)"
            " VALUES (%s, 'expense', 3.00, '2026-03-01T02:00:00Z')",
            (user_id,),
        )
        assert conn.execute("SELECT day::text FROM daily_totals").fetchall() == [("2026-03-01",)]
        assert conn.execute("SELECT month::text FROM monthly_totals").fetchall() == [("2026-03-01",)]

    result = _migrate(database_url, "America/New_York")
    assert "daily totals in America/New_York" in result.stdout
    with stack.cluster.connect(name) as conn:
        assert conn.execute("SELECT day::text FROM daily_totals").fetchall() == [("2026-02-28",)]
        assert conn.execute("SELECT month::text FROM monthly_totals").fetchall() == [("2026-02-01",)]
        assert conn.execute("SELECT timezone FROM rollup_settings").fetchone() == ("America/New_York",)
    assert "none, schema is current" in _migrate(database_url, "America/New_York").stdout


OLD_NAMES = ("add_to_daily_total", "transactions_daily_totals", "users_daily_totals", "refresh_daily_totals")
ALL_TOTALS = [
    sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3, 4").format(sql.Identifier(table))
    for table in ("daily_totals", "monthly_totals")
]
INSERT = "INSERT INTO transactions (user_id, type, amount, category, occurred_at) VALUES (%s, %s, %s, %s, %s)"
TRIGGERS = """
    SELECT tgrelid::regclass::text, tgname, tgfoid::regproc::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2
"""


def _apply_migrations(conn: psycopg.Connection, *, after: str, through: str) -> None:
    """Apply the migration files after `after` up to and including `through`, each in one
    transaction and recorded, as `python -m service migrate` does."""
    for path in sorted((localstack.ROOT / "service" / "migrations").glob("*.sql")):
        version = path.stem
        if after < version <= through:
            with conn.transaction():
                conn.execute(path.read_bytes())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


def test_totals_names_migration_keeps_a_populated_databases_totals_and_their_triggers(stack):
    """0008 renames the functions and triggers of 0002/0003 for the daily and monthly totals they
    keep: applied to a database that 0001-0007 built and filled, it rebuilds nothing (a row a
    delete brought to zero stays), every kind of write still keeps the totals, and no function,
    trigger or function body is left with a daily-only name."""
    name = f"names_{uuid.uuid4().hex[:8]}"
    database_url = stack.cluster.ensure_database(name, "probe-password-123")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        _apply_migrations(conn, after="", through="0007_set_based_insert_totals")
        add_user = "INSERT INTO users (username, password_hash) VALUES (%s, 'x') RETURNING id"
        users = [conn.execute(add_user, (username,)).fetchone()[0] for username in ("names-a", "names-b")]
        conn.execute(INSERT, (users[0], "expense", "3.00", "food", "2026-03-01T02:00:00Z"))
        gone = conn.execute(INSERT + " RETURNING id", (users[0], "income", "9.00", "once", "2026-04-10T12:00:00Z"))
        conn.execute("DELETE FROM transactions WHERE id = %s", (gone.fetchone()[0],))
        conn.execute(INSERT, (users[1], "expense", "4.50", None, "2026-03-31T23:59:00Z"))
        before = [conn.execute(query).fetchall() for query in ALL_TOTALS]
        assert any(row[-1] == 0 for row in before[0]), "a row at zero, which a rebuild would drop"

    # 0008 alone, as migrate applies it (0010 rebuilds the totals by account: test_balances.py).
    with psycopg.connect(database_url, autocommit=True) as conn:
        _apply_migrations(conn, after="0007_set_based_insert_totals", through="0008_totals_names")
        assert [conn.execute(query).fetchall() for query in ALL_TOTALS] == before
        # A single insert, a multi-row insert, a COPY, updates of every kind, a delete, a user's deletion.
        conn.execute(INSERT, (users[0], "expense", "1.25", "food", "2026-03-01T10:00:00Z"))
        conn.execute(
            "INSERT INTO transactions (user_id, type, amount, category, occurred_at) VALUES"
            " (%s, 'income', 2.00, NULL, '2026-03-02T00:00:00Z'),"
            " (%s, 'expense', 7.00, 'rent', '2026-05-01T00:00:00Z'),"
            " (%s, 'expense', 8.00, 'food', '2026-03-01T05:00:00Z')",
            (users[0], users[0], users[1]),
        )
        copy_sql = "COPY transactions (user_id, type, amount, category, occurred_at) FROM STDIN"
        with conn.cursor().copy(copy_sql) as copy:
            for n in range(50):
                occurred_at = f"2026-0{3 + n % 3}-1{n % 9}T12:00:00Z"
                copy.write_row((users[n % 2], "expense", f"{n + 1}.10", f"c{n % 3}", occurred_at))
        mine = conn.execute("SELECT id FROM transactions WHERE user_id = %s ORDER BY id", (users[0],))
        ids = [row[0] for row in mine]
        conn.execute("UPDATE transactions SET amount = 0.01 WHERE id = %s", (ids[0],))
        conn.execute("UPDATE transactions SET type = 'income', category = NULL WHERE id = %s", (ids[1],))
        conn.execute("UPDATE transactions SET occurred_at = '2026-07-01T00:00:00Z' WHERE id = %s", (ids[2],))
        conn.execute("UPDATE transactions SET description = 'only the text' WHERE id = %s", (ids[3],))
        conn.execute("DELETE FROM transactions WHERE id = %s", (ids[4],))
        conn.execute("DELETE FROM users WHERE id = %s", (users[1],))
        for query in ALL_TOTALS:
            assert all(row[0] != users[1] for row in conn.execute(query))
        kept = conn.execute(KEPT).fetchall()
        assert kept and kept == conn.execute(EXPECTED, {"tz": "UTC"}).fetchall()
        assert conn.execute(KEPT_MONTHLY).fetchall() == conn.execute(EXPECTED_MONTHLY, {"tz": "UTC"}).fetchall()

        assert conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE '%daily_total%'").fetchall() == []
        assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%daily_total%'").fetchall() == []
        old_name = r"\m(" + "|".join(OLD_NAMES) + r")\M"
        assert conn.execute("SELECT proname FROM pg_proc WHERE prosrc ~ %s", (old_name,)).fetchall() == []
        assert conn.execute(TRIGGERS).fetchall() == [
            ("transactions", "transactions_inserted_totals", "transactions_inserted_totals"),
            ("transactions", "transactions_totals", "transactions_totals"),
            ("users", "users_totals", "users_totals"),
        ]
        conn.execute("SELECT refresh_totals()")
        assert conn.execute(ALL_TOTALS[0]).fetchall() == kept


def test_readiness_refuses_totals_keyed_by_another_time_zone(stack, tenant_envs):
    """An app started with a TENANT_TIMEZONE that migrate was not run with is not ready."""
    env = {**tenant_envs["tenant1"], "TENANT_TIMEZONE": "Asia/Tokyo"}
    server = stack.start_server("tenant1", env, localstack.free_port(), wait_ready=False)
    try:
        response = poll(f"{server.url}/health/ready", lambda r: r is not None)
        error = assert_error(response, 503, "migrations_pending")
        assert "Asia/Tokyo" in error["message"]
    finally:
        server.stop()


# Spans that start and end inside months, cover whole months, or are one day; by every grouping.
SPANS = [
    ("2025-11-15", "2026-02-10"), ("2025-12-01", "2026-01-31"), ("2025-12-31", "2026-01-01"),
    ("2026-01-01", "2026-01-01"), ("2026-01-02", "2026-01-30"), ("2025-10-01", "2026-03-31"),
    ("2026-02-01", "2026-03-15"), ("2025-11-30", "2026-03-01"),
]
RECOMPUTED = """
    SELECT {key} AS key, coalesce(sum(amount) FILTER (WHERE type = 'income'), 0.00) AS income,
           coalesce(sum(amount) FILTER (WHERE type = 'expense'), 0.00) AS expense, count(*) AS count
    FROM transactions
    WHERE user_id = %(user_id)s AND (occurred_at AT TIME ZONE %(tz)s)::date BETWEEN %(first)s AND %(last)s
    GROUP BY 1 ORDER BY 1 NULLS LAST
"""
KEYS = {
    None: "NULL",
    "category": "category",
    "month": "to_char(occurred_at AT TIME ZONE %(tz)s, 'YYYY-MM')",
    "day": "to_char(occurred_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD')",
}


def test_analytics_of_any_span_equals_the_transactions(client, db, servers):
    """Whole months come from monthly_totals and the days around them from daily_totals."""
    headers = auth_headers(client)
    rng = random.Random(11)
    for _ in range(60):
        moment = f"2025-{rng.randint(10, 12):02d}" if rng.random() < 0.5 else f"2026-{rng.randint(1, 3):02d}"
        create(
            client, headers, type=rng.choice(["income", "expense"]), amount=f"{rng.randint(1, 99999) / 100:.2f}",
            category=rng.choice([None, "food", "rent"]),
            occurred_at=f"{moment}-{rng.choice([1, 2, 15, 28]):02d}T{rng.choice(['00:30', '12:00', '23:30'])}:00Z",
        )
    user_id = db.execute("SELECT id FROM users").fetchone()["id"]
    tz = servers["tenant1"].env["TENANT_TIMEZONE"]
    for first, last in SPANS:
        for group_by, key in KEYS.items():
            params = {"from": first, "to": last, **({"group_by": group_by} if group_by else {})}
            response = client.get("/analytics", params=params, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            expected = db.execute(
                RECOMPUTED.format(key=key), {"user_id": user_id, "tz": tz, "first": first, "last": last}
            ).fetchall()
            totals = (
                str(sum((row["income"] for row in expected), Decimal("0.00"))),
                str(sum((row["expense"] for row in expected), Decimal("0.00"))),
                sum(row["count"] for row in expected),
            )
            assert (body["total_income"], body["total_expense"], body["count"]) == totals, (first, last, group_by)
            if group_by:
                groups = [(g["key"], g["total_income"], g["total_expense"], g["count"]) for g in body["groups"]]
                assert groups == [(r["key"], str(r["income"]), str(r["expense"]), r["count"]) for r in expected]
