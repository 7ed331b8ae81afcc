"""Rate limits of login, register and import, per client and per account.

Extra gunicorns of tenant1 run with low limits on the tenant's own database, beside the session
ones (which keep the defaults): every worker and replica counts in the one `rate_limits` table.
The `clean` fixture (through `client` and `db`) empties that table before each test.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import re
import threading
import time
from pathlib import Path

import httpx
import localstack
import psycopg
import pytest
import yaml

from service.config import ConfigError, RateLimits, Settings
from tests.conftest import SCHEMA_TABLES
from tests.utils import PASSWORD, assert_error, bearer, insert_user, login, new_username

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 600
LOW_LIMITS = {
    "WEB_CONCURRENCY": "2",
    "RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
    "RATE_LIMIT_LOGIN_PER_CLIENT": "4",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT": "2",
    "RATE_LIMIT_REGISTER_PER_CLIENT": "3",
    "RATE_LIMIT_REGISTER_PER_ACCOUNT": "2",
    "RATE_LIMIT_IMPORT_PER_CLIENT": "3",
    "RATE_LIMIT_IMPORT_PER_ACCOUNT": "2",
}
SHORT_WINDOW = 3
CSV = b"type,amount,description\nexpense,1.00,rate limit test\n"
WRONG_PASSWORD = "not-the-password"


# --- servers --------------------------------------------------------------------------------


def _start(stack, servers, **changes: str) -> localstack.Server:
    env = {**servers["tenant1"].env, **LOW_LIMITS, **changes}
    return stack.start_server("tenant1", env, localstack.free_port())


@pytest.fixture(scope="module")
def limited(stack, servers):
    """tenant1 with low limits and no trusted proxy: the client is the TCP peer, 127.0.0.1."""
    server = _start(stack, servers)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited_replica(stack, servers):
    """Another replica of `limited`: the same settings and database, its own workers."""
    server = _start(stack, servers)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied(stack, servers):
    """tenant1 with low limits behind one trusted proxy: the client is the last X-Forwarded-For entry."""
    server = _start(stack, servers, TRUSTED_PROXY_HOPS="1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def short_window(stack, servers):
    """tenant1 with a window of a few seconds, and no per-client import limit (0: off)."""
    server = _start(stack, servers, RATE_LIMIT_WINDOW_SECONDS=str(SHORT_WINDOW), RATE_LIMIT_IMPORT_PER_CLIENT="0")
    yield server
    server.stop()


# --- helpers --------------------------------------------------------------------------------


def _post(server: localstack.Server, path: str, *, client_ip: str | None = None, **kwargs) -> httpx.Response:
    """POST on a new connection (so successive calls can land on different workers)."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    if client_ip is not None:
        headers["X-Forwarded-For"] = client_ip
    return httpx.post(f"{server.url}{path}", headers=headers, timeout=30, **kwargs)


def _login(server, username: str, password: str = PASSWORD, **kwargs) -> httpx.Response:
    return _post(server, "/login", json={"username": username, "password": password}, **kwargs)


def _register(server, username: str, **kwargs) -> httpx.Response:
    return _post(server, "/register", json={"username": username, "password": PASSWORD}, **kwargs)


def _import(server, token: str, **kwargs) -> httpx.Response:
    headers = {**bearer(token), "Content-Type": "text/csv"}
    return _post(server, "/transactions/import", content=CSV, headers=headers, **kwargs)


def _users(db: psycopg.Connection, count: int) -> list[str]:
    """Accounts made directly in the database, so no /register is counted."""
    names = [new_username() for _ in range(count)]
    for name in names:
        insert_user(db, name)
    return names


def _counters(db: psycopg.Connection) -> dict[tuple[str, str], int]:
    rows = db.execute("SELECT action, subject, hits FROM rate_limits").fetchall()
    return {(row["action"], row["subject"]): row["hits"] for row in rows}


def _count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - a fixed name


