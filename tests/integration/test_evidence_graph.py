"""The evidence walk (docs/evidence.md) against the fake Kubernetes API at the wire.

Each test builds a small world of its own (not the scenario files), runs
:func:`sre_agent.evidence.gather` as an investigation does, and checks what a
person would: the telling line one or more hops away is in the evidence, the
walk stayed within its bounds (requests counted at the fake API server), and
nothing it must not read was read.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sre_agent_tools import ToolDeps
from sre_agent_tools import prometheus as prom

from sre_agent.evidence import gather, render
from sre_agent.graph import LOOKUP_BUDGET, MAX_DEPTH, PODS_PER_RELATION
from tests.support.fake_kube import FakeKube
from tests.support.prometheus import (
    PrometheusServer,
    Series,
    openmetrics_text,
    prometheus_available,
)

NS = "shop"

# -- a small world, built per test ---------------------------------------------------


def meta(name: str, ns: str | None = NS, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **more}
    if ns:
        out["namespace"] = ns
    return out


def owner(kind: str, name: str, api: str = "apps/v1") -> list[dict[str, Any]]:
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": f"u-{name}", "controller": True}]


def container_status(
    name: str, *, ready: bool = True, restarts: int = 0, waiting: str | None = None
) -> dict:
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting}}
        if waiting
        else {"running": {"startedAt": "2026-12-01T00:00:00Z"}}
    )
    st: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "image": "x",
    }
    if restarts:
        st["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1}}
    return st


def pod(
    name: str,
    labels: dict[str, str],
    *,
    ns: str = NS,
    rs: str | None = None,
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    ip: str | None = None,
    node: str | None = "node-a",
    env: dict[str, str] | None = None,
    reason: str | None = None,
    claims: list[str] = (),  # type: ignore[assignment]
    containers: list[str] = ("app",),  # type: ignore[assignment]
    statuses: list[dict] | None = None,
    init: list[str] = (),  # type: ignore[assignment]
    init_statuses: list[dict] | None = None,
    created: str = "2026-12-01T00:00:00Z",
) -> dict[str, Any]:
    m = meta(name, ns, labels=labels, creationTimestamp=created)
    if rs:
        m["ownerReferences"] = owner("ReplicaSet", rs)
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": c,
                "image": "x",
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }
            for c in containers
        ],
        "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
    }
    if init:
        spec["initContainers"] = [{"name": c, "image": "x"} for c in init]
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": statuses
        if statuses is not None
        else [container_status(c, ready=ready, restarts=restarts) for c in containers],
    }
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if ip:
        status["podIP"] = ip
    if reason:
        status["reason"], status["message"] = reason, f"The pod was {reason.lower()}."
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def deployment(
    name: str, labels: dict[str, str], replicas: int = 2, ready: int = 2, ns: str = NS
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, ns, labels=labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def replicaset(name: str, deploy: str, labels: dict[str, str], revision: int, ns: str = NS) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(
            name,
            ns,
            labels=labels,
            ownerReferences=owner("Deployment", deploy),
            annotations={"deployment.kubernetes.io/revision": str(revision)},
        ),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}},
        },
        "status": {"replicas": 0},
    }


_IPS = iter(range(10, 250))


def service(
    name: str, selector: dict[str, str] | None, ns: str = NS, ip: str | None = None
) -> dict:
    spec: dict[str, Any] = {
        "clusterIP": ip or f"10.43.1.{next(_IPS)}",
        "ports": [{"name": "http", "port": 80}],
    }
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns), "spec": spec}


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    *,
    ns: str = NS,
    warning: bool = True,
    api: str = "v1",
    component: str = "kubelet",
    n: int = 0,
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta(f"{name}.{reason.lower()}{n}", ns),
        "involvedObject": {
            "kind": kind,
            "name": name,
            "namespace": ns if kind not in ("Node",) else None,
            "apiVersion": api,
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "count": 3,
        "lastTimestamp": "2026-12-01T00:10:00Z",
        "source": {"component": component},
    }


def alert(**labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": "Test", "severity": "warning", **labels}, "annotations": {}}


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def deps_for(kube: FakeKube | None, prometheus: Any = None, timeout: float = 5.0) -> ToolDeps:
    return ToolDeps(
        kube=kube.api_client() if kube else None, prometheus=prometheus, timeout=timeout
    )


def walk(kube: FakeKube, labels: dict[str, str], **kw: Any) -> tuple[list, str]:
    findings = asyncio.run(gather(labels, deps_for(kube), timeout=kw.pop("timeout", 20)))
    return findings, render(findings)


def gets(kube: FakeKube, part: str) -> list[str]:
    return [path for method, path in kube.requests if part in path]


# -- R1-R4: workloads, ReplicaSets, pods, events --------------------------------------


def test_deployment_leads_to_its_newest_replicaset_and_its_events(kube: FakeKube) -> None:
    app = {"app": "cart"}
    kube.load(
        [
            deployment("cart", app, replicas=4, ready=2),
            replicaset("cart-old", "cart", app | {"h": "old"}, revision=3),
            replicaset("cart-new", "cart", app | {"h": "new"}, revision=12),
            replicaset("cart-mid", "cart", app | {"h": "mid"}, revision=7),
            event(
                "ReplicaSet",
                "cart-new",
                "FailedCreate",
                'pods "cart-new-x" is forbidden: exceeded quota: compute, requested: cpu=1',
            ),
            event("ReplicaSet", "cart-old", "FailedCreate", "OLD-RS-EVENT"),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="cart"))
    assert "exceeded quota: compute, requested: cpu=1" in text
    described = {f.args.get("name") for f in findings if f.tool == "kubectl_describe"}
    assert "cart-new" in described and not {"cart-old", "cart-mid"} & described
    title = next(f.title for f in findings if "cart-new" in f.title)
    assert title.startswith("Newest ReplicaSet of deployment shop/cart")


def test_a_workload_with_fifty_unhealthy_pods_reads_only_a_few(kube: FakeKube) -> None:
    app = {"app": "thumb"}
    pods = [
        pod(f"thumb-{i:02}", app, rs="thumb-rs", phase="Pending", ready=False, node=None)
        for i in range(48)
    ]
    pods.append(
        pod("thumb-evicted", app, rs="thumb-rs", phase="Failed", reason="Evicted", ready=False)
    )
    pods.append(pod("thumb-crash", app, rs="thumb-rs", restarts=7, ready=False))
    kube.load(
        [
            deployment("thumb", app, replicas=50, ready=0),
            replicaset("thumb-rs", "thumb", app, 1),
            *pods,
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="thumb"))
    described = {
        f.args.get("name")
        for f in findings
        if f.tool == "kubectl_describe" and f.args.get("kind") == "pod"
    }
    assert len(described) <= PODS_PER_RELATION
    # One pod per kind of trouble: the Evicted one is not skipped as "finished".
    assert {"thumb-evicted", "thumb-crash"} <= described
    pod_reads = [p for p in gets(kube, "/pods/") if "/log" not in p]
    assert len(pod_reads) <= PODS_PER_RELATION + 2
    assert "The pod was evicted." in text


def test_an_evicted_pod_leads_to_its_node_conditions_and_events(kube: FakeKube) -> None:
    app = {"app": "img"}
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta("node-d", None),
        "spec": {"taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {
                    "type": "DiskPressure",
                    "status": "True",
                    "reason": "KubeletHasDiskPressure",
                    "message": "kubelet has disk pressure",
                }
            ]
        },
    }
    node_event = event(
        "Node",
        "node-d",
        "EvictionThresholdMet",
        "Attempting to reclaim ephemeral-storage",
        ns="default",
    )
    kube.load(
        [
            deployment("img", app, replicas=2, ready=1),
            pod("img-1", app, phase="Failed", reason="Evicted", node="node-d", ready=False),
            node,
            node_event,
        ]
    )
    _, text = walk(kube, alert(namespace=NS, deployment="img"))
    assert "DiskPressure=True KubeletHasDiskPressure" in text
    assert "Attempting to reclaim ephemeral-storage" in text


# -- R5-R7: claims, volumes, nodes ---------------------------------------------------


def test_pod_claim_volume_and_the_node_the_volume_is_pinned_to(kube: FakeKube) -> None:
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta("pv-local-7", None),
        "spec": {
            "capacity": {"storage": "10Gi"},
            "claimRef": {"namespace": NS, "name": "data-db-0"},
            "local": {"path": "/mnt/disk"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": ["node-gone"],
                                }
                            ]
                        }
                    ]
                }
            },
        },
        "status": {"phase": "Bound"},
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta("data-db-0"),
        "spec": {"volumeName": "pv-local-7", "storageClassName": "local"},
        "status": {"phase": "Bound"},
    }
    kube.load(
        [
            pod(
                "db-0", {"app": "db"}, phase="Pending", ready=False, node=None, claims=["data-db-0"]
            ),
            pvc,
            pv,
            {"apiVersion": "v1", "kind": "Node", "metadata": meta("node-here", None), "status": {}},
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, pod="db-0"))
    assert "pv-local-7" in text
    assert "node-gone" in text
    missing = next(f for f in findings if f.args.get("name") == "node-gone")
    assert missing.status == "error" and "not found" in missing.output
    assert missing.title.startswith("Node that volume pv-local-7 is pinned to")


def test_a_pending_claim_leads_to_its_missing_storageclass(kube: FakeKube) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta("cache"),
        "spec": {"storageClassName": "fast-ssd"},
        "status": {"phase": "Pending"},
    }
    kube.load(
        [
            pod(
                "render-1",
                {"app": "render"},
                phase="Pending",
                ready=False,
                node=None,
                claims=["cache"],
            ),
            pvc,
            event(
                "PersistentVolumeClaim",
                "cache",
                "ProvisioningFailed",
                'storageclass.storage.k8s.io "fast-ssd" not found',
            ),
        ]
    )
    _, text = walk(kube, alert(namespace=NS, pod="render-1"))
    assert 'storageclass.storage.k8s.io "fast-ssd" not found' in text


# -- R8: Services ----------------------------------------------------------------------


def test_service_label_leads_to_the_current_log_of_its_ready_pods(kube: FakeKube) -> None:
    app = {"app": "orders"}
    kube.load(
        [
            service("orders", app),
            pod("orders-1", app, rs="orders-rs"),
            pod("orders-2", app, rs="orders-rs"),
        ],
        {
            (NS, "orders-1", "app", False): "\n".join(
                [
                    *(f"GET /o/{i} 200" for i in range(40)),
                    "HikariPool-1 - Connection is not available, request timed out after 30000ms",
                    *(f"GET /p/{i} 200" for i in range(30)),
                ]
            )
        },
    )
    findings, text = walk(kube, alert(namespace=NS, service="orders"))
    assert "HikariPool-1 - Connection is not available" in text
    logs = [f for f in findings if f.tool == "kubectl_logs"]
    assert logs and all(f.args["previous"] is False for f in logs)
    assert any(f.title.startswith("Pod behind Service shop/orders") for f in logs)


def test_a_service_whose_selector_matches_no_pod_is_a_finding(kube: FakeKube) -> None:
    kube.load(
        [
            service("billing", {"app": "billing", "tier": "backend"}),
            deployment("billing", {"app": "billing", "tier": "api"}),
            pod("billing-1", {"app": "billing", "tier": "api"}),
            deployment("other", {"app": "other"}),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, service="billing"))
    note = next(f for f in findings if f.title == "Service shop/billing selects no pod")
    assert "deployment billing" in note.output and "1 of 2 selector terms" in note.output
    assert "deployment other" not in note.output
    assert any(f.title.startswith("Workload whose pods carry the selector") for f in findings)
    assert "Selector: app=billing, tier=backend" in text


def test_a_service_scaled_to_zero_leads_to_the_workload_and_its_events(kube: FakeKube) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("ledger-db"),
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "ledger-db"}},
            "template": {"metadata": {"labels": {"app": "ledger-db"}}},
        },
        "status": {"replicas": 0},
    }
    kube.load(
        [
            pod("api-1", {"app": "api"}, ready=False, env={"DB_HOST": "ledger-db"}),
            service("ledger-db", {"app": "ledger-db"}),
            sts,
            event(
                "StatefulSet",
                "ledger-db",
                "SuccessfulDelete",
                "delete Pod ledger-db-0 in StatefulSet ledger-db successful",
                warning=False,
            ),
        ]
    )
    _, text = walk(kube, alert(namespace=NS, pod="api-1"))
    assert "delete Pod ledger-db-0 in StatefulSet ledger-db successful" in text


# -- the addresses an alert names ----------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ("10.42.7.7:9100", "kubectl describe pod shop/exporter-1"),
        ("http://orders.shop.svc:8080/healthz", "kubectl describe service shop/orders"),
        ("https://shop.example.com/", "kubectl describe ingress shop/storefront"),
    ],
)
def test_the_instance_label_is_resolved_to_the_object_behind_it(
    kube: FakeKube, instance: str, expected: str
) -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta("storefront"),
        "spec": {
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "orders", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    kube.load(
        [
            pod("exporter-1", {"app": "exp"}, ip="10.42.7.7"),
            service("orders", {"app": "orders"}),
            ingress,
        ]
    )
    findings, _ = walk(kube, alert(namespace=NS, job="blackbox", instance=instance))
    assert expected in [f.title for f in findings]


# -- R9, R10 ---------------------------------------------------------------------------


def test_hpa_leads_to_its_target_and_the_newest_replicaset_events(kube: FakeKube) -> None:
    app = {"app": "tiles"}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta("tiles"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tiles"},
            "minReplicas": 2,
            "maxReplicas": 8,
        },
        "status": {"currentReplicas": 4, "desiredReplicas": 8},
    }
    kube.load(
        [
            hpa,
            deployment("tiles", app, replicas=8, ready=4),
            replicaset("tiles-9", "tiles", app, 9),
            event(
                "ReplicaSet",
                "tiles-9",
                "FailedCreate",
                "exceeded quota: compute-resources, requested: requests.cpu=1",
            ),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, horizontalpodautoscaler="tiles"))
    assert "exceeded quota: compute-resources" in text
    assert any(f.title.startswith("Target of HPA shop/tiles") for f in findings)


def test_a_failed_job_leads_to_its_pod_log_and_the_suspended_sibling_cronjob(
    kube: FakeKube,
) -> None:
    def cronjob(name: str, suspend: bool) -> dict:
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta(name),
            "spec": {"schedule": "0 * * * *", "suspend": suspend, "jobTemplate": {"spec": {}}},
            "status": {},
        }

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("rollup-1", ownerReferences=owner("CronJob", "rollup", "batch/v1")),
        "spec": {"backoffLimit": 1},
        "status": {
            "failed": 2,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
        },
    }
    failed = pod(
        "rollup-1-abc",
        {"batch.kubernetes.io/job-name": "rollup-1"},
        phase="Failed",
        ready=False,
        statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
    )
    failed["metadata"]["ownerReferences"] = owner("Job", "rollup-1", "batch/v1")
    kube.load(
        [
            job,
            failed,
            cronjob("rollup", False),
            cronjob("partman", True),
            cronjob("healthy", False),
        ],
        {
            (
                NS,
                "rollup-1-abc",
                "app",
                False,
            ): 'psycopg.errors.UndefinedTable: relation "entries_2026_12" does not exist'
        },
    )
    findings, text = walk(kube, alert(namespace=NS, job_name="rollup-1"))
    assert 'relation "entries_2026_12" does not exist' in text
    assert any(
        f.title.startswith("Suspended CronJob") and f.args["name"] == "partman" for f in findings
    )
    assert not any(f.args.get("name") == "healthy" for f in findings)


# -- R11-R13: names in facts, webhooks, controllers ------------------------------------


def test_a_dependency_named_in_a_log_is_followed_to_its_pods_log(kube: FakeKube) -> None:
    kube.load(
        [
            service("quote", {"app": "quote"}),
            pod("quote-1", {"app": "quote"}),
            service("fx", {"app": "fx"}),
            pod("fx-1", {"app": "fx"}),
        ],
        {
            (
                NS,
                "quote-1",
                "app",
                False,
            ): 'fx call timed out: Get "http://fx.shop.svc:8080/rates": context deadline exceeded',
            (NS, "fx-1", "app", False): "level=warn msg=provider rate limit reached: 600/600",
        },
    )
    findings, text = walk(kube, alert(namespace=NS, service="quote"))
    assert "provider rate limit reached: 600/600" in text
    assert any(f.title.startswith("Service named in shop/quote-1") for f in findings)


def test_a_clusterip_in_an_event_leads_to_the_service(kube: FakeKube) -> None:
    app = {"app": "cart"}
    kube.load(
        [
            deployment("cart", app, replicas=3, ready=2),
            replicaset("cart-5", "cart", app, 5),
            event(
                "ReplicaSet",
                "cart-5",
                "FailedCreate",
                "Internal error: dial tcp 10.43.77.12:443: connect: connection refused",
            ),
            service("injector", {"app": "injector"}, ip="10.43.77.12"),
            pod("injector-1", {"app": "injector"}, ready=False, restarts=4),
        ],
        {(NS, "injector-1", "app", True): "tls: private key does not match public key"},
    )
    _, text = walk(kube, alert(namespace=NS, deployment="cart"))
    assert "tls: private key does not match public key" in text


def test_a_webhook_failure_leads_to_the_webhook_configuration_and_its_backend(
    kube: FakeKube,
) -> None:
    app = {"app": "cart"}
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": meta("mesh-injector", None),
        "webhooks": [
            {
                "name": "inject.mesh.io",
                "failurePolicy": "Fail",
                "clientConfig": {
                    "service": {"namespace": "mesh-system", "name": "injector", "port": 443}
                },
            }
        ],
    }
    kube.load(
        [
            deployment("cart", app, replicas=3, ready=2),
            replicaset("cart-5", "cart", app, 5),
            event(
                "ReplicaSet",
                "cart-5",
                "FailedCreate",
                'Internal error occurred: failed calling webhook "inject.mesh.io": context deadline exceeded',
            ),
            config,
            service("injector", {"app": "injector"}, ns="mesh-system"),
            pod("injector-1", {"app": "injector"}, ns="mesh-system", ready=False, restarts=4),
        ],
        {("mesh-system", "injector-1", "app", True): "unable to load serving certificate"},
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="cart"))
    assert "unable to load serving certificate" in text
    assert any(f.args.get("name") == "mesh-injector" for f in findings)
    # The model's tools may follow: the namespace the walk visited is in the findings' args.
    assert "mesh-system" in {f.args.get("namespace") for f in findings}


def test_a_custom_resource_with_warnings_and_its_controllers_log(kube: FakeKube) -> None:
    cert = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta("web-tls"),
        "spec": {"secretName": "web-tls", "issuerRef": {"name": "le", "kind": "Issuer"}},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Expired",
                    "message": "Certificate expired",
                }
            ]
        },
    }
    controller = deployment(
        "cert-manager", {"app.kubernetes.io/name": "cert-manager"}, ns="cm-system"
    )
    log_text = "\n".join(
        [
            *(f"I1201 sync other/thing-{i} ok" for i in range(30)),
            'E1201 "propagation check failed" err="wrong status code 404" resource_namespace="shop" resource_name="web-tls-1"',
            *(f"I1201 sync other/thing-{i} ok" for i in range(30)),
        ]
    )
    kube.load(
        [
            cert,
            event(
                "Certificate",
                "web-tls",
                "Failed",
                "order is pending",
                api="cert-manager.io/v1",
                component="cert-manager-certificates-issuing",
            ),
            controller,
            pod("cert-manager-1", {"app.kubernetes.io/name": "cert-manager"}, ns="cm-system"),
        ],
        {("cm-system", "cert-manager-1", "app", False): log_text},
    )
    findings, text = walk(kube, alert(namespace=NS, job="blackbox"))
    assert "Ready=False Expired" in text and "order is pending" in text
    controller_log = next(
        f for f in findings if f.title.startswith("Log of the controller cert-manager")
    )
    assert "propagation check failed" in controller_log.output
    assert "other/thing" not in controller_log.output
    assert controller_log.args["namespace"] == "cm-system"


# -- L1: logs -------------------------------------------------------------------------


def test_a_restarted_container_gives_previous_and_current_logs(kube: FakeKube) -> None:
    kube.load(
        [pod("api-1", {"app": "api"}, restarts=3, ready=False)],
        {
            (NS, "api-1", "app", True): "PREVIOUS-CRASH",
            (NS, "api-1", "app", False): "CURRENT-START",
        },
    )
    _, text = walk(kube, alert(namespace=NS, pod="api-1"))
    assert "PREVIOUS-CRASH" in text and "CURRENT-START" in text


def test_a_running_init_container_and_the_not_ready_sidecar_are_read(kube: FakeKube) -> None:
    kube.load(
        [
            pod(
                "loyalty-1",
                {"app": "loyalty"},
                phase="Pending",
                containers=["app"],
                statuses=[container_status("app", ready=False, waiting="PodInitializing")],
                init=["wait-for-db"],
                init_statuses=[container_status("wait-for-db", ready=False)],
            ),
            pod(
                "mesh-1",
                {"app": "mesh"},
                containers=["app", "proxy"],
                statuses=[
                    container_status("app"),
                    container_status("proxy", ready=False, restarts=2),
                ],
            ),
        ],
        {
            (
                NS,
                "loyalty-1",
                "wait-for-db",
                False,
            ): "db (10.43.9.8:5432) open? no: Connection refused",
            (NS, "mesh-1", "proxy", True): "PROXY-CRASHED",
            (NS, "mesh-1", "app", False): "APP-IS-FINE",
        },
    )
    _, text = walk(kube, alert(namespace=NS, pod="loyalty-1"))
    assert "open? no: Connection refused" in text
    _, text = walk(kube, alert(namespace=NS, pod="mesh-1"))
    assert "PROXY-CRASHED" in text and "APP-IS-FINE" not in text


# -- bounds -----------------------------------------------------------------------------


def test_a_cycle_of_names_is_walked_once(kube: FakeKube) -> None:
    kube.load(
        [
            service("a", {"app": "a"}),
            pod("a-1", {"app": "a"}),
            service("b", {"app": "b"}),
            pod("b-1", {"app": "b"}),
        ],
        {
            (NS, "a-1", "app", False): "calling http://b.shop.svc:80 failed",
            (NS, "b-1", "app", False): "calling http://a.shop.svc:80 failed",
        },
    )
    findings, _ = walk(kube, alert(namespace=NS, service="a"))
    signatures = [f.signature() for f in findings]
    assert len(signatures) == len(set(signatures))
    assert len([p for p in gets(kube, "/log")]) == 2


def test_depth_is_bounded_along_a_chain_of_dependencies(kube: FakeKube) -> None:
    objects, logs = [], {}
    for i in range(10):
        objects += [service(f"s{i}", {"app": f"s{i}"}), pod(f"s{i}-1", {"app": f"s{i}"})]
        logs[(NS, f"s{i}-1", "app", False)] = f"upstream http://s{i + 1}.shop.svc:80 failed"
    kube.load(objects, logs)
    findings, _ = walk(kube, alert(namespace=NS, service="s0"))
    services = {
        f.args["name"] for f in findings if f.args.get("kind") == "service" and f.status == "ok"
    }
    assert "s0" in services and f"s{MAX_DEPTH // 2}" in services
    assert not {f"s{i}" for i in range(MAX_DEPTH, 10)} & services


def test_the_lookup_budget_holds_in_a_wide_namespace(kube: FakeKube) -> None:
    """200 Services whose pods each name five others: 31 lie within the depth bound,
    and the budget stops the walk before it reads all their pods."""
    objects = []
    names = [f"dep{i}" for i in range(200)]
    for i, name in enumerate(names):
        env = {f"U{j}": f"http://{names[(i * 5 + j + 1) % 200]}.shop.svc" for j in range(5)}
        objects += [
            service(name, {"app": name}),
            pod(f"{name}-1", {"app": name}, ready=False, env=env),
        ]
    kube.load(objects)
    walk(kube, alert(namespace=NS, service="dep0"))
    assert len(kube.requests) <= 2 * LOOKUP_BUDGET
    assert 0 < len(gets(kube, "/log")) < 31


# -- failing and absent backends --------------------------------------------------------


class _HangingLogs(FakeKube):
    """The fake API server, except that pod logs never answer (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.answered_logs = 0

    def respond(self, method: str, target: str) -> tuple[int, str, str]:
        if "/log" in target:
            self.release.wait(30)
            self.answered_logs += 1
        return super().respond(method, target)


def test_a_hung_api_mid_walk_keeps_what_answered(tmp_path: Path) -> None:
    with _HangingLogs() as kube:
        try:
            app = {"app": "api"}
            kube.load(
                [
                    deployment("api", app, replicas=2, ready=1),
                    pod("api-1", app, restarts=2, ready=False),
                ]
            )

            async def timed() -> tuple[list, int]:
                found = await gather(
                    alert(namespace=NS, deployment="api"), deps_for(kube, timeout=60), timeout=2
                )
                answered = kube.answered_logs
                kube.release.set()  # let the worker threads finish before the loop closes
                return found, answered

            findings, answered = asyncio.run(timed())
            # The phase's own timeout ended it: no log request had been answered yet.
            assert answered == 0
        finally:
            kube.release.set()
    by_tool = {(f.tool, f.status) for f in findings}
    assert ("kubectl_describe", "ok") in by_tool
    logs = [f for f in findings if f.tool == "kubectl_logs"]
    assert logs and all(f.status == "error" and "timed out" in f.output for f in logs)


def test_without_kubernetes_the_walk_stops_cleanly() -> None:
    findings = asyncio.run(
        gather(alert(namespace=NS, deployment="api", pod="api-1"), deps_for(None), timeout=5)
    )
    assert findings and all(f.status == "error" for f in findings)
    assert any("Kubernetes is not configured" in f.output for f in findings)


# -- what must never be read or shown ----------------------------------------------------


def test_secrets_are_never_read_and_canaries_never_shown(kube: FakeKube) -> None:
    app = {"app": "pay"}
    leaky = pod("pay-1", app, ready=False, restarts=1, env={"DB_PASSWORD": "CANARY-graph-env"})
    leaky["spec"]["containers"][0]["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "pay-secrets", "key": "t"}}}
    )
    kube.load(
        [
            deployment("pay", app, replicas=1, ready=0),
            leaky,
            service("pay", app),
            event("Secret", "pay-secrets", "Failed", "secret warning"),
        ],
        {(NS, "pay-1", "app", True): "connecting with password=CANARY-graph-log failed"},
    )
    _, text = walk(kube, alert(namespace=NS, deployment="pay", service="pay"))
    assert "CANARY" not in text
    assert not [p for m, p in kube.requests if "secret" in p.lower()]
    assert all(m == "GET" for m, _ in kube.requests)


# -- the metric side ------------------------------------------------------------------------


@pytest.mark.skipif(not prometheus_available(), reason="prometheus/promtool not installed")
def test_the_alerts_own_series_survives_an_expr_over_every_namespace(tmp_path: Path) -> None:
    end = math.floor(time.time()) - 5
    points = [(end - 60 * i, 1.0) for i in range(10, -1, -1)]
    series = [
        Series(
            "kube_pod_status_ready",
            {"namespace": f"ns-{i:02}", "pod": "p", "condition": "false"},
            points,
        )
        for i in range(60)
    ]
    with PrometheusServer(
        tmp_path, openmetrics=openmetrics_text(series), lookback_delta="30m"
    ) as server:
        deps = ToolDeps(prometheus=prom.make_prometheus(server.url, 10))
        labels = alert(namespace="ns-57", pod="p")
        labels["expr"] = 'kube_pod_status_ready{condition="false"} == 1'
        findings = asyncio.run(gather(labels, deps, timeout=20))
    text = render(findings)
    assert 'namespace="ns-57",pod="p"} => 1' in text


# -- namespace scope ----------------------------------------------------------------------


def test_names_in_logs_stay_in_the_walks_namespaces_names_in_specs_may_leave(
    kube: FakeKube,
) -> None:
    """A log line is often attacker-written: a name in it does not lead the walk (and
    the model's scope) into another namespace. A name in the pod's own spec does."""
    kube.load(
        [
            pod(
                "api-1",
                {"app": "api"},
                ready=False,
                restarts=1,
                env={"DB_URL": "postgres://db.data.svc:5432/x"},
            ),
            service("db", {"app": "db"}, ns="data"),
            pod("db-1", {"app": "db"}, ns="data"),
            service("admin", {"app": "admin"}, ns="kube-system"),
            pod("admin-1", {"app": "admin"}, ns="kube-system"),
        ],
        {
            (
                NS,
                "api-1",
                "app",
                True,
            ): "error: please read http://admin.kube-system.svc:80/ for help"
        },
    )
    findings, _ = walk(kube, alert(namespace=NS, pod="api-1"))
    visited = {f.args.get("namespace") for f in findings}
    assert "data" in visited
    assert "kube-system" not in visited
    assert not gets(kube, "/namespaces/kube-system/")
    calls = [f.tool_call().model_dump() for f in findings]
    scope = deps_for(kube).scoped(alert(namespace=NS), calls).namespaces
    assert scope is not None and {"shop", "data"} <= scope and "kube-system" not in scope


@pytest.mark.parametrize(
    "labels",
    [
        {"instance": "http://[::1", "job": "probe", "namespace": NS},
        {"instance": "10.0.0.1:", "job": "probe", "namespace": NS},
        {"instance": "http://../../secrets.shop.svc/", "job": "probe", "namespace": NS},
        {"kind": "Secret", "name": "db-creds", "exported_namespace": NS},
        {"pod": "../../secrets/x", "namespace": NS},
        {"service": "a,b", "namespace": "UPPER"},
        {"kind": "A" * 100, "name": "x" * 300},
    ],
)
def test_hostile_labels_degrade_to_findings_never_to_a_crash(kube: FakeKube, labels: dict) -> None:
    kube.load([pod("p", {"app": "p"}, ip="10.42.0.1")])
    walk(kube, alert(**labels))
    assert not [p for _, p in kube.requests if "secret" in p.lower()]


# -- reviewer's additions: NetworkPolicies, Terminating objects, exporters' labels ---------


def netpol(name: str, selector: dict[str, Any], ns: str = NS, **spec: Any) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, ns),
        "spec": {"podSelector": selector, **spec},
    }


