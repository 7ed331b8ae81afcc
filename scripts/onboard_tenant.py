"""Scaffold a tenant's overlay in tenants/NAME, render and validate it; with --apply, deploy it.

    scripts/onboard-tenant acme --host acme.finance.example.com [--currency EUR]
        [--timezone Europe/Paris] [--replicas 2] [--apply] [--force]

The overlay is written to a hidden folder of tenants/, rendered with `kubectl kustomize` and
validated against the Kubernetes schemas there, and only then renamed to tenants/NAME, so a
failure leaves nothing behind. --apply then creates the tenant's Secret in the current
cluster (random values; an existing one is kept, and only given the keys it lacks), applies the
overlay and waits for the database and the app to roll out.
"""

import argparse
import importlib.util
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import available_timezones

import tenancy
from tenancy import StepError, UsageError

ROOT = Path(__file__).resolve().parent.parent

FIRST_LOCAL_PORT = 8001
# Two at least: the PodDisruptionBudget keeps one pod up, so a single replica could never be
# evicted for a node drain. The autoscaler's maxReplicas in the base caps the other end.
MIN_REPLICAS = 2
MAX_REPLICAS = 20
ROLLOUT_TIMEOUT = "5m"
# The signing key, the app's database password (URL-safe: it goes into DATABASE_URL), the
# PostgreSQL superuser's and the backup role's passwords (kubernetes/base/postgres-init.sh).
SECRET_KEYS = ("JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD")
SECRET_BYTES = 48  # token_urlsafe(48) is 64 characters; the service wants at least 32 bytes
FILES = ("kustomization.yaml", "tenant.env", "local.env", "postman_environment.json")

KUSTOMIZATION = """\
# Tenant {name}: its namespace, host, replica count and settings; everything else is the base.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {namespace}
resources:
  - ../../kubernetes/base
labels:
  - pairs:
      {label}: {name}
configMapGenerator:
  - name: finance-settings
    behavior: merge
    envs:
      - tenant.env
    literals:
      - TENANT_ID={name}
replicas:
  - name: finance-api
    count: {replicas}
patches:
  # Every Ingress of the base (the app's, the /login one, the Swagger UI files') serves the tenant's host.
  - target:
      kind: Ingress
    patch: |-
      - op: replace
        path: /spec/rules/0/host
        value: {host}
      - op: replace
        path: /spec/tls/0/hosts/0
        value: {host}
"""


@dataclass(frozen=True)
class Tenant:
    name: str
    host: str
    currency: str
    timezone: str
    replicas: int

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = tenancy.ArgumentParser(
        prog="onboard-tenant", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the tenant, a DNS label; its namespace is finance-NAME")
    parser.add_argument("--host", required=True, help="the tenant's public host name, e.g. acme.finance.example.com")
    parser.add_argument("--currency", default="USD", help="ISO 4217 code shown with every amount (default USD)")
    parser.add_argument("--timezone", default="UTC", help="IANA time zone of the tenant's calendar (default UTC)")
    parser.add_argument(
        "--replicas", type=int, default=MIN_REPLICAS, help=f"app replicas, at least {MIN_REPLICAS} (the default)"
    )
    parser.add_argument("--apply", action="store_true", help="create the Secret, apply to the current cluster, wait")
    parser.add_argument("--force", action="store_true", help="replace an existing tenant's overlay")
    return parser.parse_args(argv)


def check_host(host: str) -> str:
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(tenancy.DNS_LABEL.match(label) for label in labels):
        raise UsageError(
            "--host must be a lowercase DNS name of two or more labels, without scheme, port or path "
            f"(e.g. acme.finance.example.com), got {host!r}"
        )
    if labels[-1].isdigit():
        raise UsageError(f"--host must be a DNS name, not an IP address, got {host!r}")
    return host


def iso_4217() -> frozenset[str]:
    """The service's currency codes, loaded from its file without importing the whole app package."""
    spec = importlib.util.spec_from_file_location("finance_currencies", ROOT / "service" / "currencies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ISO_4217


def host_owner(host: str) -> str | None:
    """The tenant whose overlay already routes this host, if any."""
    pattern = re.compile(rf"^\s*value: {re.escape(host)}\s*$", re.MULTILINE)
    for directory in tenancy.tenant_dirs():
        kustomization = directory / "kustomization.yaml"
        if kustomization.exists() and pattern.search(kustomization.read_text()):
            return directory.name
    return None


def check_inputs(args: argparse.Namespace) -> Tenant:
    """The validated tenant to write; UsageError on the first bad input."""
    name = tenancy.check_name(args.name)
    host = check_host(args.host)
    currency = args.currency.strip().upper()
    if currency not in iso_4217():
        raise UsageError(f"--currency must be an ISO 4217 code in circulation, such as EUR, got {args.currency!r}")
    if args.timezone not in available_timezones():
        raise UsageError(f"--timezone must be an IANA time zone such as Europe/Paris, got {args.timezone!r}")
    if not MIN_REPLICAS <= args.replicas <= MAX_REPLICAS:
        raise UsageError(f"--replicas must be between {MIN_REPLICAS} and {MAX_REPLICAS}, got {args.replicas}")
    if tenancy.tenant_dir(name).exists() and not args.force:
        raise UsageError(f"tenant {name!r} already exists in tenants/{name}; pass --force to replace its overlay")
    owner = host_owner(host)
    if owner not in (None, name):
        raise UsageError(f"host {host!r} is already used by tenant {owner!r}")
    return Tenant(name, host, currency, args.timezone, args.replicas)


def local_port(name: str) -> int:
    """The tenant's port for `make run`: its current one, or the next past every tenant's."""
    ports = {}
    for directory in tenancy.tenant_dirs():
        local_env = directory / "local.env"
        if local_env.exists():
            match = re.search(r"^\s*LOCAL_PORT\s*=\s*(\d+)\s*$", local_env.read_text(), re.MULTILINE)
            if match:
                ports[directory.name] = int(match.group(1))
    return ports.get(name) or max([FIRST_LOCAL_PORT - 1, *ports.values()]) + 1


def postman_environment(name: str, base_url: str) -> str:
    """A Postman environment (v2.1 export format) with the tenant's base URL and an empty token.

    The id is derived from the name, so re-importing replaces the environment instead of adding one.
    """
    environment = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"finance-tenant:{name}")),
        "name": f"finance {name}",
        "values": [
            {"key": "baseUrl", "value": base_url, "type": "default", "enabled": True},
            {"key": "token", "value": "", "type": "secret", "enabled": True},
        ],
        "_postman_variable_scope": "environment",
    }
    return json.dumps(environment, indent=2) + "\n"


