"""Point-in-time restores and restore drills of a tenant of `make run` (scripts/dev.py), from the
pgBackRest repository its cluster archives into (.local/dev/<tenant>/pgbackrest).

The same steps as in Kubernetes: the API stops, the cluster's data is replaced by a restore from
the repository to the instant asked for (all or nothing: localstack.Archive.restore), the API
serves the restored data again. A drill restores the newest backup and the archived WAL into a
scratch cluster and checks it, leaving the tenant's own cluster alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dev
import localstack
import tenancy
from pgbackrest_info import Backup, listing, newest_ended_by
from psycopg import sql

sys.path.insert(0, str(tenancy.ROOT))
from service import migrate  # noqa: E402

DRILL_CHECK = tenancy.ROOT / "kubernetes" / "base" / "restore-drill-check.sql"


class Refused(Exception):
    """The restore or drill cannot be done as asked; nothing was changed. The message says why."""


@dataclass(frozen=True)
class Window:
    """The instants a restore can reach: from the end of the oldest backup to the end of the archive."""

    backups: list[Backup]
    end: datetime

    @property
    def start(self) -> datetime:
        return self.backups[0].stopped

    def describe(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def tenant_stack(name: str) -> localstack.Stack:
    """The stack of `make run` for one tenant; Refused when it has never archived anything."""
    port = tenancy.local_ports().get(name)
    if port is None:
        raise Refused(f"no tenant {name!r} in tenants/ (scripts/onboard-tenant scaffolds one)")
    stack = dev.stack(name, port)
    archive = stack.cluster.archive
    assert archive is not None
    if not archive.config.exists() or not (archive.directory / "repo").exists():
        raise Refused(f"tenant {name} has no archive yet: `make run` (or scripts/dev up) starts archiving it")
    return stack


def window(stack: localstack.Stack) -> Window:
    """The restore window. With the cluster running, everything written so far is archived first
    (pgbackrest check switches the WAL segment and waits for it), so the window ends now; with it
    stopped, it ends when the archive last received a segment."""
    archive = stack.cluster.archive
    assert archive is not None
    backups = archive.backups()
    if not backups:
        raise Refused("the archive holds no backup yet: `make run` (or scripts/dev up) takes the first one")
    if stack.cluster.is_running():
        archive.run("check")
        end = datetime.now(UTC)
    else:
        segments = [path for path in (archive.directory / "repo" / "archive").rglob("*") if path.is_file()]
        end = max([b.stopped for b in backups] + [_mtime(path) for path in segments])
    return Window(backups, end)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


@contextmanager
def api_stopped(name: str) -> Iterator[bool]:
    """Stop the tenant's gunicorn for the duration (yields whether it was running) and start it
    again afterwards, whatever happened. `make run` leaves a tenant alone while it is restored."""
    with dev.down_on_purpose(name, "scripts/restore-tenant --local restores it"):
        was_serving = dev.stop_server(name)
        try:
            yield was_serving
        finally:
            if was_serving:
                tenant = next(t for t in tenancy.discover_tenants() if t.name == name)
                dev.serve(tenant_stack(name), tenant, tenancy.local_ports()[name])


def restore(name: str, to_time: datetime | None) -> str:
    """Restore the tenant to `to_time` (None: the end of the archive); return what was restored.

    Raises Refused, before changing anything, for a time outside the window."""
    stack = tenant_stack(name)
    cluster, archive = stack.cluster, stack.cluster.archive
    assert isinstance(cluster, localstack.Cluster) and archive is not None
    if cluster.replaced_dir.exists():
        raise Refused(f"an earlier restore was interrupted: {cluster.replaced_dir} {localstack.RESTORE_INTERRUPTED}")
    span = window(stack)
    if to_time is not None and not span.start <= to_time <= span.end:
        raise Refused(
            f"{to_time.isoformat()} is outside the restore window of {name}: {span.describe()}"
            " (from the end of the oldest backup to the newest archived change)"
        )
    backup = newest_ended_by(span.backups, to_time)
    was_running = cluster.is_running()
    with api_stopped(name):
        if was_running:
            # Now that nothing writes: every write acknowledged so far goes to the archive, after
            # a commit of its own, which recovery needs to find past any target in the window.
            with cluster.connect(name) as conn:
                conn.execute("SELECT txid_current()")
            archive.run("check")
        archive.restore(cluster, to_time=to_time, backup=backup.label)
        report = describe_restored(cluster, name, backup, to_time)
        # A backup on the new timeline: without one, a later restore to a moment after the newest
        # backup of the old timeline would start from that backup, which is not on this
        # timeline's history, and stop.
        archive.run("backup", "--type=full")
        if not was_running:
            cluster.stop()
    return report + "\n  a full backup of the restored state was taken"


def describe_restored(
    cluster: localstack.Cluster, name: str, backup: Backup, to_time: datetime | None
) -> str:
    with cluster.connect(name) as conn:
        reached = conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()[0]
        counts = row_counts(conn)
    lines = [
        f"{name}: restored from backup {backup.label} ({backup.type}, ended {backup.stopped.isoformat()})",
        f"  asked for: {to_time.isoformat() if to_time else 'the end of the archive'}",
        f"  reached: the last change replayed committed at {reached.isoformat() if reached else 'the backup itself'}",
        *(f"  {table}: {count} rows" for table, count in counts.items()),
    ]
    return "\n".join(lines)


def row_counts(conn) -> dict[str, int]:
    tables = [row[0] for row in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )]
    return {
        table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        for table in tables
    }


def drill(name: str) -> str:
    """Restore the newest backup and every archived change into a scratch cluster and check it:
    migrations current, the totals equal a recomputation from the rows (DRILL_CHECK), row counts.
    Returns the report; raises Refused or RuntimeError (the drill failed) otherwise. The scratch
    cluster is removed at the end, and the tenant's own cluster is never touched."""
    stack = tenant_stack(name)
    archive = stack.cluster.archive
    assert archive is not None
    span = window(stack)
    backup = newest_ended_by(span.backups, None)
    scratch = localstack.Cluster(localstack.cluster_directory(stack.directory / "drill"), localstack.free_port())
    shutil.rmtree(scratch.directory, ignore_errors=True)
    try:
        scratch.data_dir.mkdir(parents=True, mode=0o700)
        scratch.socket_dir.mkdir(parents=True, exist_ok=True)
        scratch.socket_dir.chmod(0o700)
        if localstack.IS_ROOT:
            for path in (scratch.directory, scratch.data_dir, scratch.socket_dir):
                shutil.chown(path, "postgres", "postgres")
        try:
            archive.run("restore", f"--pg1-path={scratch.data_dir}", f"--set={backup.label}")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"pgbackrest restore failed: {exc.stderr.strip() or exc.stdout.strip()}") from None
        scratch.start()  # no archive: a drill never writes into the repository
        scratch.wait_promoted()
        with scratch.connect(name) as conn:
            missing = migrate.pending(conn)
            if missing:
                raise RuntimeError(f"migrations not current: {', '.join(missing)} not applied")
            conn.execute(DRILL_CHECK.read_text())
            counts = row_counts(conn)
    finally:
        scratch.stop("immediate", check=False)
        shutil.rmtree(scratch.directory, ignore_errors=True)
    return "\n".join([
        f"{name}: drill passed on backup {backup.label} ({backup.type}) and the archive up to {span.end.isoformat()}",
        "  migrations current, totals equal a recomputation from the rows",
        *(f"  {table}: {count} rows" for table, count in counts.items()),
    ])


def list_backups(name: str) -> str:
    span = window(tenant_stack(name))
    return listing(name, span.backups, span.end.isoformat())


if __name__ == "__main__":
    sys.exit("run scripts/restore-tenant NAME --local ...")
