"""Point-in-time recovery with pgBackRest (issue #11), against a real PostgreSQL archiving its WAL
with the real tool into a filesystem repository: writes acknowledged through the API before the
moment restored to are there after the cluster's data directory is lost, none after it, and the
totals agree with the restored rows."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator

import httpx
import localstack
import pytest

from tests.utils import auth_headers, check_totals
from tests.utils.private_tenant import PrivateTenant, private_tenant

TENANT = "pitr"


@pytest.fixture(scope="module")
def archived(tmp_path_factory) -> Iterator[PrivateTenant]:
    """A private cluster archiving to its own pgBackRest repository, one migrated tenant, a full
    backup; stopped and removed at the end, whatever happens."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    directory = tmp_path_factory.mktemp("pitr")
    with private_tenant(directory, TENANT, archived=True) as tenant:
        tenant.archive.run("backup", "--type=full")
        yield tenant


def _archived_up_to_now(tenant: PrivateTenant) -> None:
    """Close the current WAL segment and wait until pgBackRest has it (pgbackrest check does both)."""
    tenant.archive.run("check")


def test_a_restore_to_a_moment_has_exactly_the_writes_acknowledged_before_it(archived):
    server = archived.stack.start_server(TENANT, archived.env, localstack.free_port())
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            headers = auth_headers(client)
            before = [client.post("/transactions", headers=headers, json={
                "type": "expense", "amount": f"{n}.00", "category": "kept", "description": f"before {n}",
            }) for n in range(1, 4)]
            assert all(response.status_code == 201 for response in before)
            # The moment to go back to, on the database's clock, after the last acknowledged write.
            with archived.connect() as conn:
                moment = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            time.sleep(0.2)
            after = [client.post("/transactions", headers=headers, json={
                "type": "income", "amount": "100.00", "category": "lost", "description": f"after {n}",
            }) for n in range(3)]
            assert all(response.status_code == 201 for response in after)
    finally:
        server.stop()
    _archived_up_to_now(archived)

    # The cluster is lost: its data directory goes, and the repository is all that is left.
    archived.archive.restore(archived.stack.cluster, to_time=moment)

    with archived.connect() as conn:
        rows = conn.execute("SELECT description, amount FROM transactions ORDER BY id").fetchall()
        assert [description for description, _ in rows] == ["before 1", "before 2", "before 3"]
        check_totals(conn)
    # The restored tenant serves again.
    server = archived.stack.start_server(TENANT, archived.env, localstack.free_port())
    try:
        assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
    finally:
        server.stop()


def test_losing_the_server_under_load_loses_at_most_the_archive_timeout_of_writes(archived):
    """The loss window: with archive_timeout as the manifests set it, PostgreSQL is killed with
    SIGKILL under a steady write load and its data directory deleted; restored to the latest
    archived point, every write acknowledged more than archive_timeout before the loss is there."""
    window = localstack.ARCHIVE_TIMEOUT_SECONDS
    load_seconds = window + 15
    acknowledged: dict[str, float] = {}
    server = archived.stack.start_server(TENANT, archived.env, localstack.free_port())
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            headers = auth_headers(client)
            _archived_up_to_now(archived)  # the archive_timeout clock starts from a fresh segment
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < load_seconds:
                description = f"load {n}"
                response = client.post("/transactions", headers=headers, json={
                    "type": "expense", "amount": "1.00", "description": description,
                })
                assert response.status_code == 201, response.text
                acknowledged[description] = time.monotonic()
                n += 1
                time.sleep(0.05)
            lost_at = time.monotonic()
            postmaster = int((archived.stack.cluster.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGKILL)
    finally:
        server.stop()

    archived.archive.restore(archived.stack.cluster)

    with archived.connect() as conn:
        present = {
            row[0] for row in conn.execute("SELECT description FROM transactions WHERE description LIKE 'load %'")
        }
    missing = {description: at for description, at in acknowledged.items() if description not in present}
    oldest_missing = max((lost_at - at for at in missing.values()), default=0.0)
    print(f"\nloss window: {len(acknowledged)} writes acknowledged over {load_seconds} s at about"
          f" {len(acknowledged) / load_seconds:.0f}/s; {len(missing)} missing after the restore, the oldest"
          f" acknowledged {oldest_missing:.1f} s before the loss (archive_timeout {window} s)")
    assert oldest_missing <= window + 5, oldest_missing
    # What was lost is the tail since the last archived segment: every write before it is there.
    if missing:
        first_lost = min(missing.values())
        assert {d for d, at in acknowledged.items() if at < first_lost} <= present
        assert not {d for d, at in acknowledged.items() if at >= first_lost} & present
