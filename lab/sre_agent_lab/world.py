"""A world for scenarios: their Kubernetes objects served by the fake API server and
their series by the real Prometheus, all at once (each scenario has its own
namespace and names), for the tests, ``make bench`` and ``sre-agent eval``.

A world is anchored at the moment it opens (``World.now``): its series end there and
its relative times (``-2h``) count back from there. The pipeline queries at the real
"now", so a world ages; :class:`FreshWorlds` re-opens it at a new anchor once it is
older than :data:`MAX_AGE`, for runs longer than the world stays true.
"""

from __future__ import annotations

import shutil
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
#: when the world opens, and "now" queries must still see it however long one
#: investigation takes (a slow model: minutes).
LOOKBACK_DELTA = "30m"

#: Seconds a world may have aged when an investigation starts; an older one is re-opened
#: at a new "now" (:class:`FreshWorlds`). Bounded by the finest sample step of the
#: scenarios (``metrics.step``: 60 s, 30 s for cpu-throttling): ``rate``/``increase``
#: over ``[5m]`` at "now" extrapolate to the window's end only while the last sample is
#: less than 1.1 steps back, so a world up to 33 s old gives cpu-throttling's exact
#: ``=> 0.248`` and one 35 s old ``0.231``, 60 s old ``0.21`` (its decisive value lost);
#: instant queries keep their last sample, and the alert's startsAt (made at the world's
#: "now") stays within a step of the series. 20 s leaves the evidence phase, which queries
#: first, 13 s. Re-opening costs a backfill and a Prometheus start (about a second for
#: every scenario): the scripted model's run of every scenario (about 15 s) keeps one
#: world, a slow model's (minutes a scenario) gets a fresh one for nearly each scenario.
MAX_AGE = 20.0


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

    def age(self) -> float:
        """Seconds since the world's "now" (its series end there)."""
        return (datetime.now(UTC) - self.now).total_seconds()


@contextmanager
def open_world(
    workdir: Path, scenarios: Sequence[Scenario], now: datetime | None = None
) -> Iterator[World]:
    """Serve every scenario's world anchored at ``now`` (default: this moment; one in
    the past serves a world that has aged so long); raises ``PrometheusMissing`` naming
    what to install."""
    require_prometheus()
    scenarios = list(scenarios)
    now = now or datetime.now(UTC)
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


class FreshWorlds:
    """One world at a time, re-opened at a new "now" when it has aged past ``max_age``.

    :meth:`fresh` before each investigation: the current world, or (when older) a new
    one for the scenarios given (those still to run), each in its own directory under
    ``workdir``; the old one is closed and its files removed. ``now`` anchors the first
    world (default: this moment). Close it (or use it as a context manager) to stop the
    last one.
    """

    def __init__(
        self,
        workdir: Path,
        scenarios: Sequence[Scenario],
        *,
        max_age: float = MAX_AGE,
        now: datetime | None = None,
    ) -> None:
        self.workdir = workdir
        self.max_age = max_age
        #: Worlds opened so far (the first included).
        self.opened = 0
        self._stack = ExitStack()
        self.world = self._open(scenarios, now)

    def _open(self, scenarios: Sequence[Scenario], now: datetime | None) -> World:
        self.opened += 1
        workdir = self.workdir / f"world-{self.opened}"
        try:
            return self._stack.enter_context(open_world(workdir, scenarios, now))
        except BaseException:
            self._stack.close()
            raise

    def fresh(self, scenarios: Sequence[Scenario]) -> tuple[World, float | None]:
        """A world at most ``max_age`` old serving ``scenarios`` (the current one when it
        is young enough, which serves them: it was opened for these and more), and the
        age in seconds of the world it replaced (None when it was kept)."""
        age = self.world.age()
        if age <= self.max_age:
            return self.world, None
        old = self.world.workdir
        self._stack.close()
        shutil.rmtree(old, ignore_errors=True)
        self.world = self._open(scenarios, None)
        return self.world, age

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> FreshWorlds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
