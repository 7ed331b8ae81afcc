"""scripts/onboard-tenant and scripts/offboard-tenant, run as commands in a temporary copy of the repository.

There is no cluster here: the overlays are rendered with the real `kubectl kustomize` and checked
against the Kubernetes schemas; only the calls that would reach a cluster go to a stand-in kubectl
(`KUBECTL`) that records them, so the tests can assert exactly what would have been run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import tenancy
import yaml

from tests.utils.terminal import answering

ROOT = Path(__file__).resolve().parents[2]
REAL_KUBECTL = shutil.which("kubectl")
HOST = "acme.finance.example.com"
RANDOM_KEYS = ("JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD")
# The repository's cipher pass and the object store's credentials, given to onboarding in its
# environment (never generated): the Secret's key, the variable, the value the tests give.
CIPHER_PASS_KEY = "PGBACKREST_REPO1_CIPHER_PASS"
CIPHER_PASS_VARIABLE = "FINANCE_BACKUP_CIPHER_PASS"
CIPHER_PASS = "0nboarding+Tests/Cipher+Pass/From+The/Secret+Manager/0123456789="
S3_CREDENTIALS = {
    "PGBACKREST_REPO1_S3_KEY": ("FINANCE_BACKUP_S3_KEY", "AKIAEXAMPLEONBOARDING"),
    "PGBACKREST_REPO1_S3_KEY_SECRET": ("FINANCE_BACKUP_S3_KEY_SECRET", "example/secret+for/the/onboarding/tests0"),
}
GIVEN = {CIPHER_PASS_KEY: (CIPHER_PASS_VARIABLE, CIPHER_PASS), **S3_CREDENTIALS}
SECRET_KEYS = (*RANDOM_KEYS, *GIVEN)
TLS_FILES = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
# How onboarding asks for an existing Secret's name and keys (never its values).
SECRET_KEYS_OUTPUT = "--output=go-template={{.metadata.name}}{{range $key, $value := .data}} {{$key}}{{end}}"

# Records each call as a JSON line, renders with the real kubectl, and plays the cluster's part
# for `get secret` (FAKE_SECRET_KEYS: the keys of an existing finance-secrets, FAKE_TLS_KEYS: those
# of an existing pgbackrest-tls), `config current-context` (kind-finance), `get namespace` (it
# exists unless FAKE_NO_NAMESPACE) and failures (FAKE_FAIL: a subcommand that exits 1).
FAKE_KUBECTL = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "-" in args or "--patch-file=/dev/stdin" in args else None
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[0] == "kustomize":
    os.execv(os.environ["REAL_KUBECTL"], ["kubectl", *args])
args = [arg for arg in args if not arg.startswith("--context=")]
if args[0] == os.environ.get("FAKE_FAIL"):
    sys.exit("error: the server could not be reached")
if args[:3] == ["get", "secret", "finance-secrets"] and "FAKE_SECRET_KEYS" in os.environ:
    print("finance-secrets", os.environ["FAKE_SECRET_KEYS"])
if args[:3] == ["get", "secret", "pgbackrest-tls"] and "FAKE_TLS_KEYS" in os.environ:
    print("pgbackrest-tls", os.environ["FAKE_TLS_KEYS"])
if args == ["config", "current-context"]:
    print("kind-finance")
if args[:2] == ["get", "namespace"] and "FAKE_NO_NAMESPACE" not in os.environ:
    print("namespace/" + args[2])
"""


@pytest.fixture(autouse=True, scope="module")
def kubectl_installed() -> None:
    if REAL_KUBECTL is None:
        pytest.fail("kubectl is not installed: the scripts render overlays with `kubectl kustomize` "
                    "(install kubectl 1.32 or newer)", pytrace=False)


def copy_repo(destination: Path) -> Path:
    """The parts of the repository the scripts use; the virtual environment is shared by a link."""
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("scripts", "kubernetes", "tenants"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    (destination / "service").mkdir()
    shutil.copy2(ROOT / "service" / "currencies.py", destination / "service")
    (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="module")
def untouched_repo(tmp_path_factory) -> Path:
    """One copy for the tests whose commands must change nothing."""
    return copy_repo(tmp_path_factory.mktemp("untouched") / "repo")


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch) -> Path:
    """Point KUBECTL at the recording stand-in; return the log it writes."""
    executable = tmp_path / "kubectl"
    executable.write_text(FAKE_KUBECTL.format(python=sys.executable))
    executable.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("KUBECTL", str(executable))
    monkeypatch.setenv("KUBECTL_LOG", str(log))
    monkeypatch.setenv("REAL_KUBECTL", REAL_KUBECTL)
    return log


@pytest.fixture
def given_secrets(monkeypatch) -> dict[str, str]:
    """The cipher pass and the object store's credentials in onboarding's environment; the Secret's
    keys and values."""
    for variable, value in GIVEN.values():
        monkeypatch.setenv(variable, value)
    return {key: value for key, (_, value) in GIVEN.items()}


@pytest.fixture
def no_given_secrets(monkeypatch) -> None:
    """None of the given values in onboarding's environment (whatever the caller's has)."""
    for variable, _ in GIVEN.values():
        monkeypatch.delenv(variable, raising=False)


