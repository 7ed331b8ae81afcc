"""Typed settings of one tenant's service, read once from the environment and validated.

Each field of `Settings` names the environment variable it is read from and the marshmallow field
and validators that parse it; environs reads them all, and every problem is reported at once, on
one line, without ever showing a secret.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from environs import Env, EnvValidationError
from marshmallow import ValidationError, fields, missing, validate

from .currencies import ISO_4217
from .metrics import DEFAULT_METRICS_PORT

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_BYTES = 32
# Words that mark a secret copied from an example file rather than generated.
PLACEHOLDER_MARKERS = ("change", "placeholder", "example", "secret", "replace")
DEVELOPMENT_JWT_SECRET = "development-only-signing-key-never-use-in-production!"  # noqa: S105 - used only with APP_ENV=development
# The key id of JWT_SECRET unless JWT_KEY_ID names another; a token without a `kid` header (one
# issued before key ids existed) is taken to be signed by the key of this id.
DEFAULT_JWT_KEY_ID = "1"
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
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


# --- What a variable must be: each message follows the variable's name ------------------------------

IS_DNS_LABEL = validate.Regexp(
    DNS_LABEL, error="must be a DNS label (lowercase letters, digits and '-', at most 63 characters), got {input!r}"
)
# Never quotes the value: a connection URL holds a password.
IS_POSTGRESQL_URL = validate.Regexp(r"postgres(?:ql)?://", error="must be a postgresql:// connection URL")
KEY_ID_RULE = "1 to 64 letters, digits, '.', '_' or '-'"
IS_KEY_ID = validate.Regexp(KEY_ID, error=f"must be {KEY_ID_RULE}")
IS_CURRENCY = validate.OneOf(ISO_4217, error="must be an ISO 4217 code such as USD, got {input!r}")
IS_LOG_LEVEL = validate.OneOf(LOG_LEVELS, error="must be one of {choices}, got {input!r}")
IS_DIRECTORY = validate.Length(min=1, error="must name a directory, or be unset")


def _time_zone(name: str) -> ZoneInfo:
    if name not in available_timezones():
        raise ValidationError(f"must be an IANA time zone such as Europe/Paris, got {name!r}")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover - listed but unreadable
        raise ValidationError(f"{name!r} cannot be loaded") from None


def _is_development(app_env: str) -> bool:
    return app_env.lower() == "development"


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


def _entries(raw: str) -> Iterator[tuple[int, str]]:
    """The non-empty entries of a comma-separated list, with their positions (from 1)."""
    for position, entry in enumerate((part.strip() for part in raw.split(",")), start=1):
        if entry:
            yield position, entry


# --- Parsers for what environs does not know -------------------------------------------------------


class SigningKey(fields.Field[Secret]):
    """A JWT signing key, verbatim. In production it must be long and look generated; in
    development mode any key will do, and a fixed one stands in for a missing one."""

    def __init__(self, *, development: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.development = development

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Secret:
        if self.development:
            return Secret(value or DEVELOPMENT_JWT_SECRET)
        if problem := _secret_problem(value):
            raise ValidationError(problem)
        return Secret(value)


class PreviousKeys(fields.Field[tuple[tuple[str, Secret], ...]]):
    """`kid=secret` pairs separated by commas: keys accepted only to verify tokens. A problem names
    an entry by its position only: a mistyped entry may hold a secret anywhere."""

    def __init__(self, *, development: bool = False, jwt_key_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.development = development
        self.jwt_key_id = jwt_key_id

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> tuple[tuple[str, Secret], ...]:
        keys: list[tuple[str, Secret]] = []
        problems = []
        for position, entry in _entries(value):
            kid, sep, secret = (part.strip() for part in entry.partition("="))
            # Development mode accepts a weak key, never an empty one.
            secret_problem = None if self.development and secret else _secret_problem(secret)
            if not sep or not KEY_ID.match(kid):
                problems.append(f"entry {position} must be kid=secret, the kid {KEY_ID_RULE}")
            elif kid == self.jwt_key_id or any(kid == seen for seen, _ in keys):
                problems.append(f"entry {position} repeats the key id of JWT_KEY_ID or of an earlier entry")
            elif secret_problem:
                problems.append(f"entry {position}: the secret {secret_problem.split(' (')[0]}")
            else:
                keys.append((kid, Secret(secret)))
        if problems:
            raise ValidationError(problems)
        return tuple(keys)


class Origins(fields.Field[frozenset[str]]):
    """Exact browser origins separated by commas, compared byte for byte with the Origin header,
    so each must be written as browsers send it."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> frozenset[str]:
        origins = [entry for _, entry in _entries(value)]
        wrong = [origin for origin in origins if not self._is_origin(origin)]
        if wrong:
            raise ValidationError([
                "entries must be origins as browsers send them: http(s)://host[:port], lowercase, without a path,"
                f" a trailing slash, a default port or a wildcard, got {entry!r}"
                for entry in wrong
            ])
        return frozenset(origins)

    @staticmethod
    def _is_origin(entry: str) -> bool:
        match = ORIGIN.fullmatch(entry)
        port = int(match["port"]) if match and match["port"] else None
        return match is not None and (port is None or (port <= 65535 and port != DEFAULT_PORTS[match["scheme"]]))


