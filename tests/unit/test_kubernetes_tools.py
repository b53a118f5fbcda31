"""The Kubernetes tools against a fake API server, through the real ``kubernetes`` client.

The module shares one ``fake_kube`` serving the homepage world; the last test
checks everything it was asked: only GETs, never a Secret.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

from tests.support.fake_kube import FakeKube

NS = "homepage"
CRASHING = "bruno-site-api-7d9f8c6b5-x2x4q"
WEB = "bruno-site-web-6b8c9d7f5-q9w8e"


@pytest.fixture
def deps(fake_kube: FakeKube) -> Iterator[ToolDeps]:
    client = fake_kube.api_client()
    yield ToolDeps(kube=client, output_limit=8000, timeout=5)
    client.close()


def ok(result: ToolResult, status: str = "ok") -> str:
    """Assert the status and that no canary secret leaked; return the text."""
    assert result.status == status, result.text
    assert "CANARY" not in result.text
    return result.text


async def test_describe_crashlooping_pod(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "pod", CRASHING, NS))
    assert f"Pod {NS}/{CRASHING}" in text
    assert "Waiting (CrashLoopBackOff" in text
    assert "Last State: Terminated (reason Error, exit code 1" in text
    assert "Restart Count: 14" in text
    assert "Controlled By: ReplicaSet/bruno-site-api-7d9f8c6b5" in text
    assert "DB_PASSWORD=***REDACTED***" in text
    assert "DATABASE_URL=postgres://api:***REDACTED***@db:5432/site" in text
    assert "API_TOKEN=<from secret bruno-site-api-secrets key api-token>" in text
    assert "LOG_LEVEL=info" in text
    events = text.split("Events (", 1)[1]
    assert "1 Warning, 3 Normal" in events
    assert events.rstrip().splitlines()[-1].lstrip().startswith("Warning BackOff x57")


async def test_previous_logs_show_the_fatal_line_without_secrets(
    deps: ToolDeps, fake_kube: FakeKube
) -> None:
    text = ok(await k8s.logs(deps, CRASHING, NS, previous=True, tail_lines=10_000))
    assert text.rstrip().endswith(
        "FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"
    )
    assert "Authorization: Bearer ***REDACTED***" in text
    assert "password=***REDACTED***" in text
    assert "(previous instance)" in text
    assert "tailLines=500" in fake_kube.requests[-1][1]  # capped before asking


async def test_current_logs_of_crashlooping_pod_point_to_previous(deps: ToolDeps) -> None:
    text = ok(await k8s.logs(deps, CRASHING, NS), status="no_data")
    assert "previous=True" in text


async def test_previous_logs_of_a_container_that_never_crashed(deps: ToolDeps) -> None:
    text = ok(await k8s.logs(deps, WEB, NS, previous=True), status="error")
    assert "No previous logs for container web" in text
    assert 'previous terminated container "web"' in text


async def test_logs_of_unknown_container_lists_containers(deps: ToolDeps) -> None:
    text = ok(await k8s.logs(deps, WEB, NS, container="nginx"), status="error")
    assert "'nginx'" in text and "containers: web" in text


async def test_long_logs_keep_the_end(fake_kube: FakeKube) -> None:
    deps = ToolDeps(kube=fake_kube.api_client(), output_limit=600)
    text = ok(await k8s.logs(deps, CRASHING, NS, previous=True))
    assert len(text) <= 600
    assert "earlier lines omitted" in text
    assert text.rstrip().endswith("SITE_API_UPSTREAM_URL is missing")


async def test_describe_deployment_lists_replicasets_newest_first(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "deploy", "bruno-site-api", NS))
    assert "Replicas: 3 desired | 1 updated | 2 ready | 2 available | 1 unavailable" in text
    assert "Available=False MinimumReplicasUnavailable" in text
    assert "Strategy: RollingUpdate (maxSurge 25%, maxUnavailable 25%)" in text
    new = text.index("bruno-site-api-7d9f8c6b5  revision 4")
    old = text.index("bruno-site-api-5f6d7c8b9  revision 3")
    assert new < old
    assert "image ghcr.io/bruno/site-api:1.8.2" in text[new:old]
    assert "image ghcr.io/bruno/site-api:1.8.1" in text[old:]
    assert "Scaled down replica set bruno-site-api-5f6d7c8b9 to 2 from 3" in text
    assert "DB_PASSWORD=***REDACTED***" in text


async def test_describe_node_compares_requests_with_allocatable(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "node", "worker-1"))
    assert "Ready=True KubeletReady" in text
    assert "MemoryPressure=False" in text
    assert "Allocatable: cpu=4, ephemeral-storage=99833802Ki, memory=16Gi" in text
    assert "Allocated resources (4 non-terminated pods)" in text
    assert "cpu: requests 400m (10%), limits 200m (5%) of allocatable 4" in text
    assert "memory: requests 448Mi (3%)" in text
    assert "Kubelet: v1.31.2+k3s1" in text


@pytest.mark.parametrize(
    ("kind", "name", "expect"),
    [
        ("svc", "bruno-site-api", "Endpoints: 2 ready, 1 not ready"),
        ("PVC", "bruno-site-uploads", "Status: Bound  Capacity: 5Gi"),
        ("replicasets", "bruno-site-api-7d9f8c6b5", "Replicas: 1 desired | 1 current | 0 ready"),
        ("Deployment.apps", "bruno-site-web", "limits cpu=200m"),
        ("po", WEB, "State: Running"),
    ],
)
async def test_describe_accepts_aliases(deps: ToolDeps, kind: str, name: str, expect: str) -> None:
    assert expect in ok(await k8s.describe(deps, kind, name, NS))


async def test_not_found_names_the_object_and_lists_what_exists(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "pod", "bruno-site-api-7d9f8c6b5-zzzzz", NS), "error")
    assert text.startswith(f"pod {NS}/bruno-site-api-7d9f8c6b5-zzzzz not found")
    assert f"Existing pods in namespace {NS}: {CRASHING}" in text
    assert WEB in text


async def test_not_found_in_an_empty_namespace(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "deployment", "api"), "error")
    assert "deployment default/api not found" in text
    assert "There are no deployments in namespace default" in text


async def test_secrets_are_refused_without_asking(deps: ToolDeps, fake_kube: FakeKube) -> None:
    before = len(fake_kube.requests)
    for kind in ("secret", "Secrets"):
        assert "Secrets is not allowed" in ok(await k8s.describe(deps, kind, "x", NS), "error")
    assert len(fake_kube.requests) == before


async def test_unknown_kind_says_what_the_cluster_serves(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "frobnicator", "x", NS), "error")
    assert text.startswith("Unknown kind 'frobnicator': the API server serves no such resource.")
    assert "Built in: pod, service" in text


@pytest.mark.parametrize(
    "kind", ["pods/../../secrets", "x/y/pods", "pods?watch=true", "pod#x", "../nodes", ""]
)
async def test_hostile_kinds_never_reach_a_path(
    deps: ToolDeps, fake_kube: FakeKube, kind: str
) -> None:
    before = len(fake_kube.requests)
    ok(await k8s.describe(deps, kind, "x", NS), "error")
    assert all(
        path in ("/api/v1", "/apis") or path.startswith("/apis/")
        for _, path in fake_kube.requests[before:]
    ), fake_kube.requests[before:]


async def test_events_newest_last_with_counts(deps: ToolDeps) -> None:
    text = ok(await k8s.events(deps, NS))
    assert "Events (6, newest last; 1 Warning, 5 Normal)" in text
    assert "Warning BackOff Pod/" + CRASHING in text.splitlines()[-1]
    limited = ok(await k8s.events(deps, NS, limit=2))
    assert "newest 2 of 6" in limited
    assert len(limited.splitlines()) == 3


async def test_events_for_one_object(deps: ToolDeps) -> None:
    text = ok(await k8s.events(deps, NS, name="bruno-site-api", kind="deploy"))
    assert "Events (2, newest last; 0 Warning, 2 Normal)" in text
    assert "Pod/" not in text


async def test_events_none(deps: ToolDeps) -> None:
    text = ok(await k8s.events(deps, "monitoring"), status="no_data")
    assert "No events for namespace monitoring" in text


async def test_not_configured() -> None:
    result = await k8s.describe(ToolDeps(kube=None), "pod", "x", NS)
    assert result == ToolResult("error", k8s.NOT_CONFIGURED)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_unreachable_api_is_an_error_quickly() -> None:
    url = _closed_port_url()
    deps = ToolDeps(kube=ApiClient(Configuration(host=url)), timeout=2)
    for call in (
        k8s.describe(deps, "pod", CRASHING, NS),
        k8s.events(deps, NS),
        k8s.logs(deps, CRASHING, NS),
    ):
        result = await call
        assert result.status == "error"
        assert result.text.startswith(f"Kubernetes API unreachable at {url}")


async def test_rbac_forbidden() -> None:
    with FakeKube() as fake:
        fake.load_file(Path(__file__).parents[1] / "fixtures" / "world-homepage.yaml")
        fake.forbid("pods")
        deps = ToolDeps(kube=fake.api_client())
        text = ok(await k8s.describe(deps, "pod", CRASHING, NS), "error")
        assert text.startswith("RBAC forbids")
        assert 'cannot get resource "pods"' in text
        text = ok(await k8s.logs(deps, CRASHING, NS), "error")
        assert "RBAC forbids" in text


async def test_describe_without_events_permission_still_describes() -> None:
    with FakeKube() as fake:
        fake.load_file(Path(__file__).parents[1] / "fixtures" / "world-homepage.yaml")
        fake.forbid("events")
        text = ok(await k8s.describe(ToolDeps(kube=fake.api_client()), "pod", CRASHING, NS))
        assert "Restart Count: 14" in text
        assert "Events: unavailable (RBAC forbids" in text


async def test_several_containers_pick_the_first_and_say_so() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "two", "namespace": NS},
        "spec": {"containers": [{"name": "app"}, {"name": "proxy"}]},
    }
    with FakeKube() as fake:
        fake.load(
            [pod],
            logs={
                (NS, "two", "app", False): "app line\n",
                (NS, "two", "proxy", False): "proxy line\n",
            },
        )
        deps = ToolDeps(kube=fake.api_client())
        text = ok(await k8s.logs(deps, "two", NS))
        assert "container app" in text and "[containers: app, proxy; showing the first]" in text
        assert text.endswith("app line")
        assert ok(await k8s.logs(deps, "two", NS, container="proxy")).endswith("proxy line")


async def test_kubeconfig_written_by_the_fake_works(fake_kube: FakeKube, tmp_path: Path) -> None:
    path = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
    client = kube_config.new_client_from_config(config_file=str(path))
    text = ok(await k8s.describe(ToolDeps(kube=client), "svc", "bruno-site-api", NS))
    assert "Type: ClusterIP" in text


def test_fake_answers_writes_with_405_and_records_them() -> None:
    import urllib.error
    import urllib.request

    with FakeKube() as fake:
        request = urllib.request.Request(
            f"{fake.url}/api/v1/namespaces/x/pods", method="POST", data=b"{}"
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{fake.url}/api/v1/namespaces/x/secrets/y", timeout=5)
        assert err.value.code == 403
        assert fake.requests == [
            ("POST", "/api/v1/namespaces/x/pods"),
            ("GET", "/api/v1/namespaces/x/secrets/y"),
        ]


async def test_the_tools_only_read_and_never_asked_for_secrets(
    deps: ToolDeps, fake_kube: FakeKube
) -> None:
    """Runs last in this module, so it checks everything the shared fake was asked."""
    for kind, name in (("pod", CRASHING), ("deploy", "bruno-site-api"), ("node", "worker-1")):
        await k8s.describe(deps, kind, name, NS)
    await k8s.logs(deps, CRASHING, NS, previous=True)
    await k8s.describe(deps, "secret", "bruno-site-api-secrets", NS)
    assert len(fake_kube.requests) > 10
    assert {method for method, _ in fake_kube.requests} == {"GET"}
    assert not [path for _, path in fake_kube.requests if "/secrets" in path]


async def test_describe_hpa_shows_bounds_and_metrics_against_targets():
    from sre_agent_tools import ToolDeps
    from sre_agent_tools import kubernetes as k8s_tools

    from tests.support.fake_kube import FakeKube

    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": 5,
            "desiredReplicas": 5,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": 140}},
                }
            ],
            "conditions": [
                {
                    "type": "ScalingLimited",
                    "status": "True",
                    "reason": "TooManyReplicas",
                    "message": "capped",
                }
            ],
        },
    }
    with FakeKube() as fake:
        fake.load([hpa])
        result = await k8s_tools.describe(ToolDeps(kube=fake.api_client()), "hpa", "web", "shop")
    assert result.status == "ok", result.text
    assert "Replicas: 5 current | 5 desired | min 2 | max 5" in result.text
    assert "Metric resource cpu: current 140% / target 60%" in result.text
    assert "ScalingLimited=True TooManyReplicas" in result.text
    assert fake.requests and all(method == "GET" for method, _ in fake.requests)