def overlay_files(tenant: Tenant, port: int) -> dict[str, str]:
    return {
        "kustomization.yaml": KUSTOMIZATION.format(
            namespace=tenancy.namespace(tenant.name), label=tenancy.TENANT_LABEL, name=tenant.name,
            replicas=tenant.replicas, host=tenant.host,
        ),
        "tenant.env": f"TENANT_CURRENCY={tenant.currency}\nTENANT_TIMEZONE={tenant.timezone}\n",
        "local.env": f"LOCAL_PORT={port}\n",
        "postman_environment.json": postman_environment(tenant.name, tenant.base_url),
    }


def check_scaling(tenant: Tenant, objects: list[dict]) -> None:
    """Refuse a replica count above an autoscaler's ceiling: the base gives the autoscaler the same floor."""
    for obj in objects:
        if obj["kind"] == "HorizontalPodAutoscaler" and obj["spec"].get("minReplicas", 1) > obj["spec"]["maxReplicas"]:
            raise UsageError(
                f"--replicas {tenant.replicas} is above the maxReplicas ({obj['spec']['maxReplicas']}) "
                f"of the base's HorizontalPodAutoscaler {obj['metadata']['name']}"
            )


def publish(staging: Path, target: Path) -> None:
    """Move the checked overlay into place; an existing one is replaced only now, by renames."""
    if not target.exists():
        os.rename(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".replaced-{target.name}-", dir=target.parent))
    os.rename(target, retired / target.name)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(retired / target.name, target)
        raise
    shutil.rmtree(retired)


def scaffold(tenant: Tenant) -> list[dict]:
    """Write, render and validate the overlay beside tenants/NAME, then move it there; return the objects."""
    target = tenancy.tenant_dir(tenant.name)
    # Inside tenants/ so that ../../kubernetes/base resolves and the final rename is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".onboard-{tenant.name}-", dir=tenancy.TENANTS_DIR))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for file_name, text in overlay_files(tenant, local_port(tenant.name)).items():
            (staging / file_name).write_text(text)
        # Load the schema validator while kubectl renders: each takes about a third of the run.
        threading.Thread(target=importlib.import_module, args=("kubernetes_validate",), daemon=True).start()
        objects = tenancy.render(staging)
        tenancy.validate(objects)
        check_scaling(tenant, objects)
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return objects


def _kubectl_secret(action: str, namespace: str, args: list[str], values: dict[str, str]) -> bool:
    """Send a manifest or patch holding secret values to kubectl on stdin; False if it already exists.

    The values are never printed nor written to disk, nor left in kubectl's error in our message.
    """
    result = tenancy.kubectl(*args, stdin=json.dumps(values), capture=True, check=False)
    if result.returncode == 0:
        return True
    if "AlreadyExists" in result.stderr:
        return False
    message = result.stderr.strip()
    for value in _secret_values(values):
        message = message.replace(value, "***")
    raise StepError(f"{action} Secret {tenancy.SECRET_NAME} in {namespace} failed: {message}")


def _secret_values(document: dict) -> list[str]:
    data = document.get("stringData", {})
    return [value for value in data.values() if isinstance(value, str)]


