"""The postgres-metrics component (kubernetes/components/postgres-metrics), and the PostgreSQL metrics
the alerts read, from the real exporter against a real PostgreSQL that archives with pgBackRest.

The render: tenant1's overlay with the component enabled as its kustomization.yaml tells an
operator. The exporter: Debian's prometheus-postgres-exporter (scripts/install), connected as the
sidecar is, through the server's socket as the role the component's postgres-monitor-role.sh
creates. The sidecar runs upstream's v0.20.1; both export pg_stat_archiver_* and
pg_stat_database_* under the names checked here (v0.20.1: collector/pg_stat_archiver.go and
collector/pg_stat_database.go, both enabled by default).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes_validate
import localstack
import psycopg
import pytest
import yaml

from tests.utils.kustomize import render_overlay

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "kubernetes" / "components" / "postgres-metrics"
ROLE_SCRIPT = COMPONENT / "postgres-monitor-role.sh"
RULES = ROOT / "kubernetes" / "components" / "alerts" / "prometheus-rule.yaml"
DASHBOARD = ROOT / "kubernetes" / "components" / "alerts" / "grafana-dashboard.json"
METRICS_SOURCE = ROOT / "service" / "metrics.py"
SNIPPET = {"components": ["../../kubernetes/components/postgres-metrics"]}
KUBERNETES_VERSION = "1.32.0"
# The release whose metric names the rules use, pinned by digest (docs/security.md, "Supply chain").
EXPORTER_IMAGE = re.compile(r"quay\.io/prometheuscommunity/postgres-exporter:v0\.20\.1@sha256:[0-9a-f]{64}")
MONITOR_ROLE = "finance_monitor"
SOCKET_DIR = "/var/run/postgresql"
METRICS_PORT = 9187


# --- the render -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> list[dict]:
    return render_overlay(tmp_path_factory.mktemp("postgres-metrics"), "tenant1", SNIPPET)


def one(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return found


def pod_spec(objects: list[dict]) -> dict:
    return one(objects, "StatefulSet", "postgres")["spec"]["template"]["spec"]


def container(objects: list[dict], name: str) -> dict:
    (found,) = [item for item in pod_spec(objects)["containers"] if item["name"] == name]
    return found


def dsn(sidecar: dict) -> dict[str, str]:
    (value,) = [item["value"] for item in sidecar["env"] if item["name"] == "DATA_SOURCE_NAME"]
    return dict(pair.split("=", 1) for pair in value.split())


def test_the_sidecar_is_pinned_restricted_and_bounded(objects):
    sidecar = container(objects, "postgres-exporter")
    assert EXPORTER_IMAGE.fullmatch(sidecar["image"]), sidecar["image"]
    context = sidecar["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec(objects)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(sidecar["resources"][kind]) == {"cpu", "memory"}
    # Restarted when it hangs, but never able to take the database out of its Service: a readiness
    # probe of the sidecar would count towards the pod's readiness.
    assert sidecar["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert "readinessProbe" not in sidecar and "startupProbe" not in sidecar


def test_the_sidecar_connects_through_the_servers_socket_as_the_monitor_role(objects):
    sidecar = container(objects, "postgres-exporter")
    assert dsn(sidecar) == {"host": SOCKET_DIR, "user": MONITOR_ROLE, "dbname": "postgres", "sslmode": "disable"}
    # The directory the server puts its socket in is the same volume in both containers.
    postgres_mounts = {mount["mountPath"]: mount["name"] for mount in container(objects, "postgres")["volumeMounts"]}
    (mount,) = sidecar["volumeMounts"]
    assert mount == {"name": postgres_mounts[SOCKET_DIR], "mountPath": SOCKET_DIR, "readOnly": True}
    # The role's script is among the scripts the image runs on a new cluster, after postgres-init.sh.
    init_mount = next(item for item in container(objects, "postgres")["volumeMounts"]
                      if item["mountPath"] == "/docker-entrypoint-initdb.d")
    volume = next(item for item in pod_spec(objects)["volumes"] if item["name"] == init_mount["name"])
    config_map = one(objects, "ConfigMap", volume["configMap"]["name"])
    assert sorted(config_map["data"]) == ["postgres-init.sh", "postgres-monitor-role.sh"]
    assert config_map["data"]["postgres-monitor-role.sh"] == ROLE_SCRIPT.read_text()
    assert volume["configMap"]["defaultMode"] & 0o555 == 0o555, "the image runs an executable script, not sources it"


def test_only_the_monitoring_namespace_reaches_the_exporter_and_the_pod_monitor_scrapes_it(objects):
    sidecar = container(objects, "postgres-exporter")
    (port,) = sidecar["ports"]
    assert port == {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
    assert f"--web.listen-address=:{METRICS_PORT}" in sidecar["args"]
    template_labels = one(objects, "StatefulSet", "postgres")["spec"]["template"]["metadata"]["labels"]

    policy = one(objects, "NetworkPolicy", "postgres-metrics")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= template_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
    }]

    monitor = one(objects, "PodMonitor", "postgres")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "finance-tenant1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"


def test_the_components_objects_meet_the_pinned_kubernetes_schemas(objects):
    for kind, name in (("StatefulSet", "postgres"), ("NetworkPolicy", "postgres-metrics")):
        kubernetes_validate.validate(one(objects, kind, name), KUBERNETES_VERSION, strict=True)


# --- the real exporter --------------------------------------------------------------------------------


def exporter_binary() -> str:
    for name in ("prometheus-postgres-exporter", "postgres_exporter"):
        if path := shutil.which(name):
            return path
    pytest.fail("postgres_exporter is not installed: run scripts/install as root, or apt-get install "
                "prometheus-postgres-exporter", pytrace=False)


Scrape = Callable[[], dict[str, float]]


def parse_metrics(text: str) -> dict[str, float]:
    """Each metric name with the sum of its series' values."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group()
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