def test_the_networkpolicy_that_selects_a_dependencys_pod_is_in_the_evidence(
    kube: FakeKube,
) -> None:
    """Client not ready -> the Service its env names in another namespace -> the DB pod ->
    the NetworkPolicy whose podSelector (matchExpressions) selects it; not one that selects
    other pods. The namespace's policies are listed once however many pods are visited."""
    app, db = {"app": "ledger"}, {"app": "pg", "role": "primary"}
    kube.load(
        [
            deployment("ledger", app, replicas=2, ready=0),
            pod("ledger-1", app, ready=False, env={"PGHOST": "pg.data.svc.cluster.local"}),
            pod("ledger-2", app, ready=False, env={"PGHOST": "pg.data.svc.cluster.local"}),
            service("pg", db, ns="data"),
            pod("pg-0", db, ns="data"),
            netpol(
                "pg-only-billing",
                {"matchExpressions": [{"key": "app", "operator": "In", "values": ["pg"]}]},
                ns="data",
                policyTypes=["Ingress"],
                ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "billing"}}}]}],
            ),
            netpol("cache-egress", {"matchLabels": {"app": "cache"}}, ns="data"),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="ledger"))
    policy = [f for f in findings if f.args.get("kind") == "networkpolicy"]
    assert [f.args["name"] for f in policy] == ["pg-only-billing"]
    assert (
        policy[0].title
        == "NetworkPolicy selecting pod data/pg-0: networkpolicy data/pg-only-billing"
    )
    assert policy[0].priority == 2  # a finding at any depth
    assert "namespaceSelector.matchLabels: team=billing" in text
    assert "cache-egress" not in text
    assert len(gets(kube, "/namespaces/shop/networkpolicies")) == 1
    assert len(gets(kube, "/namespaces/data/networkpolicies")) == 1


