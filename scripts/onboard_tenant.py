"""Scaffold a tenant's overlay in tenants/NAME, render and validate it; with --apply, deploy it.

    scripts/onboard-tenant acme --host acme.finance.example.com [--currency EUR]
        [--timezone Europe/Paris] [--replicas 2] [--backup-endpoint HOST[:PORT]]
        [--backup-bucket BUCKET] [--backup-region REGION] [--backup-uri-style host|path]
        [--backup-retention-days 14] [--apply] [--force]
    scripts/onboard-tenant acme --force [only the options to change] [--apply]

The overlay is written to a hidden folder of tenants/, rendered with `kubectl kustomize` and
validated against the Kubernetes schemas there, and only then renamed to tenants/NAME, so a
failure leaves nothing behind. The --backup-* options describe the tenant's pgBackRest repository
(backup.env; its path is /finance/NAME).

--force rewrites an existing tenant's overlay: an option not given keeps the tenant's current value
(host and replicas from kustomization.yaml, settings from tenant.env, repository from backup.env;
local.env as it is), so --host is only needed for a new tenant. What was added to the overlay by
hand stays: its components, its image tags and every patch but the two onboarding writes (the
Ingress host, the object store's port). It prints each setting that changed, each file rewritten
beyond that, or that nothing changed.

Beside the overlay it writes the tenant's Postman environments: postman_environment.json (its
public host) and postman_environment.local.json (its `make run` port). A local-only tenant
(LOCAL_ONLY=true in local.env: the demo tenants) gets the local one only, and is never deployed.

--apply then creates the tenant's Secret in the current cluster (random passwords; the
repository's cipher pass from FINANCE_BACKUP_CIPHER_PASS, and the object store's credentials from
FINANCE_BACKUP_S3_KEY and FINANCE_BACKUP_S3_KEY_SECRET; an existing Secret is kept, and only given
the keys it lacks) and its pgBackRest certificates (the Secret pgbackrest-tls, made once), applies
the overlay, waits for the database and the app to roll out, and starts the first pgBackRest backup
when the Secret's backup keys are new. When a key the Secret lacks needs a variable that is not set
(or a cipher pass of fewer than 32 characters), --apply refuses before writing anything.

The cipher pass is made once per tenant (e.g. `openssl rand -base64 48`) and kept in the team's
secret manager, outside the cluster: without it the tenant's backups cannot be read.
"""

import argparse
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import available_timezones

import tenancy
from tenancy import StepError, UsageError

# Two at least: the PodDisruptionBudget keeps one pod up, so a single replica could never be
# evicted for a node drain. The autoscaler's maxReplicas in the base caps the other end.
MIN_REPLICAS = 2
MAX_REPLICAS = 20
ROLLOUT_TIMEOUT = "5m"
# Generated at random: the signing key, the app's database password (URL-safe: it goes into
# DATABASE_URL), the PostgreSQL superuser's and the backup role's passwords
# (kubernetes/base/postgres-init.sh). All of them can be replaced should the cluster be lost.
RANDOM_KEYS = ("JWT_SECRET", "POSTGRES_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD", "BACKUP_PASSWORD")
# The pass pgBackRest encrypts the tenant's repository with, and the object store's credentials for
# it: given, never generated, and never on a command line (ps and shell histories see those): each
# from the environment variable named here. The pass must outlive the cluster, whose loss is what the
# repository is for, so the operator makes it and keeps it in the team's secret manager.
CIPHER_PASS_KEY = "PGBACKREST_REPO1_CIPHER_PASS"  # noqa: S105 - the key's name, not a value
CIPHER_PASS_VARIABLE = "FINANCE_BACKUP_CIPHER_PASS"  # noqa: S105 - the variable's name, not a value
MIN_CIPHER_PASS_LENGTH = 32
GIVEN_KEYS = {
    CIPHER_PASS_KEY: CIPHER_PASS_VARIABLE,
    "PGBACKREST_REPO1_S3_KEY": "FINANCE_BACKUP_S3_KEY",
    "PGBACKREST_REPO1_S3_KEY_SECRET": "FINANCE_BACKUP_S3_KEY_SECRET",
}
SECRET_KEYS = (*RANDOM_KEYS, *GIVEN_KEYS)
CIPHER_PASS_HELP = (
    f"make one once, e.g. {CIPHER_PASS_VARIABLE}=\"$(openssl rand -base64 48)\", and keep it in the team's "
    "secret manager, outside the cluster: without it the tenant's backups cannot be read"
)
SECRET_BYTES = 48  # token_urlsafe(48) is 64 characters; the service wants at least 32 bytes
# The API groups of the custom resources the optional components of kubernetes/components add.
CUSTOM_RESOURCE_GROUPS = frozenset({"external-secrets.io", "monitoring.coreos.com"})
DEFAULT_CURRENCY = "USD"
DEFAULT_TIMEZONE = "UTC"
# The Postman environments: the public host's (deployed tenants only) and `make run`'s.
POSTMAN_ENVIRONMENT = "postman_environment.json"
POSTMAN_LOCAL_ENVIRONMENT = "postman_environment.local.json"
# Shown for a setting that a tenant's files lack (a backup.env without a storage port).
UNSET = "(none)"

