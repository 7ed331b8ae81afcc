"""Benchmark one tenant's real stack (gunicorn with the production config + PostgreSQL) with wrk.

    scripts/bench [--duration 10] [--warmup 2] [--scale-duration 5] [--connections 8] [--threads 2]
                  [--profile] [--keep] [--archive]
    scripts/bench compare OLD.json NEW.json

A run starts a private PostgreSQL cluster under .local/bench/, creates the tenant `bench` (UTC,
USD), seeds it with COPY (1,000 users, 1,000,000 transactions, one heavy user holding 100,000),
starts gunicorn with service/gunicorn.conf.py and drives every scenario with wrk, one after the
other, on 127.0.0.1. It prints a Markdown table with the targets of issue 5 and writes every
figure to .local/bench/results-<UTC time>.json; `compare` sets two such files side by side.
It exits 0 whether or not a target is met, and non-zero only when the harness itself fails.
Everything it started is stopped at the end, also on Ctrl-C or an error.
With --archive the cluster archives its WAL with pgBackRest as a tenant's does (docs/operations.md):
the run also reports the full backup of the seeded tenant, the archive's lag and the WAL a write
leaves during the POST scenario, and the time a restore of the whole tenant takes.
See docs/performance.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from pathlib import Path

import localstack
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.schemas import encode_cursor  # noqa: E402
from service.security import hash_password  # noqa: E402

STATE = ROOT / ".local" / "bench"
TENANT = localstack.Tenant("bench", {"TENANT_TIMEZONE": "UTC", "TENANT_CURRENCY": "USD"}, None)

USERS = 1_000
TOTAL_ROWS = 1_000_000
HEAVY_ROWS = 100_000
SMALL_TENANT_ROWS = 10_000  # phase A of the data-size comparison
HISTORY = timedelta(days=730)  # transactions span the last two years
DEEP_PAGE_AFTER = 90_000  # the deep page starts after this many of the heavy user's rows
PAGE_LIMIT = 50
HEAVY_USERNAME = "heavy@bench.example"
LOGIN_USERS = 50  # POST /login takes these users in turn
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway password of a throwaway database
SEED = 20_261_124
# Added by the daily-rollup migration, when it is there: kept off during COPY, then rebuilt.
ROLLUP_TRIGGER = "transactions_totals"
ROLLUP_REFRESH = "refresh_totals"
SEED_LIMIT_SECONDS = 120
AFTER_RUN_SETTLE_SECONDS = 5
BUSY_SHARE = 0.10  # more CPU than this taken by other work during a run gets a warning
DISTURBANCES = ("other", "steal", "iowait")
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"  # only for --profile, not a dependency
MIB = 1024 * 1024


@dataclass(frozen=True)
class Category:
    name: str
    type: str
    weight: int  # relative frequency
    low_cents: int
    high_cents: int
    descriptions: tuple[str, ...]


# About one transaction in eight is income; the rest spreads over everyday expense categories.
CATEGORIES = (
    Category("salary", "income", 6, 150_000, 900_000, ("Monthly salary", "Salary bonus", "Payroll")),
    Category("freelance", "income", 6, 10_000, 300_000, ("Freelance invoice", "Consulting fee", "Side project")),
    Category("groceries", "expense", 22, 800, 18_000, ("Supermarket", "Farmers market", "Corner shop", "Bakery")),
    Category("dining", "expense", 16, 300, 12_000, ("Coffee", "Lunch", "Dinner out", "Takeaway")),
    Category("transport", "expense", 14, 200, 9_000, ("Metro card", "Fuel", "Taxi ride", "Parking")),
    Category("utilities", "expense", 6, 3_000, 25_000, ("Electricity bill", "Water bill", "Internet", "Phone plan")),
    Category("rent", "expense", 2, 70_000, 250_000, ("Monthly rent",)),
    Category("shopping", "expense", 10, 1_000, 60_000, ("Clothes", "Electronics", "Books", "Home goods")),
    Category("entertainment", "expense", 8, 500, 15_000, ("Cinema", "Streaming subscription", "Concert tickets")),
    Category("health", "expense", 5, 1_000, 40_000, ("Pharmacy", "Dentist", "Gym membership")),
    Category("travel", "expense", 5, 4_000, 150_000, ("Flight", "Hotel", "Train ticket")),
)
_CATEGORY_TABLE = tuple(category for category in CATEGORIES for _ in range(category.weight))
UNCATEGORISED_SHARE = 0.05  # rows written by the original clients carry neither category nor description


# --- wrk: running it and reading its report --------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE
)


def parse_wrk(output: str) -> dict:
    """The figures of one `wrk --latency` report: rate, latency percentiles (ms), errors."""
    rate, total = _RATE.search(output), _TOTAL.search(output)
    percentiles = {f"p{m[1]}": round(float(m[2]) * _UNITS_MS[m[3]], 3) for m in _PERCENTILE.finditer(output)}
    if not rate or not total or set(percentiles) != {"p50", "p75", "p90", "p99"}:
        raise ValueError(f"not a `wrk --latency` report:\n{output}")
    non_2xx = _NON_2XX.search(output)
    socket = _SOCKET.search(output)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True)) \
        if socket else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    return {
        "requests": int(total[1]),
        "seconds": round(float(total[2]) * _UNITS_MS[total[3]] / 1000, 3),
        "requests_per_s": float(rate[1]),
        "latency_ms": percentiles,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": socket_errors,
    }


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if not localstack.IS_ROOT or not shutil.which("apt-get"):
        sys.exit("bench: wrk is not installed; install it as root with `apt-get install -y wrk` and run again")
    print("bench: wrk not found; installing Debian's wrk with apt-get", file=sys.stderr)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=apt_env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=apt_env, check=True)
        subprocess.run(install, env=apt_env, check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("bench: apt-get installed wrk but it is not on PATH")
    return found


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    method: str
    path: str
    bodies: tuple[dict, ...] = ()  # request bodies, taken in turn
    authenticated: bool = True


def wrk_script(scenario: Scenario, token: str | None) -> str:
    """The Lua script that makes wrk send the scenario's request.

    With several bodies each request takes the next one, each wrk thread starting elsewhere in
    the list, so one body is rarely in flight twice at the same time.
    """
    lines = [f'wrk.method = "{scenario.method}"']
    if scenario.authenticated and token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if len(scenario.bodies) == 1:
        lines.append(f"wrk.body = [[{json.dumps(scenario.bodies[0])}]]")
    if scenario.bodies:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    if len(scenario.bodies) > 1:
        lines += [
            "local bodies = {",
            *(f"  [[{json.dumps(body)}]]," for body in scenario.bodies),
            "}",
            "local threads = 0",
            "function setup(thread)",
            "  thread:set('offset', threads * 7)",
            "  threads = threads + 1",
            "end",
            "local i = 0",
            "function init(args)",
            "  i = offset or 0",
            "end",
            "function request()",
            "  i = i + 1",
            "  return wrk.format(nil, nil, nil, bodies[i % #bodies + 1])",
            "end",
        ]
    return "\n".join(lines) + "\n"


def run_wrk(
    wrk: str, url: str, script: Path, *, seconds: int, connections: int, threads: int,
    midway: Callable[[], object] | None = None,
) -> tuple[dict, str, object]:
    """Run wrk; `midway`, when given, is called halfway through and its result returned too."""
    command = [
        # A 10 s timeout: a slow answer is measured rather than dropped as a socket error.
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sampled = None
        if midway is not None:
            time.sleep(seconds / 2)
            sampled = midway()
        stdout, stderr = process.communicate(timeout=seconds + 60)
    except BaseException:
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.strip() or stdout.strip()}")
    return parse_wrk(stdout), stdout, sampled


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

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def own_cpu_ticks() -> int:
    """CPU used by this process and its reaped children (wrk, py-spy, psql tools)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return round(seconds * CLOCK_TICKS)


