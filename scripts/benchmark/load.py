"""wrk: installing it, the Lua script of a scenario, a run, and its report's figures."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import localstack

from benchmark.scenarios import Scenario

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