# pgBackRest's certificates (kubernetes/base/postgres.yaml): a CA of the tenant's own signs the TLS
# server's certificate, named as the backup jobs reach it, and the jobs' client certificate, whose
# CN the server authorises. The CA's key is thrown away once both are signed, so no one can sign
# another; to renew them, delete the Secret and run onboard-tenant --apply again.
TLS_SECRET_NAME = "pgbackrest-tls"  # noqa: S105 - the Secret's name, not a value
TLS_SERVER_HOST = "postgres-0.postgres"
TLS_CLIENT_CN = "pgbackrest-backup"
TLS_DAYS = 3650
TLS_FILES = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
# Started after the apply that gave the Secret its backup keys: stanza-create and the first full
# backup, so WAL leaves the cluster from the first day, not after the first scheduled backup.
FIRST_BACKUP_JOB = "postgres-backup-first"

# The variables of backup.env that onboarding writes from its options.
BACKUP_KEYS = (
    "PGBACKREST_REPO1_S3_ENDPOINT", "PGBACKREST_REPO1_STORAGE_PORT", "PGBACKREST_REPO1_S3_BUCKET",
    "PGBACKREST_REPO1_S3_REGION", "PGBACKREST_REPO1_S3_URI_STYLE", "PGBACKREST_REPO1_PATH",
    "PGBACKREST_REPO1_RETENTION_FULL",
)
DEFAULT_BACKUP_BUCKET = "finance-backups"
DEFAULT_BACKUP_REGION = "us-east-1"
DEFAULT_RETENTION_DAYS = 14
MAX_RETENTION_DAYS = 3650
URI_STYLES = ("host", "path")

KUSTOMIZATION = """\
# Tenant {name}: its namespace, host, replica count and settings; everything else is the base.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {namespace}
resources:
  - ../../kubernetes/base
{components}labels:
  - pairs:
      {label}: {name}
configMapGenerator:
  - name: finance-settings
    behavior: merge
    envs:
      - tenant.env
    literals:
      - TENANT_ID={name}
  # The tenant's pgBackRest repository: object store, bucket, path, retention.
  - name: pgbackrest-settings
    behavior: merge
    envs:
      - backup.env
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
{extra_patches}"""

# Only for an object store on another port than HTTPS's.
OBJECT_STORE_PORT_PATCH = """\
  # The object store's port, instead of the base's 443, for the pods that reach the repository.
  - target:
      kind: NetworkPolicy
      name: object-store
    patch: |-
      - op: replace
        path: /spec/egress/0/ports/0/port
        value: {port}
"""


# A kustomization's `images:` entries, each as its (key, value) pairs in order.
Images = tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True)
class Backup:
    """Where the tenant's pgBackRest repository lives, and how long it keeps backups."""

    endpoint: str
    port: int | None  # None: HTTPS's 443
    bucket: str
    region: str
    uri_style: str
    retention_days: int
    # Lines of the tenant's backup.env that onboarding does not write (a setting added by hand,
    # such as PGBACKREST_REPO1_STORAGE_VERIFY_TLS): kept as they are.
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Overlay:
    """What onboarding writes to tenants/NAME: the tenant (its settings and local port), its host,
    replica count and pgBackRest repository."""

    tenant: tenancy.Tenant
    host: str
    replicas: int
    backup: Backup
    # The optional features of kubernetes/components the overlay uses, added by hand (README).
    components: tuple[str, ...] = ()
    # The overlay's `images:` entries (the app image's tag that scripts/fleet upgrade wrote), kept.
    images: Images = ()
    # The overlay's other `patches:` entries (an imagePullSecrets patch added by hand,
    # docs/operations.md), as YAML list items under `patches:`, kept.
    patches: str = ""

    @property
    def name(self) -> str:
        return self.tenant.name

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def repository_path(self) -> str:
        return f"/finance/{self.name}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = tenancy.ArgumentParser(
        prog="onboard-tenant", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the tenant, a DNS label; its namespace is finance-NAME")
    # No option has a default here: with --force, one not given keeps the tenant's current value
    # (check_inputs); the defaults below are a new tenant's.
    parser.add_argument(
        "--host", help="the tenant's public host name, e.g. acme.finance.example.com (required for a new tenant)"
    )
    parser.add_argument(
        "--currency", help=f"ISO 4217 code shown with every amount (default {DEFAULT_CURRENCY})"
    )
    parser.add_argument(
        "--timezone", help=f"IANA time zone of the tenant's calendar (default {DEFAULT_TIMEZONE})"
    )
    parser.add_argument(
        "--replicas", type=int, help=f"app replicas, at least {MIN_REPLICAS} (the default)"
    )
    parser.add_argument(
        "--backup-endpoint", metavar="HOST[:PORT]",
        help="the S3-compatible object store of the tenant's pgBackRest repository "
             "(default s3.<region>.amazonaws.com; port 443 unless given)",
    )
    parser.add_argument("--backup-bucket", help=f"its bucket (default {DEFAULT_BACKUP_BUCKET})")
    parser.add_argument("--backup-region", help=f"its region (default {DEFAULT_BACKUP_REGION})")
    parser.add_argument(
        "--backup-uri-style", choices=URI_STYLES,
        help="host: bucket.endpoint (AWS; the default), path: endpoint/bucket (MinIO and most others)",
    )
    parser.add_argument(
        "--backup-retention-days", type=int, metavar="DAYS",
        help=f"days of point-in-time recovery the repository keeps (default {DEFAULT_RETENTION_DAYS})",
    )
    parser.add_argument(
        "--apply", action="store_true", help="create the Secrets, apply to the current cluster, wait, back up"
    )
    parser.add_argument(
        "--force", action="store_true",
        help="rewrite an existing tenant's overlay: the options given change, the others keep their current value",
    )
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
    spec = importlib.util.spec_from_file_location("finance_currencies", tenancy.ROOT / "service" / "currencies.py")
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


