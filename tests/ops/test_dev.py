"""The local run (`make run`, scripts/dev): a taken port is one clear line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import localstack
import pytest

from tests.conftest import ROOT


@pytest.fixture
def taken_port():
    """A port something else listens on, as a second checkout's PostgreSQL would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_postgresql_port_is_one_line_naming_dev_pg_port(taken_port):
    # tenant1 (LOCAL_PORT 8001) is the first tenant: its PostgreSQL port is DEV_PG_PORT itself.
    dev_cluster = localstack.Cluster(
        localstack.cluster_directory(ROOT / ".local" / "dev" / "tenant1" / "postgresql"), 0
    )
    if dev_cluster.is_running():
        pytest.skip("this checkout's own `make run` cluster is running; the check applies before it starts")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "up"],
        env={**os.environ, "DEV_PG_PORT": str(taken_port)}, capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(taken_port) in lines[0] and "DEV_PG_PORT" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not dev_cluster.is_running()


def test_without_pgbackrest_make_run_says_what_to_install(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "up"],
        env={**os.environ, "PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "make run archives every tenant with pgBackRest, which is not installed:"
        " `apt-get install pgbackrest` (scripts/install does it when run as root)"
    ]


@pytest.mark.parametrize("line", ['TENANT_TIMEZONE="Europe/Berlin"', "TENANT_TIMEZONE=Europe/Berlin # Berlin"])
def test_an_env_value_kustomize_would_read_otherwise_is_refused(tmp_path, line):
    import tenancy

    env_file = tmp_path / "tenant.env"
    env_file.write_text(f"# the tenant's settings\nTENANT_CURRENCY=EUR\n{line}\n")
    with pytest.raises(tenancy.UsageError, match="TENANT_TIMEZONE"):
        tenancy.read_env_file(env_file)
    env_file.write_text("# the tenant's settings\nTENANT_CURRENCY=EUR\nTENANT_TIMEZONE=Europe/Berlin\n")
    assert tenancy.read_env_file(env_file) == {"TENANT_CURRENCY": "EUR", "TENANT_TIMEZONE": "Europe/Berlin"}
