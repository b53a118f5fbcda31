"""The scenario lab: every scenario's world served at once — Kubernetes objects
by the fake API server, series by the real Prometheus (:mod:`sre_agent_lab.world`)
— and a scripted Ollama, for the scenario tests and ``make bench``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sre_agent.models import Investigation
from sre_agent.prompts import load_prompts
from sre_agent.settings import Settings, load_settings
from sre_agent_lab.kube_world import FakeKube
from sre_agent_lab.prometheus_world import PrometheusServer
from sre_agent_lab.runs import run_alert, scenario_alert
from sre_agent_lab.scenarios import Scenario
from sre_agent_lab.world import open_world
from tests.support.fake_ollama import FakeOllama


@dataclass
class Lab:
    workdir: Path
    now: datetime
    kube: FakeKube
    prometheus: PrometheusServer
    ollama: FakeOllama
    kubeconfig: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "ollama_url": self.ollama.url,
            "prometheus_url": self.prometheus.url,
            "kubeconfig": self.kubeconfig,
            "database_url": f"sqlite:///{self.workdir / 'lab.db'}",
            "backend_timeout": 5.0,
        }
        values.update(overrides)
        return load_settings(**values)


@contextmanager
def open_lab(workdir: Path, scenarios: list[Scenario]) -> Iterator[Lab]:
    with open_world(workdir, scenarios) as world, FakeOllama() as ollama:
        yield Lab(world.workdir, world.now, world.kube, world.prometheus, ollama, world.kubeconfig)


@dataclass
class Run:
    record: Investigation
    requests: list[dict[str, Any]]  # what the model received, in order
    seconds: float


async def run_scenario(lab: Lab, scenario: Scenario, settings: Settings) -> Run:
    """One investigation of the scenario's alert through the real pipeline."""
    first_request = len(lab.ollama.requests)
    result = await run_alert(
        scenario_alert(scenario),
        settings,
        load_prompts(settings.prompts_dir),
        lab.workdir,
        scenario,
    )
    return Run(result.record, list(lab.ollama.requests[first_request:]), result.seconds)