def check_endpoint(text: str) -> tuple[str, int | None]:
    host, _, port_text = text.partition(":")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(tenancy.DNS_LABEL.match(label) for label in labels):
        raise UsageError(
            "--backup-endpoint must be a host name and an optional port, without scheme or path "
            f"(e.g. s3.eu-west-1.amazonaws.com or minio.example.com:9000), got {text!r}"
        )
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--backup-endpoint's port must be a number from 1 to 65535, got {port_text!r}")
    return host, None if int(port_text) == 443 else int(port_text)


def check_backup(name: str, args: argparse.Namespace) -> Backup:
    """The tenant's repository settings: each option given, else the tenant's current value, else the default."""
    current = tenancy.read_env_file(tenancy.tenant_dir(name) / "backup.env")  # empty for a new tenant
    region = args.backup_region or current.get("PGBACKREST_REPO1_S3_REGION") or DEFAULT_BACKUP_REGION
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", region):
        raise UsageError(f"--backup-region must be a region name such as eu-west-1, got {region!r}")
    if args.backup_endpoint:
        endpoint, port = check_endpoint(args.backup_endpoint)
    elif "PGBACKREST_REPO1_S3_ENDPOINT" in current:
        endpoint = current["PGBACKREST_REPO1_S3_ENDPOINT"]
        port = int(current["PGBACKREST_REPO1_STORAGE_PORT"]) if "PGBACKREST_REPO1_STORAGE_PORT" in current else None
    else:
        endpoint, port = f"s3.{region}.amazonaws.com", None
    bucket = args.backup_bucket or current.get("PGBACKREST_REPO1_S3_BUCKET") or DEFAULT_BACKUP_BUCKET
    # S3's bucket naming rules, which every S3-compatible store accepts.
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or ".." in bucket:
        raise UsageError(f"--backup-bucket must be an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-'), got {bucket!r}")
    uri_style = args.backup_uri_style or current.get("PGBACKREST_REPO1_S3_URI_STYLE") or URI_STYLES[0]
    days = args.backup_retention_days
    if days is None:
        days = int(current.get("PGBACKREST_REPO1_RETENTION_FULL", DEFAULT_RETENTION_DAYS))
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise UsageError(f"--backup-retention-days must be between 1 and {MAX_RETENTION_DAYS}, got {days}")
    extra = tuple((key, value) for key, value in current.items() if key not in BACKUP_KEYS)
    return Backup(endpoint, port, bucket, region, uri_style, days, extra)


# The `patches:` entries onboarding writes from its settings, by their target and the paths they
# replace: rewritten every time; every other entry of an overlay is kept as it is.
ONBOARDING_PATCHES = (
    ({"kind": "Ingress"}, ["/spec/rules/0/host", "/spec/tls/0/hosts/0"]),
    ({"kind": "NetworkPolicy", "name": "object-store"}, ["/spec/egress/0/ports/0/port"]),
)


def patch_operations(patch: dict) -> list[dict]:
    """The JSON 6902 operations of an inline `patches:` entry ([] for a patch file or a strategic merge)."""
    import yaml

    operations = yaml.safe_load(patch["patch"]) if isinstance(patch.get("patch"), str) else None
    return operations if isinstance(operations, list) and all(isinstance(op, dict) for op in operations) else []


def written_by_onboarding(patch: dict) -> bool:
    """Whether a `patches:` entry is one of the two onboarding writes (ONBOARDING_PATCHES)."""
    operations = patch_operations(patch)
    replaced = sorted(str(op.get("path")) for op in operations if op.get("op") == "replace")
    return len(replaced) == len(operations) and (patch.get("target"), replaced) in ONBOARDING_PATCHES


def patches_block(patches: list[dict]) -> str:
    """`patches:` entries as YAML list items under the kustomization's `patches:` (block style, a
    patch's text as a literal block, keys in their order), as onboarding writes its own; what this
    writes reads back to the same entries, and is then written the same again."""
    if not patches:
        return ""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    dumped = yaml.dump(patches, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=4096)
    return "".join(f"  {line}" if line.strip() else line for line in dumped.splitlines(keepends=True))


