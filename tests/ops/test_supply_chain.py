"""The supply chain: what the repository runs is named by content, not by a movable name.

Actions by commit SHA (with the release as a comment, which Dependabot maintains), third-party
images by digest wherever they are referenced, the app image resolved to one digest per deploy,
and Dependabot configured for every ecosystem that holds a pin. docs/security.md, "Supply chain".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from onboard_tenant import SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
DOCKERFILE = ROOT / "Dockerfile"
# The tenants' PostgreSQL with pgBackRest, built beside the app image.
POSTGRES_DOCKERFILE = ROOT / "postgres" / "Dockerfile"
DOCKERFILES = (DOCKERFILE, POSTGRES_DOCKERFILE)
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# The project's own images: no digest can be known before they are built; deploy.yml pins them per run.
APP_IMAGE = "ghcr.io/finance-platform/finance-service"
POSTGRES_IMAGE = "ghcr.io/finance-platform/finance-postgres"
OWN_IMAGES = (APP_IMAGE, POSTGRES_IMAGE)
# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`: the comment is the release, for people and Dependabot.
PINNED_USES = re.compile(r"^uses:\s*([\w.-]+/[\w.-]+)(/[\w./-]+)?@([0-9a-f]{40})\s+#\s+(v\d+(?:\.\d+){0,2})\s*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
TENANTS = sorted(
    path.name for path in (ROOT / "tenants").iterdir()
    if (path / "kustomization.yaml").is_file() and not path.name.startswith(".")
)


def _workflows() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.y*ml"))}


def _steps(workflow: dict):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def _uses_lines() -> list[tuple[str, str]]:
    """(file, the `uses:` line as written, comment included) for every action of every workflow."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for line in path.read_text().splitlines():
            stripped = line.strip().removeprefix("- ")
            if stripped.startswith("uses:"):
                found.append((path.name, stripped))
    return found


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


# --- actions ---------------------------------------------------------------------------------------


def test_the_workflows_use_actions():
    assert len(_uses_lines()) >= 10, "the check below would pass vacuously"


@pytest.mark.parametrize("where,line", _uses_lines())
def test_every_action_is_pinned_to_a_commit_with_its_release_as_a_comment(where, line):
    target = line.split(":", 1)[1].split("#", 1)[0].strip()
    if target.startswith("./"):
        return  # an action of this repository, pinned by the checkout itself
    if target.startswith("docker://"):
        assert DIGEST.search(target), f"{where}: `{line}` names an image without its digest"
        return
    assert PINNED_USES.match(line), f"{where}: `{line}` is not `owner/repo@<40-hex sha> # vX.Y.Z`"


