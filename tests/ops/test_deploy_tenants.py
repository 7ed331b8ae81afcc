"""deploy.yml's scripts (.github/deploy/), run as the workflow runs them in a copy of the repository.

choose-tenants.sh is run against tenants/ trees built here. deploy-tenants.sh renders the overlays
with the real `kubectl kustomize`; the calls that would reach a cluster or a registry go to stand-in
`kubectl`, `docker` and `curl` executables on PATH that record them and play a cluster where one
chosen tenant is broken at one chosen step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tenancy
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / ".github" / "deploy"
CHOOSE = SCRIPTS / "choose-tenants.sh"
DEPLOY = SCRIPTS / "deploy-tenants.sh"
REAL_KUBECTL = shutil.which("kubectl")
SECRET_KEYS = (
    "JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD",
    "PGBACKREST_REPO1_CIPHER_PASS", "PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET",
)
APP_IMAGE = "ghcr.io/finance-platform/finance-service"
POSTGRES_IMAGE = "ghcr.io/finance-platform/finance-postgres"

# kubectl as a cluster would answer, FAKE_BROKEN_TENANT being broken at FAKE_BROKEN_STEP. Each call
# is a JSON line of KUBECTL_LOG; `kustomize` is the real one.
FAKE_KUBECTL = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "kustomize":
    os.execv(os.environ["REAL_KUBECTL"], ["kubectl", *args])
namespace = args[args.index("-n") + 1] if "-n" in args else None
rest = [arg for arg in args if arg not in ("-n", namespace)]
broken = "finance-" + os.environ.get("FAKE_BROKEN_TENANT", "")
step = os.environ.get("FAKE_BROKEN_STEP")
if rest[:2] == ["get", "namespace"]:
    if rest[2] == broken and step == "no-namespace":
        sys.exit("Error from server (NotFound): namespaces not found")
if rest[:3] == ["get", "secret", "finance-secrets"]:
    if namespace == broken and step == "no-secret":
        sys.exit('Error from server (NotFound): secrets "finance-secrets" not found')
    missing = "BACKUP_PASSWORD" if namespace == broken and step == "missing-key" else None
    print("\\n".join(key for key in {keys} if key != missing))
if rest[:3] == ["get", "secret", "pgbackrest-tls"] and namespace == broken and step == "no-tls":
    sys.exit('Error from server (NotFound): secrets "pgbackrest-tls" not found')
if rest[:2] == ["apply", "-k"] and rest[2].endswith("/" + broken.removeprefix("finance-")) and step == "apply":
    sys.exit("error: the server could not be reached")
if rest[:2] == ["rollout", "status"] and namespace == broken and step == "rollout":
    sys.exit("error: timed out waiting for the condition")
if rest[:3] == ["get", "ingress", "finance-api"]:
    print(namespace.removeprefix("finance-") + ".finance.example.test", end="")
"""

# docker's registry calls: `login` and the digest of an image, derived from its name (none for the
# FAKE_UNKNOWN_IMAGES).
FAKE_DOCKER = """#!{python}
import hashlib, json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "--password-stdin" in args else None
with open(os.environ["DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[:3] == ["buildx", "imagetools", "inspect"]:
    if args[3] in os.environ.get("FAKE_UNKNOWN_IMAGES", "").split():
        sys.exit(f"ERROR: {{args[3]}}: not found")
    digest = "sha256:" + hashlib.sha256(args[3].encode()).hexdigest()
    print(json.dumps({{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": 1}}))
"""

# The tenant's public URL: ready, naming the tenant of its host, unless that tenant's smoke test
# is the broken step (refused) or another tenant answers in its place (an impostor).
FAKE_CURL = """#!{python}
import json, os, sys
url = sys.argv[-1]
with open(os.environ["CURL_LOG"], "a") as log:
    log.write(url + "\\n")
tenant = url.removeprefix("https://").split(".")[0]
step = os.environ.get("FAKE_BROKEN_STEP")
if tenant == os.environ.get("FAKE_BROKEN_TENANT"):
    if step == "smoke":
        sys.exit("curl: (7) Failed to connect")
    if step == "impostor":
        tenant = "someone-else"
print(json.dumps({{"status": "ready", "tenant": tenant, "version": "0.1.0", "schema_version": "0014_webhooks"}}))
"""