def current_overlay(name: str) -> tuple[str | None, int | None, tuple[str, ...], Images, str]:
    """The host, replica count, components, image pins and patches of its own (patches_block) an
    existing tenant's kustomization.yaml gives (None, or empty, where it gives none)."""
    path = tenancy.tenant_dir(name) / "kustomization.yaml"
    if not path.exists():
        return None, None, (), (), ""
    import yaml  # the venv's PyYAML: imported only for an existing tenant

    try:
        kustomization = yaml.safe_load(path.read_text()) or {}
        replicas = next(
            (entry["count"] for entry in kustomization.get("replicas", []) if entry.get("name") == "finance-api"), None
        )
        components = tuple(str(component) for component in kustomization.get("components") or [])
        # Read as written, every value a string: a tag such as 1.10 is not the number 1.1.
        written = yaml.load(path.read_text(), Loader=yaml.BaseLoader) or {}  # noqa: S506 - it builds only strings
        images = tuple(tuple(entry.items()) for entry in written.get("images") or [])
        patches = kustomization.get("patches") or []
        own = [patch for patch in patches if not written_by_onboarding(patch)]
        operations = [
            operation for patch in patches if written_by_onboarding(patch) and patch["target"]["kind"] == "Ingress"
            for operation in patch_operations(patch)
        ]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as error:
        raise UsageError(f"tenants/{name}/kustomization.yaml cannot be read as onboarding writes it: {error}") from None
    hosts = [operation.get("value") for operation in operations if operation.get("path") == "/spec/rules/0/host"]
    replicas = replicas if isinstance(replicas, int) else None
    return (hosts[0] if hosts else None), replicas, components, images, patches_block(own)


def current_values(name: str) -> dict[str, str]:
    """What an existing tenant's files say today, as `setting_values` names it ({} for a new tenant)."""
    directory = tenancy.tenant_dir(name)
    host, replicas, *_ = current_overlay(name)
    return {
        **({"host": host} if host else {}),
        **({"replicas": str(replicas)} if replicas is not None else {}),
        **tenancy.read_env_file(directory / "tenant.env"),
        **tenancy.read_env_file(directory / "backup.env"),
    }


def given_or_current(
    given: str | None, option: str, current: dict[str, str], key: str, default: str
) -> tuple[str, str]:
    """The option's value if given, else the tenant's current one, else the default; with where it came
    from, for the message that refuses it."""
    if given is not None:
        return given, option
    if key in current:
        return current[key], f"{key} of the tenant's files"
    return default, option


def check_inputs(args: argparse.Namespace) -> Overlay:
    """The validated overlay to write: each option given, else (with --force) the tenant's current
    value, else a new tenant's default; UsageError on the first bad input."""
    name = tenancy.check_name(args.name)
    directory = tenancy.tenant_dir(name)
    exists = directory.exists()
    if exists and not args.force:
        raise UsageError(f"tenant {name!r} already exists in tenants/{name}; pass --force to replace its overlay")
    local_only = tenancy.read_tenant(name).local_only
    if args.apply and local_only:
        raise UsageError(
            f"tenant {name!r} is local only (LOCAL_ONLY=true in tenants/{name}/local.env): "
            "it runs with make run and make test, and is never deployed"
        )
    current = current_values(name) if exists else {}
    host = args.host or current.get("host")
    if host is None:
        if exists:
            raise UsageError(f"tenants/{name}/kustomization.yaml names no Ingress host: pass --host")
        raise UsageError("--host is required for a new tenant: its public host name, e.g. acme.finance.example.com")
    host = check_host(host)
    given, source = given_or_current(args.currency, "--currency", current, "TENANT_CURRENCY", DEFAULT_CURRENCY)
    currency = given.strip().upper()
    if currency not in iso_4217():
        raise UsageError(f"{source} must be an ISO 4217 code in circulation, such as EUR, got {given!r}")
    timezone, source = given_or_current(args.timezone, "--timezone", current, "TENANT_TIMEZONE", DEFAULT_TIMEZONE)
    if timezone not in available_timezones():
        raise UsageError(f"{source} must be an IANA time zone such as Europe/Paris, got {timezone!r}")
    replicas = args.replicas if args.replicas is not None else int(current.get("replicas", MIN_REPLICAS))
    if not MIN_REPLICAS <= replicas <= MAX_REPLICAS:
        raise UsageError(f"--replicas must be between {MIN_REPLICAS} and {MAX_REPLICAS}, got {replicas}")
    owner = host_owner(host)
    if owner not in (None, name):
        raise UsageError(f"host {host!r} is already used by tenant {owner!r}")
    # tenant.env as it is (a setting added by hand stays), with the two onboarding sets.
    settings = {
        **tenancy.read_env_file(directory / "tenant.env"), "TENANT_CURRENCY": currency, "TENANT_TIMEZONE": timezone,
    }
    # Its port for `make run`: its current one, or the next past every tenant's.
    tenant = tenancy.Tenant(name, settings, tenancy.local_ports(name)[name], local_only)
    _, _, components, images, patches = current_overlay(name)
    return Overlay(tenant, host, replicas, check_backup(name, args), components, images, patches)


def setting_values(overlay: Overlay) -> dict[str, str]:
    """Every setting the overlay's files hold, by the name `changes` prints: host, replicas, and the
    variables of tenant.env and backup.env."""
    backup = dict(line.split("=", 1) for line in backup_env(overlay).splitlines())
    return {"host": overlay.host, "replicas": str(overlay.replicas), **overlay.tenant.settings, **backup}


