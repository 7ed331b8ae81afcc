"""The README's "API at a glance" block, run with bash against tenant1's real gunicorn, twice.

A reader pastes that block into a shell, so it must run top to bottom against a fresh tenant and
again against the same one, and every curl must answer the status its comment states. The block
runs as written but for its first line (`B=`, pointed at the test server) and a `curl` function
in front of it that calls the real curl and notes each request's method, URL and status, and
keeps its answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import tenancy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## The API at a glance"
BASE_LINE = re.compile(r"^B=http://127\.0\.0\.1:(\d+)$", re.MULTILINE)
# A comment that documents a request starts with its status: `# 201 {id, username}`.
STATUS_COMMENT = re.compile(r"^#\s*(\d{3})\b")
# Comments stand apart from the code (aligned), so a `#` inside a URL or a string is not one.
TRAILING_COMMENT = re.compile(r"\s{2,}(#.*)$")
RUN_TIMEOUT_SECONDS = 120

# Runs before the block: bash's strict mode (a failing pipeline or command substitution stops
# the block, as a python3 reading an error answer does), and curl as a function that records.
# Each answer goes to a numbered file, then to stdout as curl alone would print it.
PRELUDE = r"""
set -euo pipefail
shopt -s inherit_errexit
curl() {
    local body
    body="$CURL_BODIES/$(($(wc -l < "$CURL_LOG") + 1))"
    : > "$body"
    command curl --output "$body" --write-out '%{method} %{http_code} %{url_effective}\n' "$@" >> "$CURL_LOG"
    cat "$body"
}
"""


@dataclass(frozen=True)
class Documented:
    """One command of the block that sends a request, and the status its comment promises."""

    line: int
    command: str
    comment: str
    status: int


@dataclass(frozen=True)
class Answered:
    """One request the block sent, as curl saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def readme_block() -> str:
    """The first ```sh block of the README's section on the API."""
    text = README.read_text()
    section = text[text.index(SECTION):]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start:section.index("```\n", start)]


def documented_requests(block: str) -> list[Documented]:
    """Each command holding a curl, in order, with the status its trailing comment (or the comment
    line right under it) states. A command without one fails the test: the reader must know."""
    lines = block.splitlines()
    found = []
    index = 0
    while index < len(lines):
        first = index
        while lines[index].rstrip().endswith("\\"):
            index += 1
        command = "\n".join(lines[first:index + 1])
        trailing = TRAILING_COMMENT.search(lines[index])
        index += 1
        if not re.search(r"\bcurl\b", command):
            continue
        assert len(re.findall(r"\bcurl\b", command)) == 1, f"README block line {first + 1}: one curl per command"
        comment = trailing.group(1) if trailing else ""
        if not comment and index < len(lines) and lines[index].lstrip().startswith("#"):
            comment = lines[index].strip()
        status = STATUS_COMMENT.match(comment)
        assert status, f"README block line {first + 1}: no `# <status> ...` comment for\n{command}"
        found.append(Documented(first + 1, command, comment, int(status.group(1))))
    return found


def run_block(block: str, url: str, timezone: str, directory: Path) -> tuple[list[Answered], str]:
    """Run the block with bash in `directory` against `url`; every request it sent, and its output.

    TZ is the tenant's time zone, so that the block's `date` names the tenant's today (the
    recurring rule's start date, the budget's month), whatever this machine's zone."""
    script, replaced = BASE_LINE.subn(f"B={url}", block)
    assert replaced == 1, "the block starts by naming the server in one line, B=http://127.0.0.1:<port>"
    directory.mkdir()
    bodies = directory / "bodies"
    bodies.mkdir()
    log = directory / "requests.log"
    log.touch()
    (directory / "readme.sh").write_text(PRELUDE + script)
    result = subprocess.run(
        ["bash", "readme.sh"], cwd=directory, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
        env={**os.environ, "TZ": timezone, "CURL_LOG": str(log), "CURL_BODIES": str(bodies)}, check=False,
    )
    output = f"exit {result.returncode}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    answered = []
    for number, entry in enumerate(log.read_text().splitlines(), start=1):
        method, status, effective_url = entry.split(" ", 2)
        parts = urlsplit(effective_url)
        body = (bodies / str(number)).read_bytes()
        answered.append(Answered(method, parts.path, parse_qs(parts.query), int(status), body))
    return answered, output