def test_a_claim_stuck_terminating_is_a_finding_with_its_finalizers(kube: FakeKube) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(
            "data-kafka-2",
            deletionTimestamp="2026-12-01T00:00:00Z",
            finalizers=["kubernetes.io/pvc-protection"],
        ),
        "spec": {"volumeName": "pv-k2", "storageClassName": "ssd"},
        "status": {"phase": "Bound"},
    }
    kube.load(
        [
            pod(
                "kafka-2",
                {"app": "kafka"},
                phase="Pending",
                ready=False,
                node=None,
                claims=["data-kafka-2"],
                statuses=[],
            ),
            claim,
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, pod="kafka-2"))
    found = [f for f in findings if f.args.get("name") == "data-kafka-2"]
    assert found and found[0].priority == 2
    assert "Terminating: deletion requested 2026-12-01T00:00:00Z" in found[0].output
    assert "finalizers: kubernetes.io/pvc-protection" in found[0].output


def test_the_exporters_own_pod_label_is_not_walked_beside_the_object_in_trouble(
    kube: FakeKube,
) -> None:
    """kube-prometheus-stack leaves kube-state-metrics' own pod/container on its series:
    the walk starts from the Deployment, not from the exporter's pod."""
    own = "stack-kube-state-metrics-5f6d-xk2lp"
    kube.load([deployment("cart", {"app": "cart"}, replicas=2, ready=1)])
    labels = dict(
        namespace=NS,
        deployment="cart",
        job="kube-state-metrics",
        container="kube-state-metrics",
        pod=own,
    )
    findings, _ = walk(kube, alert(**labels))
    assert not gets(kube, own)
    assert any(f.args.get("name") == "cart" and f.priority == 1 for f in findings)


