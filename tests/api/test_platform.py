"""Errors, probes, request ids, logs, the Swagger document and migrations of a running tenant."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import json
import re
import shutil
import subprocess
import time
import uuid

import httpx
import localstack
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from service import create_app, migrate
from service.config import Settings
from tests.utils import assert_error, auth_headers, login, poll, register
from tests.utils.webhooks import RECEIVER

# Paths flask-restx and Flask add for the documentation itself ("/" is restx's root, a 404), and the
# OpenAPI 3 document converted from /swagger.json (service/api/openapi.py).
DOC_RULES = {
    "/", "/swagger.json", "/openapi.json", "/docs", "/swaggerui/<path:filename>", "/static/<path:filename>",
}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no-such-path", 404, "not_found"),
        ("GET", "/transactions/not-a-number", 404, "not_found"),
        ("GET", "/transactions/99999999999999999999", 404, "not_found"),
        ("DELETE", "/health", 405, "method_not_allowed"),
        ("PUT", "/transactions", 405, "method_not_allowed"),
        ("GET", "/register", 405, "method_not_allowed"),
    ],
)
def test_routing_errors_are_json(client, method, path, status, code):
    response = client.request(method, path)
    assert_error(response, status, code)
    assert "<html" not in response.text.lower()


def test_method_not_allowed_names_the_allowed_methods(client):
    response = client.delete("/health")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/transactions"),
        ("POST", "/transactions"),
        ("POST", "/transaction"),
        ("GET", "/transactions/1"),
        ("PATCH", "/transactions/1"),
        ("DELETE", "/transactions/1"),
        ("GET", "/transactions/export"),
        ("POST", "/transactions/import"),
        ("GET", "/accounts"),
        ("POST", "/accounts"),
        ("GET", "/accounts/1"),
        ("PATCH", "/accounts/1"),
        ("DELETE", "/accounts/1"),
        ("GET", "/transfers"),
        ("POST", "/transfers"),
        ("GET", "/transfers/1"),
        ("PATCH", "/transfers/1"),
        ("DELETE", "/transfers/1"),
        ("GET", "/budgets"),
        ("POST", "/budgets"),
        ("GET", "/budgets/1"),
        ("PATCH", "/budgets/1"),
        ("DELETE", "/budgets/1"),
        ("GET", "/recurring-transactions"),
        ("POST", "/recurring-transactions"),
        ("GET", "/recurring-transactions/1"),
        ("PATCH", "/recurring-transactions/1"),
        ("DELETE", "/recurring-transactions/1"),
        ("GET", "/categories"),
        ("GET", "/analytics"),
        ("GET", "/tokens"),
        ("POST", "/tokens"),
        ("DELETE", "/tokens/1"),
        ("GET", "/events"),
        ("GET", "/webhooks"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks/1"),
        ("PATCH", "/webhooks/1"),
        ("DELETE", "/webhooks/1"),
        ("POST", "/webhooks/1/test"),
        ("GET", "/webhooks/1/deliveries"),
        ("POST", "/logout"),
        ("POST", "/password"),
        ("DELETE", "/me"),
    ],
)
def test_protected_endpoints_need_a_token(client, method, path):
    assert_error(client.request(method, path), 401, "authentication_required")


def test_oversized_body_is_413_json(client):
    headers = auth_headers(client)
    big = {"type": "expense", "amount": "1.00", "description": "x" * (1024 * 1024)}
    assert_error(client.post("/transactions", json=big, headers=headers), 413, "payload_too_large")


def test_liveness_answers_without_the_database_naming_the_tenant_and_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    version = importlib.metadata.version("finance-service")
    assert response.json() == {"status": "ok", "tenant": "tenant1", "version": version}


def test_readiness_is_200_when_database_and_schema_are_current(client, servers):
    latest = sorted(path.stem for path in migrate.MIGRATIONS_DIR.glob("*.sql"))[-1]
    for tenant, server in servers.items():
        ready = httpx.get(f"{server.url}/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready", "tenant": tenant, "version": importlib.metadata.version("finance-service"),
            "schema_version": latest,
        }


def test_request_id_is_honoured_and_returned(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123.def"})
    assert response.headers["x-request-id"] == "abc-123.def"


def test_unsafe_request_id_is_replaced(client):
    response = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


def test_access_log_lines_are_json_with_request_id(client, servers, stack):
    client.get("/health", headers={"X-Request-ID": "log-probe-42"})
    log_file = next((stack.directory / "logs").glob(f"tenant1-{servers['tenant1'].url.rsplit(':', 1)[1]}.log"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
        probe = [line for line in lines if line.get("request_id") == "log-probe-42"]
        if probe:
            break
        time.sleep(0.1)
    assert probe, "no access line for the request"
    assert probe[0]["tenant"] == "tenant1"
    assert probe[0]["status"] == 200
    assert probe[0]["route"] == "/health"


def test_swagger_is_a_valid_swagger_2_document(client):
    document = client.get("/swagger.json").json()
    assert document["swagger"] == "2.0"
    validate(document)


def test_openapi_is_the_swagger_document_as_a_valid_openapi_3_document_needing_no_token(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.0.")
    validate(document, cls=OpenAPIV30SpecValidator)
    swagger = client.get("/swagger.json").json()
    assert document["paths"].keys() == swagger["paths"].keys()
    assert document["components"]["schemas"].keys() == swagger["definitions"].keys()


def test_every_route_is_documented_and_every_documented_path_exists(client, tenant_envs):
    env = tenant_envs["tenant1"]
    app = create_app(Settings.from_env(env))
    routes = {
        re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule not in DOC_RULES
    }
    documented = set(client.get("/swagger.json").json()["paths"])
    assert routes == documented


def test_swagger_documents_errors_and_security(client):
    paths = client.get("/swagger.json").json()["paths"]
    create = paths["/transactions"]["post"]
    assert {"201", "400", "401", "422"} <= set(create["responses"])
    assert create["security"]
    assert "/transaction" in paths and "post" in paths["/transaction"]
    # Every operation that needs a token reads the database: it may be past the statement timeout
    # (422 request_too_expensive) or meet an outage or contention (503).
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method != "parameters" and operation.get("security"):
                assert {"401", "422", "503"} <= set(operation["responses"]), (method, path)


# --- Swagger UI (/docs), as a browser uses it --------------------------------------------------


def _docs(client: httpx.Client) -> tuple[str, dict]:
    """The /docs page's title, and the document its Swagger UI loads (the page's `url`)."""
    page = client.get("/docs")
    assert page.status_code == 200
    (title,) = re.findall(r"<title>(.*?)</title>", page.text)
    (url,) = re.findall(r'url: "([^"]*)"', page.text)
    return title, client.get(url).json()


def test_the_docs_page_names_the_tenant_it_sends_requests_to(client, client2):
    for http, tenant in ((client, "tenant1"), (client2, "tenant2")):
        title, document = _docs(http)
        assert title == document["info"]["title"] == f"Personal finance API — {tenant}"


def _as_swagger_ui_sends(scheme: dict, token: str) -> dict[str, str]:
    """The header Swagger UI sends for a security scheme authorized with `token` as pasted."""
    if scheme["type"] == "apiKey":
        return {scheme["name"]: token}
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer"), scheme
    return {"Authorization": f"Bearer {token}"}


def test_a_token_pasted_as_it_comes_works_in_every_scheme_swagger_ui_offers(client):
    _, document = _docs(client)
    schemes = document["components"]["securitySchemes"]
    token = login(client, register(client)["username"])
    listing = document["paths"]["/transactions"]["get"]

    assert listing["security"][0] == {"token": []}
    for requirement in listing["security"]:
        (name,) = requirement
        response = client.get("/transactions", headers=_as_swagger_ui_sends(schemes[name], token))
        assert response.status_code == 200, (name, response.text)
    shown = listing["responses"]["401"]["content"]["application/json"]["example"]["error"]["code"]
    assert_error(client.get("/transactions"), 401, shown)


# Every operation that takes a JSON body, in an order where each body example of /docs works as
# shown on an empty tenant: ids restart at 1, so the user's default account is 1 and the
# example's savings account 2, the accounts the transfer example names. A path's id is the record
# the collection's POST made; DELETE /me confirms with the password the password change replaces.
TRY_IT_OUT = [
    ("post", "/register"), ("post", "/login"), ("post", "/accounts"), ("patch", "/accounts/{account_id}"),
    ("post", "/transactions"), ("post", "/transaction"), ("patch", "/transactions/{transaction_id}"),
    ("post", "/transfers"), ("patch", "/transfers/{transfer_id}"), ("post", "/budgets"),
    ("patch", "/budgets/{budget_id}"), ("post", "/recurring-transactions"),
    ("patch", "/recurring-transactions/{recurring_id}"), ("post", "/tokens"), ("post", "/webhooks"),
    ("patch", "/webhooks/{webhook_id}"), ("delete", "/me"), ("post", "/register"), ("post", "/login"),
    ("post", "/password"),
]  # fmt: skip


def test_every_request_body_example_succeeds_as_shown(client):
    """What "Try it out" sends is the body model's example; each answers its documented success."""
    _, document = _docs(client)
    bodies = {
        (method, path): operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters" and "application/json" in operation.get("requestBody", {}).get("content", {})
    }  # fmt: skip
    assert set(TRY_IT_OUT) == set(bodies)
    made: dict[str, int] = {}
    headers: dict[str, str] = {}
    for method, path in TRY_IT_OUT:
        body = dict(document["components"]["schemas"][bodies[method, path]]["example"])
        if "url" in body:
            # A webhook's example.com is a public host a deployed tenant accepts; this machine
            # resolves no names, and the test tenants allow a loopback receiver.
            body["url"] = RECEIVER
        collection, _, _ = path.partition("/{")
        url = f"{collection}/{made[collection]}" if collection != path else path
        (success,) = (status for status in document["paths"][path][method]["responses"] if status.startswith("2"))
        response = client.request(method, url, json=body, headers=headers)
        assert response.status_code == int(success), (method, path, body, response.text)
        answer = response.json() if response.content else {}
        if "token_type" in answer:  # a login token (not the personal access token POST /tokens makes)
            headers = {"x-access-token": answer["token"]}
        if method == "post" and "id" in answer:
            made[path] = answer["id"]


