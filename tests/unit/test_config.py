"""Reading the settings from the environment (service/config.py) and the command line that checks
them or migrates with them (service/__main__.py), without a server or a database."""

import os
from zoneinfo import ZoneInfo

import pytest

from service.__main__ import main
from service.config import ConfigError, MigrationSettings, RateLimits, Settings
from service.metrics import DEFAULT_METRICS_PORT

GOOD_SECRET = "Zq8#v!Lr2@Wm9$Tn4%Yp7^Kd1&Hs6*Bx"
DB_PASSWORD = "hunter2-db-password"
DATABASE_URL = f"postgresql://tenant1_app:{DB_PASSWORD}@127.0.0.1:5432/tenant1"
VALID_ENV = {"TENANT_ID": "tenant1", "DATABASE_URL": DATABASE_URL, "JWT_SECRET": GOOD_SECRET}


def _problem(environ: dict[str, str], read=Settings.from_env) -> str:
    with pytest.raises(ConfigError) as caught:
        read(environ)
    message = str(caught.value)
    assert message.startswith("invalid configuration: ") and "\n" not in message
    return message


def test_unset_variables_take_the_defaults_of_the_settings():
    settings = Settings.from_env(VALID_ENV)
    defaults = Settings(tenant_id="tenant1", database_url=settings.database_url, jwt_secret=settings.jwt_secret)
    assert settings == defaults
    assert settings.rate_limits == RateLimits()
    assert (settings.metrics_port, settings.metrics_directory) == (DEFAULT_METRICS_PORT, None)


@pytest.mark.parametrize(
    ("name", "attribute", "default"),
    [("DB_STATEMENT_TIMEOUT_MS", "db_statement_timeout_ms", 10_000), ("JWT_KEY_ID", "jwt_key_id", "1"),
     ("JWT_PREVIOUS_KEYS", "jwt_previous_keys", ()), ("CORS_ALLOWED_ORIGINS", "cors_allowed_origins", frozenset())],
)
def test_an_empty_number_key_id_or_list_takes_the_default(name, attribute, default):
    assert getattr(Settings.from_env({**VALID_ENV, name: " "}), attribute) == default


def test_values_are_read_without_the_spaces_around_them():
    settings = Settings.from_env(
        {**VALID_ENV, "TENANT_ID": " tenant1 ", "LOGIN_MAX_FAILURES": " 7 ", "TENANT_TIMEZONE": " Europe/Paris\n"}
    )
    assert (settings.tenant_id, settings.login_max_failures) == ("tenant1", 7)
    assert settings.timezone == ZoneInfo("Europe/Paris")


def test_the_signing_key_is_taken_verbatim():
    padded = f" {GOOD_SECRET} "
    assert Settings.from_env({**VALID_ENV, "JWT_SECRET": padded}).jwt_secret.reveal() == padded


def test_the_pool_has_a_connection_per_thread_unless_told_otherwise():
    assert Settings.from_env({**VALID_ENV, "GUNICORN_THREADS": "4"}).db_pool_size == 4
    assert Settings.from_env({**VALID_ENV, "GUNICORN_THREADS": "4", "DB_POOL_SIZE": "2"}).db_pool_size == 2
    message = _problem({**VALID_ENV, "GUNICORN_THREADS": "0", "DB_POOL_SIZE": "2"})
    assert message == "invalid configuration: GUNICORN_THREADS must be between 1 and 100, got 0"


def test_the_pool_timeout_is_given_in_milliseconds():
    assert Settings.from_env({**VALID_ENV, "DB_POOL_TIMEOUT_MS": "250"}).db_pool_timeout == 0.25
    message = _problem({**VALID_ENV, "DB_POOL_TIMEOUT_MS": "99"})
    assert message == "invalid configuration: DB_POOL_TIMEOUT_MS must be between 100 and 25000, got 99"