def the(
    pairs: list[tuple[Documented, Answered]], method: str, path: str, **query: str
) -> tuple[str, Answered]:
    """The one request to method and path whose query holds the given parameters (each a regex):
    its line's comment and its answer."""
    matching = [
        (entry.comment, answer) for entry, answer in pairs
        if answer.method == method and re.fullmatch(path, answer.path)
        and all(re.fullmatch(value, answer.query.get(name, [""])[0]) for name, value in query.items())
    ]
    assert len(matching) == 1, (method, path, query, [(a.method, a.path, a.query) for _, a in pairs])
    return matching[0]


def month_starts(today: date, count: int) -> list[str]:
    """The first day of today's month and of the count - 1 months before, oldest first."""
    starts = []
    year, month = today.year, today.month
    for _ in range(count):
        starts.append(date(year, month, 1).isoformat())
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def stated(comment: str, pattern: str) -> str:
    """A value the comment states, found by pattern."""
    found = re.search(pattern, comment)
    assert found, f"the comment no longer states {pattern!r}: {comment}"
    return found.group(1)


def check_documented_facts(pairs: list[tuple[Documented, Answered]], zone: ZoneInfo) -> None:
    """What the block's comments promise beyond statuses, each answer checked against its line."""
    _, listed = the(pairs, "GET", "/transactions", type="expense")
    expenses = listed.json()["items"]
    assert expenses and {item["type"] for item in expenses} == {"expense"}, expenses
    comment, imported = the(pairs, "POST", "/transactions/import")
    assert imported.json() == {"imported": int(stated(comment, r"\{imported: (\d+)\}"))}

    _, accounts = the(pairs, "GET", "/accounts")
    first = accounts.json()["items"][0]
    assert first["name"] == "Main" and first["is_default"], first
    comment, savings = the(pairs, "GET", r"/accounts/\d+")
    assert savings.json()["balance"] == stated(comment, r'balance "([-\d.]+)"'), savings.json()

    comment, recurring = the(pairs, "GET", "/transactions", recurring_id=r"\d+")
    assert "three transactions" in comment
    made = sorted(
        datetime.fromisoformat(item["occurred_at"]).astimezone(zone).date().isoformat()
        for item in recurring.json()["items"]
    )
    assert made == month_starts(datetime.now(zone).date(), 3), made

    _, test_delivery = the(pairs, "POST", r"/webhooks/\d+/test")
    delivery = test_delivery.json()
    assert (delivery["event_type"], delivery["status"]) == ("webhook.test", "pending"), delivery
    assert the(pairs, "GET", "/health")[1].json()["tenant"] == "tenant1"
    assert the(pairs, "GET", "/health/ready")[1].json()["status"] == "ready"


@pytest.fixture
def quiet_webhooks(paused, db):
    """The run's dispatchers wait while the block runs, and its webhooks are gone before they
    continue: nothing is sent to whatever may listen on this machine's port 9000."""
    yield
    db.execute("DELETE FROM webhooks")
    db.commit()


def test_the_block_talks_to_tenant1_and_states_each_requests_status():
    block = readme_block()
    named = BASE_LINE.search(block)
    assert named, "the block starts by naming the server in one line, B=http://127.0.0.1:<port>"
    tenant1 = next(tenant for tenant in tenancy.discover_tenants() if tenant.name == "tenant1")
    assert int(named.group(1)) == tenant1.local_port, "B is tenant1's port of `make run` (tenants/tenant1/local.env)"
    documented = documented_requests(block)
    assert documented, "no curl found in the block"
    assert all(100 <= entry.status <= 599 for entry in documented), documented


@pytest.mark.usefixtures("clean", "quiet_webhooks")
def test_the_block_runs_twice_and_every_request_answers_its_documented_status(servers, tmp_path):
    block = readme_block()
    documented = documented_requests(block)
    server = servers["tenant1"]
    timezone = server.env["TENANT_TIMEZONE"]
    for run in (1, 2):
        answered, output = run_block(block, server.url, timezone, tmp_path / f"run{run}")
        mismatches = [
            f"line {entry.line}: documented {entry.status}, answered {answer.status}"
            f" ({answer.method} {answer.path})\n{entry.command}"
            for entry, answer in zip(documented, answered, strict=False)
            if entry.status != answer.status
        ]
        assert not mismatches, f"run {run}:\n" + "\n".join(mismatches) + "\n" + output
        assert len(answered) == len(documented), (
            f"run {run}: {len(answered)} of {len(documented)} requests sent\n{output}"
        )
        assert output.startswith("exit 0"), output
        check_documented_facts(list(zip(documented, answered, strict=True)), ZoneInfo(timezone))