def write_tenant(repo: Path, name: str, local_env: str = "") -> None:
    """A tenant overlay as onboard-tenant writes one, with this local.env."""
    folder = repo / "tenants" / name
    shutil.copytree(ROOT / "tenants" / "tenant1", folder)
    for file in ("kustomization.yaml", "backup.env"):
        (folder / file).write_text((folder / file).read_text().replace("tenant1", name))
    (folder / "local.env").write_text(local_env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the base and three deployable tenants around a local-only demo tenant."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "kubernetes", repo / "kubernetes")
    for name in ("alpha", "bravo", "charlie"):
        write_tenant(repo, name, "LOCAL_PORT=8011\n")
    write_tenant(repo, "demo", "LOCAL_PORT=8001\nLOCAL_ONLY=true\n")
    return repo


def choose(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHOOSE), *args], cwd=repo, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, str]:
    """The environment that puts the stand-in kubectl, docker and curl first on PATH."""
    if REAL_KUBECTL is None:
        pytest.fail("kubectl is not installed: the script renders overlays with `kubectl kustomize`", pytrace=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL.format(python=sys.executable, keys=SECRET_KEYS)),
                       ("docker", FAKE_DOCKER.format(python=sys.executable)),
                       ("curl", FAKE_CURL.format(python=sys.executable))):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "runner").mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_KUBECTL": REAL_KUBECTL,
        "KUBECTL_LOG": str(tmp_path / "kubectl.log"), "DOCKER_LOG": str(tmp_path / "docker.log"),
        "CURL_LOG": str(tmp_path / "curl.log"), "RUNNER_TEMP": str(tmp_path / "runner"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_ACTOR": "deployer",
        "GITHUB_TOKEN": "ghs_not-a-real-token", "SMOKE_ATTEMPTS": "2", "SMOKE_INTERVAL": "0",
    }


