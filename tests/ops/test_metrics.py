"""Prometheus metrics of a real gunicorn: every worker counts, the master serves the sum on a port of
its own, and a killed worker's counts stay in it.

The server here is tenant1's app on its demo database, started for this module with several sync
workers and its own metrics port and multiprocess directory (scripts/localstack.py start_server).
Counts are compared before and after what each test sends, parsed with prometheus_client's own
parser from what the metrics port serves.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import localstack
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.metrics import UNMATCHED_ROUTE
from tests.utils import PASSWORD, register

WORKERS = 3
HEALTH = ("GET", "/health", "200")
TRANSACTION_RULE = "/transactions/<int(max=9223372036854775807):transaction_id>"

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(scope="module")
def metered(stack, tenant_envs):
    """tenant1's app with WORKERS sync workers; its metrics on a free port of their own."""
    env = {**tenant_envs["tenant1"], "WEB_CONCURRENCY": str(WORKERS)}
    server = stack.start_server("tenant1", env, localstack.free_port())
    wait_for_workers(server, WORKERS)
    yield server
    server.stop()


def scrape(server: localstack.Server) -> Samples:
    response = httpx.get(server.metrics_url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_counted(samples: Samples, method: str, route: str, status: str) -> float:
    return value(samples, "finance_http_requests_total", method=method, route=route, status=status)


def workers_of(server: localstack.Server) -> set[int]:
    """The pids of the master's children: its workers."""
    pid = server.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_for_workers(server: localstack.Server, count: int, gone: int | None = None, timeout: float = 30) -> set[int]:
    """Wait until the master has `count` workers (none of them `gone`) that each sampled their pool."""
    directory = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = workers_of(server)
        booted = {pid for pid in workers if (directory / f"gauge_livesum_{pid}.db").exists()}
        if len(workers) == count and gone not in workers and booted == workers:
            return workers
        time.sleep(0.1)
    pytest.fail(f"the server did not get {count} booted workers within {timeout} s")


def per_worker(server: localstack.Server, tmp_path: Path, method: str, route: str, status: str) -> dict[int, float]:
    """What each worker's own file counts for one series (collected from a copy of that file alone)."""
    directory = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])
    counts = {}
    for path in directory.glob("counter_*.db"):
        alone = tmp_path / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in MultiProcessCollector(None, path=str(alone)).collect()
            for sample in family.samples
        }
        counts[int(path.stem.split("_")[1])] = requests_counted(samples, method, route, status)
    return counts


def send(server: localstack.Server, requests: list[tuple[str, str]], threads: int = 6) -> list[int]:
    """Each request on a fresh connection, several at a time, so every worker takes some."""

    def one(request: tuple[str, str]) -> int:
        method, path = request
        return httpx.request(method, server.url + path, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, requests))


# --- the endpoint ---------------------------------------------------------------------------------


def test_metrics_are_served_on_their_own_port_and_not_by_the_app(metered):
    assert metered.metrics_url and metered.metrics_url != metered.url + "/metrics"
    response = httpx.get(metered.metrics_url, timeout=10)
    assert response.status_code == 200
    assert "# TYPE finance_http_requests_total counter" in response.text
    assert "# TYPE finance_http_request_duration_seconds histogram" in response.text
    # The app itself has no such route: what the Ingress reaches stays the documented API.
    assert httpx.get(metered.url + "/metrics", timeout=10).status_code == 404


