"""The Postman collection: a valid v2.1 collection that covers every endpoint and passes with newman.

newman comes from package-lock.json (`npm ci`, run by scripts/install) and runs the collection
against each demo tenant's real gunicorn, as a user would with a tenant's Postman environment, and
against a port nothing listens on, where the run must fail without a single passed assertion.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import localstack
import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "tests" / "postman" / "finance.postman_collection.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# A run makes about 1,180 assertions; far fewer means requests or tests went missing.
MIN_ASSERTIONS = 1050
NEWMAN_TIMEOUT_SECONDS = 300


def load_collection() -> dict:
    return json.loads(COLLECTION.read_text())


def requests_of(items: list[dict], trail: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """Every request item, depth first, with its folder path as a name."""
    for item in items:
        name = " / ".join((*trail, item["name"]))
        if "item" in item:
            yield from requests_of(item["item"], (*trail, item["name"]))
        else:
            yield name, item


def script(item: dict, listen: str) -> str:
    return "\n".join(
        "\n".join(event["script"]["exec"]) for event in item.get("event", []) if event["listen"] == listen
    )


def endpoint_pattern(swagger_path: str) -> re.Pattern:
    """A documented path as a regex; a {parameter} matches a {{variable}} or a number."""
    parts = [
        r"(\{\{\w+\}\}|\d+)" if part.startswith("{") else re.escape(part) for part in swagger_path.split("/")
    ]
    return re.compile("^" + "/".join(parts) + "$")


def exercised_endpoints(collection: dict) -> set[tuple[str, str]]:
    """(method, path) of every request, the path without {{baseUrl}} and query."""
    found = set()
    for _, item in requests_of(collection["item"]):
        request = item["request"]
        path = "/" + "/".join(request["url"]["path"])
        found.add((request["method"], path))
    return found


def test_collection_is_a_valid_v2_1_collection():
    collection = load_collection()
    assert collection["info"]["schema"] == SCHEMA
    assert collection["info"]["name"] and collection["info"]["_postman_id"]
    variables = {variable["key"]: variable for variable in collection["variable"]}
    assert {"baseUrl", "token"} <= set(variables)
    assert collection["auth"] == {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}],
    }

    items = list(requests_of(collection["item"]))
    assert len(items) >= 60, len(items)
    names = [item["name"] for _, item in items]
    assert len(names) == len(set(names)), "request names must be unique (the pagination loop jumps by name)"
    for name, item in items:
        request = item.get("request")
        assert request, f"{name}: no request"
        assert request["method"] in HTTP_METHODS, name
        url = request["url"]
        assert url["host"] == ["{{baseUrl}}"], f"{name}: use {{{{baseUrl}}}}"
        raw_path = url["raw"].removeprefix("{{baseUrl}}").partition("?")[0]
        assert url["raw"].startswith("{{baseUrl}}/") and raw_path == "/" + "/".join(url["path"]), name
        query = url["raw"].partition("?")[2]
        assert query == "&".join(f"{q['key']}={q['value']}" for q in url.get("query", [])), name
        tests = script(item, "test")
        assert re.search(r"pm\.test\(|lib\.expectError\(", tests), f"{name}: no pm.test assertion"
        assert re.search(r"to\.have\.status\(|lib\.expectError\(", tests), f"{name}: no status assertion"
        body = request.get("body")
        if body:
            assert body["mode"] == "raw", name
            headers = {header["key"].lower(): header["value"] for header in request["header"]}
            if headers.get("content-type") == "application/json" and "Malformed" not in name:
                json.loads(re.sub(r"\{\{\w+\}\}", "0", body["raw"]))

    login = dict(items)["2. Account / Log in"]
    assert "pm.collectionVariables.set('token'" in script(login, "test")
    assert "Math.random()" in script(dict(items)["2. Account / Register"], "prerequest")


def test_collection_exercises_every_documented_endpoint(servers):
    swagger = httpx.get(f"{servers['tenant1'].url}/swagger.json", timeout=30).json()
    documented = {
        (method.upper(), path)
        for path, operations in swagger["paths"].items()
        for method in operations
        if method.upper() in HTTP_METHODS
    }
    exercised = exercised_endpoints(load_collection())

    def covered(method: str, path: str) -> bool:
        pattern = endpoint_pattern(path)
        return any(m == method and pattern.match(p) for m, p in exercised)

    missing = sorted(endpoint for endpoint in documented if not covered(*endpoint))
    assert not missing, f"endpoints no request of the collection exercises: {missing}"
    undocumented = sorted(
        (method, path)
        for method, path in exercised
        if not any(m == method and endpoint_pattern(p).match(path) for m, p in documented)
    )
    assert not undocumented, f"requests to endpoints /swagger.json does not list: {undocumented}"


def run_newman(
    tenant: str, base_url: str, report: Path, *options: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the collection with newman as the README shows for a tenant on any port: its local
    environment, with baseUrl given on the command line; return the result and the JSON report's run."""
    if not NEWMAN.exists():
        pytest.fail("newman is not installed: run scripts/install (it runs `npm ci` from package-lock.json)")
    environment = ROOT / "tenants" / tenant / "postman_environment.local.json"
    command = [
        str(NEWMAN), "run", str(COLLECTION), "--environment", str(environment), "--env-var", f"baseUrl={base_url}",
        "--reporters", "cli,json", "--reporter-json-export", str(report), "--color", "off", "--disable-unicode",
        *options,
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=NEWMAN_TIMEOUT_SECONDS, check=False
    )
    assert report.exists(), (result.stdout + result.stderr)[-20000:]
    return result, json.loads(report.read_text())["run"]


