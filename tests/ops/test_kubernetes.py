"""Kubernetes manifests: every tenant overlay renders, meets the pinned schemas and keeps our policies.

Offline: each overlay of tenants/ is rendered once with `kubectl kustomize` and every check reads
the rendered objects. No cluster is needed, but kubectl is.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import re
import runpy
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import kubernetes_validate
import localstack
import onboard_tenant
import pytest
import restore_tenant
import yaml
from tenancy import read_env_file

from service.metrics import DEFAULT_METRICS_PORT, METRICS_PATH
from tests.utils.sizes import largest_export_bytes, nginx_size

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "kubernetes"
TENANTS_DIR = ROOT / "tenants"
BACKUP_SCRIPT = KUBERNETES_DIR / "base" / "postgres-backup.sh"
INIT_SCRIPT = KUBERNETES_DIR / "base" / "postgres-init.sh"
DRILL_SCRIPT = KUBERNETES_DIR / "base" / "restore-drill.sh"
DRILL_CHECK = KUBERNETES_DIR / "base" / "restore-drill-check.sql"
POSTGRES_DOCKERFILE = ROOT / "postgres" / "Dockerfile"
KUSTOMIZATION_FILE = KUBERNETES_DIR / "base" / "kustomization.yaml"
EXTERNAL_SECRETS_COMPONENT = "../../kubernetes/components/external-secrets"
SERVICE_MONITOR_COMPONENT = "../../kubernetes/components/service-monitor"

# The Kubernetes release whose JSON schemas (shipped by kubernetes-validate) every object must meet:
# the oldest we support, so a field added later fails here.
KUBERNETES_VERSION = "1.32.0"
# API groups of custom resources: kubernetes-validate has no schema for their CRDs, so they are
# skipped by the schema check and covered by the assertions of their own test instead.
CUSTOM_RESOURCE_GROUPS = {"external-secrets.io", "monitoring.coreos.com"}

NAMESPACE_PREFIX = "finance-"
TENANT_LABEL = "finance.example.com/tenant"
SECRET_NAME = "finance-secrets"
SECRET_KEYS = {
    "JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD",
    # pgBackRest's repository: its cipher pass and the object store's credentials.
    "PGBACKREST_REPO1_CIPHER_PASS", "PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET",
}
PGBACKREST_SECRET_KEYS = {"PGBACKREST_REPO1_CIPHER_PASS", "PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET"}
# pgBackRest's certificates: the TLS server's side in the postgres pod, the client's in the backup jobs.
TLS_SECRET_NAME = "pgbackrest-tls"
TLS_SERVER_ITEMS = {"ca.crt", "server.crt", "server.key"}
TLS_CLIENT_ITEMS = {"ca.crt", "client.crt", "client.key"}
# Where PostgreSQL finds its passwords: files of the tenant's Secret, not its environment.
SECRET_FILES_DIR = "/run/secrets/finance"
# The database roles: the bootstrap superuser no pod connects as, the app's owner role and the backup's reader.
SUPERUSER = "postgres"
APP_ROLE = "finance"
BACKUP_ROLE = "finance_backup"
# Keys the Secret holds only while the signing key is rotated; their references must be optional.
ROTATION_KEYS = {"JWT_KEY_ID", "JWT_PREVIOUS_KEYS"}
APP_IMAGE = "ghcr.io/finance-platform/finance-service"
POSTGRES_IMAGE = "ghcr.io/finance-platform/finance-postgres"
DEMO_TENANTS = {"tenant1": "tenant1.finance.example.com", "tenant2": "tenant2.finance.example.com"}

# Every overlay folder of tenants/ (hidden folders are a script's work in progress).
TENANT_NAMES = sorted(
    path.name for path in TENANTS_DIR.iterdir()
    if (path / "kustomization.yaml").is_file() and not path.name.startswith(".")
)

# The names the onboarding and offboarding scripts rely on.
CONTRACT_OBJECTS = {
    ("ServiceAccount", "finance-api"),
    ("Deployment", "finance-api"),
    ("Service", "finance-api"),
    ("Ingress", "finance-api"),
    ("Ingress", "finance-api-login"),
    ("PodDisruptionBudget", "finance-api"),
    ("HorizontalPodAutoscaler", "finance-api"),
    ("StatefulSet", "postgres"),
    ("Service", "postgres"),
    ("CronJob", "postgres-backup"),
    ("PersistentVolumeClaim", "postgres-backups"),
    ("NetworkPolicy", "default-deny"),
    # pgBackRest: the README and onboard-tenant name these.
    ("CronJob", "postgres-backup-full"),
    ("CronJob", "postgres-backup-diff"),
    ("CronJob", "restore-drill"),
    ("NetworkPolicy", "object-store"),
    # restore-tenant scales the webhook dispatcher down and back.
    ("Deployment", "finance-webhooks"),
}

# The whole allow-list, as (direction, pods the policy selects, peer, protocol, port). A peer is a
# pod name (app.kubernetes.io/name) in the tenant's namespace, "namespace/pod" elsewhere, or
# "cidr:<block>" for addresses outside the cluster (only the object store, on its port).
OBJECT_STORE_PORT = 443
# What the webhook dispatcher's way out to the internet leaves out: private, link-local, shared
# (carrier-grade NAT) and loopback IPv4 ranges, where the cluster and its provider live.
NOT_THE_INTERNET = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8")
OBJECT_STORE_CLIENTS = ("postgres", "pgbackrest-backup", "restore-drill", "pgbackrest-restore")
ALLOWED_TRAFFIC = {
    ("ingress", "finance-api", "ingress-nginx/ingress-nginx", "TCP", 8000),
    # Any pod of the monitoring namespace (Prometheus) may scrape the metrics port.
    ("ingress", "finance-api", "monitoring/*", "TCP", DEFAULT_METRICS_PORT),
    ("egress", "finance-api", "postgres", "TCP", 5432),
    ("ingress", "postgres", "finance-api", "TCP", 5432),
    # The recurring transactions' CronJob, as the app's role.
    ("egress", "finance-scheduler", "postgres", "TCP", 5432),
    ("ingress", "postgres", "finance-scheduler", "TCP", 5432),
    # The webhook dispatcher, as the app's role; and the internet's public IPv4 addresses on 443.
    ("egress", "finance-webhooks", "postgres", "TCP", 5432),
    ("ingress", "postgres", "finance-webhooks", "TCP", 5432),
    ("egress", "finance-webhooks", "cidr:0.0.0.0/0 except " + ",".join(NOT_THE_INTERNET), "TCP", 443),
    ("ingress", "postgres", "postgres-backup", "TCP", 5432),
    ("egress", "postgres-backup", "postgres", "TCP", 5432),
    # pgBackRest's TLS server, for the backup jobs.
    ("ingress", "postgres", "pgbackrest-backup", "TCP", 8432),
    ("egress", "pgbackrest-backup", "postgres", "TCP", 8432),
    # The object store of the repository, outside the cluster: from the pods that use it, and only them.
    *(("egress", pods, cidr, "TCP", OBJECT_STORE_PORT)
      for pods in OBJECT_STORE_CLIENTS for cidr in ("cidr:0.0.0.0/0", "cidr:::/0")),
    ("egress", "*", "kube-system/kube-dns", "UDP", 53),
    ("egress", "*", "kube-system/kube-dns", "TCP", 53),
}

LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
# A sidecar's readiness is its pod's: pgBackRest's TLS server must not take PostgreSQL out of its
# Service when it does not answer (its liveness probe restarts it).
NO_READINESS = {("StatefulSet/postgres", "pgbackrest", "readinessProbe")}
SAFE_VOLUME_TYPES = {
    "configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected", "downwardAPI", "ephemeral",
}
SECRET_LIKE_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_?KEY|API_?KEY|CREDENTIAL", re.IGNORECASE)


# --- rendering ---------------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl is not installed: the manifest tests render every overlay with `kubectl kustomize` "
            "(install kubectl 1.32 or newer, which bundles kustomize 5)",
            pytrace=False,
        )
    return path


def render_directory(directory: Path) -> list[dict]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _rendered(name: str) -> tuple[dict, ...]:
    return tuple(render_directory(TENANTS_DIR / name))


@dataclass(frozen=True)
class Render:
    """One tenant overlay, rendered."""

    name: str
    objects: tuple[dict, ...]

    @property
    def namespace(self) -> str:
        return NAMESPACE_PREFIX + self.name

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def generated(self, name: str) -> dict:
        """The ConfigMap kustomize generated from `name` (its name gets a content hash)."""
        (config_map,) = [obj for obj in self.of_kind("ConfigMap") if obj["metadata"]["name"].startswith(name + "-")]
        return config_map

    def pod_spec(self, kind: str, name: str) -> dict:
        return pod_template(self.one(kind, name))["spec"]

    def one(self, kind: str, name: str) -> dict:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name!r} in {self.name}'s render, found {len(found)}"
        return found[0]


@pytest.fixture(params=TENANT_NAMES)
def tenant(request) -> Render:
    return Render(request.param, _rendered(request.param))


# --- helpers over rendered objects ----------------------------------------------------------------


def ref(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_template(obj: dict) -> dict | None:
    """The pod template of a workload (metadata and spec), or None for other kinds."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    if obj["kind"] in LONG_RUNNING_KINDS | {"Job", "ReplicaSet"}:
        return obj["spec"]["template"]
    if obj["kind"] == "Pod":
        return obj
    return None


