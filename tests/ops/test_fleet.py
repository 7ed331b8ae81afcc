"""scripts/fleet: every tenant's state in one table, and an image upgrade that goes to a canary first,
then in waves, stops at the first failure and is rolled back by an upgrade to the previous tag.

In a cluster, offline: fleet.py runs on a copy of the repository's scripts, kubernetes/ and a tenants/
of its own, against a stand-in `$KUBECTL` that records every call and renders what it is asked to
apply with the real `kubectl kustomize`. Locally: against real servers started by scripts/dev."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.utils.kustomize import kubectl
from tests.utils.private_dev import stop_and_remove, two_free_ports

OLD, NEW = "0.1.0", "0.2.0"
REPOSITORY = "ghcr.io/finance-platform/finance-service"
CONTEXT = "kind-fleet"
# Deployed tenants with a folder, in name order; tenant1 (LOCAL_ONLY) is deployed too, to show it is never touched.
FLEET = ["alpha", "beta", "delta", "gamma"]

# The stand-in kubectl: records argv (one JSON line each), renders `apply -k DIR` with the real
# kubectl into applied/<namespace>.json ({"Kind/name/container": image} of every container running
# the app image) and into live/<namespace>.json (the workloads as the cluster now runs them, which a
# namespaced `get statefulsets,deployments,cronjobs` answers), and answers the rest as scenario.json says.
FAKE_KUBECTL = r'''
import json, subprocess, sys
from pathlib import Path
import yaml
here = Path(__file__).resolve().parent.parent
scenario = json.loads((here / "scenario.json").read_text())
argv = sys.argv[1:]
with (here / "calls").open("a") as calls:
    calls.write(json.dumps(argv) + "\n")
if argv[:1] == ["--context"]:
    argv = argv[2:]
WORKLOADS = ("Deployment", "StatefulSet", "CronJob")
namespace = None
if argv[:1] == ["-n"]:
    namespace, argv = argv[1], argv[2:]
tenant = (namespace or "").removeprefix("finance-")
LABEL = "finance.example.com/tenant"

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)

if argv[:1] == ["kustomize"]:
    sys.exit(subprocess.run([scenario["kubectl"], *argv]).returncode)
elif argv[:2] == ["config", "current-context"]:
    # The first answer, then another: what a `kubectl config use-context` in another terminal does.
    if scenario.get("current_context", "the-current-context") is None:
        fail("error: current-context is not set")
    asked = sum('"current-context"' in line for line in (here / "calls").read_text().splitlines())
    print(scenario.get("current_context", "the-current-context") if asked == 1 else "another-context")
elif argv[:2] == ["get", "namespaces"]:
    print(json.dumps({"items": [
        {"kind": "Namespace", "metadata": {"name": f"finance-{name}", "labels": {LABEL: name}}}
        for name in scenario["deployed"]]}))
elif argv[:2] == ["get", "statefulsets,deployments,cronjobs"] and namespace:
    live = here / "live" / f"{namespace}.json"
    print(json.dumps({"items": json.loads(live.read_text()) if live.exists() else []}))
elif argv[:1] == ["get"]:
    print(json.dumps({"items": scenario["listing"]}))
elif argv[:2] == ["apply", "-k"]:
    rendered = subprocess.run([scenario["kubectl"], "kustomize", argv[2]], capture_output=True, text=True, check=True)
    objects = [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]
    target = next(obj["metadata"]["namespace"] for obj in objects if obj["kind"] == "Deployment")
    if target.removeprefix("finance-") in scenario.get("apply_fails", []):
        fail('error: the server could not find the requested resource')
    images = {}
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            if "finance-service" in container["image"]:
                images[f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"] = container["image"]
    (here / "applied").mkdir(exist_ok=True)
    (here / "applied" / f"{target}.json").write_text(json.dumps(images))
    (here / "live" / f"{target}.json").write_text(json.dumps([obj for obj in objects if obj["kind"] in WORKLOADS]))
    print(f"deployment.apps/finance-api configured")
elif argv[:2] == ["rollout", "status"]:
    if tenant in scenario.get("rollout_fails", []):
        fail(f'error: {argv[2]} exceeded its progress deadline')
elif argv[:1] == ["exec"]:
    applied = here / "applied" / f"{namespace}.json"
    image = ":" + scenario["running"]
    if applied.exists():
        image = json.loads(applied.read_text())["Deployment/finance-api/api"]
    status, answer = scenario.get("ready", {}).get(tenant, [200, {}])
    if status == 200:  # the answer of a ready server, with what the scenario changes (None: left out)
        answer = {"status": "ready", "tenant": tenant, "version": image.partition("@")[0].rpartition(":")[2],
                  "schema_version": "0014_webhooks", **answer}
        answer = {key: value for key, value in answer.items() if value is not None}
    print(status, json.dumps(answer))
else:
    fail(f"fake kubectl: unexpected {argv}")
'''


class Fleet:
    """A copy of the repository's scripts and manifests with tenants of its own, and a stand-in cluster."""

    def __init__(self, directory: Path) -> None:
        self.root = directory / "repo"
        (self.root / "scripts").mkdir(parents=True)
        for script in ("fleet.py", "tenancy.py", "dev.py", "localstack.py", "pgbackrest_info.py"):
            shutil.copy(ROOT / "scripts" / script, self.root / "scripts" / script)
        shutil.copytree(ROOT / "kubernetes", self.root / "kubernetes")
        shutil.copytree(ROOT / "tenants" / "tenant1", self.root / "tenants" / "tenant1")
        for name in [*FLEET, "zeta"]:
            self.add_tenant(name)
        self.cluster = directory / "cluster"
        kubectl_path = self.cluster / "bin" / "kubectl"
        kubectl_path.parent.mkdir(parents=True)
        kubectl_path.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
        kubectl_path.chmod(0o755)
        self.env = {**os.environ, "KUBECTL": str(kubectl_path), "FLEET_SMOKE_SECONDS": "0"}
        self.scenario: dict = {"kubectl": kubectl(), "deployed": [*FLEET, "tenant1"], "running": OLD, "listing": []}
        self.overlays = {name: self.overlay(name).read_text() for name in [*FLEET, "tenant1", "zeta"]}
        (self.cluster / "live").mkdir()
        for name in FLEET:
            self.deploy_pinned(name)

    def deploy_pinned(self, name: str) -> None:
        """The tenant's workloads in the stand-in cluster as deploy.yml applies them: every image
        that the overlay names by tag, by tag and digest (a digest made up from the image)."""
        output = subprocess.run([kubectl(), "kustomize", str(self.overlay(name).parent)], capture_output=True,
                                text=True, check=True, timeout=60).stdout
        for image in {line.split("image: ")[1] for line in output.splitlines() if "image: " in line}:
            if "@" not in image:
                output = output.replace(f"image: {image}\n", f"image: {image}@{fake_digest(image)}\n")
        workloads = [obj for obj in yaml.safe_load_all(output) if obj and obj["kind"] in WORKLOADS]
        self.live_path(name).write_text(json.dumps(workloads))

    def live_path(self, name: str) -> Path:
        return self.cluster / "live" / f"finance-{name}.json"

    def live(self, name: str) -> dict[tuple[str, str], dict]:
        """The tenant's workloads as the stand-in cluster runs them, by (kind, name)."""
        return {(obj["kind"], obj["metadata"]["name"]): obj for obj in json.loads(self.live_path(name).read_text())}

    def hidden_folders(self) -> list[str]:
        return [path.name for path in (self.root / "tenants").iterdir() if path.name.startswith(".")]

    def add_tenant(self, name: str) -> None:
        """A tenant folder as onboarding writes it (tenant1's, renamed), not LOCAL_ONLY."""
        folder = self.root / "tenants" / name
        shutil.copytree(ROOT / "tenants" / "tenant1", folder)
        for path in folder.iterdir():
            path.write_text(path.read_text().replace("tenant1", name))
        (folder / "local.env").write_text("LOCAL_PORT=8101\n")

    def overlay(self, name: str) -> Path:
        return self.root / "tenants" / name / "kustomization.yaml"

    def run(self, *args: str, **scenario) -> subprocess.CompletedProcess:
        (self.cluster / "scenario.json").write_text(json.dumps({**self.scenario, **scenario}))
        (self.cluster / "calls").unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, str(self.root / "scripts" / "fleet.py"), *args], env=self.env, cwd=self.root,
            capture_output=True, text=True, timeout=300, check=False,
        )

    @property
    def calls(self) -> list[list[str]]:
        path = self.cluster / "calls"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def changing_calls(self) -> list[str]:
        """The calls that change the cluster or wait on a change, without the --context prefix."""
        calls = [call[2:] if call[:1] == ["--context"] else call for call in self.calls]
        return [" ".join(call) for call in calls
                if (call[2:] if call[:1] == ["-n"] else call)[:1] not in (["get"], ["kustomize"], ["config"])]

    def applied(self, name: str) -> dict[str, str] | None:
        path = self.cluster / "applied" / f"finance-{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def rendered_images(self, name: str) -> set[str]:
        """Every app image the tenant's overlay renders now, with the real kubectl."""
        output = subprocess.run([kubectl(), "kustomize", str(self.overlay(name).parent)], capture_output=True,
                                text=True, check=True, timeout=60).stdout
        images = (line.split("image: ")[1] for line in output.splitlines() if "image: " in line)
        return {image for image in images if "finance-service" in image}


