"""What every script knows of tenants: names, namespaces, the files of tenants/NAME, kubectl.

A tenant NAME lives in the namespace `finance-NAME` and has an overlay in `tenants/NAME/`, whose
env files (tenant.env: its settings, local.env: its port for `make run` and whether it is a demo
tenant that is never deployed, backup.env: its pgBackRest repository) are read with
`read_env_file`. Every call to a cluster goes through `kubectl()`, which runs `$KUBECTL` (default
`kubectl`), so the tests can record the commands with a stand-in executable.
Only the standard library is imported up front: restore-tenant's Kubernetes path needs nothing else.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
TENANTS_DIR = ROOT / "tenants"
# The port `make run` serves the first tenant on; the others take the next ones (local.env).
FIRST_LOCAL_PORT = 8001

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
            f"invalid tenant name {name!r}: it must be a DNS label of at most {MAX_NAME_LENGTH} characters "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
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


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of an env file ({} when there is none), as written: no ${...} expansion.

    The same files feed kustomize (`envs:`), which takes every value verbatim: a value that
    python-dotenv would read otherwise (quoted, or with a trailing # comment) is refused, so that
    `make run` and the cluster never see two different settings.
    """
    if not path.exists():
        return {}
    import dotenv  # the venv's python-dotenv: imported here, so restore-tenant's Kubernetes path runs without it

    values = {key: value for key, value in dotenv.dotenv_values(path, interpolate=False).items() if value is not None}
    for line in path.read_text().splitlines():
        key, sep, raw = line.partition("=")
        if sep and not key.lstrip().startswith("#") and values.get(key.strip()) != raw.strip():
            raise UsageError(f"{path}: write {key.strip()}'s value plain, without quotes or a # comment")
    return values


@dataclass(frozen=True)
class Tenant:
    """A tenant as tenants/NAME describes it: its settings (tenant.env), its port for `make run`
    (local.env's LOCAL_PORT, None when it has none) and whether it only ever runs locally
    (local.env's LOCAL_ONLY=true: the demo tenants `make run` and `make test` serve, which the
    deploy workflow and scripts/fleet never deploy)."""

    name: str
    settings: dict[str, str]
    local_port: int | None = None
    local_only: bool = False


def read_tenant(name: str) -> Tenant:
    """The tenant as tenants/NAME says (no settings, no port, not local only, where it says nothing).
    The one place LOCAL_ONLY is read, so that every script draws the same line around the demo tenants."""
    directory = tenant_dir(name)
    local = read_env_file(directory / "local.env")
    port = local.get("LOCAL_PORT")
    return Tenant(
        name, read_env_file(directory / "tenant.env"), int(port) if port else None, local.get("LOCAL_ONLY") == "true"
    )


def discover_tenants() -> list[Tenant]:
    """Every tenant folder with a tenant.env, in name order."""
    return [read_tenant(directory.name) for directory in tenant_dirs() if (directory / "tenant.env").is_file()]


def confirm(name: str, plan: str) -> bool:
    """Say the plan (on stderr) and ask on the terminal; the answer must be the tenant's name, so
    that a habit of typing "y" cannot take down the wrong tenant."""
    print(plan, file=sys.stderr)
    try:
        answer = input(f"Type the tenant's name ({name}) to go on: ")
    except EOFError:
        return False
    return answer.strip() == name


