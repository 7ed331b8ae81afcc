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

    @property
    def archive(self) -> localstack.Archive:
        """The tenant's pgBackRest archive (a private_tenant made with archived=True)."""
        assert self.stack.cluster.archive is not None, "private_tenant(..., archived=True) makes one"
        return self.stack.cluster.archive


@contextlib.contextmanager
def private_tenant(directory: Path, name: str, *, archived: bool = False) -> Iterator[PrivateTenant]:
    """Start a cluster in `directory` (archiving with pgBackRest into directory/pgbackrest when
    `archived`, its stanza created) and migrate one UTC, USD tenant; stop and remove it all at the
    end, whatever happens."""
    stack = localstack.Stack(directory, localstack.free_port(), archived=archived)
    archive = stack.cluster.archive
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
