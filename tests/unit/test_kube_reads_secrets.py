"""Secrets stay unread through every way a kind can be named, built in or discovered.

The fake lists ``secrets`` in its discovery as a real server does, serves a
custom resource whose plural is ``secrets``, and records every request; the
assertion is on that record: no path naming secrets was ever sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

from tests.support.fake_kube import FakeKube

NS = "vault"
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": NS},
    "data": {"password": "Q0FOQVJZ"},
}
#: A CRD whose plural is "secrets" (another group): still a Secret store, still refused.
CRD_SECRET = {
    "apiVersion": "secrets.example.io/v1",
    "kind": "VaultEntry",
    "metadata": {"name": "db", "namespace": NS},
    "spec": {"value": "CANARY-crd"},
}
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "secrets.secrets.example.io"},
    "spec": {
        "group": "secrets.example.io",
        "scope": "Namespaced",
        "names": {"plural": "secrets", "kind": "VaultEntry", "singular": "vaultentry"},
    },
}
SPELLINGS = [
    "secret",
    "Secrets",
    "SECRET",
    " secrets ",
    "Secret.v1",
    "secrets.core",
    "v1/secrets",
    "/api/v1/secrets",
    "secrets.secrets.example.io",
    "secrets.example.io/v1/secrets",
    "vaultentry",
    "VaultEntry.secrets.example.io",
]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as world:
        world.load([SECRET, CRD, CRD_SECRET])
        yield world


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5)
    client.close()


def refused(result: object) -> None:
    assert isinstance(result, ToolResult), result
    assert result.status == "error"
    assert "Secrets is not allowed" in result.text, result.text


@pytest.mark.parametrize("kind", SPELLINGS)
async def test_every_spelling_is_refused_by_every_read(
    deps: ToolDeps, fake: FakeKube, kind: str
) -> None:
    refused(await k8s.describe(deps, kind, "db", NS))
    refused(await k8s.describe_object(deps, kind, SECRET))
    refused(await k8s.read_object(deps, kind, "db", NS))
    refused(await k8s.kind_info(deps, kind))
    refused(await k8s.list_or_error(deps, kind, NS))
    refused(await k8s.list_or_error(deps, kind, None))
    refused(await k8s.object_events_or_error(deps, kind, "db", NS))
    refused(await k8s.events(deps, NS, name="db", kind=kind))
    assert await k8s.get_object(deps, kind, "db", NS) is None
    assert await k8s.list_objects(deps, kind, NS) == []
    assert await k8s.object_events(deps, kind, "db", NS) == []
    assert not [path for _, path in fake.requests if "secrets/" in path or path.endswith("secrets")]


async def test_the_refusal_holds_when_the_api_version_points_at_secrets(deps: ToolDeps) -> None:
    # an ownerReference or involvedObject naming a Secret
    refused(await k8s.read_object(deps, "Secret", "db", NS, api_version="v1"))
    refused(await k8s.object_events_or_error(deps, "Secret", "db", NS, api_version="v1"))


async def test_discovery_lists_secrets_and_the_tools_still_refuse(
    deps: ToolDeps, fake: FakeKube
) -> None:
    await k8s.describe(deps, "vaultentry", "db", NS)  # forces a discovery
    assert ("GET", "/api/v1") in fake.requests
    unknown = await k8s.describe(deps, "nosuchkind", "x", NS)
    assert "secret" not in unknown.text.lower()  # never offered as a kind that exists


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.one_of(
        st.text(max_size=60),
        st.lists(
            st.sampled_from(
                [
                    "secrets",
                    "secret",
                    "v1",
                    "api",
                    "apis",
                    "..",
                    ".",
                    "/",
                    "core",
                    "example.io",
                    "vaultentry",
                    "pods",
                    "%2f",
                    "?",
                    "#",
                ]
            ),
            max_size=6,
        ).map("".join),
    )
)
async def test_no_kind_text_reaches_secrets_or_leaves_the_resource_paths(
    deps: ToolDeps, fake: FakeKube, kind: str
) -> None:
    fake.requests.clear()
    await k8s.describe(deps, kind, "db", NS)
    await k8s.list_objects(deps, kind, None)
    for _, target in fake.requests:
        path = target.split("?", 1)[0]
        assert "secrets/" not in path and not path.endswith("/secrets"), target
        assert ".." not in path and "%" not in path, target
        assert path.startswith(("/api/v1", "/apis")), target
