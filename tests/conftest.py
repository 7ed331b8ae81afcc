"""Fixtures: a private PostgreSQL, both demo tenants served by real gunicorns, HTTP clients."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import localstack  # noqa: E402

# Tables that hold the schema's own state; every other table holds data that tests write.
SCHEMA_TABLES = ["schema_migrations", "rollup_settings"]


@pytest.fixture(scope="session")
def stack() -> Iterator[localstack.Stack]:
    """A fresh PostgreSQL cluster for this test run (its own folder, so runs can overlap).

    With TEST_POSTGRES_URL (a superuser URL, e.g. CI's service container) that server is used.
    """
    directory = ROOT / ".local" / "test" / str(os.getpid())
    shutil.rmtree(directory, ignore_errors=True)
    external_url = os.environ.get("TEST_POSTGRES_URL")
    if external_url:
        stack = localstack.Stack(directory, external=localstack.ExternalServer(external_url))
    else:
        stack = localstack.Stack(directory, localstack.free_port())
    stack.cluster.start()
    yield stack
    stack.cluster.stop("immediate")
    if not external_url:
        shutil.rmtree(stack.cluster.directory, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def tenant_envs(stack: localstack.Stack) -> dict[str, dict[str, str]]:
    """Each demo tenant's migrated database and the environment its app runs with."""
    return {tenant.name: stack.prepare(tenant) for tenant in localstack.discover_tenants()}


# Seconds between two looks of the test run's webhook dispatchers for due deliveries: short, so
# that a delivery test waits for its receiver a moment only.
DISPATCHER_EVERY = 0.2


@pytest.fixture(scope="session")
def dispatchers(stack, tenant_envs) -> Iterator[dict[str, subprocess.Popen]]:
    """One webhook dispatcher per demo tenant (`python -m service deliver-webhooks`), as `make run`
    starts them, loopback receivers allowed."""
    running = {
        name: stack.start_dispatcher(name, env, every=DISPATCHER_EVERY) for name, env in tenant_envs.items()
    }
    yield running
    for process in running.values():
        localstack.stop_process(process)


@pytest.fixture
def paused(dispatchers):
    """The test run's dispatchers stopped (SIGSTOP) for the test, so that deliveries stay as the test
    leaves them (or only the dispatchers the test runs take them); continued after it. Safe: a
    dispatcher holds no lock between its statements, each its own transaction."""
    for process in dispatchers.values():
        os.kill(process.pid, signal.SIGSTOP)
    yield
    for process in dispatchers.values():
        os.kill(process.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def servers(stack, tenant_envs, dispatchers) -> Iterator[dict[str, localstack.Server]]:
    """One gunicorn per demo tenant, with the production config, and its webhook dispatcher."""
    running = {
        name: stack.start_server(name, env, localstack.free_port()) for name, env in tenant_envs.items()
    }
    yield running
    for server in running.values():
        server.stop()


def _truncate(stack: localstack.Stack, tenant: str) -> None:
    with stack.cluster.connect(tenant) as conn:
        names = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL(%s)", (SCHEMA_TABLES,)
        ).fetchall()
        tables = sql.SQL(", ").join(sql.Identifier(name) for (name,) in names)
        # The webhook dispatchers' statements take the tables in another order than TRUNCATE:
        # PostgreSQL may break a deadlock by failing the TRUNCATE, which then goes again.
        for attempt in range(5):
            try:
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise


@pytest.fixture
def clean(stack, tenant_envs) -> None:
    """Start the test with every tenant's tables empty."""
    for tenant in tenant_envs:
        _truncate(stack, tenant)


def _client(server: localstack.Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


@pytest.fixture
def client(servers, clean) -> Iterator[httpx.Client]:
    """An HTTP client of tenant1's running server."""
    with _client(servers["tenant1"]) as http:
        yield http


@pytest.fixture
def client2(servers, clean) -> Iterator[httpx.Client]:
    """An HTTP client of tenant2's running server."""
    with _client(servers["tenant2"]) as http:
        yield http


@pytest.fixture
def db(stack, clean) -> Iterator[psycopg.Connection]:
    """A superuser connection to tenant1's database, for checking what was stored."""
    with stack.cluster.connect("tenant1") as conn:
        conn.row_factory = psycopg.rows.dict_row
        yield conn