def _assert_limited(response: httpx.Response, scope: str, window: int = WINDOW) -> None:
    """A JSON 429 with the envelope, naming the limit, and a whole number of seconds to wait."""
    error = assert_error(response, 429, "rate_limited")
    assert {"client": "from this client", "account": "for this account"}[scope] in error["message"], error
    retry_after = response.headers.get("Retry-After", "")
    assert re.fullmatch(r"[0-9]+", retry_after), response.headers
    assert 1 <= int(retry_after) <= window
    assert "token" not in response.json()


def _ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    assert response.status_code == status, response.text
    return response


# --- per client -------------------------------------------------------------------------------


def test_login_limit_per_client_is_shared_by_every_worker_and_replica(db, limited, limited_replica):
    names = _users(db, 6)
    replicas = [limited, limited_replica]
    for index, name in enumerate(names[:4]):  # one login per account: only the client's limit counts
        _ok(_login(replicas[index % 2], name))
    # The 5th login from this client is refused by either replica, with the right password or not.
    _assert_limited(_login(limited, names[4]), "client")
    _assert_limited(_login(limited_replica, names[5], WRONG_PASSWORD), "client")
    assert _counters(db)[("login:client", "127.0.0.1")] == 6
    # A limited login is refused before its attempt is counted (or its password checked).
    assert db.execute("SELECT count(*) AS n FROM login_failures").fetchone()["n"] == 0


def test_parallel_requests_never_get_past_the_limit(db, limited, limited_replica):
    attempts = 12
    replicas = [limited, limited_replica]
    barrier = threading.Barrier(attempts)

    def attempt(index: int) -> int:
        barrier.wait()
        return _login(replicas[index % 2], new_username(), WRONG_PASSWORD).status_code

    with concurrent.futures.ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert sorted(statuses) == [401] * 4 + [429] * 8
    assert _counters(db)[("login:client", "127.0.0.1")] == attempts


def test_register_limit_per_client_refuses_before_creating_the_account(db, limited, limited_replica):
    names = [new_username() for _ in range(4)]
    for index, name in enumerate(names[:3]):
        _ok(_register([limited, limited_replica][index % 2], name), 201)
    _assert_limited(_register(limited_replica, names[3]), "client")
    stored = [row["username"] for row in db.execute("SELECT username FROM users ORDER BY id")]
    assert stored == names[:3]


def test_import_limit_per_client_refuses_before_importing(client, db, limited):
    names = _users(db, 4)
    tokens = [login(client, name) for name in names]  # on the session server: its counters are login's
    for token in tokens[:3]:
        _ok(_import(limited, token), 201)
    _assert_limited(_import(limited, tokens[3]), "client")
    assert _count(db, "transactions") == 3


# --- per account ----------------------------------------------------------------------------


def test_login_limit_per_account_applies_from_any_client_in_any_letter_case(db, proxied):
    name, other = _users(db, 2)
    _ok(_login(proxied, name, client_ip="198.51.100.1"))
    _ok(_login(proxied, name.upper(), client_ip="198.51.100.2"))
    _assert_limited(_login(proxied, f"  {name} ", client_ip="198.51.100.3"), "account")
    # The same client, whose own limit is far from reached, still logs in to another account.
    _ok(_login(proxied, other, client_ip="198.51.100.3"))
    counters = _counters(db)
    assert counters[("login:account", name)] == 3
    assert counters[("login:client", "198.51.100.3")] == 2


def test_register_limit_per_account_counts_any_letter_case(db, limited):
    name = new_username()
    _ok(_register(limited, name), 201)
    assert_error(_register(limited, name.upper()), 409, "username_taken")
    _assert_limited(_register(limited, f" {name.title()} "), "account")
    assert _count(db, "users") == 1
    assert _counters(db)[("register:account", name)] == 3


def test_import_limit_per_account_applies_from_any_client(client, db, proxied):
    name, other = _users(db, 2)
    token, other_token = login(client, name), login(client, other)
    _ok(_import(proxied, token, client_ip="192.0.2.1"), 201)
    _ok(_import(proxied, token, client_ip="192.0.2.2"), 201)
    _assert_limited(_import(proxied, token, client_ip="192.0.2.3"), "account")
    _ok(_import(proxied, other_token, client_ip="192.0.2.3"), 201)
    assert _count(db, "transactions") == 3


# --- the client's address -------------------------------------------------------------------