def test_the_exporters_own_pod_is_walked_when_it_is_the_one_in_trouble(kube: FakeKube) -> None:
    own = "kube-state-metrics-5f6d-xk2lp"
    ksm = {"app": "kube-state-metrics"}
    kube.load([pod(own, ksm, restarts=4, containers=["kube-state-metrics"])])
    labels = dict(namespace=NS, job="kube-state-metrics", container="kube-state-metrics", pod=own)
    findings, _ = walk(kube, alert(**labels))
    assert any(f.args.get("name") == own and f.priority == 1 for f in findings)


def test_a_disruption_budget_label_leads_to_the_pods_it_counts_unhealthy(kube: FakeKube) -> None:
    app = {"app": "search"}
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("search-pdb"),
        "spec": {"minAvailable": 2, "selector": {"matchLabels": app}},
        "status": {"currentHealthy": 1, "desiredHealthy": 2, "disruptionsAllowed": 0},
    }
    kube.load(
        [
            pdb,
            pod("search-0", app),
            pod("search-1", app, phase="Pending", ready=False, node=None, statuses=[]),
            event(
                "Pod",
                "search-1",
                "FailedScheduling",
                "0/3 nodes are available: 3 Insufficient memory.",
            ),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, poddisruptionbudget="search-pdb"))
    assert "disruptionsAllowed: 0" in text
    assert "0/3 nodes are available: 3 Insufficient memory." in text
    assert any(
        f.title.startswith("Unhealthy pod of PodDisruptionBudget shop/search-pdb") for f in findings
    )
    assert not gets(kube, "/pods/search-0")