def test_metrics_settings_are_read_with_the_others():
    settings = Settings.from_env({**VALID_ENV, "METRICS_PORT": "0", "PROMETHEUS_MULTIPROC_DIR": "metrics dir "})
    # As prometheus_client reads it, spaces and all.
    assert (settings.metrics_port, settings.metrics_directory) == (0, "metrics dir ")
    for value in ("9102x", "70000", "-1"):
        assert "METRICS_PORT must be a port number (0: no metrics)" in _problem({**VALID_ENV, "METRICS_PORT": value})
    assert "PROMETHEUS_MULTIPROC_DIR must name a directory" in _problem({**VALID_ENV, "PROMETHEUS_MULTIPROC_DIR": ""})


def test_problems_are_named_in_one_line_without_a_secret():
    message = _problem({
        "TENANT_ID": "Tenant_1",
        "DATABASE_URL": f"mysql://root:{DB_PASSWORD}@db/tenant1",
        "JWT_SECRET": GOOD_SECRET[:20],
        "JWT_PREVIOUS_KEYS": f"old={GOOD_SECRET[:25]},{GOOD_SECRET}",
        "JWT_TTL_SECONDS": "ten",
        "RATE_LIMIT_LOGIN_PER_CLIENT": "-1",
    })
    for name in ("TENANT_ID", "DATABASE_URL", "JWT_SECRET", "JWT_PREVIOUS_KEYS entry 1", "JWT_PREVIOUS_KEYS entry 2",
                 "JWT_TTL_SECONDS", "RATE_LIMIT_LOGIN_PER_CLIENT"):
        assert name in message
    for secret in (DB_PASSWORD, GOOD_SECRET[:20], GOOD_SECRET[:25]):
        assert secret not in message


# --- migrate ------------------------------------------------------------------------------------------


def test_migration_needs_only_a_database_url():
    settings = MigrationSettings.from_env({"DATABASE_URL": DATABASE_URL})
    assert settings.database_url.reveal() == DATABASE_URL
    assert (settings.timezone, settings.log_level, settings.tenant_id) == (ZoneInfo("UTC"), "INFO", "")


def test_migration_reads_the_tenant_and_its_time_zone_by_the_rules_of_the_settings():
    env = {"DATABASE_URL": DATABASE_URL, "TENANT_ID": "tenant1", "TENANT_TIMEZONE": "Asia/Tokyo", "LOG_LEVEL": "warn"}
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        MigrationSettings.from_env(env)
    # A key is not its concern.
    settings = MigrationSettings.from_env({**env, "LOG_LEVEL": "warning", "JWT_SECRET": "change-me"})
    assert settings == MigrationSettings(settings.database_url, ZoneInfo("Asia/Tokyo"), "WARNING", "tenant1")
    message = _problem({"TENANT_ID": "Tenant_1", "TENANT_TIMEZONE": "Mars/Olympus_Mons"}, MigrationSettings.from_env)
    for name in ("DATABASE_URL must be a postgresql:// connection URL", "TENANT_ID", "TENANT_TIMEZONE"):
        assert name in message
    assert "JWT_SECRET" not in message


@pytest.fixture
def environ(monkeypatch):
    """The process environment, emptied of every variable the service reads."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    return monkeypatch


def test_migrate_refuses_a_missing_database_url_in_one_line(environ, capsys):
    environ.setenv("TENANT_TIMEZONE", "UTC")
    assert main(["migrate"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "invalid configuration: DATABASE_URL must be a postgresql:// connection URL\n"
    assert captured.out == ""


def test_check_config_checks_the_metrics_settings_too(environ, capsys):
    for name, value in {**VALID_ENV, "METRICS_PORT": "9102x"}.items():
        environ.setenv(name, value)
    assert main(["check-config"]) == 1
    assert "METRICS_PORT" in capsys.readouterr().err
    environ.setenv("METRICS_PORT", "9200")
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == "configuration ok\n"
