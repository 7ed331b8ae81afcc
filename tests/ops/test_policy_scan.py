"""checkov over what the repository deploys: nothing it reports goes unanswered in docs/security.md.

One run of checkov (the release scripts/install pins, in .venv/checkov) scans every tenant's
rendered manifests, a render with every optional component of kubernetes/components, the render
deploy.yml applies (the images built here pinned by digest), both Dockerfiles (the app's and
postgres/Dockerfile) and the workflows. Every check
it fails, or that an inline `checkov:skip` would silence, must have a row in the table of
docs/security.md, "Policy scan (checkov)", whose places are exactly where it fails; and every row
must still be needed.

Offline: `--skip-download` and BC_SKIP_MAPPING keep checkov from asking Prisma Cloud for policy
metadata, CKV_SKIP_PACKAGE_UPDATE_CHECK from asking PyPI for a newer checkov (with the three, strace
sees no connection at all). Where the machine allows it, checkov runs in a network namespace of its
own, so a scan that needed the network would fail here. No CKV_*/BC_* variable of the caller, and no
.checkov.yaml of the caller's home or working directory, reaches it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
INSTALL = ROOT / "scripts" / "install"
SECURITY_DOC = ROOT / "docs" / "security.md"
SECTION = "## Policy scan (checkov)"
TENANTS_DIR = ROOT / "tenants"
COMPONENTS_DIR = ROOT / "kubernetes" / "components"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_DOCKERFILE = ROOT / "postgres" / "Dockerfile"
FRAMEWORKS = ("kubernetes", "dockerfile", "github_actions")
APP_IMAGE = "ghcr.io/finance-platform/finance-service"
POSTGRES_IMAGE = "ghcr.io/finance-platform/finance-postgres"
# Answered by the digests of the images built here, which deploy.yml adds at every deploy (docs/security.md).
APP_IMAGE_CHECKS = {"CKV_K8S_15", "CKV_K8S_43"}
TENANT_NAMES = sorted(
    path.name for path in TENANTS_DIR.iterdir()
    if (path / "kustomization.yaml").is_file() and not path.name.startswith(".")
)
# A place in the doc's "where" column: `Kind/name` of a rendered object, a workflow, the Dockerfile.
PLACE = re.compile(r"^(?:[A-Z][A-Za-z]+/[a-z0-9][a-z0-9.-]*|[\w.-]+\.ya?ml|Dockerfile)$")


def pinned_version() -> str:
    (version,) = re.findall(r"^checkov_version=(\S+)$", INSTALL.read_text(), re.M)
    return version


# --- the answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    check_id: str
    places: frozenset[str]
    asks: str
    why: str


@cache
def answers() -> dict[str, Answer]:
    """The rows of docs/security.md's table: | `CKV_...` | what it asks | `place`, ... | why |."""
    text = SECURITY_DOC.read_text()
    assert SECTION in text, f"docs/security.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found: dict[str, Answer] = {}
    for line in section.splitlines():
        if not re.match(r"^\|\s*`CKV", line):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row of four cells (check, asks, where, why): {line}"
        check_id, asks, where, why = cells
        assert re.fullmatch(r"`CKV2?_[A-Z0-9]+_\d+`", check_id), line
        check_id = check_id.strip("`")
        places = frozenset(re.findall(r"`([^`]+)`", where))
        assert places and all(PLACE.match(place) for place in places), (
            f"{check_id}: the where cell names only places (`Kind/name`, a workflow, Dockerfile): {where}"
        )
        assert asks and len(why) > 40, f"{check_id}: say what it asks and why it stays"
        assert check_id not in found, f"{check_id} is answered twice"
        found[check_id] = Answer(check_id, places, asks, why)
    return found


# --- the scan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    check_id: str
    name: str
    target: str  # the file scanned: tenant-<name>.yaml, components.yaml, deploy-pinned.yaml, a workflow, Dockerfile
    place: str  # as the doc names it: Kind/name, the workflow's file name, Dockerfile
    suppressed: bool


@dataclass(frozen=True)
class Scan:
    reports: dict[str, dict] = field(repr=False)
    findings: tuple[Finding, ...]
    targets: tuple[str, ...]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed (1.32 or newer, for its built-in kustomize)", pytrace=False)
    return path


def render(directory: Path, into: Path) -> Path:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    into.write_text(result.stdout)
    return into


def render_targets(work: Path) -> list[Path]:
    """What a cluster gets: each tenant's render; the first tenant with every component; and that
    tenant as deploy.yml applies it, through an overlay adding the app image's digest."""
    targets = [render(TENANTS_DIR / name, work / f"tenant-{name}.yaml") for name in TENANT_NAMES]
    first = TENANT_NAMES[0]

    copy = work / "components"
    shutil.copytree(ROOT / "kubernetes", copy / "kubernetes")
    shutil.copytree(TENANTS_DIR / first, copy / "tenants" / first)
    components = sorted(path.name for path in COMPONENTS_DIR.iterdir() if (path / "kustomization.yaml").is_file())
    assert components, "no component to scan"
    with (copy / "tenants" / first / "kustomization.yaml").open("a") as kustomization:
        kustomization.write("components:\n" + "".join(f"  - ../../kubernetes/components/{c}\n" for c in components))
    targets.append(render(copy / "tenants" / first, work / "components.yaml"))

    # As deploy.yml's pinning (.github/deploy/deploy-tenants.sh, pin) writes it.
    pinned = work / "pinned" / first
    pinned.mkdir(parents=True)
    images = ""
    for image in (APP_IMAGE, POSTGRES_IMAGE):
        tag = re.search(rf"image: {re.escape(image)}:(\S+)", targets[0].read_text()).group(1)
        images += f"  - name: {image}\n    newTag: {tag}\n    digest: sha256:{'5e' * 32}\n"
    pinned.joinpath("kustomization.yaml").write_text(
        f"resources:\n  - {os.path.relpath(TENANTS_DIR / first, pinned)}\nimages:\n{images}"
    )
    targets.append(render(pinned, work / "deploy-pinned.yaml"))
    return targets


