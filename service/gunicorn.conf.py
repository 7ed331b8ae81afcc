"""gunicorn settings of the tenant API; every value can be overridden from the environment."""

import os
import sys

from service.config import ConfigError, Settings

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
# Threads serve concurrent requests while others wait on PostgreSQL; each worker has its own
# connection pool sized to its threads (DB_POOL_SIZE).
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Longer than the pool timeout and the statement timeout, so a stuck request gets a JSON 503
# from the app before gunicorn kills the worker.
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app is imported in each worker after the fork, so connection pools are never shared.
preload_app = False
# The app writes one JSON access line per request; gunicorn's own lines go to stderr as JSON.
accesslog = None
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
        # Replaced by the app's own access line, which carries the request id and route.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
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