PARSERS: dict[str, type[fields.Field]] = {
    "signing_key": SigningKey,
    "previous_keys": PreviousKeys,
    "origins": Origins,
}


# --- Reading ------------------------------------------------------------------------------------------

_SOURCE = "source"  # the metadata key of a settings field: where its value comes from


@dataclass(frozen=True)
class Variable:
    """An environment variable and how it is read: by a parser of `Environment` (environs' `str`
    and `int`, or one of PARSERS), given `options`, the arguments of its marshmallow field."""

    name: str
    parser: str
    options: Mapping[str, Any]
    # Settings given to the parser as arguments; they are read first.
    needs: tuple[str, ...] = ()
    # An empty value counts as unset (the default applies) instead of being checked.
    blank_is_unset: bool = False
    # A variable read in its place, by the same rules, when it is unset.
    fallback: str | None = None

    def read(self, env: Environment, *, required: bool, **needed: Any) -> Any:
        fallback = env.parse(self.fallback, self, required=False) if self.fallback else missing
        value = env.parse(self.name, self, required=required, **needed)
        return fallback if value is missing else value


@dataclass(frozen=True)
class Group:
    """Settings kept in a dataclass of their own, each field with its own variable."""

    kind: type
    needs: tuple[str, ...] = ()

    def read(self, env: Environment, *, required: bool) -> Any:
        return self.kind(**env.read(self.kind))


class Environment(Env):
    """environs' reader over one mapping of variables (os.environ unless given), never eager: every
    variable is read, and `check` then names every problem at once."""

    def __init__(self, variables: Mapping[str, str] | None = None) -> None:
        super().__init__(eager=False)
        self._variables = os.environ if variables is None else variables
        self._reading: dict[str, tuple[bool, bool]] = {}  # variable: (required, blank_is_unset)
        for name, field in PARSERS.items():
            self.add_parser_from_field(name, field)

    def _get_value(self, env_key: str, default: Any) -> Any:
        # environs' hook for where a value comes from (its own FileAwareEnv overrides it too).
        required, blank_is_unset = self._reading.get(env_key, (False, False))
        value = self._variables.get(env_key)
        if value is not None and not (blank_is_unset and not value.strip()):
            return value
        # Unset, a required variable reads as empty, so that its own rule says what it must be;
        # any other as marshmallow's `missing`, which its field returns as is: the default applies.
        return "" if required else missing

    def parse(self, name: str, variable: Variable, *, required: bool, **needed: Any) -> Any:
        """The value of one variable; `missing` when unset, None when invalid (a problem noted)."""
        self._reading[name] = (required, variable.blank_is_unset)
        return getattr(self, variable.parser)(name, **variable.options, **needed)

    def read(
        self, kind: type, *, only: Collection[str] | None = None, optional: Collection[str] = ()
    ) -> dict[str, Any]:
        """The settings of `kind` (a dataclass of `variable` fields) by field name: read, or their
        defaults. A field without a default is required, unless named in `optional`."""
        chosen = [field for field in dataclasses.fields(kind) if only is None or field.name in only]
        defaults = {field.name: field.default for field in chosen if field.default is not MISSING}
        values: dict[str, Any] = {}
        for field in sorted(chosen, key=lambda field: bool(field.metadata[_SOURCE].needs)):
            source = field.metadata[_SOURCE]
            needed = {name: values.get(name, defaults.get(name)) for name in source.needs}
            required = field.default is MISSING and field.name not in optional
            value = source.read(self, required=required, **needed)
            if value is not missing:
                values[field.name] = value
            elif field.name in defaults:
                values[field.name] = defaults[field.name]
        return values

    def check(self) -> None:
        """Raise ConfigError naming every problem met so far, on one line (it then reads whole in a
        container's or a process manager's log)."""
        try:
            self.seal()
        except EnvValidationError as error:
            assert isinstance(error.error_messages, Mapping)
            problems = [f"{name} {message}" for name, messages in error.error_messages.items() for message in messages]
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from None

    def load(
        self, kind: type, *, only: Collection[str] | None = None, optional: Collection[str] = ()
    ) -> dict[str, Any]:
        """`read`, then `check`."""
        values = self.read(kind, only=only, optional=optional)
        self.check()
        return values


