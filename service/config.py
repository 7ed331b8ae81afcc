"""Typed settings of one tenant's service, read once from the environment and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .currencies import ISO_4217

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_BYTES = 32
# Words that mark a secret copied from an example file rather than generated.
PLACEHOLDER_MARKERS = ("change", "placeholder", "example", "secret", "replace")
DEVELOPMENT_JWT_SECRET = "development-only-signing-key-never-use-in-production!"  # noqa: S105 - used only with APP_ENV=development


class ConfigError(Exception):
    """The environment does not describe a runnable service."""


class Secret:
    """A string that never shows its value in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    tenant_id: str
    database_url: Secret
    jwt_secret: Secret
    token_ttl_seconds: int = 3600
    currency: str = "USD"
    timezone: ZoneInfo = ZoneInfo("UTC")
    log_level: str = "INFO"
    development: bool = False
    db_pool_size: int = 1
    db_pool_timeout: float = 5.0
    db_statement_timeout_ms: int = 10_000
    login_max_failures: int = 5
    login_failure_window_seconds: int = 900
    login_lockout_seconds: int = 900

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; raise ConfigError listing every problem."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name} must be a whole number, got {raw!r}")
                return default
            if not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, got {value}")
            return value

        development = env.get("APP_ENV", "production").strip().lower() == "development"

        tenant_id = env.get("TENANT_ID", "").strip()
        if not DNS_LABEL.match(tenant_id):
            problems.append(
                "TENANT_ID must be a DNS label (lowercase letters, digits and '-', "
                f"at most 63 characters), got {tenant_id!r}"
            )

        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url.startswith(("postgresql://", "postgres://")):
            problems.append("DATABASE_URL must be a postgresql:// connection URL")

        jwt_secret = env.get("JWT_SECRET", "")
        secret_problem = _secret_problem(jwt_secret)
        if secret_problem and development:
            # Development mode accepts any key, and a fixed one when none is given.
            jwt_secret, secret_problem = jwt_secret or DEVELOPMENT_JWT_SECRET, None
        if secret_problem:
            problems.append(f"JWT_SECRET {secret_problem}")

        currency = env.get("TENANT_CURRENCY", "USD").strip().upper()
        if currency not in ISO_4217:
            problems.append(f"TENANT_CURRENCY must be an ISO 4217 code such as USD, got {currency!r}")

        tz_name = env.get("TENANT_TIMEZONE", "UTC").strip()
        timezone = ZoneInfo("UTC")
        if tz_name not in available_timezones():
            problems.append(f"TENANT_TIMEZONE must be an IANA time zone such as Europe/Paris, got {tz_name!r}")
        else:
            try:
                timezone = ZoneInfo(tz_name)
            except ZoneInfoNotFoundError:  # pragma: no cover - listed but unreadable
                problems.append(f"TENANT_TIMEZONE {tz_name!r} cannot be loaded")

        log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
        if log_level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")

        settings = cls(
            tenant_id=tenant_id,
            database_url=Secret(database_url),
            jwt_secret=Secret(jwt_secret),
            token_ttl_seconds=integer("JWT_TTL_SECONDS", 3600, 60, 86_400),
            currency=currency,
            timezone=timezone,
            log_level=log_level,
            development=development,
            # A worker serves one request per thread, and a request holds at most one connection.
            db_pool_size=integer("DB_POOL_SIZE", integer("GUNICORN_THREADS", 1, 1, 100), 1, 100),
            db_pool_timeout=integer("DB_POOL_TIMEOUT_MS", 5000, 100, 25_000) / 1000,
            db_statement_timeout_ms=integer("DB_STATEMENT_TIMEOUT_MS", 10_000, 100, 25_000),
            login_max_failures=integer("LOGIN_MAX_FAILURES", 5, 1, 1000),
            login_failure_window_seconds=integer("LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, 86_400),
            login_lockout_seconds=integer("LOGIN_LOCKOUT_SECONDS", 900, 1, 86_400),
        )
        if problems:
            # One line, so it reads whole in a container's or a process manager's log.
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return settings


def _secret_problem(value: str) -> str | None:
    """Say why a signing secret is unfit for production, or None if it is fine."""
    if not value:
        return "is missing (set APP_ENV=development to run with a development key)"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"must be at least {MIN_SECRET_BYTES} bytes long"
    lowered = value.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS) or len(set(value)) < 8:
        return "looks like a placeholder (generate one, e.g. `openssl rand -base64 48`)"
    return None
