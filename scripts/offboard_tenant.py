"""Remove a tenant's workloads from the current cluster (or, with --local, from this machine's
`make run`), then its overlay tenants/NAME.

    scripts/offboard-tenant acme [--local] [--delete-data] [--yes]

Without --delete-data the namespace finance-NAME stays with its data: the database and backup
PersistentVolumeClaims and the Secret (whose password opens that database). Every other kind
the overlay renders is deleted by the tenant's label, older ConfigMap generations included.
--delete-data deletes the whole namespace instead, data and backups with it.

--local stops the tenant's gunicorn, scheduler and webhook dispatcher (if `make up` or `make run`
started them) and its PostgreSQL cluster; its data (.local/dev/NAME: the cluster, the pgBackRest
archive, the secrets, the logs) is kept unless --delete-data. It also offboards a tenant whose
folder was already removed by hand but whose server or data is still here.

Without --local it refuses a local-only tenant (LOCAL_ONLY=true: the demo tenants, which only
`make run` serves), and a tenant whose namespace is not in the cluster: kubectl would delete
nothing there and succeed, and the folder of a tenant that `make run` serves would go while its
server runs on. kubectl's current context is read once, named in the confirmation, and given to
every call, so that a context switched meanwhile does not redirect the run.

Asks for the tenant's name as confirmation unless --yes; without a terminal, --yes is required.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tenancy
from tenancy import StepError, UsageError

# What holds the tenant's data: kept unless --delete-data.
KEPT_KINDS = frozenset({"Namespace", "PersistentVolumeClaim", "Secret"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = tenancy.ArgumentParser(
        prog="offboard-tenant", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the tenant, as in tenants/NAME")
    parser.add_argument("--local", action="store_true", help="offboard the tenant of `make run` on this machine")
    parser.add_argument(
        "--delete-data", action="store_true",
        help="delete the namespace with its volumes and backups (with --local: the tenant's local data)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser.parse_args(argv)


def check_tenant(name: str, local: bool = False) -> str:
    tenancy.check_name(name)
    if tenancy.tenant_dir(name).is_dir():
        if not local and tenancy.read_tenant(name).local_only:
            raise UsageError(
                f"{name} is a local-only tenant (LOCAL_ONLY=true in tenants/{name}/local.env), never deployed: "
                f"to offboard it from make run on this machine: scripts/offboard-tenant {name} --local"
            )
        return name
    if local and local_traces(name):
        return name
    where = f"there is no tenants/{name} and no local data in {shown(local_state(name))}" if local else (
        f"there is no tenants/{name}"
    )
    raise UsageError(f"unknown tenant {name!r}: {where}")


def confirm(name: str, delete_data: bool, context: str | None = None) -> bool:
    """Say what will be done, and in which context (None: locally), and ask for the tenant's name."""
    namespace = tenancy.namespace(name)
    if context is None:
        data = shown(local_state(name))
        kept = f"delete its local data in {data}" if delete_data else f"keep its local data in {data}"
        plan = f"stop {name}'s local server and PostgreSQL and {kept}"
    elif delete_data:
        plan = f"delete the namespace {namespace} (context {context}) with ALL its data and backups"
    else:
        plan = f"delete the workloads in {namespace} (context {context}; its volumes, backups and Secret are kept)"
    then = f", then remove tenants/{name}" if tenancy.tenant_dir(name).is_dir() else ""
    return tenancy.confirm(name, f"This will {plan}{then}.")


def delete_workloads(name: str, context: str) -> None:
    """Delete, by the tenant's label, every kind the overlay renders except those holding data."""
    objects = tenancy.render(tenancy.tenant_dir(name))
    for obj in objects:
        retention = obj["spec"].get("persistentVolumeClaimRetentionPolicy", {}) if obj["kind"] == "StatefulSet" else {}
        if retention.get("whenDeleted") == "Delete":
            raise StepError(
                f"StatefulSet {obj['metadata']['name']} would delete its volumes with it "
                "(persistentVolumeClaimRetentionPolicy.whenDeleted: Delete): pass --delete-data to accept that"
            )
    types = sorted({tenancy.resource_type(obj) for obj in objects if obj["kind"] not in KEPT_KINDS})
    in_cluster(
        name, context, "delete", ",".join(types), "--namespace", tenancy.namespace(name),
        "--selector", f"{tenancy.TENANT_LABEL}={name}", "--ignore-not-found", "--wait=true",
    )


