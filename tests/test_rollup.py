"""The daily totals analytics reads: always equal to the transactions, keyed by the tenant's days."""

from __future__ import annotations

import random
import subprocess
import uuid

import localstack

from tests.utils import assert_error, auth_headers, create, poll

# daily_totals recomputed from scratch, without the rows whose transactions all went away.
EXPECTED = """
    SELECT user_id, (occurred_at AT TIME ZONE %(tz)s)::date AS day, type, coalesce(category, '') AS category,
           sum(amount) AS total, count(*) AS count
    FROM transactions GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
KEPT = "SELECT user_id, day, type, category, total, count FROM daily_totals WHERE count <> 0 ORDER BY 1, 2, 3, 4"


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


def test_a_deleted_users_totals_go_with_them(client, db):
    headers = auth_headers(client)
    create(client, headers, amount="5.00")
    user_id = db.execute("SELECT id FROM users").fetchone()["id"]
    db.execute("DELETE FROM users WHERE id = %s", (user_id,))
    assert db.execute("SELECT count(*) AS n FROM daily_totals WHERE user_id = %s", (user_id,)).fetchone()["n"] == 0


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

    result = _migrate(database_url, "America/New_York")
    assert "daily totals in America/New_York" in result.stdout
    with stack.cluster.connect(name) as conn:
        assert conn.execute("SELECT day::text FROM daily_totals").fetchall() == [("2026-02-28",)]
        assert conn.execute("SELECT timezone FROM rollup_settings").fetchone() == ("America/New_York",)
    assert "none, schema is current" in _migrate(database_url, "America/New_York").stdout


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