def offline_prefix() -> list[str]:
    """`unshare --net` where this machine lets us make a network namespace: no network at all."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    prefix = [unshare, "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False, timeout=30)
    return prefix if probe.returncode == 0 else []


def place_of(check_type: str, result: dict) -> str:
    if check_type == "kubernetes":
        parts = result["resource"].split(".")  # Kind.namespace.name
        return f"{parts[0]}/{parts[-1]}"
    return Path(result["file_abs_path"]).name


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Scan:
    assert CHECKOV.exists(), f"{CHECKOV.relative_to(ROOT)} is missing: run scripts/install"
    work = tmp_path_factory.mktemp("policy-scan")
    files = [*render_targets(work), DOCKERFILE, POSTGRES_DOCKERFILE, *WORKFLOWS]
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("CKV_", "BC_", "PRISMA_", "CHECKOV_")) and key != "LOG_LEVEL"
    }
    env |= {"HOME": str(work), "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
    command = [
        *offline_prefix(), str(CHECKOV), "--framework", *FRAMEWORKS, "--skip-download", "--compact", "-o", "json",
        *(argument for path in files for argument in ("-f", str(path))),
    ]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False, timeout=300)
    # 0: nothing failed, 1: something failed; anything else is checkov's own failure.
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}:\n{result.stderr[-3000:]}"
    output = json.loads(result.stdout)
    reports = {report["check_type"]: report for report in (output if isinstance(output, list) else [output])}

    findings = []
    for check_type, report in reports.items():
        for kind, suppressed in (("failed_checks", False), ("skipped_checks", True)):
            for item in report["results"].get(kind, []):
                findings.append(Finding(
                    item["check_id"], item["check_name"].strip(), Path(item["file_abs_path"]).name,
                    place_of(check_type, item), suppressed,
                ))
    return Scan(reports, tuple(findings), tuple(Path(path).name for path in files))


def describe(findings) -> str:
    lines = sorted({f"{f.check_id} {f.place} ({f.target}){' [suppressed]' if f.suppressed else ''}: {f.name}"
                    for f in findings})
    return "\n".join(lines)


# --- the tests -------------------------------------------------------------------------------------


def test_checkov_is_the_release_scripts_install_pins():
    assert CHECKOV.exists(), f"{CHECKOV.relative_to(ROOT)} is missing: run scripts/install"
    shown = subprocess.run(
        [str(CHECKOV), "--version"], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    ).stdout.strip()
    assert shown == pinned_version(), f".venv/checkov has checkov {shown}, scripts/install pins {pinned_version()}"


def test_every_target_is_scanned_by_its_framework(scan):
    assert set(scan.reports) == set(FRAMEWORKS), f"checkov reported on {sorted(scan.reports)}"
    for check_type, report in scan.reports.items():
        assert report["summary"]["checkov_version"] == pinned_version()
        assert not report["results"]["parsing_errors"], f"{check_type}: {report['results']['parsing_errors']}"
        assert report["summary"]["passed"] > 0, check_type
    scanned = {
        Path(item["file_abs_path"]).name
        for report in scan.reports.values()
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for item in report["results"].get(kind, [])
    }
    assert set(scan.targets) <= scanned, f"checkov ran no check on {sorted(set(scan.targets) - scanned)}"


def test_every_check_checkov_fails_is_answered_in_docs_security(scan):
    unanswered = [finding for finding in scan.findings if finding.check_id not in answers()]
    assert not unanswered, (
        "fix these, or answer each check in docs/security.md, " + SECTION.lstrip("# ") + ":\n" + describe(unanswered)
    )


def test_each_answer_names_exactly_the_places_where_its_check_fails(scan):
    """The deploy-time render is left out: it differs from its tenant's only by the app image's digest."""
    problems = []
    for check_id, answer in answers().items():
        places = {f.place for f in scan.findings if f.check_id == check_id and f.target != "deploy-pinned.yaml"}
        if not places:
            problems.append(f"{check_id}: checkov no longer fails it anywhere; remove its row")
        elif places != answer.places:
            problems.append(f"{check_id}: fails at {sorted(places)}, the doc names {sorted(answer.places)}")
    assert not problems, "\n".join(problems)


def test_the_app_image_checks_pass_once_deploy_pins_the_digest(scan):
    """CKV_K8S_15 and CKV_K8S_43 are answered by deploy.yml's digests (the app image's and the
    PostgreSQL image's): the render it applies passes both, and fails nothing else that the
    tenant's own render does not."""
    pinned = {f.check_id for f in scan.findings if f.target == "deploy-pinned.yaml"}
    plain = {f.check_id for f in scan.findings if f.target == f"tenant-{TENANT_NAMES[0]}.yaml"}
    assert set(answers()) >= APP_IMAGE_CHECKS, "docs/security.md answers the app image's checks"
    assert not pinned & APP_IMAGE_CHECKS, describe(f for f in scan.findings if f.target == "deploy-pinned.yaml")
    assert pinned == plain - APP_IMAGE_CHECKS


def test_nothing_is_suppressed_inline(scan):
    """A `checkov:skip=` comment would hide a finding from the table's readers; answer it there instead."""
    assert not [f for f in scan.findings if f.suppressed], describe(f for f in scan.findings if f.suppressed)
