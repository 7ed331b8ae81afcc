"""Run every tenant of tenants/ locally: a private PostgreSQL and one gunicorn per tenant.

    scripts/dev run      start everything, print `<tenant> <base-url>` lines, stop on Ctrl-C
    scripts/dev up       the same, left running in the background
    scripts/dev down     stop everything `up` started
    scripts/dev status   print the lines of the tenants that are running
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import localstack

ROOT = Path(__file__).resolve().parent.parent

STATE = ROOT / ".local" / "dev"
PG_PORT = int(os.environ.get("DEV_PG_PORT", "55432"))
FIRST_APP_PORT = 8001


def _stack() -> localstack.Stack:
    return localstack.Stack(STATE, PG_PORT)


def _pid_file(tenant: str) -> Path:
    return STATE / "run" / f"{tenant}.pid"


def _running(tenant: str) -> tuple[int, str] | None:
    """(pid, url) of a tenant's gunicorn started by `up`, if it is still alive."""
    try:
        pid_text, url = _pid_file(tenant).read_text().split()
        os.kill(int(pid_text), 0)
    except (OSError, ValueError):
        return None
    return int(pid_text), url


def _ports(tenants: list[localstack.Tenant]) -> dict[str, int]:
    """Each tenant's LOCAL_PORT from its local.env, or the next port past every one taken."""
    ports = {t.name: t.local_port for t in tenants if t.local_port}
    next_port = max([FIRST_APP_PORT - 1, *ports.values()]) + 1
    for tenant in tenants:
        if tenant.name not in ports:
            ports[tenant.name], next_port = next_port, next_port + 1
    return ports


def up() -> list[localstack.Server]:
    tenants = localstack.discover_tenants()
    if not tenants:
        sys.exit("no tenants: tenants/<name>/tenant.env is missing")
    stack = _stack()
    if not stack.cluster.is_running() and localstack.port_taken(PG_PORT):
        sys.exit(
            f"port {PG_PORT} of the local PostgreSQL is taken (another checkout's `make run`?):"
            " choose a free one with DEV_PG_PORT, e.g. `DEV_PG_PORT=55433 make run`"
        )
    ports = _ports(tenants)
    for tenant, port in ports.items():
        if not _running(tenant) and localstack.port_taken(port):
            sys.exit(
                f"port {port} of tenant {tenant} is taken (another checkout's `make run`?):"
                f" choose a free one with LOCAL_PORT in tenants/{tenant}/local.env"
            )
    stack.cluster.start()
    servers = []
    for tenant, port in ports.items():
        if _running(tenant):
            continue
        env = stack.prepare(next(t for t in tenants if t.name == tenant))
        server = stack.start_server(tenant, env, port, detach=True)
        _pid_file(tenant).parent.mkdir(parents=True, exist_ok=True)
        _pid_file(tenant).write_text(f"{server.process.pid} {server.url}\n")
        servers.append(server)
    status()
    return servers


def status() -> int:
    shown = 0
    for tenant in localstack.discover_tenants():
        running = _running(tenant.name)
        if running:
            print(f"{tenant.name} {running[1]}", flush=True)
            shown += 1
    return 0 if shown else 1


def down() -> None:
    for pid_file in sorted((STATE / "run").glob("*.pid")):
        running = _running(pid_file.stem)
        if running:
            os.kill(running[0], signal.SIGTERM)
            for _ in range(300):
                try:
                    os.kill(running[0], 0)
                except OSError:
                    break
                time.sleep(0.1)
        pid_file.unlink()
    _stack().cluster.stop()


def run() -> None:
    up()
    print("Serving; press Ctrl-C to stop.", flush=True)
    try:
        while all(_running(t.name) for t in localstack.discover_tenants()):
            time.sleep(1)
        print("a tenant's server stopped; see .local/dev/logs", file=sys.stderr)
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