def changes(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    """(setting, old value, new value) for each setting that differs, in the files' order."""
    keys = [*after, *(key for key in before if key not in after)]
    return [
        (key, before.get(key, UNSET), after.get(key, UNSET)) for key in keys if before.get(key) != after.get(key)
    ]


def postman_environment(name: str, base_url: str, local: bool = False) -> str:
    """A Postman environment (v2.1 export format) with the tenant's base URL, its name and an empty token:
    its public host's, or (local) its `make run` port's, named "finance NAME (local)".

    The id is derived from the name, and differs between the two, so re-importing either replaces
    that environment instead of adding one, and both can be imported side by side.
    """
    kind = "finance-tenant-local" if local else "finance-tenant"
    environment = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}:{name}")),
        "name": f"finance {name} (local)" if local else f"finance {name}",
        "values": [
            {"key": "baseUrl", "value": base_url, "type": "default", "enabled": True},
            # The collection checks that /health names it: a baseUrl that reaches another
            # tenant's server (a port taken by another) fails the run at once.
            {"key": "tenant", "value": name, "type": "default", "enabled": True},
            {"key": "token", "value": "", "type": "secret", "enabled": True},
        ],
        "_postman_variable_scope": "environment",
    }
    return json.dumps(environment, indent=2) + "\n"


def backup_env(overlay: Overlay) -> str:
    """The tenant's repository settings, as the PGBACKREST_* variables of kubernetes/base's pgbackrest-settings."""
    backup = overlay.backup
    lines = [
        f"PGBACKREST_REPO1_S3_ENDPOINT={backup.endpoint}",
        *([f"PGBACKREST_REPO1_STORAGE_PORT={backup.port}"] if backup.port else []),
        f"PGBACKREST_REPO1_S3_BUCKET={backup.bucket}",
        f"PGBACKREST_REPO1_S3_REGION={backup.region}",
        f"PGBACKREST_REPO1_S3_URI_STYLE={backup.uri_style}",
        f"PGBACKREST_REPO1_PATH={overlay.repository_path}",
        f"PGBACKREST_REPO1_RETENTION_FULL={backup.retention_days}",
        *(f"{key}={value}" for key, value in backup.extra),
    ]
    return "\n".join(lines) + "\n"


def local_env(overlay: Overlay) -> str:
    """The tenant's local.env as it is (LOCAL_ONLY and any other line kept), with its LOCAL_PORT."""
    path = tenancy.tenant_dir(overlay.name) / "local.env"
    port_line = f"LOCAL_PORT={overlay.tenant.local_port}"
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [port_line if line.partition("=")[0].strip() == "LOCAL_PORT" else line for line in lines]
    return "\n".join(kept if port_line in kept else [port_line, *kept]) + "\n"


def components_block(components: tuple[str, ...]) -> str:
    """The kustomization's `components:` list, or nothing when it uses none."""
    return "".join(["components:\n", *(f"  - {component}\n" for component in components)]) if components else ""


def images_block(images: Images) -> str:
    """The kustomization's `images:` list as scripts/fleet writes it, or nothing when it has none:
    newTag quoted (JSON-style), since kustomize reads a tag such as 0.10 as a number and fails."""
    if not images:
        return ""
    lines = ["# The app image's tag, written by scripts/fleet upgrade (deploy.yml pins it to its digest).", "images:"]
    for entry in images:
        lines += [
            f"{'  - ' if index == 0 else '    '}{key}: {json.dumps(value) if key == 'newTag' else value}"
            for index, (key, value) in enumerate(entry)
        ]
    return "\n".join(lines) + "\n"


def overlay_files(overlay: Overlay) -> dict[str, str]:
    """Each file of tenants/NAME and its text."""
    port_patch = OBJECT_STORE_PORT_PATCH.format(port=overlay.backup.port) if overlay.backup.port else ""
    local_url = f"http://127.0.0.1:{overlay.tenant.local_port}"
    public = {} if overlay.tenant.local_only else {
        POSTMAN_ENVIRONMENT: postman_environment(overlay.name, overlay.base_url),
    }
    return {
        "kustomization.yaml": KUSTOMIZATION.format(
            namespace=tenancy.namespace(overlay.name), label=tenancy.TENANT_LABEL, name=overlay.name,
            replicas=overlay.replicas, host=overlay.host, extra_patches=port_patch + overlay.patches,
            components=components_block(overlay.components),
        ) + images_block(overlay.images),
        "tenant.env": "".join(f"{key}={value}\n" for key, value in overlay.tenant.settings.items()),
        "backup.env": backup_env(overlay),
        "local.env": local_env(overlay),
        **public,
        POSTMAN_LOCAL_ENVIRONMENT: postman_environment(overlay.name, local_url, local=True),
    }


