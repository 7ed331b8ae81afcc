"""Command line of the service: `python -m service migrate | check-config | run-scheduled [--every SECONDS] |
deliver-webhooks [--every SECONDS | --once]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from . import logs
from .config import ConfigError, DispatcherSettings, MigrationSettings, Settings
from .core import dispatcher, recurring
from .db import Connection
from .migrate import migrate

log = logging.getLogger("service.scheduler")
# A background command's statement waits at most this long for a lock, and runs at most this long:
# the scheduler leaves a rule whose writes meet either for its next run (core.recurring.run_due), the
# dispatcher a delivery to its lease, so that one long lock elsewhere never stalls either. (The
# dispatcher's statements are short: a claim, an outcome, a purge batch.)
BACKGROUND_LIMITS = "-c lock_timeout=5s -c statement_timeout=60s"
# Seconds between two looks for due deliveries when nothing is due.
DISPATCHER_EVERY = 1.0


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


def _stopping_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: a background command finishes its turn and stops."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


def _background_connection(database_url: str) -> Connection:
    """An autocommit connection with the background commands' statement bounds."""
    return psycopg.Connection.connect(
        database_url, autocommit=True, row_factory=dict_row, options=BACKGROUND_LIMITS, connect_timeout=10
    )


def run_scheduled(every: float | None = None) -> None:
    """Make every due occurrence of the recurring transactions into transactions, and exit; with
    --every SECONDS, again every SECONDS until SIGTERM or SIGINT. Safe to run concurrently."""
    settings = MigrationSettings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    stopping = _stopping_on_signals()
    while not stopping.is_set():
        try:
            with _background_connection(settings.database_url.reveal()) as conn:
                made = recurring.run_due(conn, timezone=settings.timezone)
            log.info("scheduled run done", extra={"transactions_made": made})
        except psycopg.OperationalError:
            log.exception("scheduled run failed: the database is unreachable")
            if every is None:
                sys.exit(1)
        if every is None or stopping.wait(every):
            return


def deliver_webhooks(every: float | None = DISPATCHER_EVERY, heartbeat: str | None = None) -> None:
    """Send the webhook deliveries that are due, looking again every SECONDS (1) until SIGTERM or
    SIGINT; with --once, send what is due and exit. Safe to run concurrently (row locks). With
    --heartbeat FILE, touch FILE at every turn of the loop (Kubernetes' probes read its age)."""
    settings = DispatcherSettings.from_env()
    logs.configure(settings.tenant_id, settings.log_level)
    stopping = _stopping_on_signals()

    def connect() -> Connection:
        return _background_connection(settings.database_url.reveal())

    def touch() -> None:
        assert heartbeat is not None
        try:
            Path(heartbeat).touch()
        except OSError:
            dispatcher.log.warning("webhook dispatcher: cannot touch its heartbeat file %s", heartbeat)

    sender = dispatcher.Dispatcher(
        connect, currency=settings.currency, allow_loopback=settings.webhooks_allow_loopback,
        heartbeat=touch if heartbeat else None,
    )
    dispatcher.log.info("webhook dispatcher started", extra={"every_seconds": every})
    attempts = sender.run(stopping=stopping, every=every)
    dispatcher.log.info("webhook dispatcher stopped", extra={"attempts": attempts})
    if every is None and sender.unreachable:
        sys.exit(1)


COMMANDS = {
    "migrate": apply_migrations, "check-config": check_config, "run-scheduled": run_scheduled,
    "deliver-webhooks": deliver_webhooks,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.__doc__)
    commands.choices["run-scheduled"].add_argument(
        "--every", type=float, metavar="SECONDS", help="run again every SECONDS until stopped"
    )
    deliver = commands.choices["deliver-webhooks"].add_mutually_exclusive_group()
    deliver.add_argument(
        "--every", type=float, metavar="SECONDS", default=DISPATCHER_EVERY,
        help=f"look for due deliveries every SECONDS when none is due (default {DISPATCHER_EVERY:g})",
    )
    deliver.add_argument("--once", action="store_true", help="send what is due now, and exit")
    commands.choices["deliver-webhooks"].add_argument(
        "--heartbeat", metavar="FILE", help="touch FILE at every turn of the loop, for a liveness probe"
    )
    args = parser.parse_args(argv)
    options = {}
    if args.command == "run-scheduled":
        options = {"every": args.every}
    elif args.command == "deliver-webhooks":
        if args.every is not None and args.every <= 0:
            parser.error("--every must be more than 0 seconds")
        options = {"every": None if args.once else args.every, "heartbeat": args.heartbeat}
    try:
        COMMANDS[args.command](**options)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
