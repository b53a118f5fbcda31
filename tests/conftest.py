"""Fixtures shared by every test: the scripted Ollama, the fake Kubernetes API,
and settings pointing sre-agent at them.

The fake servers (and the Kubernetes client behind the fake API) are imported inside the
fixtures that start them, so a pure unit test collects without loading any of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from sre_agent.settings import Settings, load_settings
from tests.support.net import free_port
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401

if TYPE_CHECKING:
    from tests.support.fake_kube import FakeKube
    from tests.support.fake_ollama import FakeOllama

FIXTURES = Path(__file__).parent / "fixtures"
#: Real Alertmanager 0.25 bodies, shipped for users too (README, docs).
EXAMPLES = Path(__file__).parent.parent / "examples" / "alertmanager"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's own SRE_AGENT_* or OLLAMA_HOST."""
    for name in list(os.environ):
        if name.startswith("SRE_AGENT_") or name in ("OLLAMA_HOST", "KUBECONFIG"):
            monkeypatch.delenv(name)


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    from tests.support.fake_ollama import FakeOllama

    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    """The homepage world: a crash-looping api pod, a deployment one replica short."""
    from tests.support.fake_kube import FakeKube

    with FakeKube() as fake:
        fake.load_file(FIXTURES / "world-homepage.yaml")
        yield fake


@pytest.fixture
def make_settings(tmp_path: Path, ollama: FakeOllama, kube: FakeKube) -> Callable[..., Settings]:
    """Settings for an sre-agent wired to the fakes; Prometheus unreachable unless given."""
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "ollama_url": ollama.url,
            "prometheus_url": f"http://127.0.0.1:{free_port()}",
            "kubeconfig": kubeconfig,
            "database_url": f"sqlite:///{tmp_path / 'sre-agent.db'}",
            "backend_timeout": 2.0,
            # starlette's TestClient sends Host: testserver
            "allowed_hosts": "localhost,testserver",
            # the model starts at once: tests of incidents set the settle time they need
            "incident_settle": 0.0,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as SRE_AGENT_* variables, for a service subprocess."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):  # tokens, Slack URLs: the value, not its mask
            value = secret.get_secret_value()
        elif isinstance(value, tuple):  # severities, allowed_namespaces, proxy CIDRs...
            value = ",".join(map(str, value))
        elif hasattr(value, "total_seconds"):  # a timedelta: whole seconds
            value = int(value.total_seconds())
        env[f"SRE_AGENT_{name.upper()}"] = str(value)
    return env
