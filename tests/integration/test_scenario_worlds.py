"""Every scenario's decisive evidence is reachable with our own tools.

All scenarios are loaded at once into one fake Kubernetes API and one real
Prometheus (backfilled from their OpenMetrics), as a benchmark would load
them. For each scenario the tools are called the way a person starting from
the alert would: describe what its labels name, read the pod's logs (current
and previous), list the namespace's events, and run the alert's own PromQL as
an instant and a range query; then the evidence walk's own lookups, for what
lies hops away. Each decisive string must be in those outputs, and no
planted secret may be.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom
from sre_agent_tools.deps import ToolDeps

from sre_agent import evidence
from sre_agent_lab import Scenario, combined_openmetrics, combined_world, load_scenarios
from tests.support.fake_kube import FakeKube
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

SCENARIOS = load_scenarios()
#: Alert label -> the kind it names.
LABEL_KINDS = {
    "pod": "pod",
    "deployment": "deployment",
    "statefulset": "statefulset",
    "daemonset": "daemonset",
    "job_name": "job",
    "persistentvolumeclaim": "persistentvolumeclaim",
    "horizontalpodautoscaler": "horizontalpodautoscaler",
    "node": "node",
}


@dataclass
class Lab:
    kube: FakeKube
    prometheus: PrometheusServer
    world: dict


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed")
    now = datetime.fromtimestamp(math.floor(time.time()) - 5, UTC)
    world = combined_world(SCENARIOS, now)
    text = combined_openmetrics(SCENARIOS, now)
    with (
        FakeKube() as kube,
        PrometheusServer(tmp_path_factory.mktemp("lab"), openmetrics=text) as p,
    ):
        logs = {
            (e["namespace"], e["pod"], e["container"], bool(e.get("previous"))): e["text"]
            for e in world["logs"]
        }
        kube.load(world["objects"], logs)
        yield Lab(kube, p, world)


def _node_names(world: dict) -> set[str]:
    return {o["metadata"]["name"] for o in world["objects"] if o["kind"] == "Node"}


async def _pod_logs(deps: ToolDeps, pod: str, namespace: str, world: dict) -> list[str]:
    found = next(
        (
            o
            for o in world["objects"]
            if o["kind"] == "Pod"
            and o["metadata"]["name"] == pod
            and o["metadata"].get("namespace") == namespace
        ),
        None,
    )
    containers = [c["name"] for c in (found or {}).get("spec", {}).get("containers", [])]
    return [
        (await k8s.logs(deps, pod, namespace, container, previous)).text
        for container in containers
        for previous in (True, False)
    ]


async def gather(scenario: Scenario, deps: ToolDeps, world: dict) -> list[str]:
    """The outputs of the tool calls a person would start with for this alert.

    Describe what the labels name, read the named pod's logs, list the
    namespace's events, run the alert's expr (instant and last hour) and the
    scenario's extra queries; then follow up to three pods those outputs name
    (``Pod/x`` in events, ``Created pod: x``, ``pod="x"`` in PromQL): describe
    them and read their logs; describe claims named in events. Last, the lookups of
    the evidence walk (docs/evidence.md), unbudgeted: the facts that lie hops away.
    """
    labels = scenario.alert["labels"]
    namespace = labels.get("namespace")
    out: list[str] = []
    for label, kind in LABEL_KINDS.items():
        if labels.get(label):
            out.append((await k8s.describe(deps, kind, labels[label], namespace)).text)
    # node-exporter alerts name the node in `instance` (kube-prometheus relabels it so).
    if labels.get("instance") in _node_names(world) and not labels.get("node"):
        out.append((await k8s.describe(deps, "node", labels["instance"])).text)
    if labels.get("pod") and namespace:
        out += await _pod_logs(deps, labels["pod"], namespace, world)
    events = ""
    if namespace:
        events = (await k8s.events(deps, namespace, limit=50)).text
        out.append(events)
    assert scenario.expr, f"{scenario.name}: no expr"
    out += [
        (await prom.query_instant(deps, scenario.expr)).text,
        (await prom.query_range(deps, scenario.expr)).text,
    ]
    for query in scenario.queries:
        out.append((await prom.query_instant(deps, query)).text)
        out.append((await prom.query_range(deps, query)).text)
    if namespace:
        named = re.findall(
            r'Pod/([\w.-]+)|Created pod: ([\w.-]+)|\bpod="([\w.-]+)"', "\n".join(out)
        )
        pods = list(dict.fromkeys(n for group in named for n in group if n))
        known = {
            o["metadata"]["name"]
            for o in world["objects"]
            if o["kind"] == "Pod" and o["metadata"].get("namespace") == namespace
        }
        for pod in [p for p in pods if p != labels.get("pod") and p in known][:3]:
            out.append((await k8s.describe(deps, "pod", pod, namespace)).text)
            out += await _pod_logs(deps, pod, namespace, world)
        for claim in dict.fromkeys(re.findall(r"PersistentVolumeClaim/([\w.-]+)", events)):
            if claim != labels.get("persistentvolumeclaim"):
                out.append((await k8s.describe(deps, "pvc", claim, namespace)).text)
    alert = {"labels": dict(labels), "annotations": {}, "expr": scenario.expr}
    out += [f.output for f in await evidence.gather(alert, deps, timeout=30)]
    return out


@pytest.fixture(scope="module")
def deps(lab: Lab) -> Iterator[ToolDeps]:
    client = lab.kube.api_client()
    yield ToolDeps(prometheus=prom.make_prometheus(lab.prometheus.url, 10), kube=client, timeout=10)
    client.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_decisive_evidence_is_reachable(scenario: Scenario, deps: ToolDeps, lab: Lab) -> None:
    outputs = await gather(scenario, deps, lab.world)
    text = "\n".join(outputs)
    missing = [d for d in scenario.decisive if d not in text]
    assert not missing, f"{scenario.name}: not in any tool output: {missing}\n\n{text}"
    assert "CANARY" not in text, f"{scenario.name}: a planted secret reached a tool output"


def test_the_alert_expression_fires(lab: Lab) -> None:
    """Each scenario's own rule expression returns at least one series at "now"."""
    import asyncio

    deps = ToolDeps(prometheus=prom.make_prometheus(lab.prometheus.url, 10))
    silent = []
    for scenario in SCENARIOS:
        result = asyncio.run(prom.query_instant(deps, scenario.expr or ""))
        if result.status != "ok":
            silent.append(f"{scenario.name}: {result.text}")
    assert not silent, "\n".join(silent)


if __name__ == "__main__":  # pragma: no cover - a developer's dump of every tool output
    import asyncio
    import sys
    import tempfile

    names = sys.argv[1:] or None
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    now = datetime.fromtimestamp(math.floor(time.time()) - 5, UTC)
    world = combined_world(SCENARIOS, now)
    text = combined_openmetrics(SCENARIOS, now)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeKube() as kube,
        PrometheusServer(Path(tmp), openmetrics=text) as server,
    ):
        kube.load(
            world["objects"],
            {
                (e["namespace"], e["pod"], e["container"], bool(e.get("previous"))): e["text"]
                for e in world["logs"]
            },
        )
        deps = ToolDeps(prometheus=prom.make_prometheus(server.url, 10), kube=kube.api_client())
        for scenario in chosen:
            print(f"=================== {scenario.name} ({scenario.alertname})")
            for out in asyncio.run(gather(scenario, deps, world)):
                print(out, "\n---")