def test_requests_on_every_worker_are_all_counted_by_route_and_status(metered, tmp_path):
    before = scrape(metered)
    requests = (
        [("GET", "/health")] * 90
        + [("GET", f"/transactions/{n}") for n in range(1, 16)]  # 401: no token
        + [("GET", f"/no-such-path-{n}") for n in range(10)]
        + [("DELETE", "/health")] * 5
    )
    statuses = send(metered, requests)
    assert Counter(statuses) == {200: 90, 401: 15, 404: 10, 405: 5}
    after = scrape(metered)

    def added(method: str, route: str, status: str) -> float:
        return requests_counted(after, method, route, status) - requests_counted(before, method, route, status)

    assert added(*HEALTH) == 90
    # By the URL rule: fifteen ids, one series, and no path of them anywhere.
    assert added("GET", TRANSACTION_RULE, "401") == 15
    assert added("GET", UNMATCHED_ROUTE, "404") == 10
    assert added("DELETE", UNMATCHED_ROUTE, "405") == 5
    for name, labels in after:
        if name.startswith("finance_http_"):
            route = dict(labels).get("route", "")
            assert "no-such-path" not in route and not any(char.isdigit() for char in route.split(">")[-1]), route

    # The total is the sum of what each worker's own file holds, and more than one worker served.
    counts = per_worker(metered, tmp_path, *HEALTH)
    assert sum(counts.values()) == requests_counted(after, *HEALTH)
    assert len([pid for pid, count in counts.items() if count]) >= 2, counts


def test_latency_is_a_histogram_by_route(metered):
    before = scrape(metered)
    send(metered, [("GET", "/health")] * 20)
    after = scrape(metered)
    name = "finance_http_request_duration_seconds"
    labels = {"method": "GET", "route": "/health"}

    def added(sample: str, **extra: str) -> float:
        return value(after, sample, **labels, **extra) - value(before, sample, **labels, **extra)

    assert added(f"{name}_count") == 20
    assert added(f"{name}_bucket", le="+Inf") == 20
    assert 0 < added(f"{name}_sum") < 20 * 10
    bounds = sorted(
        (float(dict(key)["le"]), count) for (sample, key), count in after.items()
        if sample == f"{name}_bucket" and dict(key)["route"] == "/health" and dict(key)["method"] == "GET"
    )
    assert len(bounds) > 5
    assert [count for _, count in bounds] == sorted(count for _, count in bounds), "buckets are cumulative"
    # Answering /health takes well under a second.
    assert value(after, f"{name}_bucket", **labels, le="1.0") == value(after, f"{name}_count", **labels)


# --- logins ---------------------------------------------------------------------------------------


