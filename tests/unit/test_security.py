"""Settings, secrets, password hashing and tokens, without a server; the refusal to start on a bad config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import jwt
import pytest

from service.config import DEVELOPMENT_JWT_SECRET, ConfigError, Secret, Settings
from service.security import decode_token, hash_password, issue_token, verify_password

ROOT = Path(__file__).resolve().parents[2]
# 32 bytes, varied, none of the placeholder words: the shortest secret production accepts.
GOOD_SECRET = "Zq8#v!Lr2@Wm9$Tn4%Yp7^Kd1&Hs6*Bx"
DB_PASSWORD = "hunter2-db-password"
VALID_ENV = {
    "TENANT_ID": "tenant1",
    "DATABASE_URL": f"postgresql://tenant1_app:{DB_PASSWORD}@127.0.0.1:5432/tenant1",
    "JWT_SECRET": GOOD_SECRET,
}
PLACEHOLDERS = [
    "change-me-to-a-long-random-string-0123456789",
    "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME_1234",
    "replace-with-output-of-openssl-rand-base64-48",
    "my-super-secret-jwt-signing-key-for-prod-2024",
    "placeholder-value-for-the-jwt-signing-key-xyz",
    "an-example-key-with-enough-length-to-pass-0123",
    "a" * 48,
    "abababababababababababababababababababab",
]


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(VALID_ENV)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _problem(**changes: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(_env(**changes))
    return str(caught.value)


def _settings(tenant: str = "tenant1", secret: str = GOOD_SECRET, ttl: int = 3600) -> Settings:
    return Settings(
        tenant_id=tenant,
        database_url=Secret("postgresql://u:p@127.0.0.1/db"),
        jwt_secret=Secret(secret),
        token_ttl_seconds=ttl,
    )


# --- Settings.from_env ----------------------------------------------------------------------


def test_valid_environment_gives_settings_with_defaults():
    settings = Settings.from_env(VALID_ENV)
    assert settings.tenant_id == "tenant1"
    assert settings.jwt_secret.reveal() == GOOD_SECRET
    assert settings.database_url.reveal() == VALID_ENV["DATABASE_URL"]
    assert settings.development is False
    assert settings.token_ttl_seconds == 3600
    assert settings.currency == "USD"
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.login_max_failures == 5
    assert settings.login_failure_window_seconds == 900
    assert settings.login_lockout_seconds == 900


def test_tenant_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        _env(
            TENANT_CURRENCY="eur",
            TENANT_TIMEZONE="Europe/Berlin",
            LOGIN_MAX_FAILURES="3",
            JWT_TTL_SECONDS="600",
            DATABASE_URL="postgres://u:p@db/tenant1",
        )
    )
    assert settings.currency == "EUR"
    assert settings.timezone == ZoneInfo("Europe/Berlin")
    assert settings.login_max_failures == 3
    assert settings.token_ttl_seconds == 600


def test_missing_jwt_secret_is_refused_naming_the_variable():
    for changes in ({"JWT_SECRET": None}, {"JWT_SECRET": ""}):
        message = _problem(**changes)
        assert "JWT_SECRET" in message
        assert "missing" in message


def test_jwt_secret_shorter_than_32_bytes_is_refused_naming_the_variable():
    message = _problem(JWT_SECRET=GOOD_SECRET[:-1])
    assert "JWT_SECRET" in message
    assert "32 bytes" in message
    assert GOOD_SECRET[:-1] not in message


@pytest.mark.parametrize("secret", PLACEHOLDERS)
def test_placeholder_jwt_secret_is_refused_without_echoing_it(secret):
    message = _problem(JWT_SECRET=secret)
    assert "JWT_SECRET" in message
    assert "placeholder" in message
    assert secret not in message


@pytest.mark.parametrize("secret", [None, "short", *PLACEHOLDERS])
def test_development_mode_accepts_a_missing_short_or_placeholder_secret(secret):
    settings = Settings.from_env(_env(JWT_SECRET=secret, APP_ENV="development"))
    assert settings.development is True
    assert settings.jwt_secret.reveal() == (secret or DEVELOPMENT_JWT_SECRET)


def test_app_env_other_than_development_keeps_the_production_checks():
    for app_env in ("production", "dev", "staging", ""):
        assert "JWT_SECRET" in _problem(JWT_SECRET="change-me-to-a-long-random-string-0123456789", APP_ENV=app_env)


@pytest.mark.parametrize(
    "tenant_id",
    ["", "Tenant1", "tenant_1", "-tenant1", "tenant1-", "tenant.1", "t" * 64, "ténant"],
)
def test_tenant_id_that_is_not_a_dns_label_is_refused(tenant_id):
    message = _problem(TENANT_ID=tenant_id)
    assert "TENANT_ID" in message
    assert "DNS label" in message
    assert repr(tenant_id) in message


def test_missing_tenant_id_is_refused():
    assert "TENANT_ID" in _problem(TENANT_ID=None)


@pytest.mark.parametrize("currency", ["US", "EURO", "U$D", "12$", ""])
def test_currency_that_is_not_an_iso_code_is_refused(currency):
    message = _problem(TENANT_CURRENCY=currency)
    assert "TENANT_CURRENCY" in message
    assert "ISO 4217" in message


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Parris", "", "../../etc/passwd", "EST5EDT/x"])
def test_unknown_time_zone_is_refused(zone):
    message = _problem(TENANT_TIMEZONE=zone)
    assert "TENANT_TIMEZONE" in message
    assert "IANA time zone" in message
    assert repr(zone) in message


@pytest.mark.parametrize(
    "url",
    [None, "", f"mysql://root:{DB_PASSWORD}@db/tenant1", f"tenant1_app:{DB_PASSWORD}@db/tenant1", "sqlite:///x.db"],
)
def test_database_url_that_is_not_postgresql_is_refused_without_echoing_it(url):
    message = _problem(DATABASE_URL=url)
    assert "DATABASE_URL" in message
    assert "postgresql://" in message
    assert DB_PASSWORD not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOGIN_MAX_FAILURES", "five"),
        ("LOGIN_MAX_FAILURES", "0"),
        ("JWT_TTL_SECONDS", "10"),
        ("LOGIN_LOCKOUT_SECONDS", "-1"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_out_of_range_or_malformed_setting_is_refused_naming_it(name, value):
    message = _problem(**{name: value})
    assert name in message
    assert value in message


def test_every_problem_is_reported_at_once_on_one_line():
    message = _problem(
        TENANT_ID="Bad_Tenant", JWT_SECRET=None, TENANT_CURRENCY="EURO", TENANT_TIMEZONE="Nowhere/Land",
        DATABASE_URL="mysql://x",
    )
    for name in ("TENANT_ID", "JWT_SECRET", "TENANT_CURRENCY", "TENANT_TIMEZONE", "DATABASE_URL"):
        assert name in message
    assert "\n" not in message


# --- Secret ---------------------------------------------------------------------------------


def test_secret_never_shows_its_value():
    secret = Secret(GOOD_SECRET)
    assert secret.reveal() == GOOD_SECRET
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", format(secret, ""), str([secret])):
        assert GOOD_SECRET not in shown
        assert "*" in shown


def test_settings_repr_hides_the_signing_key_and_database_password():
    settings = Settings.from_env(VALID_ENV)
    for shown in (repr(settings), str(settings), repr(vars(settings))):
        assert GOOD_SECRET not in shown
        assert DB_PASSWORD not in shown


def test_secret_cannot_grow_attributes_that_would_show_it():
    with pytest.raises(AttributeError):
        Secret("x").value = "x"  # __slots__: nothing but the hidden value


# --- Passwords ------------------------------------------------------------------------------


def test_password_hash_is_argon2id_and_verifies_only_the_right_password():
    hashed = hash_password("password@123")
    assert hashed.startswith("$argon2id$")
    assert "password@123" not in hashed
    assert verify_password(hashed, "password@123") is True
    assert verify_password(hashed, "password@124") is False
    assert verify_password(hashed, "") is False


def test_same_password_hashes_differently_each_time():
    assert hash_password("password@123") != hash_password("password@123")


def test_verify_password_is_false_without_a_hash():
    for missing in (None, ""):
        assert verify_password(missing, "password@123") is False
        assert verify_password(missing, "") is False


def test_verify_password_is_false_for_a_malformed_hash():
    for broken in ("not-a-hash", "$argon2id$v=19$m=65536,t=3,p=4$broken", "$2b$12$abcdefghijklmnopqrstuv"):
        assert verify_password(broken, "password@123") is False


def test_unknown_user_costs_as_much_as_a_wrong_password():
    """The dummy hash keeps an unknown username from answering measurably faster."""
    hashed = hash_password("password@123")

    def cost(password_hash: str | None) -> float:
        start = time.perf_counter()
        for _ in range(3):
            verify_password(password_hash, "wrong-password")
        return time.perf_counter() - start

    known, unknown = cost(hashed), cost(None)
    assert unknown > known / 3, (known, unknown)


# --- Tokens ---------------------------------------------------------------------------------


def test_each_issued_token_has_its_own_id():
    settings = _settings()
    first, second = issue_token(settings, 1).token, issue_token(settings, 1).token
    assert decode_token(settings, first)["jti"] != decode_token(settings, second)["jti"]


def test_token_of_one_tenant_does_not_decode_for_another_even_with_the_same_key():
    token = issue_token(_settings("tenant1"), 1).token
    with pytest.raises(jwt.InvalidTokenError):
        decode_token(_settings("tenant2"), token)


# --- Refusing to start ----------------------------------------------------------------------


def _bad_env(**changes: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"APP_ENV", "JWT_SECRET", "TENANT_ID", "DATABASE_URL", "TENANT_TIMEZONE", "TENANT_CURRENCY"}
    }
    return {
        **env,
        "TENANT_ID": "tenant1",
        "DATABASE_URL": "postgresql://tenant1_app:pw@127.0.0.1:9/tenant1",
        "JWT_SECRET": "change-me-to-a-long-random-string-0123456789",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **changes,
    }


def _run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    return result, time.monotonic() - start


def _assert_one_clear_line(stderr: str, variable: str) -> None:
    """Exactly one plain line, naming the variable; anything else may only be JSON log records."""
    plain = []
    for line in filter(str.strip, stderr.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            plain.append(line)
        else:
            assert isinstance(record, dict) and "level" in record, line
    assert len(plain) == 1, stderr
    assert variable in plain[0]
    assert "Traceback" not in stderr


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py", "service:create_app()"]


def test_gunicorn_with_a_placeholder_jwt_secret_exits_at_once_with_one_clear_line():
    result, elapsed = _run(GUNICORN, _bad_env())
    assert result.returncode != 0, result
    assert elapsed < 20
    _assert_one_clear_line(result.stderr, "JWT_SECRET")
    assert "change-me-to-a-long-random-string-0123456789" not in result.stderr + result.stdout


def test_gunicorn_without_jwt_secret_exits_at_once_with_one_clear_line():
    env = _bad_env()
    del env["JWT_SECRET"]
    result, elapsed = _run(GUNICORN, env)
    assert result.returncode != 0, result
    assert elapsed < 20
    _assert_one_clear_line(result.stderr, "JWT_SECRET")


def test_check_config_refuses_a_placeholder_jwt_secret_with_one_clear_line():
    result, _ = _run([sys.executable, "-m", "service", "check-config"], _bad_env())
    assert result.returncode == 1, result
    _assert_one_clear_line(result.stderr, "JWT_SECRET")
    assert "configuration ok" not in result.stdout


def test_check_config_names_every_bad_variable_on_one_line():
    env = _bad_env(TENANT_ID="Tenant_1", TENANT_TIMEZONE="Mars/Olympus_Mons", TENANT_CURRENCY="EURO")
    result, _ = _run([sys.executable, "-m", "service", "check-config"], env)
    assert result.returncode == 1, result
    _assert_one_clear_line(result.stderr, "JWT_SECRET")
    for name in ("TENANT_ID", "TENANT_TIMEZONE", "TENANT_CURRENCY"):
        assert name in result.stderr


def test_check_config_accepts_a_valid_environment():
    result, _ = _run([sys.executable, "-m", "service", "check-config"], _bad_env(JWT_SECRET=GOOD_SECRET))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration ok"