def test_an_object_a_relation_trips_over_costs_its_hops_not_the_phase(kube: FakeKube) -> None:
    """A malformed object (a claim list that is not a list of volumes) must not end the
    evidence phase: what was gathered stays, the rest of the walk goes on."""
    odd = pod("odd-1", {"app": "odd"}, ready=False, rs="odd-rs")
    odd["spec"]["volumes"] = [{"name": "v", "persistentVolumeClaim": "not-an-object"}]
    kube.load([deployment("odd", {"app": "odd"}, replicas=1, ready=0), odd])
    findings, text = walk(kube, alert(namespace=NS, deployment="odd"))
    assert any(f.args.get("name") == "odd" and f.status == "ok" for f in findings)
    assert "Pod shop/odd-1" in text


def test_an_object_whose_own_reading_trips_keeps_the_other_objects(kube: FakeKube) -> None:
    """A restart count that is not a number trips the pod's own ranking; the Deployment,
    its ReplicaSet and its other pod are still in the evidence."""
    app = {"app": "odd"}
    odd = pod("odd-1", app, ready=False, rs="odd-rs", created="2026-12-01T00:05:00Z")
    odd["status"]["containerStatuses"][0]["restartCount"] = "3"
    kube.load(
        [
            deployment("odd", app, replicas=2, ready=0),
            replicaset("odd-rs", "odd", app, 1),
            odd,
            pod("odd-2", app, ready=False, rs="odd-rs", phase="Pending", node=None, statuses=[]),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="odd"))
    assert "Deployment shop/odd" in text
    assert "Pod shop/odd-2" in text


