"""Custom resources: found through the API server's discovery, described from their status.

The fake serves discovery for every group/version/kind it holds, as a real
server does; the tests count its requests to show discovery is asked once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_render_generic import SPEC_LINES, STATUS_LINES, render_generic

from tests.support.fake_kube import FakeKube

NS = "lab-certs"
CERT = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Certificate",
    "metadata": {
        "name": "portal-tls",
        "namespace": NS,
        "labels": {"app": "portal"},
        "ownerReferences": [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "portal"}
        ],
    },
    "spec": {
        "secretName": "portal-tls",
        "dnsNames": ["portal.example.com"],
        "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"},
        "privateKey": {"algorithm": "ECDSA", "size": 256},
        "keystores": {
            "pkcs12": {"create": True, "passwordSecretRef": {"name": "p12", "key": "pw"}}
        },
    },
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Expired",
                "message": "Certificate expired on 2026-11-30 " + "and renewal is blocked " * 15,
            }
        ],
        "failedIssuanceAttempts": 9,
        "notAfter": "2026-11-30T00:00:00Z",
    },
}
OTHER_CERT = {  # the same kind in a second group: "certificate" alone is ambiguous
    "apiVersion": "certs.example.io/v1alpha1",
    "kind": "Certificate",
    "metadata": {"name": "legacy", "namespace": NS},
    "spec": {"commonName": "legacy.example.com"},
}
ORDER = {
    "apiVersion": "acme.cert-manager.io/v1",
    "kind": "Order",
    "metadata": {"name": "portal-tls-1", "namespace": NS},
    "spec": {"dnsNames": ["portal.example.com"], "token": "CANARY-order-token"},
    "status": {"state": "pending", "reason": "challenge not propagated"},
}
ISSUER = {  # cluster-scoped: the manifest has no namespace
    "apiVersion": "cert-manager.io/v1",
    "kind": "ClusterIssuer",
    "metadata": {"name": "letsencrypt-prod"},
    "spec": {"acme": {"privateKeySecretRef": {"name": "le-account"}}},
    "status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "ACMEAccountRegistered"}]
    },
}
EVENTS = [
    {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"portal-tls.{i}", "namespace": NS},
        "involvedObject": {"kind": "Certificate", "name": "portal-tls", "namespace": NS},
        "reason": "Failed",
        "type": "Warning",
        "message": f'order is in "pending" state (attempt {i})',
        "lastTimestamp": f"2026-12-01T2{i}:00:00Z",
        "source": {"component": "cert-manager-certificates-issuing"},
    }
    for i in range(3)
] + [
    {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "letsencrypt-prod.1", "namespace": "default"},
        "involvedObject": {"kind": "ClusterIssuer", "name": "letsencrypt-prod"},
        "reason": "ErrVerifyACMEAccount",
        "type": "Warning",
        "message": "Failed to verify ACME account",
        "lastTimestamp": "2026-12-01T20:00:00Z",
    }
]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as world:
        world.load([CERT, OTHER_CERT, ORDER, ISSUER, *EVENTS])
        yield world


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5, output_limit=8000)
    client.close()


def discovery_requests(fake: FakeKube) -> list[str]:
    return [
        p
        for _, p in fake.requests
        if p in ("/api", "/api/v1", "/apis") or p.count("/") == 3 and p.startswith("/apis/")
    ]


async def test_a_custom_resource_is_described_from_spec_references_conditions_and_events(
    deps: ToolDeps,
) -> None:
    result = await k8s.describe(deps, "certificates.cert-manager.io", "portal-tls", NS)
    assert result.status == "ok", result.text
    text = result.text
    assert text.startswith(f"Certificate {NS}/portal-tls\nAPI version: cert-manager.io/v1")
    assert "Controlled By: Ingress/portal" in text
    assert "  secretName: portal-tls" in text
    assert "  issuerRef: name=letsencrypt-prod kind=ClusterIssuer" in text
    assert "  dnsNames: [portal.example.com]" in text
    assert "  keystores.pkcs12.passwordSecretRef: name=p12" in text  # a reference, named
    condition = next(line for line in text.splitlines() if line.startswith("  Ready=False Expired"))
    assert len(condition) > 300  # the whole message, not the 240 characters of built-ins
    assert "failedIssuanceAttempts: 9" in text and "notAfter: 2026-11-30T00:00:00Z" in text
    assert "Events (3, newest last; 3 Warning, 0 Normal)" in text
    assert text.rstrip().endswith('order is in "pending" state (attempt 2)')


async def test_spellings_of_a_custom_kind(deps: ToolDeps) -> None:
    for kind in (
        "Certificate.cert-manager.io",
        "certificate.cert-manager.io",
        "cert-manager.io/v1/certificates",
    ):
        assert (await k8s.describe(deps, kind, "portal-tls", NS)).status == "ok", kind
    order = await k8s.describe(deps, "order", "portal-tls-1", NS)
    assert order.status == "ok" and "state: pending" in order.text
    assert "CANARY" not in order.text  # a field named token is masked whole


async def test_an_ambiguous_kind_lists_the_spellings_that_work(deps: ToolDeps) -> None:
    result = await k8s.describe(deps, "certificate", "portal-tls", NS)
    assert result.status == "error"
    assert "ambiguous" in result.text
    assert "Certificate.cert-manager.io" in result.text
    assert "Certificate.certs.example.io" in result.text
    info = await k8s.kind_info(deps, "Certificate", "cert-manager.io/v1")  # as an event names it
    assert isinstance(info, k8s.KindInfo) and info.plural == "certificates" and info.namespaced


async def test_an_unknown_kind_says_what_exists(deps: ToolDeps) -> None:
    result = await k8s.describe(deps, "certificat", "x", NS)
    assert result.status == "error"
    assert result.text.startswith("Unknown kind 'certificat'")
    assert "Certificate.cert-manager.io" in result.text
    nothing = await k8s.describe(deps, "helmrelease", "x", NS)
    assert "Unknown kind 'helmrelease'" in nothing.text
    assert "Other kinds served:" in nothing.text and "Order.acme.cert-manager.io" in nothing.text


async def test_a_cluster_scoped_custom_resource_reads_by_name_even_under_a_scope(
    deps: ToolDeps, fake: FakeKube
) -> None:
    scoped = deps.scoped({"labels": {"namespace": "elsewhere"}}, [])
    info = await k8s.kind_info(scoped, "clusterissuer")
    assert isinstance(info, k8s.KindInfo) and not info.namespaced
    text = (await k8s.describe(scoped, "clusterissuer", "letsencrypt-prod")).text
    assert "ClusterIssuer letsencrypt-prod" in text
    assert "acme.privateKeySecretRef: name=le-account" in text
    assert "ErrVerifyACMEAccount" in text  # its events, listed across namespaces
    refused = await k8s.describe(scoped, "certificates.cert-manager.io", "portal-tls", NS)
    assert "outside this investigation's scope" in refused.text


async def test_discovery_is_asked_once_per_client_and_built_in_kinds_never(
    deps: ToolDeps, fake: FakeKube
) -> None:
    await k8s.describe(deps, "pod", "nothing", NS)
    assert discovery_requests(fake) == []
    await k8s.describe(deps, "order", "portal-tls-1", NS)
    first = discovery_requests(fake)
    assert "/apis" in first and "/apis/cert-manager.io/v1" in first
    for _ in range(3):
        await k8s.describe(deps, "clusterissuer", "letsencrypt-prod")
        await k8s.list_objects(deps, "orders.acme.cert-manager.io", NS)
    assert discovery_requests(fake) == first


async def test_a_down_aggregated_api_does_not_hide_the_other_groups() -> None:
    metrics = {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": "x", "namespace": NS},
    }
    with FakeKube() as fake:
        fake.load([ORDER, metrics])
        fake.make_unavailable("metrics.k8s.io")
        deps = ToolDeps(kube=fake.api_client(), timeout=5)
        assert (await k8s.describe(deps, "order", "portal-tls-1", NS)).status == "ok"
        missing = await k8s.describe(deps, "podmetrics", "x", NS)
        assert missing.status == "error"
        assert "metrics.k8s.io/v1beta1 (503" in missing.text


async def test_list_objects_serves_custom_kinds(deps: ToolDeps) -> None:
    found = await k8s.list_objects(deps, "Certificate.cert-manager.io", None)
    assert [o["metadata"]["name"] for o in found] == ["portal-tls"]
    assert found[0]["kind"] == "Certificate"


async def test_a_forbidden_custom_resource_names_its_group_and_the_rbac_file(
    fake: FakeKube,
) -> None:
    fake.forbid("orders")
    deps = ToolDeps(kube=fake.api_client(), timeout=5)
    result = await k8s.describe(deps, "order", "portal-tls-1", NS)
    assert result.status == "error"
    assert result.text.startswith("RBAC forbids")
    assert "API group acme.cert-manager.io" in result.text
    assert "deploy/rbac.yaml" in result.text
    failed = await k8s.read_object(deps, "order", "portal-tls-1", NS)
    assert isinstance(failed, k8s.ToolResult) and "acme.cert-manager.io" in failed.text


async def test_object_events_of_any_kind(deps: ToolDeps) -> None:
    events = await k8s.object_events(deps, "Certificate", "portal-tls", NS, "cert-manager.io/v1")
    assert [e["message"][-10:] for e in events] == [f"attempt {i})" for i in range(3)]
    issuer = await k8s.object_events(deps, "ClusterIssuer", "letsencrypt-prod")
    assert [e["reason"] for e in issuer] == ["ErrVerifyACMEAccount"]
    lines: list[str] = k8s.render_events(events, len(events))
    assert lines[0].startswith("Events (3, newest last; 3 Warning")


def _crd(plural: str, kind: str, group: str, scope: str, *short: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "kind": kind, "shortNames": list(short)},
        },
    }


async def test_the_fake_takes_scope_plural_and_short_names_from_a_loaded_crd() -> None:
    policy = {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}}
    with FakeKube() as fake:
        fake.load([_crd("clusterpolicies", "ClusterPolicy", "kyverno.io", "Cluster", "cpol")])
        fake.load([policy])  # the CRD may come in an earlier load
        deps = ToolDeps(kube=fake.api_client())
        info = await k8s.kind_info(deps, "cpol")
        described = await k8s.describe(deps, "cpol", "p")
    assert isinstance(info, k8s.KindInfo)
    assert (info.plural, info.namespaced, info.ref) == (
        "clusterpolicies",
        False,
        "ClusterPolicy.kyverno.io",
    )
    assert described.status == "ok" and described.text.startswith("ClusterPolicy p")


async def test_concurrent_lookups_share_one_discovery(deps: ToolDeps, fake: FakeKube) -> None:
    results = await asyncio.gather(
        *(k8s.describe(deps, kind, "portal-tls-1", NS) for kind in ["order"] * 4 + ["orders"] * 4)
    )
    assert all(r.status == "ok" for r in results)
    paths = discovery_requests(fake)
    assert paths.count("/apis") == 1 and paths.count("/api/v1") == 1


async def test_a_kind_with_its_group_asks_only_that_group(deps: ToolDeps, fake: FakeKube) -> None:
    results = await asyncio.gather(
        *(
            k8s.read_object(
                deps, "Order", "portal-tls-1", NS, api_version="acme.cert-manager.io/v1"
            )
            for _ in range(4)
        )
    )
    assert all(isinstance(r, dict) for r in results)
    group = [
        p
        for _, p in fake.requests
        if p.startswith("/apis/acme.cert-manager.io") and p.count("/") <= 3
    ]
    assert group == ["/apis/acme.cert-manager.io", "/apis/acme.cert-manager.io/v1"]
    assert "/apis" not in discovery_requests(fake)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(spec=JSON, status=JSON, extra=st.dictionaries(st.text(max_size=10), JSON, max_size=3))
def test_the_generic_renderer_takes_any_json_and_stays_short(
    spec: Any, status: Any, extra: Any
) -> None:
    obj = {**extra, "apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    obj["spec"], obj["status"] = spec, status
    lines = render_generic(obj)
    assert lines[0] == "Thing t"
    spec_lines = len([line for line in lines if line.startswith("  ")])
    assert spec_lines <= SPEC_LINES + STATUS_LINES + 2 + 2 * len(
        (status or {}).get("conditions") or [] if isinstance(status, dict) else []
    )


async def test_resources_without_get_and_subresources_are_not_readable(
    deps: ToolDeps, fake: FakeKube
) -> None:
    binding = await k8s.describe(deps, "binding", "x", NS)  # core v1 lists it with verbs [create]
    assert binding.status == "error"
    assert binding.text == "bindings cannot be read (the API server offers no get on it)."
    status = await k8s.describe(deps, "pods/status", "x", NS)  # a subresource, not a kind
    assert status.status == "error" and status.text.startswith("Unknown kind 'pods/status'")
    assert not [p for _, p in fake.requests if "/bindings" in p or p.endswith("/status")]
