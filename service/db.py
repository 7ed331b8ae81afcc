"""The PostgreSQL connection pool of one worker process, and the connection of each request.

A request takes at most one connection from the pool, on first use, and gives it back when it
ends. Connections are in autocommit mode: every statement is its own transaction, committed
before its result comes back, which saves the BEGIN and COMMIT round trips of a one-statement
request. Statements that must apply together go in `with conn.transaction():`.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from weakref import WeakKeyDictionary

import psycopg
from flask import Flask, current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .config import Settings

# Errors of contention with other requests (a lock waited for too long, a deadlock, a
# serialization failure): worth a retry, unlike an outage or a request that asks too much.
CONTENTION = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

# Every pooled connection returns rows as dicts.
Connection: TypeAlias = psycopg.Connection[dict[str, Any]]


# A connection idle longer than this is probed before it is lent (the database may have restarted
# meanwhile); one that was in use a moment ago is lent as it is, saving a round trip per request.
PROBE_AFTER_IDLE_SECONDS = 2.0
_returned_at: WeakKeyDictionary[Connection, float] = WeakKeyDictionary()


def _probe_if_idle(conn: Connection) -> None:
    if time.monotonic() - _returned_at.get(conn, 0.0) > PROBE_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


# While the database seems unreachable, a request waits at most this long for a connection instead
# of DB_POOL_TIMEOUT_MS. A sync worker serves nothing else while it waits, not even /health: full
# waits made every request of an outage take 5 s, and those queued behind them 10 s and more. A
# short wait still asks the pool for a connection, so the database coming back is noticed at once.
UNREACHABLE_WAIT_SECONDS = 0.25


class Pool(ConnectionPool[Connection]):
    """The worker's pool, and whether the database seems unreachable (see connection())."""

    # Set when a lent connection comes back broken or the pool gives up reconnecting; cleared
    # when a connection is lent again.
    unreachable = False


def _reconnect_failed(pool: ConnectionPool[Any]) -> None:
    if isinstance(pool, Pool):
        pool.unreachable = True


def create_pool(settings: Settings) -> Pool:
    """Open a pool without waiting for the database, so a worker starts even while it is down."""
    pool = Pool(
        settings.database_url.reveal(),
        min_size=1,
        max_size=settings.db_pool_size,
        timeout=settings.db_pool_timeout,
        # Connections broken while idle (a database restart) are replaced, not handed out.
        check=_probe_if_idle,
        # Give up a failing connection attempt quickly: the next request starts a fresh one, so
        # the pool recovers within a second or two of the database coming back instead of
        # waiting out an exponential backoff.
        reconnect_timeout=2.0,
        reconnect_failed=_reconnect_failed,
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": 3,
            "application_name": f"finance-{settings.tenant_id}",
            # A wait for another request's lock gives up at a third of the statement timeout, so
            # that contention (LockNotAvailable: 503, retry) is told apart from a request that
            # asks for too much work (QueryCanceled: 422, errors.py), even when the statement had
            # worked a while before it had to wait.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}"
            f" -c lock_timeout={settings.db_statement_timeout_ms // 3}"
            " -c idle_in_transaction_session_timeout=30000 -c TimeZone=UTC",
        },
        name=f"finance-{settings.tenant_id}",
        open=False,
    )
    pool.open(wait=False)
    atexit.register(pool.close)
    return pool


@contextmanager
def streaming_connection() -> Iterator[Connection]:
    """A connection of its own for a streamed response, held until the stream ends.

    Flask tears the request down, giving back the request's connection, before the response
    streams; a generator that started reading in the view must hold its connection itself. The
    request's connection goes back first, so a worker never holds two.
    """
    release()
    pool: Pool = current_app.extensions["db_pool"]
    with pool.connection() as conn:
        yield conn


@contextmanager
def snapshot(conn: Connection) -> Iterator[None]:
    """A REPEATABLE READ transaction: every statement in it sees the same committed rows. The level
    goes with BEGIN, saving the round trip of a SET TRANSACTION."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            yield
    finally:
        if not conn.closed:  # a broken connection is discarded; its error is the one to raise
            conn.isolation_level = None


def fetch_one(cursor: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    """The row a statement always returns (INSERT ... RETURNING, an aggregate without GROUP BY)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


def init_app(app: Flask, settings: Settings) -> None:
    """Give the app its pool; called in each gunicorn worker, after the fork."""
    app.extensions["db_pool"] = create_pool(settings)

    @app.teardown_request
    def give_back(_exc: BaseException | None) -> None:
        release()


def connection(timeout: float | None = None) -> Connection:
    """The request's connection (autocommit), taken from the pool on first use.

    Waits at most `timeout` seconds (default DB_POOL_TIMEOUT_MS; UNREACHABLE_WAIT_SECONDS while
    the database seems unreachable) for a free one, then raises PoolTimeout, which the error
    handlers answer with 503.
    """
    conn = g.get("db_connection")
    if conn is None:
        pool: Pool = current_app.extensions["db_pool"]
        if pool.unreachable:
            timeout = min(pool.timeout if timeout is None else timeout, UNREACHABLE_WAIT_SECONDS)
        conn = g.db_connection = pool.getconn(timeout=timeout)
        pool.unreachable = False
    return conn


def release() -> None:
    """Give the request's connection back before the request ends (before slow work without it)."""
    conn = g.pop("db_connection", None)
    if conn is not None:
        pool: Pool = current_app.extensions["db_pool"]
        if conn.broken:
            # Lost mid-request (the database went away or restarted): the pool discards it and
            # opens another; until one is lent, requests wait only briefly (see connection()).
            pool.unreachable = True
        # Noted here rather than in a pool `reset` callback, which would hand every return to
        # the pool's worker thread (a thread switch per request).
        _returned_at[conn] = time.monotonic()
        pool.putconn(conn)
