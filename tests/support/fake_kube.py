"""The fake Kubernetes API server (now :mod:`sre_agent_lab.kube_world`, so ``sre-agent eval``
can serve scenario worlds) and the homepage world the unit tests use."""

from __future__ import annotations

from pathlib import Path

from sre_agent_lab.kube_world import CLUSTER_SCOPED, FakeKube, LogKey, plural_of

#: The cluster snapshot behind examples/alertmanager/group-firing-homepage.json.
WORLD_HOMEPAGE = Path(__file__).resolve().parent.parent / "fixtures" / "world-homepage.yaml"


def homepage_world() -> FakeKube:
    """A started FakeKube serving the homepage world; the caller stops it."""
    fake = FakeKube().start()
    fake.load_file(WORLD_HOMEPAGE)
    return fake


__all__ = ["CLUSTER_SCOPED", "WORLD_HOMEPAGE", "FakeKube", "LogKey", "homepage_world", "plural_of"]
