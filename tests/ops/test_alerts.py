"""The alerts component (kubernetes/components/alerts): rendered per tenant, checked and unit-tested by promtool.

Offline: tenant overlays are copied into a temporary directory and the component enabled as its
kustomization.yaml tells an operator (the components, among them postgres-metrics for the archiving
alerts, and the replacement, read from that comment), rendered with `kubectl kustomize`. The
PrometheusRule's groups become a Prometheus rules file, which `promtool check rules` checks and
`promtool test rules` runs tests/ops/alerts/tenant-alerts.test.yml against: synthetic series under
which each alert must fire, and others under which it must not. promtool comes from Debian's prometheus
package (scripts/install).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from service.api import NAMESPACES
from tests.utils.kustomize import render_overlay

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "kubernetes"
COMPONENT = KUBERNETES_DIR / "components" / "alerts"
UNIT_TESTS = Path(__file__).resolve().parent / "alerts" / "tenant-alerts.test.yml"
README = ROOT / "README.md"
RUNBOOK = "README.md#alerts"
TENANT_LABEL = "finance.example.com/tenant"
# The routes that hash a password on purpose, each with the one method it serves.
HASHING_ROUTES = {"/login": "POST", "/register": "POST", "/password": "POST", "/me": "DELETE"}
PROBE_ROUTES = {"/health", "/health/ready"}
API_ALERTS = {"FinanceApiDown", "FinanceDatabaseUnavailable", "FinanceApiHighErrorRate", "FinanceApiSlowResponses"}
DURABILITY_ALERTS = {
    "FinanceWalArchivingFailing", "FinanceWalArchiveLagging", "FinanceBackupTooOld", "FinanceFullBackupTooOld",
    "FinanceRestoreDrillFailed", "FinanceRestoreDrillOverdue", "FinancePostgresMetricsMissing",
    "FinanceBackupSchedulesMissing",
}
SCHEDULER_ALERTS = {"FinanceSchedulerStalled"}
WEBHOOKS_ALERTS = {"FinanceWebhooksDown"}
ALERTS = API_ALERTS | DURABILITY_ALERTS | SCHEDULER_ALERTS | WEBHOOKS_ALERTS
RECORDS = {"namespace:pg_stat_database_tup_written:increase2m"}
# The CronJobs the durability alerts watch (kubernetes/base/postgres-pgbackrest.yaml) and the scheduler's.
CRONJOBS = {"postgres-backup-full", "postgres-backup-diff", "restore-drill", "finance-scheduler"}
# Methods Flask answers on every route by itself.
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}


def tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {hint}", pytrace=False)
    return path


def promtool() -> str:
    return tool("promtool", "run scripts/install as root, or apt-get install prometheus (it ships promtool)")


def enabling_snippet() -> dict:
    """The `components:` and `replacements:` the component's kustomization.yaml tells an operator to add."""
    comment = [line[1:] for line in (COMPONENT / "kustomization.yaml").read_text().splitlines() if line.startswith("#")]
    start = comment.index("   components:")
    end = comment.index("", start)
    return yaml.safe_load(textwrap.dedent("\n".join(comment[start:end])))


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, tuple[list[dict], list[dict]]]:
    """Per tenant (tenant1 and tenant2): its render with the component enabled, and without."""
    work = tmp_path_factory.mktemp("alerts")
    return {tenant: (render_overlay(work, tenant, enabling_snippet()), render_overlay(work, tenant, None))
            for tenant in ("tenant1", "tenant2")}


def the_rule(objects: list[dict]) -> dict:
    (rule,) = [obj for obj in objects if obj["kind"] == "PrometheusRule"]
    return rule


def all_rules(rule: dict) -> list[dict]:
    """The alerting and the recording rules."""
    return [item for group in rule["spec"]["groups"] for item in group["rules"]]


def alert_rules(rule: dict) -> list[dict]:
    return [item for item in all_rules(rule) if "alert" in item]


