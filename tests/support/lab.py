"""The scenario lab: every scenario's world served at once — Kubernetes objects
by the fake API server, series by the real Prometheus (:mod:`sre_agent.lab.world`)
— and a scripted Ollama, for the scenario tests and ``make bench``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sre_agent.agent import Investigator
from sre_agent.alerts import parse_payload
from sre_agent.backends import make_deps
from sre_agent.lab.kube_world import FakeKube
from sre_agent.lab.prometheus_world import PrometheusServer
from sre_agent.lab.scenarios import Scenario
from sre_agent.lab.world import open_world
from sre_agent.prompts import load_prompts
from sre_agent.settings import Settings, load_settings
from sre_agent.store import Store
from sre_agent.worker import Worker
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
    record: dict[str, Any]
    requests: list[dict[str, Any]]  # what the model received, in order
    seconds: float


async def run_scenario(lab: Lab, scenario: Scenario, settings: Settings) -> Run:
    """One investigation of the scenario's alert through the real pipeline."""
    alert = parse_payload(scenario.webhook_body(datetime.now(UTC))).alerts[0]
    database = lab.workdir / f"{scenario.name}-{uuid.uuid4().hex[:8]}.db"
    settings = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
    store = Store(database)
    store.open()
    deps = make_deps(settings)
    first_request = len(lab.ollama.requests)
    try:
        worker = Worker(
            store,
            Investigator(settings, load_prompts(settings.prompts_dir), deps),
            concurrency=1,
            timeout=settings.investigation_timeout,
        )
        record, _ = store.create_or_get(alert)
        started = time.perf_counter()
        await worker.process(record["id"])
        seconds = time.perf_counter() - started
        final = store.get(record["id"])
        assert final is not None
    finally:
        store.close()
        if deps.kube is not None:
            deps.kube.close()
    return Run(final, list(lab.ollama.requests[first_request:]), seconds)
