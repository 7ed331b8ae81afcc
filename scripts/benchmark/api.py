"""Requests to the benchmarked API outside wrk: the probes, and the heavy user's login."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from benchmark.seed import HEAVY_USERNAME, PASSWORD


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def login(base_url: str) -> str:
    status, body = http("POST", f"{base_url}/login", {"username": HEAVY_USERNAME, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"POST /login as the heavy user answered {status}: {body[:300]!r}")
    return json.loads(body)["token"]
