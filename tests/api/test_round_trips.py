"""The round trips of a request: the login token's check, then the request's own statements, each
one round trip (autocommit: no BEGIN or COMMIT); a refused token sends nothing else.

tenant1's app runs in this process against its real database with a pool of one connection, whose
libpq trace shows every message the request sent: each Sync or simple Query is one round trip.
docs/performance.md says why the check is not pipelined with the first statement (measured slower).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest
from psycopg import pq

from service import create_app
from service import db as service_db
from service.config import Settings
from tests.utils import bearer, count_transactions, login, register

TENANT = "tenant1"
EXPENSE = {"type": "expense", "amount": "12.50", "category": "groceries"}
# The frontend messages that wait for the server: the end of an extended-protocol statement (Sync)
# and a simple query (BEGIN, COMMIT).
ROUND_TRIP = re.compile(r"^F\t\d+\t(Sync|Query)\b", re.MULTILINE)
PREPARED_USE = re.compile(r'^F\t\d+\tBind\t "" "_pg3_\d+"', re.MULTILINE)
PREPARED_ALONE = re.compile(r'F\t\d+\tParse\t "_pg3_\d+" [^\n]*\nF\t4\tSync')


@pytest.fixture(scope="module")
def app(tenant_envs):
    # A connection idle for a while is probed before it is lent (one more round trip); a slow
    # moment of a loaded machine must not make a traced request look like it made one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service_db, "PROBE_AFTER_IDLE_SECONDS", 3600.0)
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
        sent = text[start : match.end()]
        start = match.end() + 1
        # Once per connection and statement, on its sixth use, psycopg prepares it alone: not the request's.
        if not PREPARED_ALONE.fullmatch(sent):
            round_trips.append(sent)


def _warm(app, token: str) -> None:
    """A first request: the pool has its connection open and the token its claims verified."""
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
def test_an_authenticated_request_makes_two_round_trips_its_token_check_then_its_statement(
    app, user, tmp_path, method, path, body, status, statement
):
    _, token = user
    _warm(app, token)
    with traced(app, tmp_path) as round_trips:
        response = getattr(app.test_client(), method)(path, json=body, headers=bearer(token))
    assert response.status_code == status, response.text
    assert len(round_trips) == 2, "\n---\n".join(round_trips)
    check, work = round_trips
    # The check carries the token's id; the work its statement (by name once psycopg has prepared it).
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert jti in check and jti not in work, round_trips
    assert statement in work or PREPARED_USE.search(work), work


def test_a_revoked_token_sends_its_check_and_nothing_else(app, client, user, db, tmp_path):
    user_id, token = user
    _warm(app, token)
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    with traced(app, tmp_path) as round_trips:
        response = app.test_client().post("/transactions", json=EXPENSE, headers=bearer(token))
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token", response.text
    assert "revoked" in response.json["error"]["message"]
    assert len(round_trips) == 1 and "INSERT" not in round_trips[0]
    assert count_transactions(db, user_id) == 0


def test_a_deleted_users_token_is_refused_as_gone_in_one_round_trip(app, user, db, tmp_path):
    user_id, token = user
    _warm(app, token)
    db.execute("DELETE FROM users WHERE id = %s", (user_id,))
    with traced(app, tmp_path) as round_trips:
        response = app.test_client().get("/analytics?period=current_month", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json["error"]["message"] == "The token's user no longer exists."
    assert len(round_trips) == 1


def test_a_revoked_token_is_told_so_before_what_is_wrong_with_its_body(app, client, user):
    _, token = user
    assert app.test_client().post("/transactions", json={"type": "nonsense"}, headers=bearer(token)).status_code == 400
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    response = app.test_client().post("/transactions", json={"type": "nonsense"}, headers=bearer(token))
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token", response.text


def test_the_export_opens_its_snapshot_with_begin_alone(app, client, user, tmp_path):
    """REPEATABLE READ goes with BEGIN (service.db.snapshot), not in a SET TRANSACTION of its own."""
    _, token = user
    _warm(app, token)
    with traced(app, tmp_path) as round_trips:
        exported = app.test_client().get("/transactions/export", headers=bearer(token))
        assert exported.status_code == 200 and exported.mimetype == "text/csv", exported.text
        exported.close()  # the end of the stream gives its connection back
    sent = "\n".join(round_trips)
    assert "BEGIN ISOLATION LEVEL REPEATABLE READ" in sent and "SET TRANSACTION" not in sent, sent
    assert client.post("/logout", headers=bearer(token)).status_code == 204
    response = app.test_client().get("/transactions/export", headers=bearer(token))
    assert response.status_code == 401 and response.mimetype == "application/json", response.text