def delete_namespace(name: str, context: str) -> None:
    in_cluster(name, context, "delete", "namespace", tenancy.namespace(name), "--ignore-not-found", "--wait=true")


class NoCluster(StepError):
    """kubectl reaches no cluster at all, or not the tenant's namespace in it: nothing was deleted."""


def to_local(name: str) -> str:
    return f"to offboard a tenant that `make run` serves on this machine: scripts/offboard-tenant {name} --local"


def cluster_context(name: str) -> str:
    """kubectl's current context, read once: every later call names it; NoCluster when none is set."""
    try:
        return tenancy.current_context()
    except StepError as error:
        raise NoCluster(
            f"kubectl has no current context ({error}), so nothing was deleted and tenants/{name} is kept; "
            f"{to_local(name)}"
        ) from None


def check_namespace(name: str, context: str) -> None:
    """NoCluster unless the tenant's namespace is in the context's cluster: `kubectl delete
    --ignore-not-found` would succeed there without deleting anything, and the folder would go."""
    namespace = tenancy.namespace(name)
    found = in_cluster(name, context, "get", "namespace", namespace, "--ignore-not-found", "--output=name",
                       capture=True)
    if not found.strip():
        raise NoCluster(
            f"there is no namespace {namespace} in context {context}, so nothing was deleted and tenants/{name} is "
            f"kept; check the context (docs/operations.md, Choosing the cluster), or {to_local(name)}"
        )


def in_cluster(name: str, context: str, *args: str, capture: bool = False) -> str:
    """kubectl with these arguments on the context, and its output when captured; NoCluster when it
    failed because no cluster answers, in one line (kubectl's own are half a dozen) that points to
    --local for a tenant of `make run`."""
    try:
        return tenancy.kubectl(*args, quiet=True, capture=capture, context=context).stdout or ""
    except StepError:
        unreachable = tenancy.cluster_unreachable(context)
        if unreachable is None:
            raise
        raise NoCluster(
            f"no Kubernetes cluster is reachable in context {context} ({unreachable}), so nothing was deleted and "
            f"tenants/{name} is kept; {to_local(name)}"
        ) from None


def remove_overlay(name: str) -> None:
    """Move tenants/NAME out of sight at once, then delete it."""
    shutil.rmtree(retire_overlay(name))


def retire_overlay(name: str) -> Path:
    """Move tenants/NAME out of sight (into a hidden folder of tenants/, which is returned), so that
    no script sees the tenant any more while it is being taken down."""
    retired = Path(tempfile.mkdtemp(prefix=f".offboard-{name}-", dir=tenancy.TENANTS_DIR))
    if tenancy.tenant_dir(name).is_dir():
        os.rename(tenancy.tenant_dir(name), retired / name)
    return retired


# --- local ------------------------------------------------------------------------------------


def local_state(name: str) -> Path:
    """Where `make run` keeps the tenant's data (scripts/dev.py)."""
    import dev  # imported here: it needs the venv's psycopg, which the cluster path does not

    return dev.STATE / name


def local_traces(name: str) -> bool:
    """Whether `make run` left anything of the tenant on this machine: its data or a pid file."""
    import dev

    run = dev.STATE / "run"
    pid_files = (run / f"{name}.pid", run / "scheduler" / f"{name}.pid", run / "dispatcher" / f"{name}.pid")
    return local_state(name).exists() or any(path.exists() for path in pid_files)


def local_data(name: str) -> list[Path]:
    """Every folder of the tenant's local data: .local/dev/NAME, and its cluster and archive when
    they live elsewhere (under /tmp when the path is too long for a socket: localstack.cluster_directory)."""
    import dev
    import localstack

    tenant_stack = dev.stack(name, dev.FIRST_APP_PORT)
    assert isinstance(tenant_stack.cluster, localstack.Cluster) and tenant_stack.cluster.archive is not None
    state = local_state(name)
    elsewhere = [
        folder for folder in (tenant_stack.cluster.directory, tenant_stack.cluster.archive.directory)
        if not folder.is_relative_to(state)
    ]
    return [folder for folder in [state, *elsewhere] if folder.exists()]