@pytest.fixture(scope="module")
def rules_file(renders, tmp_path_factory) -> Path:
    """tenant1's rule groups as a Prometheus rules file, beside a copy of the unit tests."""
    work = tmp_path_factory.mktemp("promtool")
    path = work / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": the_rule(renders["tenant1"][0])["spec"]["groups"]}, sort_keys=False))
    shutil.copy(UNIT_TESTS, work / UNIT_TESTS.name)
    return path


# --- the render ---------------------------------------------------------------------------------


def ref(obj: dict) -> str:
    """Kind/name, a generated ConfigMap's name without its content hash."""
    name = obj["metadata"]["name"]
    if obj["kind"] == "ConfigMap":
        name = re.sub(r"-[a-z0-9]{10}$", "", name)
    return f"{obj['kind']}/{name}"


def test_the_component_adds_the_rule_and_the_monitors_and_changes_nothing_else(renders):
    snippet = enabling_snippet()
    assert snippet["components"] == [
        "../../kubernetes/components/service-monitor", "../../kubernetes/components/postgres-metrics",
        "../../kubernetes/components/alerts",
    ], "the alerts read what the service-monitor and postgres-metrics components scrape"
    for enabled, plain in renders.values():
        changed = {ref(obj) for obj in enabled if obj not in plain}
        assert changed == {
            "PrometheusRule/finance-api", "ServiceMonitor/finance-api", "PodMonitor/postgres",
            "NetworkPolicy/postgres-metrics",
            # postgres-metrics: the exporter's sidecar, and its role's script among the init scripts.
            "StatefulSet/postgres", "ConfigMap/postgres-init-script",
        }
        assert [obj for obj in enabled if ref(obj) not in changed] == [
            obj for obj in plain if ref(obj) not in changed
        ], "nothing else changes"


@pytest.mark.parametrize("tenant", ["tenant1", "tenant2"])
def test_every_alert_watches_its_own_tenants_namespace_only(renders, tenant):
    namespace = f"finance-{tenant}"
    rule = the_rule(renders[tenant][0])
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == namespace
    assert rule["metadata"]["labels"][TENANT_LABEL] == tenant
    assert "<tenant>" not in yaml.safe_dump(rule), "the overlay's replacement left the placeholder"
    for item in all_rules(rule):
        expr, name = item["expr"], item.get("alert") or item["record"]
        # The replacement sets the first double-quoted string: the only one, the namespace.
        assert re.findall(r'"([^"]*)"', expr) == [namespace], f"{name}: {expr}"
        # Selectors without the namespace are joined on it to the one that has it.
        selectors = re.findall(r"\{[^}]*\}", expr)
        if len(selectors) > 1 or "vector(" in expr:
            assert "on (namespace)" in expr, f"{name}: {expr}"
        # What a rule records is the tenant's alone: its name's level is the namespace.
        if "record" in item:
            assert item["record"].startswith("namespace:") and "sum by (namespace)" in expr, name