def deploy(repo: Path, env: dict[str, str], *tenants: str, broken: tuple[str, str] | None = None):
    if broken:
        env = {**env, "FAKE_BROKEN_TENANT": broken[0], "FAKE_BROKEN_STEP": broken[1]}
    return subprocess.run(
        [str(DEPLOY), *tenants], cwd=repo, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def lines(path: str) -> list:
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def applied(env: dict[str, str]) -> list[str]:
    """The tenants whose pinned overlay was applied, in order."""
    return [Path(args[2]).name for args in lines(env["KUBECTL_LOG"]) if args[:2] == ["apply", "-k"]]


def rolled_out(env: dict[str, str]) -> list[tuple[str, str]]:
    """(tenant, workload) of each rollout waited for, in order."""
    calls = lines(env["KUBECTL_LOG"])
    return [(args[1].removeprefix("finance-"), args[4]) for args in calls if args[2:4] == ["rollout", "status"]]


def smoke_tested(env: dict[str, str]) -> list[str]:
    path = Path(env["CURL_LOG"])
    return path.read_text().splitlines() if path.exists() else []


# --- choosing the tenants ----------------------------------------------------------------------


def test_all_is_every_tenant_but_the_local_only_ones(repo):
    (repo / "tenants" / ".onboard-zeta").mkdir()  # a script's work in progress
    shutil.copy(repo / "tenants" / "alpha" / "kustomization.yaml", repo / "tenants" / ".onboard-zeta")
    result = choose(repo, "all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["alpha", "bravo", "charlie"]
    assert "skipping demo: local.env says LOCAL_ONLY=true" in result.stderr


def test_the_repositorys_demo_tenants_are_never_chosen():
    """tenants/ of this repository: its demo tenants are local-only, the rest deployable."""
    result = choose(ROOT, "all")
    deployable = [tenant.name for tenant in tenancy.discover_tenants() if not tenant.local_only]
    assert {"tenant1", "tenant2"} <= {tenant.name for tenant in tenancy.discover_tenants() if tenant.local_only}
    if deployable:
        assert result.returncode == 0 and result.stdout.split() == deployable
    else:
        assert result.returncode == 2 and "no tenant to deploy" in result.stderr and result.stdout == ""


def test_one_named_tenant_is_chosen_alone(repo):
    result = choose(repo, "bravo")
    assert result.returncode == 0 and result.stdout == "bravo\n"


@pytest.mark.parametrize(("name", "says"), [
    ("demo", "demo is a local-only tenant (LOCAL_ONLY=true in tenants/demo/local.env)"),
    ("zeta", "no tenant zeta: there is no tenants/zeta/ with a kustomization.yaml and a tenant.env"),
    ("../tenants/alpha", "no tenant ../tenants/alpha"),
    ("", "no tenant : there is no"),
])
def test_a_local_only_or_unknown_tenant_is_refused(repo, name, says):
    result = choose(repo, name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("::error::choose-tenants: ")
    assert says in result.stderr


def test_nothing_to_deploy_is_refused(repo):
    for name in ("alpha", "bravo", "charlie"):
        shutil.rmtree(repo / "tenants" / name)
    result = choose(repo, "all")
    assert result.returncode == 2 and "no tenant to deploy" in result.stderr and result.stdout == ""


def test_a_tenant_is_what_the_python_scripts_call_one(repo, monkeypatch):
    """A folder without tenant.env is no tenant for scripts/tenancy.py (and scripts/fleet), nor one
    whose name is no DNS label for any script: the workflow neither deploys it with `all` nor takes
    it by name."""
    (repo / "tenants" / "bravo" / "tenant.env").unlink()
    shutil.copytree(repo / "tenants" / "charlie", repo / "tenants" / "Delta x")
    monkeypatch.setattr(tenancy, "TENANTS_DIR", repo / "tenants")
    assert "bravo" not in [tenant.name for tenant in tenancy.discover_tenants()]
    assert choose(repo, "all").stdout.split() == ["alpha", "charlie"]
    assert choose(repo, "bravo").returncode == 2
    assert choose(repo, "Delta x").returncode == 2


@pytest.mark.parametrize("local_env", [
    "LOCAL_ONLY=true\n", "LOCAL_PORT=8001\nLOCAL_ONLY=true", " LOCAL_ONLY = true \n", "LOCAL_ONLY=false\n",
    "LOCAL_ONLY=True\n", "# LOCAL_ONLY=true\n", "LOCAL_ONLY=truely\n", "NOT_LOCAL_ONLY=true\n", "",
])
def test_local_only_is_read_as_the_python_scripts_read_it(repo, local_env, monkeypatch):
    """The workflow's reading of local.env agrees with scripts/tenancy.py's (make run's, scripts/fleet's)."""
    (repo / "tenants" / "bravo" / "local.env").write_text(local_env)
    monkeypatch.setattr(tenancy, "TENANTS_DIR", repo / "tenants")
    python_says = {tenant.name: tenant.local_only for tenant in tenancy.discover_tenants()}["bravo"]
    assert ("bravo" not in choose(repo, "all").stdout.split()) == python_says
    assert (choose(repo, "bravo").returncode == 2) == python_says


# --- deploying them ----------------------------------------------------------------------------


def test_every_tenant_is_pinned_applied_rolled_out_and_smoke_tested(repo, stand_ins):
    result = deploy(repo, stand_ins, "alpha", "bravo", "charlie")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "::error::" not in result.stdout + result.stderr
    assert applied(stand_ins) == ["alpha", "bravo", "charlie"]
    assert rolled_out(stand_ins) == [
        (tenant, workload) for tenant in ("alpha", "bravo", "charlie")
        for workload in ("statefulset/postgres", "deployment/finance-api", "deployment/finance-webhooks")
    ]
    assert smoke_tested(stand_ins) == [
        f"https://{tenant}.finance.example.test/health/ready" for tenant in ("alpha", "bravo", "charlie")
    ]
    summary = Path(stand_ins["GITHUB_STEP_SUMMARY"]).read_text()
    for tenant in ("alpha", "bravo", "charlie"):
        assert f"✅ `{tenant}`: https://{tenant}.finance.example.test ready, version 0.1.0" in summary
    assert "all 3 tenants deployed" in result.stdout


def test_each_image_is_resolved_once_and_every_tenant_runs_it_by_digest(repo, stand_ins):
    assert deploy(repo, stand_ins, "alpha", "bravo", "charlie").returncode == 0
    docker = lines(stand_ins["DOCKER_LOG"])
    inspected = [call["args"][3] for call in docker if call["args"][:3] == ["buildx", "imagetools", "inspect"]]
    assert sorted(inspected) == sorted([f"{APP_IMAGE}:0.1.0", f"{POSTGRES_IMAGE}:0.1.0"])
    # One login to GHCR, the token on stdin, never on a command line.
    logins = [call for call in docker if call["args"][0] == "login"]
    assert len(logins) == 1 and logins[0]["stdin"].strip() == stand_ins["GITHUB_TOKEN"]
    assert not any(stand_ins["GITHUB_TOKEN"] in arg for call in docker for arg in call["args"])
    digests = {image: "sha256:" + hashlib.sha256(image.encode()).hexdigest() for image in inspected}
    for tenant in ("alpha", "bravo", "charlie"):
        overlay = Path(stand_ins["RUNNER_TEMP"]) / "pinned" / tenant
        rendered = subprocess.run([REAL_KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, check=True)
        images = {
            container["image"]
            for obj in yaml.safe_load_all(rendered.stdout) if obj
            for pod in [tenancy_pod(obj)] if pod
            for container in [*pod.get("initContainers", []), *pod["containers"]]
            if "/finance-" in container["image"]
        }
        assert images == {f"{image.rsplit(':', 1)[0]}:0.1.0@{digest}" for image, digest in digests.items()}
        namespaces = {obj["metadata"].get("namespace") for obj in yaml.safe_load_all(rendered.stdout) if obj}
        assert namespaces <= {f"finance-{tenant}", None}


def tenancy_pod(obj: dict) -> dict | None:
    """The pod spec of a workload (Deployment, StatefulSet, CronJob), None for other kinds."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec.get("template", {}).get("spec") if obj["kind"] in ("Deployment", "StatefulSet") else None


@pytest.mark.parametrize(("step", "says"), [
    ("no-namespace", "there is no namespace finance-bravo"),
    ("no-secret", "finance-bravo has no finance-secrets Secret"),
    ("missing-key", "finance-bravo's finance-secrets lacks BACKUP_PASSWORD"),
    ("no-tls", "finance-bravo has no pgbackrest-tls Secret"),
    ("apply", "kubectl apply -k failed"),
    ("rollout", "statefulset/postgres did not roll out within 300s"),
    ("smoke", "https://bravo.finance.example.test/health/ready did not answer ready as bravo after 2 attempts"),
    ("impostor", "https://bravo.finance.example.test/health/ready did not answer ready as bravo after 2 attempts"),
])
def test_a_tenant_that_cannot_be_deployed_is_reported_and_the_others_still_go(repo, stand_ins, step, says):
    result = deploy(repo, stand_ins, "alpha", "bravo", "charlie", broken=("bravo", step))
    assert result.returncode == 1
    assert f"::error::bravo: {says}" in result.stdout
    assert "::error::1 of 3 tenants not deployed: bravo" in result.stdout
    summary = Path(stand_ins["GITHUB_STEP_SUMMARY"]).read_text()
    assert f"❌ `bravo`: {says}" in summary and "1 of 3 tenants not deployed: bravo" in summary
    for tenant in ("alpha", "charlie"):
        assert f"✅ `{tenant}`" in summary
    # The others went all the way, in order; bravo stopped at the step that failed.
    got_to = {"no-namespace": 0, "no-secret": 0, "missing-key": 0, "no-tls": 0, "apply": 1, "rollout": 2}.get(step, 3)
    assert applied(stand_ins) == (["alpha", "bravo", "charlie"] if got_to >= 1 else ["alpha", "charlie"])
    assert [t for t, _ in rolled_out(stand_ins)].count("charlie") == 3
    assert ("bravo" in [t for t, _ in rolled_out(stand_ins)]) == (got_to >= 2)
    smoked = [url.split("//")[1].split(".")[0] for url in smoke_tested(stand_ins)]
    assert list(dict.fromkeys(smoked)) == (["alpha", "bravo", "charlie"] if got_to >= 3 else ["alpha", "charlie"])


def test_every_failure_is_named_at_the_end(repo, stand_ins):
    """A rollout that fails, and a tenant whose image tag the registry does not know: both named."""
    write_tenant(repo, "delta", "")
    (repo / "tenants" / "alpha" / "kustomization.yaml").write_text(
        (repo / "tenants" / "alpha" / "kustomization.yaml").read_text()
        + f"images:\n  - name: {APP_IMAGE}\n    newTag: 9.9.9\n"
    )
    env = {**stand_ins, "FAKE_UNKNOWN_IMAGES": f"{APP_IMAGE}:9.9.9"}
    result = deploy(repo, env, "alpha", "bravo", "charlie", "delta", broken=("delta", "rollout"))
    assert result.returncode == 1
    assert f"::error::alpha: cannot resolve {APP_IMAGE}:9.9.9 to a digest" in result.stdout
    assert "::error::2 of 4 tenants not deployed: alpha delta" in result.stdout
    assert applied(stand_ins) == ["bravo", "charlie", "delta"]
    assert [url.split("//")[1].split(".")[0] for url in smoke_tested(stand_ins)] == ["bravo", "charlie"]


def test_no_tenant_is_a_usage_error(repo, stand_ins):
    result = deploy(repo, stand_ins)
    assert result.returncode == 2 and "usage: deploy-tenants.sh TENANT..." in result.stderr
    assert lines(stand_ins["KUBECTL_LOG"]) == []


@pytest.mark.parametrize("script", [CHOOSE, DEPLOY], ids=lambda path: path.name)
def test_the_scripts_pass_shellcheck(script):
    assert shutil.which("shellcheck"), "shellcheck is missing: run scripts/install (as root) or apt-get install it"
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflows_steps_hand_the_chosen_tenants_to_the_deploy(repo, stand_ins, tmp_path):
    """deploy.yml's own `run:` blocks, run as the runner runs them (bash -e, GITHUB_ENV between steps)."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    steps = {step.get("name"): step for step in workflow["jobs"]["deploy"]["steps"]}
    choose_step = steps["Choose tenants"]
    deploy_step = next(step for name, step in steps.items() if name and "deploy-tenants.sh" in step.get("run", ""))
    shutil.copytree(SCRIPTS, repo / ".github" / "deploy")
    github_env = tmp_path / "github_env"
    env = {**os.environ, **stand_ins, "GITHUB_ENV": str(github_env), "TENANT": "all"}
    chosen = subprocess.run(["bash", "-e", "-c", choose_step["run"]], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=30)
    assert chosen.returncode == 0, chosen.stderr
    exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert exported["TENANTS"].split() == ["alpha", "bravo", "charlie"]
    env = {**env, **exported, "FAKE_BROKEN_TENANT": "alpha", "FAKE_BROKEN_STEP": "no-secret"}
    deployed = subprocess.run(["bash", "-e", "-c", deploy_step["run"]], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 1
    assert applied(stand_ins) == ["bravo", "charlie"]
    assert "::error::1 of 3 tenants not deployed: alpha" in deployed.stdout
    # A local-only tenant named explicitly fails the Choose step, before any cluster call.
    refused = subprocess.run(["bash", "-e", "-c", choose_step["run"]], cwd=repo, env={**env, "TENANT": "demo"},
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "demo is a local-only tenant" in refused.stderr
