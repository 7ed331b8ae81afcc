"""gunicorn settings of the tenant API; every value can be overridden from the environment.

Loading this file only reads settings. What the service changes in gunicorn, and the refusal of an
invalid configuration, live in service/gunicorn_setup.py and run from the hooks named at the end.
"""

import os

from service.gunicorn_setup import AppLogsAccess, Startup

host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104
bind = f"{host}:{os.environ.get('PORT', '8000')}"
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
# The service's settings (service/config.py), read once, here. An invalid configuration is refused
# by on_starting, with one line, before gunicorn listens or forks a worker.
startup = Startup(metrics_host=host)
# The app writes one JSON access line per request; gunicorn's own lines go to stderr as JSON.
accesslog = None
logger_class = AppLogsAccess
errorlog = "-"
loglevel = startup.log_level.lower()
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

# In the master: the settings checked, the Server header and the JSON error page of gunicorn's own
# answers set (inherited by every worker), and Prometheus metrics. Each worker counts into files of
# PROMETHEUS_MULTIPROC_DIR and the master serves their sum at http://HOST:METRICS_PORT/metrics, a
# port of its own that the tenant's Ingress never routes; METRICS_PORT=0 turns the endpoint off.
# prometheus_client reads the directory when it is imported, so it comes from the environment the
# server starts with: the image sets /dev/shm/finance-metrics (a tmpfs, writable under a read-only
# root), scripts/localstack.py a directory per server. Without it the app still runs, with no metrics.
on_starting = startup.on_starting
when_ready = startup.when_ready
child_exit = startup.child_exit
