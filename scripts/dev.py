"""Run every tenant of tenants/ locally: for each, a PostgreSQL cluster of its own, archived with
pgBackRest into .local/dev/<tenant>/pgbackrest (as each tenant's database is in Kubernetes, so that
scripts/restore-tenant --local can restore it to a point in time), a gunicorn, the recurring
transactions' scheduler (`python -m service run-scheduled --every 60`, a CronJob in Kubernetes) and
the webhook dispatcher (`python -m service deliver-webhooks`, a Deployment in Kubernetes), which
may send to http:// and https:// URLs on this machine's loopback addresses (WEBHOOKS_ALLOW_LOOPBACK),
so that a developer can receive webhooks locally.

    scripts/dev run      start everything, print `<tenant> <base-url>` lines, stop on Ctrl-C
    scripts/dev up       the same, left running in the background
    scripts/dev down     stop everything `up` started
    scripts/dev status   print the lines of the tenants that are running
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import localstack
import tenancy

STATE = tenancy.ROOT / ".local" / "dev"
# The first tenant's PostgreSQL port; each tenant's is this plus its app port's offset from the first's.
PG_PORT = int(os.environ.get("DEV_PG_PORT", "55432"))
FIRST_APP_PORT = tenancy.FIRST_LOCAL_PORT
# Seconds between two passes of a tenant's scheduler.
SCHEDULER_EVERY = 60


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


def _scheduler_pid_file(tenant: str) -> Path:
    return STATE / "run" / "scheduler" / f"{tenant}.pid"


def _dispatcher_pid_file(tenant: str) -> Path:
    return STATE / "run" / "dispatcher" / f"{tenant}.pid"


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


def scheduler_running(tenant: str) -> int | None:
    """The pid of a tenant's scheduler started by `up`, if it is still alive."""
    return _alive(_scheduler_pid_file(tenant))


def dispatcher_running(tenant: str) -> int | None:
    """The pid of a tenant's webhook dispatcher started by `up`, if it is still alive."""
    return _alive(_dispatcher_pid_file(tenant))


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


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
    last day), migrate it and start its gunicorn and then its scheduler and webhook dispatcher in
    the background, unless they already run. A gunicorn that does not start leaves neither behind."""
    tenant_stack.cluster.start()
    assert tenant_stack.cluster.archive is not None
    try:
        tenant_stack.cluster.archive.bootstrap()
    except RuntimeError:
        tenant_stack.cluster.stop()
        raise
    if running(tenant.name):
        return None
    env = tenant_stack.prepare(tenant)
    server = tenant_stack.start_server(tenant.name, env, port, detach=True)
    _pid_file(tenant.name).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(tenant.name).write_text(f"{server.process.pid} {server.url}\n")
    start_scheduler(tenant_stack, tenant.name, env)
    start_dispatcher(tenant_stack, tenant.name, env)
    return server


def start_scheduler(tenant_stack: localstack.Stack, tenant: str, env: dict[str, str]) -> None:
    """Start the tenant's scheduler with its gunicorn's environment (the same DATABASE_URL and
    TENANT_TIMEZONE) but no signing key, which it does not need; it logs beside gunicorn."""
    env = {key: value for key, value in env.items() if key != "JWT_SECRET"}
    log_file = tenant_stack.directory / "logs" / f"{tenant}-scheduler.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(localstack.VENV_PYTHON), "-m", "service", "run-scheduled", "--every", str(SCHEDULER_EVERY)],
            cwd=tenancy.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _scheduler_pid_file(tenant).parent.mkdir(parents=True, exist_ok=True)
    _scheduler_pid_file(tenant).write_text(f"{process.pid}\n")


def start_dispatcher(tenant_stack: localstack.Stack, tenant: str, env: dict[str, str]) -> None:
    """Start the tenant's webhook dispatcher with its gunicorn's environment but no signing key; it
    logs to logs/<tenant>-dispatcher.log beside gunicorn's."""
    process = tenant_stack.start_dispatcher(tenant, env, detach=True)
    _dispatcher_pid_file(tenant).parent.mkdir(parents=True, exist_ok=True)
    _dispatcher_pid_file(tenant).write_text(f"{process.pid}\n")


def status() -> int:
    shown = 0
    for tenant in tenancy.discover_tenants():
        alive = running(tenant.name)
        if alive:
            print(f"{tenant.name} {alive[1]}", flush=True)
            shown += 1
    return 0 if shown else 1


def stop_server(tenant: str) -> bool:
    """Stop the tenant's scheduler, its webhook dispatcher (which finishes its sends in flight, 15 s
    at most) and its gunicorn (which finishes its requests first); whether the gunicorn was running."""
    _stop(scheduler_running(tenant))
    _scheduler_pid_file(tenant).unlink(missing_ok=True)
    _stop(dispatcher_running(tenant))
    _dispatcher_pid_file(tenant).unlink(missing_ok=True)
    alive = running(tenant)
    _stop(alive[0] if alive else None)
    _pid_file(tenant).unlink(missing_ok=True)
    return alive is not None


def _stop(pid: int | None) -> None:
    """SIGTERM, then wait up to 30 s for the process to exit."""
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if _exited(pid):
            break
        time.sleep(0.1)


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
    pid_files = [*(STATE / "run").glob("*.pid"), *(STATE / "run" / "scheduler").glob("*.pid"),
                 *(STATE / "run" / "dispatcher").glob("*.pid")]
    for tenant in sorted({pid_file.stem for pid_file in pid_files}):
        stop_server(tenant)
    # Every tenant's cluster that ran here, also one whose tenants/ folder has gone since.
    for tenant_dir in sorted(path.parent for path in STATE.glob("*/secrets")):
        stack(tenant_dir.name, FIRST_APP_PORT).cluster.stop()


def run() -> None:
    up()
    try:
        # Inside the try: a Ctrl-C as soon as this line shows still stops everything cleanly.
        print("Serving; press Ctrl-C to stop.", flush=True)
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