def test_forwarded_for_is_ignored_without_trusted_proxy_hops(db, limited):
    names = _users(db, 5)
    for index, name in enumerate(names[:4]):
        _ok(_login(limited, name, client_ip=f"203.0.113.{index + 1}"))
    _assert_limited(_login(limited, names[4], client_ip="203.0.113.99"), "client")
    assert {subject for action, subject in _counters(db) if action == "login:client"} == {"127.0.0.1"}


def test_forwarded_for_names_the_client_with_one_trusted_proxy_hop(db, proxied):
    names = _users(db, 10)
    for name in names[:4]:
        _ok(_login(proxied, name, client_ip="203.0.113.7"))
    _assert_limited(_login(proxied, names[4], client_ip="203.0.113.7"), "client")
    # Another client behind the same proxy is not limited, nor is the proxy's own address.
    _ok(_login(proxied, names[5], client_ip="203.0.113.8"))
    _ok(_login(proxied, names[6]))
    # Only the entry the trusted proxy appended counts: one a client sends ahead of it is ignored.
    _assert_limited(_login(proxied, names[7], client_ip="10.9.8.7, 203.0.113.7"), "client")
    # An IPv6 client counts as its /64, whichever address of it it uses.
    for index, name in enumerate(names[8:]):
        _ok(_login(proxied, name, client_ip=f"2001:db8:1:2::{index + 1}"))
    counters = {subject: hits for (action, subject), hits in _counters(db).items() if action == "login:client"}
    assert counters == {"203.0.113.7": 6, "203.0.113.8": 1, "127.0.0.1": 1, "2001:db8:1:2::/64": 2}


# --- the window -----------------------------------------------------------------------------


def test_limit_resets_when_its_window_ends_and_zero_turns_a_limit_off(client, db, short_window):
    (name,) = _users(db, 1)
    token = login(client, name)
    _ok(_import(short_window, token), 201)
    _ok(_import(short_window, token), 201)
    limited = _import(short_window, token)
    _assert_limited(limited, "account", SHORT_WINDOW)
    time.sleep(int(limited.headers["Retry-After"]) + 0.2)
    _ok(_import(short_window, token), 201)
    assert _count(db, "transactions") == 3
    # The new window counts from 1; RATE_LIMIT_IMPORT_PER_CLIENT=0 counted nothing at all.
    user_id = db.execute("SELECT id FROM users").fetchone()["id"]
    imports = {key: hits for key, hits in _counters(db).items() if key[0].startswith("import:")}
    assert imports == {("import:account", str(user_id)): 1}


def test_ended_windows_and_spent_login_failures_are_purged(stack, servers, db):
    db.execute(
        """
        INSERT INTO rate_limits (action, subject, hits, window_ends_at) VALUES
            ('login:client', '192.0.2.10', 9, now() - interval '1 second'),
            ('login:client', '192.0.2.11', 9, now() + interval '1 hour')
        """
    )
    db.execute(
        """
        INSERT INTO login_failures (username_key, failures, window_started_at, locked_until) VALUES
            ('lock-ran-out', 6, now() - interval '20 minutes', now() - interval '1 second'),
            ('old-window', 2, now() - interval '16 minutes', NULL),
            ('live-window', 2, now() - interval '14 minutes', NULL),
            ('live-lock', 6, now() - interval '1 day', now() + interval '1 minute')
        """
    )
    # A new worker purges on its first limited request (then once a minute).
    server = _start(stack, servers, WEB_CONCURRENCY="1")
    name = new_username()
    try:
        _ok(_register(server, name), 201)
    finally:
        server.stop()
    assert set(_counters(db)) == {
        ("login:client", "192.0.2.11"), ("register:client", "127.0.0.1"), ("register:account", name)
    }
    kept = {row["username_key"] for row in db.execute("SELECT username_key FROM login_failures")}
    assert kept == {"live-window", "live-lock"}


# --- documentation, settings, defaults ------------------------------------------------------