def ensure_secret(tenant: Tenant) -> tuple[str, list[str]]:
    """Create the tenant's Secret with fresh random values, or give an existing one the keys it lacks.

    Returns what was done ("created", "completed" or "kept") and the keys written. An existing
    value is never replaced: the database was initialised with it.
    """
    namespace = tenancy.namespace(tenant.name)
    found = tenancy.kubectl(
        "get", "secret", tenancy.SECRET_NAME, "--namespace", namespace, "--ignore-not-found",
        "--output=go-template={{.metadata.name}}{{range $key, $value := .data}} {{$key}}{{end}}",
        capture=True,
    )
    name, *present = found.stdout.split() or [""]
    if name:
        missing = [key for key in SECRET_KEYS if key not in present]
        if not missing:
            return "kept", []
        patch = {"stringData": {key: secrets.token_urlsafe(SECRET_BYTES) for key in missing}}
        _kubectl_secret("completing", namespace, [
            "patch", "secret", tenancy.SECRET_NAME, "--namespace", namespace, "--type=merge",
            "--patch-file=/dev/stdin",
        ], patch)
        return "completed", missing
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": tenancy.SECRET_NAME,
            "namespace": namespace,
            "labels": {tenancy.TENANT_LABEL: tenant.name},
        },
        "type": "Opaque",
        "stringData": {key: secrets.token_urlsafe(SECRET_BYTES) for key in SECRET_KEYS},
    }
    if _kubectl_secret("creating", namespace, ["create", "--filename", "-"], manifest):
        return "created", list(SECRET_KEYS)
    return "kept", []  # created by someone else since the check: keep theirs


def deploy(tenant: Tenant, objects: list[dict]) -> None:
    """Namespace, then Secret (if absent), then the whole overlay; wait for PostgreSQL and the app."""
    namespace = tenancy.namespace(tenant.name)
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
    if not namespaces:
        raise StepError(f"the overlay renders no Namespace {namespace} to hold the Secret")
    # The Secret needs its namespace, created with the labels of the base (pod security) first.
    tenancy.kubectl("apply", "--filename", "-", stdin=json.dumps(namespaces[0]))
    done, keys = ensure_secret(tenant)
    if done == "created":
        print(f"created Secret {tenancy.SECRET_NAME} in {namespace} ({', '.join(keys)}, random)", flush=True)
    elif done == "completed":
        print(f"added {', '.join(keys)} (random) to the existing Secret {tenancy.SECRET_NAME} in {namespace}",
              flush=True)
    else:
        print(f"kept the existing Secret {tenancy.SECRET_NAME} in {namespace}", flush=True)
    tenancy.kubectl("apply", "--kustomize", str(tenancy.tenant_dir(tenant.name)))
    for workload in ("statefulset/postgres", "deployment/finance-api"):
        tenancy.kubectl("rollout", "status", workload, "--namespace", namespace, f"--timeout={ROLLOUT_TIMEOUT}")


def report_written(tenant: Tenant, object_count: int) -> None:
    print(tenant.base_url)
    print(f"wrote tenants/{tenant.name}/: {', '.join(FILES)}")
    print(f"rendered {object_count} objects, valid against the Kubernetes {tenancy.KUBERNETES_VERSION} schemas")


def report_next_steps(tenant: Tenant, applied: bool) -> None:
    relative = f"tenants/{tenant.name}"
    if applied:
        print(f"deployed to namespace {tenancy.namespace(tenant.name)}; both rollouts are complete")
        print(f"next: commit {relative}/ so the deploy workflow keeps applying it")
        return
    again = (
        f"scripts/onboard-tenant {tenant.name} --host {tenant.host} --currency {tenant.currency} "
        f"--timezone {tenant.timezone} --replicas {tenant.replicas} --apply --force"
    )
    print("next steps:")
    print(f"  deploy: {again}")
    print("          (creates its Secret if absent, applies the overlay, waits for both rollouts)")
    print(f"  local:  make run   (serves {tenant.name} at http://127.0.0.1:{local_port(tenant.name)})")
    print(f"  commit: git add {relative}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tenant = check_inputs(args)
        objects = scaffold(tenant)
    except UsageError as error:
        print(f"onboard-tenant: error: {error}", file=sys.stderr)
        return 2
    except StepError as error:
        print(f"onboard-tenant: {error}; nothing was written", file=sys.stderr)
        return 1
    report_written(tenant, len(objects))
    if args.apply:
        sys.stdout.flush()  # before kubectl's own output
        try:
            deploy(tenant, objects)
        except StepError as error:
            print(f"onboard-tenant: {error}", file=sys.stderr)
            retry = f"the overlay is in tenants/{tenant.name}; fix the cause and re-run with --apply --force"
            print(retry, file=sys.stderr)
            return 1
    report_next_steps(tenant, args.apply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
