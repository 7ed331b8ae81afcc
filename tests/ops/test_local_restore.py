"""scripts/restore-tenant --local (scripts/local_restore.py): point-in-time restores and drills of
a tenant of `make run`, against the real stack of scripts/dev.py (its own PostgreSQL cluster,
archived with the real pgBackRest, and its gunicorn), in a private folder with a private tenant."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dev
import httpx
import local_restore
import localstack
import pytest
import tenancy

from tests.conftest import ROOT
from tests.utils import check_totals, login, register
from tests.utils.private_dev import stop_and_remove

TENANT = "practice"
USER = "practising-user"
RETENTION_DAYS = 3


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[str]:
    """`make run` for one tenant, in a private folder: its cluster archiving into its own
    repository (with the first full backup) and its gunicorn; everything stopped at the end."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    directory = tmp_path_factory.mktemp("dev")
    tenants = directory / "tenants"
    (tenants / TENANT).mkdir(parents=True)
    (tenants / TENANT / "tenant.env").write_text("TENANT_TIMEZONE=UTC\nTENANT_CURRENCY=USD\n")
    app_port = localstack.free_port()
    (tenants / TENANT / "local.env").write_text(f"LOCAL_PORT={app_port}\n")
    (tenants / TENANT / "backup.env").write_text(f"PGBACKREST_REPO1_RETENTION_FULL={RETENTION_DAYS}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tenancy, "TENANTS_DIR", tenants)
        patch.setattr(dev, "STATE", directory / "state")
        patch.setattr(dev, "PG_PORT", localstack.free_port() - (app_port - dev.FIRST_APP_PORT))
        try:
            dev.up()
            with httpx.Client(base_url=url(), timeout=30) as client:
                register(client, USER)
            yield TENANT
        finally:
            stop_and_remove([TENANT])


def url() -> str:
    alive = dev.running(TENANT)
    assert alive, "the tenant's API is not running"
    return alive[1]


def signed_in(client: httpx.Client) -> dict[str, str]:
    """The module's one user's headers (a restore may undo a login's token, never the user)."""
    return {"Authorization": f"Bearer {login(client, USER)}"}


def post(client: httpx.Client, headers: dict, description: str) -> None:
    response = client.post("/transactions", headers=headers, json={
        "type": "expense", "amount": "2.50", "category": "drill", "description": description,
    })
    assert response.status_code == 201, response.text


def descriptions() -> list[str]:
    with httpx.Client(base_url=url(), timeout=30) as client:
        headers = signed_in(client)
        page = client.get("/transactions?limit=200&sort=occurred_at", headers=headers)
        assert page.status_code == 200, page.text
        return [item["description"] for item in page.json()["items"]]


def database_clock() -> datetime:
    stack = local_restore.tenant_stack(TENANT)
    with stack.cluster.connect(TENANT) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def totals_agree() -> None:
    """The totals equal a recomputation from the rows (raises otherwise)."""
    with local_restore.tenant_stack(TENANT).cluster.connect(TENANT) as conn:
        check_totals(conn)


def test_the_archive_keeps_the_tenants_retention_and_backs_up_as_the_cronjobs_do(local):
    archive = local_restore.tenant_stack(local).cluster.archive
    # pgBackRest itself reads the setting the tenant has in Kubernetes (tenants/<name>/backup.env).
    settings = archive.run("help", "backup", "repo1-retention-full").stdout
    assert f"current: {RETENTION_DAYS}" in settings, settings
    assert "current: time" in archive.run("help", "backup", "repo1-retention-full-type").stdout
    # The first backup is full; a second `make run` on the same day takes none.
    assert [backup.type for backup in archive.backups()] == ["full"]
    assert archive.bootstrap() is None


def test_list_shows_the_backups_and_the_window(local):
    listing = local_restore.list_backups(local)
    backup = local_restore.tenant_stack(local).cluster.archive.backups()[0]
    assert f"{local}: restore window {backup.stopped.isoformat()} to " in listing
    assert backup.label in listing and "full" in listing


def test_a_restore_to_a_time_has_exactly_the_writes_acknowledged_before_it(local):
    with httpx.Client(base_url=url(), timeout=30) as client:
        headers = signed_in(client)
        for n in range(3):
            post(client, headers, f"kept {n}")
        moment = database_clock()
        time.sleep(0.2)
        for n in range(2):
            post(client, headers, f"undone {n}")
    before = descriptions()
    assert [d for d in before if d.startswith("undone")] == ["undone 0", "undone 1"]

    report = local_restore.restore(local, moment)

    after = descriptions()  # through the API, which serves again at the same address
    assert after == [d for d in before if not d.startswith("undone")]
    assert "kept 2" in after
    totals_agree()
    assert f"{local}: restored from backup " in report
    assert f"asked for: {moment.isoformat()}" in report
    assert "  transactions: " in report


def test_latest_brings_back_every_acknowledged_write(local):
    with httpx.Client(base_url=url(), timeout=30) as client:
        headers = signed_in(client)
        post(client, headers, "latest 0")
    before = descriptions()

    local_restore.restore(local, None)

    assert descriptions() == before
    assert before[-1] == "latest 0"
    totals_agree()


@pytest.mark.parametrize("when", [datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)])
def test_a_time_outside_the_window_is_refused_and_changes_nothing(local, when):
    pid, before = dev.running(local)[0], descriptions()
    with pytest.raises(local_restore.Refused, match="outside the restore window"):
        local_restore.restore(local, when)
    assert dev.running(local)[0] == pid  # the API was not even stopped
    assert descriptions() == before


