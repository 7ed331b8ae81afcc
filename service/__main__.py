"""Command line of the service: `python -m service migrate | check-config`."""

from __future__ import annotations

import argparse
import os
import sys
from zoneinfo import available_timezones

from . import logs
from .config import ConfigError, Settings
from .migrate import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "migrate", help="apply pending SQL migrations to DATABASE_URL; key daily totals by TENANT_TIMEZONE"
    )
    commands.add_parser("check-config", help="validate the environment and exit")
    args = parser.parse_args(argv)

    if args.command == "check-config":
        try:
            Settings.from_env()
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("configuration ok")
        return 0

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 1
    timezone = os.environ.get("TENANT_TIMEZONE", "UTC").strip()
    if timezone not in available_timezones():
        print(f"TENANT_TIMEZONE must be an IANA time zone, got {timezone!r}", file=sys.stderr)
        return 1
    logs.configure(os.environ.get("TENANT_ID", ""), os.environ.get("LOG_LEVEL", "INFO").upper())
    applied = migrate(database_url, timezone)
    print(f"migrations applied: {', '.join(applied) if applied else 'none, schema is current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
