"""The 500 path: an unexpected exception in a handler answers the bare envelope, and its detail
goes to the log line of the request, never to the client."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service import create_app, migrate
from service.config import Settings

SECRET_DETAIL = "connection string postgresql://app:hunter2@db/finance"
ENVELOPE = {"error": {"code": "internal_error", "message": "An unexpected error occurred."}}


@pytest.fixture
def failing_app(tenant_envs, monkeypatch):
    """The real app of tenant1 where two handlers raise: a flask-restx resource (the readiness
    probe, its migration check made to fail) and a plain Flask route. Its log lines (JSON, on
    stdout in production) go to `app.log_lines`."""
    app = create_app(Settings.from_env(tenant_envs["tenant1"]))
    app.log_lines = io.StringIO()
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", app.log_lines)

    def fail(_conn):
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(migrate, "applied", fail)

    @app.route("/failing-route")
    def failing_route():
        raise KeyError(SECRET_DETAIL)

    return app


@pytest.mark.parametrize("path", ["/health/ready", "/failing-route"])
def test_an_unexpected_error_answers_the_bare_envelope_and_logs_the_detail(failing_app, path):
    response = failing_app.test_client().get(path, headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == ENVELOPE
    assert b"hunter2" not in response.data and b"Traceback" not in response.data
    assert response.headers["X-Request-ID"] == "req-500"

    lines = [json.loads(line) for line in failing_app.log_lines.getvalue().splitlines()]
    logged = [line for line in lines if line["message"] == "unhandled error"]
    assert len(logged) == 1, lines
    assert logged[0]["level"] == "error"
    assert logged[0]["request_id"] == "req-500"
    assert "Traceback" in logged[0]["exception"] and SECRET_DETAIL in logged[0]["exception"]