WORKLOADS = ("Deployment", "StatefulSet", "CronJob")


def fake_digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


@pytest.fixture
def fleet(tmp_path) -> Fleet:
    return Fleet(tmp_path)


def tenant_steps(name: str) -> list[str]:
    """What an upgrade does to one tenant, in order (the smoke request being an exec); a step
    ending in "…" is compared up to there (the temporary overlay's random suffix, the exec's script)."""
    namespace = f"finance-{name}"
    return [
        f"apply -k tenants/.fleet-{name}-…",
        f"-n {namespace} rollout status statefulset/postgres --timeout=300s",
        f"-n {namespace} rollout status deployment/finance-api --timeout=300s",
        f"-n {namespace} rollout status deployment/finance-webhooks --timeout=300s",
        f"-n {namespace} exec deploy/finance-api -c api -- python -c …",
    ]


def assert_steps(fleet: Fleet, expected: list[str]) -> None:
    """The changing calls are these, in this order."""
    got = fleet.changing_calls()
    assert len(got) == len(expected), "\n".join(got)
    for call, step in zip(got, expected, strict=True):
        matches = call.startswith(step[:-1]) if step.endswith("…") else call == step
        assert matches, f"{call!r} is not {step!r}"


# --- upgrade in a cluster -------------------------------------------------------------------------


