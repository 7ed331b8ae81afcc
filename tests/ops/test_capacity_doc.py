"""docs/operations.md, "Capacity per tenant": its tables are computed here from the rendered
manifests (`kubectl kustomize tenants/tenant1`), so a changed request, limit, replica count or
volume fails until the doc says the same."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
SECTION = "## Capacity per tenant"
UNITS = {"m": Decimal("0.001"), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "": Decimal(1)}
MIB = Decimal(2**20)
API, POSTGRES, WEBHOOKS = "finance-api", "postgres", "finance-webhooks"
# The jobs that may run beside the service: one pass of the scheduler, the nightly dump, a
# pgBackRest backup (full and differential are the same pod, on different days) and the drill.
JOBS = ("finance-scheduler", "postgres-backup", "postgres-backup-full", "restore-drill")


def quantity(value) -> Decimal:
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    return Decimal(number) * UNITS[unit]


@cache
def rendered() -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (1.32 or newer)", pytrace=False)
    output = subprocess.run([kubectl, "kustomize", str(ROOT / "tenants" / "tenant1")],
                            capture_output=True, text=True, check=True).stdout
    return tuple(obj for obj in yaml.safe_load_all(output) if obj)


def one(kind: str, name: str) -> dict:
    (obj,) = [obj for obj in rendered() if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return obj


def pods() -> dict[str, dict]:
    """Each workload's pod spec, by the workload's name."""
    specs = {}
    for obj in rendered():
        if obj["kind"] == "CronJob":
            specs[obj["metadata"]["name"]] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] in ("Deployment", "StatefulSet"):
            specs[obj["metadata"]["name"]] = obj["spec"]["template"]["spec"]
    return specs


def pod_figures(pod: dict) -> tuple[Decimal, ...]:
    """What one pod reserves and may use, as the scheduler and the quota count it (the larger of its
    containers' sum and any init container): CPU and memory requests, CPU and memory limits, and
    the disk its emptyDir volumes may fill (memory-backed ones count as memory, inside the limit)."""
    def amount(container, kind, resource):
        return quantity(container["resources"][kind][resource])

    figures = []
    for kind, resource in (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")):
        running = sum((amount(c, kind, resource) for c in pod["containers"]), Decimal(0))
        figures.append(max([running, *(amount(c, kind, resource) for c in pod.get("initContainers", []))]))
    disk = sum((quantity(volume["emptyDir"].get("sizeLimit", 0)) for volume in pod.get("volumes", [])
                if "emptyDir" in volume and volume["emptyDir"].get("medium") != "Memory"), Decimal(0))
    return (*figures, disk)


def scenarios() -> dict[str, Counter]:
    """The doc's totals: how many pods of each workload run, by the row's first cell."""
    api = one("Deployment", API)["spec"]
    autoscaler = one("HorizontalPodAutoscaler", API)["spec"]
    webhooks = one("Deployment", WEBHOOKS)["spec"]
    running = Counter({API: api["replicas"], POSTGRES: one("StatefulSet", POSTGRES)["spec"]["replicas"],
                       WEBHOOKS: webhooks["replicas"]})
    surge = Counter({API: api["strategy"]["rollingUpdate"]["maxSurge"],
                     WEBHOOKS: webhooks["strategy"]["rollingUpdate"]["maxSurge"]})
    at_max = running + Counter({API: autoscaler["maxReplicas"] - api["replicas"]})
    jobs = Counter(dict.fromkeys(JOBS, 1))
    return {
        "running (default replicas)": running,
        "during a rolling update": running + surge,
        "at the autoscaler's maximum": at_max,
        "at the maximum, during a rolling update, with every job at once": at_max + surge + jobs,
    }


def cores(value: Decimal) -> str:
    return format(value.normalize(), "f")


def mib(value: Decimal) -> str:
    return f"{value / MIB:.0f} MiB"


def formatted(figures: tuple[Decimal, ...]) -> list[str]:
    cpu_request, memory_request, cpu_limit, memory_limit, disk = figures
    return [cores(cpu_request), mib(memory_request), cores(cpu_limit), mib(memory_limit), mib(disk)]


def doc_tables() -> list[list[list[str]]]:
    """The markdown tables of the section, each a list of rows of cells (header and rule left out)."""
    text = DOC.read_text()
    assert SECTION in text, f"{DOC} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    tables, current = [], []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def name_of(cell: str) -> str:
    """The first `code` name of a cell."""
    return re.search(r"`([^`]+)`", cell).group(1)


def test_each_workloads_pod_is_as_the_doc_says():
    per_pod, _, _ = doc_tables()
    specs = pods()
    shown = {name_of(row[0]): row[-5:] for row in per_pod}
    # The differential backup's pod is the full one's, on other days.
    assert pod_figures(specs["postgres-backup-diff"]) == pod_figures(specs["postgres-backup-full"])
    assert set(shown) == set(specs) - {"postgres-backup-diff"}
    for name, spec in specs.items():
        if name in shown:
            assert shown[name] == formatted(pod_figures(spec)), name


def test_the_tenants_totals_are_as_the_doc_says():
    _, totals, _ = doc_tables()
    specs = pods()
    rows = {row[0]: row[1:] for row in totals}
    for label, counts in scenarios().items():
        figures = [sum((count * pod_figures(specs[name])[i] for name, count in counts.items()), Decimal(0))
                   for i in range(5)]
        assert rows.get(label) == [str(sum(counts.values())), *formatted(tuple(figures))], label
    # The ceiling: the namespace's ResourceQuota, which the worst case must fit.
    hard = one("ResourceQuota", "finance-quota")["spec"]["hard"]
    quota = [hard["pods"], cores(quantity(hard["requests.cpu"])), mib(quantity(hard["requests.memory"])),
             cores(quantity(hard["limits.cpu"])), mib(quantity(hard["limits.memory"])), "not limited"]
    assert rows.get("the namespace's ResourceQuota `finance-quota`") == quota
    assert len(rows) == len(scenarios()) + 1


def test_the_tenants_volumes_are_as_the_doc_says():
    _, _, storage = doc_tables()
    claims = {"postgres-backups": one("PersistentVolumeClaim", "postgres-backups")["spec"]}
    for template in one("StatefulSet", POSTGRES)["spec"]["volumeClaimTemplates"]:
        claims[f"{template['metadata']['name']}-postgres-0"] = template["spec"]
    sizes = {name: quantity(spec["resources"]["requests"]["storage"]) for name, spec in claims.items()}
    hard = one("ResourceQuota", "finance-quota")["spec"]["hard"]
    expected = {name: f"{size / 2**30:.0f} GiB" for name, size in sizes.items()}
    expected["total"] = (f"{sum(sizes.values()) / 2**30:.0f} GiB in {len(sizes)} claims "
                         f"(the quota: {quantity(hard['requests.storage']) / 2**30:.0f} GiB "
                         f"in {hard['persistentvolumeclaims']})")
    shown = {("total" if row[0] == "total" else name_of(row[0])): row[-1] for row in storage}
    assert shown == expected


def test_the_summary_in_words_and_the_readme_quote_the_same_figures():
    _, totals, _ = doc_tables()
    rows = {row[0]: row[1:] for row in totals}
    running, at_max = rows["running (default replicas)"], rows["at the autoscaler's maximum"]
    quota = rows["the namespace's ResourceQuota `finance-quota`"]

    def gib(cell: str) -> str:
        return f"{Decimal(cell.removesuffix(' MiB')) / 1024:.1f}".removesuffix(".0") + " GiB"

    in_words = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"{running[1]} CPU and {gib(running[2])} of memory reserved" in " ".join(in_words.split())
    assert f"up to {at_max[1]} CPU and {gib(at_max[2])}" in " ".join(in_words.split())
    assert f"reserves {running[1]} CPU and {gib(running[2])} of memory at its default size, up to {quota[1]} CPU " \
           f"and {gib(quota[2])}" in readme
