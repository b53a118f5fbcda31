"""Reads as a hostile reviewer tries them: secrets in places other than a ConfigMap's data,
kinds served only in a group's older version, a huge custom-resource status, and a fake
that must not answer a route a real API server lacks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.result import ToolResult

from tests.support.fake_kube import FakeKube

NS = "shop"
CANARY = "CANARY-7f3a9c2e"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "orders-config",
        "namespace": NS,
        "annotations": {
            # what `kubectl apply` leaves behind: the whole object, data included
            LAST_APPLIED: json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "data": {"DB_PASSWORD": CANARY}}
            ),
            "owner": "team-orders",
        },
    },
    "data": {"DB_PASSWORD": CANARY, "LOG_LEVEL": "debug"},
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "orders",
        "namespace": NS,
        "annotations": {"deployment.kubernetes.io/revision": "3"},
    },
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "orders"}},
        "template": {
            "metadata": {"labels": {"app": "orders"}},
            "spec": {
                "initContainers": [{"name": "migrate", "args": [f"--db-password={CANARY}"]}],
                "containers": [
                    {
                        "name": "api",
                        "env": [
                            {"name": "API_TOKEN", "value": CANARY},
                            {"name": "LOG_LEVEL", "value": "debug"},
                        ],
                    }
                ],
            },
        },
    },
}
CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "report", "namespace": NS},
    "spec": {
        "schedule": "0 * * * *",
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "r", "env": [{"name": "SMTP_PASSWORD", "value": CANARY}]}
                        ]
                    }
                }
            }
        },
    },
}
RELEASE = {  # a custom resource whose spec and status carry credentials
    "apiVersion": "helm.toolkit.fluxcd.io/v2",
    "kind": "HelmRelease",
    "metadata": {"name": "orders", "namespace": NS},
    "spec": {
        "chart": {"spec": {"chart": "orders", "version": "1.2.3"}},
        "values": {"postgresql": {"auth": {"password": CANARY}}},
    },
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "UpgradeFailed",
                "message": f"helm upgrade failed: values password={CANARY}",
            }
        ],
        "lastAttemptedRevision": "1.2.3",
    },
}
EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "orders.1", "namespace": NS},
    "involvedObject": {"kind": "Deployment", "name": "orders", "namespace": NS},
    "reason": "Failed",
    "type": "Warning",
    "message": f"probe failed: curl -H 'Authorization: Bearer {CANARY}' http://orders",
    "lastTimestamp": "2026-12-01T23:00:00Z",
}
# monitoring.coreos.com serves Prometheus in v1 (preferred) and AlertmanagerConfig only
# in v1alpha1, as the prometheus-operator CRDs do
PROMETHEUS = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "Prometheus",
    "metadata": {"name": "main", "namespace": "monitoring"},
    "spec": {"replicas": 2},
}
AM_CONFIG = {
    "apiVersion": "monitoring.coreos.com/v1alpha1",
    "kind": "AlertmanagerConfig",
    "metadata": {"name": "routes", "namespace": "monitoring"},
    "spec": {"route": {"receiver": "pager"}},
    "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "BadRoute"}]},
}
HUGE = {  # a custom resource with a multi-megabyte status field (an operator's dump)
    "apiVersion": "example.io/v1",
    "kind": "Dump",
    "metadata": {"name": "big", "namespace": NS},
    "status": {"phase": "Failed", "log": f"password={CANARY} " + "x" * (3 * 1024 * 1024)},
}


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as world:
        world.load([CONFIGMAP, DEPLOYMENT, CRONJOB, RELEASE, EVENT, PROMETHEUS, AM_CONFIG, HUGE])
        yield world


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5)
    client.close()


def _text(found: Any) -> str:
    assert not isinstance(found, ToolResult), found
    return json.dumps(found)


@pytest.mark.parametrize(
    ("kind", "name", "kept"),
    [
        ("configmap", "orders-config", "team-orders"),
        ("deployment", "orders", '"deployment.kubernetes.io/revision": "3"'),
        ("cronjob", "report", "0 * * * *"),
        ("helmrelease", "orders", "UpgradeFailed"),
    ],
)
async def test_structured_reads_mask_secrets_wherever_they_sit(
    deps: ToolDeps, kind: str, name: str, kept: str
) -> None:
    read = _text(await k8s.read_object(deps, kind, name, NS))
    listed = _text(await k8s.list_or_error(deps, kind, NS))
    for text in (read, listed):
        assert CANARY not in text
        assert kept in text  # what the walk needs survives
    if kind == "deployment":
        assert '"value": "debug"' in read  # a plain env value is left alone


async def test_event_messages_are_masked_in_structured_reads(deps: ToolDeps) -> None:
    found = await k8s.object_events_or_error(deps, "deployment", "orders", NS)
    assert isinstance(found, list) and [e["reason"] for e in found] == ["Failed"]
    assert CANARY not in json.dumps(found)
    assert "probe failed" in found[0]["message"]


def test_the_fake_serves_both_versions_of_the_group_v1_preferred(fake: FakeKube) -> None:
    group = json.loads(
        urllib.request.urlopen(f"{fake.url}/apis/monitoring.coreos.com", timeout=5).read()
    )
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1alpha1"]


async def test_a_kind_served_only_in_a_non_preferred_version_is_found(
    fake: FakeKube, deps: ToolDeps
) -> None:
    for spelling in ("AlertmanagerConfig", "alertmanagerconfigs.monitoring.coreos.com"):
        client = fake.api_client()  # a fresh discovery per spelling (both paths)
        try:
            info = await k8s.kind_info(ToolDeps(kube=client, timeout=5), spelling)
        finally:
            client.close()
        assert isinstance(info, k8s.KindInfo), info
        assert (info.api_version, info.plural) == (
            "monitoring.coreos.com/v1alpha1",
            "alertmanagerconfigs",
        )
    prometheus = await k8s.kind_info(deps, "Prometheus")
    assert isinstance(prometheus, k8s.KindInfo) and prometheus.version == "v1"
    result = await k8s.describe(deps, "alertmanagerconfig", "routes", "monitoring")
    assert result.status == "ok" and "Ready=False BadRoute" in result.text


async def test_a_huge_custom_resource_status_is_cut_and_still_masked(deps: ToolDeps) -> None:
    result = await k8s.describe(deps, "dump", "big", NS)
    assert result.status == "ok", result.text
    assert len(result.text) <= deps.output_limit
    assert "phase: Failed" in result.text
    log_line = next(line for line in result.text.split("\n") if "log:" in line)
    assert CANARY not in log_line and "password=" in log_line and len(log_line) < 300


def test_the_fake_has_no_cluster_wide_route_to_a_namespaced_object(fake: FakeKube) -> None:
    # GET /api/v1/configmaps/<name> is not a route on a real API server: only lists are
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{fake.url}/api/v1/configmaps/orders-config", timeout=5)
    assert err.value.code == 404
    listed = json.loads(urllib.request.urlopen(f"{fake.url}/api/v1/configmaps", timeout=5).read())
    assert [o["metadata"]["name"] for o in listed["items"]] == ["orders-config"]


async def test_a_forbidden_core_kind_outside_the_role_says_to_grant_it(
    fake: FakeKube, deps: ToolDeps
) -> None:
    # ServiceAccount is served by the core group but not granted by deploy/rbac.yaml:
    # the error must not claim the role grants it
    fake.load([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "orders"}}])
    fake.forbid("serviceaccounts")
    result = await k8s.describe(deps, "serviceaccount", "orders", NS)
    assert result.status == "error"
    assert 'does not grant serviceaccounts in API group "" (core)' in result.text
    assert "deploy/rbac.yaml grants" not in result.text


@pytest.mark.parametrize(
    ("labels", "fields"),
    [("app=x,tier in (a)", None), (None, "spec.nodeName in (a)")],
)
async def test_a_malformed_selector_error_survives_redaction(
    deps: ToolDeps, labels: str | None, fields: str | None
) -> None:
    # the model reads this text after redaction: it must still say what form is expected
    result = await k8s.list_or_error(deps, "pod", NS, label_selector=labels, field_selector=fields)
    assert isinstance(result, ToolResult) and result.status == "error"
    assert "REDACTED" not in result.text
    assert ("label=value" if labels else "field=value") in result.text


async def test_discovery_stops_asking_when_hung_groups_eat_its_time() -> None:
    # 40 aggregated APIs that hang (each longer than the request timeout): a full
    # discovery must not wait on them one slot at a time, and must say what it skipped
    hung = [f"hung{i:02d}.example.io" for i in range(40)]
    with FakeKube() as fake:
        fake.load(
            [
                {
                    "apiVersion": f"{g}/v1",
                    "kind": "Widget",
                    "metadata": {"name": "w", "namespace": NS},
                }
                for g in hung
            ]
        )
        for g in hung:
            fake.make_hung(g, 1.0)
        client = fake.api_client()
        try:
            result = await k8s.kind_info(ToolDeps(kube=client, timeout=0.2), "gadget")
        finally:
            client.close()
        asked = [p for _, p in fake.requests if p.startswith("/apis/hung")]
    assert isinstance(result, ToolResult) and result.status == "error"
    assert "Unknown kind 'gadget'" in result.text and "failed" in result.text
    # at most (DEADLINE_TIMEOUTS + 1) rounds of PARALLEL requests, not one per group
    assert len(asked) <= 16 < len(hung), asked


async def test_a_response_too_large_to_read_is_an_error_that_says_how_to_narrow_it() -> None:
    # 30 custom resources of ~1.2 MiB each (etcd's limit is ~1.5 MiB an object): one
    # page of them is more than a read may hold
    blob = "y" * (1200 * 1024)
    with FakeKube() as fake:
        fake.load(
            [
                {
                    "apiVersion": "example.io/v1",
                    "kind": "Dump",
                    "metadata": {"name": f"big-{i}", "namespace": NS},
                    "status": {"log": blob},
                }
                for i in range(30)
            ]
        )
        client = fake.api_client()
        try:
            deps = ToolDeps(kube=client, timeout=10)
            listed = await k8s.list_or_error(deps, "Dump.example.io", NS)
            one = await k8s.read_object(deps, "Dump.example.io", "big-3", NS)
        finally:
            client.close()
    assert isinstance(listed, ToolResult) and listed.status == "error"
    assert "MiB" in listed.text and "narrow it" in listed.text
    assert not isinstance(one, ToolResult) and one["metadata"]["name"] == "big-3"
