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
# The key id of JWT_SECRET unless JWT_KEY_ID names another; a token without a `kid` header (one
# issued before key ids existed) is taken to be signed by the key of this id.
DEFAULT_JWT_KEY_ID = "1"
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The most requests a rate limit may allow per window (0 turns a limit off).
MAX_RATE_LIMIT = 1_000_000
# A browser origin exactly as the Origin header carries it: scheme, lowercase host, optional port.
ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::(?P<port>[1-9][0-9]{0,4}))?"
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# The most proxies in front of the app whose X-Forwarded-For entries may be trusted.
MAX_TRUSTED_PROXY_HOPS = 5


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
class RateLimits:
    """Requests each client address and each account may make per window; 0 turns a limit off.

    The defaults are far above what a person (or a whole office behind one address) does, and
    above what the test suite and the Postman run do: they stop floods, not users.
    """

    window_seconds: int = 3600
    login_per_client: int = 3000
    login_per_account: int = 100
    register_per_client: int = 1000
    register_per_account: int = 20
    import_per_client: int = 1000
    import_per_account: int = 100

    def limit(self, action: str, scope: str) -> int:
        """The limit of an action ('login', 'register', 'import') per scope ('client', 'account')."""
        return getattr(self, f"{action}_per_{scope}")


@dataclass(frozen=True)
class Settings:
    tenant_id: str
    database_url: Secret
    jwt_secret: Secret
    token_ttl_seconds: int = 3600
    # The kid of jwt_secret (the signing key), and (kid, key) pairs accepted only to verify.
    jwt_key_id: str = DEFAULT_JWT_KEY_ID
    jwt_previous_keys: tuple[tuple[str, Secret], ...] = ()
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
    rate_limits: RateLimits = RateLimits()
    # Proxies in front of the app (ingress-nginx: 1) whose X-Forwarded-For entries name the client;
    # 0 takes the TCP peer's address and ignores the header.
    trusted_proxy_hops: int = 0
    # Browser origins allowed to call the API cross-origin (CORS); empty: CORS is off.
    cors_allowed_origins: frozenset[str] = frozenset()

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

        def rate(name: str, default: int) -> int:
            return integer(name, default, 0, MAX_RATE_LIMIT)

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

        jwt_key_id = env.get("JWT_KEY_ID", "").strip() or DEFAULT_JWT_KEY_ID
        if not KEY_ID.fullmatch(jwt_key_id):
            problems.append("JWT_KEY_ID must be 1 to 64 letters, digits, '.', '_' or '-'")
        previous_keys = _previous_keys(env.get("JWT_PREVIOUS_KEYS", ""), jwt_key_id, development, problems)

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
            jwt_key_id=jwt_key_id,
            jwt_previous_keys=previous_keys,
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
            rate_limits=RateLimits(
                window_seconds=integer("RATE_LIMIT_WINDOW_SECONDS", RateLimits.window_seconds, 1, 86_400),
                login_per_client=rate("RATE_LIMIT_LOGIN_PER_CLIENT", RateLimits.login_per_client),
                login_per_account=rate("RATE_LIMIT_LOGIN_PER_ACCOUNT", RateLimits.login_per_account),
                register_per_client=rate("RATE_LIMIT_REGISTER_PER_CLIENT", RateLimits.register_per_client),
                register_per_account=rate("RATE_LIMIT_REGISTER_PER_ACCOUNT", RateLimits.register_per_account),
                import_per_client=rate("RATE_LIMIT_IMPORT_PER_CLIENT", RateLimits.import_per_client),
                import_per_account=rate("RATE_LIMIT_IMPORT_PER_ACCOUNT", RateLimits.import_per_account),
            ),
            trusted_proxy_hops=integer("TRUSTED_PROXY_HOPS", 0, 0, MAX_TRUSTED_PROXY_HOPS),
            cors_allowed_origins=_allowed_origins(env.get("CORS_ALLOWED_ORIGINS", ""), problems),
        )
        if problems:
            # One line, so it reads whole in a container's or a process manager's log.
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return settings


def _previous_keys(
    raw: str, current_kid: str, development: bool, problems: list[str]
) -> tuple[tuple[str, Secret], ...]:
    """Parse JWT_PREVIOUS_KEYS, `kid=secret` pairs separated by commas.

    Problems name an entry by its position only: a mistyped entry may hold a secret anywhere.
    """
    keys: list[tuple[str, Secret]] = []
    for position, entry in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not entry:
            continue
        kid, sep, secret = (part.strip() for part in entry.partition("="))
        name = f"JWT_PREVIOUS_KEYS entry {position}"
        if not sep or not KEY_ID.fullmatch(kid):
            problems.append(f"{name} must be kid=secret, the kid 1 to 64 letters, digits, '.', '_' or '-'")
            continue
        if kid == current_kid or any(kid == seen for seen, _ in keys):
            problems.append(f"{name} repeats the key id of JWT_KEY_ID or of an earlier entry")
            continue
        secret_problem = None if development and secret else _secret_problem(secret)
        if secret_problem:
            problems.append(f"{name}: the secret {secret_problem.split(' (')[0]}")
            continue
        keys.append((kid, Secret(secret)))
    return tuple(keys)


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


def _allowed_origins(raw: str, problems: list[str]) -> frozenset[str]:
    """Parse CORS_ALLOWED_ORIGINS: exact origins separated by commas, compared byte for byte with
    the Origin header, so each must be written as browsers send it."""
    origins = set()
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        match = ORIGIN.fullmatch(entry)
        port = int(match["port"]) if match and match["port"] else None
        if match is None or (port is not None and (port > 65535 or port == DEFAULT_PORTS[match["scheme"]])):
            problems.append(
                "CORS_ALLOWED_ORIGINS entries must be origins as browsers send them: http(s)://host[:port],"
                f" lowercase, without a path, a trailing slash, a default port or a wildcard, got {entry!r}"
            )
            continue
        origins.add(entry)
    return frozenset(origins)
