"""Describing the kinds the graph walk visits, against the fake API server and the real client.

Each test builds its own small world and asserts the lines a person would read
to decide (a PV pinned to a node, the secret an Ingress names, the pods behind
a Service), and that values a ConfigMap should not show are masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import BUILTINS

from tests.support.fake_kube import FakeKube

NS = "shop"
ROOT = Path(__file__).resolve().parents[2]


def meta(name: str, ns: str | None = NS, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **extra}
    if ns:
        out["namespace"] = ns
    return out


def event(kind: str, name: str, ns: str, reason: str, message: str, **extra: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta(f"{name}.{reason.lower()}", ns),
        "involvedObject": {
            "kind": kind,
            "name": name,
            **({"namespace": ns} if ns != "default" else {}),
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 3,
        "lastTimestamp": "2026-12-01T23:00:00Z",
        **extra,
    }


PV = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": meta("local-pv-db-2", None),
    "spec": {
        "capacity": {"storage": "500Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "local-nvme",
        "claimRef": {"namespace": NS, "name": "data-db-2"},
        "local": {"path": "/mnt/nvme0"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["node-7"],
                            }
                        ]
                    }
                ]
            }
        },
    },
    "status": {"phase": "Bound"},
}
CSI_PV = {
    "apiVersion": "v1",
    "kind": "PersistentVolume",
    "metadata": meta("pvc-0a1b", None),
    "spec": {
        "capacity": {"storage": "20Gi"},
        "accessModes": ["ReadWriteOnce"],
        "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0abc", "fsType": "ext4"},
    },
    "status": {"phase": "Released"},
}
INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": meta("portal"),
    "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["portal.example.com"], "secretName": "portal-tls"}],
        "rules": [
            {
                "host": "portal.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/api",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "portal-api", "port": {"number": 8080}}
                            },
                        }
                    ]
                },
            }
        ],
        "defaultBackend": {"service": {"name": "portal-web", "port": {"name": "http"}}},
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": meta("orders"),
    "spec": {"selector": {"app": "orders"}, "clusterIP": "10.43.1.2", "ports": [{"port": 80}]},
}


def slice_(name: str, endpoints: list[tuple[str, str, bool]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta(name, labels={"kubernetes.io/service-name": "orders"}),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": NS},
                "nodeName": "worker-1",
            }
            for pod, ip, ready in endpoints
        ],
    }


WEBHOOKS = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration",
    "metadata": meta("policy-guard", None),
    "webhooks": [
        {
            "name": "validate.policy.example.io",
            "clientConfig": {
                "service": {
                    "namespace": "policy",
                    "name": "guard",
                    "port": 9443,
                    "path": "/validate",
                }
            },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "timeoutSeconds": 5,
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["kube-system"],
                    }
                ]
            },
            "rules": [
                {
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": ["apps"],
                    "apiVersions": ["v1"],
                    "resources": ["deployments"],
                }
            ],
        },
        {
            "name": "external.example.io",
            "clientConfig": {"url": "https://hooks.example.com/check"},
            "failurePolicy": "Ignore",
        },
    ],
}
QUOTA = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": meta("compute"),
    "spec": {"hard": {"requests.cpu": "8", "requests.memory": "24Gi", "pods": "30"}},
    "status": {
        "hard": {"requests.cpu": "8", "requests.memory": "24Gi", "pods": "30"},
        "used": {"requests.cpu": "8", "requests.memory": "12Gi", "pods": "6"},
    },
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": meta("app-config"),
    "data": {
        "app.properties": "db.host=db.shop.svc\npassword=CANARY-x1\nretries=3\n",
        "db-password": "CANARY-x2",
        "long.txt": "".join(f"line {i}\n" for i in range(100)),
    },
    "binaryData": {"truststore.jks": "CANARYQUJDRA=="},
}
STORAGE = [
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta("gp3", None),
        "provisioner": "ebs.csi.aws.com",
        "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"type": "gp3"},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": meta("nginx", None),
        "spec": {"controller": "k8s.io/ingress-nginx"},
    },
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(NS, None, labels={"team": "payments"}),
        "status": {"phase": "Terminating"},
    },
]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as world:
        world.load(
            [
                PV,
                CSI_PV,
                INGRESS,
                SERVICE,
                slice_(
                    "orders-a", [("orders-1", "10.42.0.5", True), ("orders-2", "10.42.0.6", False)]
                ),
                slice_("orders-b", [("orders-3", "10.42.1.9", True)]),
                WEBHOOKS,
                QUOTA,
                CONFIGMAP,
                *STORAGE,
                event("PersistentVolume", "local-pv-db-2", "default", "VolumeFailed", "node gone"),
                event("Ingress", "portal", NS, "Sync", "Scheduled for sync"),
            ]
        )
        yield world


@pytest.fixture
def deps(fake: FakeKube) -> Iterator[ToolDeps]:
    client = fake.api_client()
    yield ToolDeps(kube=client, timeout=5, output_limit=8000)
    client.close()


def ok(result: Any) -> str:
    assert result.status == "ok", result.text
    assert "CANARY" not in result.text
    return str(result.text)


async def test_pv_shows_its_claim_source_and_node_affinity(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "pv", "local-pv-db-2", "ignored"))
    assert "PersistentVolume local-pv-db-2" in text
    assert f"Status: Bound  Claim: {NS}/data-db-2  Reclaim Policy: Retain" in text
    assert "StorageClass: local-nvme  Capacity: 500Gi  Access Modes: ReadWriteOnce" in text
    assert "Source: local path=/mnt/nvme0" in text
    assert "Node affinity: kubernetes.io/hostname In [node-7]" in text
    # a PV's events live outside any namespace of its own
    assert "VolumeFailed" in text and "node gone" in text
    csi = ok(await k8s.describe(deps, "persistentvolumes", "pvc-0a1b"))
    assert "Source: csi driver=ebs.csi.aws.com volumeHandle=vol-0abc fsType=ext4" in csi
    assert "Status: Released  Claim: none  Reclaim Policy: Retain" in csi


async def test_ingress_names_backends_and_the_tls_secret_without_reading_it(
    deps: ToolDeps, fake: FakeKube
) -> None:
    text = ok(await k8s.describe(deps, "ing", "portal", NS))
    assert "Class: nginx" in text
    assert "portal.example.com\n    /api (Prefix) → portal-api:8080" in text
    assert "Default backend: portal-web:http" in text
    assert "TLS: hosts [portal.example.com] → secret portal-tls" in text
    assert "Load balancer: 203.0.113.9" in text
    assert "Warning Sync" in text
    assert not [p for _, p in fake.requests if "secret" in p]


async def test_service_names_the_ready_and_not_ready_pods_behind_it(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "svc", "orders", NS))
    assert "Selector: app=orders" in text
    # no Endpoints object here: the count comes from the slices
    assert "Endpoints: 2 ready, 1 not ready" in text
    assert "Ready pods: orders-1, orders-3" in text
    assert "Not ready pods: orders-2" in text


async def test_service_falls_back_to_endpoints_when_slices_are_forbidden() -> None:
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": meta("orders"),
        "subsets": [
            {
                "addresses": [
                    {"ip": "10.42.0.5", "targetRef": {"kind": "Pod", "name": "orders-1"}}
                ],
                "notReadyAddresses": [{"ip": "10.42.0.7"}],
            }
        ],
    }
    with FakeKube() as fake:
        fake.load([SERVICE, endpoints, slice_("orders-a", [("orders-9", "10.0.0.9", True)])])
        fake.forbid("endpointslices")
        text = ok(await k8s.describe(ToolDeps(kube=fake.api_client()), "service", "orders", NS))
    assert "Endpoints: 1 ready, 1 not ready" in text
    assert "Ready pods: orders-1" in text and "Not ready pods: 10.42.0.7" in text
    assert "orders-9" not in text


async def test_endpointslice_lists_each_address_with_its_conditions(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "endpointslice", "orders-a", NS))
    assert "Service: orders  AddressType: IPv4" in text
    assert "Ports: http:8080/TCP" in text
    assert (
        "10.42.0.6  ready=False serving=False terminating=False → Pod/orders-2 node worker-1"
        in text
    )


async def test_webhook_configuration_says_whom_it_calls_and_what_failure_does(
    deps: ToolDeps,
) -> None:
    text = ok(await k8s.describe(deps, "validatingwebhookconfiguration", "policy-guard"))
    assert "validate.policy.example.io:" in text
    assert "Client: service policy/guard:9443/validate" in text
    assert "Failure policy: Fail  Timeout: 5s" in text
    assert "Namespace selector: kubernetes.io/metadata.name notin (kube-system)" in text
    assert "Rules: CREATE/UPDATE deployments (apps)" in text
    assert "Client: url https://hooks.example.com/check" in text
    assert "Failure policy: Ignore" in text


async def test_quota_marks_the_resource_at_its_limit(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "quota", "compute", NS))
    assert "requests.cpu: 8 / 8 (100%)  AT LIMIT" in text
    assert "requests.memory: 12Gi / 24Gi (50%)" in text
    assert "pods: 6 / 30 (20%)" in text
    assert "AT LIMIT" not in text.split("requests.memory")[1]


async def test_configmap_values_are_shown_redacted_and_cut(deps: ToolDeps) -> None:
    text = ok(await k8s.describe(deps, "cm", "app-config", NS))
    assert "db.host=db.shop.svc" in text
    assert "password=***REDACTED***" in text
    assert "db-password (9 bytes, 1 lines):\n    ***REDACTED***" in text
    assert "long.txt (790 bytes, 100 lines):" in text
    assert "line 39" in text and "line 40" not in text and "[… 60 more lines]" in text
    assert "BinaryData (1 keys, not shown): truststore.jks" in text
    # the structured read masks the data too: the walk may quote it
    obj = await k8s.read_object(deps, "configmap", "app-config", NS)
    assert isinstance(obj, dict) and "CANARY" not in str(obj["data"])


async def test_configmap_output_is_capped_by_the_output_limit(fake: FakeKube) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("big"),
        "data": {f"k{i}": "x" * 200 for i in range(200)},
    }
    fake.load([big])
    result = await k8s.describe(
        ToolDeps(kube=fake.api_client(), output_limit=2000), "cm", "big", NS
    )
    assert result.status == "ok" and len(result.text) <= 2000 and "truncated" in result.text


async def test_storageclass_ingressclass_and_namespace(deps: ToolDeps) -> None:
    sc = ok(await k8s.describe(deps, "sc", "gp3"))
    assert (
        "Provisioner: ebs.csi.aws.com  ReclaimPolicy: Delete  VolumeBindingMode: WaitForFirstConsumer"
        in sc
    )
    ic = ok(await k8s.describe(deps, "ingressclass", "nginx"))
    assert "Controller: k8s.io/ingress-nginx" in ic
    ns = ok(await k8s.describe(deps, "namespace", NS))
    assert "Status: Terminating" in ns and "team=payments" in ns
    missing = await k8s.describe(deps, "ingressclass", "nginx-public")
    assert missing.status == "error"
    assert missing.text == "ingressclass nginx-public not found. Existing ingressclasses: nginx."


def test_every_built_in_kind_is_granted_read_only_in_deploy_rbac() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    granted = {
        (group, resource)
        for rule in role["rules"]
        if set(rule["verbs"]) <= {"get", "list", "watch"}
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    missing = {(k.group, k.plural) for k in BUILTINS} - granted
    assert not missing, f"deploy/rbac.yaml does not grant {sorted(missing)}"
    assert not {r for _, r in granted if "secret" in r}


async def test_limitrange_shows_defaults_and_bounds(fake: FakeKube) -> None:
    limits = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta("defaults"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m"},
                    "max": {"memory": "1Gi"},
                }
            ]
        },
    }
    fake.load([limits])
    text = ok(await k8s.describe(ToolDeps(kube=fake.api_client()), "limits", "defaults", NS))
    assert "Type Container:\n  max: memory=1Gi\n  default: memory=256Mi" in text
    assert "defaultRequest: cpu=100m" in text
