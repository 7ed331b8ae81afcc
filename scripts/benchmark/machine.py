"""What a run ran on: the machine, the code gunicorn loaded, gunicorn's resolved settings."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path

import localstack

from benchmark import ROOT

MIB = 1024 * 1024


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
