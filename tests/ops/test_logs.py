"""The session servers' logs, after a representative run: JSON lines only, each access line complete,
and no secret, token, password or password hash anywhere.

The run goes through every kind of request a client makes (register, logins right and wrong,
create, list, read, update, delete, import, export, categories, analytics, personal access
tokens), the errors (validation, malformed JSON, unknown paths, wrong methods and media types) and
bad tokens, against the gunicorns of the session (conftest's `servers`), whose output
scripts/localstack.py writes to
`<stack dir>/logs/<tenant>-<port>.log`. Everything those files hold by then is checked, including
what earlier tests of the same run made the servers write.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from tests.utils import mint_token

ACCESS_LOGGER = "service.access"
ARGON2_MARKER = "$argon2"


@dataclass
class Run:
    """What a run sent and was given: every request id with the answer expected, and the secrets."""

    prefix: str = field(default_factory=lambda: f"logs-{uuid.uuid4().hex[:12]}")
    sent: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id: (tenant, route, status)
    secrets: set[str] = field(default_factory=set)

    def request(
        self, client: httpx.Client, tenant: str, method: str, path: str, route: str | None, status: int, **kwargs
    ) -> httpx.Response:
        request_id = f"{self.prefix}-{len(self.sent)}"
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        self.sent[request_id] = (tenant, route, status)
        return response


def log_file(stack, server):
    return stack.directory / "logs" / f"{server.tenant}-{urlsplit(server.url).port}.log"


def read_lines(stack, servers) -> dict[str, list[str]]:
    return {name: log_file(stack, server).read_text().splitlines() for name, server in servers.items()}


@pytest.fixture
def run(client, client2, servers, tenant_envs) -> Run:
    """A user's session on tenant1 and a few requests on tenant2, with every secret they involve."""
    run = Run()
    password, wrong = f"Right-{uuid.uuid4().hex}", f"Wrong-{uuid.uuid4().hex}"
    username = f"{run.prefix}@example.com"
    run.secrets |= {password, wrong}
    credentials = {"username": username, "password": password}
    t1 = "tenant1"

    def send(method, path, route, status, **kwargs):
        return run.request(client, t1, method, path, route, status, **kwargs)

    user = send("POST", "/register", "/register", 201, json=credentials).json()
    send("POST", "/register", "/register", 409, json=credentials)
    send("POST", "/login", "/login", 401, json={"username": username, "password": wrong})
    send("POST", "/login", "/login", 401, json={"username": f"nobody-{username}", "password": password})
    token = send("POST", "/login", "/login", 200, json=credentials).json()["token"]
    run.secrets.add(token)
    bearer = {"Authorization": f"Bearer {token}"}

    created = send(
        "POST", "/transactions", "/transactions", 201, headers={**bearer, "Idempotency-Key": run.prefix},
        json={"type": "income", "amount": "1200.00", "description": "salary", "category": "salary"},
    ).json()
    send("POST", "/transactions", "/transactions", 201, headers={**bearer, "Idempotency-Key": run.prefix},
         json={"type": "income", "amount": "1200.00", "description": "salary", "category": "salary"})
    send("POST", "/transaction", "/transaction", 201, headers={"x-access-token": token},
         json={"type": "expense", "amount": 45.5, "description": "groceries", "category": "food"})
    item = f"/transactions/{created['id']}"
    item_rule = "/transactions/<int(max=9223372036854775807):transaction_id>"
    send("GET", "/transactions?type=expense&sort=-amount&limit=5", "/transactions", 200, headers=bearer)
    send("GET", item, item_rule, 200, headers=bearer)
    send("PATCH", item, item_rule, 200, headers=bearer, json={"category": "pay"})
    export = send("GET", "/transactions/export", "/transactions/export", 200, headers=bearer)
    send("POST", "/transactions/import", "/transactions/import", 201,
         headers={**bearer, "Content-Type": "text/csv"}, content=export.content)
    send("GET", "/categories", "/categories", 200, headers=bearer)
    send("GET", "/analytics?period=current_year&group_by=month", "/analytics", 200, headers=bearer)
    send("DELETE", item, item_rule, 204, headers=bearer)
    send("GET", item, item_rule, 404, headers=bearer)
    # A personal access token: made, used in either header, refused a write, deleted, then refused.
    pat = send("POST", "/tokens", "/tokens", 201, headers=bearer, json={"name": "logs", "scope": "read"}).json()
    run.secrets |= {pat["token"], pat["token"].removeprefix("fin_pat_")}
    pat_rule = "/tokens/<int(max=9223372036854775807):token_id>"
    send("GET", "/transactions", "/transactions", 200, headers={"Authorization": f"Bearer {pat['token']}"})
    send("GET", "/tokens", "/tokens", 200, headers={"x-access-token": pat["token"]})
    send("POST", "/transactions", "/transactions", 403, headers={"x-access-token": pat["token"]},
         json={"type": "expense", "amount": "1.00"})
    send("DELETE", f"/tokens/{pat['id']}", pat_rule, 204, headers=bearer)
    send("GET", "/transactions", "/transactions", 401, headers={"x-access-token": pat["token"]})

    # Errors: what the client sent must not reach the logs either.
    send("POST", "/transactions", "/transactions", 400, headers=bearer, json={"type": "expense", "amount": "1.001"})
    send("POST", "/login", "/login", 400,
         headers={"Content-Type": "application/json"}, content=f'{{"username": "{username}", "password": "{password}"')
    send("POST", "/login", "/login", 415, content=f"username={username}&password={password}")
    send("GET", f"/no-such-path/{uuid.uuid4().hex}", None, 404)
    send("PUT", "/transactions", None, 405, headers=bearer)
    # Tokens that are refused: garbage, a forged signature, another tenant's, one in a query string.
    forged = mint_token(f"not-the-key-{uuid.uuid4().hex}", t1, user["id"])
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    run.secrets |= {forged, tampered}
    send("GET", "/transactions", "/transactions", 401, headers={"Authorization": "Bearer not.a.token"})
    send("GET", "/transactions", "/transactions", 401, headers={"Authorization": f"Bearer {forged}"})
    send("GET", "/analytics", "/analytics", 401, headers={"x-access-token": tampered})
    send("GET", f"/categories?token={token}&password={password}", "/categories", 401)
    send("GET", "/health", "/health", 200)
    send("GET", "/health/ready", "/health/ready", 200)

    run.request(client2, "tenant2", "GET", "/transactions", "/transactions", 401, headers=bearer)
    run.request(client2, "tenant2", "POST", "/login", "/login", 401, json=credentials)
    for server in servers.values():  # a scrape of each master's metrics port writes no raw line
        assert httpx.get(server.metrics_url, timeout=10).status_code == 200
    for env in tenant_envs.values():
        run.secrets.add(env["JWT_SECRET"])
        run.secrets.add(urlsplit(env["DATABASE_URL"]).password)
    # A signature alone is as secret as its token.
    run.secrets |= {secret.rsplit(".", 1)[-1] for secret in (token, forged, tampered)}
    return run