def check_scaling(overlay: Overlay, objects: list[dict]) -> None:
    """Refuse a replica count above an autoscaler's ceiling: the base gives the autoscaler the same floor."""
    for obj in objects:
        if obj["kind"] == "HorizontalPodAutoscaler" and obj["spec"].get("minReplicas", 1) > obj["spec"]["maxReplicas"]:
            raise UsageError(
                f"--replicas {overlay.replicas} is above the maxReplicas ({obj['spec']['maxReplicas']}) "
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


def custom_resource(obj: dict) -> bool:
    """Whether the object is a custom resource of kubernetes/components' (an ExternalSecret, a
    PrometheusRule...): kubernetes-validate has no schema for a CRD; tests/ops/test_kubernetes.py
    checks the components' own."""
    return obj["apiVersion"].split("/")[0] in CUSTOM_RESOURCE_GROUPS


def scaffold(overlay: Overlay) -> list[dict]:
    """Write, render and validate the overlay beside tenants/NAME, then move it there; return the objects."""
    target = tenancy.tenant_dir(overlay.name)
    # Inside tenants/ so that ../../kubernetes/base resolves and the final rename is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".onboard-{overlay.name}-", dir=tenancy.TENANTS_DIR))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for file_name, text in overlay_files(overlay).items():
            (staging / file_name).write_text(text)
        # Load the schema validator while kubectl renders: each takes about a third of the run.
        threading.Thread(target=importlib.import_module, args=("kubernetes_validate",), daemon=True).start()
        objects = tenancy.render(staging)
        tenancy.validate([obj for obj in objects if not custom_resource(obj)])
        check_scaling(overlay, objects)
        publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return objects


def _kubectl_secret(
    action: str, namespace: str, args: list[str], values: dict, name: str = tenancy.SECRET_NAME
) -> bool:
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
    raise StepError(f"{action} Secret {name} in {namespace} failed: {message}")


def _secret_values(document: dict) -> list[str]:
    data = document.get("stringData", {})
    return [value for value in data.values() if isinstance(value, str)]


def _present_keys(namespace: str, name: str) -> list[str] | None:
    """The keys of a Secret of the namespace (never its values); None when there is no such Secret."""
    found = tenancy.kubectl(
        "get", "secret", name, "--namespace", namespace, "--ignore-not-found",
        "--output=go-template={{.metadata.name}}{{range $key, $value := .data}} {{$key}}{{end}}",
        capture=True,
    )
    found_name, *present = found.stdout.split() or [""]
    return present if found_name else None


def short_cipher_pass() -> str | None:
    """Why FINANCE_BACKUP_CIPHER_PASS is refused when set but too short (its value is never shown)."""
    given = os.environ.get(CIPHER_PASS_VARIABLE)
    if given and len(given) < MIN_CIPHER_PASS_LENGTH:
        return f"{CIPHER_PASS_VARIABLE} is shorter than {MIN_CIPHER_PASS_LENGTH} characters: {CIPHER_PASS_HELP}"
    return None


def given_values(keys: list[str]) -> dict[str, str]:
    """The environment's values for those of the Secret's keys that are given, not generated;
    StepError naming the variables when some are needed and not set."""
    wanted = {GIVEN_KEYS[key] for key in keys if key in GIVEN_KEYS}
    unset = sorted(variable for variable in wanted if not os.environ.get(variable))
    if unset:
        listed = " and ".join([", ".join(unset[:-1]), unset[-1]] if len(unset) > 1 else unset)
        why = f"; {CIPHER_PASS_VARIABLE}: {CIPHER_PASS_HELP}" if CIPHER_PASS_VARIABLE in unset else ""
        raise StepError(
            f"the Secret {tenancy.SECRET_NAME} takes the tenant's pgBackRest repository's secrets from the "
            f"environment: set {listed}{why} (README, Deploy to Kubernetes, Backups and restore)"
        )
    if CIPHER_PASS_VARIABLE in wanted and (refused := short_cipher_pass()):
        raise StepError(refused)
    return {key: os.environ[GIVEN_KEYS[key]] for key in keys if key in GIVEN_KEYS}


def new_values(keys: list[str]) -> dict[str, str]:
    """Values for the Secret's missing keys: random ones, and the given ones from the environment."""
    given = given_values(keys)
    return {key: given[key] if key in given else secrets.token_urlsafe(SECRET_BYTES) for key in keys}


def check_secret_inputs(overlay: Overlay) -> None:
    """Before anything is written: the environment holds each value the tenant's Secret lacks and
    cannot be generated (all of them for a new Secret); StepError otherwise."""
    present = _present_keys(tenancy.namespace(overlay.name), tenancy.SECRET_NAME)
    given_values([key for key in SECRET_KEYS if present is None or key not in present])


def ensure_secret(overlay: Overlay) -> tuple[str, list[str]]:
    """Create the tenant's Secret with fresh random values and the given cipher pass and S3
    credentials, or give an existing one the keys it lacks.

    Returns what was done ("created", "completed" or "kept") and the keys written. An existing
    value is never replaced: the database was initialised with it, the repository encrypted with it.
    """
    namespace = tenancy.namespace(overlay.name)
    present = _present_keys(namespace, tenancy.SECRET_NAME)
    if present is not None:
        missing = [key for key in SECRET_KEYS if key not in present]
        if not missing:
            return "kept", []
        patch = {"stringData": new_values(missing)}
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
            "labels": {tenancy.TENANT_LABEL: overlay.name},
        },
        "type": "Opaque",
        "stringData": new_values(list(SECRET_KEYS)),
    }
    if _kubectl_secret("creating", namespace, ["create", "--filename", "-"], manifest):
        return "created", list(SECRET_KEYS)
    return "kept", []  # created by someone else since the check: keep theirs