def local_ports(*new_names: str) -> dict[str, int]:
    """Each tenant's port for `make run` (and of `new_names`, tenants about to be written): its
    LOCAL_PORT; else the port its running server has; else the next port past every one taken
    that is free: no tenant folder names it, no server `make run` started runs on it (also one
    of a tenant whose folder was removed by hand), nothing listens on it, and nothing on the
    PostgreSQL port `make run` derives from it. So a new tenant never gets the port of a server
    that would answer in its place (issue 16)."""
    import dev  # scripts/dev's servers and ports; imported here: it needs the venv, this module does not

    tenants = discover_tenants()
    ports = {tenant.name: tenant.local_port for tenant in tenants if tenant.local_port}
    serving = {name: int(url.rpartition(":")[2]) for name, (_, url) in dev.serving().items()}
    unnamed = [tenant.name for tenant in tenants if tenant.name not in ports]
    for name in unnamed:
        if name in serving and serving[name] not in ports.values():
            ports[name] = serving[name]
    next_port = max([FIRST_LOCAL_PORT - 1, *ports.values()]) + 1
    for name in [*unnamed, *new_names]:
        if name in ports:
            continue
        # A tenant that exists keeps the port it had (its own cluster may hold the PostgreSQL one).
        while next_port in {*ports.values(), *serving.values()} or (
            name in new_names and not _free_for_new_tenant(next_port)
        ):
            next_port += 1
        ports[name], next_port = next_port, next_port + 1
    return ports


def _free_for_new_tenant(port: int) -> bool:
    """Whether nothing listens on the port, nor on the PostgreSQL port scripts/dev derives from it."""
    import dev
    from localstack import port_taken

    return not port_taken(port) and not port_taken(dev.pg_port(port))


def kubectl_command(*args: str, context: str | None = None) -> list[str]:
    """The command line that runs kubectl (`$KUBECTL`, default `kubectl`) with these arguments, on
    the given context (else kubectl's current one)."""
    return [os.environ.get("KUBECTL", "kubectl"), *((f"--context={context}",) if context else ()), *args]


def current_context() -> str:
    """kubectl's current context, to resolve once and pass to every later call (`context=`): the
    context a script names when it asks for confirmation is then the one it acts on, even if
    another terminal switches kubectl's current context meanwhile. StepError when none is set."""
    context = kubectl_output("config", "current-context").strip()
    if not context:
        raise StepError("kubectl config current-context names no context")
    return context


def kubectl(
    *args: str, stdin: str | IO | None = None, capture: bool = False, check: bool = True, quiet: bool = False,
    context: str | None = None,
) -> subprocess.CompletedProcess:
    """Run kubectl with these arguments on `context` (else the current one), `stdin` (a text, or a
    file to read) as its input; raise StepError, naming the command and kubectl's last error line,
    when it fails and check is set.

    `quiet`: its stdout still shows, but its error lines only in the StepError (one line): a
    kubectl that cannot reach its cluster repeats the same error half a dozen times. What it
    writes to stderr when it succeeds (warnings) is shown."""
    command = kubectl_command(*args, context=context)
    feed = {"stdin": stdin} if stdin is not None and not isinstance(stdin, str) else {"input": stdin}
    streams = {"capture_output": True} if capture else {"stderr": subprocess.PIPE} if quiet else {}
    try:
        result = subprocess.run(command, **feed, **streams, text=True, check=False)
    except FileNotFoundError:
        raise StepError(f"{command[0]} not found: install kubectl 1.32 or newer, or set KUBECTL") from None
    if quiet and not capture and result.returncode == 0 and result.stderr:
        sys.stderr.write(result.stderr)
    if check and result.returncode != 0:
        # The command up to what runs in a container (a script, SQL): enough to say which step it was.
        shown = " ".join(itertools.takewhile(lambda arg: arg != "--" and "\n" not in arg, args))
        errors = (result.stderr or "").strip().splitlines()
        raise StepError(f"kubectl {shown} failed: {errors[-1] if errors else f'exit code {result.returncode}'}")
    return result


def cluster_unreachable(context: str | None = None) -> str | None:
    """Why kubectl cannot reach the context's cluster (its last error line), None when it can."""
    try:
        result = kubectl("version", "--request-timeout=10s", capture=True, check=False, context=context)
    except StepError as error:  # no kubectl at all
        return str(error)
    if result.returncode == 0:
        return None
    errors = (result.stderr or "").strip().splitlines()
    return errors[-1] if errors else f"kubectl version exited with code {result.returncode}"


def kubectl_output(*args: str, stdin: str | IO | None = None, context: str | None = None) -> str:
    """What kubectl prints with these arguments (on `context`, else the current one); StepError when it fails."""
    return kubectl(*args, stdin=stdin, capture=True, context=context).stdout or ""


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
