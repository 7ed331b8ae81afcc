"""Apply the plain-SQL migrations in service/migrations, once each, under an advisory lock."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed number: every replica that starts at once waits on the same lock.
ADVISORY_LOCK_ID = 7_301_914_263


def available() -> list[tuple[str, str]]:
    """Return (version, sql) for every migration file, in the order they apply."""
    return [(path.stem, path.read_text()) for path in sorted(MIGRATIONS_DIR.glob("*.sql"))]


KNOWN_VERSIONS = [version for version, _ in available()]


def applied(conn: psycopg.Connection) -> list[str]:
    """Return the versions applied to this database, in order: during a rolling upgrade, an older
    app sees versions it does not know (migrations are expand-only: docs/architecture.md)."""
    cur = conn.cursor(row_factory=tuple_row)
    (table,) = cur.execute("SELECT to_regclass('schema_migrations')").fetchone() or (None,)
    if table is None:
        return []
    return [version for (version,) in cur.execute("SELECT version FROM schema_migrations ORDER BY version")]


def pending(conn: psycopg.Connection) -> list[str]:
    """Return the versions not yet applied to this database."""
    done = set(applied(conn))
    return [version for version in KNOWN_VERSIONS if version not in done]


def rollup_timezone(conn: psycopg.Connection) -> str | None:
    """The time zone the daily totals are keyed by (None before the migration that adds them)."""
    cur = conn.cursor(row_factory=tuple_row)
    (table,) = cur.execute("SELECT to_regclass('rollup_settings')").fetchone() or (None,)
    if table is None:
        return None
    (timezone,) = cur.execute("SELECT timezone FROM rollup_settings").fetchone() or (None,)
    return timezone


def migrate(database_url: str, timezone: str = "UTC") -> list[str]:
    """Apply every pending migration, each in its own transaction, and key the daily totals by
    the tenant's time zone (rebuilding them if it changed); return what was done."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            todo = set(pending(conn))
            for version, sql in available():
                if version not in todo:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration", extra={"version": version})
                applied.append(version)
            if rollup_timezone(conn) != timezone:
                with conn.transaction():
                    conn.execute("UPDATE rollup_settings SET timezone = %s", (timezone,))
                    conn.execute("SELECT refresh_totals()")
                log.info("daily totals re-keyed", extra={"timezone": timezone})
                applied.append(f"daily totals in {timezone}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return applied
