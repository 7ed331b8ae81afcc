"""Run every tenant of tenants/ locally: for each, a PostgreSQL cluster of its own, archived with
pgBackRest into .local/dev/<tenant>/pgbackrest (as each tenant's database is in Kubernetes, so that
scripts/restore-tenant --local can restore it to a point in time), and a gunicorn.

    scripts/dev run      start everything, print `<tenant> <base-url>` lines, stop on Ctrl-C
    scripts/dev up       the same, left running in the background
    scripts/dev down     stop everything `up` started
    scripts/dev status   print the lines of the tenants that are running
"""

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import localstack
import tenancy

STATE = tenancy.ROOT / ".local" / "dev"
# The first tenant's PostgreSQL port; each tenant's is this plus its app port's offset from the first's.
PG_PORT = int(os.environ.get("DEV_PG_PORT", "55432"))
FIRST_APP_PORT = tenancy.FIRST_LOCAL_PORT


def stack(tenant: str, app_port: int) -> localstack.Stack:
    """The tenant's own cluster (on the port it runs on, if it runs), secrets, logs and archive."""
    tenant_stack = localstack.Stack(STATE / tenant, PG_PORT + app_port - FIRST_APP_PORT, archived=True)
    tenant_stack.cluster.port = tenant_stack.cluster.running_port() or tenant_stack.cluster.port
    # The retention the tenant has in Kubernetes (tenants/<tenant>/backup.env), if it says one.
    backup_settings = tenancy.read_env_file(tenancy.tenant_dir(tenant) / "backup.env")
    days = backup_settings.get("PGBACKREST_REPO1_RETENTION_FULL")
    tenant_stack.cluster.archive.retention_days = int(days) if days else None
    return tenant_stack


def _pid_file(tenant: str) -> Path:
    return STATE / "run" / f"{tenant}.pid"


def restoring_marker(tenant: str) -> Path:
    """Present while scripts/restore-tenant --local restores the tenant: `run` leaves it alone."""
    return STATE / "run" / f"{tenant}.restoring"


def running(tenant: str) -> tuple[int, str] | None:
    """(pid, url) of a tenant's gunicorn started by `up`, if it is still alive."""
    try:
        pid_text, url = _pid_file(tenant).read_text().split()
        os.kill(int(pid_text), 0)
    except (OSError, ValueError):
        return None
    return int(pid_text), url


def up() -> list[localstack.Server]:
    tenants = {t.name: t for t in tenancy.discover_tenants()}
    if not tenants:
        sys.exit("no tenants: tenants/<name>/tenant.env is missing")
    if not shutil.which("pgbackrest"):
        sys.exit("make run archives every tenant with pgBackRest, which is not installed:"
                 " `apt-get install pgbackrest` (scripts/install does it when run as root)")
    ports = tenancy.local_ports()
    stacks = {tenant: stack(tenant, port) for tenant, port in ports.items()}
    for tenant, port in ports.items():
        cluster = stacks[tenant].cluster
        if not cluster.is_running() and localstack.port_taken(cluster.port):
            sys.exit(
                f"port {cluster.port} of tenant {tenant}'s PostgreSQL is taken (another checkout's `make run`?):"
                f" choose a free range with DEV_PG_PORT, e.g. `DEV_PG_PORT={PG_PORT + 100} make run`"
            )
        if not running(tenant) and localstack.port_taken(port):
            sys.exit(
                f"port {port} of tenant {tenant} is taken (another checkout's `make run`?):"
                f" choose a free one with LOCAL_PORT in tenants/{tenant}/local.env"
            )
    try:
        servers = [
            server for tenant, port in ports.items() if (server := serve(stacks[tenant], tenants[tenant], port))
        ]
    except RuntimeError as exc:  # an archive that is not the cluster's, an interrupted restore
        sys.exit(f"make run: {exc}")
    status()
    return servers


def serve(tenant_stack: localstack.Stack, tenant: tenancy.Tenant, port: int) -> localstack.Server | None:
    """Start the tenant's cluster (its archive made, and backed up when it has no backup of the
    last day), migrate it and start its gunicorn in the background, unless it already runs."""
    tenant_stack.cluster.start()
    assert tenant_stack.cluster.archive is not None
    try:
        tenant_stack.cluster.archive.bootstrap()
    except RuntimeError:
        tenant_stack.cluster.stop()
        raise
    if running(tenant.name):
        return None
    server = tenant_stack.start_server(tenant.name, tenant_stack.prepare(tenant), port, detach=True)
    _pid_file(tenant.name).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(tenant.name).write_text(f"{server.process.pid} {server.url}\n")
    return server


def status() -> int:
    shown = 0
    for tenant in tenancy.discover_tenants():
        alive = running(tenant.name)
        if alive:
            print(f"{tenant.name} {alive[1]}", flush=True)
            shown += 1
    return 0 if shown else 1


def stop_server(tenant: str) -> bool:
    """Stop the tenant's gunicorn (it finishes its requests first); whether one was running."""
    alive = running(tenant)
    if alive:
        os.kill(alive[0], signal.SIGTERM)
        for _ in range(300):
            if _exited(alive[0]):
                break
            time.sleep(0.1)
    _pid_file(tenant).unlink(missing_ok=True)
    return alive is not None


def _exited(pid: int) -> bool:
    """Whether the process is gone. One this process started (`run` starts the servers it later
    stops) stays a zombie, which signal 0 still reaches, until it is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    except ChildProcessError:
        pass  # not our child: whoever started it reaps it
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def down() -> None:
    for pid_file in sorted((STATE / "run").glob("*.pid")):
        stop_server(pid_file.stem)
    # Every tenant's cluster that ran here, also one whose tenants/ folder has gone since.
    for tenant_dir in sorted(path.parent for path in STATE.glob("*/secrets")):
        stack(tenant_dir.name, FIRST_APP_PORT).cluster.stop()


def run() -> None:
    up()
    print("Serving; press Ctrl-C to stop.", flush=True)
    try:
        while all(running(t.name) or restoring_marker(t.name).exists() for t in tenancy.discover_tenants()):
            time.sleep(1)
        print("a tenant's server stopped; see .local/dev/<tenant>/logs", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    command = parser.parse_args().command
    if command == "status":
        return status()
    {"run": run, "up": up, "down": down}[command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
