"""scripts/dev.py on tenants of a test's own (its own tenants/ and state folders, free ports): the
ports to give them, and the teardown that stops and removes everything `dev.up()` started."""

from __future__ import annotations

import shutil

import localstack


def two_free_ports() -> int:
    """A port p such that p and p + 1 are free (two tenants' consecutive ports)."""
    while localstack.port_taken((port := localstack.free_port()) + 1):
        pass
    return port


def stop_and_remove(names: list[str]) -> None:
    """Stop whatever scripts/dev started, and remove the tenants' clusters and archives (which may
    live under /tmp, outside the test's folder: localstack.cluster_directory)."""
    import dev

    dev.down()
    for name in names:
        stack = dev.stack(name, dev.FIRST_APP_PORT)
        shutil.rmtree(stack.cluster.directory, ignore_errors=True)
        assert stack.cluster.archive is not None
        shutil.rmtree(stack.cluster.archive.directory, ignore_errors=True)