def test_a_failed_restore_leaves_the_running_database_as_it_was(local):
    """The archive loses the WAL after the newest backup: a restore to a moment in that gap starts,
    cannot reach its target, and the database that ran before is put back and serves again."""
    stack = local_restore.tenant_stack(local)
    archive = stack.cluster.archive
    archive.run("backup", "--type=incr")
    with httpx.Client(base_url=url(), timeout=30) as client:
        headers = signed_in(client)
        post(client, headers, "in the gap")
        moment = database_clock()
        post(client, headers, "after the gap")
    archive.run("check")
    before = descriptions()
    stop_segment = archive.info()["backup"][-1]["archive"]["stop"]
    for segment in (archive.directory / "repo" / "archive").rglob("*"):
        if segment.is_file() and segment.name[:24] > stop_segment and len(segment.name) > 24:
            segment.unlink()

    with pytest.raises(RuntimeError, match="stopped during recovery.*; the database is as it was"):
        local_restore.restore(local, moment)

    assert descriptions() == before
    totals_agree()
    # A new backup covers the gap again for the tests after this one.
    archive.run("backup", "--type=full")


def test_a_restore_after_the_last_backup_and_another_before_it_both_reach_their_moment(local):
    """Restoring to before the newest backup starts a timeline that backup is not on; the restore
    takes a backup of its own, so a later restore to a moment after it still finds its way."""
    archive = local_restore.tenant_stack(local).cluster.archive
    early = database_clock()
    time.sleep(0.2)
    archive.run("backup", "--type=incr")
    with httpx.Client(base_url=url(), timeout=30) as client:
        post(client, signed_in(client), "after the newest backup")
    before = descriptions()

    local_restore.restore(local, early)
    assert "after the newest backup" not in descriptions()
    with httpx.Client(base_url=url(), timeout=30) as client:
        post(client, signed_in(client), "on the new timeline")

    local_restore.restore(local, None)
    assert descriptions() == [d for d in before if d != "after the newest backup"] + ["on the new timeline"]


def test_losing_the_data_directory_then_latest_brings_back_every_archived_write(local):
    """The cluster's data directory is lost (a disk): `make run` makes an empty cluster, sees that
    the archive is not its own and stops, saying how to restore; the restore brings every archived
    write back and `make run` serves them again."""
    with httpx.Client(base_url=url(), timeout=30) as client:
        post(client, signed_in(client), "before the loss")
    expected = descriptions()
    stack = local_restore.tenant_stack(local)
    stack.cluster.archive.run("check")  # more than archive_timeout has passed: the write is archived
    dev.down()
    shutil.rmtree(stack.cluster.data_dir)

    with pytest.raises(SystemExit, match="belongs to another cluster.*restore-tenant <tenant> --local --latest"):
        dev.up()
    assert not stack.cluster.is_running()

    report = local_restore.restore(local, None)
    assert "a full backup of the restored state was taken" in report
    dev.up()
    assert descriptions() == expected


def test_an_interrupted_restore_is_refused_until_someone_chooses(local):
    """data.replaced left by a restore that was killed: neither a restore nor a start goes on
    (either could lose the data kept there)."""
    cluster = local_restore.tenant_stack(local).cluster
    cluster.replaced_dir.mkdir()
    try:
        with pytest.raises(local_restore.Refused, match="an earlier restore was interrupted"):
            local_restore.restore(local, None)
        with pytest.raises(RuntimeError, match="move data.replaced back to data to undo the restore"):
            cluster.start()
        assert dev.running(local)  # the tenant went on serving
    finally:
        cluster.replaced_dir.rmdir()


def test_the_drill_passes_on_a_good_backup_and_fails_on_a_corrupted_one(local):
    report = local_restore.drill(local)
    assert "drill passed" in report and "transactions: " in report

    archive = local_restore.tenant_stack(local).cluster.archive
    newest = archive.backups()[-1].label
    files = sorted(
        (path for path in (archive.directory / "repo" / "backup").rglob("*") if path.is_file()
         and newest in path.parts and "pg_data" in path.parts),
        key=lambda path: path.stat().st_size,
    )
    victim = files[-1]  # the largest file of the newest backup
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[: len(original) // 2] + bytes(len(original) - len(original) // 2))
        with pytest.raises(RuntimeError, match="pgbackrest restore failed"):
            local_restore.drill(local)
    finally:
        victim.write_bytes(original)


def test_the_command_line_refuses_what_it_cannot_do():
    script = ROOT / "scripts" / "restore_tenant.py"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60, check=False)

    for args, message in [
        (("acme", "--local"), "exactly one of --list, --to-time, --latest, --drill"),
        (("acme", "--local", "--list", "--drill"), "exclude each other"),
        (("acme", "finance-20260101T021700Z.dump", "--latest"), "take no BACKUP_FILE"),
        (("acme", "--local", "--to-time", "2026-11-30T10:15:00"), "has no offset"),
        (("acme", "--local", "--to-time", "yesterday"), "not an ISO 8601 time"),
        (("acme", "--local", "--latest", "--to-time", "2026-11-30T10:15:00Z"), "not allowed with"),
    ]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    unknown = run("no-such-tenant", "--local", "--list")
    assert unknown.returncode == 1 and "no tenant 'no-such-tenant' in tenants/" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    needs_yes = run("tenant1", "--local", "--latest")
    assert needs_yes.returncode == 2 and "--yes" in needs_yes.stderr
