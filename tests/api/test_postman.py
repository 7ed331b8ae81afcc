"""The Postman collection: a valid v2.1 collection that covers every endpoint and passes with newman.

newman comes from package-lock.json (`npm ci`, run by scripts/install) and runs the collection
against each demo tenant's real gunicorn, as a user would with a tenant's Postman environment.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "tests" / "postman" / "finance.postman_collection.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# A run makes about 670 assertions; far fewer means requests or tests went missing.
MIN_ASSERTIONS = 600
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


@pytest.mark.parametrize("tenant", ["tenant1", "tenant2"])
def test_newman_runs_the_collection_without_a_failed_assertion(tenant, servers, clean, tmp_path):
    if not NEWMAN.exists():
        pytest.fail("newman is not installed: run scripts/install (it runs `npm ci` from package-lock.json)")
    report = tmp_path / "newman.json"
    # The tenant's local environment, with its baseUrl pointed at this server, as the README shows
    # for a tenant on another port.
    environment = ROOT / "tenants" / tenant / "postman_environment.local.json"
    command = [
        str(NEWMAN), "run", str(COLLECTION), "--environment", str(environment),
        "--env-var", f"baseUrl={servers[tenant].url}",
        "--reporters", "cli,json", "--reporter-json-export", str(report),
        "--color", "off", "--disable-unicode",
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=NEWMAN_TIMEOUT_SECONDS, check=False
    )
    output = (result.stdout + result.stderr)[-20000:]
    assert report.exists(), output
    run = json.loads(report.read_text())["run"]
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
