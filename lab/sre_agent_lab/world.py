"""A world for scenarios: their Kubernetes objects served by the fake API server and
their series by the real Prometheus, all at once (each scenario has its own
namespace and names), for the tests, ``make bench`` and ``sre-agent eval``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sre_agent.settings import Settings
from sre_agent_lab.kube_world import FakeKube
from sre_agent_lab.prometheus_world import PrometheusServer, require_prometheus
from sre_agent_lab.scenarios import Scenario, combined_openmetrics, combined_world

#: Prometheus looks this far back for an instant query: the backfilled history ends
#: when the world opens, and "now" queries must still see it however long a run takes.
LOOKBACK_DELTA = "30m"


@dataclass
class World:
    workdir: Path
    now: datetime
    scenarios: list[Scenario]
    kube: FakeKube
    prometheus: PrometheusServer
    kubeconfig: Path

    def settings(self, base: Settings, **overrides: Any) -> Settings:
        """``base`` pointed at this world's Prometheus and Kubernetes."""
        values: dict[str, Any] = {
            "prometheus_url": self.prometheus.url,
            "kubeconfig": str(self.kubeconfig),
            "backend_timeout": 5.0,
        }
        values.update(overrides)
        return base.model_copy(update=values)


@contextmanager
def open_world(workdir: Path, scenarios: Sequence[Scenario]) -> Iterator[World]:
    """Serve every scenario's world; raises ``PrometheusMissing`` naming what to install."""
    require_prometheus()
    scenarios = list(scenarios)
    now = datetime.now(UTC)
    world = combined_world(scenarios, now)
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        kube = stack.enter_context(FakeKube())
        logs = {
            (e["namespace"], e["pod"], e["container"], bool(e.get("previous"))): e["text"]
            for e in world["logs"]
        }
        kube.load(world["objects"], logs)
        prometheus = stack.enter_context(
            PrometheusServer(
                workdir / "prometheus",
                openmetrics=combined_openmetrics(scenarios, now),
                lookback_delta=LOOKBACK_DELTA,
            )
        )
        yield World(
            workdir, now, scenarios, kube, prometheus, kube.write_kubeconfig(workdir / "kubeconfig")
        )