# --- the deep page's cursor --------------------------------------------------------------------


def cursor_after(occurred_at: datetime, row_id: int) -> str:
    """The next_cursor the API returns after the row (occurred_at, id) in the default sort.

    The app's connections run with TimeZone=UTC, so its keys print with +00:00.
    """
    return encode_cursor({"s": "-occurred_at", "k": occurred_at.astimezone(UTC), "id": row_id})


# --- seeding -----------------------------------------------------------------------------------


def transaction_line(rng: random.Random, user_id: int, occurred: float) -> str:
    """One row of COPY text: user_id, type, amount, description, category, occurred_at."""
    category = _CATEGORY_TABLE[int(rng.random() * len(_CATEGORY_TABLE))]
    cents = rng.randint(category.low_cents, category.high_cents)
    if rng.random() < UNCATEGORISED_SHARE:
        description = name = "\\N"
    else:
        description = category.descriptions[int(rng.random() * len(category.descriptions))]
        name = category.name
    moment = datetime.fromtimestamp(occurred, UTC).isoformat(sep=" ")
    return f"{user_id}\t{category.type}\t{cents // 100}.{cents % 100:02d}\t{description}\t{name}\t{moment}\n"


@dataclass
class SeedPlan:
    """The rows of both phases: A holds SMALL_TENANT_ROWS, A + B hold TOTAL_ROWS.

    The heavy user's rows of the current month all go into phase A, so the measured analytics
    period is identical in both phases; B adds the heavy user's older rows and everyone else's.
    """

    heavy_current_month: list[str]
    heavy_older: list[str]
    others: Iterator[str]
    others_in_phase_a: int


def plan_seed(now: datetime, heavy_id: int, other_ids: list[int], rng: random.Random) -> SeedPlan:
    start, end = (now - HISTORY).timestamp(), now.timestamp() - 60
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    current, older = [], []
    for _ in range(HEAVY_ROWS):
        occurred = rng.uniform(start, end)
        (current if occurred >= month_start else older).append(transaction_line(rng, heavy_id, occurred))
    if len(current) > SMALL_TENANT_ROWS:
        raise RuntimeError(f"the heavy user's current month ({len(current)} rows) does not fit in phase A")

    def others() -> Iterator[str]:
        for _ in range(TOTAL_ROWS - HEAVY_ROWS):
            yield transaction_line(rng, other_ids[int(rng.random() * len(other_ids))], rng.uniform(start, end))

    return SeedPlan(current, older, others(), SMALL_TENANT_ROWS - len(current))


def _batches(lines: Iterable[str], size: int = 20_000) -> Iterator[str]:
    iterator = iter(lines)
    while chunk := "".join(islice(iterator, size)):
        yield chunk


def rollup_present(conn) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('public.transactions') AND tgname = %s",
        (ROLLUP_TRIGGER,),
    ).fetchone()
    return row is not None