def test_migrate_is_idempotent_and_safe_to_run_concurrently(stack):
    name = f"migrations_probe_{uuid.uuid4().hex[:8]}"
    database_url = stack.cluster.ensure_database(name, "probe-password-123")

    def run_migrate() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(localstack.VENV_PYTHON), "-m", "service", "migrate"],
            env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
            cwd=localstack.ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: run_migrate(), range(3)))
    assert all(result.returncode == 0 for result in results), [r.stderr for r in results]
    assert sum("0001_initial" in result.stdout for result in results) == 1
    again = run_migrate()
    assert "none, schema is current" in again.stdout
    with stack.cluster.connect(name) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == migrate.KNOWN_VERSIONS


def test_readiness_is_503_with_pending_migrations(stack, tenant_envs):
    database_url = stack.cluster.ensure_database(f"unmigrated_{uuid.uuid4().hex[:8]}", "probe-password-123")
    env = {**tenant_envs["tenant1"], "DATABASE_URL": database_url}
    server = stack.start_server("tenant1", env, localstack.free_port(), wait_ready=False)
    try:
        response = poll(f"{server.url}/health/ready", lambda r: r is not None)
        assert_error(response, 503, "migrations_pending")
    finally:
        server.stop()


# gunicorn's workers with service/gunicorn.conf.py's default WEB_CONCURRENCY.
WORKERS = 4


