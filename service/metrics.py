"""Prometheus metrics of one tenant's API, added up over gunicorn's worker processes.

Each worker writes its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, chosen when prometheus_client is imported, so the variable
must be set before the process starts). The gunicorn master serves their sum in the Prometheus
text format on METRICS_PORT (see `serve`, started by service/gunicorn.conf.py): a port of its own,
which the tenant's Ingress never routes, so the metrics are not public and the app's routes stay
what the API documents. A worker that dies leaves its files behind and its counts stay in the sum;
its gauges are dropped (`worker_exited`).

Without PROMETHEUS_MULTIPROC_DIR (the app built in-process, as some tests do) the values are kept
in memory and nothing serves them.

Per request the app updates a counter and a histogram (`observe_request`, from the access-log hook
of service/logs.py). The connection pool's figures are sampled by a background thread of each
worker once a second, never on the request path.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from psycopg_pool import ConnectionPool

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_METRICS_PORT = 9102
METRICS_PATH = "/metrics"
# The route label of a request no URL rule matched (404, 405): one series, whatever the path.
UNMATCHED_ROUTE = "<unmatched>"
# Any other method (a client may send anything) is counted as OTHER, so it adds no series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
POOL_SAMPLE_SECONDS = 1.0
LOGIN_FAILURE_REASONS = ("invalid_credentials", "locked")

# Created without a registry: in multiprocess mode the master's collector reads the workers' files,
# and an app built twice in one process (tests) must not register a metric twice.
REQUESTS = Counter(
    "finance_http_requests",
    "HTTP responses, by method, route (the URL rule, not the path) and status code.",
    ["method", "route", "status"],
    registry=None,
)
REQUEST_DURATION = Histogram(
    "finance_http_request_duration_seconds",
    "Time from the start of the app's handling of a request to its response, by method and route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
LOGIN_FAILURES = Counter(
    "finance_login_failures",
    "Refused logins: a wrong password or unknown username (invalid_credentials), or a username"
    " locked after repeated failures (locked).",
    ["reason"],
    registry=None,
)


# The series of each (method, route, status) seen, so a request skips prometheus_client's label
# lookup (most of the cost of an update); bounded, as methods are normalised and routes are rules.
_request_series: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str | None, status: int, seconds: float | None) -> None:
    """Count one response and, when its duration is known, observe it."""
    method = method if method in _METHODS else "OTHER"
    series = _request_series.get((method, route, status))
    if series is None:
        label = route or UNMATCHED_ROUTE
        series = REQUESTS.labels(method, label, str(status)), REQUEST_DURATION.labels(method, label)
        _request_series[(method, route, status)] = series
    series[0].inc()
    if seconds is not None:
        series[1].observe(seconds)


def login_failed(reason: str) -> None:
    """Count a refused login; `reason` is one of LOGIN_FAILURE_REASONS."""
    LOGIN_FAILURES.labels(reason).inc()


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


# --- the connection pool, sampled in each worker ---------------------------------------------------

# Gauges of the live workers' pools, summed ("livesum"): a dead worker's values are dropped.
_POOL_GAUGES = {
    "pool_size": ("finance_db_pool_connections", "Open database connections, in use or idle."),
    "pool_available": ("finance_db_pool_connections_idle", "Open database connections not in use."),
    "pool_max": ("finance_db_pool_connections_max", "Most database connections the pools may open."),
    "requests_waiting": ("finance_db_pool_requests_waiting", "Requests waiting for a database connection."),
}
# psycopg_pool's counters since each pool opened, exported as counters of their own.
_POOL_COUNTERS = {
    "requests_num": ("finance_db_pool_requests", "Connections lent by the pools."),
    "requests_errors": (
        "finance_db_pool_request_errors",
        "Requests for a connection that failed, mostly timeouts (DB_POOL_TIMEOUT_MS): answered 503.",
    ),
    "connections_errors": ("finance_db_pool_connection_errors", "Failed attempts to open a database connection."),
    "connections_lost": ("finance_db_pool_connections_lost", "Connections found broken and replaced."),
}
_pool_metrics: tuple[dict[str, Gauge], dict[str, Counter]] | None = None
_pool_metrics_lock = threading.Lock()


def _pool_metric_objects() -> tuple[dict[str, Gauge], dict[str, Counter]]:
    """The pool's metrics, created once per process, in the worker (never in the master)."""
    global _pool_metrics
    with _pool_metrics_lock:
        if _pool_metrics is None:
            gauges = {
                key: Gauge(name, text, registry=None, multiprocess_mode="livesum")
                for key, (name, text) in _POOL_GAUGES.items()
            }
            counters = {key: Counter(name, text, registry=None) for key, (name, text) in _POOL_COUNTERS.items()}
            _pool_metrics = gauges, counters
        return _pool_metrics