def _run_actionlint(tmp_path: Path, workflow: dict) -> subprocess.CompletedProcess:
    assert ACTIONLINT.exists(), "actionlint is missing: run scripts/install"
    (tmp_path / "probe.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", "probe.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


def test_pinned_actionlint_is_the_release_pyproject_names_and_it_knows_node20_is_going(tmp_path):
    """Keeps the linter current enough: an action on node20 (removed 23 September 2026) is an error."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    (pin,) = [spec for spec in dev if spec.startswith("actionlint")]
    version = pin.split("==", 1)[1]
    shown = subprocess.run([str(ACTIONLINT), "-version"], capture_output=True, text=True, check=True).stdout
    assert version in shown.splitlines()[0], f".venv has {shown.splitlines()[0]!r}, pyproject pins {pin}"
    old = {"on": "push", "jobs": {"a": {"runs-on": "ubuntu-24.04", "steps": [{"uses": "actions/checkout@v4"}]}}}
    result = _run_actionlint(tmp_path, old)
    assert result.returncode != 0 and "node20" in result.stdout, result.stdout + result.stderr


def test_pinned_actions_pass_actionlint_as_the_releases_their_comments_name(tmp_path):
    """A SHA hides an action from actionlint's knowledge of popular actions (their inputs, their
    runtime); each pinned step is checked here as the major release its comment names, with the
    same inputs. (actionlint skips the few actions it does not know, amazon-ecr-login and kind-action.)"""
    releases = {}
    for where, line in _uses_lines():
        if match := PINNED_USES.match(line):
            repository, path, sha, release = match.groups()
            releases[where, f"{repository}{path or ''}@{sha}"] = f"{repository}{path or ''}@{release.split('.')[0]}"
    jobs = {}
    for where, workflow in _workflows().items():
        for step in _steps(workflow):
            if (where, step.get("uses")) in releases:
                probe = {"uses": releases[where, step["uses"]]}
                if step.get("with"):
                    probe["with"] = dict.fromkeys(step["with"], "x")
                jobs[f"step{len(jobs)}"] = {"runs-on": "ubuntu-24.04", "steps": [probe]}
    assert jobs and len(jobs) == sum(bool(PINNED_USES.match(line)) for _, line in _uses_lines())
    result = _run_actionlint(tmp_path, {"on": "push", "jobs": jobs})
    assert result.returncode == 0, result.stdout + result.stderr


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_dockerfile_base_images_are_pinned_by_digest(dockerfile):
    stages: set[str] = set()
    froms = [line.split()[1:] for line in dockerfile.read_text().splitlines() if line.upper().startswith("FROM ")]
    assert froms
    for image, *rest in froms:
        if image not in stages:
            assert DIGEST.search(image) and ":" in image.split("@")[0], f"FROM {image} names no tag and digest"
        if len(rest) == 2 and rest[0].upper() == "AS":
            stages.add(rest[1])


def test_postgres_image_is_the_pinned_postgres_plus_a_pinned_pgbackrest_run_as_postgres():
    """The same PostgreSQL as everywhere else (kustomize's pin, which tests/ops/test_workflows.py
    holds equal to compose's, CI's and e2e's), Alpine's pgbackrest package at one release, the image's
    postgres user (uid 70, the data directories' owner), and a health check."""
    text = POSTGRES_DOCKERFILE.read_text()
    base = yaml.safe_load((ROOT / "kubernetes" / "base" / "kustomization.yaml").read_text())
    postgres = next(image for image in base["images"] if image["name"] == "postgres")
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert [line for line in instructions if line.startswith("FROM ")] == [
        f"FROM postgres:{postgres['newTag']}@{postgres['digest']}"
    ]
    (install,) = [line for line in instructions if line.startswith("RUN ")]
    assert re.fullmatch(r"RUN apk add --no-cache pgbackrest=\d+\.\d+(\.\d+)?-r\d+", install), install
    assert [line for line in instructions if line.startswith("USER ")] == ["USER 70:70"]
    assert any(line.startswith("HEALTHCHECK ") for line in instructions)
    ours = next(image for image in base["images"] if image["name"] == "finance-postgres")
    assert ours["newName"] == POSTGRES_IMAGE and "digest" not in ours, "deploy.yml pins it at each deploy"


def test_publish_builds_both_images_from_their_dockerfiles():
    job = _workflows()["publish.yml"]["jobs"]["image"]
    matrix = job["strategy"]["matrix"]["include"]
    contexts = {entry["name"]: entry["context"] for entry in matrix}
    assert contexts == {"finance-service": ".", "finance-postgres": "postgres"}
    for entry in matrix:
        assert (ROOT / entry["context"] / "Dockerfile").exists()
        assert entry["image"].endswith(f"'{{0}}/{entry['name']}', github.repository_owner) }}}}")
    build = next(step for step in job["steps"] if "build-push-action" in step.get("uses", ""))
    assert build["with"]["context"] == "${{ matrix.context }}"
    assert "${{ matrix.name }}" in build["with"]["cache-to"], "one build cache per image"


def test_compose_images_are_pinned_by_digest_or_built_here():
    # safe_load resolves the anchors and `<<` merges, so every service shows its own image.
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            continue  # the project's own image, built from this checkout
        assert DIGEST.search(image), f"{name}: image {image!r} is not pinned by digest"


@pytest.mark.parametrize("tenant", TENANTS)
def test_rendered_manifests_pin_every_third_party_image_by_digest(tenant):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (1.32+, for its built-in kustomize)"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "tenants" / tenant)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    images = set(re.findall(r"^\s*(?:- )?image: (\S+)$", rendered, re.M))
    assert any(_repository(image) == "postgres" for image in images)
    for image in images:
        if _repository(image) not in OWN_IMAGES:
            assert DIGEST.search(image) and ":" in image.split("@")[0], f"{tenant}: {image} has no tag and digest"


def _workflow_images() -> list[tuple[str, str]]:
    """Every image a workflow names: job containers, service containers, docker:// actions,
    kind's node image, and images named in run scripts (`--image=`, `"image": "..."`)."""
    found = []
    for name, workflow in _workflows().items():
        for job in workflow["jobs"].values():
            container = job.get("container")
            if container:
                found.append((name, container if isinstance(container, str) else container["image"]))
            found += [(name, service["image"]) for service in (job.get("services") or {}).values()]
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses.startswith("docker://"):
                    found.append((name, uses.removeprefix("docker://")))
                if "kind-action" in uses:
                    found.append((name, (step.get("with") or {}).get("node_image", "kindest/node (kind's default)")))
                run = step.get("run", "")
                found += [(name, image) for image in re.findall(r"--image[= ]([^\s\"']+)", run)]
                found += [(name, image) for image in re.findall(r"\"image\":\s*\"([^\"]+)\"", run)]
    return found


def test_workflow_images_are_pinned_by_digest():
    images = _workflow_images()
    assert any(image.startswith("postgres:") for _, image in images) and any("kindest/node" in i for _, i in images)
    for where, image in images:
        if _repository(image) == APP_IMAGE:
            continue  # e2e builds and loads it itself
        assert DIGEST.search(image), f"{where}: {image} is not pinned by digest"


# --- the app image at deploy time ------------------------------------------------------------------


def _deploy_steps() -> list[dict]:
    return _workflows()["deploy.yml"]["jobs"]["deploy"]["steps"]


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


@pytest.mark.parametrize("missing_key", [None, "BACKUP_PASSWORD", "PGBACKREST_REPO1_CIPHER_PASS"])
def test_deploy_resolves_the_image_tags_once_and_applies_every_tenant_by_those_digests(tmp_path, missing_key):
    """Runs deploy.yml's own deploy step (.github/deploy/deploy-tenants.sh), with docker, curl and
    kubectl's cluster calls stubbed (kubectl's kustomize is the real one). A tenant whose Secret
    lacks a key PostgreSQL mounts or reads (one from before the database roles, or before
    pgBackRest) is refused before anything is applied to it."""
    steps = _deploy_steps()
    names = [step.get("name", "") for step in steps]
    deploy = next(i for i, step in enumerate(steps) if "deploy-tenants.sh" in step.get("run", ""))

    digest = "sha256:" + "5e" * 32
    bin_dir, temp, log = tmp_path / "bin", tmp_path / "runner", tmp_path / "calls.log"
    bin_dir.mkdir()
    temp.mkdir()
    _stub(bin_dir, "docker", f"""echo "docker $*" >> {log}
if [ "$1" = login ]; then cat >/dev/null; exit 0; fi
if [ "$1 $2 $3" = "buildx imagetools inspect" ]; then
  echo '{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{digest}","size":1}}'
  exit 0
fi
exit 1
""")
    # A tenant's Secret holds every key PostgreSQL mounts (only the keys are asked for); its
    # Ingress names <tenant>.example.test, where the tenant answers ready.
    keys = "\\n".join(key for key in SECRET_KEYS if key != missing_key)
    _stub(bin_dir, "kubectl", f"""if [ "$1" = kustomize ]; then exec {shutil.which("kubectl")} "$@"; fi
echo "kubectl $*" >> {log}
case "$*" in
  *"get secret finance-secrets -o go-template"*) printf '{keys}\\n';;
  *"get ingress finance-api"*) printf '%s.example.test' "${{2#finance-}}";;
esac
""")
    _stub(bin_dir, "curl", """url=${!#}; tenant=${url#https://}; tenant=${tenant%%.*}
echo "{\\"status\\": \\"ready\\", \\"tenant\\": \\"$tenant\\", \\"version\\": \\"0.1.0\\"}"
""")
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "RUNNER_TEMP": str(temp),
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ENV": str(tmp_path / "env"), "GITHUB_ACTOR": "deployer",
        "GITHUB_TOKEN": "not-a-token", "TENANTS": " ".join(TENANTS),
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", steps[deploy]["run"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    calls = log.read_text().splitlines()
    if missing_key:
        assert result.returncode == 1 and f"lacks {missing_key}" in result.stdout, result.stdout + result.stderr
        assert not [call for call in calls if call.startswith("kubectl apply")]
        return
    assert result.returncode == 0, f"{names[deploy]}: {result.stdout}{result.stderr}"

    assert [call for call in calls if "imagetools inspect" in call] == [
        f"docker buildx imagetools inspect {image}:0.1.0 --format {{{{json .Manifest}}}}" for image in OWN_IMAGES
    ], "one resolution per image and deploy, whatever the number of tenants"
    applied = [call.split()[-1] for call in calls if call.startswith("kubectl apply -k")]
    assert [Path(directory).name for directory in applied] == TENANTS
    resolved = max(i for i, call in enumerate(calls) if "imagetools" in call)
    assert resolved < calls.index(f"kubectl apply -k {applied[0]}"), "the digests are resolved before applying"
    for directory in applied:
        rendered = subprocess.run(
            [shutil.which("kubectl"), "kustomize", directory], capture_output=True, text=True, check=True
        ).stdout
        for own in OWN_IMAGES:
            named = set(re.findall(rf"image: ({re.escape(own)}\S*)", rendered))
            assert named == {f"{own}:0.1.0@{digest}"}, named
    assert digest in summary.read_text()


def test_publish_writes_the_pushed_digest_to_the_job_summary():
    steps = _workflows()["publish.yml"]["jobs"]["image"]["steps"]
    build = next(i for i, step in enumerate(steps) if "build-push-action" in step.get("uses", ""))
    assert steps[build].get("id") == "build"
    later = [step for step in steps[build + 1 :] if "steps.build.outputs.digest" in str(step.get("env", ""))]
    assert later and "GITHUB_STEP_SUMMARY" in later[0]["run"]


# --- Dependabot ----------------------------------------------------------------------------------


def test_dependabot_config_is_valid_and_covers_every_pinned_ecosystem():
    assert CHECK_JSONSCHEMA.exists(), "check-jsonschema is missing: run scripts/install"
    # SchemaStore's schema for dependabot.yml: a misspelt key would make Dependabot ignore the file.
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(DEPENDABOT.read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    manifests = {
        "github-actions": ".github/workflows",
        "docker": "Dockerfile",
        "docker-compose": "docker-compose.yml",
        "pip": "pyproject.toml",
        "npm": "package-lock.json",
    }
    assert set(manifests) <= set(updates)
    for ecosystem, manifest in manifests.items():
        update = updates[ecosystem]
        assert update["schedule"]["interval"] == "weekly", ecosystem
        assert (ROOT / update["directory"].lstrip("/") / manifest).exists(), f"{ecosystem}: no {manifest}"