@pytest.fixture(scope="module")
def archiving(tmp_path_factory) -> Iterator[tuple[localstack.Cluster, localstack.Archive, Scrape]]:
    """A private cluster archiving with pgBackRest, the component's role created by its script, and
    the exporter connected as that role through the cluster's socket; all stopped at the end."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed: run scripts/install")
    binary = exporter_binary()
    directory = tmp_path_factory.mktemp("postgres-metrics")
    archive = localstack.Archive(localstack.cluster_directory(directory / "pgbackrest"))
    cluster = localstack.Cluster(localstack.cluster_directory(directory / "cluster"), localstack.free_port(),
                                 archive=archive)
    exporter = None
    try:
        cluster.start()
        archive.run("stanza-create")
        subprocess.run(["sh", str(ROLE_SCRIPT)], env={**cluster.client_env(), "POSTGRES_USER": localstack.SUPERUSER},
                       check=True, capture_output=True, text=True, timeout=30)
        port = localstack.free_port()
        source = f"host={cluster.socket_dir} port={cluster.port} user={MONITOR_ROLE} dbname=postgres sslmode=disable"
        exporter = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--web.telemetry-path=/metrics"],
            env={"DATA_SOURCE_NAME": source, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> dict[str, float]:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local http URL
                return parse_metrics(response.read().decode())

        deadline = time.monotonic() + 15
        while True:
            try:
                scrape()
                break
            except OSError:
                if exporter.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the exporter did not start: {exporter.stderr.read() if exporter.stderr else ''}")
                time.sleep(0.1)
        yield cluster, archive, scrape
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        cluster.stop("immediate", check=False)
        shutil.rmtree(cluster.directory, ignore_errors=True)
        shutil.rmtree(archive.directory, ignore_errors=True)


def wait_for(scrape: Scrape, condition: Callable[[dict[str, float]], bool], what: str) -> dict[str, float]:
    deadline = time.monotonic() + 15
    while not condition(metrics := scrape()):
        assert time.monotonic() < deadline, f"{what}; the exporter shows {metrics}"
        time.sleep(0.2)
    return metrics


def names_in(expressions: list[str], prefix: str) -> set[str]:
    """Metric names with the prefix in the expressions; a recorded name's middle part is no metric."""
    return {name for expr in expressions for name in re.findall(rf"(?<![\w:])({prefix}[a-z_]+)\b(?!:)", expr)}


def rule_expressions() -> list[str]:
    rule = yaml.safe_load(RULES.read_text())
    return [item["expr"] for group in rule["spec"]["groups"] for item in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_monitor_role_reads_statistics_and_nothing_else(archiving):
    cluster, _, _ = archiving
    with cluster.connect() as conn:
        conn.execute("CREATE DATABASE private_app")
        conn.execute("REVOKE ALL ON DATABASE private_app FROM PUBLIC")
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
            " rolpassword IS NULL, rolconnlimit FROM pg_authid WHERE rolname = %s", (MONITOR_ROLE,)
        ).fetchone()
        assert role == (True, False, False, False, False, False, True, 3)
        granted = conn.execute(
            "SELECT array_agg(DISTINCT b.rolname ORDER BY b.rolname) FROM pg_auth_members m"
            " JOIN pg_roles r ON r.oid = m.member JOIN pg_roles b ON b.oid = m.roleid WHERE r.rolname = %s",
            (MONITOR_ROLE,),
        ).fetchone()[0]
        assert granted == ["pg_monitor"]
    # Without a password it logs in only where the server trusts the peer: its own socket.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=cluster.port, user=MONITOR_ROLE, dbname="postgres", connect_timeout=5)
    # And only to a database that admits every role.
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user=MONITOR_ROLE, dbname="private_app")
    # Run again, it changes nothing and fails on nothing.
    subprocess.run(["sh", str(ROLE_SCRIPT)], env={**cluster.client_env(), "POSTGRES_USER": localstack.SUPERUSER},
                   check=True, capture_output=True, text=True, timeout=30)