class _PoolSampler(threading.Thread):
    """Copies a pool's get_stats() into the metrics once a second, until the pool closes."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        super().__init__(name="pool-metrics", daemon=True)
        self.pool = pool
        self.gauges, self.counters = _pool_metric_objects()
        self.counted: dict[str, int] = {}

    def sample(self) -> None:
        stats = self.pool.get_stats()  # counters appear only once they are above zero
        for key, gauge in self.gauges.items():
            gauge.set(stats.get(key, 0))
        for key, counter in self.counters.items():
            value = stats.get(key, 0)
            if value > self.counted.get(key, 0):
                counter.inc(value - self.counted.get(key, 0))
            self.counted[key] = value

    def run(self) -> None:
        while not self.pool.closed:
            try:
                self.sample()
            except Exception:  # a metric must never take a worker down
                logging.getLogger(__name__).exception("sampling the connection pool failed")
            time.sleep(POOL_SAMPLE_SECONDS)


def init_app(app: Flask) -> None:
    """In a worker of a multiprocess setup: create every series and sample the app's pool."""
    directory = multiprocess_directory()
    if directory is None:
        return
    os.makedirs(directory, exist_ok=True)
    for reason in LOGIN_FAILURE_REASONS:  # a zero from the start, so rate() and alerts see the series
        LOGIN_FAILURES.labels(reason)
    sampler = _PoolSampler(app.extensions["db_pool"])
    sampler.sample()
    sampler.start()


# --- the gunicorn master: the directory and the endpoint ------------------------------------------


def prepare_directory(directory: str) -> None:
    """Create the directory, or empty it of a previous run's files (counters restart at zero)."""
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def worker_exited(pid: int, directory: str) -> None:
    """Drop a dead worker's gauges; its counters and histograms stay in the sum."""
    mark_process_dead(pid, directory)


class _LogStream(io.StringIO):
    """wsgiref's error stream: what it prints (a traceback) becomes one log record per flush."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self.log = log

    def flush(self) -> None:
        text = self.getvalue().strip()
        if text:
            self.log.error("metrics endpoint error: %s", text)
        self.seek(0)
        self.truncate()


def serve(host: str, port: int, directory: str, log: logging.Logger) -> WSGIServer:
    """Serve the workers' metrics summed, on http://host:port/metrics, from a daemon thread.

    Raises OSError when the port cannot be bound. Every problem is logged through `log` (JSON
    lines), never printed.
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    exposition = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # A worker creates its file empty, then sizes it: a scrape in that instant cannot read it
        # (prometheus_client raises struct.error). The output is built before start_response is
        # called, so a second try a moment later is safe.
        try:
            return exposition(environ, start_response)
        except Exception:  # tried once more below, and logged if that fails too
            time.sleep(0.05)
        try:
            return exposition(environ, start_response)
        except Exception:
            log.exception("collecting the metrics failed")
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"collecting the metrics failed\n"]

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access lines for scrapes."""

        def get_stderr(self) -> _LogStream:
            return _LogStream(log)

    class Server(ThreadingMixIn, WSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            log.warning("metrics request from %s failed", client_address, exc_info=True)

    server = make_server(host, port, app, Server, handler_class=Handler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