def recorded(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(repo: Path, script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a script of the copy as a user does."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [str(repo / "scripts" / script), *args],
        capture_output=True, text=True, timeout=120, **kwargs,
    )


def onboard(repo: Path, name: str = "acme", *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run(repo, "onboard-tenant", name, *(args or ("--host", HOST)), **kwargs)


def snapshot(repo: Path) -> dict[str, bytes | None]:
    """Every path under tenants/ (hidden ones included) with the bytes of the files."""
    return {
        str(path.relative_to(repo)): path.read_bytes() if path.is_file() else None
        for path in sorted((repo / "tenants").rglob("*"))
    }


def render(directory: Path) -> list[dict]:
    output = subprocess.run([REAL_KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(output.stdout) if doc]


def one_of(objects: list[dict], kind: str, name: str) -> dict:
    """The object of that kind and name (a generated ConfigMap's name ends in a content hash)."""
    pattern = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
    matches = [o for o in objects if o["kind"] == kind and pattern.fullmatch(o["metadata"]["name"])]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


# --- onboarding ------------------------------------------------------------------------------


def test_onboarded_overlay_renders_and_validates(repo):
    result = onboard(repo, "acme", "--host", HOST, "--currency", "EUR", "--timezone", "Europe/Paris",
                     "--replicas", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"https://{HOST}"
    assert "tenants/acme/" in result.stdout and "kustomization.yaml" in result.stdout
    directory = repo / "tenants" / "acme"
    assert sorted(p.name for p in directory.iterdir()) == [
        "backup.env", "kustomization.yaml", "local.env", "postman_environment.json",
        "postman_environment.local.json", "tenant.env",
    ]

    objects = render(directory)
    for obj in objects:
        kubernetes_validate.validate(obj, tenancy.KUBERNETES_VERSION, strict=True)
        assert obj["metadata"]["labels"][tenancy.TENANT_LABEL] == "acme"
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == "finance-acme"
        else:
            assert obj["metadata"]["namespace"] == "finance-acme"
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    assert ingresses, "the base has no Ingress"
    for ingress in ingresses:
        assert [rule["host"] for rule in ingress["spec"]["rules"]] == [HOST]
        assert [host for tls in ingress["spec"]["tls"] for host in tls["hosts"]] == [HOST]
    settings = one_of(objects, "ConfigMap", "finance-settings")["data"]
    assert (settings["TENANT_ID"], settings["TENANT_CURRENCY"], settings["TENANT_TIMEZONE"]) == (
        "acme", "EUR", "Europe/Paris",
    )
    assert one_of(objects, "Deployment", "finance-api")["spec"]["replicas"] == 3
    assert not [o for o in objects if o["kind"] == "Secret"], "no Secret may be rendered from the repository"


def test_overlay_has_the_agreed_shape(repo):
    assert onboard(repo).returncode == 0
    kustomization = yaml.safe_load((repo / "tenants" / "acme" / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "finance-acme"
    assert kustomization["resources"] == ["../../kubernetes/base"]
    assert kustomization["labels"] == [{"pairs": {tenancy.TENANT_LABEL: "acme"}}]
    assert kustomization["configMapGenerator"] == [
        {"name": "finance-settings", "behavior": "merge", "envs": ["tenant.env"], "literals": ["TENANT_ID=acme"]},
        {"name": "pgbackrest-settings", "behavior": "merge", "envs": ["backup.env"]},
    ]
    assert kustomization["replicas"] == [{"name": "finance-api", "count": 2}]
    assert [patch["target"] for patch in kustomization["patches"]] == [{"kind": "Ingress"}]
    assert (repo / "tenants" / "acme" / "tenant.env").read_text() == "TENANT_CURRENCY=USD\nTENANT_TIMEZONE=UTC\n"
    # The repository's defaults: AWS S3 in us-east-1, a bucket shared by the tenants, a path each, 14 days.
    assert (repo / "tenants" / "acme" / "backup.env").read_text() == (
        "PGBACKREST_REPO1_S3_ENDPOINT=s3.us-east-1.amazonaws.com\n"
        "PGBACKREST_REPO1_S3_BUCKET=finance-backups\n"
        "PGBACKREST_REPO1_S3_REGION=us-east-1\n"
        "PGBACKREST_REPO1_S3_URI_STYLE=host\n"
        "PGBACKREST_REPO1_PATH=/finance/acme\n"
        "PGBACKREST_REPO1_RETENTION_FULL=14\n"
    )


def files_of(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_demo_overlays_are_exactly_what_onboarding_writes(repo):
    """tenant1 and tenant2 are ordinary tenants, but local only: onboarding them again with their
    settings reproduces every file of theirs, and writes no Postman environment for a public host."""
    for name in ("tenant1", "tenant2"):
        committed = files_of(ROOT / "tenants" / name)
        assert "LOCAL_ONLY=true" in committed["local.env"].splitlines()
        assert "postman_environment.json" not in committed
        settings = tenancy.read_env_file(ROOT / "tenants" / name / "tenant.env")
        result = onboard(
            repo, name, "--host", f"{name}.finance.example.com", "--currency", settings["TENANT_CURRENCY"],
            "--timezone", settings["TENANT_TIMEZONE"], "--replicas", "2", "--force",
        )
        assert result.returncode == 0, result.stderr
        assert files_of(repo / "tenants" / name) == committed
        assert "nothing changed" in result.stdout.splitlines()
        assert "deploy:" not in result.stdout, "a local-only tenant is never deployed"


def test_force_keeps_every_setting_it_is_not_given(repo):
    first = onboard(
        repo, "acme", "--host", HOST, "--currency", "GBP", "--timezone", "Europe/London", "--replicas", "3",
        "--backup-endpoint", "minio.backups.example.net:9000", "--backup-bucket", "acme-pitr",
        "--backup-region", "eu-west-2", "--backup-uri-style", "path", "--backup-retention-days", "35",
    )
    assert first.returncode == 0, first.stderr
    assert not [line for line in first.stdout.splitlines() if line.startswith("changed ")], "a new tenant"
    directory = repo / "tenants" / "acme"
    before = files_of(directory)

    result = onboard(repo, "acme", "--force", "--replicas", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"https://{HOST}"
    assert [line for line in result.stdout.splitlines() if line.startswith(("changed ", "note: "))] == [
        "changed replicas: 3 -> 4",
    ]
    after = files_of(directory)
    assert {name: text for name, text in after.items() if name != "kustomization.yaml"} == {
        name: text for name, text in before.items() if name != "kustomization.yaml"
    }, "tenant.env, backup.env, local.env (its port) and the Postman environments are kept"
    assert after["kustomization.yaml"] == before["kustomization.yaml"].replace("count: 3", "count: 4")
    objects = render(directory)
    settings = one_of(objects, "ConfigMap", "finance-settings")["data"]
    assert (settings["TENANT_CURRENCY"], settings["TENANT_TIMEZONE"]) == ("GBP", "Europe/London")
    assert one_of(objects, "Deployment", "finance-api")["spec"]["replicas"] == 4
    assert one_of(objects, "Ingress", "finance-api")["spec"]["rules"][0]["host"] == HOST
    assert one_of(objects, "ConfigMap", "pgbackrest-settings")["data"]["PGBACKREST_REPO1_STORAGE_PORT"] == "9000"

    again = onboard(repo, "acme", "--force")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout.splitlines()
    assert not [line for line in again.stdout.splitlines() if line.startswith(("changed ", "note: "))]
    assert files_of(directory) == after


def test_force_says_which_files_it_added_or_removed(repo):
    """A tenant onboarded before the local Postman environment gets it; a tenant made local only
    loses the environment of a public host no server answers at."""
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    (directory / "postman_environment.local.json").unlink()
    result = onboard(repo, "acme", "--force")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith(("added ", "removed ", "nothing"))] == [
        "added postman_environment.local.json",
    ]
    with (directory / "local.env").open("a") as local_env:
        local_env.write("LOCAL_ONLY=true\n")
    result = onboard(repo, "acme", "--force")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith(("added ", "removed ", "nothing"))] == [
        "removed postman_environment.json",
    ]
    assert sorted(postman_environments(directory)) == ["postman_environment.local.json"]


def test_force_says_what_a_new_time_zone_or_currency_does(repo):
    assert onboard(repo, "acme", "--host", HOST, "--currency", "GBP", "--timezone", "Europe/London").returncode == 0
    result = onboard(repo, "acme", "--force", "--timezone", "Europe/Paris", "--currency", "eur")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("changed ")] == [
        "changed TENANT_CURRENCY: GBP -> EUR",
        "changed TENANT_TIMEZONE: Europe/London -> Europe/Paris",
    ]
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 2, lines
    assert "not converted" in notes[0]
    # service/migrate.py rebuilds the totals when the tenant's zone differs from the one they are keyed by.
    assert "rebuilds every daily and monthly total in Europe/Paris" in notes[1]
    assert (repo / "tenants" / "acme" / "tenant.env").read_text() == (
        "TENANT_CURRENCY=EUR\nTENANT_TIMEZONE=Europe/Paris\n"
    )


def test_force_keeps_what_was_added_by_hand(repo):
    """The components the README has operators add to an overlay, and settings added to its env files."""
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    kustomization = directory / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace(
        "labels:", "components:\n  - ../../kubernetes/components/external-secrets\nlabels:",
    ))
    with (directory / "backup.env").open("a") as backup_env:
        backup_env.write("PGBACKREST_REPO1_STORAGE_VERIFY_TLS=n\n")
    before = files_of(directory)

    result = onboard(repo, "acme", "--force", "--backup-retention-days", "30")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("changed ")] == [
        "changed PGBACKREST_REPO1_RETENTION_FULL: 14 -> 30",
    ]
    assert "custom resources without a schema: ExternalSecret/finance-secrets" in result.stdout
    assert files_of(directory)["kustomization.yaml"] == before["kustomization.yaml"]
    assert files_of(directory)["backup.env"] == before["backup.env"].replace("FULL=14", "FULL=30")
    objects = render(directory)
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ExternalSecret"] == ["finance-secrets"]
    assert one_of(objects, "ConfigMap", "pgbackrest-settings")["data"]["PGBACKREST_REPO1_STORAGE_VERIFY_TLS"] == "n"


def test_force_keeps_the_image_tag_a_fleet_upgrade_wrote(repo):
    """scripts/fleet upgrade writes the app image's tag into the overlay: onboarding again must not
    quietly take the tenant back to the base's tag at the next apply."""
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    upgrade = "import pathlib, sys, fleet; fleet.set_overlay_tag(pathlib.Path(sys.argv[1]), sys.argv[2], '0.2.0')"
    result = subprocess.run(
        [sys.executable, "-c", upgrade, str(directory), "ghcr.io/finance-platform/finance-service"],
        cwd=repo / "scripts", capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    upgraded = files_of(directory)["kustomization.yaml"]
    assert re.search(r'^    newTag: "?0\.2\.0"?$', upgraded, re.MULTILINE)

    result = onboard(repo, "acme", "--force", "--replicas", "3")
    assert result.returncode == 0, result.stderr
    # Onboarding writes the tag quoted, as the fleet does (an unquoted one it quotes, and says so).
    quoted = upgraded.replace("count: 2", "count: 3").replace("newTag: 0.2.0", 'newTag: "0.2.0"')
    assert files_of(directory)["kustomization.yaml"] == quoted
    rewrote = "rewrote kustomization.yaml, as this onboarding script writes it"
    assert (rewrote in result.stdout.splitlines()) == ("newTag: 0.2.0" in upgraded)
    api = one_of(render(directory), "Deployment", "finance-api")
    assert {c["image"] for c in api["spec"]["template"]["spec"]["containers"]} >= {
        "ghcr.io/finance-platform/finance-service:0.2.0"
    }


IMAGES = "ghcr.io/finance-platform/finance-service"


@pytest.mark.parametrize("written", ['"1.10"', "1.10"], ids=["quoted, as the fleet writes it", "unquoted"])
def test_force_keeps_a_number_like_image_tag_as_written(repo, written):
    """kustomize reads an unquoted 1.10 as a number and fails; onboarding writes every newTag
    quoted, so a tag that looks like a number keeps its digits and renders."""
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    with (directory / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(f"images:\n  - name: {IMAGES}\n    newTag: {written}\n")

    result = onboard(repo, "acme", "--force", "--replicas", "3")
    assert result.returncode == 0, result.stderr
    text = files_of(directory)["kustomization.yaml"]
    assert f'  - name: {IMAGES}\n    newTag: "1.10"\n' in text
    api = one_of(render(directory), "Deployment", "finance-api")
    assert f"{IMAGES}:1.10" in {c["image"] for c in api["spec"]["template"]["spec"]["containers"]}
    again = onboard(repo, "acme", "--force")
    assert again.returncode == 0 and "nothing changed" in again.stdout.splitlines(), again.stdout
    assert files_of(directory)["kustomization.yaml"] == text


# The patch docs/operations.md ("Image pull secrets") has operators add to a tenant's overlay.
PULL_SECRET_PATCHES = """\
  - target:
      kind: (Deployment|StatefulSet)
    patch: |-
      - op: add
        path: /spec/template/spec/imagePullSecrets
        value: [{name: registry-pull}]
  - target:
      kind: CronJob
    patch: |-
      - op: add
        path: /spec/jobTemplate/spec/template/spec/imagePullSecrets
        value: [{name: registry-pull}]
"""


def pull_secrets(objects: list[dict]) -> dict[str, list]:
    """Each Deployment's, StatefulSet's and CronJob's pod imagePullSecrets."""
    def pod(obj: dict) -> dict:
        template = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
        return template["template"]["spec"]

    return {
        f"{o['kind']}/{o['metadata']['name']}": pod(o).get("imagePullSecrets")
        for o in objects if o["kind"] in ("Deployment", "StatefulSet", "CronJob")
    }


def test_the_docs_image_pull_secrets_patch_is_in_the_operations_guide():
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "```yaml\npatches:\n" + PULL_SECRET_PATCHES + "```" in guide


@pytest.mark.parametrize("extra", [(), ("--backup-endpoint", "minio.backups.example.net:9000")],
                         ids=["HTTPS object store", "object store on its own port"])
def test_force_keeps_patches_added_by_hand(repo, extra):
    """deploy-tenants.sh tells operators to run onboard-tenant NAME --apply --force: a pull-secret
    patch dropped there would apply at once, and every pod would fail to pull its image."""
    assert onboard(repo, "acme", "--host", HOST, *extra).returncode == 0
    directory = repo / "tenants" / "acme"
    kustomization = directory / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + PULL_SECRET_PATCHES)
    by_hand = render(directory)
    assert set(map(str, pull_secrets(by_hand).values())) == {"[{'name': 'registry-pull'}]"}, "the patch applies"

    result = onboard(repo, "acme", "--force", "--replicas", "3")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith(("changed ", "rewrote ", "nothing"))] == [
        "changed replicas: 2 -> 3",
    ], "the patch is written back as it was, so no rewrite to report"
    objects = render(directory)
    assert pull_secrets(objects) == pull_secrets(by_hand)
    assert one_of(objects, "Deployment", "finance-api")["spec"]["replicas"] == 3
    assert one_of(objects, "Ingress", "finance-api")["spec"]["rules"][0]["host"] == HOST
    assert kustomization.read_text().count("imagePullSecrets") == 2
    assert kustomization.read_text().count("kind: Ingress") == 1, "onboarding's own patches are not doubled"
    assert kustomization.read_text().count("name: object-store") == (1 if extra else 0)


def test_force_says_it_rewrote_a_patch_added_in_another_form(repo):
    """A patch added in another style (flow style, a comment) is rewritten once in onboarding's,
    renders the same, is reported beside the setting that changed, and is then left as it is."""
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    kustomization = directory / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + (
        "  # the registry's pull secret\n"
        """  - {target: {kind: CronJob}, patch: '[{"op": "add", "path": "/spec/jobTemplate/spec/template/spec/"""
        """imagePullSecrets", "value": [{"name": "registry-pull"}]}]'}\n"""
    ))
    by_hand = pull_secrets(render(directory))
    cronjobs = [secrets for name, secrets in by_hand.items() if name.startswith("CronJob/")]
    assert cronjobs and all(secrets == [{"name": "registry-pull"}] for secrets in cronjobs), "the patch applies"

    result = onboard(repo, "acme", "--force", "--replicas", "3")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith(("changed ", "rewrote ", "nothing"))] == [
        "changed replicas: 2 -> 3", "rewrote kustomization.yaml, as this onboarding script writes it",
    ]
    assert pull_secrets(render(directory)) == by_hand
    rewritten = kustomization.read_text()
    again = onboard(repo, "acme", "--force")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout.splitlines()
    assert kustomization.read_text() == rewritten


def test_backup_settings_reach_the_render_and_force_keeps_them(repo):
    result = onboard(
        repo, "acme", "--host", HOST, "--backup-endpoint", "minio.backups.example.net:9000", "--backup-bucket",
        "acme-pitr", "--backup-region", "eu-central-1", "--backup-uri-style", "path", "--backup-retention-days", "35",
    )
    assert result.returncode == 0, result.stderr

    def rendered_settings():
        objects = render(repo / "tenants" / "acme")
        settings = one_of(objects, "ConfigMap", "pgbackrest-settings")["data"]
        ports = {port["port"] for rule in one_of(objects, "NetworkPolicy", "object-store")["spec"]["egress"]
                 for port in rule["ports"]}
        return settings, ports

    settings, ports = rendered_settings()
    assert settings | {
        "PGBACKREST_REPO1_S3_ENDPOINT": "minio.backups.example.net",
        "PGBACKREST_REPO1_STORAGE_PORT": "9000",
        "PGBACKREST_REPO1_S3_BUCKET": "acme-pitr",
        "PGBACKREST_REPO1_S3_REGION": "eu-central-1",
        "PGBACKREST_REPO1_S3_URI_STYLE": "path",
        "PGBACKREST_REPO1_PATH": "/finance/acme",
        "PGBACKREST_REPO1_RETENTION_FULL": "35",
    } == settings
    assert settings["PGBACKREST_REPO1_RETENTION_FULL_TYPE"] == "time"
    assert ports == {9000}, "the object store's own port, and only it"

    # --force with other options keeps the repository's settings; a new retention changes only that.
    result = onboard(repo, "acme", "--host", HOST, "--replicas", "3", "--backup-retention-days", "21", "--force")
    assert result.returncode == 0, result.stderr
    kept, ports = rendered_settings()
    assert kept == settings | {"PGBACKREST_REPO1_RETENTION_FULL": "21"} and ports == {9000}


def test_default_object_store_follows_the_region_on_https(repo):
    assert onboard(repo, "acme", "--host", HOST, "--backup-region", "ap-southeast-2").returncode == 0
    objects = render(repo / "tenants" / "acme")
    settings = one_of(objects, "ConfigMap", "pgbackrest-settings")["data"]
    assert settings["PGBACKREST_REPO1_S3_ENDPOINT"] == "s3.ap-southeast-2.amazonaws.com"
    assert "PGBACKREST_REPO1_STORAGE_PORT" not in settings
    policy = one_of(objects, "NetworkPolicy", "object-store")
    assert [port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]] == [443]