def tls_files(namespace: str, server_names: tuple[str, ...] | None = None) -> dict[str, str]:
    """A new CA and the pgBackRest TLS server's and client's certificates and keys it signs (PEM),
    made with openssl in a private temporary folder that is removed after. The server's certificate
    names `server_names` (default: postgres-0.postgres, as the backup jobs reach it, and its
    namespace's longer forms)."""
    if server_names is None:
        service = f"{TLS_SERVER_HOST}.{namespace}.svc"
        server_names = (TLS_SERVER_HOST, service, f"{service}.cluster.local")
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with tempfile.TemporaryDirectory(prefix="pgbackrest-tls-") as work:
        def openssl(*args: str) -> None:
            try:
                subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True, text=True)
            except FileNotFoundError:
                raise StepError("openssl not found: it makes the tenant's pgBackRest certificates") from None
            except subprocess.CalledProcessError as error:
                raise StepError(f"openssl {args[0]} failed: {error.stderr.strip()}") from None

        openssl(
            "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(TLS_DAYS),
            "-subj", f"/CN={namespace} pgBackRest CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )
        leaves = {
            "server": (server_names[0], "serverAuth", "subjectAltName=" + ",".join(f"DNS:{n}" for n in server_names)),
            "client": (TLS_CLIENT_CN, "clientAuth", f"subjectAltName=DNS:{TLS_CLIENT_CN}"),
        }
        for leaf, (common_name, usage, names) in leaves.items():
            Path(work, f"{leaf}.ext").write_text(
                f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage={usage}\n{names}\n"
            )
            openssl(
                "req", "-new", *curve, "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={common_name}"
            )
            openssl(
                "x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(TLS_DAYS), "-out", f"{leaf}.crt",
                "-extfile", f"{leaf}.ext",
            )
        return {name: Path(work, name).read_text() for name in TLS_FILES}


def ensure_tls_secret(overlay: Overlay) -> str:
    """Create the tenant's pgBackRest certificates (Secret pgbackrest-tls) unless it has them; "created" or "kept"."""
    namespace = tenancy.namespace(overlay.name)
    present = _present_keys(namespace, TLS_SECRET_NAME)
    if present is not None:
        lacking = sorted(set(TLS_FILES) - set(present))
        if lacking:
            raise StepError(
                f"the Secret {TLS_SECRET_NAME} in {namespace} lacks {', '.join(lacking)}: "
                f"delete it and re-run with --apply --force to make new certificates"
            )
        return "kept"
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TLS_SECRET_NAME, "namespace": namespace, "labels": {tenancy.TENANT_LABEL: overlay.name}},
        "type": "Opaque",
        "stringData": tls_files(namespace),
    }
    created = _kubectl_secret("creating", namespace, ["create", "--filename", "-"], manifest, TLS_SECRET_NAME)
    return "created" if created else "kept"


def start_first_backup(namespace: str) -> None:
    """Start the full backup CronJob's job now: it creates the stanza, which archive-push waits for."""
    result = tenancy.kubectl(
        "create", "job", FIRST_BACKUP_JOB, "--from=cronjob/postgres-backup-full", "--namespace", namespace,
        capture=True, check=False,
    )
    if result.returncode == 0:
        print(f"started the first pgBackRest backup: kubectl -n {namespace} logs -f job/{FIRST_BACKUP_JOB}", flush=True)
    elif "AlreadyExists" in result.stderr:
        print(f"the first pgBackRest backup ran before: kubectl -n {namespace} logs job/{FIRST_BACKUP_JOB}", flush=True)
    else:
        raise StepError(f"starting the first pgBackRest backup failed: {result.stderr.strip()}")


def deploy(overlay: Overlay, objects: list[dict]) -> None:
    """Namespace, then Secrets (if absent), then the whole overlay; wait for PostgreSQL and the app;
    then the first pgBackRest backup if the Secret's backup keys are new."""
    namespace = tenancy.namespace(overlay.name)
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
    if not namespaces:
        raise StepError(f"the overlay renders no Namespace {namespace} to hold the Secret")
    # The Secret needs its namespace, created with the labels of the base (pod security) first.
    tenancy.kubectl("apply", "--filename", "-", stdin=json.dumps(namespaces[0]))
    done, keys = ensure_secret(overlay)
    described = ", ".join(f"{key} (from {GIVEN_KEYS[key]})" if key in GIVEN_KEYS else key for key in keys)
    if done == "created":
        print(f"created Secret {tenancy.SECRET_NAME} in {namespace} ({described}; the others random)", flush=True)
    elif done == "completed":
        print(f"added {described} to the existing Secret {tenancy.SECRET_NAME} in {namespace} (random unless named)",
              flush=True)
    else:
        print(f"kept the existing Secret {tenancy.SECRET_NAME} in {namespace}", flush=True)
    if CIPHER_PASS_KEY not in keys and os.environ.get(CIPHER_PASS_VARIABLE):
        print(f"{CIPHER_PASS_VARIABLE} was not used: the Secret's {CIPHER_PASS_KEY} is never replaced", flush=True)
    if ensure_tls_secret(overlay) == "created":
        print(f"created Secret {TLS_SECRET_NAME} in {namespace} (pgBackRest's CA, server and client certificates)",
              flush=True)
    else:
        print(f"kept the existing Secret {TLS_SECRET_NAME} in {namespace}", flush=True)
    tenancy.kubectl("apply", "--kustomize", str(tenancy.tenant_dir(overlay.name)))
    for workload in ("statefulset/postgres", "deployment/finance-api"):
        tenancy.kubectl("rollout", "status", workload, "--namespace", namespace, f"--timeout={ROLLOUT_TIMEOUT}")
    if CIPHER_PASS_KEY in keys:
        start_first_backup(namespace)