def test_a_node_exporter_target_by_ip_leads_to_the_node_with_that_address(
    kube: FakeKube,
) -> None:
    """kube-prometheus-stack leaves node-exporter's ``instance`` as ``<node IP>:9100``: the
    walk finds the Node by its address, then its failing pods."""

    def node(name: str, ip: str, pressure: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": meta(name, None),
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {"type": "DiskPressure", "status": pressure, "reason": "KubeletHasDiskPressure"}
                ],
            },
        }

    kube.load(
        [
            node("node-a", "10.0.1.4", "False"),
            node("node-b", "10.0.1.5", "True"),
            pod(
                "img-1",
                {"app": "img"},
                phase="Failed",
                reason="Evicted",
                node="node-b",
                ready=False,
            ),
        ]
    )
    labels = dict(
        alertname="NodeFilesystemSpaceFillingUp",
        job="node-exporter",
        instance="10.0.1.5:9100",
        device="/dev/nvme0n1p1",
        mountpoint="/",
    )
    findings, text = walk(kube, {"labels": {"severity": "warning", **labels}, "annotations": {}})
    nodes = [f for f in findings if f.args.get("kind") == "node"]
    assert [f.args["name"] for f in nodes] == ["node-b"]
    assert nodes[0].priority == 1
    assert "DiskPressure=True KubeletHasDiskPressure" in text
    assert "Pod shop/img-1" in text


