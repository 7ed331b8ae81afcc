"""Slow clients against gunicorn's sync workers, and the nginx that holds them for it.

The proxy is docker-compose.yml's: proxy/finance-proxy.conf.template, rendered with the variables
the compose file gives it (the upstream pointed at a gunicorn of this test) and included, like the
official image's nginx.conf includes it, into a copy of that nginx.conf whose paths point into a
folder of the test. A real nginx runs it in front of a real gunicorn (the production config, with
WORKERS sync workers) and a real PostgreSQL.

Every attack is made twice: through the proxy, where /health must keep answering within BOUND,
and straight at gunicorn, where the same attack must starve it, so that it is the proxy that
protects. All clients are 127.0.0.1, one address for the proxy's per-address limit (LIMIT_CONN
requests in flight): a request counts there once its header is complete, so a slow header never
does, while every slow body and slow reader does, and the attacks that need them stay below it.
All traffic goes to 127.0.0.1; every loop is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import localstack
import pytest
import yaml

from tests.utils import assert_error, auth_headers, new_username
from tests.utils.sizes import largest_export_bytes, nginx_size

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "proxy" / "finance-proxy.conf.template"
COMPOSE_FILE = ROOT / "docker-compose.yml"
TEMPLATE_TEXT = TEMPLATE.read_text()

# The dedicated gunicorn's sync workers: few, so that starving it takes few connections.
WORKERS = 2
# How long /health may take through the proxy while it is under attack.
BOUND = 1.0
# How long a probe of the bare gunicorn waits before it counts as starved.
STARVED_AFTER = 2.0
# How fast a slow reader reads, and its receive buffer (the kernel doubles it).
READ_RATE = 4096  # bytes a second
RECEIVE_BUFFER = 4096


def _directives(name: str) -> list[str]:
    """The values of a directive in the template, in order."""
    return [value.strip() for value in re.findall(rf"^\s*{name}\s+([^;]+);", TEMPLATE_TEXT, re.M)]


def _directive(name: str) -> str:
    """The value of a directive the template sets once."""
    (value,) = _directives(name)
    return value


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s?", value)
    assert match, f"{value!r}: the tests read timeouts in seconds"
    return float(match.group(1))


# Requests in flight per client address: the server's limit, then the Swagger UI files' own.
LIMIT_CONN, DOCS_LIMIT_CONN = (int(value.split()[-1]) for value in _directives("limit_conn"))
HEADER_TIMEOUT = _seconds(_directive("client_header_timeout"))
# The numbers the attacks below are sized with, which only make sense together.
assert WORKERS < LIMIT_CONN, "a slow body and a slow reader per worker, plus a probe, fit in the limit"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not found:
        pytest.fail("nginx is missing: run scripts/install (it apt-installs Debian's nginx)")
    return found


def _socket_buffer_limit() -> int:
    """The most the kernel buffers on the sending side of one TCP connection (tcp_wmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


# The export the slow readers fetch: larger than what the kernel would buffer between gunicorn and
# a client that reads nothing, so that without the proxy it pins the worker writing it.
EXPORT_BYTES = max(8 * 1024 * 1024, 2 * _socket_buffer_limit())


# --- the proxy as docker-compose.yml runs it --------------------------------------------------------


def compose_proxy_environment(tenant: str = "tenant1") -> dict[str, str]:
    """The environment docker-compose.yml gives the tenant's proxy (anchors and merges resolved)."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return {key: str(value) for key, value in services[f"{tenant}-proxy"]["environment"].items()}


def compose_app_environment(tenant: str = "tenant1") -> dict[str, str]:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return {key: str(value) for key, value in services[f"{tenant}-app"]["environment"].items()}


def envsubst(text: str, variables: dict[str, str], name_filter: str) -> str:
    """What the official image's entrypoint does to a template: `envsubst` of the variables whose
    names match NGINX_ENVSUBST_FILTER, in both forms ($NAME, ${NAME}); anything else stays."""
    names = {name for name in variables if re.search(name_filter, name)}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables[name] if name in names else match.group(0)

    return re.sub(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))", substitute, text)


# The official image's /etc/nginx/nginx.conf (nginx/pkg-oss, alpine/alpine/nginx.conf), which
# includes the rendered template inside `http { }`, with its paths moved into the test's folder:
# its error log, access log and temporary files (compiled into the image under /var/cache/nginx).
# Its `user nginx;` is ignored in the image, where nginx is not root; run as root, the test keeps
# the workers with the master, who alone could reach the folder otherwise.
IMAGE_NGINX_CONF = """\
{user}worker_processes  auto;

error_log  {dir}/error.log notice;

events {{
    worker_connections  1024;
}}

http {{
    {mime_types}
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  {dir}/access.log  main;

    sendfile        on;

    keepalive_timeout  65;

    client_body_temp_path {dir}/client_temp;
    proxy_temp_path       {dir}/proxy_temp;
    fastcgi_temp_path     {dir}/fastcgi_temp;
    uwsgi_temp_path       {dir}/uwsgi_temp;
    scgi_temp_path        {dir}/scgi_temp;

    include {dir}/conf.d/*.conf;
}}
"""


@dataclass
class Proxy:
    url: str
    port: int
    directory: Path
    process: subprocess.Popen

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-4000:] for path in (self.directory / "error.log",) if path.exists()
        )


def start_proxy(directory: Path, upstream: str) -> Proxy:
    """Render the template with docker-compose.yml's variables and run it in the foreground."""
    compose_env = compose_proxy_environment()
    name_filter = compose_env["NGINX_ENVSUBST_FILTER"]
    port = localstack.free_port()
    # The same variables as in docker-compose.yml; only their values point at this test's servers.
    values = {"FINANCE_UPSTREAM": upstream, "FINANCE_PROXY_LISTEN": f"127.0.0.1:{port}"}
    assert set(values) == {name for name in compose_env if re.search(name_filter, name)}
    rendered = envsubst(TEMPLATE_TEXT, values, name_filter)
    assert "${" not in rendered, "a template variable was left unrendered"
    (directory / "conf.d").mkdir(parents=True)
    (directory / "conf.d" / TEMPLATE.name.removesuffix(".template")).write_text(rendered)
    mime_types = Path("/etc/nginx/mime.types")
    main_conf = directory / "nginx.conf"
    main_conf.write_text(IMAGE_NGINX_CONF.format(
        dir=directory,
        user="user root;\n" if os.geteuid() == 0 else "",
        mime_types=f"include       {mime_types};" if mime_types.exists() else "",
    ))
    command = [
        _nginx(), "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(main_conf),
        "-g", f"daemon off; pid {directory / 'nginx.pid'};",
    ]
    checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, check=False, timeout=30)
    assert checked.returncode == 0, checked.stderr + (directory / "error.log").read_text(errors="replace")
    with (directory / "nginx.out").open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    proxy = Proxy(f"http://127.0.0.1:{port}", port, directory, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nginx exited with {process.returncode}:\n{proxy.log()}"
        try:
            if httpx.get(f"{proxy.url}/health/ready", timeout=2).status_code == 200:
                return proxy
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_proxy(proxy)
    pytest.fail(f"nginx did not serve /health/ready within 15 s:\n{proxy.log()}")


def stop_proxy(proxy: Proxy) -> None:
    if proxy.process.poll() is None:
        proxy.process.send_signal(signal.SIGTERM)
        try:
            proxy.process.wait(10)
        except subprocess.TimeoutExpired:
            proxy.process.kill()
            proxy.process.wait()


@pytest.fixture(scope="module")
def gunicorn(stack, tenant_envs) -> Iterator[localstack.Server]:
    """A gunicorn of tenant1 with the production config, WORKERS sync workers and the proxy setting
    docker-compose.yml gives the app."""
    env = {
        **tenant_envs["tenant1"],
        "WEB_CONCURRENCY": str(WORKERS),
        "TRUSTED_PROXY_HOPS": compose_app_environment()["TRUSTED_PROXY_HOPS"],
    }
    server = stack.start_server("tenant1", env, localstack.free_port(), metrics_port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(gunicorn, tmp_path_factory) -> Iterator[Proxy]:
    running = start_proxy(tmp_path_factory.mktemp("nginx"), gunicorn.url.removeprefix("http://"))
    yield running
    stop_proxy(running)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --- clients ----------------------------------------------------------------------------------------


def health(base_url: str, timeout: float) -> float | None:
    """Seconds a GET /health on a new connection took to answer 200; None if no answer in time."""
    start = time.monotonic()
    try:
        response = httpx.get(f"{base_url}/health", timeout=timeout)
    except httpx.TimeoutException:
        return None
    assert response.status_code == 200, response.text
    return time.monotonic() - start


def health_at_once(base_url: str, count: int) -> list[float | None]:
    """`count` /health probes at the same time: each needs a worker of its own."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: health(base_url, BOUND), range(count)))


def every_worker_free_after(base_url: str, within: float) -> float:
    """Seconds until WORKERS probes at once all answer within BOUND; fails past `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if all(latency is not None for latency in health_at_once(base_url, WORKERS)):
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"the workers of {base_url} were not all free within {within} s")


def probe_for(base_url: str, seconds: float, interval: float = 0.25) -> list[float | None]:
    """/health latencies, one probe every `interval`, for `seconds`."""
    latencies: list[float | None] = []
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / interval) + 1):
        if time.monotonic() >= deadline:
            break
        latencies.append(health(base_url, BOUND))
        time.sleep(interval)
    return latencies


def wait_until_served(base_url: str, within: float = 10) -> float:
    """Seconds until /health answers again within BOUND; fails past `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if health(base_url, BOUND) is not None:
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"{base_url} did not answer /health within {within} s")


def _connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        # Before connecting: the window the client announces is fixed in the handshake.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with a reset, as a client that gives up does: the server's next write fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Trickle:
    """Connections that each send the start of a request, then one more piece every `interval`:
    slow headers (slowloris) or a slow body. Records when the server closed each one."""

    def __init__(self, port: int, count: int, start: bytes, piece: bytes, interval: float = 0.5,
                 give_up: float = 30) -> None:
        self.port, self.count, self.start, self.piece = port, count, start, piece
        self.interval, self.give_up = interval, give_up
        self.sockets: list[socket.socket] = []
        self.closed_after: dict[int, float] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickle:
        self.opened = time.monotonic()
        for _ in range(self.count):
            sock = _connect(self.port)
            sock.sendall(self.start)
            self.sockets.append(sock)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = self.opened + self.give_up
        while not self._halt.wait(self.interval) and time.monotonic() < deadline:
            for index, sock in enumerate(self.sockets):
                if index in self.closed_after:
                    continue
                try:
                    readable, _, _ = select.select([sock], [], [], 0)
                    if readable:
                        sock.recv(65536)  # nothing or an answer: either way the server is done
                        raise ConnectionError
                    sock.sendall(self.piece)
                except OSError:
                    self.closed_after[index] = time.monotonic() - self.opened

    @property
    def still_open(self) -> int:
        return self.count - len(self.closed_after)

    def wait_closed(self, within: float) -> None:
        deadline = time.monotonic() + within
        while self.still_open and time.monotonic() < deadline:
            time.sleep(0.1)

    def __exit__(self, *exc_info: object) -> None:
        self._halt.set()
        self._thread.join(5)
        for sock in self.sockets:
            _reset(sock)


def slow_headers(port: int, count: int) -> Trickle:
    """A request line, then a header line every half second, never the blank line that ends them."""
    return Trickle(port, count, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: 1\r\n")


def slow_bodies(port: int, count: int) -> Trickle:
    """A complete header announcing a 64 KiB body, then 16 bytes of it every half second."""
    start = (
        b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 65536\r\n\r\n{"
    )
    return Trickle(port, count, start, b" " * 16)


class SlowReader(threading.Thread):
    """GETs `path` with a small receive buffer and reads the answer at READ_RATE."""

    def __init__(self, port: int, path: str, headers: dict[str, str], give_up: float = 60) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.headers, self.give_up = port, path, headers, give_up
        self.head = b""
        self.received = 0
        self.finished = False
        self._halt = threading.Event()
        self._answered = threading.Event()
        self.sock = _connect(port, RECEIVE_BUFFER)

    def run(self) -> None:
        lines = [f"GET {self.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + self.give_up
        chunk = 1024
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                data = self.sock.recv(chunk)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                self.finished = True
                break
            if len(self.head) < 64:
                self.head += data[:64]
                self._answered.set()
            self.received += len(data)
            self._halt.wait(chunk / READ_RATE)
        self._answered.set()

    @property
    def status(self) -> int | None:
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", self.head)
        return int(match.group(1)) if match else None

    def wait_answered(self, within: float) -> int | None:
        self._answered.wait(within)
        return self.status

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        _reset(self.sock)


# --- the export the slow readers fetch ---------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    headers: dict[str, str]
    size: int
    seconds: float  # how long one export takes to fetch at full speed through the proxy


@pytest.fixture(scope="module")
def export(proxy) -> Export:
    """A user whose CSV export is EXPORT_BYTES or more, built through the proxy with the API."""
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        headers = auth_headers(client)
        # About 520 bytes per exported row; each upload stays under the 1 MiB body limit.
        rows_per_file = 1900
        files = -(-EXPORT_BYTES // (rows_per_file * 500))
        for file in range(files):
            lines = ["type,amount,category,description"]
            lines += [
                f"expense,{1 + row % 997}.25,groceries,slow reader {file:02d}-{row:05d} {'x' * 440}"
                for row in range(rows_per_file)
            ]
            body = ("\n".join(lines) + "\n").encode()
            assert len(body) < 1024 * 1024
            upload = {**headers, "Content-Type": "text/csv"}
            response = client.post("/transactions/import", content=body, headers=upload)
            assert response.status_code == 201, response.text
        start = time.monotonic()
        response = client.get("/transactions/export", headers=headers)
        seconds = time.monotonic() - start
    assert response.status_code == 200
    assert len(response.content) >= EXPORT_BYTES
    return Export(headers, len(response.content), seconds)


# --- the proxy's configuration ------------------------------------------------------------------------


def test_proxy_buffers_the_largest_answer_and_holds_requests_until_complete():
    assert _directive("proxy_buffering") == "on"
    assert _directive("proxy_request_buffering") == "on"
    count, size = _directive("proxy_buffers").split()
    in_memory = int(count) * nginx_size(size)
    assert in_memory + nginx_size(_directive("proxy_max_temp_file_size")) >= largest_export_bytes()
    assert nginx_size(_directive("client_max_body_size")) == 1024 * 1024, "the app's own limit"
    # Fewer requests in flight per address than a gunicorn of docker-compose.yml has workers: it
    # runs with gunicorn.conf.py's default.
    compose_settings = {**compose_app_environment(), **localstack.read_env_file(ROOT / "tenants/tenant1/tenant.env")}
    assert "WEB_CONCURRENCY" not in compose_settings
    default = re.search(r'"WEB_CONCURRENCY", "(\d+)"', (ROOT / "service" / "gunicorn.conf.py").read_text())
    assert default and int(default.group(1)) > LIMIT_CONN
    assert _directive("limit_conn_status") == "429"
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"):
        assert _seconds(_directive(name)) <= 10, name
    # gunicorn's worker timeout (30 s) ends a stuck request before nginx gives up on it.
    assert _seconds(_directive("proxy_read_timeout")) > 30
    assert _directive("server_tokens") == "off"
    assert _directive("proxy_set_header X-Forwarded-For") == "$remote_addr"


# --- slow senders ---------------------------------------------------------------------------------------


def test_slow_headers_starve_gunicorn_but_not_the_proxy(proxy, gunicorn):
    # As in the review: four slowloris connections per worker (eight starved its four workers for a
    # minute). A header that is never complete does not count against the per-address limit.
    count = 4 * WORKERS
    with slow_headers(proxy.port, count) as attack:
        through_proxy = probe_for(proxy.url, HEADER_TIMEOUT - 2)
        # gunicorn never saw them: both of its workers are free.
        assert health(gunicorn.url, BOUND) is not None
        assert attack.still_open == count, "every slow header was still being received"
        attack.wait_closed(HEADER_TIMEOUT + 3)
    assert all(latency is not None and latency < BOUND for latency in through_proxy), through_proxy
    # nginx gives a whole header client_header_timeout, however steadily it trickles in.
    dropped_after = sorted(attack.closed_after.values())
    assert attack.still_open == 0, f"nginx dropped only {dropped_after} within {HEADER_TIMEOUT + 3} s"
    assert all(HEADER_TIMEOUT - 1 <= after <= HEADER_TIMEOUT + 3 for after in dropped_after), dropped_after

    # The same attack on the bare gunicorn: each worker waits for the end of a header that never
    # comes, and /health goes unanswered.
    recovered = starve_bare_gunicorn(slow_headers, gunicorn.url, count)
    print(
        f"\nslow headers x{count}: /health through the proxy max {max(through_proxy):.3f} s "
        f"over {len(through_proxy)} probes; nginx dropped them after "
        f"{dropped_after[0]:.1f}-{dropped_after[-1]:.1f} s; "
        f"bare gunicorn: no answer within {STARVED_AFTER} s, served again {recovered:.2f} s after the attack"
    )


def starve_bare_gunicorn(attack, url: str, count: int) -> float:
    """Run the attack on the bare gunicorn: /health goes unanswered while it lasts. Returns how
    long after it gunicorn serves again."""
    with attack(_port(url), count) as running:
        time.sleep(0.5)
        starved = health(url, STARVED_AFTER)
        assert running.still_open == count
    assert starved is None, f"gunicorn answered /health in {starved:.2f} s under the attack"
    return wait_until_served(url)


def test_slow_bodies_starve_gunicorn_but_not_the_proxy(proxy, gunicorn):
    # One per worker: enough to pin every worker of the bare gunicorn, and below the proxy's limit
    # with a probe on top (a complete header counts against it).
    count = WORKERS
    with slow_bodies(proxy.port, count) as attack:
        through_proxy = probe_for(proxy.url, 3)
        direct = health(gunicorn.url, BOUND)
        assert attack.still_open == count
    assert all(latency is not None and latency < BOUND for latency in through_proxy), through_proxy
    assert direct is not None, "the proxy passed an incomplete body on to gunicorn"

    recovered = starve_bare_gunicorn(slow_bodies, gunicorn.url, count)
    print(
        f"\nslow bodies x{count}: /health through the proxy max {max(through_proxy):.3f} s; "
        f"bare gunicorn: no answer within {STARVED_AFTER} s, served again {recovered:.2f} s after"
    )


# --- slow readers -----------------------------------------------------------------------------------


def test_slow_readers_of_a_large_export_starve_gunicorn_but_not_the_proxy(proxy, gunicorn, export):
    # One per worker, below the proxy's limit with a probe on top: each reads EXPORT_BYTES or
    # more at READ_RATE, which would take the better part of an hour.
    count = WORKERS
    readers = [SlowReader(proxy.port, "/transactions/export", export.headers) for _ in range(count)]
    for reader in readers:
        reader.start()
    try:
        assert [reader.wait_answered(30) for reader in readers] == [200] * count
        started = time.monotonic()
        # nginx reads each export from gunicorn at once: both workers are free again within about
        # the time a fast client takes to fetch one, while the readers have barely begun.
        freed = every_worker_free_after(gunicorn.url, within=export.seconds * count + 10)
        through_proxy = probe_for(proxy.url, 2)
        read_so_far = [reader.received for reader in readers]
        elapsed = time.monotonic() - started
    finally:
        for reader in readers:
            reader.stop()
    assert all(latency is not None and latency < BOUND for latency in through_proxy), through_proxy
    assert all(not reader.finished for reader in readers)
    assert max(read_so_far) < export.size / 10, read_so_far

    # The same readers on the bare gunicorn: once the kernel's buffers are full, each worker waits
    # for its reader. Past the time nginx needed to take everything, /health still goes unanswered.
    readers = [SlowReader(_port(gunicorn.url), "/transactions/export", export.headers) for _ in range(count)]
    for reader in readers:
        reader.start()
    try:
        assert [reader.wait_answered(30) for reader in readers] == [200] * count
        time.sleep(freed + 1)
        starved = health(gunicorn.url, STARVED_AFTER)
        direct_read = [reader.received for reader in readers]
    finally:
        for reader in readers:
            reader.stop()
    assert starved is None, f"gunicorn answered /health in {starved:.2f} s while its workers wrote to slow readers"
    recovered = wait_until_served(gunicorn.url)
    print(
        f"\nslow readers x{count} of a {export.size / 1e6:.1f} MB export ({export.seconds:.2f} s at full speed): "
        f"through the proxy gunicorn free after {freed:.2f} s, /health max {max(through_proxy):.3f} s, "
        f"readers at {max(read_so_far) / 1024:.0f} KiB after {elapsed:.1f} s; bare gunicorn: no answer "
        f"within {STARVED_AFTER} s with readers at {max(direct_read) / 1024:.0f} KiB, served again "
        f"{recovered:.2f} s after they gave up"
    )


# --- nginx's own answers ---------------------------------------------------------------------------


def _is_nginx_error(response: httpx.Response, status: int, code: str) -> dict:
    error = assert_error(response, status, code)
    # nginx answered, not the app (whose Server header is finance-api), and names no version.
    assert response.headers["server"] == "nginx"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    return error


def test_a_body_over_the_limit_is_refused_by_nginx_in_the_json_envelope(proxy):
    response = httpx.post(
        f"{proxy.url}/transactions/import", content=b"type,amount\n" + b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "text/csv"}, timeout=30,
    )
    _is_nginx_error(response, 413, "payload_too_large")


def test_a_request_nginx_cannot_parse_gets_the_json_envelope(proxy):
    with _connect(proxy.port) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        raw = b""
        for _ in range(100):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"content-type: application/json" in head.lower()
    assert b"<html" not in body.lower() and b'"code": "bad_request"' in body


def test_more_requests_in_flight_than_the_limit_get_a_json_429(proxy, export):
    readers = [SlowReader(proxy.port, "/transactions/export", export.headers) for _ in range(LIMIT_CONN)]
    for reader in readers:
        reader.start()
    try:
        assert [reader.wait_answered(30) for reader in readers] == [200] * LIMIT_CONN
        refused = httpx.get(f"{proxy.url}/health", timeout=5)
    finally:
        for reader in readers:
            reader.stop()
    _is_nginx_error(refused, 429, "too_many_requests")
    assert refused.headers["retry-after"] == "1"
    # The readers gave up: their places are free again.
    wait_until_served(proxy.url, within=5)


def test_a_browser_loading_the_swagger_ui_is_never_refused(proxy):
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert client.get("/swagger.json").status_code == 200
    assets = re.findall(r'(?:href|src)="(/swaggerui/[^"]+)"', page.text)
    # More files than the per-address limit of the API, all fetched at once as a browser does.
    assert LIMIT_CONN < len(assets) <= DOCS_LIMIT_CONN, assets
    for _ in range(10):
        with ThreadPoolExecutor(len(assets)) as pool:
            statuses = list(pool.map(lambda path: httpx.get(f"{proxy.url}{path}", timeout=10).status_code, assets))
        assert statuses == [200] * len(assets)


def test_the_apps_answers_pass_through_with_its_own_headers(proxy):
    response = httpx.get(f"{proxy.url}/no-such-path", timeout=5)
    assert_error(response, 404)
    assert response.headers["server"] == "finance-api"
    assert response.headers.get_list("cache-control") == ["no-store"]


def test_the_app_counts_the_client_nginx_saw_not_a_forwarded_for_it_sent(proxy, stack):
    spoofed = "203.0.113.77"
    with stack.cluster.connect("tenant1") as conn:
        def hits(subject: str) -> int:
            row = conn.execute(
                "SELECT hits FROM rate_limits WHERE action = 'register:client' AND subject = %s", (subject,)
            ).fetchone()
            return row[0] if row else 0

        before = hits("127.0.0.1")
        response = httpx.post(
            f"{proxy.url}/register", json={"username": new_username(), "password": "password@123"},
            headers={"X-Forwarded-For": spoofed}, timeout=10,
        )
        assert response.status_code == 201, response.text
        assert hits(spoofed) == 0
        assert hits("127.0.0.1") == before + 1