# What a change of these settings does to a tenant that already holds data, said when one changes.
CONSEQUENCES = {
    "TENANT_TIMEZONE": (
        "the time zone is the tenant's calendar: when the new setting reaches it (its next deploy, or make run), "
        "the migrate step rebuilds every daily and monthly total in {new} while writes to transactions wait, and "
        "from then on days, months, budgets and recurring rules' dates are those of {new}; transactions keep "
        "their instants, so some fall on another day or month than before"
    ),
    "TENANT_CURRENCY": "the currency only labels amounts: the amounts already recorded are not converted",
}


def report_written(overlay: Overlay, objects: list[dict]) -> None:
    print(overlay.base_url)
    print(f"wrote tenants/{overlay.name}/: {', '.join(overlay_files(overlay))}")
    custom = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects if custom_resource(obj)]
    unchecked = f" (custom resources without a schema: {', '.join(custom)})" if custom else ""
    print(f"rendered {len(objects)} objects, valid against the Kubernetes {tenancy.KUBERNETES_VERSION} schemas"
          f"{unchecked}")


def folder_files(name: str) -> dict[str, str]:
    """The files of tenants/NAME and their text ({} for a new tenant)."""
    directory = tenancy.tenant_dir(name)
    if not directory.is_dir():
        return {}
    return {path.name: path.read_text() for path in sorted(directory.iterdir()) if path.is_file()}


def unchanged_files(name: str) -> dict[str, str] | None:
    """The files onboarding would write for an existing tenant given no option (its current
    settings), to tell a rewrite from a change of setting; None when its files cannot be read so."""
    try:
        return overlay_files(check_inputs(parse_args([name, "--force"])))
    except UsageError:
        return None


def report_changes(
    before: dict[str, str], overlay: Overlay, files_before: dict[str, str], unchanged: dict[str, str] | None
) -> None:
    """What --force changed in an existing tenant's files: each setting, and what a change does
    where it matters; the files added or removed (the Postman environment of a tenant onboarded
    before there were two), and those rewritten beyond the settings named: whose text differs from
    what onboarding writes for the tenant's current settings (`unchanged`; None when those cannot
    be written, and then every file whose text changed), say by a newer onboarding script or in
    the form of a patch added by hand; else that nothing changed."""
    changed = changes(before, setting_values(overlay))
    for key, old, new in changed:
        print(f"changed {key}: {old} -> {new}")
    for key, _, new in changed:
        if key in CONSEQUENCES:
            print(f"note: {CONSEQUENCES[key].format(new=new)}")
    files_after = folder_files(overlay.name)
    files = [f"added {name}" for name in files_after if name not in files_before]
    files += [f"removed {name}" for name in files_before if name not in files_after]
    files += [
        f"rewrote {name}, as this onboarding script writes it" for name, text in files_after.items()
        if files_before.get(name, text) != text and (unchanged is None or unchanged.get(name) != files_before[name])
    ]
    for line in files:
        print(line)
    if not changed and not files:
        print("nothing changed")


def report_next_steps(overlay: Overlay, applied: bool) -> None:
    relative = f"tenants/{overlay.name}"
    if applied:
        print(f"deployed to namespace {tenancy.namespace(overlay.name)}; both rollouts are complete")
        print(f"next: commit {relative}/ so the deploy workflow keeps applying it")
        return
    print("next steps:")
    if not overlay.tenant.local_only:
        again = f"scripts/onboard-tenant {overlay.name} --apply --force"  # --force keeps every setting
        print(f"  deploy: {' '.join(f'{variable}=...' for variable in GIVEN_KEYS.values())} {again}")
        print("          (creates its Secrets if absent, applies the overlay, waits for both rollouts,")
        print(f"          starts the first backup into s3://{overlay.backup.bucket}{overlay.repository_path})")
    print(f"  local:  make run   (serves {overlay.name} at http://127.0.0.1:{overlay.tenant.local_port};")
    print(f"          Postman: tenants/{overlay.name}/{POSTMAN_LOCAL_ENVIRONMENT})")
    print(f"  commit: git add {relative}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overlay = check_inputs(args)
        existing = tenancy.tenant_dir(overlay.name).exists()
        before = current_values(overlay.name) if existing else {}
        files_before = folder_files(overlay.name)
        unchanged = unchanged_files(overlay.name) if existing else None
        if args.apply:
            if refused := short_cipher_pass():
                raise UsageError(refused)
            check_secret_inputs(overlay)
        objects = scaffold(overlay)
    except UsageError as error:
        print(f"onboard-tenant: error: {error}", file=sys.stderr)
        return 2
    except StepError as error:
        print(f"onboard-tenant: {error}; nothing was written", file=sys.stderr)
        return 1
    report_written(overlay, objects)
    if existing:
        report_changes(before, overlay, files_before, unchanged)
    if args.apply:
        sys.stdout.flush()  # before kubectl's own output
        try:
            deploy(overlay, objects)
        except StepError as error:
            print(f"onboard-tenant: {error}", file=sys.stderr)
            retry = f"the overlay is in tenants/{overlay.name}; fix the cause and re-run with --apply --force"
            print(retry, file=sys.stderr)
            return 1
    report_next_steps(overlay, args.apply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
