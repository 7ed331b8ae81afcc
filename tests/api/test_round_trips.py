"""One round trip per request: a login token's revocation check rides with the request's first
statement (service.db.check_first), and a refused token's statement is never applied.

tenant1's app runs in this process against its real database with a pool of one connection, whose
libpq trace shows every message the request sent: each Sync or simple Query is one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import pq

from service import create_app
from service.config import Settings
from tests.utils import bearer, count_transactions, login, register

TENANT = "tenant1"
EXPENSE = {"type": "expense", "amount": "12.50", "category": "groceries"}
# The frontend messages that wait for the server: the end of a pipeline (or of one extended-protocol
# statement) and a simple query (BEGIN, COMMIT).
ROUND_TRIP = re.compile(r"^F\t\d+\t(Sync|Query)\b", re.MULTILINE)


@pytest.fixture(scope="module")
def app(tenant_envs):
    app = create_app(Settings.from_env({**tenant_envs[TENANT], "DB_POOL_SIZE": "1"}))
    yield app
    app.extensions["db_pool"].close()


@pytest.fixture
def user(client) -> tuple[int, str]:
    user = register(client)
    return user["id"], login(client, user["username"])


@contextmanager
def traced(app, tmp_path: Path) -> Iterator[list[str]]:
    """What the pool's one connection sends while the block runs: one string per round trip, the
    messages sent before it (Parse lines name their statements)."""
    pool = app.extensions["db_pool"]
    with pool.connection() as conn:  # the pool's one connection, which the request will take
        pass
    round_trips: list[str] = []
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:  # open until libpq stops writing to it
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield round_trips
        finally:
            conn.pgconn.untrace()
    text = "\n".join(line for line in trace.read_text().splitlines() if line.startswith("F\t"))
    start = 0
    for match in ROUND_TRIP.finditer(text):
        round_trips.append(text[start : match.end()])
        start = match.end() + 1


def _warm(app, token: str) -> None:
    """A first request, so that the connection is not probed for having been idle."""
    assert app.test_client().get("/accounts", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "statement"),
    [
        ("get", "/analytics?period=current_month", None, 200, "monthly_totals"),
        ("get", "/transactions?limit=50", None, 200, "FROM transactions"),
        ("post", "/transactions", EXPENSE, 201, "INSERT INTO transactions"),
        ("get", "/accounts", None, 200, "FROM accounts"),
    ],
)
def test_an_authenticated_request_makes_one_round_trip_with_its_check_first(
    app, user, tmp_path, method, path, body, status, statement
):
    _, token = user
    _warm(app, token)
    with traced(app, tmp_path) as round_trips:
        response = getattr(app.test_client(), method)(path, json=body, headers=bearer(token))
    assert response.status_code == status, response.text
    assert len(round_trips) == 1, "\n---\n".join(round_trips)
    (sent,) = round_trips
    check, work = sent.index("admit_login_token"), sent.index(statement)
    assert check < work, sent


def test_a_revoked_tokens_write_is_sent_with_the_check_and_never_applied(app, client, user, db, tmp_path):
    user_id, token = user
    _warm(app, token)
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    with traced(app, tmp_path) as round_trips:
        response = app.test_client().post("/transactions", json=EXPENSE, headers=bearer(token))
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token", response.text
    assert "revoked" in response.json["error"]["message"]
    # The insert went out in the check's round trip, and PostgreSQL skipped it.
    assert len(round_trips) == 1 and "INSERT INTO transactions" in round_trips[0]
    assert count_transactions(db, user_id) == 0


def test_refusals_and_admissions_alternate_on_one_connection_past_psycopgs_prepare_threshold(app, client, db):
    """psycopg prepares a statement on its fifth use; a pipeline whose check refused must not leave
    the connection believing a skipped statement was prepared (every later use would fail)."""
    kept, gone = register(client), register(client)
    kept_token = login(client, kept["username"])
    gone_token = login(client, gone["username"])
    db.execute("UPDATE users SET token_version = token_version + 1 WHERE id = %s", (gone["id"],))
    test_client = app.test_client()
    for _ in range(8):
        refused = test_client.post("/transactions", json=EXPENSE, headers=bearer(gone_token))
        assert refused.status_code == 401, refused.text
        created = test_client.post("/transactions", json=EXPENSE, headers=bearer(kept_token))
        assert created.status_code == 201, created.text
        listed = test_client.get("/transactions", headers=bearer(kept_token))
        assert listed.status_code == 200, listed.text
    assert count_transactions(db, kept["id"]) == 8 and count_transactions(db, gone["id"]) == 0


def test_a_deleted_users_token_is_refused_as_gone_in_the_same_round_trip(app, client, user, db, tmp_path):
    user_id, token = user
    _warm(app, token)
    db.execute("DELETE FROM users WHERE id = %s", (user_id,))
    with traced(app, tmp_path) as round_trips:
        response = app.test_client().get("/analytics?period=current_month", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json["error"]["message"] == "The token's user no longer exists."
    assert len(round_trips) == 1


def test_a_request_that_sends_no_statement_still_has_its_token_checked_after_its_work(app, client, user, tmp_path):
    """A bad body is refused before any statement; the check then runs alone, and a revoked token
    is told so rather than what was wrong with its body (as when the check came first)."""
    _, token = user
    _warm(app, token)
    with traced(app, tmp_path) as round_trips:
        response = app.test_client().post("/transactions", json={"type": "nonsense"}, headers=bearer(token))
    assert response.status_code == 400, response.text
    assert len(round_trips) == 1 and "admit_login_token" in round_trips[0], round_trips

    assert client.post("/logout", headers=bearer(token)).status_code == 204
    response = app.test_client().post("/transactions", json={"type": "nonsense"}, headers=bearer(token))
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token", response.text


def test_the_export_checks_the_token_before_its_snapshot_and_streams_nothing_to_a_revoked_one(app, client, user):
    _, token = user
    _warm(app, token)
    exported = app.test_client().get("/transactions/export", headers=bearer(token))
    assert exported.status_code == 200 and exported.mimetype == "text/csv", exported.text
    exported.close()  # the end of the stream gives its connection back
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    response = app.test_client().get("/transactions/export", headers=bearer(token))
    assert response.status_code == 401 and response.mimetype == "application/json", response.text