def test_swagger_documents_the_429_and_its_retry_after(servers):
    swagger = httpx.get(f"{servers['tenant1'].url}/swagger.json", timeout=30).json()
    for path in ("/register", "/login", "/transactions/import"):
        response = swagger["paths"][path]["post"]["responses"]["429"]
        assert response["schema"] == {"$ref": "#/definitions/Error"}
        assert response["headers"]["Retry-After"]["type"] == "integer"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_LOGIN_PER_CLIENT", "-1"),
        ("RATE_LIMIT_REGISTER_PER_ACCOUNT", "many"),
        ("RATE_LIMIT_IMPORT_PER_CLIENT", "1000001"),
        ("RATE_LIMIT_WINDOW_SECONDS", "0"),
        ("RATE_LIMIT_WINDOW_SECONDS", "86401"),
        ("TRUSTED_PROXY_HOPS", "-1"),
        ("TRUSTED_PROXY_HOPS", "6"),
    ],
)
def test_invalid_rate_limit_setting_is_refused_naming_it(servers, name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**servers["tenant1"].env, name: value})
    assert name in str(caught.value) and value in str(caught.value)


def test_settings_are_read_with_zero_meaning_off(servers):
    env = {**servers["tenant1"].env, **LOW_LIMITS, "RATE_LIMIT_LOGIN_PER_CLIENT": "0", "TRUSTED_PROXY_HOPS": "1"}
    settings = Settings.from_env(env)
    assert settings.rate_limits == RateLimits(
        window_seconds=WINDOW, login_per_client=0, login_per_account=2, register_per_client=3,
        register_per_account=2, import_per_client=3, import_per_account=2,
    )
    assert settings.trusted_proxy_hops == 1


def _postman_requests() -> dict[str, int]:
    collection = json.loads((ROOT / "tests" / "postman" / "finance.postman_collection.json").read_text())

    def walk(items):
        for item in items:
            yield from walk(item["item"]) if "item" in item else [item]

    paths = [item["request"]["url"]["raw"].split("}}", 1)[1].split("?")[0] for item in walk(collection["item"])]
    return {action: paths.count(path) for action, path in
            (("login", "/login"), ("register", "/register"), ("import", "/transactions/import"))}


def test_defaults_are_far_above_what_a_postman_run_does_and_the_suite_resets_them(servers):
    defaults = Settings.from_env({**servers["tenant1"].env}).rate_limits
    # The session servers (every other test's) run with the defaults.
    assert defaults == RateLimits()
    # Production runs with every limit on.
    assert defaults.window_seconds >= 60
    for action, scope in itertools.product(("login", "register", "import"), ("client", "account")):
        assert defaults.limit(action, scope) > 0, (action, scope)
    # Postman runs, all from one address: a hundred fit in a window, and three would even if every
    # request of a run were for one account.
    for action, count in _postman_requests().items():
        assert count > 0
        assert defaults.limit(action, "client") >= 100 * count, action
        assert defaults.limit(action, "account") >= 3 * count, action
    # The suite, from 127.0.0.1, outgrew these limits long ago (it registers and logs in far more
    # than a thousand users): it stays under them only because `clean` empties the counters before
    # each test (it truncates every table but the schema's own), never by loosening a default.
    assert "rate_limits" not in SCHEMA_TABLES and "login_failures" not in SCHEMA_TABLES
    # One account: test_auth's parallel guesses try 4 x LOGIN_MAX_FAILURES logins of one username,
    # its case test registers one username 4 times, test_csv imports at most a handful per user.
    assert defaults.login_per_account >= 2 * 4 * int(servers["tenant1"].env.get("LOGIN_MAX_FAILURES") or 5)
    assert defaults.register_per_account >= 2 * 4
    assert defaults.import_per_account >= 10 * 5


def test_kubernetes_deployments_trust_the_ingress_as_one_proxy_hop():
    kustomization = yaml.safe_load((ROOT / "kubernetes" / "base" / "kustomization.yaml").read_text())
    (settings,) = [entry for entry in kustomization["configMapGenerator"] if entry["name"] == "finance-settings"]
    assert "TRUSTED_PROXY_HOPS=1" in settings["literals"]
    for tenant_env in (ROOT / "tenants").glob("*/tenant.env"):
        assert "TRUSTED_PROXY_HOPS" not in localstack.read_env_file(tenant_env), tenant_env