def stop_locally(name: str) -> list[str]:
    """Stop the tenant's scheduler, webhook dispatcher and gunicorn, then its PostgreSQL cluster;
    which of its server and its PostgreSQL were running."""
    import dev

    stopped = ["server"] if dev.stop_server(name) else []
    cluster = dev.stack(name, dev.FIRST_APP_PORT).cluster
    if cluster.is_running():
        cluster.stop()
        stopped.append("PostgreSQL")
    return stopped


def offboard_locally(name: str, delete_data: bool) -> list[str]:
    """Take the tenant down on this machine and remove tenants/NAME; what was done, as lines to
    print. tenants/NAME is put back if stopping fails."""
    had_folder = tenancy.tenant_dir(name).is_dir()
    retired = retire_overlay(name)
    try:
        data = local_data(name)
        stopped = stop_locally(name)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
        if had_folder:
            os.rename(retired / name, tenancy.tenant_dir(name))
        shutil.rmtree(retired)
        raise StepError(f"stopping {name} locally failed: {error}") from error
    for folder in data if delete_data else []:
        shutil.rmtree(folder)
    shutil.rmtree(retired)
    return local_summary(name, stopped, had_folder, data, delete_data)


def local_summary(name: str, stopped: list[str], had_folder: bool, data: list[Path], deleted: bool) -> list[str]:
    """What offboard_locally did, as lines to print."""
    done = [f"stopped {name}'s local {' and '.join(stopped)}" if stopped else f"{name} was not running locally"]
    if had_folder:
        done.append(f"removed tenants/{name}")
    where = ", ".join(shown(folder) for folder in data)
    if not data:
        done.append(f"{name} had no local data")
    elif deleted:
        done.append(f"deleted its local data: {where}")
    else:
        done.append(f"kept its local data (database, pgBackRest archive, secrets, logs): {where}")
        done.append(f"to delete it too: scripts/offboard-tenant {name} --local --delete-data --yes")
    if had_folder:
        done.append(f"next: if tenants/{name} was committed, commit its removal")
    return done


def shown(path: Path) -> str:
    """A path as a user would type it: relative to the checkout when inside it."""
    return str(path.relative_to(tenancy.ROOT)) if path.is_relative_to(tenancy.ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        name = check_tenant(args.name, args.local)
        if not args.yes and not sys.stdin.isatty():
            raise UsageError("not a terminal, so no one can confirm: pass --yes to offboard without asking")
    except UsageError as error:
        print(f"offboard-tenant: error: {error}", file=sys.stderr)
        return 2
    if args.local:
        if not args.yes and not confirm(name, args.delete_data):
            print("offboard-tenant: not confirmed; nothing was changed", file=sys.stderr)
            return 1
        try:
            done = offboard_locally(name, args.delete_data)
        except StepError as error:
            print(f"offboard-tenant: {error}; tenants/{name} is kept so you can retry", file=sys.stderr)
            return 1
        print("\n".join(done))
        return 0
    namespace = tenancy.namespace(name)
    try:
        context = cluster_context(name)
        check_namespace(name, context)
        if not args.yes and not confirm(name, args.delete_data, context):
            print("offboard-tenant: not confirmed; nothing was changed", file=sys.stderr)
            return 1
        if args.delete_data:
            delete_namespace(name, context)
        else:
            delete_workloads(name, context)
    except NoCluster as error:
        print(f"offboard-tenant: {error}", file=sys.stderr)
        return 1
    except StepError as error:
        print(f"offboard-tenant: {error}; tenants/{name} is kept so you can retry", file=sys.stderr)
        return 1
    remove_overlay(name)
    if args.delete_data:
        print(f"deleted namespace {namespace} (context {context}) with its data; removed tenants/{name}")
    else:
        print(f"deleted the workloads of {namespace} (context {context}); removed tenants/{name}")
        print(f"kept in {namespace}: its PersistentVolumeClaims (database, backups) and Secret {tenancy.SECRET_NAME}")
        print(f"to delete them too: kubectl --context {context} delete namespace {namespace}")
    print(f"next: commit the removal of tenants/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
