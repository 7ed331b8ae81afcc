"""gunicorn settings of the tenant API; every value can be overridden from the environment."""

import os
import sys

from gunicorn.glogging import Logger

from service.config import ConfigError, Settings


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
worker_class = "sync"
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


# Refuse to start, with one clear line, when the configuration is invalid: checked while this file
# loads, before gunicorn logs anything or forks a worker.
try:
    Settings.from_env()
except ConfigError as exc:
    sys.exit(f"finance service: {exc}")