def workloads(objects) -> list[tuple[dict, dict]]:
    """(workload, its pod spec) for every object that runs pods."""
    return [(obj, template["spec"]) for obj in objects if (template := pod_template(obj)) is not None]


def all_containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def image_ref(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    image, _, digest = image.partition("@")
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = image.rpartition(":")
        return repository, tag, digest or None
    return image, None, digest or None


def selector_names(selector: dict) -> list[str]:
    """The app.kubernetes.io/names a podSelector picks (by one label, or an `In` list of it); ["*"] for every pod."""
    labels = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    if expressions:
        assert not labels and len(expressions) == 1, f"one kind of selector at a time: {selector}"
        (expression,) = expressions
        assert expression["key"] == "app.kubernetes.io/name" and expression["operator"] == "In", expression
        return list(expression["values"])
    if not labels:
        return ["*"]
    assert set(labels) == {"app.kubernetes.io/name"} or set(labels) == {"k8s-app"}, labels
    return [next(iter(labels.values()))]


def selector_name(selector: dict) -> str:
    (name,) = selector_names(selector)
    return name


def peer_name(peer: dict) -> str:
    if "ipBlock" in peer:
        assert set(peer) == {"ipBlock"}, peer
        excepted = peer["ipBlock"].get("except")
        return f"cidr:{peer['ipBlock']['cidr']}" + (f" except {','.join(excepted)}" if excepted else "")
    pods = selector_name(peer.get("podSelector", {}))
    if "namespaceSelector" not in peer:
        return pods
    namespace_labels = peer["namespaceSelector"].get("matchLabels", {})
    assert list(namespace_labels) == ["kubernetes.io/metadata.name"], f"namespace peer by name only: {peer}"
    return f"{namespace_labels['kubernetes.io/metadata.name']}/{pods}"


def traffic_allowed(policies: list[dict]) -> set[tuple]:
    """The allow-list the policies add up to, in the shape of ALLOWED_TRAFFIC."""
    allowed = set()
    for policy in policies:
        spec = policy["spec"]
        for selected in selector_names(spec["podSelector"]):
            for direction, peers_key in (("ingress", "from"), ("egress", "to")):
                for rule in spec.get(direction, []):
                    peers, ports = rule.get(peers_key), rule.get("ports")
                    assert peers, f"{ref(policy)}: a {direction} rule without peers allows every peer"
                    assert ports, f"{ref(policy)}: a {direction} rule without ports allows every port"
                    for peer, port in itertools.product(peers, ports):
                        allowed.add((direction, selected, peer_name(peer), port.get("protocol", "TCP"), port["port"]))
    return allowed


UNITS = {
    "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
}


def quantity(value) -> Decimal:
    """A Kubernetes resource quantity ("250m", "512Mi", "2") as a number."""
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    return Decimal(number) * UNITS.get(unit, Decimal(1))


def pod_resources(pod_spec: dict, kind: str, resource: str) -> Decimal:
    """What a pod counts against a quota: the larger of its containers' sum and any init container."""
    def amount(container):
        return quantity(container["resources"][kind][resource])

    running = sum((amount(c) for c in pod_spec["containers"]), Decimal(0))
    return max([running, *(amount(c) for c in pod_spec.get("initContainers", []))])


def graceful_timeout() -> int:
    """gunicorn's graceful_timeout, from its config file (loading it only reads settings)."""
    return runpy.run_path(str(ROOT / "service" / "gunicorn.conf.py"))["graceful_timeout"]


# --- the overlays -----------------------------------------------------------------------------


def test_demo_tenants_have_overlays():
    assert set(DEMO_TENANTS) <= set(TENANT_NAMES)


@pytest.mark.parametrize("name", TENANT_NAMES)
def test_overlay_holds_only_what_differs(name):
    overlay = yaml.safe_load((TENANTS_DIR / name / "kustomization.yaml").read_text())
    assert set(overlay) <= {
        "apiVersion", "kind", "namespace", "resources", "components", "labels", "configMapGenerator",
        "replicas", "patches",
        # Only with the alerts component: its namespace in the expressions (see the component).
        "replacements",
    }
    assert overlay["namespace"] == NAMESPACE_PREFIX + name
    assert overlay["resources"] == ["../../kubernetes/base"]
    assert {TENANT_LABEL: name} in [entry["pairs"] for entry in overlay["labels"]]
    settings, backup = overlay["configMapGenerator"]
    assert settings["name"] == "finance-settings" and settings["behavior"] == "merge"
    assert settings["envs"] == ["tenant.env"]
    # The tenant's pgBackRest repository, merged over the base's placeholders.
    assert backup == {"name": "pgbackrest-settings", "behavior": "merge", "envs": ["backup.env"]}


def test_no_kustomization_uses_deprecated_fields():
    for path in [*KUBERNETES_DIR.rglob("kustomization.yaml"), *TENANTS_DIR.glob("*/kustomization.yaml")]:
        kustomization = yaml.safe_load(path.read_text())
        deprecated = {"commonLabels", "bases", "patchesStrategicMerge", "patchesJson6902", "vars"}
        assert not deprecated & set(kustomization), path


# --- schema and structure ---------------------------------------------------------------------


def test_every_object_meets_the_pinned_kubernetes_schemas(tenant):
    problems = []
    for obj in tenant.objects:
        if obj["apiVersion"].split("/")[0] in CUSTOM_RESOURCE_GROUPS:
            continue  # no schema for CRDs in kubernetes-validate; see the component's own test
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{ref(obj)}: {'.'.join(map(str, error.path))}: {error.message}")
    assert not problems, "\n".join(problems)


def test_render_has_the_objects_the_scripts_rely_on(tenant):
    rendered = {(obj["kind"], obj["metadata"]["name"]) for obj in tenant.objects}
    assert not CONTRACT_OBJECTS - rendered
    assert {"ResourceQuota", "LimitRange"} <= {kind for kind, _ in rendered}


def test_everything_lives_in_the_tenants_namespace(tenant):
    (namespace,) = tenant.of_kind("Namespace")
    assert namespace["metadata"]["name"] == tenant.namespace
    assert namespace["metadata"]["labels"] | {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
        "app.kubernetes.io/part-of": "finance",
        TENANT_LABEL: tenant.name,
    } == namespace["metadata"]["labels"]
    for obj in tenant.objects:
        assert obj["metadata"]["labels"].get(TENANT_LABEL) == tenant.name, ref(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == tenant.namespace, ref(obj)


def namespaces_of(objects) -> set[str]:
    return {obj["metadata"]["name"] if obj["kind"] == "Namespace" else obj["metadata"]["namespace"] for obj in objects}


def test_two_tenants_share_no_namespace_and_no_host():
    owners: dict[str, str] = {}
    for name in TENANT_NAMES:
        objects = _rendered(name)
        hosts = {rule["host"] for obj in objects if obj["kind"] == "Ingress" for rule in obj["spec"]["rules"]}
        for claimed in namespaces_of(objects) | hosts:
            assert owners.setdefault(claimed, name) == name, f"{claimed} is both {owners[claimed]}'s and {name}'s"


# --- pod security ---------------------------------------------------------------------------------


def test_every_container_meets_the_restricted_pod_security_profile(tenant):
    problems = []
    for workload, pod in workloads(tenant.objects):
        pod_context = pod.get("securityContext", {})
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(field):
                problems.append(f"{ref(workload)}: {field}")
        if pod_context.get("runAsNonRoot") is not True:
            problems.append(f"{ref(workload)}: pod runAsNonRoot is not true")
        if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{ref(workload)}: pod seccompProfile is not RuntimeDefault")
        for volume in pod.get("volumes", []):
            if not set(volume) - {"name"} <= SAFE_VOLUME_TYPES:
                problems.append(f"{ref(workload)}: volume {volume['name']} is of a type restricted forbids")
        for container in all_containers(pod):
            where = f"{ref(workload)} container {container['name']}"
            context = container.get("securityContext", {})
            user = context.get("runAsUser", pod_context.get("runAsUser"))
            if not isinstance(user, int) or user == 0:
                problems.append(f"{where}: runAsUser must be a numeric non-root uid, got {user!r}")
            if context.get("runAsNonRoot") is False:
                problems.append(f"{where}: runAsNonRoot false")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{where}: privileged")
            if context.get("capabilities", {}).get("drop") != ["ALL"] or context["capabilities"].get("add"):
                problems.append(f"{where}: capabilities must drop ALL and add none")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("seccompProfile", {}).get("type", "RuntimeDefault") != "RuntimeDefault":
                problems.append(f"{where}: container seccompProfile")
            if any(port.get("hostPort") for port in container.get("ports", [])):
                problems.append(f"{where}: hostPort")
    assert not problems, "\n".join(problems)


def test_service_account_tokens_are_never_mounted(tenant):
    assert tenant.one("ServiceAccount", "finance-api")["automountServiceAccountToken"] is False
    for workload, pod in workloads(tenant.objects):
        assert pod.get("automountServiceAccountToken") is False, ref(workload)
    assert tenant.one("Deployment", "finance-api")["spec"]["template"]["spec"]["serviceAccountName"] == "finance-api"


def test_every_image_is_pinned_to_a_version(tenant):
    for workload, pod in workloads(tenant.objects):
        for container in all_containers(pod):
            repository, tag, digest = image_ref(container["image"])
            assert digest or (tag and tag != "latest" and re.match(r"^v?\d+(\.\d+)+", tag)), (
                f"{ref(workload)} container {container['name']}: image {container['image']!r} is not pinned"
            )
            assert repository in {APP_IMAGE, POSTGRES_IMAGE, "postgres"}, container["image"]


# --- workloads ------------------------------------------------------------------------------------


def test_long_running_containers_have_probes_and_every_container_has_resources(tenant):
    problems = []
    for workload, pod in workloads(tenant.objects):
        for container in all_containers(pod):
            where = f"{ref(workload)} container {container['name']}"
            resources = container.get("resources", {})
            for kind, resource in itertools.product(("requests", "limits"), ("cpu", "memory")):
                if resource not in resources.get(kind, {}):
                    problems.append(f"{where}: no {resource} {kind}")
        if workload["kind"] in LONG_RUNNING_KINDS:
            for container in pod["containers"]:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe not in container and (ref(workload), container["name"], probe) not in NO_READINESS:
                        problems.append(f"{ref(workload)} container {container['name']}: no {probe}")
                    elif probe in container and (ref(workload), container["name"], probe) in NO_READINESS:
                        problems.append(f"{ref(workload)} container {container['name']}: a {probe} gates the pod")
    assert not problems, "\n".join(problems)


def test_api_rolls_out_without_dropping_capacity_and_drains_gracefully(tenant):
    deployment = tenant.one("Deployment", "finance-api")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    # The pod is removed from the endpoints during the preStop pause, then gunicorn gets SIGTERM
    # and may take its graceful_timeout; the kubelet must not kill it before that.
    pre_stop = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 5
    assert pod["terminationGracePeriodSeconds"] > pre_stop + graceful_timeout()
    assert "kubernetes.io/hostname" in {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert {port["name"]: port["containerPort"] for port in api["ports"]} == {
        "http": 8000, "metrics": DEFAULT_METRICS_PORT,
    }
    assert "command" not in api and "args" not in api, "the app runs the image's own command"


def test_api_is_configured_from_the_settings_and_the_tenants_secret(tenant):
    pod = tenant.pod_spec("Deployment", "finance-api")
    settings = tenant.generated("finance-settings")
    migrate = next(c for c in pod["initContainers"] if c["name"] == "migrate")
    assert migrate["command"] == ["python", "-m", "service", "migrate"]
    assert migrate["image"] == pod["containers"][0]["image"]
    for container in (migrate, pod["containers"][0]):
        assert container["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
        env = [variable["name"] for variable in container["env"]]
        # $(POSTGRES_PASSWORD) is only expanded when defined earlier in the list.
        assert env.index("POSTGRES_PASSWORD") < env.index("DATABASE_URL")
        database_url = next(v["value"] for v in container["env"] if v["name"] == "DATABASE_URL")
        assert database_url == "postgresql://finance:$(POSTGRES_PASSWORD)@postgres:5432/finance"
    assert "JWT_SECRET" in {variable["name"] for variable in pod["containers"][0]["env"]}


def test_settings_carry_the_tenant_id_and_its_tenant_env(tenant):
    settings = tenant.generated("finance-settings")
    assert settings["data"]["TENANT_ID"] == tenant.name
    tenant_env = read_env_file(TENANTS_DIR / tenant.name / "tenant.env")
    assert tenant_env.items() <= settings["data"].items()
    assert {"TENANT_CURRENCY", "TENANT_TIMEZONE", "LOG_LEVEL"} <= set(settings["data"])


LOOPBACK_SETTING = "WEBHOOKS_ALLOW_LOOPBACK"


def test_webhooks_to_loopback_are_never_allowed_in_a_render(tenant):
    """Only the local stack sets WEBHOOKS_ALLOW_LOOPBACK (scripts/localstack.py): in a cluster a
    webhook's URL is https to public addresses, never the pod's own loopback."""
    assert LOOPBACK_SETTING not in yaml.safe_dump_all(tenant.objects)
    for path in (TENANTS_DIR / tenant.name).glob("*.env"):
        assert LOOPBACK_SETTING not in read_env_file(path), path


def test_webhooks_to_loopback_are_not_allowed_by_the_manifests_or_docker_compose():
    sources = [path for path in KUBERNETES_DIR.rglob("*") if path.is_file()] + [ROOT / "docker-compose.yml"]

    def sets_it(path: Path) -> bool:  # a comment may name it, to say it stays unset
        lines = path.read_text(errors="replace").splitlines()
        return any(LOOPBACK_SETTING in line and not line.lstrip().startswith("#") for line in lines)

    assert [path for path in sources if sets_it(path)] == []
    assert LOOPBACK_SETTING in (ROOT / "scripts" / "localstack.py").read_text()


# --- the recurring transactions' scheduler ----------------------------------------------------------

SCHEDULER = "finance-scheduler"
SCHEDULER_INTERVAL = timedelta(minutes=15)


def test_scheduler_runs_a_pass_every_15_minutes_one_at_a_time_on_every_tenants_midnight(tenant):
    cronjob = tenant.one("CronJob", SCHEDULER)
    spec, job = cronjob["spec"], cronjob["spec"]["jobTemplate"]["spec"]
    assert spec["schedule"] == "*/15 * * * *" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    # A missed run is skipped, not started late into the next one's slot; a stuck pass ends before
    # the next run is due (Forbid would skip it otherwise); a failed pass is retried (it is safe to repeat).
    assert 0 < spec["startingDeadlineSeconds"] < SCHEDULER_INTERVAL.total_seconds()
    assert 0 < job["activeDeadlineSeconds"] < SCHEDULER_INTERVAL.total_seconds()
    assert job["backoffLimit"] >= 1
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    # Runs at :00, :15, :30 and :45 UTC fall on the tenant's midnight as long as its offset from UTC
    # is a multiple of 15 minutes, on every day of a year (summer time included).
    zone = ZoneInfo(tenant.generated("finance-settings")["data"]["TENANT_TIMEZONE"])
    for day in range(366):
        midnight = datetime.combine(date(2026, 1, 1) + timedelta(days=day), time(), zone)
        assert midnight.utcoffset() % SCHEDULER_INTERVAL == timedelta(0), f"{zone} at {midnight}"


def test_scheduler_is_the_apps_image_with_the_apps_settings_database_and_security_but_no_signing_key(tenant):
    cronjob = tenant.one("CronJob", SCHEDULER)
    template = pod_template(cronjob)
    pod = template["spec"]
    api_pod = tenant.pod_spec("Deployment", "finance-api")
    (api,) = api_pod["containers"]
    (scheduler,) = pod["containers"]
    assert not pod.get("initContainers")
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/name"] == SCHEDULER
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == SCHEDULER
    assert pod["restartPolicy"] == "Never"
    # The tenant's app image (the overlay's images entry applies), running one pass.
    assert scheduler["image"] == api["image"] and image_ref(scheduler["image"])[0] == APP_IMAGE
    assert scheduler["command"] == ["python", "-m", "service", "run-scheduled"] and "args" not in scheduler
    # The API's settings and DATABASE_URL, as the app's role; of the Secret only the database password.
    settings = tenant.generated("finance-settings")["metadata"]["name"]
    assert scheduler["envFrom"] == api["envFrom"] == [{"configMapRef": {"name": settings}}]
    env = [variable["name"] for variable in scheduler["env"]]
    assert env == ["POSTGRES_PASSWORD", "DATABASE_URL"]
    assert env_value(scheduler, "DATABASE_URL") == env_value(api, "DATABASE_URL")
    assert env_map(scheduler)["POSTGRES_PASSWORD"] == env_map(api)["POSTGRES_PASSWORD"]
    assert connecting_users(scheduler) == {APP_ROLE}
    assert "JWT_SECRET" in env_map(api) and not [name for name in env if name.startswith("JWT_")]
    # The API's restricted security context, pod and container; no token, no Service variables.
    assert pod["securityContext"] == api_pod["securityContext"]
    assert scheduler["securityContext"] == api["securityContext"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    # Writable: only its own /tmp.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert [(m["mountPath"], set(volumes[m["name"]]) - {"name"}) for m in scheduler["volumeMounts"]] == [
        ("/tmp", {"emptyDir"})  # noqa: S108 - an emptyDir mount
    ]


def test_scheduler_reaches_postgresql_only_and_nothing_reaches_it(tenant):
    allowed = traffic_allowed(tenant.of_kind("NetworkPolicy"))
    own = {rule for rule in allowed if SCHEDULER in rule[1:3]}
    assert own == {
        ("egress", SCHEDULER, "postgres", "TCP", 5432),
        ("ingress", "postgres", SCHEDULER, "TCP", 5432),
    }
    # Beside DNS (every pod's), that is all: its own policy selects exactly its pods.
    policy = tenant.one("NetworkPolicy", SCHEDULER)["spec"]
    labels = pod_template(tenant.one("CronJob", SCHEDULER))["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    assert {rule for rule in allowed if rule[1] == "*"} == {
        ("egress", "*", "kube-system/kube-dns", "UDP", 53), ("egress", "*", "kube-system/kube-dns", "TCP", 53),
    }


# --- the webhook dispatcher -------------------------------------------------------------------------

WEBHOOKS = "finance-webhooks"


def test_webhook_dispatcher_is_the_apps_image_with_the_apps_settings_database_and_security_but_no_signing_key(
    tenant,
):
    deployment = tenant.one("Deployment", WEBHOOKS)
    template = pod_template(deployment)
    pod = template["spec"]
    api_pod = tenant.pod_spec("Deployment", "finance-api")
    (api,) = api_pod["containers"]
    (dispatcher,) = pod["containers"]
    assert not pod.get("initContainers")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": WEBHOOKS}
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == WEBHOOKS
    assert dispatcher["image"] == api["image"] and image_ref(dispatcher["image"])[0] == APP_IMAGE
    heartbeat = "/tmp/dispatcher-alive"  # noqa: S108 - in its own emptyDir
    assert dispatcher["command"] == ["python", "-m", "service", "deliver-webhooks", "--heartbeat", heartbeat]
    assert "args" not in dispatcher and "ports" not in dispatcher
    # The API's settings and DATABASE_URL, as the app's role; of the Secret only the database
    # password; never WEBHOOKS_ALLOW_LOOPBACK (production: https to public addresses only).
    settings = tenant.generated("finance-settings")
    assert dispatcher["envFrom"] == api["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
    assert [variable["name"] for variable in dispatcher["env"]] == ["POSTGRES_PASSWORD", "DATABASE_URL"]
    assert env_value(dispatcher, "DATABASE_URL") == env_value(api, "DATABASE_URL")
    assert env_map(dispatcher)["POSTGRES_PASSWORD"] == env_map(api)["POSTGRES_PASSWORD"]
    assert connecting_users(dispatcher) == {APP_ROLE}
    assert "WEBHOOKS_ALLOW_LOOPBACK" not in settings["data"]
    # The API's restricted security context, pod and container; no token, no Service variables.
    assert pod["securityContext"] == api_pod["securityContext"]
    assert dispatcher["securityContext"] == api["securityContext"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert [(m["mountPath"], set(volumes[m["name"]]) - {"name"}) for m in dispatcher["volumeMounts"]] == [
        ("/tmp", {"emptyDir"})  # noqa: S108 - an emptyDir mount
    ]
    # Its probes read the heartbeat its loop touches; a send in flight (15 s at most) ends within
    # the grace period.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = dispatcher[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"] and heartbeat in command[2], probe
    assert pod["terminationGracePeriodSeconds"] > 15


def test_webhook_dispatcher_reaches_postgresql_and_the_internet_on_443_only(tenant):
    allowed = traffic_allowed(tenant.of_kind("NetworkPolicy"))
    own = {rule for rule in allowed if WEBHOOKS in rule[1:3]}
    assert own == {
        ("egress", WEBHOOKS, "postgres", "TCP", 5432),
        ("ingress", "postgres", WEBHOOKS, "TCP", 5432),
        ("egress", WEBHOOKS, "cidr:0.0.0.0/0 except " + ",".join(NOT_THE_INTERNET), "TCP", 443),
    }
    policy = tenant.one("NetworkPolicy", WEBHOOKS)["spec"]
    labels = pod_template(tenant.one("Deployment", WEBHOOKS))["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    # The way out admits public addresses and none of the cluster's, the provider's or the node's.
    (block,) = [peer["ipBlock"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]

    def admitted(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(excepted) for excepted in block["except"])

    for address in ("10.96.0.1", "10.244.1.7", "172.20.0.5", "192.168.49.2", "169.254.169.254", "100.100.0.1",
                    "127.0.0.1"):
        assert not admitted(address), address
    for address in ("93.184.216.34", "1.1.1.1", "8.8.8.8", "172.15.255.1", "100.128.0.1"):
        assert admitted(address), address


def test_the_api_pods_reach_nothing_beyond_postgresql_and_dns(tenant):
    """Webhooks leave from the dispatcher's pods only: the API's own policy is unchanged."""
    allowed = traffic_allowed(tenant.of_kind("NetworkPolicy"))
    assert {rule for rule in allowed if rule[0] == "egress" and rule[1] in ("finance-api", "*")} == {
        ("egress", "finance-api", "postgres", "TCP", 5432),
        ("egress", "*", "kube-system/kube-dns", "UDP", 53),
        ("egress", "*", "kube-system/kube-dns", "TCP", 53),
    }


def test_postgres_keeps_its_data_on_a_claimed_volume(tenant):
    statefulset = tenant.one("StatefulSet", "postgres")
    service = tenant.one("Service", "postgres")
    assert service["spec"]["clusterIP"] == "None" and statefulset["spec"]["serviceName"] == "postgres"
    retention = statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    container = postgres_container(tenant)
    data_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    pgdata = next(v["value"] for v in container["env"] if v["name"] == "PGDATA")
    assert pgdata.startswith(data_mount + "/"), "PGDATA must be a subdirectory of the volume (lost+found)"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
    writable = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp"} <= writable  # noqa: S108 - emptyDir mounts


def test_backups_are_dumped_in_custom_format_one_at_a_time(tenant):
    cronjob = tenant.one("CronJob", "postgres-backup")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_template(cronjob)["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"postgres-backups"}
    tenant.one("PersistentVolumeClaim", "postgres-backups")
    (container,) = pod["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["BACKUP_KEEP"]["value"] == "7"
    # The backup role, a reader (postgres-init.sh), with its own password.
    assert env["PGUSER"]["value"] == BACKUP_ROLE
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": "BACKUP_PASSWORD"}
    script = tenant.generated("postgres-backup-script")
    assert script["data"]["postgres-backup.sh"] == BACKUP_SCRIPT.read_text()
    # pg_dump of the server's own version: the image the server's is built FROM (postgres/Dockerfile).
    assert container["image"] == postgres_base_image()


def env_value(container: dict, name: str) -> str | None:
    return next((v.get("value") for v in container.get("env", []) if v["name"] == name), None)


def postgres_container(tenant: Render, name: str = "postgres") -> dict:
    """A container of the PostgreSQL pod: the server (`postgres`) or pgBackRest's TLS server (`pgbackrest`)."""
    containers = tenant.pod_spec("StatefulSet", "postgres")["containers"]
    assert [c["name"] for c in containers] == ["postgres", "pgbackrest"]
    return next(c for c in containers if c["name"] == name)


def postgres_base_image() -> str:
    """The image postgres/Dockerfile builds FROM, as `postgres:<tag>@<digest>`."""
    (image,) = [line.split()[1] for line in POSTGRES_DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]
    return image


def test_postgres_reads_its_passwords_from_files_and_creates_the_roles_on_first_start(tenant):
    pod = tenant.pod_spec("StatefulSet", "postgres")
    container = postgres_container(tenant)
    names = {variable["name"] for variable in container["env"]}
    # The image's bootstrap superuser stays postgres, its password read from a file.
    assert env_value(container, "POSTGRES_USER") in (None, SUPERUSER)
    assert not {"POSTGRES_PASSWORD", "POSTGRES_DB"} & names
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}

    # Each *_FILE names a file of the Secret's volume holding the key it should.
    (secret_volume,) = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == SECRET_NAME]
    mount = mounts[secret_volume["name"]]
    assert mount["mountPath"] == SECRET_FILES_DIR and mount["readOnly"] is True
    files = {f"{SECRET_FILES_DIR}/{item['path']}": item["key"] for item in secret_volume["secret"]["items"]}
    assert {env_value(container, name): key for name, key in (
        ("POSTGRES_PASSWORD_FILE", "POSTGRES_SUPERUSER_PASSWORD"),
        ("APP_PASSWORD_FILE", "POSTGRES_PASSWORD"),
        ("BACKUP_PASSWORD_FILE", "BACKUP_PASSWORD"),
    )} == files
    # Readable by the postgres user through its group (fsGroup), by no one else.
    assert pod["securityContext"]["runAsUser"] == 70 and pod["securityContext"]["fsGroup"] == 70
    assert secret_volume["secret"]["defaultMode"] == 0o440

    # postgres-init.sh, mounted where the image runs it on first initialisation, executable (else
    # the image would source it into its own shell).
    init_mount = mounts["init-script"]
    assert init_mount["mountPath"] == "/docker-entrypoint-initdb.d" and init_mount["readOnly"] is True
    config_map = volumes["init-script"]["configMap"]
    generated = tenant.generated("postgres-init-script")
    assert config_map["name"] == generated["metadata"]["name"]
    assert config_map["defaultMode"] & 0o555 == 0o555 and config_map["defaultMode"] & 0o022 == 0
    assert generated["data"] == {"postgres-init.sh": INIT_SCRIPT.read_text()}
    assert INIT_SCRIPT.stat().st_mode & 0o111, "executable for docker-compose's bind mount too"
    assert INIT_SCRIPT.read_text().startswith("#!/bin/sh\n")
    # The roles it creates are the ones the app and the backup job log in as.
    assert (env_value(container, "APP_USER"), env_value(container, "APP_DB")) == (APP_ROLE, "finance")
    assert env_value(container, "BACKUP_USER") == BACKUP_ROLE


def connecting_users(container: dict) -> set[str]:
    """The database users a container names: PGUSER, a DATABASE_URL's user, pg_isready's --username."""
    users = set()
    for variable in container.get("env", []):
        if variable["name"] == "PGUSER":
            users.add(variable["value"])
        elif variable["name"] == "DATABASE_URL":
            users.add(re.match(r"postgresql://([^:@]+)", variable["value"]).group(1))
    commands = [container.get("command", []), container.get("args", [])]
    commands += [container[probe]["exec"]["command"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")
                 if "exec" in container.get(probe, {})]
    for word in " ".join(part for command in commands for part in command).split():
        if word.startswith("--username="):
            users.add(word.partition("=")[2])
    return users


def test_no_container_connects_as_a_superuser(tenant):
    used = {}
    for workload, pod in workloads(tenant.objects):
        for container in all_containers(pod):
            for user in connecting_users(container):
                used.setdefault(user, set()).add(f"{ref(workload)}/{container['name']}")
    assert SUPERUSER not in used, f"connects as the superuser: {used.get(SUPERUSER)}"
    assert set(used) == {APP_ROLE, BACKUP_ROLE}, used
    assert used[BACKUP_ROLE] == {"CronJob/postgres-backup/backup"}


def test_api_scaling_floor_follows_the_overlay_and_the_quota_fits_the_ceiling(tenant):
    deployment = tenant.one("Deployment", "finance-api")
    autoscaler = tenant.one("HorizontalPodAutoscaler", "finance-api")
    budget = tenant.one("PodDisruptionBudget", "finance-api")
    replicas = deployment["spec"]["replicas"]
    assert autoscaler["spec"]["minReplicas"] == replicas <= autoscaler["spec"]["maxReplicas"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "finance-api"
    assert autoscaler["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # A node drain must always be able to evict one API pod.
    assert budget["spec"]["minAvailable"] < replicas

    # Everything at once: the autoscaler's ceiling plus a rolling update's surge pod, PostgreSQL
    # with its pgBackRest server, a dump, a pgBackRest backup, a restore drill and a scheduler pass.
    (quota,) = tenant.of_kind("ResourceQuota")
    hard = quota["spec"]["hard"]
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    pods = Counter({"finance-api": autoscaler["spec"]["maxReplicas"] + surge})
    pods["postgres"] = tenant.one("StatefulSet", "postgres")["spec"]["replicas"]
    pods["postgres-backup"] = 1
    pods["postgres-backup-full"] = 1  # the differential one is the same pod, on other days
    pods["restore-drill"] = 1
    pods["finance-scheduler"] = 1
    webhooks = tenant.one("Deployment", WEBHOOKS)
    pods[WEBHOOKS] = webhooks["spec"]["replicas"] + webhooks["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    specs = {workload["metadata"]["name"]: pod for workload, pod in workloads(tenant.objects)}
    for kind, resource in itertools.product(("requests", "limits"), ("cpu", "memory")):
        needed = sum(count * pod_resources(specs[name], kind, resource) for name, count in pods.items())
        assert needed <= quantity(hard[f"{kind}.{resource}"]), f"{kind}.{resource}: {needed} needed"
    assert sum(pods.values()) <= int(hard["pods"])
    claims = [tenant.one("PersistentVolumeClaim", "postgres-backups"),
              *tenant.one("StatefulSet", "postgres")["spec"]["volumeClaimTemplates"]]
    assert len(claims) <= int(hard["persistentvolumeclaims"])
    storage = sum(quantity(claim["spec"]["resources"]["requests"]["storage"]) for claim in claims)
    assert storage <= quantity(hard["requests.storage"])

    (limit_range,) = tenant.of_kind("LimitRange")
    container_max = next(item["max"] for item in limit_range["spec"]["limits"] if item["type"] == "Container")
    for workload, pod in workloads(tenant.objects):
        for container in all_containers(pod):
            for resource, ceiling in container_max.items():
                assert quantity(container["resources"]["limits"][resource]) <= quantity(ceiling), ref(workload)


# --- network --------------------------------------------------------------------------------------


def test_network_is_denied_by_default_and_allowed_only_as_listed(tenant):
    policies = tenant.of_kind("NetworkPolicy")
    default_deny = tenant.one("NetworkPolicy", "default-deny")["spec"]
    assert default_deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert traffic_allowed(policies) == ALLOWED_TRAFFIC

    # Every selector names pods that exist, so a renamed label cannot silently open or close a path.
    pod_names = {template["metadata"]["labels"]["app.kubernetes.io/name"]
                 for obj in tenant.objects if (template := pod_template(obj))}
    # ... or that scripts/restore-tenant makes: its restore Job.
    pod_names.add(restore_tenant.OBJECT_STORE_LABEL)
    local_peers = {name for _, selected, peer, _, _ in ALLOWED_TRAFFIC for name in (selected, peer) if "/" not in name}
    assert local_peers - {"*"} <= pod_names
    # A policy that selects pods but lists a direction without rules would deny; one that lists
    # rules for a direction it does not declare would be ignored.
    for policy in policies:
        declared = {kind.lower() for kind in policy["spec"]["policyTypes"]}
        assert {"ingress", "egress"} & set(policy["spec"]) <= declared, ref(policy)


def test_ingresses_serve_the_tenants_host_over_tls_with_login_rate_limited(tenant):
    ingresses = {obj["metadata"]["name"]: obj for obj in tenant.of_kind("Ingress")}
    hosts = set()
    for ingress in ingresses.values():
        spec = ingress["spec"]
        assert spec["ingressClassName"] == "nginx"
        (rule,) = spec["rules"]
        (tls,) = spec["tls"]
        assert tls["hosts"] == [rule["host"]] and tls["secretName"] == "finance-api-tls"
        hosts.add(rule["host"])
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {"name": "finance-api", "port": {"name": "http"}}
    (host,) = hosts
    assert not host.endswith(".invalid"), "the overlay did not replace the base's placeholder host"
    if tenant.name in DEMO_TENANTS:
        assert host == DEMO_TENANTS[tenant.name]

    main, login = ingresses["finance-api"], ingresses["finance-api-login"]
    assert main["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    # One Certificate per host: only the main Ingress asks cert-manager for it.
    assert "cert-manager.io/cluster-issuer" not in login["metadata"]["annotations"]
    assert [(p["path"], p["pathType"]) for p in login["spec"]["rules"][0]["http"]["paths"]] == [("/login", "Exact")]
    login_per_minute = int(login["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rpm"])
    overall_per_minute = 60 * int(main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"])
    assert login_per_minute < overall_per_minute

    service = tenant.one("Service", "finance-api")
    ports = {port["name"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert ports == {"http": "http", "metrics": "metrics"}


def test_ingresses_buffer_whole_answers_and_keep_each_client_below_the_workers(tenant):
    """No slow client holds a sync worker: the controller takes whole requests and whole answers
    (the same settings, in nginx, are attacked in tests/ops/test_slow_clients.py)."""
    prefix = "nginx.ingress.kubernetes.io/"
    ingresses = {
        ingress["metadata"]["name"]: {
            key.removeprefix(prefix): value for key, value in ingress["metadata"]["annotations"].items()
            if key.startswith(prefix)
        }
        for ingress in tenant.of_kind("Ingress")
    }
    assert set(ingresses) == {"finance-api", "finance-api-login", "finance-api-docs"}
    for name, nginx in ingresses.items():
        assert nginx["proxy-buffering"] == "on", name
        assert nginx["proxy-request-buffering"] == "on", name
        # ingress-nginx writes proxy_max_temp_file_size only for a value of this form.
        assert re.fullmatch(r"\d+[kKmM]?", nginx["proxy-max-temp-file-size"]), name
        in_memory = int(nginx["proxy-buffers-number"]) * nginx_size(nginx["proxy-buffer-size"])
        assert in_memory + nginx_size(nginx["proxy-max-temp-file-size"]) >= largest_export_bytes(), name
        assert nginx_size(nginx["proxy-body-size"]) == 1024 * 1024, name

    # Requests in flight per client address (and controller replica): ingress-nginx keeps one
    # zone per Ingress, so the API's and the login's limits add up; together they stay below the
    # workers of the tenant's smallest deployment, so that one address never occupies them all.
    workers = int(tenant.generated("finance-settings")["data"]["WEB_CONCURRENCY"])
    replicas = tenant.one("Deployment", "finance-api")["spec"]["replicas"]
    in_flight = sum(int(ingresses[name]["limit-connections"]) for name in ("finance-api", "finance-api-login"))
    assert in_flight < replicas * workers
    # Only the Swagger UI's static files, which a browser fetches six at once, may have more.
    docs = tenant.one("Ingress", "finance-api-docs")
    paths = [(p["path"], p["pathType"]) for rule in docs["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == [("/swaggerui", "Prefix")]
    assert int(ingresses["finance-api-docs"]["limit-rps"]) <= int(ingresses["finance-api"]["limit-rps"])


# --- secrets --------------------------------------------------------------------------------------


def test_secrets_are_only_referenced_never_rendered(tenant):
    assert not tenant.of_kind("Secret")
    for workload, pod in workloads(tenant.objects):
        for container in all_containers(pod):
            for variable in container.get("env", []):
                secret_ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret_ref and secret_ref["key"] in ROTATION_KEYS:
                    assert secret_ref == {"name": SECRET_NAME, "key": variable["name"], "optional": True}, variable
                elif secret_ref:
                    assert secret_ref["name"] == SECRET_NAME and secret_ref["key"] in SECRET_KEYS, variable
                elif variable["name"].endswith("_FILE") and variable["value"].startswith(SECRET_FILES_DIR + "/"):
                    pass  # the path of a file of the Secret's volume (below)
                elif SECRET_LIKE_NAME.search(variable["name"]):
                    pytest.fail(f"{ref(workload)}: {variable['name']} has a literal value")
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, f"{ref(workload)}: envFrom a Secret exposes every key"
        # Only PostgreSQL mounts the Secret, and only the keys it names, readable by its group alone;
        # pgBackRest's certificates go to its TLS server (the server's side) and the backup jobs
        # (the client's), the same way.
        for volume in [v for v in pod.get("volumes", []) if "secret" in v]:
            secret = volume["secret"]
            keys = {item["key"] for item in secret.get("items", [])}
            if secret["secretName"] == TLS_SECRET_NAME:
                expected = {"StatefulSet/postgres": TLS_SERVER_ITEMS, "CronJob/postgres-backup-full": TLS_CLIENT_ITEMS,
                            "CronJob/postgres-backup-diff": TLS_CLIENT_ITEMS}
                assert keys == expected.get(ref(workload)), f"{ref(workload)} mounts {keys} of {TLS_SECRET_NAME}"
            else:
                assert ref(workload) == "StatefulSet/postgres", f"{ref(workload)} mounts the Secret"
                assert secret["secretName"] == SECRET_NAME and secret["items"], volume
                assert keys <= SECRET_KEYS - {"JWT_SECRET"} - PGBACKREST_SECRET_KEYS, volume
            assert secret["defaultMode"] & 0o007 == 0 and not any("mode" in item for item in secret["items"])


def secret_like_strings(text: str) -> list[str]:
    """Words that look generated: long, mixed-case alphanumeric with high entropy, long hex, PEM keys.
    An image digest (`@sha256:<hex>`, or kustomize's `digest: sha256:<hex>`) is a hash, not a secret."""
    text = re.sub(r"\bsha256:[0-9a-f]{64}\b", "sha256:<digest>", text)
    # In `NAME=value` (env files, kustomize literals) the name is an identifier, not part of the value.
    text = re.sub(r"\b([A-Z][A-Z0-9_]*)=", r"\1 ", text)
    found = re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text)
    for word in re.findall(r"[A-Za-z0-9+/=_-]{24,}", text):
        counts = Counter(word)
        entropy = -sum(n / len(word) * math.log2(n / len(word)) for n in counts.values())
        mixed = re.search(r"[a-z]", word) and re.search(r"[A-Z]", word) and re.search(r"\d", word)
        if (mixed and entropy > 4.0) or re.search(r"[0-9a-f]{40,}", word):
            found.append(word)
    return found


def test_the_secret_detector_finds_generated_values():
    import secrets

    assert secret_like_strings(f"JWT_SECRET={secrets.token_urlsafe(48)}")
    assert secret_like_strings(f"password: {secrets.token_hex(32)}")
    assert not secret_like_strings("kubernetes/components/external-secrets finance-settings-b59c7789bk")
    assert not secret_like_strings(f"image: postgres:17.11-alpine@sha256:{secrets.token_hex(32)}")
    assert not secret_like_strings("PGBACKREST_REPO1_S3_ENDPOINT=s3.us-east-1.amazonaws.com")
    assert secret_like_strings(f"PGBACKREST_REPO1_CIPHER_PASS={secrets.token_urlsafe(48)}")


def test_no_committed_file_holds_a_secret():
    problems = []
    for path in sorted([*KUBERNETES_DIR.rglob("*"), *TENANTS_DIR.rglob("*")]):
        if not path.is_file():
            continue
        text = path.read_text()
        where = path.relative_to(ROOT)
        problems += [f"{where}: {word[:6]}..." for word in secret_like_strings(text)]
        if path.suffix in {".yaml", ".yml"}:
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    problems.append(f"{where}: a Secret object")
        if path.suffix == ".env":
            problems += [f"{where}: {key}" for key in read_env_file(path) if SECRET_LIKE_NAME.search(key)]
    assert not problems, "\n".join(problems)


def test_external_secrets_component_supplies_the_tenants_secret(tmp_path):
    # A copy of tenant1's overlay with the component enabled, as the README tells an operator to do.
    shutil.copytree(KUBERNETES_DIR, tmp_path / "kubernetes")
    overlay = tmp_path / "tenants" / "tenant1"
    shutil.copytree(TENANTS_DIR / "tenant1", overlay)
    with (overlay / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(f"components:\n  - {EXTERNAL_SECRETS_COMPONENT}\n")
    objects = render_directory(overlay)

    plain = {ref(obj) for obj in _rendered("tenant1")}
    assert {ref(obj) for obj in objects} - plain == {"ExternalSecret/finance-secrets"}
    (external_secret,) = [obj for obj in objects if obj["kind"] == "ExternalSecret"]
    assert external_secret["apiVersion"] == "external-secrets.io/v1"
    assert external_secret["metadata"]["namespace"] == "finance-tenant1"
    spec = external_secret["spec"]
    assert spec["target"]["name"] == SECRET_NAME
    assert spec["secretStoreRef"]["kind"] == "ClusterSecretStore" and spec["secretStoreRef"]["name"]
    assert {item["secretKey"] for item in spec["data"]} == SECRET_KEYS
    # The secret manager's entry is named after the tenant's namespace.
    assert {item["remoteRef"]["key"] for item in spec["data"]} == {"finance-tenant1"}
    assert not [obj for obj in objects if obj["kind"] == "Secret"]
    for obj in objects:
        if obj["apiVersion"].split("/")[0] not in CUSTOM_RESOURCE_GROUPS:  # no CRD schemas, as above
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_port_is_annotated_for_scraping_and_never_routed_by_an_ingress(tenant):
    deployment = tenant.one("Deployment", "finance-api")
    template = deployment["spec"]["template"]
    (api,) = template["spec"]["containers"]
    container_port = next(port["containerPort"] for port in api["ports"] if port["name"] == "metrics")
    # gunicorn serves the metrics on METRICS_PORT, left at its default by the settings.
    assert container_port == DEFAULT_METRICS_PORT
    assert "METRICS_PORT" not in tenant.generated("finance-settings")["data"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(container_port)
    assert annotations["prometheus.io/path"] == METRICS_PATH

    service = tenant.one("Service", "finance-api")
    (metrics,) = [port for port in service["spec"]["ports"] if port["name"] == "metrics"]
    assert metrics["targetPort"] == "metrics"
    metrics_ports = {"metrics", metrics["port"], container_port}
    for ingress in tenant.of_kind("Ingress"):
        backends = [path["backend"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
        backends += [ingress["spec"]["defaultBackend"]] if "defaultBackend" in ingress["spec"] else []
        for backend in backends:
            port = backend["service"]["port"]
            assert not {port.get("name"), port.get("number")} & metrics_ports, f"{ref(ingress)} routes the metrics"

    # Only the monitoring namespace reaches the metrics port, and only it.
    allowed = traffic_allowed(tenant.of_kind("NetworkPolicy"))
    to_metrics = {(peer, port) for direction, selected, peer, _, port in allowed
                  if direction == "ingress" and selected == "finance-api" and port == container_port}
    assert to_metrics == {("monitoring/*", container_port)}
    assert ("ingress", "finance-api", "ingress-nginx/ingress-nginx", "TCP", container_port) not in allowed


def test_service_monitor_component_scrapes_the_metrics_port(tmp_path):
    # A copy of tenant1's overlay with the component enabled, as its kustomization tells an operator.
    shutil.copytree(KUBERNETES_DIR, tmp_path / "kubernetes")
    overlay = tmp_path / "tenants" / "tenant1"
    shutil.copytree(TENANTS_DIR / "tenant1", overlay)
    with (overlay / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(f"components:\n  - {SERVICE_MONITOR_COMPONENT}\n")
    objects = render_directory(overlay)

    plain = _rendered("tenant1")
    assert {ref(obj) for obj in objects} - {ref(obj) for obj in plain} == {"ServiceMonitor/finance-api"}
    assert [obj for obj in objects if obj["kind"] != "ServiceMonitor"] == list(plain), "nothing else changes"
    (monitor,) = [obj for obj in objects if obj["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "finance-tenant1"
    assert monitor["metadata"]["labels"][TENANT_LABEL] == "tenant1"
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels", "jobLabel"}
    # It selects the API's Service, and only it, in its own namespace.
    selector = spec["selector"]["matchLabels"]
    services = [obj for obj in objects if obj["kind"] == "Service"]
    api_service = next(service for service in services if service["metadata"]["name"] == "finance-api")
    assert [s["metadata"]["name"] for s in services if selector.items() <= s["metadata"]["labels"].items()] == [
        "finance-api"
    ]
    assert "namespaceSelector" not in spec or spec["namespaceSelector"] == {"matchNames": ["finance-tenant1"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics" and "metrics" in {port["name"] for port in api_service["spec"]["ports"]}
    assert endpoint.get("path", "/metrics") == METRICS_PATH
    assert endpoint.get("scheme", "http") == "http"
    interval, timeout = (int(endpoint[key].rstrip("s")) for key in ("interval", "scrapeTimeout"))
    assert 0 < timeout <= interval
    assert set(spec.get("targetLabels", [])) <= set(api_service["metadata"]["labels"])
    for obj in objects:
        if obj["apiVersion"].split("/")[0] not in CUSTOM_RESOURCE_GROUPS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- continuous archiving and backups with pgBackRest ---------------------------------------------


def env_map(container: dict) -> dict[str, dict]:
    return {variable["name"]: variable for variable in container.get("env", [])}


def pgbackrest_settings(tenant: Render) -> dict[str, str]:
    return tenant.generated("pgbackrest-settings")["data"]


def test_postgres_archives_every_wal_segment_with_pgbackrest_within_the_archive_timeout(tenant):
    container = postgres_container(tenant)
    args = container["args"]
    assert args[0] == "postgres" and all(flag == "-c" for flag in args[1::2]), args
    settings = dict(setting.split("=", 1) for setting in args[2::2])
    assert settings["wal_level"] == "replica" and settings["archive_mode"] == "on"
    # The manifests' promise and the local stack's are one figure.
    assert int(settings["archive_timeout"]) == localstack.ARCHIVE_TIMEOUT_SECONDS == 60
    command = settings["archive_command"].split()
    assert command[0] == "pgbackrest" and command[-2:] == ["archive-push", "%p"], command
    # The server's environment is archive-push's: the repository's settings and secrets, and the
    # data directory that the relative %p starts from.
    env = env_map(container)
    assert env["PGBACKREST_PG1_PATH"]["value"] == env["PGDATA"]["value"]
    for key in PGBACKREST_SECRET_KEYS:
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": key}
    settings_map = tenant.generated("pgbackrest-settings")["metadata"]["name"]
    assert container["envFrom"] == [{"configMapRef": {"name": settings_map}}]


def test_the_repository_is_the_tenants_own_encrypted_s3_path_with_its_retention(tenant):
    settings = pgbackrest_settings(tenant)
    assert settings["PGBACKREST_REPO1_TYPE"] == "s3"
    assert settings["PGBACKREST_REPO1_CIPHER_TYPE"] == "aes-256-cbc"
    assert settings["PGBACKREST_REPO1_PATH"] == f"/finance/{tenant.name}"
    assert settings["PGBACKREST_REPO1_RETENTION_FULL_TYPE"] == "time"
    assert 1 <= int(settings["PGBACKREST_REPO1_RETENTION_FULL"]) <= onboard_tenant.MAX_RETENTION_DAYS
    assert settings["PGBACKREST_REPO1_S3_URI_STYLE"] in onboard_tenant.URI_STYLES
    assert settings["PGBACKREST_STANZA"] == "finance"
    # The tenant's backup.env fills in every placeholder of the base.
    backup_env = read_env_file(TENANTS_DIR / tenant.name / "backup.env")
    assert backup_env.items() <= settings.items()
    for key in ("PGBACKREST_REPO1_S3_ENDPOINT", "PGBACKREST_REPO1_S3_BUCKET", "PGBACKREST_REPO1_S3_REGION"):
        assert key in backup_env and "invalid" not in settings[key] and "set-by" not in settings[key], key
    assert not SECRET_LIKE_NAME.search(" ".join(settings)), "secrets belong in the Secret"


def test_two_tenants_never_share_a_repository():
    repositories = {}
    for name in TENANT_NAMES:
        settings = Render(name, _rendered(name)).generated("pgbackrest-settings")["data"]
        where = (settings["PGBACKREST_REPO1_S3_ENDPOINT"], settings["PGBACKREST_REPO1_S3_BUCKET"],
                 settings["PGBACKREST_REPO1_PATH"])
        assert repositories.setdefault(where, name) == name, f"{where} is both {repositories[where]}'s and {name}'s"


@pytest.mark.parametrize(("name", "backup_type"), [("postgres-backup-full", "full"), ("postgres-backup-diff", "diff")])
def test_backups_reach_the_data_directory_through_pgbackrests_tls_server(tenant, name, backup_type):
    cronjob = tenant.one("CronJob", name)
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_template(cronjob)["spec"]
    assert pod_template(cronjob)["metadata"]["labels"]["app.kubernetes.io/name"] == "pgbackrest-backup"
    (job,) = pod["containers"]
    assert image_ref(job["image"])[0] == POSTGRES_IMAGE
    # The stanza first (idempotent), then the backup.
    script = job["command"][-1]
    assert job["command"][:2] == ["sh", "-c"]
    assert script.index("pgbackrest stanza-create") < script.index(f"pgbackrest backup --type={backup_type}")

    env = env_map(job)
    settings_map = tenant.generated("pgbackrest-settings")["metadata"]["name"]
    assert job["envFrom"] == [{"configMapRef": {"name": settings_map}}]
    for key in PGBACKREST_SECRET_KEYS:
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": key}

    # The database host is the postgres pod's TLS server, by the name its certificate carries.
    statefulset = tenant.one("StatefulSet", "postgres")
    server = postgres_container(tenant, "pgbackrest")
    server_env = {key: variable["value"] for key, variable in env_map(server).items()}
    assert server["command"] == ["pgbackrest", "server"]
    assert env["PGBACKREST_PG1_HOST_TYPE"]["value"] == "tls"
    pod_host = f"{statefulset['metadata']['name']}-0.{statefulset['spec']['serviceName']}"
    assert env["PGBACKREST_PG1_HOST"]["value"] == pod_host == onboard_tenant.TLS_SERVER_HOST
    (port,) = server["ports"]
    assert int(env["PGBACKREST_PG1_HOST_PORT"]["value"]) == port["containerPort"]
    assert port["containerPort"] == int(server_env["PGBACKREST_TLS_SERVER_PORT"])
    assert env["PGBACKREST_PG1_PATH"]["value"] == env_value(postgres_container(tenant), "PGDATA")
    # The server admits the jobs' certificate, for the tenant's stanza only.
    stanza = pgbackrest_settings(tenant)["PGBACKREST_STANZA"]
    assert server_env["PGBACKREST_TLS_SERVER_AUTH"] == f"{onboard_tenant.TLS_CLIENT_CN}={stanza}"

    # Certificates from the Secret pgbackrest-tls: the client's here, the server's there.
    def tls_files(container: dict, pod_spec: dict, prefix: str) -> dict[str, str]:
        (volume,) = [v for v in pod_spec["volumes"] if v.get("secret", {}).get("secretName") == TLS_SECRET_NAME]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"] is True
        paths = {f"{mount['mountPath']}/{item['path']}": item["key"] for item in volume["secret"]["items"]}
        return {key: paths[variable["value"]] for key, variable in env_map(container).items() if key.startswith(prefix)
                and key.endswith("_FILE")}

    assert tls_files(job, pod, "PGBACKREST_PG1_HOST_") == {
        "PGBACKREST_PG1_HOST_CA_FILE": "ca.crt", "PGBACKREST_PG1_HOST_CERT_FILE": "client.crt",
        "PGBACKREST_PG1_HOST_KEY_FILE": "client.key",
    }
    assert tls_files(server, statefulset["spec"]["template"]["spec"], "PGBACKREST_TLS_SERVER_") == {
        "PGBACKREST_TLS_SERVER_CA_FILE": "ca.crt", "PGBACKREST_TLS_SERVER_CERT_FILE": "server.crt",
        "PGBACKREST_TLS_SERVER_KEY_FILE": "server.key",
    }
    # The sidecar reads the data directory and the server's socket, and may not write the data.
    mounts = {mount["name"]: mount for mount in server["volumeMounts"]}
    assert mounts["data"]["readOnly"] is True
    assert mounts["run"]["mountPath"] == env["PGBACKREST_PG1_SOCKET_PATH"]["value"]
    # No token in the job's pod: it needs no Kubernetes API, no pods/exec.
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod


def test_full_backups_are_weekly_differential_ones_daily_and_the_drill_follows_the_full(tenant):
    def fields(name):
        schedule = tenant.one("CronJob", name)["spec"]
        assert schedule["timeZone"] == "Etc/UTC"
        minute, hour, day, month, weekday = schedule["schedule"].split()
        assert (day, month) == ("*", "*")
        return int(minute), int(hour), weekday

    full, diff, drill = fields("postgres-backup-full"), fields("postgres-backup-diff"), fields("restore-drill")
    assert full[2] == "0" and diff[2] == "1-6", "a full backup on Sundays, a differential one every other day"
    assert full[:2] == diff[:2]
    assert drill[2] == full[2] and drill[:2] > full[:2], "the drill restores the week's full backup"


def test_restore_drill_restores_into_a_scratch_directory_and_runs_the_shared_check(tenant):
    cronjob = tenant.one("CronJob", "restore-drill")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    pod = pod_template(cronjob)["spec"]
    (drill,) = pod["containers"]
    assert image_ref(drill["image"])[0] == POSTGRES_IMAGE
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in drill["volumeMounts"]}
    env = {key: variable.get("value") for key, variable in env_map(drill).items()}
    # The scratch data directory is an emptyDir of its own pod: never the tenant's volume.
    pgdata_volume = mounts[str(Path(env["DRILL_PGDATA"]).parent)]
    assert "emptyDir" in volumes[pgdata_volume]
    assert not [v for v in volumes.values() if "persistentVolumeClaim" in v or "secret" in v]
    # The script and the check come from the ConfigMap generated from the files, unchanged.
    scripts = tenant.generated("restore-drill-scripts")
    assert scripts["data"] == {
        "restore-drill.sh": DRILL_SCRIPT.read_text(), "restore-drill-check.sql": DRILL_CHECK.read_text(),
    }
    (scripts_dir,) = [path for path, name in mounts.items()
                      if volumes[name].get("configMap", {}).get("name") == scripts["metadata"]["name"]]
    assert drill["command"] == ["sh", f"{scripts_dir}/restore-drill.sh"]
    assert env["DRILL_CHECK"] == f"{scripts_dir}/restore-drill-check.sql"
    assert env["DRILL_DATABASE"] == env_value(postgres_container(tenant), "APP_DB")
    for key in PGBACKREST_SECRET_KEYS:
        assert env_map(drill)[key]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": key}
    # The newest migration comes from the app image the tenant runs.
    (newest,) = pod["initContainers"]
    assert newest["image"] == tenant.pod_spec("Deployment", "finance-api")["containers"][0]["image"]
    written = re.search(r"> (\S+)", newest["command"][-1]).group(1)
    assert newest["command"][-1].endswith(f"test -s {written}"), "no migration found fails the drill"
    assert written == env["DRILL_NEWEST_MIGRATION_FILE"]
    # The restored server must never archive into the tenant's repository.
    assert "--archive-mode=off" in DRILL_SCRIPT.read_text() and "archive_mode=off" in DRILL_SCRIPT.read_text()


def test_the_postgres_image_is_the_pinned_postgres_with_pgbackrest():
    kustomization = yaml.safe_load((KUSTOMIZATION_FILE).read_text())
    postgres = next(image for image in kustomization["images"] if image["name"] == "postgres")
    assert postgres_base_image() == f"postgres:{postgres['newTag']}@{postgres['digest']}"
    ours = next(image for image in kustomization["images"] if image["name"] == "finance-postgres")
    assert ours["newName"] == POSTGRES_IMAGE and "digest" not in ours  # deploy.yml adds it
    dockerfile = POSTGRES_DOCKERFILE.read_text()
    assert re.search(r"^RUN apk add --no-cache pgbackrest=\d+\.\d+(\.\d+)?-r\d+$", dockerfile, re.M)


# --- the backup script ----------------------------------------------------------------------------


def run_backup(tmp_path: Path, backups: Path, *, keep: str = "3", dump_fails: bool = False):
    """Run postgres-backup.sh with stand-ins for pg_dump and pg_restore."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pg_dump").write_text(
        "#!/bin/sh\n"
        # Anything but the custom format (the one pg_restore --clean can restore selectively) fails.
        'case " $* " in *" --format=custom "*) ;; *) exit 3;; esac\n'
        'for arg; do case $arg in --file=*) printf PGDMP > "${arg#--file=}";; esac; done\n'
        + ("exit 1\n" if dump_fails else "")
    )
    (bin_dir / "pg_restore").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BACKUP_DIR": str(backups), "BACKUP_KEEP": keep}
    return subprocess.run(["sh", str(BACKUP_SCRIPT)], env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def backups(tmp_path) -> Path:
    """A backup folder with five old dumps, a stale partial one and an unrelated file."""
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in range(1, 6):
        (folder / f"finance-2020010{day}T021700Z.dump").write_text("old")
    (folder / ".finance-20200106T021700Z.dump.partial").write_text("cut short")
    (folder / "lost+found").mkdir()
    return folder


def test_backup_keeps_the_newest_dumps(tmp_path, backups):
    result = run_backup(tmp_path, backups, keep="3")
    assert result.returncode == 0, result.stderr
    dumps = sorted(path.name for path in backups.glob("finance-*.dump"))
    assert len(dumps) == 3
    assert dumps[:2] == ["finance-20200104T021700Z.dump", "finance-20200105T021700Z.dump"]
    assert (backups / dumps[2]).read_text() == "PGDMP"
    assert not list(backups.glob(".*.partial")) and (backups / "lost+found").is_dir()


def test_failed_backup_removes_nothing_and_leaves_no_dump(tmp_path, backups):
    result = run_backup(tmp_path, backups, keep="1", dump_fails=True)
    assert result.returncode != 0
    assert len(list(backups.glob("finance-*.dump"))) == 5


@pytest.mark.parametrize("keep", ["0", "x", "-1", "07"])
def test_backup_refuses_a_bad_keep_count(tmp_path, backups, keep):
    result = run_backup(tmp_path, backups, keep=keep)
    assert result.returncode == 2 and "BACKUP_KEEP" in result.stderr
    assert len(list(backups.glob("finance-*.dump"))) == 5
