"""gunicorn settings of the tenant API; every value can be overridden from the environment."""

import logging
import os
import sys

import gunicorn.http.wsgi
import gunicorn.util
from gunicorn.glogging import Logger

from service import metrics
from service.config import ConfigError, Settings
from service.workers import write_json_error


class AppLogsAccess(Logger):
    """gunicorn's logger without its access line: the app writes its own, with the request id and
    route, and gunicorn would otherwise format one per request only to drop it."""

    def access(self, resp, req, environ, request_time) -> None:  # noqa: ANN001 - gunicorn's signature
        pass


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
# Sync workers: each serves one request at a time and takes the next connection from the shared
# socket only when it is free, so new connections always go to an idle worker. (gthread workers
# keep a kept-alive connection on the worker that accepted it; under load one worker often held
# most of them while the others idled: see docs/performance.md, "Worker model".) A sync worker
# closes the connection after each response, so it belongs behind a proxy that buffers requests
# and keeps its own client connections alive, such as the tenant's ingress-nginx.
# GUNICORN_THREADS > 1 switches to gthread workers with that many threads each.
# The sync worker, answering on SIGTERM every connection already queued (service/workers.py).
worker_class = "service.workers.DrainingSyncWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
graceful_timeout = 20
# The app is imported in each worker after the fork, so connection pools are never shared.
preload_app = False
# The app writes one JSON access line per request; gunicorn's own lines go to stderr as JSON.
accesslog = None
logger_class = AppLogsAccess
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    # gunicorn's defaults name these two handlers; redefining them makes every line JSON.
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
    },
}
# The worker heartbeat file; the image points it at /dev/shm, a tmpfs even when the root filesystem
# is read-only. Unset, gunicorn uses the default temporary directory.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
# No control socket: nothing uses it, and a read-only container has no home to put it in.
control_socket_disable = True
# No server banner: gunicorn starts every HTTP/1 response with `Server: <gunicorn.http.wsgi.SERVER>`
# (Response.default_headers; "gunicorn", naming the software) and has no setting for it; a Server
# header of the app's would go out as a second one. This file runs in the master before any worker
# is forked, so every worker sends this neutral value instead (tests/test_hostile.py checks it).
SERVER_HEADER = "finance-api"
gunicorn.http.wsgi.SERVER = SERVER_HEADER
# A request gunicorn itself refuses (a request line or headers it cannot parse or too long) gets the
# service's JSON error envelope, not gunicorn's HTML page; same mechanism, same reason.
gunicorn.util.write_error = write_json_error

# Prometheus metrics (service/metrics.py): each worker counts into files of PROMETHEUS_MULTIPROC_DIR
# and the master serves their sum at http://HOST:METRICS_PORT/metrics, a port of its own that the
# tenant's Ingress never routes; METRICS_PORT=0 turns the endpoint off. prometheus_client reads the
# directory when it is imported, so it comes from the environment the server starts with: the image
# sets /dev/shm/finance-metrics (a tmpfs, writable under a read-only root), scripts/localstack.py a
# directory per server. Without it the app still runs, with no metrics.
metrics_directory = metrics.multiprocess_directory()
metrics_port = os.environ.get("METRICS_PORT", str(metrics.DEFAULT_METRICS_PORT)).strip()


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """In the master, before any worker: a fresh directory, so counters start from zero."""
    if metrics_directory:
        metrics.prepare_directory(metrics_directory)


def when_ready(server) -> None:  # noqa: ANN001
    """In the master, once it listens: serve the workers' metrics on their own port."""
    if not (metrics_directory and int(metrics_port)):
        server.log.warning("Metrics are off: PROMETHEUS_MULTIPROC_DIR is not set or METRICS_PORT is 0")
        return
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - as the app's bind address
    try:
        metrics.serve(host, int(metrics_port), metrics_directory, logging.getLogger("gunicorn.error"))
    except OSError as exc:
        server.log.error("Cannot serve metrics on %s:%s: %s", host, metrics_port, exc)
        sys.exit(1)
    server.log.info("Serving metrics at http://%s:%s%s", host, metrics_port, metrics.METRICS_PATH)


def child_exit(server, worker) -> None:  # noqa: ANN001
    """In the master, when a worker exits (even killed): drop its gauges, keep its counts."""
    if metrics_directory:
        metrics.worker_exited(worker.pid, metrics_directory)


# Refuse to start, with one clear line, when the configuration is invalid: checked while this file
# loads, before gunicorn logs anything or forks a worker.
try:
    Settings.from_env()
    if not metrics_port.isdigit() or int(metrics_port) > 65535:
        raise ConfigError(f"METRICS_PORT must be a port number (0: no metrics), got {metrics_port!r}")
    if metrics.MULTIPROC_DIR_VARIABLE in os.environ and not metrics_directory:
        # prometheus_client would count into files of the working directory.
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR must name a directory, or be unset")
except ConfigError as exc:
    sys.exit(f"finance service: {exc}")
