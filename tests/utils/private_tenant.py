"""One migrated tenant on a PostgreSQL cluster of its own, for tests that stop, kill or restore
the server (the session's shared cluster must not be touched)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import localstack
import psycopg


@dataclass
class PrivateTenant:
    name: str
    stack: localstack.Stack
    env: dict[str, str]

    def connect(self) -> psycopg.Connection:
        """A superuser connection to the tenant's database."""
        return self.stack.cluster.connect(self.name)


@contextlib.contextmanager
def private_tenant(directory: Path, name: str, archive: localstack.Archive | None = None) -> Iterator[PrivateTenant]:
    """Start a cluster in `directory` (archiving with pgBackRest when given an Archive, whose
    stanza is created) and migrate one UTC, USD tenant; stop and remove it all at the end,
    whatever happens."""
    stack = localstack.Stack(directory, localstack.free_port())
    stack.cluster.archive = archive
    try:
        stack.cluster.start()
        if archive:
            archive.run("stanza-create")
        env = stack.prepare(localstack.Tenant(name, {"TENANT_TIMEZONE": "UTC", "TENANT_CURRENCY": "USD"}, None))
        yield PrivateTenant(name, stack, env)
    finally:
        stack.cluster.stop("immediate", check=False)
        shutil.rmtree(stack.cluster.directory, ignore_errors=True)
        if archive:
            shutil.rmtree(archive.directory, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