def test_a_named_workload_with_only_healthy_pods_still_gives_one_current_log(
    kube: FakeKube,
) -> None:
    """An error-rate alert on a Deployment whose pods are all Ready: the newest pod's
    current log is read (the telling line is there), one pod only."""
    app = {"app": "pay"}
    kube.load(
        [
            deployment("pay", app, replicas=3, ready=3),
            pod("pay-old-1", app, created="2026-11-01T00:00:00Z"),
            pod("pay-old-2", app, created="2026-11-02T00:00:00Z"),
            pod("pay-new", app, created="2026-12-01T00:00:00Z"),
        ],
        {
            (NS, "pay-new", "app", False): "\n".join(
                [
                    *(f"POST /charge/{i} 200" for i in range(40)),
                    "upstream psp-gateway returned 502 Bad Gateway",
                    *(f"POST /charge/{i} 200" for i in range(30)),
                ]
            )
        },
    )
    findings, text = walk(kube, alert(namespace=NS, deployment="pay"))
    assert "upstream psp-gateway returned 502 Bad Gateway" in text
    assert not gets(kube, "pay-old")
    logs = [f for f in findings if f.tool == "kubectl_logs"]
    # context, not a finding: it ranks after the findings of any depth
    assert [f.args["pod"] for f in logs] == ["pay-new"] and logs[0].priority > 2


def test_names_the_cluster_gives_are_masked_where_they_enter_the_evidence(kube: FakeKube) -> None:
    """A finding's title and arguments are built from what the cluster said (here an
    event's object name): masked before the prompt and the record, like its output."""
    secret = "hunter2" + "Zq8x" * 5
    kube.load(
        [
            event("Pod", f"password={secret}", "BackOff", "Back-off restarting failed container"),
            event("Pod", f"api_key:{secret}", "BackOff", "Back-off restarting failed container"),
        ]
    )
    findings, text = walk(kube, alert(namespace=NS))
    named = [f for f in findings if "password=" in f.title]
    assert named, "the warned object is in the evidence"
    for finding in findings:
        stored = finding.model_dump_json()
        assert secret not in finding.title and secret not in stored
    assert secret not in text