def test_dry_run_prints_the_waves_and_each_command_and_changes_nothing(fleet):
    result = fleet.run("upgrade", "--image", NEW, "--canary", "gamma", "--wave", "2", "--dry-run", "--context", CONTEXT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"image {REPOSITORY}:{NEW} in context {CONTEXT}" in out
    assert "wave 0 (canary): gamma (0.1.0 -> 0.2.0)" in out
    assert "wave 1: alpha (0.1.0 -> 0.2.0), beta (0.1.0 -> 0.2.0)" in out
    assert "wave 2: delta (0.1.0 -> 0.2.0)" in out
    assert out.index("wave 0") < out.index("wave 1") < out.index("wave 2")
    assert "left alone: tenant1 (LOCAL_ONLY), zeta (no namespace finance-zeta)" in out
    assert 'set images: newTag "0.2.0" in tenants/gamma/kustomization.yaml' in out
    # Every image but the app's is pinned to the digest the live workloads run.
    postgres = "ghcr.io/finance-platform/finance-postgres:0.1.0"
    assert f"pin to the digests running now: {postgres}@{fake_digest(postgres)}\n" in out
    assert f"kubectl --context {CONTEXT} apply -k tenants/.fleet-gamma-XXXX (tenants/gamma with those pins" in out
    assert out.index(f"kubectl --context {CONTEXT} -n finance-gamma rollout status statefulset/postgres") < out.index(
        f"kubectl --context {CONTEXT} -n finance-gamma rollout status deployment/finance-api --timeout=300s")
    assert f"kubectl --context {CONTEXT} -n finance-gamma rollout status deployment/finance-webhooks" in out
    assert "dry run: nothing changed" in out
    # Only reads, every one on the context given; no overlay written.
    assert fleet.changing_calls() == []
    assert all(call[:2] == ["--context", CONTEXT] for call in fleet.calls if call[:1] != ["kustomize"])
    assert {name: fleet.overlay(name).read_text() for name in fleet.overlays} == fleet.overlays


def test_upgrade_goes_to_the_canary_then_in_waves_and_a_rollback_restores_the_old_image(fleet):
    result = fleet.run("upgrade", "--image", NEW, "--wave", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    # The canary (the first by name) alone and verified, then beta and delta applied together and
    # each verified, then gamma.
    assert_steps(fleet, [
        *tenant_steps("alpha"),
        tenant_steps("beta")[0], tenant_steps("delta")[0], *tenant_steps("beta")[1:], *tenant_steps("delta")[1:],
        *tenant_steps("gamma"),
    ])
    for name in FLEET:
        applied = fleet.applied(name)
        # The API and its migrate container, the webhook dispatcher, the scheduler's CronJob and the
        # restore drill's (which asks the image for the newest migration).
        assert set(applied) == {"Deployment/finance-api/migrate", "Deployment/finance-api/api",
                                "Deployment/finance-webhooks/dispatcher", "CronJob/finance-scheduler/scheduler",
                                "CronJob/restore-drill/newest-migration"}
        assert set(applied.values()) == {f"{REPOSITORY}:{NEW}"}, name
        assert fleet.rendered_images(name) == {f"{REPOSITORY}:{NEW}"}
        # The overlay keeps what it said and gains the tag.
        assert fleet.overlay(name).read_text().startswith(fleet.overlays[name])
    assert fleet.applied("tenant1") is None and fleet.overlay("tenant1").read_text() == fleet.overlays["tenant1"]
    assert "done: alpha, beta, delta, gamma run 0.2.0" in result.stdout

    rollback = fleet.run("upgrade", "--image", OLD)
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert_steps(fleet, [step for name in FLEET for step in tenant_steps(name)])
    for name in FLEET:
        assert set(fleet.applied(name).values()) == {f"{REPOSITORY}:{OLD}"}, name
        assert fleet.rendered_images(name) == {f"{REPOSITORY}:{OLD}"}
        # A second upgrade rewrites the one entry it added.
        assert fleet.overlay(name).read_text().count("newTag:") == 1
    assert fleet.applied("tenant1") is None


def images_of(workload: dict) -> dict[str, str]:
    """{container: image} of a workload's pod template, init containers included."""
    spec = workload["spec"]
    pod = spec.get("jobTemplate", {}).get("spec", spec)["template"]["spec"]
    return {container["name"]: container["image"] for container in [*pod.get("initContainers", []), *pod["containers"]]}


def test_an_upgrade_and_its_rollback_change_the_app_image_alone_and_keep_every_digest(fleet):
    # deploy.yml applied every image by digest; an apply by tag alone would change PostgreSQL's pod
    # template and replace postgres-0.
    before = fleet.live("alpha")
    for tag in (NEW, OLD):
        result = fleet.run("upgrade", "--image", tag, "--tenants", "alpha")
        assert result.returncode == 0, result.stdout + result.stderr
        after = fleet.live("alpha")
        assert after.keys() == before.keys()
        postgres = ("StatefulSet", "postgres")
        assert after[postgres]["spec"]["template"] == before[postgres]["spec"]["template"]
        for key, workload in after.items():
            for container, image in images_of(workload).items():
                kept = images_of(before[key])[container]
                assert image == (f"{REPOSITORY}:{tag}" if REPOSITORY in image else kept), (key, container)
        # The temporary overlay is gone; the tenant's own names the tag, without a digest.
        assert fleet.hidden_folders() == []
        assert fleet.rendered_images("alpha") == {f"{REPOSITORY}:{tag}"}


def test_every_call_names_the_context_current_when_the_upgrade_started(fleet):
    # The stand-in's current context changes after the first time it is asked.
    result = fleet.run("upgrade", "--image", NEW, "--wave", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in context the-current-context:" in result.stdout
    calls = [call for call in fleet.calls if call[:1] != ["kustomize"]]  # rendering reaches no cluster
    assert calls[0] == ["config", "current-context"]
    assert all(call[:2] == ["--context", "the-current-context"] for call in calls[1:]), calls
    assert len(fleet.changing_calls()) == len(FLEET) * len(tenant_steps("alpha"))


def test_without_a_current_context_it_refuses_in_one_line(fleet):
    result = fleet.run("upgrade", "--image", NEW, current_context=None)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "scripts/fleet: error: kubectl has no current context: name the cluster with --context CTX"
        " (kubectl config get-contexts lists them)"
    )
    assert fleet.calls == [["config", "current-context"]]


def test_a_tenant_answering_without_a_version_passes_the_smoke_request_with_a_note(fleet):
    # An image from before /health/ready named its version, as a rollback to an old release meets.
    result = fleet.run("upgrade", "--image", NEW, "--tenants", "alpha", ready={"alpha": [200, {"version": None}]})
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("alpha: /health/ready does not name its version (an image from before it did): the version could not"
            " be checked") in result.stdout


@pytest.mark.parametrize("tag", ["1.10.0", "0.1.0-e2e-next"])
@pytest.mark.parametrize("written", ["", OLD, f'"{OLD}"'])
def test_a_version_tag_is_written_quoted_and_renders_whatever_entry_the_overlay_had(fleet, tag, written):
    # No entry yet, or one as onboard-tenant --force writes it back (unquoted), or as the fleet writes it.
    if written:
        fleet.overlay("alpha").write_text(
            fleet.overlays["alpha"].rstrip("\n") + f"\nimages:\n  - name: {REPOSITORY}\n    newTag: {written}\n")
    result = fleet.run("upgrade", "--image", tag, "--tenants", "alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    text = fleet.overlay("alpha").read_text()
    assert text.count("newTag:") == 1 and f'newTag: "{tag}"\n' in text
    assert fleet.rendered_images("alpha") == {f"{REPOSITORY}:{tag}"}
    assert set(fleet.applied("alpha").values()) == {f"{REPOSITORY}:{tag}"}


def test_a_tenant_named_twice_is_upgraded_once(fleet):
    result = fleet.run("upgrade", "--image", NEW, "--tenants", "beta,alpha,beta")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_steps(fleet, [*tenant_steps("alpha"), *tenant_steps("beta")])

@pytest.mark.parametrize("failure", ["rollout_fails", "apply_fails", "ready"])
def test_the_first_failing_tenant_stops_the_upgrade_and_the_rest_are_untouched(fleet, failure):
    not_ready = [503, {"error": {"code": "migrations_pending", "message": "Database migrations are pending."}}]
    scenario = {failure: {"beta": not_ready} if failure == "ready" else ["beta"]}
    result = fleet.run("upgrade", "--image", NEW, **scenario)
    assert result.returncode == 1
    # beta's steps up to the one that failed: the apply, the API's rollout, or the smoke request after both rollouts.
    reached = {"apply_fails": 1, "rollout_fails": 2, "ready": 5}[failure]
    assert_steps(fleet, [*tenant_steps("alpha"), *tenant_steps("beta")[:reached]])
    assert set(fleet.applied("alpha").values()) == {f"{REPOSITORY}:{NEW}"}
    for name in ("delta", "gamma", "tenant1"):
        assert fleet.applied(name) is None
        assert fleet.overlay(name).read_text() == fleet.overlays[name]
    # An apply that failed leaves beta's overlay as it was; one that succeeded keeps the new tag.
    assert (fleet.overlay("beta").read_text() == fleet.overlays["beta"]) == (failure == "apply_fails")
    assert fleet.hidden_folders() == []
    assert "beta failed" in result.stderr
    if failure == "ready":
        assert "/health/ready answers 503 migrations_pending" in result.stderr
    assert "upgraded to 0.2.0: alpha; failed: beta; not reached (unchanged): delta, gamma" in result.stderr
    rollback = f"scripts/fleet upgrade --image {OLD} --tenants alpha,beta"
    assert rollback in result.stderr

    # The rollback it prints puts both back, and nothing else.
    back = fleet.run(*rollback.split()[1:])
    assert back.returncode == 0, back.stdout + back.stderr
    assert_steps(fleet, [*tenant_steps("alpha"), *tenant_steps("beta")])
    for name in ("alpha", "beta"):
        assert fleet.rendered_images(name) == {f"{REPOSITORY}:{OLD}"}
    assert fleet.applied("delta") is None and fleet.applied("gamma") is None


def test_a_canary_still_answering_the_old_version_stops_the_upgrade(fleet):
    result = fleet.run("upgrade", "--image", NEW, ready={"alpha": [200, {"version": OLD}]})
    assert result.returncode == 1
    assert f"answers version {OLD}, not {NEW}" in result.stderr
    assert_steps(fleet, tenant_steps("alpha"))
    assert all(fleet.applied(name) is None for name in ("beta", "delta", "gamma"))


def test_an_overlay_that_already_lists_images_gains_the_app_images_entry(fleet):
    pin = "images:\n  - name: postgres\n    newTag: 17.11-alpine\n"
    fleet.overlay("alpha").write_text(fleet.overlays["alpha"].rstrip("\n") + "\n" + pin)
    result = fleet.run("upgrade", "--image", NEW, "--tenants", "alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    assert fleet.rendered_images("alpha") == {f"{REPOSITORY}:{NEW}"}
    text = fleet.overlay("alpha").read_text()
    assert text.count("images:") == 1 and "name: postgres\n    newTag: 17.11-alpine" in text


def test_an_overlay_that_pins_the_app_image_otherwise_is_refused_and_left_as_it_was(fleet):
    # A digest beside the tag (the fleet writes tags; deploy.yml pins digests in an overlay of its own).
    pinned = (fleet.overlays["beta"].rstrip("\n") + f"\nimages:\n  - name: {REPOSITORY}\n    newTag: {OLD}\n"
              "    digest: sha256:" + "0" * 64 + "\n")
    fleet.overlay("beta").write_text(pinned)
    result = fleet.run("upgrade", "--image", NEW)
    assert result.returncode == 1
    assert f"tenants/beta renders {REPOSITORY}:{NEW}@sha256:" in result.stderr
    assert fleet.overlay("beta").read_text() == pinned
    # alpha (the canary) was upgraded; beta was never applied, and nothing after it was touched.
    assert_steps(fleet, tenant_steps("alpha"))
    assert all(fleet.applied(name) is None for name in ("beta", "delta", "gamma"))


@pytest.mark.parametrize(("args", "message"), [
    # publish.yml's other tags, and what is no tag at all: /health/ready does not answer them as a version.
    (["--image", "sha-0123abc"], "is not a release version tag"),
    (["--image", "0.2"], "is not a release version tag"),
    (["--image", "main"], "is not a release version tag"),
    (["--image", "0.2.0 beta"], "is not a release version tag"),
    (["--image", NEW, "--canary", "tenant1"], "--canary tenant1 is not a tenant this upgrade reaches"),
    (["--image", NEW, "--canary", "zeta"], "--canary zeta is not a tenant this upgrade reaches"),
    (["--image", NEW, "--tenants", "alpha,nobody"], "--tenants: nobody cannot be upgraded here"),
    (["--image", NEW, "--wave", "0"], "--wave 0: a wave is at least one tenant"),
    (["--local", "--image", NEW], "--image with --local"),
    ([], "upgrade needs --image TAG"),
    (["--image", NEW, "--local", "--context", CONTEXT], "not allowed with argument"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(fleet, args, message):
    result = fleet.run("upgrade", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert fleet.changing_calls() == []
    assert {name: fleet.overlay(name).read_text() for name in fleet.overlays} == fleet.overlays


# --- status in a cluster --------------------------------------------------------------------------


def listing(fleet: Fleet, now: datetime, **tenants: dict) -> list[dict]:
    """What `kubectl get namespaces,deployments,statefulsets,cronjobs,ingresses -A -l ...` answers for
    these tenants: their rendered objects, each with the status given (everything ready by default)."""
    items = []
    for name, state in tenants.items():
        output = subprocess.run([kubectl(), "kustomize", str(fleet.root / "tenants" / name)], capture_output=True,
                                text=True, check=True, timeout=60).stdout
        for obj in yaml.safe_load_all(output):
            if not obj or obj["kind"] not in ("Namespace", "Deployment", "StatefulSet", "CronJob", "Ingress"):
                continue
            if "finance.example.com/tenant" not in obj["metadata"].get("labels", {}):
                continue  # what -l finance.example.com/tenant would leave out
            obj["metadata"]["creationTimestamp"] = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if obj["kind"] in ("Deployment", "StatefulSet"):
                wanted = obj["spec"].get("replicas", 1)
                obj["status"] = {"replicas": wanted, "readyReplicas": state.get(obj["metadata"]["name"], wanted)}
            if obj["kind"] == "CronJob" and obj["metadata"]["name"] in state:
                obj["status"] = {"lastSuccessfulTime": state[obj["metadata"]["name"]].strftime("%Y-%m-%dT%H:%M:%SZ")}
            items.append(obj)
    return items


def table(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[1:]}


def test_status_shows_each_tenant_and_fails_naming_the_unhealthy_ones(fleet):
    now = datetime.now(UTC)
    backed_up = {"postgres-backup-full": now - timedelta(days=3), "postgres-backup-diff": now - timedelta(hours=5)}
    # alpha is healthy; beta has one API replica of two ready, and it is not ready: a migration is
    # pending; gamma has had no good backup for days; delta's API answers as another tenant (a wrong
    # Service or database), and a version other than its image's; zeta has no namespace.
    objects = listing(fleet, now, alpha=backed_up, beta={**backed_up, "finance-api": 1},
                      gamma={"postgres-backup-full": now - timedelta(days=3)}, delta=backed_up)
    result = fleet.run("status", "--context", CONTEXT, listing=objects, deployed=["alpha", "beta", "gamma", "delta"],
                       ready={"delta": [200, {"tenant": "alpha", "version": "0.0.9"}],
                              "beta": [503, {"error": {"code": "migrations_pending", "message": "..."}}]})
    assert result.returncode == 1
    rows = table(result.stdout)
    assert rows["alpha"].split() == [
        "alpha", "https://alpha.finance.example.com", OLD, "2/2", "ready", "0014_webhooks",
        backed_up["postgres-backup-diff"].strftime("%Y-%m-%dT%H:%MZ"), "(5h", "ago)", "diff", "ok",
    ]
    assert rows["beta"].split()[2:6] == [OLD, "1/2", "ready", "migrations_pending"]
    assert rows["beta"].endswith("UNHEALTHY")
    assert rows["delta"].split()[2:5] == [OLD, "(answers", "0.0.9)"]
    assert rows["gamma"].endswith("UNHEALTHY") and "3d0h ago" in rows["gamma"]
    assert "not deployed: no namespace finance-zeta" in rows["zeta"]
    assert result.stderr.splitlines() == [
        "beta is unhealthy: 1 of 2 API replicas ready; /health/ready answers 503 migrations_pending",
        "delta is unhealthy: the server answering is tenant 'alpha', not 'delta'",
        "gamma is unhealthy: no good backup for 3d0h",
    ]
    # One listing for every tenant, then one readiness exec per tenant with a ready API pod.
    assert [call[2] for call in fleet.calls] == ["get", "-n", "-n", "-n", "-n"]
    assert all(call[:2] == ["--context", CONTEXT] for call in fleet.calls)


def test_status_of_a_healthy_fleet_exits_0_and_names_a_namespace_without_a_folder(fleet):
    now = datetime.now(UTC)
    backed_up = {"postgres-backup-full": now - timedelta(hours=2)}
    fleet.add_tenant("orphan")
    objects = listing(fleet, now, alpha=backed_up, orphan=backed_up)
    shutil.rmtree(fleet.root / "tenants" / "orphan")
    result = fleet.run("status", listing=objects, deployed=["alpha", "orphan"])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows["alpha"].endswith(" ok")
    assert rows["orphan"].endswith("ok (no folder tenants/orphan: upgrades leave it alone)")
    # The folders not deployed are lines too, neither healthy nor not; tenant1 (LOCAL_ONLY) is not one.
    assert {"beta", "delta", "gamma", "zeta"} <= set(rows) and "tenant1" not in rows


# --- locally ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_fleet(tmp_path_factory) -> Iterator[list[str]]:
    """Two private tenants served by scripts/dev (its own tenants/ and state folders, free ports)."""
    import dev
    import tenancy

    directory = tmp_path_factory.mktemp("local-fleet")
    names = ["fleet-one", "fleet-two"]
    app_port, pg_port = two_free_ports(), two_free_ports()
    for offset, name in enumerate(names):
        (directory / "tenants" / name).mkdir(parents=True)
        (directory / "tenants" / name / "tenant.env").write_text("TENANT_CURRENCY=USD\nTENANT_TIMEZONE=UTC\n")
        (directory / "tenants" / name / "local.env").write_text(f"LOCAL_PORT={app_port + offset}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tenancy, "TENANTS_DIR", directory / "tenants")
        patch.setattr(dev, "STATE", directory / "state")
        patch.setattr(dev, "PG_PORT", pg_port - (app_port - dev.FIRST_APP_PORT))
        try:
            dev.up()
            yield names
        finally:
            stop_and_remove(names)


def fleet_main(*args: str) -> int:
    import fleet

    return fleet.main(list(args))


def test_local_status_shows_every_tenant_from_its_own_server_and_archive(local_fleet, capsys):
    import dev

    assert fleet_main("status", "--local") == 0
    out = capsys.readouterr().out
    rows = table(out)
    schema = sorted(path.stem for path in (ROOT / "service" / "migrations").glob("*.sql"))[-1]
    for name in local_fleet:
        cells = rows[name].split()
        # scripts/dev took a full backup at the first start.
        assert cells[:6] == [name, dev.running(name)[1], importlib.metadata.version("finance-service"), "1/1",
                             "ready", schema], rows[name]
        assert cells[-2:] == ["full", "ok"], rows[name]


def test_local_status_fails_for_a_server_that_answers_as_another_tenant(local_fleet, capsys):
    import dev

    one, two = local_fleet
    pid_file = dev.STATE / "run" / f"{two}.pid"
    kept = pid_file.read_text()
    # two's pid file pointing at one's server: what a port handed to two while one still serves on it looks like.
    pid_file.write_text(f"{dev.running(one)[0]} {dev.running(one)[1]}\n")
    try:
        assert fleet_main("status", "--local") == 1
    finally:
        pid_file.write_text(kept)
    err = capsys.readouterr().err
    assert err.strip() == f"{two} is unhealthy: the server answering is tenant '{one}', not '{two}'"


def test_local_upgrade_dry_run_prints_the_order_and_restarts_nothing(local_fleet, capsys):
    import dev

    pids = {name: dev.running(name) for name in local_fleet}
    assert fleet_main("upgrade", "--local", "--canary", local_fleet[1], "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.index(f"wave 0 (canary): {local_fleet[1]}") < out.index(f"wave 1: {local_fleet[0]}")
    assert "dry run: nothing changed" in out
    assert {name: dev.running(name) for name in local_fleet} == pids


def watch_restarts(monkeypatch) -> dict[str, bool]:
    """{tenant: whether `scripts/dev run` would keep serving} at the moment each stopped server is
    started again: its loop stops every tenant as soon as one is neither running nor marked. And
    `scripts/dev status` says why the tenant is down meanwhile."""
    import dev
    import tenancy

    seen: dict[str, bool] = {}
    serve = dev.serve

    def serve_watched(stack, tenant, port):
        assert dev.running(tenant.name) is None
        seen[tenant.name] = all(dev.running(t.name) or dev.restoring_marker(t.name).exists()
                                for t in tenancy.discover_tenants())
        problem = dev._server_problem(tenant.name, {tenant.name}, {})
        assert problem == f"{tenant.name}: not running while scripts/fleet upgrade --local restarts it"
        return serve(stack, tenant, port)

    monkeypatch.setattr(dev, "serve", serve_watched)
    return seen


def test_local_upgrade_restarts_each_server_canary_first_and_checks_it(local_fleet, capsys, monkeypatch):
    import dev

    before = {name: dev.running(name)[0] for name in local_fleet}
    kept_serving = watch_restarts(monkeypatch)
    assert fleet_main("upgrade", "--local", "--wave", "1") == 0
    out = capsys.readouterr().out
    one, two = local_fleet
    assert out.index(f"{one}: restarted, ready") < out.index(f"{two}: restarted, ready")
    for name in local_fleet:
        assert dev.running(name) and dev.running(name)[0] != before[name]
    # `make run` went on serving through each restart, and no marker is left to hide a server that dies later.
    assert kept_serving == {one: True, two: True}
    assert not any(dev.restoring_marker(name).exists() for name in local_fleet)
    assert fleet_main("status", "--local") == 0



def test_a_local_upgrade_stops_at_a_server_that_does_not_start(local_fleet, capsys):
    import dev
    import tenancy

    one, two = local_fleet
    settings = tenancy.tenant_dir(two) / "tenant.env"
    kept = settings.read_text()
    # The migration takes this setting; the server refuses it (JWT_TTL_SECONDS is at least 60).
    settings.write_text(kept + "JWT_TTL_SECONDS=1\n")
    try:
        assert fleet_main("upgrade", "--local") == 1
    finally:
        settings.write_text(kept)
    captured = capsys.readouterr()
    assert f"{one}: restarted, ready" in captured.out
    assert f"fleet upgrade: {two} failed" in captured.err and "JWT_TTL_SECONDS" in captured.err
    assert f"stopped: restarted {one}; not reached: none" in captured.err
    assert dev.running(one) and dev.running(two) is None
    assert not dev.restoring_marker(two).exists()

def test_e2e_upgrades_the_kind_fleet_to_a_second_tag_and_rolls_back():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e.yml").read_text())
    steps = workflow["jobs"]["kind"]["steps"]
    names = [step.get("name", "") for step in steps]
    fleet_step = next(step for step in steps if "scripts/fleet upgrade" in step.get("run", ""))
    # After the tenants are onboarded, with the second tag built and loaded into kind first.
    assert names.index(fleet_step["name"]) > names.index("Onboard two tenants with the script")
    run = fleet_step["run"]
    order = ['kind load docker-image "${IMAGE%:*}:$new"', "scripts/fleet status",
             'scripts/fleet upgrade --image "$new"', 'answers "$new"', 'scripts/fleet upgrade --image "$old"',
             'answers "$old"']
    assert [run.index(command) for command in order] == sorted(run.index(command) for command in order)
    assert '--build-arg VERSION="$new"' in run