def test_failed_logins_and_lockouts_are_counted(metered):
    with httpx.Client(base_url=metered.url, timeout=30) as client:
        username = register(client)["username"]
        before = scrape(metered)
        assert client.post("/login", json={"username": username, "password": PASSWORD}).status_code == 200
        wrong = {"username": username, "password": "not-the-password-1"}
        attempts = Settings.from_env(metered.env).login_max_failures + 1
        statuses = [client.post("/login", json=wrong) for _ in range(attempts)]
    after = scrape(metered)

    def added(reason: str) -> float:
        name = "finance_login_failures_total"
        return value(after, name, reason=reason) - value(before, name, reason=reason)

    refused = [response.status_code for response in statuses]
    locked = [r for r in statuses if r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"]
    assert refused.count(401) >= 1 and locked, refused
    assert added("invalid_credentials") == refused.count(401)
    assert added("locked") == len(locked)


def test_login_failure_series_exist_before_any_failure(metered):
    samples = scrape(metered)
    for reason in ("invalid_credentials", "locked"):
        assert ("finance_login_failures_total", frozenset({("reason", reason)})) in samples


# --- the connection pool --------------------------------------------------------------------------


def test_pool_usage_is_reported_for_the_live_workers(metered):
    pool_size = Settings.from_env(metered.env).db_pool_size
    before = scrape(metered)
    assert value(before, "finance_db_pool_connections_max") == WORKERS * pool_size
    for name in ("finance_db_pool_connections", "finance_db_pool_connections_idle",
                 "finance_db_pool_requests_waiting", "finance_db_pool_request_errors_total",
                 "finance_db_pool_connection_errors_total", "finance_db_pool_connections_lost_total"):
        assert (name, frozenset()) in before, name
    assert 0 <= value(before, "finance_db_pool_connections_idle") <= value(before, "finance_db_pool_connections")
    assert value(before, "finance_db_pool_connections") <= WORKERS * pool_size

    # Each readiness check borrows a connection; the workers' samplers report them within a second.
    assert set(send(metered, [("GET", "/health/ready")] * 12)) == {200}
    deadline, lent_name = time.monotonic() + 5, "finance_db_pool_requests_total"
    while time.monotonic() < deadline:
        lent = value(scrape(metered), lent_name) - value(before, lent_name)
        if lent >= 12:
            break
        time.sleep(0.2)
    assert lent >= 12


# --- a worker killed --------------------------------------------------------------------------------


def test_counts_of_a_killed_worker_stay_in_the_sum(metered, tmp_path):
    send(metered, [("GET", "/health")] * 30)
    counts = per_worker(metered, tmp_path / "before", *HEALTH)
    victim = max((pid for pid in counts if pid in workers_of(metered)), key=counts.__getitem__)
    assert counts[victim] > 0
    before = scrape(metered)

    os.kill(victim, signal.SIGKILL)
    wait_for_workers(metered, WORKERS, gone=victim)
    after = scrape(metered)

    # Every request series is as it was, the dead worker's share included; nothing new was served.
    requests = {key: count for key, count in after.items() if key[0].startswith("finance_http_")}
    assert requests == {key: count for key, count in before.items() if key[0].startswith("finance_http_")}
    assert requests_counted(after, *HEALTH) >= counts[victim]
    # Its gauges went with it: the pools counted are those of the live workers only.
    pool_size = Settings.from_env(metered.env).db_pool_size
    assert value(after, "finance_db_pool_connections_max") == WORKERS * pool_size
    # And the replacement counts on top.
    send(metered, [("GET", "/health")] * 5)
    assert requests_counted(scrape(metered), *HEALTH) == requests_counted(after, *HEALTH) + 5


# --- start and failure ------------------------------------------------------------------------------


def test_a_restarted_server_starts_counting_from_zero(stack, tenant_envs):
    env, port = tenant_envs["tenant1"], localstack.free_port()
    first = stack.start_server("tenant1", env, port)
    try:
        send(first, [("GET", "/health")] * 3)
        assert requests_counted(scrape(first), *HEALTH) == 3
    finally:
        first.stop()
    # Same port, so the same directory: the first run's files are wiped by the new master.
    second = stack.start_server("tenant1", env, port)
    try:
        assert second.env["PROMETHEUS_MULTIPROC_DIR"] == first.env["PROMETHEUS_MULTIPROC_DIR"]
        assert requests_counted(scrape(second), *HEALTH) == 0
    finally:
        second.stop()


def test_a_taken_metrics_port_stops_the_server_with_a_json_line(stack, tenant_envs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = localstack.free_port()
        with pytest.raises(RuntimeError, match="exited with code 1"):
            stack.start_server("tenant1", tenant_envs["tenant1"], port, metrics_port=taken.getsockname()[1])
    log = (stack.directory / "logs" / f"tenant1-{port}.log").read_text().splitlines()
    lines = [json.loads(line) for line in log if line.strip()]
    assert any("Cannot serve metrics" in line["message"] for line in lines), log


def test_metrics_port_zero_turns_the_endpoint_off(stack, tenant_envs):
    port = localstack.free_port()
    server = stack.start_server("tenant1", tenant_envs["tenant1"], port, metrics_port=0)
    try:
        assert server.metrics_url == ""
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    finally:
        server.stop()
    log = (stack.directory / "logs" / f"tenant1-{port}.log").read_text().splitlines()
    assert any("Metrics are off" in json.loads(line)["message"] for line in log if line.strip())


@pytest.mark.parametrize(
    ("variable", "value"), [("METRICS_PORT", "9102x"), ("METRICS_PORT", "70000"), ("PROMETHEUS_MULTIPROC_DIR", "")]
)
def test_gunicorn_refuses_a_bad_metrics_setting(tenant_envs, variable, value):
    env = {**tenant_envs["tenant1"], "PORT": str(localstack.free_port()), "HOST": "127.0.0.1", variable: value}
    result = subprocess.run(
        [str(localstack.VENV_PYTHON), "-m", "gunicorn", "-c", str(localstack.GUNICORN_CONF), "service:create_app()"],
        cwd=localstack.ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert variable in result.stderr and "finance service:" in result.stderr