def test_readiness_follows_the_database_and_recovers_by_itself(tmp_path):
    """Stop PostgreSQL under a running tenant: ready turns 503, requests get JSON 503, then it heals."""
    stack = localstack.Stack(tmp_path / "outage", localstack.free_port())
    stack.cluster.start()
    try:
        env = stack.prepare(localstack.Tenant("outage", {}, None))
        server = stack.start_server("outage", env, localstack.free_port())
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                headers = auth_headers(client)
                stack.cluster.stop("immediate")

                started = time.monotonic()
                response = poll(f"{server.url}/health/ready", lambda r: r is not None and r.status_code == 503)
                assert_error(response, 503)
                assert client.get("/health").status_code == 200

                failed = client.get("/transactions", headers=headers)
                assert_error(failed, 503, "service_unavailable")
                assert time.monotonic() - started < 25

                stack.cluster.start()
                back = time.monotonic()
                response = poll(f"{server.url}/health/ready", lambda r: r is not None and r.status_code == 200)
                assert response is not None and response.status_code == 200
                assert time.monotonic() - back < 10
                # Readiness answered by one worker; each worker's pool reconnects on its own
                # backoff (a second or two). Within 5 s every worker serves again: a run of
                # requests on fresh connections, spread over the workers, all succeed.
                in_a_row = 0
                while in_a_row < 2 * WORKERS and time.monotonic() - back < 5:
                    fresh = httpx.get(f"{server.url}/transactions", headers=headers, timeout=5)
                    in_a_row = in_a_row + 1 if fresh.status_code == 200 else 0
                    if fresh.status_code != 200:
                        assert_error(fresh, 503, "service_unavailable")
                        time.sleep(0.1)
                assert in_a_row == 2 * WORKERS, "not every worker served again within 5 s of the restart"
        finally:
            server.stop()
    finally:
        stack.cluster.stop("immediate")
        shutil.rmtree(stack.cluster.directory, ignore_errors=True)
