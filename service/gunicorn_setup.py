"""What the tenant API changes in a stock gunicorn, applied by the hooks service/gunicorn.conf.py
names: the settings refused before anything starts, gunicorn's own answers in the service's shape,
no access line of gunicorn's, and the master's Prometheus endpoint (service/metrics.py)."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import gunicorn.http.wsgi
import gunicorn.util
from gunicorn.glogging import Logger

from . import metrics
from .config import ConfigError, Settings

# The Server header of every response, instead of gunicorn's "gunicorn" (naming the software).
SERVER_HEADER = "finance-api"
# What gunicorn's refusals say, by status: a fixed sentence, never the bytes the client sent.
_REFUSALS = {
    400: "The request is not valid HTTP.",
    403: "The request is refused.",
    414: "The request line is longer than the server accepts.",
    417: "The Expect header is not supported.",
    431: "The request headers are larger than the server accepts.",
    501: "The request's transfer coding is not supported.",
}


class AppLogsAccess(Logger):
    """gunicorn's logger without its access line: the app writes its own, with the request id and
    route, and gunicorn would otherwise format one per request only to drop it."""

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001 - gunicorn's signature
        pass


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it cannot parse (an over-long request line, broken headers),
    in the service's JSON error envelope instead of gunicorn's HTML page, with the headers every
    answer of the app carries. Same signature as gunicorn.util.write_error, which `customise_gunicorn`
    replaces with it. `mesg` quotes the client's bytes: it is not sent."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
    message = _REFUSALS.get(status_int, "The server could not handle the request.")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nServer: {gunicorn.http.wsgi.SERVER}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
        f"X-Request-ID: {uuid.uuid4().hex}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


def customise_gunicorn() -> None:
    """Make gunicorn's own answers the service's; done in the master, so every worker forked from it
    (sync or gthread) inherits them. gunicorn has a setting for neither."""
    # gunicorn starts every HTTP/1 response with `Server: <gunicorn.http.wsgi.SERVER>`
    # (Response.default_headers); a Server header of the app's would go out as a second one.
    gunicorn.http.wsgi.SERVER = SERVER_HEADER
    # A request gunicorn itself refuses gets the JSON error envelope, not gunicorn's HTML page.
    gunicorn.util.write_error = write_json_error


class Startup:
    """The gunicorn master's settings and hooks.

    The settings are read when gunicorn.conf.py loads, and nothing else happens then, so that the
    file can be loaded anywhere (a test reads its values) without exiting or patching gunicorn. An
    invalid configuration is refused by `on_starting`, in one line of its own, before gunicorn
    binds its socket or forks a worker (after gunicorn's own "Starting gunicorn" line).
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, metrics_host: str = "0.0.0.0") -> None:  # noqa: S104
        self.metrics_host = metrics_host
        self.settings: Settings | None = None
        self.problem = ""
        try:
            self.settings = Settings.from_env(environ)
        except ConfigError as exc:
            self.problem = str(exc)

    @property
    def log_level(self) -> str:
        """LOG_LEVEL, or INFO until `on_starting` refuses the configuration."""
        return self.settings.log_level if self.settings else "INFO"

    def on_starting(self, server: Any) -> None:
        """In the master, before it listens or forks: refuse an invalid configuration, customise
        gunicorn, and start the metrics from zero in a fresh directory."""
        if self.settings is None:
            sys.exit(f"finance service: {self.problem}")
        customise_gunicorn()
        if self.settings.metrics_directory:
            metrics.prepare_directory(self.settings.metrics_directory)

    def when_ready(self, server: Any) -> None:
        """In the master, once it listens: serve the workers' metrics on their own port."""
        settings = self.settings
        if not (settings and settings.metrics_directory and settings.metrics_port):
            server.log.warning("Metrics are off: PROMETHEUS_MULTIPROC_DIR is not set or METRICS_PORT is 0")
            return
        host, port = self.metrics_host, settings.metrics_port
        try:
            metrics.serve(host, port, settings.metrics_directory, logging.getLogger("gunicorn.error"))
        except OSError as exc:
            server.log.error("Cannot serve metrics on %s:%s: %s", host, port, exc)
            sys.exit(1)
        server.log.info("Serving metrics at http://%s:%s%s", host, port, metrics.METRICS_PATH)

    def child_exit(self, server: Any, worker: Any) -> None:
        """In the master, when a worker exits (even killed): drop its gauges, keep its counts."""
        if self.settings and self.settings.metrics_directory:
            metrics.worker_exited(worker.pid, self.settings.metrics_directory)
