"""Kubernetes reads name only valid objects, escape selectors and stay in their namespaces.

Against a fresh fake API server per test, through the real ``kubernetes``
client, so "no request was made" is read from the server's own request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_scope import (
    Rejected,
    check_label_selector,
    check_name,
    escape_field_value,
    field_selector,
    scope,
)

from tests.support.fake_kube import FakeKube, homepage_world

NS = "homepage"
CRASHING = "bruno-site-api-7d9f8c6b5-x2x4q"
OTHER = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "coredns-1", "namespace": "kube-system"},
    "spec": {
        "nodeName": "worker-1",
        "containers": [
            {"name": "coredns", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
        ],
    },
    "status": {"phase": "Running"},
}


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    world = homepage_world()
    world.load([OTHER])
    yield world
    world.stop()


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5)
    client.close()


@pytest.fixture
def scoped(deps: ToolDeps) -> ToolDeps:
    return deps.scoped({"labels": {"namespace": NS}}, [])


HOSTILE = [
    "../../secrets",
    "x,involvedObject.namespace=kube-system",
    "x=y",
    "a/b",
    "",
    " ",
    "Bruno-Site",
    "x" * 254,
    "pod\nname",
    "%2e%2e",
    "name?watch=true",
    "name#frag",
    "pоd",  # a Cyrillic o
    "-leading",
    "trailing.",
]


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_names_are_refused_before_any_request(deps, fake, name):
    calls = [
        lambda: k8s.describe(deps, "pod", name, NS),
        lambda: k8s.events(deps, name),
        lambda: k8s.logs(deps, name, NS),
        lambda: k8s.logs(deps, CRASHING, name),
    ]
    if name:  # describe's namespace may be left out ("" is "default"); events' name too
        calls += [
            lambda: k8s.describe(deps, "pod", CRASHING, name),
            lambda: k8s.events(deps, NS, name=name),
        ]
    for call in calls:
        result = await call()
        assert result.status == "error"
        assert "is not a valid Kubernetes" in result.text, result.text
    assert fake.requests == []


async def test_hostile_container_is_refused_before_the_log_request(deps, fake):
    result = await k8s.logs(deps, CRASHING, NS, container="api/../../x")
    assert result.status == "error"
    assert not any("/log" in target for _, target in fake.requests)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=0, max_size=300))
async def test_any_name_stays_one_path_segment_and_one_selector_value(deps, fake, name):
    fake.requests.clear()
    await k8s.events(deps, NS, name=name)
    for _, target in fake.requests:
        parts = urlsplit(target)
        assert parts.path == f"/api/v1/namespaces/{NS}/events", target
        selector = parse_qs(parts.query).get("fieldSelector", [""])[0]
        keys = [term.split("=", 1)[0] for term in selector.split(",")]
        expected = ["involvedObject.name"] if name else []  # "" means "every object"
        assert keys == [*expected, "involvedObject.namespace"], selector


def test_field_values_are_escaped_like_apimachinery():
    assert escape_field_value(r"a,b=c\d") == r"a\,b\=c\\d"
    assert field_selector([("spec.nodeName", "=", "n,1"), ("status.phase", "!=", "Failed")]) == (
        r"spec.nodeName=n\,1,status.phase!=Failed"
    )
    assert field_selector([]) is None


def test_names_and_label_selectors():
    assert check_name(" bruno-site-api.v2 ") == "bruno-site-api.v2"
    assert check_label_selector("app.kubernetes.io/name=api,tier=web") == (
        "app.kubernetes.io/name=api,tier=web"
    )
    for bad in ("app=x)", "app", "app=a,b", "app in (x)", "=x", "a=" + "x" * 64):
        with pytest.raises(Rejected):
            check_label_selector(bad)


def test_scope_is_the_alert_namespace_and_what_the_evidence_visited():
    calls = [
        {"name": "kubectl_describe", "args": {"namespace": "storage"}, "phase": "evidence"},
        {"name": "kubectl_logs", "args": {"namespace": "kube-system"}},  # the model's own call
        {"name": "kubectl_events", "args": {"namespace": "../x"}, "phase": "evidence"},
        {"name": "promql_query", "args": {"query": "up"}, "phase": "evidence"},
    ]
    assert scope({"namespace": NS}, calls) == {NS, "storage"}
    assert scope({}, []) == frozenset()
    assert scope({"namespace": NS}, [], ["monitoring", " "]) == {NS, "monitoring"}
    assert scope({"namespace": NS}, [], ["*"]) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda d: k8s.describe(d, "pod", "coredns-1", "kube-system"),
        lambda d: k8s.logs(d, "coredns-1", "kube-system"),
        lambda d: k8s.events(d, "kube-system"),
        lambda d: k8s.events(d, "kube-system", name="coredns-1", kind="pod"),
    ],
)
async def test_reads_outside_the_scope_are_refused_without_a_request(scoped, fake, call):
    result = await call(scoped)
    assert result.status == "error"
    assert result.text == (
        "namespace kube-system is outside this investigation's scope (homepage); "
        "SRE_AGENT_ALLOWED_NAMESPACES widens it."
    )
    assert fake.requests == []


async def test_reads_inside_the_scope_work(scoped, fake):
    assert (await k8s.describe(scoped, "pod", CRASHING, NS)).status == "ok"
    assert (await k8s.describe(scoped, "deployment", "bruno-site-api", NS)).status == "ok"
    assert all(f"/namespaces/{NS}/" in t for _, t in fake.requests)


async def test_node_stays_readable_and_other_namespaces_are_only_summed(scoped, fake):
    text = (await k8s.describe(scoped, "node", "worker-1")).text
    assert "Allocated resources (5 non-terminated pods)" in text  # coredns-1 counted
    assert "coredns" not in text and "kube-system" not in text


async def test_code_lists_across_namespaces_are_refused_under_a_scope(scoped, deps, fake):
    assert await k8s.list_objects(scoped, "pod", None) == []
    assert fake.requests == []
    assert len(await k8s.list_objects(deps, "pod", None)) > 1  # unscoped: the gatherer's view


async def test_an_empty_scope_still_reads_cluster_scoped_objects(deps, fake):
    nowhere = deps.scoped({"labels": {}}, [])
    assert (await k8s.describe(nowhere, "node", "worker-1")).status == "ok"
    refused = await k8s.describe(nowhere, "pod", CRASHING, NS)
    assert "outside this investigation's scope (no namespace)" in refused.text
    assert not any(f"/namespaces/{NS}/" in unquote(t) for _, t in fake.requests)


CLUSTER_OBJECTS = [
    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}, "spec": {}},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp3"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}},
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "injector"},
    },
    {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "le"}},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "kube-system"},
    },
    {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "i", "namespace": "kube-system"},
    },
]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("pv", "pv-1"),
        ("storageclass", "gp3"),
        ("ingressclass", "nginx"),
        ("namespace", "kube-system"),
        ("mutatingwebhookconfiguration", "injector"),
        ("clusterissuer", "le"),
    ],
)
async def test_cluster_scoped_kinds_are_readable_by_name_under_any_scope(deps, fake, kind, name):
    fake.load(CLUSTER_OBJECTS)
    nowhere = deps.scoped({"labels": {}}, [])
    result = await k8s.describe(nowhere, kind, name)
    assert result.status == "ok", result.text


@pytest.mark.parametrize(("kind", "name"), [("configmap", "cfg"), ("issuer", "i")])
async def test_namespaced_new_kinds_stay_in_the_scope(scoped, fake, kind, name):
    fake.load(CLUSTER_OBJECTS)
    result = await k8s.describe(scoped, kind, name, "kube-system")
    assert result.text.startswith("namespace kube-system is outside this investigation's scope")
    assert not any("/namespaces/kube-system/" in unquote(t) for _, t in fake.requests)