def test_the_exporter_serves_every_postgresql_metric_the_rules_and_the_dashboard_read(archiving):
    cluster, archive, scrape = archiving
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS written (n int)")
        conn.execute("INSERT INTO written SELECT generate_series(1, 10)")
    archive.run("check")  # closes the current segment and waits until pgBackRest has it
    metrics = wait_for(scrape, lambda m: m.get("pg_stat_archiver_archived_count", 0) >= 1,
                       "no segment archived")
    assert metrics["pg_up"] == 1, "the exporter cannot connect as the monitor role"
    used = names_in(rule_expressions(), "pg_") | names_in(dashboard_expressions(), "pg_")
    assert used >= {"pg_stat_archiver_failed_count", "pg_stat_archiver_archived_count",
                    "pg_stat_archiver_last_archive_age", "pg_stat_database_tup_inserted"}
    assert used <= set(metrics), f"not exported: {sorted(used - set(metrics))}"
    assert 0 <= metrics["pg_stat_archiver_last_archive_age"] < 60


def test_rows_written_count_in_the_counters_the_lag_alert_reads(archiving):
    cluster, _, scrape = archiving
    counters = ("pg_stat_database_tup_inserted", "pg_stat_database_tup_updated", "pg_stat_database_tup_deleted")
    before = scrape()
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS written (n int)")
        conn.execute("INSERT INTO written VALUES (1), (2)")
        conn.execute("UPDATE written SET n = n + 1")
        conn.execute("DELETE FROM written")
    # A session's statistics reach pg_stat_database by the time it has ended.
    wait_for(scrape, lambda m: all(m[name] > before[name] for name in counters), "the writes were not counted")


def test_failing_archiving_counts_in_failed_count_and_not_in_archived_count(archiving):
    cluster, archive, scrape = archiving
    archive.run("check")
    before = scrape()
    archive.run("stop")  # archive-push refuses to run from now on: what a broken repository looks like
    try:
        with cluster.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS written (n int)")
            conn.execute("INSERT INTO written VALUES (1)")
            conn.execute("SELECT pg_switch_wal()")
        failing = wait_for(
            scrape, lambda m: m["pg_stat_archiver_failed_count"] > before["pg_stat_archiver_failed_count"],
            "archive-push failed, and failed_count did not count it",
        )
        assert failing["pg_stat_archiver_archived_count"] == before["pg_stat_archiver_archived_count"]
    finally:
        archive.run("start")
    # Once the repository works again, the next segment wakes the archiver, which retries the
    # failed one first (check switches a segment and waits until it is archived).
    archive.run("check")
    wait_for(scrape, lambda m: m["pg_stat_archiver_archived_count"] > before["pg_stat_archiver_archived_count"],
             "the segment was not archived after the repository came back")


# --- the dashboard ------------------------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_for_one_tenant_on_series_that_exist():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["panels"]
    (variable,) = [item for item in dashboard["templating"]["list"] if item["name"] == "namespace"]
    assert variable["type"] == "query" and "finance-.*" in json.dumps(variable)
    expressions = dashboard_expressions()
    assert expressions and all('namespace="$namespace"' in expr for expr in expressions), expressions
    # API metrics the app defines, recorded series the rules record, kube-state-metrics' series the
    # rules read (their names are checked against its documentation there); PostgreSQL's are
    # checked against the exporter above.
    app_metrics = set(re.findall(r'"(finance_[a-z_]+)"', METRICS_SOURCE.read_text()))
    app_series = {f"{name}{suffix}" for name in app_metrics for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    assert names_in(expressions, "finance_") <= app_series, names_in(expressions, "finance_") - app_series
    rule_text = "\n".join(rule_expressions())
    assert names_in(expressions, "kube_") <= names_in([rule_text], "kube_")
    recorded = {item["record"] for group in yaml.safe_load(RULES.read_text())["spec"]["groups"]
                for item in group["rules"] if "record" in item}
    assert set(re.findall(r"namespace:[a-z_]+:[a-z0-9_]+", " ".join(expressions))) <= recorded
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("requests", "errors", "latency", "archive", "backup", "drill"):
        assert subject in titles, f"no panel on {subject}"
