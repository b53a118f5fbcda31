"""The structured reads the evidence walk uses: lists by selector, events of any object,
init-container logs, and a fake that refuses what a real API server refuses."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from kubernetes.client import ApiClient, Configuration
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

from tests.support.fake_kube import FakeKube


def pod(name: str, ns: str, ip: str, node: str = "worker-1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name.split("-")[0]}},
        "spec": {"nodeName": node, "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": ip, **status},
    }


INIT_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "loyalty-1", "namespace": "shop"},
    "spec": {
        "initContainers": [{"name": "migrate"}, {"name": "wait-for-db"}],
        "containers": [{"name": "api"}, {"name": "proxy"}],
    },
    "status": {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "migrate", "state": {"terminated": {"exitCode": 0}}, "restartCount": 0},
            {"name": "wait-for-db", "state": {"running": {}}, "restartCount": 0},
        ],
        "containerStatuses": [
            {"name": n, "state": {"waiting": {"reason": "PodInitializing"}}, "restartCount": 0}
            for n in ("api", "proxy")
        ],
    },
}
NODE_EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "node-3.1", "namespace": "default"},
    "involvedObject": {"kind": "Node", "name": "node-3"},
    "reason": "EvictionThresholdMet",
    "type": "Warning",
    "message": "Attempting to reclaim ephemeral-storage",
    "lastTimestamp": "2026-12-01T23:00:00Z",
}
OTHER_NODE_EVENT = {
    **NODE_EVENT,
    "metadata": {"name": "node-4.1", "namespace": "default"},
    "involvedObject": {"kind": "Node", "name": "node-4"},
}
COMMA_EVENT = {
    **NODE_EVENT,
    "metadata": {"name": "odd", "namespace": "shop"},
    "involvedObject": {
        "kind": "Pod",
        "name": "x",
        "namespace": "shop",
        "fieldPath": "spec.containers{a,b=c}",
    },
}
WORLD = [
    pod("orders-1", "shop", "10.42.1.7"),
    pod("orders-2", "shop", "10.42.1.8", node="worker-2"),
    pod("coredns-1", "kube-system", "10.42.9.9"),
    INIT_POD,
    NODE_EVENT,
    OTHER_NODE_EVENT,
    COMMA_EVENT,
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-3"}},
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "10.43.0.9"},
    },
]
LOGS = {
    (
        "shop",
        "loyalty-1",
        "wait-for-db",
        False,
    ): "db (10.43.90.8:5432) open? no: Connection refused\n",
    ("shop", "loyalty-1", "migrate", False): "migrations done\n",
}


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as world:
        world.load(WORLD, logs=LOGS)
        yield world


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5)
    client.close()


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


async def test_a_pod_by_ip_across_namespaces(deps: ToolDeps) -> None:
    assert names(
        await k8s.list_objects(deps, "pod", None, field_selector={"status.podIP": "10.42.9.9"})
    ) == ["coredns-1"]
    assert names(
        await k8s.list_objects(deps, "pods", "shop", field_selector="spec.nodeName=worker-2")
    ) == ["orders-2"]
    terms = [("spec.nodeName", "!=", "worker-2"), ("metadata.namespace", "=", "shop")]
    assert names(await k8s.list_objects(deps, "po", None, field_selector=terms)) == [
        "orders-1",
        "loyalty-1",
    ]
    assert names(await k8s.list_objects(deps, "pod", None, label_selector={"app": "orders"})) == [
        "orders-1",
        "orders-2",
    ]


async def test_list_or_error_says_why(deps: ToolDeps, fake: FakeKube) -> None:
    # a real API server does not support spec.clusterIP on services: the fake refuses it too
    failed = await k8s.list_or_error(
        deps, "service", "shop", field_selector={"spec.clusterIP": "10.43.0.9"}
    )
    assert isinstance(failed, ToolResult) and failed.status == "error"
    assert "400" in failed.text and "field label not supported: spec.clusterIP" in failed.text
    assert (
        await k8s.list_objects(
            deps, "service", "shop", field_selector={"spec.clusterIP": "10.43.0.9"}
        )
        == []
    )
    fake.forbid("services")
    forbidden = await k8s.list_or_error(deps, "service", "shop")
    assert isinstance(forbidden, ToolResult) and forbidden.text.startswith("RBAC forbids")
    unknown = await k8s.list_or_error(deps, "gizmo", "shop")
    assert isinstance(unknown, ToolResult) and "Unknown kind 'gizmo'" in unknown.text


async def test_a_hostile_field_selector_is_refused_before_a_request(
    deps: ToolDeps, fake: FakeKube
) -> None:
    for bad in ({"status.podIP,x": "1"}, [("a", "in", "b")], "novalue"):
        result = await k8s.list_or_error(deps, "pod", "shop", field_selector=bad)
        assert isinstance(result, ToolResult) and result.status == "error", bad
    assert fake.requests == []


async def test_escaped_field_values_match_in_the_fake(deps: ToolDeps) -> None:
    found = await k8s.list_objects(
        deps, "event", "shop", field_selector={"involvedObject.fieldPath": "spec.containers{a,b=c}"}
    )
    assert names(found) == ["odd"]


async def test_node_events_are_found_across_namespaces(deps: ToolDeps, fake: FakeKube) -> None:
    scoped = deps.scoped({"labels": {"namespace": "shop"}}, [])
    for d in (deps, scoped):
        events = await k8s.object_events(d, "Node", "node-3")
        assert [e["reason"] for e in events] == ["EvictionThresholdMet"]
    text = (await k8s.events(scoped, "shop", name="node-3", kind="node")).text
    assert "Attempting to reclaim ephemeral-storage" in text and "node-4" not in text
    assert any(
        "involvedObject.kind%3DNode" in p or "involvedObject.kind=Node" in p
        for _, p in fake.requests
    )


async def test_kind_info_tells_cluster_scoped_from_namespaced_without_a_request(
    deps: ToolDeps, fake: FakeKube
) -> None:
    node, pv, svc = [await k8s.kind_info(deps, k) for k in ("Node", "pv", "services")]
    assert isinstance(node, k8s.KindInfo) and not node.namespaced
    assert isinstance(pv, k8s.KindInfo) and (pv.kind, pv.namespaced) == ("PersistentVolume", False)
    assert isinstance(svc, k8s.KindInfo) and svc.namespaced and svc.api_version == "v1"
    deploy = await k8s.kind_info(deps, "Deployment", "apps/v1")
    assert isinstance(deploy, k8s.KindInfo) and deploy.ref == "Deployment.apps"
    assert fake.requests == []


async def test_a_pod_still_initializing_shows_its_running_init_container(deps: ToolDeps) -> None:
    result = await k8s.logs(deps, "loyalty-1", "shop")
    assert result.status == "ok", result.text
    assert "init container wait-for-db (current instance)" in result.text
    assert "Connection refused" in result.text
    named = await k8s.logs(deps, "loyalty-1", "shop", container="migrate")
    assert "init container migrate" in named.text and named.text.endswith("migrations done")


def test_the_fake_serves_init_container_logs_and_names_them(fake: FakeKube) -> None:
    base = f"{fake.url}/api/v1/namespaces/shop/pods/loyalty-1/log"
    with urllib.request.urlopen(f"{base}?container=wait-for-db", timeout=5) as resp:
        assert b"Connection refused" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base, timeout=5)
    body = json.loads(err.value.read())
    assert err.value.code == 400
    assert body["message"].endswith(
        "choose one of: [api proxy] or one of the init containers: [migrate wait-for-db]"
    )


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("path", "selector"),
    [
        ("/api/v1/services", "spec.clusterIP=10.43.0.9"),
        ("/api/v1/namespaces/shop/pods", "spec.containers=app"),
        ("/api/v1/events", "message=x"),
        ("/apis/apps/v1/deployments", "spec.replicas=0"),
    ],
)
def test_the_fake_rejects_unsupported_field_selectors_with_400(
    fake: FakeKube, path: str, selector: str
) -> None:
    code, body = _get(f"{fake.url}{path}?fieldSelector={quote(selector)}")
    assert code == 400 and body["reason"] == "BadRequest"
    assert f"field label not supported: {selector.split('=')[0]}" in body["message"]


def test_the_fake_pages_lists_with_limit_and_continue(fake: FakeKube) -> None:
    seen: list[str] = []
    url = f"{fake.url}/api/v1/pods?limit=2"
    code, page = _get(url)
    while True:
        assert code == 200
        seen += names(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
        assert len(page["items"]) == 2
        code, page = _get(f"{url}&continue={token}")
    assert sorted(seen) == ["coredns-1", "loyalty-1", "orders-1", "orders-2"]


async def test_list_objects_honours_its_limit(deps: ToolDeps) -> None:
    assert len(await k8s.list_objects(deps, "pod", None, limit=1)) == 1


async def test_an_unreachable_api_is_an_error_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deps = ToolDeps(kube=ApiClient(Configuration(host=url)), timeout=2)
    listed = await k8s.list_or_error(deps, "pod", None)
    assert isinstance(listed, ToolResult) and listed.text.startswith(
        f"Kubernetes API unreachable at {url}"
    )
    events = await k8s.object_events_or_error(deps, "Node", "node-3")
    assert isinstance(events, ToolResult) and "unreachable" in events.text
    custom = await k8s.kind_info(deps, "certificate")  # discovery itself fails
    assert isinstance(custom, ToolResult) and "unreachable" in custom.text