def copy_transactions(conn, lines: Iterable[str]) -> int:
    """COPY the rows in one transaction; with the rollup triggers (every user trigger of the table:
    the row one of updates and deletes, the statement one of inserts) off during COPY, then a rebuild."""
    rollup = rollup_present(conn)
    count = 0
    with conn.transaction():
        if rollup:
            conn.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
        copy_sql = "COPY transactions (user_id, type, amount, description, category, occurred_at) FROM STDIN"
        with conn.cursor().copy(copy_sql) as copy:
            for chunk in _batches(lines):
                copy.write(chunk)
                count += chunk.count("\n")
        if rollup:
            conn.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
            conn.execute(sql.SQL("SELECT {}()").format(sql.Identifier(ROLLUP_REFRESH)))
    # As autovacuum would after such an insert: statistics, and the visibility map that lets
    # index-only scans skip the heap. Done now so autovacuum does not start during a measurement.
    conn.execute("VACUUM (ANALYZE)")
    # Write the load's dirty pages now: otherwise the spread checkpoint that the load's WAL
    # triggers keeps writing them (and fsyncing) through the first minutes of measurements.
    conn.execute("CHECKPOINT")
    return count


def other_username(n: int) -> str:
    return f"user{n:04d}@bench.example"


def seed_users(conn) -> tuple[int, list[int]]:
    """1,000 users sharing one argon2 hash (computed once); returns the heavy user's id and the rest."""
    password_hash = hash_password(PASSWORD)
    usernames = [HEAVY_USERNAME] + [other_username(n) for n in range(1, USERS)]
    with conn.cursor().copy("COPY users (username, password_hash) FROM STDIN") as copy:
        for username in usernames:
            copy.write_row((username, password_hash))
    ids = dict(conn.execute("SELECT username, id FROM users").fetchall())
    return ids[HEAVY_USERNAME], sorted(ids[name] for name in usernames[1:])


def deep_page_cursor(conn, heavy_id: int) -> str:
    occurred_at, row_id = conn.execute(
        "SELECT occurred_at, id FROM transactions WHERE user_id = %s"
        " ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
        (heavy_id, DEEP_PAGE_AFTER - 1),
    ).fetchone()
    return cursor_after(occurred_at, row_id)


def row_id_at(conn, heavy_id: int, position: int) -> int:
    """The id of the heavy user's row at 1-based position in the default sort (newest first)."""
    return conn.execute(
        "SELECT id FROM transactions WHERE user_id = %s ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
        (heavy_id, position - 1),
    ).fetchone()[0]


def heavy_month_rows(conn, heavy_id: int, now: datetime) -> int:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return conn.execute(
        "SELECT count(*) FROM transactions WHERE user_id = %s AND occurred_at >= %s", (heavy_id, month_start)
    ).fetchone()[0]


