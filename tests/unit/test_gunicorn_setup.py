"""gunicorn as the service sets it up (service/gunicorn_setup.py, service/gunicorn.conf.py), without
starting a server; tests/unit/test_security.py, tests/ops/test_metrics.py and
tests/api/test_hostile.py start real ones."""

import json
import runpy
import socket
from pathlib import Path

import gunicorn
import gunicorn.config
import gunicorn.http.wsgi
import gunicorn.util
import pytest

from service.gunicorn_setup import SERVER_HEADER, Startup, customise_gunicorn, write_json_error

CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn.conf.py"
GOOD_SECRET = "Zq8#v!Lr2@Wm9$Tn4%Yp7^Kd1&Hs6*Bx"
VALID_ENV = {"TENANT_ID": "tenant1", "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "JWT_SECRET": GOOD_SECRET}
STOCK_WRITE_ERROR = gunicorn.util.write_error


@pytest.fixture
def stock_gunicorn(monkeypatch):
    """gunicorn's module globals as it ships them, put back after the test whatever it changes."""
    monkeypatch.setattr(gunicorn.http.wsgi, "SERVER", gunicorn.SERVER)
    monkeypatch.setattr(gunicorn.util, "write_error", STOCK_WRITE_ERROR)


def _assert_stock() -> None:
    assert gunicorn.http.wsgi.SERVER == gunicorn.SERVER
    assert gunicorn.util.write_error is STOCK_WRITE_ERROR


def test_loading_the_config_file_only_reads_settings(stock_gunicorn, monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "change-me-to-a-long-random-string-0123456789")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    config = runpy.run_path(str(CONF))  # neither exits nor patches gunicorn
    _assert_stock()
    assert "JWT_SECRET" in config["startup"].problem
    # gunicorn's logging starts, at INFO, so that on_starting can refuse the configuration.
    assert config["loglevel"] == "info"
    gunicorn_config = gunicorn.config.Config()
    for hook in ("on_starting", "when_ready", "child_exit"):
        gunicorn_config.set(hook, config[hook])  # of the arity gunicorn wants
    assert config["graceful_timeout"] < config["timeout"]


def test_log_level_is_the_services():
    assert Startup({**VALID_ENV, "LOG_LEVEL": "warning"}).log_level == "WARNING"


def test_on_starting_refuses_an_invalid_configuration_with_one_line(stock_gunicorn):
    startup = Startup({**VALID_ENV, "JWT_SECRET": GOOD_SECRET[:20], "METRICS_PORT": "x"})
    with pytest.raises(SystemExit) as exited:
        startup.on_starting(None)
    line = str(exited.value.code)
    assert line.startswith("finance service: invalid configuration: ") and "\n" not in line
    assert "JWT_SECRET" in line and "METRICS_PORT" in line and GOOD_SECRET[:20] not in line
    _assert_stock()


def test_on_starting_customises_gunicorn_and_starts_the_metrics_from_zero(stock_gunicorn, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    Startup({**VALID_ENV, "PROMETHEUS_MULTIPROC_DIR": str(directory)}).on_starting(None)
    assert gunicorn.http.wsgi.SERVER == SERVER_HEADER
    assert gunicorn.util.write_error is write_json_error
    assert list(directory.iterdir()) == []


def test_a_request_gunicorn_refuses_gets_the_json_envelope_without_its_bytes(stock_gunicorn):
    customise_gunicorn()
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        write_json_error(server_side, 431, "Request Header Fields Too Large", "X-Token: sent-by-the-client")
        server_side.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: client_side.recv(4096), b"")).decode("latin-1")
    head, body = answer.split("\r\n\r\n", 1)
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert f"Server: {SERVER_HEADER}" in lines and "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {
        "error": {
            "code": "request_header_fields_too_large",
            "message": "The request headers are larger than the server accepts.",
        }
    }
    assert "sent-by-the-client" not in answer
