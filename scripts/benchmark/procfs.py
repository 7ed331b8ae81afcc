"""What Linux's /proc says of the run's processes: connections, memory (PSS) and CPU time."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BUSY_SHARE = 0.10  # more CPU than this taken by other work during a run gets a warning
DISTURBANCES = ("other", "steal", "iowait")


def established_connections(pids: Iterable[int], port: int) -> dict[str, int]:
    """How many established TCP connections to `port` each process holds (from /proc/net/tcp*)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address "ADDR:PORT" in hex; state 01 is ESTABLISHED; field 9 is the socket's inode.
            if fields[3] == "01" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                held += os.readlink(fd) in inodes
            except OSError:  # closed meanwhile
                continue
        counts[str(pid)] = held
    return counts


# --- memory: proportional set size of a process tree -------------------------------------------


def read_pss_kib(pid: int) -> int:
    """The process's proportional set size (shared pages divided among their users), in KiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ValueError(f"no Pss line in /proc/{pid}/smaps_rollup")


def child_pids(pid: int) -> list[int]:
    """Direct children, from /proc/<pid>/task/*/children, or by scanning every /proc/<n>/stat."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    if tasks:
        children = set()
        for task in tasks:
            try:
                children.update(int(child) for child in task.read_text().split())
            except OSError:  # a thread that ended meanwhile
                continue
        return sorted(children)
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The parent's pid is the second field after the command name, which may hold spaces.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def process_tree(pid: int) -> list[int]:
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending.extend(child_pids(current))
    return sorted(pids)


def tree_pss(pid: int) -> dict:
    processes = {}
    for each in process_tree(pid):
        try:
            processes[str(each)] = read_pss_kib(each)
        except FileNotFoundError:  # a worker that exited meanwhile
            continue
    return {"total_mib": round(sum(processes.values()) / 1024, 1), "processes_kib": processes}


# --- CPU used by other work during a measurement ----------------------------------------------


def machine_cpu_ticks() -> tuple[int, int, int]:
    """(user + nice + system, iowait, steal) of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, iowait = fields[0], fields[1], fields[2], fields[4]
    return user + nice + system, iowait, fields[7] if len(fields) > 7 else 0


def tree_cpu_ticks(pid: int) -> int:
    """CPU used by a process tree, including its children that have exited (and were reaped)."""
    total = 0
    for each in process_tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total


def per_request_ms(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request, by server, between two readings of their CPU ticks."""
    return {name: round((after[name] - before[name]) / CLOCK_TICKS * 1000 / max(requests, 1), 3) for name in after}


def own_cpu_ticks() -> int:
    """CPU used by this process and its reaped children (wrk, py-spy, psql tools)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return round(seconds * CLOCK_TICKS)


def cpu_snapshot(trees_ticks: int) -> tuple[float, int, int, int, int]:
    """(time, machine busy, iowait and steal ticks, ticks used by this process, its reaped
    children and the servers' process trees, which used `trees_ticks`)."""
    now = time.monotonic()
    busy, iowait, steal = machine_cpu_ticks()
    return now, busy, iowait, steal, own_cpu_ticks() + trees_ticks


def other_cpu(before: tuple[float, int, int, int, int], after: tuple[float, int, int, int, int]) -> dict:
    """Shares of the machine's CPU time that went elsewhere between two snapshots of a measured run.

    `other`: processes other than wrk, gunicorn and this run's PostgreSQL (another job on
    the machine lowers every figure); `steal`: time the hypervisor gave to other machines;
    `iowait`: idle while waiting for the disk (PostgreSQL's writes and fsyncs).
    """
    capacity = max((after[0] - before[0]) * len(os.sched_getaffinity(0)) * CLOCK_TICKS, 1)
    busy, iowait, steal, ours = (after[index] - before[index] for index in (1, 2, 3, 4))
    return {
        "machine": round(busy / capacity, 3), "this_run": round(ours / capacity, 3),
        "other": round(max(busy - ours, 0) / capacity, 3), "steal": round(steal / capacity, 3),
        "iowait": round(iowait / capacity, 3),
    }