@pytest.mark.parametrize("tenant", ["tenant1", "tenant2"])
def test_newman_runs_the_collection_without_a_failed_assertion(tenant, servers, clean, tmp_path):
    result, run = run_newman(tenant, servers[tenant].url, tmp_path / "newman.json")
    output = (result.stdout + result.stderr)[-20000:]
    failures = [
        f"{failure['source'].get('name')}: {failure['error'].get('test') or failure['error']['name']}:"
        f" {failure['error']['message']}"
        for failure in run["failures"]
    ]
    assert not failures, "\n".join(failures) + "\n" + output
    assert result.returncode == 0, output
    stats = run["stats"]
    for kind in ("requests", "assertions", "testScripts", "prerequestScripts"):
        assert stats[kind]["failed"] == 0, (kind, stats[kind], output)
    assert stats["assertions"]["total"] >= MIN_ASSERTIONS, (stats["assertions"], output)
    executed = {execution["item"]["name"] for execution in run["executions"]}
    skipped = {item["name"] for _, item in requests_of(load_collection()["item"])} - executed
    assert not skipped, f"requests the run never reached: {sorted(skipped)}"
    checked = {assertion["assertion"] for execution in run["executions"] for assertion in execution["assertions"]}
    assert f"the environment's tenant answers: {tenant}" in checked, "the environment names its tenant"


def test_newman_with_one_tenants_environment_refuses_another_tenants_server(servers, tmp_path):
    """A baseUrl given for the wrong port (another tenant's server) fails at the first request."""
    result, run = run_newman(
        "tenant1", servers["tenant2"].url, tmp_path / "newman.json", "--folder", "1. Health",
    )
    assert result.returncode != 0
    failed = [(failure["source"]["name"], failure["error"]["test"]) for failure in run["failures"]]
    assert failed == [("Liveness", "the environment's tenant answers: tenant1")], failed


def test_newman_against_a_port_nothing_listens_on_fails_and_passes_nothing(tmp_path):
    """A wrong baseUrl or a stopped server never looks like a good run: every request fails its
    collection's first check, and no check, of the collection or of a request, passes on nothing."""
    result, run = run_newman("tenant1", f"http://127.0.0.1:{localstack.free_port()}", tmp_path / "newman.json")
    output = (result.stdout + result.stderr)[-20000:]
    assert result.returncode != 0, output
    executions = run["executions"]
    assert len(executions) >= len(list(requests_of(load_collection()["item"]))), "every request was tried"
    refused = [e for e in executions if e.get("requestError", {}).get("code") == "ECONNREFUSED"]
    assert len(refused) == len(executions), "each connection refused: the port is free"

    passed = [
        f"{execution['item']['name']}: {assertion['assertion']}"
        for execution in executions for assertion in execution.get("assertions", []) if "error" not in assertion
    ]
    assert not passed, "assertions passed without a response:\n" + "\n".join(passed)
    assertions = run["stats"]["assertions"]
    assert assertions["total"] >= len(executions) and assertions["failed"] == assertions["total"], assertions
    for execution in executions:
        names = [assertion["assertion"] for assertion in execution.get("assertions", [])]
        assert "[every response] a response arrived" in names, execution["item"]["name"]
    assert run["failures"], output