# --- Declaring settings -------------------------------------------------------------------------------


def variable(
    name: str,
    parser: str,
    default: Any = MISSING,
    *,
    needs: tuple[str, ...] = (),
    blank_is_unset: bool = False,
    fallback: str | None = None,
    **options: Any,
) -> Any:
    """A settings field read from the variable `name` by `parser`; `options` are the marshmallow
    field's arguments (validate, pre_load, post_load, ...). Without a default the variable is required."""
    source = Variable(name, parser, options, needs, blank_is_unset, fallback)
    return dataclasses.field(default=default, metadata={_SOURCE: source})


def text(
    name: str,
    default: Any = MISSING,
    *,
    rule: validate.Validator | None = None,
    upper: bool = False,
    then: Callable[[str], Any] | None = None,
    blank_is_unset: bool = False,
) -> Any:
    """A text variable without the spaces around it (in capitals if `upper`), checked by `rule`,
    then made into its setting by `then`."""
    pre_load = [str.strip, str.upper] if upper else [str.strip]
    return variable(
        name, "str", default, blank_is_unset=blank_is_unset, pre_load=pre_load, validate=rule, post_load=then
    )


def whole(
    name: str,
    default: Any,
    low: int,
    high: int,
    *,
    error: str | None = None,
    then: Callable[[int], Any] | None = None,
    fallback: str | None = None,
) -> Any:
    """A whole-number variable from `low` to `high`, made into its setting by `then`; empty or
    unset, the default."""
    return variable(
        name, "int", default, blank_is_unset=True, fallback=fallback, pre_load=str.strip, post_load=then,
        error_messages={"invalid": error or "must be a whole number, got {input!r}"},
        validate=validate.Range(low, high, error=error or f"must be between {low} and {high}, got {{input}}"),
    )


def rate(name: str, default: int) -> Any:
    """A rate limit: requests per window, from 0 (the limit is off) to MAX_RATE_LIMIT."""
    return whole(name, default, 0, MAX_RATE_LIMIT)


def group(kind: type) -> Any:
    """A settings field holding settings of their own dataclass (defaults and all)."""
    return dataclasses.field(default=kind(), metadata={_SOURCE: Group(kind)})


