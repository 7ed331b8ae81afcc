"""Faults against real processes: PostgreSQL dying under writes, gunicorn stopped under load, and
more requests than connections, or a query that waits too long.

Every test here runs on a private PostgreSQL cluster of its own (never the session's), which the
outage test stops abruptly and starts again, and on gunicorns it starts and stops itself.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import localstack
import psycopg
import pytest

from service.config import ConfigError, Settings
from tests.utils import assert_error, auth_headers, poll, user_with_headers
from tests.utils.private_tenant import PrivateTenant, private_tenant

TENANT = "faults"
APPLICATION_NAME = f"finance-{TENANT}"
# A request slower than this counts as a hang (gunicorn would kill a sync worker at 30 s).
CLIENT_TIMEOUT = 35.0


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Iterator[PrivateTenant]:
    """A private cluster with one migrated tenant; stopped and removed at the end, whatever happens."""
    with private_tenant(tmp_path_factory.mktemp("faults"), TENANT) as tenant:
        yield tenant


@contextlib.contextmanager
def running_server(faults: PrivateTenant, **settings: str) -> Iterator[localstack.Server]:
    """A gunicorn of the tenant with the production config and these settings, stopped at the end."""
    env = {**faults.env, **settings}
    server = faults.stack.start_server(TENANT, env, localstack.free_port())
    try:
        yield server
    finally:
        server.stop(timeout=30)


def server_log_problems(faults: PrivateTenant, server: localstack.Server) -> list[str]:
    """Lines of the server's log at level error or above (an unhandled exception, a killed worker)."""
    log_file = faults.stack.directory / "logs" / f"{TENANT}-{server.url.rsplit(':', 1)[1]}.log"
    return [
        line for line in log_file.read_text(errors="replace").splitlines()
        if '"level": "error"' in line or '"level": "critical"' in line or "Traceback" in line
    ]


def worker_pids(master: int) -> set[int]:
    """The pids of the gunicorn master's children (its workers), read from /proc."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master:
                children.add(int(stat.parent.name))
    return children


def lock_waiters(conn: psycopg.Connection) -> int:
    """How many statements of the app are waiting for a lock right now."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        (APPLICATION_NAME,),
    ).fetchone()
    return row[0] if row else 0


def wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@contextlib.contextmanager
def transactions_locked(conn: psycopg.Connection) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on transactions (every read and write of it waits) until exit."""
    with conn.transaction():
        conn.execute("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        yield


# --- A write load: client threads POSTing transactions, each with a key of its own -------------


@dataclass
class Outcome:
    """One POST /transactions of the load, as the client saw it."""

    key: str
    started: float
    finished: float = 0.0
    status: int | None = None
    error: str | None = None  # no response: "refused", "reset", "timeout" or the exception's name
    response: httpx.Response | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def transport_error(exc: httpx.TransportError) -> str:
    """Name what happened to a request that got no response."""
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        return "refused" if isinstance(cause, ConnectionRefusedError) else f"connect: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "reset"
    return type(exc).__name__


def body_for(key: str) -> dict:
    return {"type": "expense", "amount": "1.25", "description": key, "category": "faults"}


def post_once(client: httpx.Client, headers: dict[str, str], key: str) -> Outcome:
    outcome = Outcome(key, time.monotonic())
    try:
        response = client.post(
            "/transactions", json=body_for(key), headers={**headers, "Idempotency-Key": key}
        )
    except httpx.TransportError as exc:
        outcome.error = transport_error(exc)
    else:
        outcome.status, outcome.response = response.status_code, response
    outcome.finished = time.monotonic()
    return outcome


@dataclass
class WriteLoad:
    """Client threads POSTing one transaction after another, each with a unique Idempotency-Key
    that is also its description, until stopped; every outcome is kept."""

    url: str
    headers: dict[str, str]
    threads: int
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[threading.Thread] = field(default_factory=list)

    def _run(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT) as client:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                outcome = post_once(client, self.headers, f"load-{number}-{sequence}-{uuid.uuid4().hex[:8]}")
                with self._lock:
                    self.outcomes.append(outcome)
                if outcome.status != 201:
                    time.sleep(0.05)  # a failing client retries soon, not in a busy loop

    def __enter__(self) -> WriteLoad:
        for number in range(self.threads):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(CLIENT_TIMEOUT + 5)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def count(self, predicate) -> int:
        return sum(1 for outcome in self.snapshot() if predicate(outcome))


def assert_unavailable(response: httpx.Response) -> None:
    """A database fault answered the documented way: JSON 503 with Retry-After."""
    assert_error(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0


def rows_by_description(conn: psycopg.Connection, descriptions: list[str]) -> dict[str, list[int]]:
    rows = conn.execute(
        "SELECT description, array_agg(id ORDER BY id) FROM transactions WHERE description = ANY(%s)"
        " GROUP BY description",
        (descriptions,),
    ).fetchall()
    return {description: ids for description, ids in rows}


# --- 1. PostgreSQL stops abruptly under writes ------------------------------------------------


def test_database_crash_under_writes_is_answered_503_and_heals_without_losing_or_doubling_writes(faults):
    """PostgreSQL shut down immediately (a crash) while clients write: writes in flight and new
    ones get a JSON 503 within seconds, liveness stays 200 and readiness turns 503; once PostgreSQL
    is back the same gunicorn serves again within 5 s; no confirmed write is lost, none doubled."""
    with running_server(faults, WEB_CONCURRENCY="2") as server, httpx.Client(
        base_url=server.url, timeout=CLIENT_TIMEOUT
    ) as client:
        headers = auth_headers(client)
        with WriteLoad(server.url, headers, threads=4) as load:
            wait_for(lambda: load.count(lambda o: o.status == 201) >= 12, 20, "the load never got going")
            with contextlib.closing(faults.connect()) as observer, contextlib.closing(faults.connect()) as locker:
                # Both workers are inside a write, waiting on a lock, when the database dies.
                locker.execute("BEGIN")
                locker.execute("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
                wait_for(lambda: lock_waiters(observer) == 2, 10, "the workers never blocked")
                crash_at = time.monotonic()
                faults.stack.cluster.stop("immediate")
            down_at = time.monotonic()

            # Readiness follows the database; liveness does not, and answers quickly (the
            # Deployment's liveness probe gives up after 3 s).
            ready = poll(f"{server.url}/health/ready", lambda r: r is not None and r.status_code == 503, timeout=10)
            assert ready is not None, "no answer from /health/ready"
            assert_error(ready, 503)
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            assert time.monotonic() - started < 3

            # The clients' writes sent during the outage are answered 503 too.
            wait_for(
                lambda: load.count(lambda o: o.started > down_at and o.status == 503) >= 2 * load.threads,
                15, "writes sent during the outage were not answered 503",
            )
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            assert time.monotonic() - started < 3

            faults.stack.cluster.start()  # returns once PostgreSQL accepts connections
            back_at = time.monotonic()
            ready = poll(f"{server.url}/health/ready", lambda r: r is not None and r.status_code == 200, timeout=10)
            assert ready is not None and ready.status_code == 200, "readiness did not recover"
            ready_after = time.monotonic() - back_at
            wait_for(
                lambda: load.count(lambda o: o.started > back_at and o.status == 201) >= load.threads,
                10, "writes did not succeed again after the database came back",
            )
        writes_after = min(o.finished for o in load.snapshot() if o.started > back_at and o.status == 201) - back_at

        outcomes = load.snapshot()
        in_flight = [o for o in outcomes if o.started < crash_at < o.finished]
        during = [o for o in outcomes if o.finished > crash_at and o.started < back_at]
        print(
            f"\n{len(outcomes)} writes: {sum(o.status == 201 for o in outcomes)} created, "
            f"{sum(o.status == 503 for o in outcomes)} unavailable, errors {[o.error for o in outcomes if o.error]}; "
            f"slowest answers of the outage {sorted(round(o.seconds, 2) for o in during)[-3:]} s; "
            f"ready {ready_after:.2f} s and writing {writes_after:.2f} s after the restart"
        )

        # The writes in flight (two inside the workers, the others queued) fail; every write gets
        # a 201 or a JSON 503, never another 5xx, an HTML page or a dropped connection.
        assert len(in_flight) >= 2 and all(o.status == 503 for o in in_flight), in_flight
        assert [o.error for o in outcomes if o.error] == []
        assert {o.status for o in outcomes} <= {201, 503}
        for outcome in outcomes:
            if outcome.status == 503:
                assert outcome.response is not None
                assert_unavailable(outcome.response)
        # Quickly: nothing waits for the pool timeout (5 s), let alone gunicorn's 30 s.
        assert max(o.seconds for o in during) < 5
        # And the service heals by itself, its gunicorn untouched.
        assert ready_after < 5 and writes_after < 5

        # A client retries each write that was not confirmed, with the same key; then every key
        # has exactly one row, and each confirmed write is the row it was told about.
        created: dict[str, int] = {o.key: o.response.json()["id"] for o in outcomes if o.status == 201 and o.response}
        for outcome in outcomes:
            if outcome.status != 201:
                retry = post_once(client, headers, outcome.key)
                assert retry.status == 201 and retry.response is not None, retry
                created[outcome.key] = retry.response.json()["id"]
        assert server_log_problems(faults, server) == []

    with faults.connect() as conn:
        stored = rows_by_description(conn, [o.key for o in outcomes])
    assert stored == {key: [created[key]] for key in created}


# --- 2. gunicorn is told to stop (SIGTERM) under load -----------------------------------------


def test_sigterm_under_load_answers_every_accepted_connection(faults):
    """SIGTERM while both workers are busy and more clients queue: what was in flight finishes,
    what the kernel had already queued is answered too, later connections are refused."""
    server = faults.stack.start_server(TENANT, {**faults.env, "WEB_CONCURRENCY": "2"}, localstack.free_port())
    try:
        with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            headers = auth_headers(client)
        with faults.connect() as locker, faults.connect() as observer:
            with WriteLoad(server.url, headers, threads=4) as load:
                wait_for(lambda: load.count(lambda o: o.status == 201) >= 8, 20, "the load never got going")
                with transactions_locked(locker):
                    # Both workers are inside a request, waiting on the lock; the other clients'
                    # connections wait in the listening socket's queue.
                    wait_for(lambda: lock_waiters(observer) == 2, 10, "the workers never blocked")
                    time.sleep(0.2)
                    term_at = time.monotonic()
                    server.process.send_signal(signal.SIGTERM)
                    time.sleep(0.5)
                # The lock released, the requests in flight finish and gunicorn stops.
                wait_for(lambda: server.process.poll() is not None, 25, "gunicorn did not stop")
                stopped_after = time.monotonic() - term_at
                wait_for(
                    lambda: load.count(lambda o: o.error == "refused" and o.started > term_at + stopped_after) >= 4,
                    10, "no connection was refused after gunicorn stopped",
                )
            outcomes = load.snapshot()
        with faults.connect() as conn:
            stored = rows_by_description(conn, [o.key for o in outcomes])
    finally:
        server.stop()

    unanswered = [o for o in outcomes if o.started < term_at and o.finished > term_at]
    refused = [o for o in outcomes if o.error == "refused"]
    print(
        f"\n{len(outcomes)} writes: {sum(o.status == 201 for o in outcomes)} created, "
        f"{len(unanswered)} waiting at SIGTERM, {len(refused)} refused, "
        f"resets {[(round(o.started - term_at, 3), o.seconds) for o in outcomes if o.error == 'reset']}"
        f"; stopped {stopped_after:.2f} s after SIGTERM"
    )
    assert server.process.returncode == 0
    assert stopped_after < 10, "gunicorn waited for its graceful timeout: a request never finished"
    # Two requests were inside the workers and more were queued when SIGTERM came: all answered.
    assert len(unanswered) >= 3 and all(o.status == 201 for o in unanswered), unanswered
    # Every connection got an answer, and every answer was 201, except connections refused once
    # no process listened any more.
    assert [(o.status, o.error) for o in outcomes if o.status != 201 and o.error != "refused"] == []
    assert all(o.started > term_at for o in refused)
    # And each 201 is in the database, once.
    assert stored == {o.key: [o.response.json()["id"]] for o in outcomes if o.status == 201 and o.response}
    assert server_log_problems(faults, server) == []


# --- 3. More requests than connections; a query that waits too long ---------------------------


def test_timeouts_stay_below_the_worker_timeout(monkeypatch):
    """gunicorn kills a sync worker silent for `timeout` seconds: every wait the service allows
    itself (a pooled connection, one statement) must end before that, or a client gets no answer."""
    monkeypatch.setenv("TENANT_ID", TENANT)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/db")
    monkeypatch.setenv("JWT_SECRET", "k" + uuid.uuid4().hex + uuid.uuid4().hex)
    config = runpy.run_path(str(localstack.GUNICORN_CONF))
    worker_timeout = config["timeout"]
    env = dict(os.environ)
    longest_pool_wait = Settings.from_env({**env, "DB_POOL_TIMEOUT_MS": "25000"}).db_pool_timeout
    longest_statement = Settings.from_env({**env, "DB_STATEMENT_TIMEOUT_MS": "25000"}).db_statement_timeout_ms / 1000
    for name in ("DB_POOL_TIMEOUT_MS", "DB_STATEMENT_TIMEOUT_MS"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**env, name: str(worker_timeout * 1000)})
    assert longest_pool_wait < worker_timeout
    assert longest_statement < worker_timeout
    defaults = Settings.from_env(env)
    assert defaults.db_pool_timeout + defaults.db_statement_timeout_ms / 1000 < worker_timeout


def test_more_requests_than_connections_and_a_query_too_long_get_503_and_nothing_breaks(faults):
    """One connection, four threads: while a request holds the connection, waiting on the test's
    lock, the others wait DB_POOL_TIMEOUT_MS and get a JSON 503; the holder's wait for the lock
    gives up at the lock timeout, a third of DB_STATEMENT_TIMEOUT_MS (503 busy: contention, worth a
    retry); then the same worker serves normally."""
    pool_timeout, statement_timeout = 0.5, 6.0
    lock_timeout = statement_timeout / 3
    with running_server(
        faults,
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        DB_POOL_SIZE="1",
        DB_POOL_TIMEOUT_MS=str(int(pool_timeout * 1000)),
        DB_STATEMENT_TIMEOUT_MS=str(int(statement_timeout * 1000)),
    ) as server, httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        headers = auth_headers(client)
        assert client.post("/transactions", json=body_for("before"), headers=headers).status_code == 201
        workers = worker_pids(server.process.pid)
        assert len(workers) == 1

        def timed_get() -> tuple[float, float, httpx.Response]:
            started = time.monotonic()
            with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as own:
                response = own.get("/transactions", headers=headers)
            return started, time.monotonic(), response

        results: dict[str, tuple[float, float, httpx.Response]] = {}

        def record(name: str) -> None:
            results[name] = timed_get()

        with faults.connect() as locker, faults.connect() as observer:
            with transactions_locked(locker):
                # The pool's one connection is taken by a request waiting on the test's lock.
                holder = threading.Thread(target=record, args=("holder",))
                holder.start()
                wait_for(lambda: lock_waiters(observer) == 1, 10, "the request never waited on the lock")
                # Three more requests find no free connection: each waits the pool timeout, then 503.
                waiters = [threading.Thread(target=record, args=(f"waiter{n}",)) for n in range(3)]
                for thread in waiters:
                    thread.start()
                for thread in waiters:
                    thread.join(CLIENT_TIMEOUT)
                # The holder's wait is ended by the lock timeout while the lock is held.
                holder.join(CLIENT_TIMEOUT)
                assert lock_waiters(observer) == 0, "the statement still waits: it was not cancelled"
            after_release = client.get("/transactions", headers=headers)
            second = client.post("/transactions", json=body_for("after"), headers=headers)

        holder_started, holder_finished, holder_response = results["holder"]
        for name in ("waiter0", "waiter1", "waiter2"):
            started, finished, response = results[name]
            assert_unavailable(response)
            assert pool_timeout * 0.8 <= finished - started < pool_timeout + 3, (name, finished - started)
            assert finished < holder_finished
        assert_error(holder_response, 503, "busy")
        assert int(holder_response.headers["retry-after"]) > 0
        assert lock_timeout * 0.95 <= holder_finished - holder_started < statement_timeout
        # Afterwards the same worker serves normally on its (reused or replaced) connection.
        assert after_release.status_code == 200, after_release.text
        assert [item["description"] for item in after_release.json()["items"]] == ["before"]
        assert second.status_code == 201, second.text
        assert worker_pids(server.process.pid) == workers
        assert server_log_problems(faults, server) == []


def test_a_request_needing_more_than_the_statement_timeout_is_a_422_that_names_it(faults):
    """The review's 1 MiB import timed out and was answered 503 "The database is unavailable;
    retry shortly.": a request that asks for too much work is the client's to narrow, not to retry.
    Here a 100 ms statement timeout stands for the 10 s one, and a 1 MiB import for more work."""
    with running_server(faults, DB_STATEMENT_TIMEOUT_MS="100") as server, \
            httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        headers = auth_headers(client)
        response = client.post("/transactions/import", content=b"type,amount\n" + b"expense,1\n" * 104_850,
                               headers={**headers, "Content-Type": "text/csv"})
        error = assert_error(response, 422, "request_too_expensive")
        assert "100 ms" in error["message"]
        assert "retry-after" not in response.headers
        assert client.get("/analytics", headers=headers).json()["count"] == 0
        assert client.get("/health/ready").status_code == 200
        assert server_log_problems(faults, server) == []


def test_an_export_abandoned_midway_gives_its_connection_back(faults):
    """An export reads one snapshot on a connection its stream holds; a client that goes away
    mid-download must not leave that connection in its transaction, nor away from the pool: one
    worker with one connection serves the next requests at once."""
    with running_server(faults, WEB_CONCURRENCY="1", DB_POOL_TIMEOUT_MS="1000") as server, \
            httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        me, headers = user_with_headers(client)
        with faults.connect() as conn, conn.cursor().copy(
            "COPY transactions (user_id, type, amount, description) FROM STDIN"
        ) as copy:
            for n in range(50_000):
                copy.write_row((me, "expense", "1.00", f"row {n} " + "x" * 40))
        with client.stream("GET", "/transactions/export", headers=headers) as response:
            assert response.status_code == 200
            next(response.iter_bytes())  # a first chunk, then the client goes away
        for _ in range(3):
            assert client.get("/transactions", params={"limit": 1}, headers=headers).status_code == 200
        with faults.connect() as observer:
            wait_for(lambda: observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'"
                " AND pid <> pg_backend_pid()", (APPLICATION_NAME,)).fetchone()[0] == 0,
                10, "a connection of the app is still in a transaction")
        problems = server_log_problems(faults, server)
        assert problems == [], problems[0][:3000]
