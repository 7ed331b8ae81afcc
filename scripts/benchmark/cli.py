"""Benchmark one tenant's real stack (gunicorn with the production config + PostgreSQL) with wrk.

    scripts/bench [--duration 10] [--warmup 2] [--scale-duration 5] [--connections 8] [--threads 2]
                  [--profile] [--keep] [--archive] [--postgres-setting NAME=VALUE ...]
    scripts/bench compare OLD.json NEW.json

A run starts a private PostgreSQL cluster under .local/bench/, creates the tenant `bench` (UTC,
USD), seeds it with COPY (1,000 users, 1,000,000 transactions, one heavy user holding 100,000;
each user with 20 budgets and 7 recurring rules), starts gunicorn with service/gunicorn.conf.py
and drives every scenario with wrk, one after the other, on 127.0.0.1. It prints a Markdown
table with the targets of issues 5, 13 and 14 and writes every figure to
.local/bench/results-<UTC time>.json; `compare` sets two such files side by side.
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
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmark import ROOT, STATE
from benchmark.load import ensure_wrk
from benchmark.profiling import PY_SPY
from benchmark.report import compare, describe_machine, format_table
from benchmark.run import Bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the warm-up before each run (default 2)")
    parser.add_argument("--scale-duration", type=int, default=5,
                        help="seconds of each run (analytics, accounts, budgets) of the 10,000 vs 1,000,000 rows"
                        " comparison"
                        " (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--profile", action="store_true",
                        help="sample the workers with py-spy during each measured run (lowers the figures;"
                        " needs `.venv/bin/pip install py-spy`)")
    parser.add_argument("--archive", action="store_true",
                        help="archive with pgBackRest and report backup, archive lag, WAL per write and restore time")
    parser.add_argument("--keep", action="store_true", help="keep the (stopped) PostgreSQL cluster's data afterwards")
    parser.add_argument("--postgres-setting", action="append", default=[], metavar="NAME=VALUE",
                        type=_postgres_setting,
                        help="set a PostgreSQL parameter on the bench's cluster before the seed (ALTER SYSTEM and"
                        " a restart; refused for what its command line sets), e.g. commit_delay=100; repeatable")
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


def _postgres_setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not value or not re.fullmatch(r"[a-z_]+", name):
        raise argparse.ArgumentTypeError(f"not NAME=VALUE with a parameter's name: {text!r}")
    return name, value


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
