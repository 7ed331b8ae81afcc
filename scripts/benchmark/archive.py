"""--archive: the full backup of the seeded tenant, the WAL and archive lag its writes make, and
the time a restore of the whole tenant takes."""

from __future__ import annotations

import threading
import time

import localstack

from benchmark.seed import TENANT


def full_backup(cluster: localstack.Cluster) -> dict:
    """A full backup of the seeded cluster, as a tenant's first one: its time and sizes."""
    clock = time.monotonic()
    cluster.archive.run("backup", "--type=full")
    seconds = time.monotonic() - clock
    entry = cluster.archive.info()["backup"][-1]["info"]
    figures = {
        "seconds": round(seconds, 1), "database_bytes": entry["size"], "repository_bytes": entry["repository"]["size"],
    }
    print(f"bench: full backup of {entry['size'] / 2**20:,.0f} MiB in {seconds:.1f} s,"
          f" {entry['repository']['size'] / 2**20:,.0f} MiB in the repository", flush=True)
    return figures


WAL_SEGMENT_BYTES = 16 * 2**20


class ArchiveSampler:
    """During one scenario, twice a second: the WAL written but not yet archived (from the
    current insert position back to the end of the last archived segment), and at the end the
    WAL and compressed archive the scenario's writes added."""

    def __init__(self, cluster: localstack.Cluster) -> None:
        self.cluster = cluster
        self.samples: list[int] = []
        self.failed = 0
        self.stopping = threading.Event()
        with cluster.connect() as conn:
            self.start_lsn = self.lsn(conn)
        self.start_archive_bytes = self.archive_bytes()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    @staticmethod
    def lsn(conn) -> int:
        return conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()[0]

    def archive_bytes(self) -> int:
        archive = self.cluster.archive.directory / "repo" / "archive"
        return sum(path.stat().st_size for path in archive.rglob("*") if path.is_file())

    def sample(self) -> None:
        with self.cluster.connect() as conn:
            while not self.stopping.wait(0.5):
                row = conn.execute(
                    "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn, last_archived_wal, failed_count"
                    " FROM pg_stat_archiver"
                ).fetchone()
                current, archived_wal, self.failed = int(row[0]), row[1], row[2]
                if archived_wal and len(archived_wal) == 24:  # not a .history or .backup file
                    archived_end = (int(archived_wal[8:16], 16) * 2**32 // WAL_SEGMENT_BYTES
                                    + int(archived_wal[16:24], 16) + 1) * WAL_SEGMENT_BYTES
                    self.samples.append(max(current - archived_end, 0))

    def finish(self, scenario: dict) -> dict:
        self.stopping.set()
        self.thread.join()
        seconds = time.monotonic() - self.started
        with self.cluster.connect() as conn:
            wal = int(self.lsn(conn)) - int(self.start_lsn)
        # The scenario's last segment closed and waited for in the repository: how long one
        # segment takes from its switch to the archive, the lag that archive_timeout adds to.
        clock = time.monotonic()
        self.cluster.archive.run("check")
        push_seconds = time.monotonic() - clock
        archived = self.archive_bytes() - self.start_archive_bytes
        # The warm-up's writes are in the span too: count requests over the span at the run's rate.
        writes = max(scenario["requests_per_s"] * seconds, 1)
        wal_per_second = wal / seconds
        figures = {
            "seconds": round(seconds, 1), "wal_bytes": wal, "archived_bytes": archived,
            "wal_bytes_per_write": round(wal / writes), "archived_bytes_per_write": round(archived / writes),
            "unarchived_bytes_max": max(self.samples, default=0),
            "unarchived_bytes_mean": round(sum(self.samples) / len(self.samples)) if self.samples else 0,
            "unarchived_seconds_max": round(max(self.samples, default=0) / wal_per_second, 1) if wal else 0.0,
            "segment_switch_to_archived_seconds": round(push_seconds, 2),
            "wal_bytes_per_day_at_this_rate": round(wal_per_second * 86400),
            "archive_failures": self.failed,
        }
        print(f"  archive during POST: {wal / 2**20:,.0f} MiB of WAL"
              f" ({figures['wal_bytes_per_write']:,} bytes a write),"
              f" {archived / 2**20:,.1f} MiB archived ({figures['archived_bytes_per_write']:,} bytes a write);"
              f" not yet archived at most {figures['unarchived_bytes_max'] / 2**20:.1f} MiB"
              f" = {figures['unarchived_seconds_max']} s of writes at this rate; a closed segment archived in"
              f" {push_seconds:.2f} s", flush=True)
        return figures


def timed_restore(cluster: localstack.Cluster) -> dict:
    """Restore the whole tenant from the repository to the end of its archive, as after losing the
    cluster, and check that every row came back."""
    with cluster.connect(TENANT.name) as conn:
        rows = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    cluster.archive.run("check")
    clock = time.monotonic()
    cluster.archive.restore(cluster)
    seconds = time.monotonic() - clock
    with cluster.connect(TENANT.name) as conn:
        restored = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    if restored != rows:
        raise RuntimeError(f"the restore brought back {restored:,} of {rows:,} transactions")
    print(f"bench: restore of the whole tenant ({rows:,} transactions) to the end of the archive in"
          f" {seconds:.1f} s", flush=True)
    return {"seconds": round(seconds, 1), "transactions": rows}
