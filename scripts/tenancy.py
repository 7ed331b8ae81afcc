"""What onboard-tenant and offboard-tenant share: tenant names, rendering, validation, kubectl.

A tenant NAME lives in the namespace `finance-NAME` and has an overlay in `tenants/NAME/`.
Every call to the cluster goes through `kubectl()`, which runs `$KUBECTL` (default `kubectl`),
so the tests can record the commands with a stand-in executable.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANTS_DIR = ROOT / "tenants"

NAMESPACE_PREFIX = "finance-"
TENANT_LABEL = "finance.example.com/tenant"
SECRET_NAME = "finance-secrets"  # noqa: S105 - the Secret's name, not a value
# The Kubernetes version whose JSON schemas (shipped by kubernetes-validate) every object must meet.
KUBERNETES_VERSION = "1.32.0"

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME_LENGTH = 63 - len(NAMESPACE_PREFIX)
# Names that would collide with a system namespace or a folder of the kustomize layout.
RESERVED_NAMES = frozenset({"default", "base", "components", "finance", "system"})
RESERVED_PREFIXES = ("kube-",)


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2, nothing written."""


class StepError(Exception):
    """A step that should have worked failed (render, validation, kubectl): exit code 1."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def check_name(name: str) -> str:
    """Return the tenant name if it is usable, else raise UsageError saying why."""
    if not DNS_LABEL.match(name) or len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"tenant name must be a DNS label of at most {MAX_NAME_LENGTH} characters "
            f"(lowercase letters, digits and '-', starting and ending with a letter or digit), got {name!r}"
        )
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise UsageError(f"tenant name {name!r} is reserved; choose another")
    return name


def namespace(name: str) -> str:
    return f"{NAMESPACE_PREFIX}{name}"


def tenant_dir(name: str) -> Path:
    return TENANTS_DIR / name


def tenant_dirs() -> list[Path]:
    """Every tenant folder (hidden folders are a script's work in progress)."""
    return sorted(path for path in TENANTS_DIR.iterdir() if path.is_dir() and not path.name.startswith("."))


def kubectl(
    *args: str, stdin: str | None = None, capture: bool = False, check: bool = True
) -> subprocess.CompletedProcess:
    """Run kubectl with these arguments; raise StepError when it fails and check is set."""
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    try:
        result = subprocess.run(command, input=stdin, capture_output=capture, text=True, check=False)
    except FileNotFoundError:
        raise StepError(f"{command[0]} not found: install kubectl 1.32 or newer, or set KUBECTL") from None
    if check and result.returncode != 0:
        detail = f": {result.stderr.strip()}" if capture and result.stderr.strip() else ""
        raise StepError(f"`kubectl {' '.join(args)}` failed with exit code {result.returncode}{detail}")
    return result


def render(directory: Path) -> list[dict]:
    """The objects `kubectl kustomize` renders from an overlay folder."""
    import yaml  # imported here so that bad input is refused without paying for it

    result = kubectl("kustomize", str(directory), capture=True, check=False)
    if result.returncode != 0:
        raise StepError(f"rendering the overlay with kubectl kustomize failed: {result.stderr.strip()}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(result.stdout, Loader=loader) if doc]


def validate(objects: list[dict]) -> None:
    """Check every object against the strict Kubernetes schemas; raise StepError listing the failures.

    Strict mode refuses unknown fields, so a typo in a manifest fails here and not in the cluster.
    """
    import kubernetes_validate
    import kubernetes_validate.utils

    # validate() reads the 1.3 MB definitions file again for every object; reading each file once
    # keeps onboarding under a second. Should the helper be renamed, this only costs speed.
    contents = getattr(kubernetes_validate.utils, "schema_contents", None)
    if contents is not None and not hasattr(contents, "cache_info"):
        kubernetes_validate.utils.schema_contents = functools.cache(contents)
    problems = []
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path) or "(top level)"
            problems.append(f"{what}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{what}: {error.message}")
    if problems:
        raise StepError(f"rendered objects are not valid Kubernetes {KUBERNETES_VERSION}: " + "; ".join(problems))


def resource_type(obj: dict) -> str:
    """The kubectl resource argument for an object's kind, qualified by its API group (`deployment.apps`)."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()