def test_local_run_picks_up_the_new_tenant(repo, monkeypatch):
    assert onboard(repo, "acme", "--host", HOST, "--currency", "jpy", "--timezone", "Asia/Tokyo").returncode == 0
    monkeypatch.setattr(tenancy, "TENANTS_DIR", repo / "tenants")
    tenants = {tenant.name: tenant for tenant in tenancy.discover_tenants()}
    assert set(tenants) == {"acme", "tenant1", "tenant2"}
    demo_ports = {tenants["tenant1"].local_port, tenants["tenant2"].local_port}
    assert tenants["acme"].local_port > max(demo_ports)  # the next one nothing on this machine listens on
    assert tenants["acme"].settings == {"TENANT_CURRENCY": "JPY", "TENANT_TIMEZONE": "Asia/Tokyo"}


def postman_environments(directory: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("postman_environment*.json"))}


def test_postman_environments_point_at_the_public_host_and_the_local_port(repo):
    assert onboard(repo).returncode == 0
    directory = repo / "tenants" / "acme"
    port = tenancy.read_env_file(directory / "local.env")["LOCAL_PORT"]
    environments = postman_environments(directory)
    assert sorted(environments) == ["postman_environment.json", "postman_environment.local.json"]
    public, local = environments["postman_environment.json"], environments["postman_environment.local.json"]
    assert (public["name"], local["name"]) == ("finance acme", "finance acme (local)")
    for environment, url in ((public, f"https://{HOST}"), (local, f"http://127.0.0.1:{port}")):
        assert environment["_postman_variable_scope"] == "environment"
        assert len(environment["id"]) == 36
        assert environment["values"] == [
            {"key": "baseUrl", "value": url, "type": "default", "enabled": True},
            {"key": "tenant", "value": "acme", "type": "default", "enabled": True},
            {"key": "token", "value": "", "type": "secret", "enabled": True},
        ]
    assert public["id"] != local["id"], "both can be imported side by side"

    # Onboarded afresh, the tenant's environments keep their ids: importing them again replaces them.
    shutil.rmtree(directory)
    assert onboard(repo).returncode == 0
    assert {name: env["id"] for name, env in postman_environments(directory).items()} == {
        "postman_environment.json": public["id"], "postman_environment.local.json": local["id"],
    }
    assert onboard(repo, "zeta", "--host", "zeta.finance.example.com").returncode == 0
    others = postman_environments(repo / "tenants" / "zeta")
    assert not {env["id"] for env in others.values()} & {public["id"], local["id"]}


