"""The real Prometheus for tests (the server is :mod:`sre_agent_lab.prometheus_world`, the
OpenMetrics writer :mod:`sre_agent_lab.openmetrics`), helpers for hand-written history, the
homepage scenario and its pytest fixture.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterable

import pytest

from sre_agent_lab.net import free_port
from sre_agent_lab.openmetrics import Series, openmetrics_text
from sre_agent_lab.prometheus_world import (
    READY_TIMEOUT,
    PrometheusMissing,
    PrometheusServer,
    prometheus_available,
    require_prometheus,
)

# ---------------------------------------------------------------- OpenMetrics


def timeline(
    value: Callable[[float], float | None],
    *,
    span: float = 7200,
    step: float = 30,
    end: float | None = None,
) -> list[tuple[float, float]]:
    """Points every ``step`` seconds over the last ``span`` seconds up to ``end`` (default now-5s).

    ``value(age)`` gets the sample's age in seconds before ``end``; None leaves a gap.
    """
    end = math.floor(time.time()) - 5 if end is None else end
    points = []
    for i in range(int(span // step), -1, -1):
        age = i * step
        v = value(age)
        if v is not None:
            points.append((end - age, float(v)))
    return points


# ---------------------------------------------------------------- homepage scenario

KSM = {"job": "kube-state-metrics", "instance": "10.0.0.5:8080"}
CADVISOR = {
    "job": "kubelet",
    "metrics_path": "/metrics/cadvisor",
    "instance": "10.0.0.11:10250",
    "node": "node-1",
    "namespace": "homepage",
}
API_POD = "bruno-site-api-7d9f8c6b5-x2x4q"
WEB_POD = "bruno-site-web-6b8c9d7f5-q9w8e"
DB_POD = "homepage-db-0"
#: The api deployment lost a replica this long before the data ends.
DROP_AGE = 40 * 60
#: Pods with a kube_pod_status_phase series each (5 phases per pod): more series than a cap.
PHASE_PODS = [f"filler-{i}" for i in range(8)]
PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"]


def homepage_series(end: float | None = None) -> list[Series]:
    """Two hours of a kube-prometheus-like cluster where bruno-site-api crash-loops.

    Matches examples/alertmanager/group-firing-homepage.json:
    KubeDeploymentReplicasMismatch (3 wanted, 2 available for 40 min),
    KubePodCrashLooping (api container) and CPUThrottlingHigh (web, ~41%).
    """
    end = math.floor(time.time()) - 5 if end is None else end

    def line(fn: Callable[[float], float | None]) -> list[tuple[float, float]]:
        return timeline(fn, end=end)

    def deploy(name: str) -> dict[str, str]:
        return {**KSM, "namespace": "homepage", "deployment": name}

    api = {**KSM, "namespace": "homepage", "pod": API_POD, "container": "api"}
    web = {**CADVISOR, "pod": WEB_POD, "container": "web"}
    out = [
        Series("up", KSM, line(lambda age: 1)),
        Series(
            "up", {k: CADVISOR[k] for k in ("job", "metrics_path", "instance")}, line(lambda a: 1)
        ),
        Series("kube_deployment_spec_replicas", deploy("bruno-site-api"), line(lambda a: 3)),
        Series(
            "kube_deployment_status_replicas_available",
            deploy("bruno-site-api"),
            line(lambda age: 3 if age > DROP_AGE else 2),
        ),
        Series(
            "kube_deployment_status_replicas_updated", deploy("bruno-site-api"), line(lambda a: 3)
        ),
        Series("kube_deployment_spec_replicas", deploy("bruno-site-web"), line(lambda a: 2)),
        Series(
            "kube_deployment_status_replicas_available", deploy("bruno-site-web"), line(lambda a: 2)
        ),
        Series(
            "kube_deployment_status_replicas_updated", deploy("bruno-site-web"), line(lambda a: 2)
        ),
        Series(
            "kube_pod_container_status_restarts_total",
            api,
            # Restarts start with the drop and keep coming, one every 5 minutes.
            line(lambda age: 0 if age > DROP_AGE else 1 + (DROP_AGE - age) // 300),
            type="counter",
        ),
        Series(
            "kube_pod_container_status_waiting_reason",
            {**api, "reason": "CrashLoopBackOff"},
            line(lambda age: 1 if age <= DROP_AGE - 120 else None),
        ),
        # CFS periods are 100 ms: 300 per 30 s, 41% of them throttled.
        Series(
            "container_cpu_cfs_periods_total",
            web,
            line(lambda age: 1_000_000 + (7200 - age) * 10),
            type="counter",
        ),
        Series(
            "container_cpu_cfs_throttled_periods_total",
            web,
            line(lambda age: 400_000 + (7200 - age) * 4.1),
            type="counter",
        ),
    ]
    memory = {
        (API_POD, "api"): 180e6,
        (WEB_POD, "web"): 250e6,
        (DB_POD, "postgres"): 512e6,
    }
    for (pod, container), base in memory.items():
        labels = {**CADVISOR, "pod": pod, "container": container}
        out.append(
            Series(
                "container_memory_working_set_bytes",
                labels,
                line(lambda age, base=base: round(base + 5e6 * math.sin(age / 600))),
            )
        )
    for pod in PHASE_PODS:
        for phase in PHASES:
            labels = {**KSM, "namespace": "filler", "pod": pod, "phase": phase}
            out.append(
                Series(
                    "kube_pod_status_phase",
                    labels,
                    line(lambda a, phase=phase: 1 if phase == "Running" else 0),
                )
            )
    return out


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterable[PrometheusServer]:
    """A real Prometheus holding two hours of the homepage scenario (see ``homepage_series``).

    The lookback is widened to 30 min so "now" queries still see the backfilled
    data, which ends at fixture start. One per test module, not per session: the
    alert expressions' own windows (``max_over_time(...[5m])``) must still reach
    the data however long the whole suite runs.
    """
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed")
    workdir = tmp_path_factory.mktemp("prometheus")
    text = openmetrics_text(homepage_series())
    server = PrometheusServer(workdir, openmetrics=text, lookback_delta="30m")
    with server:
        yield server


__all__ = [
    "READY_TIMEOUT",
    "PrometheusMissing",
    "PrometheusServer",
    "Series",
    "free_port",
    "homepage_series",
    "openmetrics_text",
    "prometheus",
    "prometheus_available",
    "require_prometheus",
    "timeline",
]
