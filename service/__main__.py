"""Command line of the service: `python -m service migrate | check-config`."""

from __future__ import annotations

import argparse
import sys

from . import logs
from .config import ConfigError, MigrationSettings, Settings
from .migrate import migrate


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


COMMANDS = {"migrate": apply_migrations, "check-config": check_config}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.__doc__)
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command]()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