# --- HTTP helpers ------------------------------------------------------------------------------


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def login(base_url: str) -> str:
    status, body = http("POST", f"{base_url}/login", {"username": HEAVY_USERNAME, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"POST /login as the heavy user answered {status}: {body[:300]!r}")
    return json.loads(body)["token"]


# --- py-spy profiles (--profile) ----------------------------------------------------------------


# Where a sample's time is charged: the innermost frame on its stack from one of these places.
PROFILE_AREAS = (
    ("database (psycopg)", ("psycopg/", "psycopg_pool/")),
    ("logging", ("logging/", "service/logs.py")),
    ("argon2", ("argon2/",)),
    ("jwt", ("jwt/",)),
    ("marshmallow", ("marshmallow/",)),
    ("json", ("json/",)),
    ("flask, werkzeug, flask-restx", ("flask/", "werkzeug/", "flask_restx/")),
    ("service/ code", ("service/",)),
    ("gunicorn", ("gunicorn/",)),
    ("threads, queues, selectors", ("threading.py", "concurrent/", "queue.py", "selectors.py")),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def summarize_profile(collapsed: str, top: int = 12) -> dict:
    """Where py-spy's samples (collapsed stacks, `frame;frame;... count`) spent their time.

    `areas`: each sample charged to the innermost frame that belongs to one of PROFILE_AREAS;
    `self`: the innermost functions; `service`: functions of service/ with everything below them.
    All as shares of the samples.
    """
    areas: dict[str, int] = {}
    own: dict[str, int] = {}
    service: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        # The "process ..." pseudo-frames of --subprocesses are not code.
        frames = [m for frame in stack.split(";") if (m := _FRAME.match(frame)) and not frame.startswith("process ")]
        if not frames:
            continue
        count = int(count_text)
        total += count
        names = [f"{m['function']} ({m['file']})" for m in frames]
        own[names[-1]] = own.get(names[-1], 0) + count
        for name in {name for name, m in zip(names, frames, strict=True) if m["file"].startswith("service/")}:
            service[name] = service.get(name, 0) + count
        area = next(
            (label for m in reversed(frames) for label, prefixes in PROFILE_AREAS if m["file"].startswith(prefixes)),
            "other",
        )
        areas[area] = areas.get(area, 0) + count

    def ranked(counts: dict[str, int], limit: int | None = top) -> list[list]:
        best = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [[name, round(count / total, 3)] for name, count in best]

    if not total:
        return {"samples": 0, "areas": [], "self": [], "service": []}
    return {"samples": total, "areas": ranked(areas, None), "self": ranked(own), "service": ranked(service)}


# --- machine and server description ------------------------------------------------------------


def _command_output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _cpu_pressure() -> str | None:
    """The kernel's CPU pressure line (share of time some task waited for a CPU), if it keeps one."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def machine_info(conn) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model[1].strip() if model else platform.processor() or platform.machine(),
        "memory_gib": round(int(memory[1]) / MIB, 1) if memory else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": conn.execute("SHOW server_version").fetchone()[0],
        "postgresql_shared_buffers": conn.execute("SHOW shared_buffers").fetchone()[0],
        "wrk": _command_output(["wrk", "-v"]).partition(" Copyright")[0] or None,
        "cpu_pressure_at_start": _cpu_pressure(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def code_state() -> dict:
    """The code gunicorn loaded: taken right after it started, as the tree may change under a run."""
    commit = _command_output(["git", "rev-parse", "HEAD"])
    changed = _command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "git_commit": commit or None,
        "git_dirty": bool(changed),
        "migrations": sorted(path.name for path in (ROOT / "service" / "migrations").glob("*.sql")),
    }


def server_settings(env: dict[str, str]) -> dict:
    """What service/gunicorn.conf.py resolves to in the server's environment."""
    probe = (
        "import json, runpy; c = runpy.run_path('service/gunicorn.conf.py');"
        " print(json.dumps({k: c.get(k) for k in ('worker_class', 'workers', 'threads', 'preload_app')}))"
    )
    done = subprocess.run(
        [str(localstack.VENV_PYTHON), "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    settings = json.loads(done.stdout.strip().splitlines()[-1])
    settings["db_pool_size"] = int(env.get("DB_POOL_SIZE", settings["threads"]))
    return settings


# --- targets, table, comparison ----------------------------------------------------------------

# Table order (the numbering); the run order differs, see SCENARIOS_IN_RUN_ORDER.
TABLE_ORDER = (
    "health", "create", "analytics_month", "analytics_year", "list_first", "list_deep", "categories", "login",
)


def evaluate(results: dict) -> list[dict]:
    """Each target of issue 5 with what was measured and whether it is met."""
    scenarios = results["scenarios"]

    def figure(key: str, name: str) -> float:
        entry = scenarios[key]
        return entry["ratio_to_health"] if name == "ratio" else entry["latency_ms"][name]

    def errors(key: str) -> int:
        return scenarios[key]["non_2xx"] + sum(scenarios[key]["socket_errors"].values())

    targets = []

    def add(target: str, measured: float | None, passed: bool | None, shown: str) -> None:
        targets.append({"target": target, "measured": measured, "shown": shown, "passed": passed})

    for key, label in (("create", "POST /transactions"), ("analytics_month", "analytics, current month")):
        ratio = figure(key, "ratio")
        add(f"{label}: >= 50% of the /health rate", ratio, ratio >= 0.5, f"{ratio:.0%}")
        p99 = figure(key, "p99")
        add(f"{label}: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
    add("POST /transactions: 0 errors", errors("create"), errors("create") == 0, str(errors("create")))
    p99 = figure("analytics_year", "p99")
    add("analytics, last year by month: p99 <= 25 ms", p99, p99 <= 25, f"{p99:.1f} ms")
    deep, first = figure("list_deep", "p99"), figure("list_first", "p99")
    ratio = deep / first if first else None
    add(
        "list: deep page p99 <= 1.5 x first page p99", ratio, ratio is not None and ratio <= 1.5,
        f"{deep:.1f} / {first:.1f} ms = {ratio:.2f}x" if ratio is not None else "n/a",
    )
    scale = results["scale"]
    add(
        "analytics p50 at 1,000,000 vs 10,000 tenant rows (1 connection) <= 1.5", scale["p50_ratio"],
        scale["p50_ratio"] <= 1.5,
        f"{scale['p50_ms_1m']:.2f} / {scale['p50_ms_10k']:.2f} ms = {scale['p50_ratio']:.2f}x",
    )
    idle = results["memory"]["idle"]["total_mib"]
    add("one tenant's app processes idle: <= 150 MiB PSS", idle, idle <= 150, f"{idle:.0f} MiB")
    seconds = results["seed"]["seconds_total"]
    add("seeding 1,000,000 rows: < 2 minutes", seconds, seconds < SEED_LIMIT_SECONDS, f"{seconds:.0f} s")
    return targets


def spread_text(spread: dict[str, int] | None) -> str:
    """Connections per worker, most first: "5+3"."""
    return "+".join(str(count) for count in sorted(spread.values(), reverse=True)) if spread else "?"


def keeps_connections(server: dict) -> bool:
    """Whether gunicorn keeps connections alive (gthread); sync workers close each after one response."""
    # "sync" or a subclass of gunicorn's SyncWorker (service.workers.DrainingSyncWorker)
    return not server["worker_class"].endswith(("sync", "SyncWorker")) or server["threads"] > 1


def format_table(results: dict) -> str:
    # Where kept-alive connections landed matters only when workers keep them.
    spread = keeps_connections(results["server"])
    lines = [
        "| scenario | req/s | × /health | p50 ms | p99 ms | non-2xx | socket errors |"
        + (" connections per worker |" if spread else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if spread else ""),
    ]
    for key in TABLE_ORDER:
        entry = results["scenarios"][key]
        latency = entry["latency_ms"]
        lines.append(
            f"| {entry['label']} | {entry['requests_per_s']:,.0f} | {entry['ratio_to_health']:.2f} |"
            f" {latency['p50']:.2f} | {latency['p99']:.2f} | {entry['non_2xx']} |"
            f" {sum(entry['socket_errors'].values())} |"
            + (f" {spread_text(entry.get('connections_per_worker'))} |" if spread else "")
        )
    memory, scale = results["memory"], results["scale"]
    eight = scale["connections_8"]
    disturbed = []
    for key in TABLE_ORDER:
        entry = results["scenarios"][key]
        shares = {name: entry["other_cpu"].get(name, 0) for name in DISTURBANCES}
        if max(shares.values()) > BUSY_SHARE:
            described = ", ".join(f"{share:.0%} {name}" for name, share in shares.items())
            disturbed.append(f"{entry['label']} ({described})")
    lines += [
        "",
        "- CPU share taken by other work, by the hypervisor (steal) or idle waiting for the disk (iowait):"
        f" {'; '.join(disturbed) if disturbed else 'none above 10% in any scenario'}",
        f"- gunicorn PSS (master + {memory['idle']['workers']} workers): idle {memory['idle']['total_mib']:.1f} MiB,"
        f" after the run {memory['after']['total_mib']:.1f} MiB",
        f"- analytics current month p50 with 1 connection: {scale['p50_ms_10k']:.2f} ms at"
        f" {scale['tenant_rows_small']:,} tenant rows, {scale['p50_ms_1m']:.2f} ms at {scale['tenant_rows_large']:,}"
        f" ({scale['p50_ratio']:.2f}x); with 8: {eight['p50_ms_10k']:.2f} ms and {eight['p50_ms_1m']:.2f} ms"
        f" ({eight['p50_ratio']:.2f}x"
        + (
            f", connections per worker {' and '.join(spread_text(each) for each in eight['connections_per_worker'])}"
            if spread else ""
        )
        + ");"
        f" the heavy user's current month holds {scale['heavy_current_month_rows']:,} rows in both",
        f"- seeding: {results['seed']['seconds_total']:.0f} s"
        f" (users {results['seed']['seconds_users']:.1f} s, phase A {results['seed']['seconds_phase_a']:.1f} s,"
        f" phase B {results['seed']['seconds_phase_b']:.1f} s, rollup trigger"
        f" {'present' if results['seed']['rollup_trigger'] else 'absent'})",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for target in results["targets"]:
        lines.append(f"| {target['target']} | {target['shown']} | {'PASS' if target['passed'] else 'FAIL'} |")
    return "\n".join(lines)


def describe_machine(results: dict) -> str:
    machine, server = results["machine"], results["server"]
    return (
        f"{machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, Linux {machine['kernel']},"
        f" Python {machine['python']}, PostgreSQL {machine['postgresql']}, {machine['wrk']};"
        f" gunicorn {server['worker_class']} {server['workers']} workers x {server['threads']} threads;"
        f" commit {(machine['git_commit'] or '?')[:12]}{' (with uncommitted changes)' if machine['git_dirty'] else ''}"
    )


def compare(old_path: Path, new_path: Path) -> str:
    old, new = (json.loads(path.read_text()) for path in (old_path, new_path))
    lines = [
        f"old: {old_path.name}: {describe_machine(old)}",
        f"new: {new_path.name}: {describe_machine(new)}",
        "",
        "| scenario | req/s old → new | × /health old → new | p50 ms old → new | p99 ms old → new |",
        "| --- | --- | --- | --- | --- |",
    ]

    def change(a: float, b: float, fmt: str) -> str:
        delta = f" ({(b - a) / a:+.0%})" if a else ""
        return f"{a:{fmt}} → {b:{fmt}}{delta}"

    for key in TABLE_ORDER:
        if key not in old["scenarios"] or key not in new["scenarios"]:
            continue
        a, b = old["scenarios"][key], new["scenarios"][key]
        lines.append(
            f"| {b['label']} | {change(a['requests_per_s'], b['requests_per_s'], ',.0f')} |"
            f" {a['ratio_to_health']:.2f} → {b['ratio_to_health']:.2f} |"
            f" {change(a['latency_ms']['p50'], b['latency_ms']['p50'], '.2f')} |"
            f" {change(a['latency_ms']['p99'], b['latency_ms']['p99'], '.2f')} |"
        )
    lines += ["", "| target | old | new |", "| --- | --- | --- |"]
    old_targets = {t["target"]: t for t in old["targets"]}
    for target in new["targets"]:
        before = old_targets.get(target["target"])
        was = f"{before['shown']} {'PASS' if before['passed'] else 'FAIL'}" if before else "n/a"
        lines.append(f"| {target['target']} | {was} | {target['shown']} {'PASS' if target['passed'] else 'FAIL'} |")
    return "\n".join(lines)


# --- the run -----------------------------------------------------------------------------------


# --- archiving (--archive) -----------------------------------------------------------------------


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


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str) -> None:
        self.args = args
        self.wrk = wrk
        self.stack = localstack.Stack(STATE, localstack.free_port(), archived=args.archive)
        self.server: localstack.Server | None = None
        self.scripts = STATE / "lua"
        self.profiles = STATE / "profiles" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def measure(self, scenario: Scenario, token: str | None, seconds: int, connections: int | None = None) -> dict:
        """A probe request, a warm-up, then the measured wrk run of one scenario."""
        base = self.server.url
        probe_token = token if scenario.authenticated else None
        status, _ = http(scenario.method, base + scenario.path, next(iter(scenario.bodies), None), probe_token)
        script = self.scripts / f"{scenario.key}.lua"
        script.write_text(wrk_script(scenario, token))
        connections = connections or self.args.connections
        options = {"connections": connections, "threads": min(self.args.threads, connections)}
        if self.args.warmup > 0:
            run_wrk(self.wrk, base + scenario.path, script, seconds=self.args.warmup, **options)
        profiler = self.start_profiler(scenario.key, seconds) if self.args.profile else None
        before = self.cpu_snapshot()
        # Keep-alive connections stay with the worker that accepted them: how they were spread
        # over the workers is part of the result (all 8 on one worker leaves a core to the others).
        workers = child_pids(self.server.process.pid)
        port = int(base.rpartition(":")[2])
        figures, output, spread = run_wrk(
            self.wrk, base + scenario.path, script, seconds=seconds, **options,
            midway=lambda: established_connections(workers, port),
        )
        figures["connections_per_worker"] = spread
        # py-spy's CPU counts as this run's once it is reaped (before that it would look like other work).
        profile = self.finish_profiler(profiler, scenario.key) if profiler else None
        figures["other_cpu"] = self.other_cpu(before)
        print(
            f"  {scenario.label}{'' if connections == self.args.connections else f' ({connections} connection)'}:"
            f" {figures['requests_per_s']:,.0f} req/s, p50 {figures['latency_ms']['p50']:.2f} ms,"
            f" p99 {figures['latency_ms']['p99']:.2f} ms, non-2xx {figures['non_2xx']},"
            f" connections per worker {spread_text(figures['connections_per_worker'])}",
            flush=True,
        )
        if not 200 <= status < 300:
            print(f"  warning: the probe request of {scenario.label} answered {status}", file=sys.stderr)
        shares = {name: figures["other_cpu"][name] for name in DISTURBANCES}
        if max(shares.values()) > BUSY_SHARE:
            print(f"  warning: during {scenario.label}, CPU time was "
                  + ", ".join(f"{share:.0%} {name}" for name, share in shares.items()), file=sys.stderr)
        if figures["requests"] == 0:
            print(f"  warning: no request of {scenario.label} completed; its latencies mean nothing", file=sys.stderr)
        return {
            "label": scenario.label, "method": scenario.method, "path": scenario.path,
            "probe_status": status, **figures, "wrk_output": output,
            **({"profile": profile} if profile else {}),
        }

    def cpu_snapshot(self) -> tuple[float, int, int, int, int]:
        """(time, machine busy, iowait and steal ticks, ticks used by this run's own processes)."""
        now = time.monotonic()
        busy, iowait, steal = machine_cpu_ticks()
        ours = own_cpu_ticks() + tree_cpu_ticks(self.server.process.pid)
        postmaster = self.stack.cluster.data_dir / "postmaster.pid"
        if postmaster.exists():
            ours += tree_cpu_ticks(int(postmaster.read_text().split()[0]))
        return now, busy, iowait, steal, ours

    def other_cpu(self, before: tuple[float, int, int, int, int]) -> dict:
        """Shares of the machine's CPU time that went elsewhere during a measured run.

        `other`: processes other than wrk, gunicorn and this run's PostgreSQL (another job on
        the machine lowers every figure); `steal`: time the hypervisor gave to other machines;
        `iowait`: idle while waiting for the disk (PostgreSQL's writes and fsyncs).
        """
        after = self.cpu_snapshot()
        capacity = max((after[0] - before[0]) * len(os.sched_getaffinity(0)) * CLOCK_TICKS, 1)
        busy, iowait, steal, ours = (after[index] - before[index] for index in (1, 2, 3, 4))
        return {
            "machine": round(busy / capacity, 3), "this_run": round(ours / capacity, 3),
            "other": round(max(busy - ours, 0) / capacity, 3), "steal": round(steal / capacity, 3),
            "iowait": round(iowait / capacity, 3),
        }

    def start_profiler(self, key: str, seconds: int) -> subprocess.Popen:
        """py-spy sampling every gunicorn process (without pausing them) during one measured run."""
        self.profiles.mkdir(parents=True, exist_ok=True)
        command = [
            str(PY_SPY), "record", "--pid", str(self.server.process.pid), "--subprocesses", "--nonblocking",
            "--rate", "250", "--duration", str(seconds), "--format", "raw",
            "--output", str(self.profiles / f"{key}.txt"),
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish_profiler(self, profiler: subprocess.Popen, key: str) -> dict | None:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()
        path = self.profiles / f"{key}.txt"
        if not path.exists():
            print(f"  warning: py-spy wrote no profile of {key}", file=sys.stderr)
            return None
        summary = summarize_profile(path.read_text())
        summary["file"] = str(path.relative_to(ROOT))
        return summary

    def run(self) -> dict:
        args, started = self.args, time.monotonic()
        started_at = datetime.now(UTC)
        results: dict = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "options": {
                "duration_s": args.duration, "warmup_s": args.warmup, "scale_duration_s": args.scale_duration,
                "connections": args.connections, "threads": args.threads, "profile": args.profile,
                "archive": args.archive,
            },
        }
        cluster = self.stack.cluster
        if cluster.is_running():  # left by an interrupted run
            cluster.stop("immediate")
        shutil.rmtree(cluster.directory, ignore_errors=True)
        shutil.rmtree(STATE / "logs", ignore_errors=True)
        shutil.rmtree(self.scripts, ignore_errors=True)
        self.scripts.mkdir(parents=True)

        load = os.getloadavg()[0]
        if load > 0.5 * len(os.sched_getaffinity(0)):
            print(f"bench: warning: load average {load:.1f} before the run; other work on this machine"
                  " lowers every figure", file=sys.stderr)
        print(f"bench: PostgreSQL cluster in {cluster.directory}", flush=True)
        if cluster.archive:
            shutil.rmtree(cluster.archive.directory, ignore_errors=True)
        cluster.start()
        if cluster.archive:
            cluster.archive.run("stanza-create")
        env = self.stack.prepare(TENANT)
        results["server"] = server_settings(env)
        now = datetime.now(UTC)
        rng = random.Random(SEED)  # noqa: S311 - test data, not secrets
        with cluster.connect(TENANT.name) as conn:
            results["machine"] = machine_info(conn)
            clock = time.monotonic()
            heavy_id, other_ids = seed_users(conn)
            seconds_users = time.monotonic() - clock
            plan = plan_seed(now, heavy_id, other_ids, rng)
            clock = time.monotonic()
            phase_a_rows = chain(plan.heavy_current_month, islice(plan.others, plan.others_in_phase_a))
            phase_a = copy_transactions(conn, phase_a_rows)
            seconds_a = time.monotonic() - clock
            rollup = rollup_present(conn)
        print(f"bench: seeded {USERS:,} users and {phase_a:,} transactions (phase A) in"
              f" {seconds_users + seconds_a:.1f} s", flush=True)

        self.server = self.stack.start_server(TENANT.name, env, localstack.free_port())
        results["machine"].update(code_state())
        workers = results["server"]["workers"]
        deadline = time.monotonic() + 30
        while len(child_pids(self.server.process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # let the last worker finish importing the app
        idle = tree_pss(self.server.process.pid)
        idle["workers"] = len(idle["processes_kib"]) - 1
        print(f"bench: gunicorn at {self.server.url}, idle PSS {idle['total_mib']:.1f} MiB", flush=True)

        token = login(self.server.url)
        month = Scenario("analytics_month", "GET /analytics?period=current_month", "GET",
                         "/analytics?period=current_month")
        print(f"bench: analytics at {phase_a:,} tenant rows", flush=True)
        small = self.measure(month, token, args.scale_duration, connections=1)
        small_8 = self.measure(month, token, args.scale_duration)
        answer_small = json.loads(http("GET", self.server.url + month.path, token=token)[1])

        clock = time.monotonic()
        with cluster.connect(TENANT.name) as conn:
            phase_b = copy_transactions(conn, chain(plan.heavy_older, plan.others))
            seconds_b = time.monotonic() - clock
            deep_cursor = deep_page_cursor(conn, heavy_id)
            deep_first_id = row_id_at(conn, heavy_id, DEEP_PAGE_AFTER + 1)
            month_rows = heavy_month_rows(conn, heavy_id, now)
        total_rows = phase_a + phase_b
        results["seed"] = {
            "users": USERS, "transactions": total_rows, "heavy_user_transactions": HEAVY_ROWS,
            "heavy_current_month_rows": len(plan.heavy_current_month), "rollup_trigger": rollup,
            "seconds_users": round(seconds_users, 1), "seconds_phase_a": round(seconds_a, 1),
            "seconds_phase_b": round(seconds_b, 1), "seconds_total": round(seconds_users + seconds_a + seconds_b, 1),
        }
        print(f"bench: seeded {phase_b:,} more transactions (phase B) in {seconds_b:.1f} s", flush=True)
        if cluster.archive:
            results["archive"] = {"backup": full_backup(cluster)}
        if month_rows != len(plan.heavy_current_month):
            raise RuntimeError(f"the heavy user's current month changed between phases: {month_rows} rows")

        deep_path = f"/transactions?limit={PAGE_LIMIT}&cursor={deep_cursor}"
        status, body = http("GET", self.server.url + deep_path, token=token)
        if status != 200 or json.loads(body)["items"][0]["id"] != deep_first_id:
            raise RuntimeError(f"the deep page does not start at row {DEEP_PAGE_AFTER + 1:,}: {status} {body[:200]!r}")
        print(f"bench: analytics at {total_rows:,} tenant rows", flush=True)
        large = self.measure(month, token, args.scale_duration, connections=1)
        large_8 = self.measure(month, token, args.scale_duration)
        answer_large = json.loads(http("GET", self.server.url + month.path, token=token)[1])
        results["scale"] = {
            "tenant_rows_small": phase_a, "tenant_rows_large": total_rows,
            "heavy_current_month_rows": len(plan.heavy_current_month),
            # One connection: the request's own cost, whichever worker serves it. With 8, which
            # worker holds how many keep-alive connections moves p50 as much as the data does.
            "p50_ms_10k": small["latency_ms"]["p50"], "p50_ms_1m": large["latency_ms"]["p50"],
            "p50_ratio": round(large["latency_ms"]["p50"] / small["latency_ms"]["p50"], 3),
            "connections_8": {
                "p50_ms_10k": small_8["latency_ms"]["p50"], "p50_ms_1m": large_8["latency_ms"]["p50"],
                "p50_ratio": round(large_8["latency_ms"]["p50"] / small_8["latency_ms"]["p50"], 3),
                "connections_per_worker": [small_8["connections_per_worker"], large_8["connections_per_worker"]],
            },
            "same_answer": answer_small == answer_large,
            "runs": {"small": small, "large": large, "small_8": small_8, "large_8": large_8},
        }
        if answer_small != answer_large:
            print("  warning: the current month's analytics differ between the two phases", file=sys.stderr)

        # Reads first, on exactly the seeded data; the writes (which add rows to the heavy user's
        # current month) and the KDF-bound login last.
        expense = {"type": "expense", "amount": "12.34", "description": "Coffee", "category": "dining"}
        run_order = (
            Scenario("health", "GET /health", "GET", "/health", authenticated=False),
            month,
            Scenario("analytics_year", "GET /analytics?period=last_year&group_by=month", "GET",
                     "/analytics?period=last_year&group_by=month"),
            Scenario("list_first", "GET /transactions?limit=50 (first page)", "GET",
                     f"/transactions?limit={PAGE_LIMIT}"),
            Scenario("list_deep", "GET /transactions?limit=50 (after 90,000 rows)", "GET", deep_path),
            # Read from the monthly totals (a row per month, type and category), not the 100,000 rows.
            Scenario("categories", "GET /categories", "GET", "/categories"),
            Scenario("create", "POST /transactions", "POST", "/transactions", bodies=(expense,)),
            # Several users in turn: parallel logins of one username count as attempts in flight
            # and would trip its lockout (429), which is not what this scenario measures.
            Scenario("login", "POST /login", "POST", "/login", authenticated=False, bodies=tuple(
                {"username": other_username(n), "password": PASSWORD} for n in range(1, LOGIN_USERS + 1)
            )),
        )
        print(f"bench: {len(run_order)} scenarios, {args.warmup} s warm-up + {args.duration} s each,"
              f" {args.connections} connections, {args.threads} wrk threads", flush=True)
        scenarios = {}
        for scenario in run_order:
            sampler = ArchiveSampler(cluster) if cluster.archive and scenario.key == "create" else None
            scenarios[scenario.key] = self.measure(scenario, token, args.duration)
            if sampler:
                results["archive"]["writes"] = sampler.finish(scenarios[scenario.key])
        health = scenarios["health"]["requests_per_s"]
        for entry in scenarios.values():
            entry["ratio_to_health"] = round(entry["requests_per_s"] / health, 4) if health else 0.0
        results["scenarios"] = scenarios
        results["deep_page"] = {"after_rows": DEEP_PAGE_AFTER, "cursor": deep_cursor}

        time.sleep(AFTER_RUN_SETTLE_SECONDS)  # requests still in flight when wrk stopped finish first
        after = tree_pss(self.server.process.pid)
        after["workers"] = len(after["processes_kib"]) - 1
        results["memory"] = {"idle": idle, "after": after}
        if cluster.archive:
            self.server.stop()
            results["archive"]["restore"] = timed_restore(cluster)
        results["targets"] = evaluate(results)
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["seconds_total"] = round(time.monotonic() - started, 1)
        return results

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.stack.cluster.stop("fast")
        if not self.args.keep:
            shutil.rmtree(self.stack.cluster.directory, ignore_errors=True)
            if self.stack.cluster.archive:
                shutil.rmtree(self.stack.cluster.archive.directory, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the warm-up before each run (default 2)")
    parser.add_argument("--scale-duration", type=int, default=5,
                        help="seconds of each analytics run of the 10,000 vs 1,000,000 rows comparison (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--profile", action="store_true",
                        help="sample the workers with py-spy during each measured run (lowers the figures;"
                        " needs `.venv/bin/pip install py-spy`)")
    parser.add_argument("--archive", action="store_true",
                        help="archive with pgBackRest and report backup, archive lag, WAL per write and restore time")
    parser.add_argument("--keep", action="store_true", help="keep the (stopped) PostgreSQL cluster's data afterwards")
    sub = parser.add_subparsers(dest="command")
    comparison = sub.add_parser("compare", help="set two results-*.json files side by side")
    comparison.add_argument("old", type=Path)
    comparison.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.command != "compare":
        if min(args.duration, args.scale_duration, args.connections, args.threads) < 1 or args.warmup < 0:
            parser.error("durations, connections and threads must be positive")
        if args.threads > args.connections:
            parser.error("--threads must not exceed --connections")
    return args


def _terminated(*_) -> None:
    print("bench: terminated; stopping what it started", file=sys.stderr)
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "compare":
        print(compare(args.old, args.new))
        return 0
    wrk = ensure_wrk()
    if args.profile and not PY_SPY.exists():
        sys.exit("bench: --profile needs py-spy in the venv: .venv/bin/pip install py-spy")
    # A plain `kill` stops the run as Ctrl-C does: through the finally below.
    signal.signal(signal.SIGTERM, _terminated)
    # Ctrl-C stops the run even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bench = Bench(args, wrk)
    try:
        results = bench.run()
    except KeyboardInterrupt:
        print("bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        bench.stop()
    path = STATE / f"results-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    if args.profile:
        print("(profiled with py-spy: every figure is lower than without --profile)")
    print(describe_machine(results))
    print()
    print(format_table(results))
    print()
    print(f"bench: figures in {path.relative_to(ROOT)}; whole run {results['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
