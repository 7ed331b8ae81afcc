"""service.db.snapshot: a REPEATABLE READ transaction opened by BEGIN alone, on a real connection."""

from __future__ import annotations

import psycopg
import pytest

from service.db import snapshot
from tests.utils import insert_user


@pytest.fixture
def conn(stack):
    with stack.cluster.connect("tenant1") as conn:
        conn.autocommit = True
        yield conn


def test_every_statement_of_a_snapshot_sees_the_rows_committed_before_it_began(conn, db):
    with snapshot(conn):
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
        before = conn.execute("SELECT count(*) FROM users").fetchone()
        insert_user(db)  # committed meanwhile, by another connection
        assert conn.execute("SELECT count(*) FROM users").fetchone() == before
    # Afterwards the connection is back to autocommit statements at the default level.
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (before[0] + 1,)
    assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_a_failure_inside_leaves_the_connection_at_the_default_level(conn):
    with pytest.raises(psycopg.errors.DivisionByZero), snapshot(conn):
        conn.execute("SELECT 1 / 0")
    assert conn.isolation_level is None
    assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_a_connection_lost_inside_raises_its_own_error_not_one_of_the_reset(stack, conn):
    """The export answers 503 for a database that went away only if this error reaches errors.py."""
    pid = conn.info.backend_pid
    with pytest.raises(psycopg.OperationalError) as raised, snapshot(conn):
        with stack.cluster.connect("tenant1") as other:
            other.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # returns once it is gone
        conn.execute("SELECT 1")
    assert not isinstance(raised.value, psycopg.ProgrammingError)
    assert conn.closed