def access_lines_of(run: Run, stack, servers, timeout: float = 10) -> dict[str, list[str]]:
    """The servers' log lines, once every request of the run has its access line."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read_lines(stack, servers)
        text = "\n".join(line for tenant_lines in lines.values() for line in tenant_lines)
        missing = [request_id for request_id in run.sent if f'"request_id": "{request_id}"' not in text]
        if not missing or time.monotonic() > deadline:
            assert not missing, f"no access line for {missing}"
            return lines
        time.sleep(0.2)


def test_every_log_line_is_json_with_the_tenant_and_every_access_line_is_complete(run, stack, servers):
    lines = access_lines_of(run, stack, servers)
    seen: dict[str, list[dict]] = {}
    for tenant, tenant_lines in lines.items():
        assert tenant_lines, f"{tenant}'s server wrote nothing"
        for number, line in enumerate(tenant_lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{tenant} log line {number} is not JSON: {line[:200]!r}")
            assert isinstance(record, dict) and record.get("tenant") == tenant, line[:200]
            assert {"ts", "level", "logger", "message"} <= set(record), line[:200]
            if record["logger"] != ACCESS_LOGGER:
                continue
            assert isinstance(record.get("request_id"), str) and record["request_id"], line
            assert "route" in record and (record["route"] is None or record["route"].startswith("/")), line
            assert isinstance(record.get("status"), int) and 100 <= record["status"] < 600, line
            assert isinstance(record.get("duration_ms"), int | float) and record["duration_ms"] >= 0, line
            assert record.get("method") and record.get("path", "").startswith("/"), line
            if record["request_id"] in run.sent:
                seen.setdefault(record["request_id"], []).append(record)

    # One access line per request of the run, on its tenant's server, with its route and status.
    for request_id, (tenant, route, status) in run.sent.items():
        (record,) = seen[request_id]
        assert (record["tenant"], record["route"], record["status"]) == (tenant, route, status), record


def test_no_secret_token_password_or_hash_is_logged(run, stack, servers):
    lines = access_lines_of(run, stack, servers)
    secrets = {secret for secret in run.secrets if secret}
    assert len(secrets) >= 10
    leaks = []
    for tenant, tenant_lines in lines.items():
        for number, line in enumerate(tenant_lines, 1):
            leaks += [f"{tenant}:{number}: {secret[:8]}..." for secret in secrets if secret in line]
            if ARGON2_MARKER in line:
                leaks.append(f"{tenant}:{number}: an argon2 hash")
    assert not leaks, "\n".join(leaks)