@pytest.mark.parametrize("tenant", ["tenant1", "tenant2"])
def test_demo_tenants_have_only_their_local_postman_environment(tenant):
    """They are local only (never deployed): their host has no server, so no environment points at it."""
    directory = ROOT / "tenants" / tenant
    port = tenancy.read_env_file(directory / "local.env")["LOCAL_PORT"]
    environments = postman_environments(directory)
    assert list(environments) == ["postman_environment.local.json"]
    environment = environments["postman_environment.local.json"]
    assert environment["name"] == f"finance {tenant} (local)"
    assert environment["values"][:2] == [
        {"key": "baseUrl", "value": f"http://127.0.0.1:{port}", "type": "default", "enabled": True},
        {"key": "tenant", "value": tenant, "type": "default", "enabled": True},
    ]


LONG_NAME = "a" * (tenancy.MAX_NAME_LENGTH + 1)


def test_the_longest_name_leaves_room_for_the_namespace_prefix():
    longest = "a" * tenancy.MAX_NAME_LENGTH
    assert tenancy.check_name(longest) == longest
    assert len(tenancy.namespace(longest)) == 63
    with pytest.raises(tenancy.UsageError):
        tenancy.check_name(LONG_NAME)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme", "--host", HOST], "DNS label"),
        (["ac_me", "--host", HOST], "DNS label"),
        ([LONG_NAME, "--host", HOST], "DNS label"),
        (["--host", HOST, "--", "-acme"], "DNS label"),
        (["acme-", "--host", HOST], "DNS label"),
        (["default", "--host", HOST], "reserved"),
        (["kube-acme", "--host", HOST], "reserved"),
        (["base", "--host", HOST], "reserved"),
        (["finance", "--host", HOST], "reserved"),
        (["acme", "--host", f"https://{HOST}"], "--host"),
        (["acme", "--host", "acme"], "--host"),
        (["acme", "--host", "Acme.Finance.Example.com"], "--host"),
        (["acme", "--host", f"{HOST}:8443"], "--host"),
        (["acme", "--host", f"{HOST}/api"], "--host"),
        (["acme", "--host", "10.0.0.1"], "IP address"),
        (["acme", "--host", "tenant1.finance.example.com"], "already used by tenant 'tenant1'"),
        (["acme"], "--host is required for a new tenant"),
        (["acme", "--force"], "--host is required for a new tenant"),
        (["tenant1"], "already exists"),
        (["tenant1", "--force", "--apply"], "local only"),
        (["tenant1", "--force", "--timezone", "Mars/Base"], "IANA time zone"),
        (["acme", "--host", HOST, "--currency", "XYZ"], "ISO 4217"),
        (["acme", "--host", HOST, "--timezone", "Mars/Base"], "IANA time zone"),
        (["acme", "--host", HOST, "--replicas", "1"], "between 2 and 20"),
        (["acme", "--host", HOST, "--replicas", "21"], "between 2 and 20"),
        (["acme", "--host", HOST, "--replicas", "two"], "--replicas"),
        (["acme", "--host", HOST, "--backup-endpoint", "https://s3.example.com"], "--backup-endpoint"),
        (["acme", "--host", HOST, "--backup-endpoint", "s3.example.com/bucket"], "--backup-endpoint"),
        (["acme", "--host", HOST, "--backup-endpoint", "s3.example.com:0"], "port"),
        (["acme", "--host", HOST, "--backup-bucket", "Acme_Backups"], "--backup-bucket"),
        (["acme", "--host", HOST, "--backup-region", "EU West"], "--backup-region"),
        (["acme", "--host", HOST, "--backup-uri-style", "virtual"], "--backup-uri-style"),
        (["acme", "--host", HOST, "--backup-retention-days", "0"], "between 1 and 3650"),
        (["tenant1", "--host", HOST], "already exists"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(untouched_repo, args, message):
    before = snapshot(untouched_repo)
    result = run(untouched_repo, "onboard-tenant", *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert snapshot(untouched_repo) == before


def test_replicas_above_the_autoscalers_ceiling_are_refused(repo):
    hpa = one_of(render(repo / "tenants" / "tenant1"), "HorizontalPodAutoscaler", "finance-api")
    before = snapshot(repo)
    result = onboard(repo, "acme", "--host", HOST, "--replicas", str(hpa["spec"]["maxReplicas"] + 1))
    assert result.returncode == 2
    assert "maxReplicas" in result.stderr and len(result.stderr.splitlines()) == 1
    assert snapshot(repo) == before


def test_a_render_failure_leaves_nothing_behind(repo):
    (repo / "kubernetes" / "base" / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    before = snapshot(repo)
    result = onboard(repo)
    assert result.returncode == 1
    assert "kustomize" in result.stderr and "nothing was written" in result.stderr
    assert snapshot(repo) == before


def test_a_schema_violation_leaves_nothing_behind(repo):
    base = repo / "kubernetes" / "base"
    (base / "invalid.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: invalid\nspec:\n  replicas: 1\n"
    )
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    kustomization["resources"].append("invalid.yaml")
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    before = snapshot(repo)
    result = onboard(repo)
    assert result.returncode == 1
    assert "ConfigMap/invalid" in result.stderr and "not valid" in result.stderr
    assert snapshot(repo) == before


def test_force_replaces_an_existing_tenant_and_keeps_its_port(repo):
    assert onboard(repo).returncode == 0
    port = (repo / "tenants" / "acme" / "local.env").read_text()
    result = onboard(repo, "acme", "--host", "books.acme.example.org", "--replicas", "4", "--force")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "https://books.acme.example.org"
    assert [line for line in result.stdout.splitlines() if line.startswith("changed ")] == [
        f"changed host: {HOST} -> books.acme.example.org", "changed replicas: 2 -> 4",
    ]
    objects = render(repo / "tenants" / "acme")
    assert one_of(objects, "Ingress", "finance-api")["spec"]["rules"][0]["host"] == "books.acme.example.org"
    assert one_of(objects, "Deployment", "finance-api")["spec"]["replicas"] == 4
    assert (repo / "tenants" / "acme" / "local.env").read_text() == port
    assert sorted(p.name for p in (repo / "tenants").iterdir()) == ["acme", "tenant1", "tenant2"]


def test_apply_creates_the_secret_then_applies_and_waits(repo, fake_kubectl, given_secrets):
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 0, result.stderr
    calls = recorded(fake_kubectl)
    # First, before anything is written, whether the Secret exists, and so what it needs given.
    assert calls[0]["args"] == [
        "get", "secret", "finance-secrets", "--namespace", "finance-acme", "--ignore-not-found", SECRET_KEYS_OUTPUT,
    ]
    assert calls[1]["args"][0] == "kustomize"
    applied_namespace = json.loads(calls[2]["stdin"])
    assert [call["args"] for call in calls[2:]] == [
        ["apply", "--filename", "-"],
        ["get", "secret", "finance-secrets", "--namespace", "finance-acme", "--ignore-not-found", SECRET_KEYS_OUTPUT],
        ["create", "--filename", "-"],
        ["get", "secret", "pgbackrest-tls", "--namespace", "finance-acme", "--ignore-not-found", SECRET_KEYS_OUTPUT],
        ["create", "--filename", "-"],
        ["apply", "--kustomize", str(repo / "tenants" / "acme")],
        ["rollout", "status", "statefulset/postgres", "--namespace", "finance-acme", "--timeout=5m"],
        ["rollout", "status", "deployment/finance-api", "--namespace", "finance-acme", "--timeout=5m"],
        # The first pgBackRest backup, which creates the stanza archive-push waits for.
        ["create", "job", "postgres-backup-first", "--from=cronjob/postgres-backup-full",
         "--namespace", "finance-acme"],
    ]
    assert (applied_namespace["kind"], applied_namespace["metadata"]["name"]) == ("Namespace", "finance-acme")
    assert applied_namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    secret = json.loads(calls[4]["stdin"])
    assert secret["metadata"] == {
        "name": "finance-secrets", "namespace": "finance-acme", "labels": {tenancy.TENANT_LABEL: "acme"},
    }
    values = secret["stringData"]
    assert sorted(values) == sorted(SECRET_KEYS)
    generated = [values[key] for key in RANDOM_KEYS]
    assert all(len(value) >= 43 for value in generated)  # token_urlsafe of 32 bytes or more
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", value) for value in generated)  # URL-safe
    assert len(set(generated)) == len(RANDOM_KEYS)
    # The cipher pass is the one given, from the secret manager: never generated.
    assert {key: values[key] for key in GIVEN} == given_secrets
    assert values[CIPHER_PASS_KEY] == CIPHER_PASS

    tls = json.loads(calls[6]["stdin"])
    assert tls["metadata"] == {
        "name": "pgbackrest-tls", "namespace": "finance-acme", "labels": {tenancy.TENANT_LABEL: "acme"},
    }
    assert sorted(tls["stringData"]) == sorted(TLS_FILES)
    assert "PRIVATE KEY" in tls["stringData"]["server.key"] and "PRIVATE KEY" in tls["stringData"]["client.key"]

    written = b"".join(content or b"" for content in snapshot(repo).values())
    for value in [*values.values(), tls["stringData"]["server.key"], tls["stringData"]["client.key"]]:
        assert value not in result.stdout + result.stderr
        assert value.encode() not in written


def test_apply_keeps_an_existing_secret(repo, fake_kubectl, monkeypatch, no_given_secrets):
    """Nothing is asked of the environment when nothing is missing, and no backup is started."""
    monkeypatch.setenv("FAKE_SECRET_KEYS", " ".join(SECRET_KEYS))
    monkeypatch.setenv("FAKE_TLS_KEYS", " ".join(TLS_FILES))
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 0, result.stderr
    commands = [call["args"][0] for call in recorded(fake_kubectl)]
    assert commands == ["get", "kustomize", "apply", "get", "get", "apply", "rollout", "rollout"]
    assert "kept the existing Secret finance-secrets" in result.stdout
    assert "kept the existing Secret pgbackrest-tls" in result.stdout


def test_apply_never_replaces_an_existing_cipher_pass(repo, fake_kubectl, monkeypatch, given_secrets):
    """A pass given for a Secret that has one is not sent anywhere, and the operator is told so."""
    monkeypatch.setenv("FAKE_SECRET_KEYS", " ".join(SECRET_KEYS))
    monkeypatch.setenv("FAKE_TLS_KEYS", " ".join(TLS_FILES))
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 0, result.stderr
    calls = recorded(fake_kubectl)
    assert [call["args"][0] for call in calls] == ["get", "kustomize", "apply", "get", "get", "apply", "rollout",
                                                   "rollout"]
    assert not [call for call in calls if CIPHER_PASS in json.dumps(call)]
    assert f"{CIPHER_PASS_VARIABLE} was not used" in result.stdout
    assert CIPHER_PASS not in result.stdout + result.stderr


def test_apply_without_the_object_stores_credentials_writes_nothing(repo, fake_kubectl, monkeypatch):
    monkeypatch.setenv(CIPHER_PASS_VARIABLE, CIPHER_PASS)
    for variable, _ in S3_CREDENTIALS.values():
        monkeypatch.delenv(variable, raising=False)
    before = snapshot(repo)
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 1
    assert "FINANCE_BACKUP_S3_KEY and FINANCE_BACKUP_S3_KEY_SECRET" in result.stderr
    assert "nothing was written" in result.stderr
    assert [call["args"][0] for call in recorded(fake_kubectl)] == ["get"]
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    "secret_keys", [None, " ".join(key for key in SECRET_KEYS if key != CIPHER_PASS_KEY)],
    ids=["new Secret", "Secret without the pass"],
)
def test_apply_without_the_cipher_pass_writes_nothing(repo, fake_kubectl, monkeypatch, given_secrets, secret_keys):
    """The pass is never generated: made by the operator and kept outside the cluster, it is what
    reads the backups once the cluster is lost."""
    monkeypatch.delenv(CIPHER_PASS_VARIABLE)
    if secret_keys:
        monkeypatch.setenv("FAKE_SECRET_KEYS", secret_keys)
    before = snapshot(repo)
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"set {CIPHER_PASS_VARIABLE}" in result.stderr
    assert "openssl rand -base64 48" in result.stderr
    assert "secret manager, outside the cluster" in result.stderr and "backups cannot be read" in result.stderr
    assert "nothing was written" in result.stderr
    assert [call["args"][0] for call in recorded(fake_kubectl)] == ["get"]
    assert snapshot(repo) == before


def test_apply_refuses_a_short_cipher_pass_before_anything(repo, fake_kubectl, monkeypatch, given_secrets):
    short = CIPHER_PASS[:31]
    monkeypatch.setenv(CIPHER_PASS_VARIABLE, short)
    before = snapshot(repo)
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{CIPHER_PASS_VARIABLE} is shorter than 32 characters" in result.stderr
    assert "openssl rand -base64 48" in result.stderr
    assert short not in result.stdout + result.stderr
    assert recorded(fake_kubectl) == []
    assert snapshot(repo) == before


def test_apply_adds_only_the_keys_an_existing_secret_lacks(repo, fake_kubectl, monkeypatch, given_secrets):
    """A tenant onboarded before the database roles were split has JWT_SECRET and POSTGRES_PASSWORD only,
    and none of pgBackRest's keys: it gets them, its certificates and its first pgBackRest backup."""
    monkeypatch.setenv("FAKE_SECRET_KEYS", "JWT_SECRET POSTGRES_PASSWORD")
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 0, result.stderr
    calls = recorded(fake_kubectl)
    assert [call["args"][0] for call in calls] == [
        "get", "kustomize", "apply", "get", "patch", "get", "create", "apply", "rollout", "rollout", "create",
    ]
    patch = calls[4]
    assert patch["args"] == [
        "patch", "secret", "finance-secrets", "--namespace", "finance-acme", "--type=merge", "--patch-file=/dev/stdin",
    ]
    values = json.loads(patch["stdin"])["stringData"]
    generated = ["BACKUP_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD"]
    assert sorted(values) == sorted([*generated, *GIVEN]), "existing values are never replaced"
    assert all(len(values[key]) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", values[key]) for key in generated)
    assert {key: values[key] for key in GIVEN} == given_secrets
    assert ("added POSTGRES_SUPERUSER_PASSWORD, BACKUP_PASSWORD, PGBACKREST_REPO1_CIPHER_PASS "
            "(from FINANCE_BACKUP_CIPHER_PASS), PGBACKREST_REPO1_S3_KEY (from FINANCE_BACKUP_S3_KEY), "
            "PGBACKREST_REPO1_S3_KEY_SECRET (from FINANCE_BACKUP_S3_KEY_SECRET) to the existing Secret"
            ) in result.stdout
    assert calls[-1]["args"][:3] == ["create", "job", "postgres-backup-first"]
    for value in values.values():
        assert value not in result.stdout + result.stderr


def test_a_failed_apply_keeps_the_overlay_and_says_how_to_retry(repo, fake_kubectl, monkeypatch, given_secrets):
    monkeypatch.setenv("FAKE_FAIL", "rollout")
    result = onboard(repo, "acme", "--host", HOST, "--apply")
    assert result.returncode == 1
    assert "--apply --force" in result.stderr
    assert (repo / "tenants" / "acme" / "kustomization.yaml").exists()


# --- offboarding -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onboarded_template(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("onboarded") / "repo")
    assert onboard(repo).returncode == 0
    return repo


@pytest.fixture
def repo_with_acme(tmp_path, onboarded_template) -> Path:
    """A copy of the repository in which acme was onboarded (copied: onboarding once is enough)."""
    return Path(shutil.copytree(onboarded_template, tmp_path / "repo", symlinks=True))


@pytest.fixture
def acme(repo_with_acme) -> Path:
    return repo_with_acme / "tenants" / "acme"


def test_offboarding_an_unknown_tenant_is_refused(untouched_repo, fake_kubectl):
    for name in ("nobody", "Not_A_Name"):
        result = run(untouched_repo, "offboard-tenant", name, "--yes")
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1
    assert recorded(fake_kubectl) == []


def test_offboarding_without_a_terminal_needs_yes(repo_with_acme, acme, fake_kubectl):
    result = run(repo_with_acme, "offboard-tenant", "acme")
    assert result.returncode == 2
    assert "--yes" in result.stderr and len(result.stderr.splitlines()) == 1
    assert acme.is_dir()
    assert recorded(fake_kubectl) == []


# Before anything is deleted: kubectl's current context, read once, and the tenant's namespace in it.
CONTEXT_CHECKS = [
    ["config", "current-context"],
    ["--context=kind-finance", "get", "namespace", "finance-acme", "--ignore-not-found", "--output=name"],
]


def test_offboarding_deletes_the_workloads_but_keeps_the_data(repo_with_acme, acme, fake_kubectl):
    kept_kinds = {"Namespace", "PersistentVolumeClaim", "Secret"}
    rendered = render(acme)
    assert {"PersistentVolumeClaim", "Namespace"} <= {o["kind"] for o in rendered}, "the base changed shape"

    result = run(repo_with_acme, "offboard-tenant", "acme", "--yes")
    assert result.returncode == 0, result.stderr
    assert not acme.exists()
    calls = [call["args"] for call in recorded(fake_kubectl)]
    assert calls[:3] == [*CONTEXT_CHECKS, ["kustomize", str(acme)]]
    expected_types = sorted({tenancy.resource_type(o) for o in rendered if o["kind"] not in kept_kinds})
    assert calls[3:] == [[
        "--context=kind-finance", "delete", ",".join(expected_types), "--namespace", "finance-acme",
        "--selector", f"{tenancy.TENANT_LABEL}=acme", "--ignore-not-found", "--wait=true",
    ]]
    deleted = set(calls[3][2].split(","))
    assert {
        "deployment.apps", "statefulset.apps", "cronjob.batch", "service", "configmap",
        "ingress.networking.k8s.io", "networkpolicy.networking.k8s.io",
        "horizontalpodautoscaler.autoscaling", "poddisruptionbudget.policy",
    } <= deleted
    assert not {t for t in deleted if t.split(".")[0] in ("persistentvolumeclaim", "secret", "namespace")}
    assert "deleted the workloads of finance-acme (context kind-finance)" in result.stdout
    assert "kubectl --context kind-finance delete namespace finance-acme" in result.stdout


def test_offboarding_with_delete_data_deletes_the_namespace(repo_with_acme, acme, fake_kubectl):
    result = run(repo_with_acme, "offboard-tenant", "acme", "--delete-data", "--yes")
    assert result.returncode == 0, result.stderr
    assert not acme.exists()
    assert [call["args"] for call in recorded(fake_kubectl)] == [
        *CONTEXT_CHECKS,
        ["--context=kind-finance", "delete", "namespace", "finance-acme", "--ignore-not-found", "--wait=true"],
    ]


@pytest.mark.parametrize("args", [(), ("--delete-data",)])
def test_offboarding_a_namespace_the_cluster_lacks_changes_nothing(repo_with_acme, acme, fake_kubectl, monkeypatch,
                                                                   args):
    """`kubectl delete --ignore-not-found` succeeds in any cluster: without this check the wrong
    context (or a tenant of make run) would lose its folder while nothing was deleted (issue 16)."""
    monkeypatch.setenv("FAKE_NO_NAMESPACE", "1")
    before = snapshot(repo_with_acme)
    result = run(repo_with_acme, "offboard-tenant", "acme", *args, "--yes")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "there is no namespace finance-acme in context kind-finance, so nothing was deleted" in lines[0]
    assert "scripts/offboard-tenant acme --local" in lines[0]
    assert [call["args"] for call in recorded(fake_kubectl)] == CONTEXT_CHECKS
    assert snapshot(repo_with_acme) == before


@pytest.mark.parametrize("args", [(), ("--delete-data",)])
def test_offboarding_a_local_only_tenant_from_a_cluster_is_refused(untouched_repo, fake_kubectl, args):
    """The demo tenants are never deployed, and make test needs their folders."""
    before = snapshot(untouched_repo)
    result = run(untouched_repo, "offboard-tenant", "tenant1", *args, "--yes")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "tenant1 is a local-only tenant" in result.stderr
    assert "scripts/offboard-tenant tenant1 --local" in result.stderr
    assert recorded(fake_kubectl) == []
    assert snapshot(untouched_repo) == before


def test_a_failed_kubectl_keeps_the_overlay(repo_with_acme, acme, fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "delete")
    result = run(repo_with_acme, "offboard-tenant", "acme", "--yes")
    assert result.returncode == 1
    assert "kept" in result.stderr
    assert acme.is_dir()


def test_offboarding_refuses_a_statefulset_that_would_take_its_volumes_along(repo_with_acme, acme, fake_kubectl):
    postgres = repo_with_acme / "kubernetes" / "base" / "postgres.yaml"
    assert "whenDeleted: Retain" in postgres.read_text()
    postgres.write_text(postgres.read_text().replace("whenDeleted: Retain", "whenDeleted: Delete"))
    result = run(repo_with_acme, "offboard-tenant", "acme", "--yes")
    assert result.returncode == 1
    assert "persistentVolumeClaimRetentionPolicy" in result.stderr
    assert [call["args"] for call in recorded(fake_kubectl)] == [*CONTEXT_CHECKS, ["kustomize", str(acme)]]
    assert acme.is_dir()


@pytest.mark.parametrize(("answer", "code"), [("acme\n", 0), ("yes\n", 1)])
def test_offboarding_on_a_terminal_names_the_context_and_asks_for_the_tenants_name(
    repo_with_acme, acme, fake_kubectl, answer, code
):
    result = answering(answer, lambda terminal: run(repo_with_acme, "offboard-tenant", "acme", stdin=terminal))
    assert result.returncode == code, result.stderr
    assert "delete the workloads in finance-acme (context kind-finance;" in result.stderr
    assert "Type the tenant's name" in result.stdout
    assert acme.exists() == (code != 0)
    calls = [call["args"] for call in recorded(fake_kubectl)]
    assert calls[:2] == CONTEXT_CHECKS
    assert bool([args for args in calls if "delete" in args]) == (code == 0)
    # The context read before the question is the one every call to the cluster after it names.
    assert all(args[0] == "--context=kind-finance" for args in calls[1:] if args[0] != "kustomize")