# --- The settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """Requests each client address and each account may make per window; 0 turns a limit off.

    The defaults are far above what a person (or a whole office behind one address) does, and
    above what the test suite and the Postman run do: they stop floods, not users.
    """

    window_seconds: int = whole("RATE_LIMIT_WINDOW_SECONDS", 3600, 1, 86_400)
    login_per_client: int = rate("RATE_LIMIT_LOGIN_PER_CLIENT", 3000)
    login_per_account: int = rate("RATE_LIMIT_LOGIN_PER_ACCOUNT", 100)
    register_per_client: int = rate("RATE_LIMIT_REGISTER_PER_CLIENT", 1000)
    register_per_account: int = rate("RATE_LIMIT_REGISTER_PER_ACCOUNT", 20)
    import_per_client: int = rate("RATE_LIMIT_IMPORT_PER_CLIENT", 1000)
    import_per_account: int = rate("RATE_LIMIT_IMPORT_PER_ACCOUNT", 100)

    def limit(self, action: str, scope: str) -> int:
        """The limit of an action ('login', 'register', 'import') per scope ('client', 'account')."""
        return getattr(self, f"{action}_per_{scope}")


@dataclass(frozen=True)
class Settings:
    """The service's settings; each field says which variable it is read from, and how."""

    tenant_id: str = text("TENANT_ID", rule=IS_DNS_LABEL)
    database_url: Secret = text("DATABASE_URL", rule=IS_POSTGRESQL_URL, then=Secret)
    jwt_secret: Secret = variable("JWT_SECRET", "signing_key", needs=("development",))
    token_ttl_seconds: int = whole("JWT_TTL_SECONDS", 3600, 60, 86_400)
    # The kid of jwt_secret (the signing key), and (kid, key) pairs accepted only to verify.
    jwt_key_id: str = text("JWT_KEY_ID", DEFAULT_JWT_KEY_ID, rule=IS_KEY_ID, blank_is_unset=True)
    jwt_previous_keys: tuple[tuple[str, Secret], ...] = variable(
        "JWT_PREVIOUS_KEYS", "previous_keys", (), needs=("development", "jwt_key_id")
    )
    currency: str = text("TENANT_CURRENCY", "USD", rule=IS_CURRENCY, upper=True)
    timezone: ZoneInfo = text("TENANT_TIMEZONE", ZoneInfo("UTC"), then=_time_zone)
    log_level: str = text("LOG_LEVEL", "INFO", rule=IS_LOG_LEVEL, upper=True)
    # APP_ENV=development accepts a weak or missing JWT_SECRET; anything else is production.
    development: bool = text("APP_ENV", False, then=_is_development)
    # A worker serves one request per thread, and a request holds at most one connection.
    db_pool_size: int = whole("DB_POOL_SIZE", 1, 1, 100, fallback="GUNICORN_THREADS")
    db_pool_timeout: float = whole("DB_POOL_TIMEOUT_MS", 5.0, 100, 25_000, then=lambda ms: ms / 1000)
    db_statement_timeout_ms: int = whole("DB_STATEMENT_TIMEOUT_MS", 10_000, 100, 25_000)
    login_max_failures: int = whole("LOGIN_MAX_FAILURES", 5, 1, 1000)
    login_failure_window_seconds: int = whole("LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, 86_400)
    login_lockout_seconds: int = whole("LOGIN_LOCKOUT_SECONDS", 900, 1, 86_400)
    rate_limits: RateLimits = group(RateLimits)
    # Proxies in front of the app (ingress-nginx: 1) whose X-Forwarded-For entries name the client;
    # 0 takes the TCP peer's address and ignores the header.
    trusted_proxy_hops: int = whole("TRUSTED_PROXY_HOPS", 0, 0, MAX_TRUSTED_PROXY_HOPS)
    # Browser origins allowed to call the API cross-origin (CORS); empty: CORS is off.
    cors_allowed_origins: frozenset[str] = variable("CORS_ALLOWED_ORIGINS", "origins", frozenset())
    # Where the gunicorn master serves the workers' Prometheus metrics (service/gunicorn_setup.py),
    # and the directory the workers count into, as prometheus_client itself reads it (unset: no
    # metrics). Neither is routed by the tenant's Ingress.
    metrics_port: int = whole(
        "METRICS_PORT", DEFAULT_METRICS_PORT, 0, 65535, error="must be a port number (0: no metrics), got {input!r}"
    )
    metrics_directory: str | None = variable("PROMETHEUS_MULTIPROC_DIR", "str", None, validate=IS_DIRECTORY)
    # Webhooks may go to http:// and https:// URLs on this machine's loopback addresses: for a
    # developer receiving them locally (scripts/dev, the test suite). Never set in Kubernetes: there a
    # webhook's URL is https and its host resolves only to public addresses (service/outbound.py).
    webhooks_allow_loopback: bool = variable("WEBHOOKS_ALLOW_LOOPBACK", "bool", False, blank_is_unset=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from environment variables; raise ConfigError listing every problem."""
        return cls(**Environment(environ).load(cls))


_S = TypeVar("_S")


def _subset(cls: type[_S], environ: Mapping[str, str] | None) -> _S:
    """Settings of a command that reads some of the server's variables, by the same rules; TENANT_ID
    optional (it only labels the log lines)."""
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**Environment(environ).load(Settings, only=names, optional=("tenant_id",)))


@dataclass(frozen=True)
class MigrationSettings:
    """What `python -m service migrate` and `run-scheduled` read, by the rules of Settings. No
    signing key: the migrate init container and Job and the scheduler get none; TENANT_ID, optional,
    only labels the log lines."""

    database_url: Secret
    timezone: ZoneInfo
    log_level: str
    tenant_id: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        return _subset(cls, environ)


@dataclass(frozen=True)
class DispatcherSettings:
    """What `python -m service deliver-webhooks` reads, by the rules of Settings: the database, the
    currency its deliveries show amounts in, and whether loopback URLs are allowed (a developer's
    machine, the test suite). No signing key: the dispatcher signs with each webhook's own secret."""

    database_url: Secret
    currency: str
    log_level: str
    webhooks_allow_loopback: bool
    tenant_id: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        return _subset(cls, environ)
