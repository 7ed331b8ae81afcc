"""Remove a tenant's workloads from the current cluster, then its overlay tenants/NAME.

    scripts/offboard-tenant acme [--delete-data] [--yes]

Without --delete-data the namespace finance-NAME stays with its data: the database and backup
PersistentVolumeClaims and the Secret (whose password opens that database). Every other kind
the overlay renders is deleted by the tenant's label, older ConfigMap generations included.
--delete-data deletes the whole namespace instead, data and backups with it.
Asks for the tenant's name as confirmation unless --yes; without a terminal, --yes is required.
"""

import argparse
import os
import shutil
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
    parser.add_argument("--delete-data", action="store_true", help="delete the namespace with its volumes and backups")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser.parse_args(argv)


def check_tenant(name: str) -> str:
    tenancy.check_name(name)
    if not tenancy.tenant_dir(name).is_dir():
        raise UsageError(f"unknown tenant {name!r}: there is no tenants/{name}")
    return name


def confirm(name: str, delete_data: bool) -> bool:
    """Ask on the terminal; the answer must be the tenant's name."""
    namespace = tenancy.namespace(name)
    if delete_data:
        plan = f"delete the namespace {namespace} with ALL its data and backups"
    else:
        plan = f"delete the workloads in {namespace} (its volumes, backups and Secret are kept)"
    print(f"This will {plan}, then remove tenants/{name}.", file=sys.stderr)
    try:
        answer = input(f"Type the tenant's name ({name}) to go on: ")
    except EOFError:
        return False
    return answer.strip() == name


def delete_workloads(name: str) -> None:
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
    tenancy.kubectl(
        "delete", ",".join(types), "--namespace", tenancy.namespace(name),
        "--selector", f"{tenancy.TENANT_LABEL}={name}", "--ignore-not-found", "--wait=true",
    )


def delete_namespace(name: str) -> None:
    tenancy.kubectl("delete", "namespace", tenancy.namespace(name), "--ignore-not-found", "--wait=true")


def remove_overlay(name: str) -> None:
    """Move tenants/NAME out of sight at once, then delete it."""
    directory = tenancy.tenant_dir(name)
    retired = Path(tempfile.mkdtemp(prefix=f".offboard-{name}-", dir=tenancy.TENANTS_DIR))
    os.rename(directory, retired / name)
    shutil.rmtree(retired)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        name = check_tenant(args.name)
        if not args.yes and not sys.stdin.isatty():
            raise UsageError("not a terminal, so no one can confirm: pass --yes to offboard without asking")
    except UsageError as error:
        print(f"offboard-tenant: error: {error}", file=sys.stderr)
        return 2
    if not args.yes and not confirm(name, args.delete_data):
        print("offboard-tenant: not confirmed; nothing was changed", file=sys.stderr)
        return 1
    namespace = tenancy.namespace(name)
    try:
        if args.delete_data:
            delete_namespace(name)
        else:
            delete_workloads(name)
    except StepError as error:
        print(f"offboard-tenant: {error}; tenants/{name} is kept so you can retry", file=sys.stderr)
        return 1
    remove_overlay(name)
    if args.delete_data:
        print(f"deleted namespace {namespace} with its data; removed tenants/{name}")
    else:
        print(f"deleted the workloads of {namespace}; removed tenants/{name}")
        print(f"kept in {namespace}: its PersistentVolumeClaims (database, backups) and Secret {tenancy.SECRET_NAME}")
        print(f"to delete them too: kubectl delete namespace {namespace}")
    print(f"next: commit the removal of tenants/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