def test_each_alert_has_a_severity_a_summary_a_description_and_the_runbook(renders):
    rule = the_rule(renders["tenant1"][0])
    assert {item["alert"] for item in alert_rules(rule)} == ALERTS
    assert {item["record"] for item in all_rules(rule) if "record" in item} == RECORDS
    runbook = README.read_text().split("\n### Alerts\n", 1)
    assert len(runbook) == 2, "README.md has no Alerts subsection (the runbook)"
    runbook_text = runbook[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    for item in alert_rules(rule):
        assert item["labels"]["severity"] in {"critical", "warning"}
        assert re.fullmatch(r"\d+m", item["for"])
        annotations = item["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert "{{ $labels.namespace }}" in annotations["summary"]
        assert "{{ $labels.namespace }}" in annotations["description"]
        assert annotations["runbook_url"] == RUNBOOK
        assert f"`{item['alert']}`" in runbook_text, f"the README's Alerts subsection says nothing of {item['alert']}"


def test_the_alerts_read_the_job_and_the_probe_the_manifests_produce(renders):
    objects = renders["tenant1"][0]
    rules = {item["alert"]: item["expr"] for item in alert_rules(the_rule(objects))}
    # The Prometheus Operator names the job after the Service the ServiceMonitor selects (unless jobLabel).
    (monitor,) = [obj for obj in objects if obj["kind"] == "ServiceMonitor"]
    assert "jobLabel" not in monitor["spec"]
    (service,) = [obj for obj in objects if obj["kind"] == "Service"
                  and monitor["spec"]["selector"]["matchLabels"].items() <= obj["metadata"]["labels"].items()]
    assert f"up{{job='{service['metadata']['name']}'}}" in rules["FinanceApiDown"]
    # The readiness probe is what FinanceDatabaseUnavailable counts: several probes in its 2-minute rate.
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "finance-api"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    probe = api["readinessProbe"]
    assert f"route='{probe['httpGet']['path']}', status='503'" in rules["FinanceDatabaseUnavailable"]
    assert probe["periodSeconds"] <= 30 and "[2m]" in rules["FinanceDatabaseUnavailable"]


def test_the_durability_alerts_read_the_cronjobs_and_the_exporter_the_manifests_produce(renders):
    objects = renders["tenant1"][0]
    rule = the_rule(objects)
    exprs = "\n".join(item["expr"] for item in all_rules(rule))
    # Every CronJob the alerts name exists, under that name, and keeps a finished Job for
    # kube-state-metrics to report (FinanceRestoreDrillFailed reads the failed drill's Job).
    cronjobs = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "CronJob"}
    named = set(re.findall(r"cronjob=~?'([^']*)'", exprs)) | set(re.findall(r"owner_name='([^']*)'", exprs))
    assert named == {
        "postgres-backup-(full|diff)", "postgres-backup-full", "postgres-backup-diff", "restore-drill",
        "finance-scheduler",
    }
    assert set(cronjobs) >= CRONJOBS, f"missing CronJobs: {sorted(CRONJOBS - set(cronjobs))}"
    for name in CRONJOBS:
        assert cronjobs[name]["spec"].get("failedJobsHistoryLimit", 1) >= 1, name
        assert cronjobs[name]["spec"].get("successfulJobsHistoryLimit", 3) >= 1, name
    # The exporter the archiving alerts read runs beside PostgreSQL and is scraped every 30 s at
    # most, which the 2-minute windows of the recording rule and FinanceWalArchiveLagging assume.
    (monitor,) = [obj for obj in objects if obj["kind"] == "PodMonitor"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert int(endpoint["interval"].removesuffix("s")) <= 30
    assert "[2m]" in rule_expr(rule, "namespace:pg_stat_database_tup_written:increase2m")


def rule_expr(rule: dict, name: str) -> str:
    (expr,) = [item["expr"] for item in all_rules(rule) if name in (item.get("alert"), item.get("record"))]
    return expr


def test_the_routes_left_out_of_the_latency_alert_serve_only_password_hashing():
    """The latency alert leaves out whole routes; that leaves out only the hashing requests while
    each of these routes serves nothing else. A route that gains a method fails here."""
    served = {
        namespace.path.rstrip("/") + url: set(resource.methods)
        for namespace in NAMESPACES
        for resource, urls, *_ in namespace.resources
        for url in urls
    }
    for route, method in HASHING_ROUTES.items():
        assert served[route] - AUTOMATIC_METHODS == {method}, f"{route} serves {sorted(served[route])}"
    assert set(served) >= PROBE_ROUTES


# --- promtool ---------------------------------------------------------------------------------------


def test_promtool_checks_the_rules(rules_file):
    result = subprocess.run([promtool(), "check", "rules", str(rules_file)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS) + len(RECORDS)} rules found" in result.stdout


def test_promtool_unit_tests_pass(rules_file):
    result = subprocess.run([promtool(), "test", "rules", UNIT_TESTS.name], cwd=rules_file.parent,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_show_every_alert_firing_and_silent():
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
            for alert in check["exp_alerts"]:
                assert alert["exp_labels"]["namespace"] == "finance-tenant1"
                assert alert["exp_annotations"]["runbook_url"] == RUNBOOK
    assert firing == ALERTS, f"never shown firing: {sorted(ALERTS - firing)}"
    assert silent == ALERTS, f"never shown silent: {sorted(ALERTS - silent)}"
