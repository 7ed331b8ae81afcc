"""--profile: py-spy samples every gunicorn process during each measured run; where the time went."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmark import ROOT

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"  # only for --profile, not a dependency

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


def start_profiler(directory: Path, pid: int, key: str, seconds: int) -> subprocess.Popen:
    """py-spy sampling the process tree of `pid` (without pausing it) for one measured run."""
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", "250", "--duration", str(seconds), "--format", "raw",
        "--output", str(directory / f"{key}.txt"),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_profiler(directory: Path, profiler: subprocess.Popen, key: str) -> dict | None:
    """The summary of the profile py-spy wrote (None when it wrote none)."""
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
    path = directory / f"{key}.txt"
    if not path.exists():
        print(f"  warning: py-spy wrote no profile of {key}", file=sys.stderr)
        return None
    summary = summarize_profile(path.read_text())
    summary["file"] = str(path.relative_to(ROOT))
    return summary
