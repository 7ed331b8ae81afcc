"""Command line of the service: `python -m service migrate | check-config | run-scheduled [--every SECONDS]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import psycopg
from psycopg.rows import dict_row

from . import logs
from .config import ConfigError, MigrationSettings, Settings
from .core import recurring
from .migrate import migrate

log = logging.getLogger("service.scheduler")
# A scheduler's statement waits at most this long for a lock, and runs at most this long: a rule
# whose writes meet either is left for the next run (core.recurring.run_due), so that one long lock
# elsewhere never stalls the scheduler.
SCHEDULER_LIMITS = "-c lock_timeout=5s -c statement_timeout=60s"


def check_config() -> None:
    """Validate the environment as the server does at start, and exit."""
    Settings.from_env()
    print("configuration ok")


def apply_migrations() -> None:
    """Apply pending SQL migrations to DATABASE_URL; key daily totals by TENANT_TIMEZONE."""
    settings = MigrationSettings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    applied = migrate(settings.database_url.reveal(), settings.timezone.key)
    print(f"migrations applied: {', '.join(applied) if applied else 'none, schema is current'}")


def run_scheduled(every: float | None = None) -> None:
    """Make every due occurrence of the recurring transactions into transactions, and exit; with
    --every SECONDS, again every SECONDS until SIGTERM or SIGINT. Safe to run concurrently."""
    settings = MigrationSettings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.is_set():
        try:
            with psycopg.connect(
                settings.database_url.reveal(), autocommit=True, row_factory=dict_row, options=SCHEDULER_LIMITS
            ) as conn:
                made = recurring.run_due(conn, timezone=settings.timezone)
            log.info("scheduled run done", extra={"transactions_made": made})
        except psycopg.OperationalError:
            log.exception("scheduled run failed: the database is unreachable")
            if every is None:
                sys.exit(1)
        if every is None or stopping.wait(every):
            return


COMMANDS = {"migrate": apply_migrations, "check-config": check_config, "run-scheduled": run_scheduled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.__doc__)
    commands.choices["run-scheduled"].add_argument(
        "--every", type=float, metavar="SECONDS", help="run again every SECONDS until stopped"
    )
    args = parser.parse_args(argv)
    options = {"every": args.every} if args.command == "run-scheduled" else {}
    try:
        COMMANDS[args.command](**options)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
