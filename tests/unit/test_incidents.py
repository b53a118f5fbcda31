"""The incident rule through real records: what joins, what must not, who heads, what a
head explains, the model queue's order and Alertmanager group keys."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sre_agent import incidents
from sre_agent.models import AlertRecord, Investigation, WalkedObject

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# Unique across imports: pytest may load this module twice (as itself and through
# test_dispatch), and the footprint cache is keyed by id.
_ids = itertools.count(1)
_RUN = uuid.uuid4().hex[:6]
EXAMPLES = Path("/work/shared/examples/alertmanager")


def alert(
    alertname: str,
    severity: str = "warning",
    *,
    objects: list[WalkedObject] | None = None,
    group_key: str = "",
    arrived: float = 0.0,
    started: str = "2026-12-02T11:55:00Z",
    **labels: str,
) -> Investigation:
    """A record as the store holds it after the evidence stage."""
    ident = f"inv-{_RUN}-{next(_ids)}"
    return Investigation(
        id=ident,
        fingerprint=ident,
        alertname=alertname,
        severity=severity,
        namespace=labels.get("namespace"),
        group_key=group_key,
        alert=AlertRecord(
            labels={"alertname": alertname, "severity": severity, **labels}, startsAt=started
        ),
        status="queued",
        created_at=(T0 + timedelta(seconds=arrived)).isoformat(),
        objects=objects or [],
        evidence_at=(T0 + timedelta(seconds=arrived + 1)).isoformat(),
    )


def obj(kind: str, name: str, ns: str | None = None, depth: int = 1, **more: Any) -> WalkedObject:
    return WalkedObject(kind=kind, name=name, namespace=ns, depth=depth, **more)


def pod_walk(ns: str, pod: str, node: str, rs: str | None = None) -> list[WalkedObject]:
    """What the walk reaches from a pod the labels name: owners up, its node."""
    out = [obj("pod", pod, ns, 0, why="Named by the alert")]
    if rs:
        out += [
            obj("replicaset", rs, ns, 1, why=f"Owner of pod {ns}/{pod}"),
            obj("deployment", rs.rsplit("-", 1)[0], ns, 2, why=f"Owner of replicaset {ns}/{rs}"),
        ]
    out.append(obj("node", node, None, 1, why=f"Node of pod {ns}/{pod}"))
    return out


def pod_alert(ns: str, pod: str, node: str, rs: str | None = None, **kw: Any) -> Investigation:
    return alert(
        "KubePodNotReady", namespace=ns, pod=pod, objects=pod_walk(ns, pod, node, rs), **kw
    )


def node_alert(node: str, **kw: Any) -> Investigation:
    return alert(
        "KubeNodeNotReady",
        node=node,
        job="kube-state-metrics",
        instance="10.0.0.5:8080",
        service="prometheus-kube-state-metrics",
        objects=[obj("node", node, None, 0, why="Named by the alert")],
        **kw,
    )


def both(a: Investigation, b: Investigation) -> tuple[str | None, str | None]:
    """The rule of each direction's join (None: no link)."""
    ab, ba = incidents.link(a, b), incidents.link(b, a)
    return (ab.rule if ab else None, ba.rule if ba else None)


# --- what links -----------------------------------------------------------------------
def test_same_object_links_both_ways_and_names_both_alerts() -> None:
    crash = alert("KubePodCrashLooping", namespace="shop", pod="web-1", container="app")
    ready = pod_alert("shop", "web-1", "n1")
    assert both(crash, ready) == ("same-object", "same-object")
    join = incidents.link(crash, ready)
    assert join is not None
    assert (join.investigation_id, join.alertname) == (crash.id, "KubePodCrashLooping")
    assert join.reason == "KubePodNotReady and KubePodCrashLooping both name pod shop/web-1"


def test_pod_reaches_the_node_another_alert_names() -> None:
    node, pod = node_alert("n1"), pod_alert("shop", "web-1", "n1")
    assert both(node, pod) == ("reaches", "reaches")
    join = incidents.link(node, pod)
    assert join is not None and join.investigation_id == node.id
    assert join.reason == (
        "KubePodNotReady reaches node n1 (Node of pod shop/web-1), which KubeNodeNotReady names"
    )


def test_node_exporter_alert_names_its_node_by_instance() -> None:
    disk = alert("NodeFilesystemAlmostOutOfSpace", job="node-exporter", instance="n1:9100")
    assert both(disk, pod_alert("shop", "web-1", "n1")) == ("reaches", "reaches")
    by_ip = alert("NodeFilesystemAlmostOutOfSpace", job="node-exporter", instance="10.0.3.1:9100")
    assert both(by_ip, pod_alert("shop", "web-1", "n1")) == (None, None)


def test_a_target_down_reaches_the_node_of_its_pod() -> None:
    target = alert(
        "TargetDown",
        job="node-exporter",
        namespace="monitoring",
        service="prometheus-node-exporter",
        objects=[
            obj("pod", "node-exporter-x1", "monitoring", 0, origin="target", why="Pod of target"),
            obj(
                "node",
                "n3",
                None,
                1,
                origin="target",
                why="Node of pod monitoring/node-exporter-x1",
            ),
        ],
    )
    assert both(node_alert("n3"), target) == ("reaches", "reaches")


def test_pods_of_one_deployment_are_one_workload() -> None:
    a = pod_alert("shop", "web-7d9-a", "n1", rs="web-7d9")
    b = pod_alert("shop", "web-7d9-b", "n2", rs="web-7d9")
    assert both(a, b) == ("same-workload", "same-workload")
    join = incidents.link(a, b)
    assert join is not None
    assert join.reason == (
        "KubePodNotReady (pod shop/web-7d9-b) and KubePodNotReady (pod shop/web-7d9-a)"
        " both reach deployment shop/web"
    )


def test_pods_on_one_claim_are_one_incident() -> None:
    def mounting(pod: str, node: str) -> Investigation:
        walk = pod_walk("db", pod, node) + [
            obj("persistentvolumeclaim", "data", "db", 1, why=f"Volume of pod db/{pod}")
        ]
        return alert("KubePodNotReady", namespace="db", pod=pod, objects=walk)

    assert both(mounting("pg-0", "n1"), mounting("backup-1", "n2")) == ("same-claim", "same-claim")


def test_a_group_by_an_object_label_joins() -> None:
    key = '{}/{severity=~"critical|warning"}:{deployment="web", namespace="shop"}'
    a = alert("KubeDeploymentRolloutStuck", group_key=key, namespace="shop", job="custom")
    b = alert("AppErrorsHigh", group_key=key, namespace="shop", job="custom")
    assert both(a, b) == ("same-group", "same-group")


# --- what must not link (a busy namespace) --------------------------------------------
def test_two_pods_on_one_healthy_node_stay_apart() -> None:
    a = pod_alert("shop", "web-7d9-a", "n1", rs="web-7d9")
    b = pod_alert("shop", "cart-5c4-a", "n1", rs="cart-5c4")
    assert both(a, b) == (None, None)


def test_a_group_keyed_by_namespace_only_does_not_join() -> None:
    group = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
    crash, cpu = (
        alert(
            a["labels"]["alertname"],
            a["labels"]["severity"],
            group_key=group["groupKey"],
            **{k: v for k, v in a["labels"].items() if k not in ("alertname", "severity")},
        )
        for a in group["alerts"]
        if a["labels"]["alertname"] in ("KubePodCrashLooping", "CPUThrottlingHigh")
    )
    assert both(crash, cpu) == (None, None)


def test_a_warned_object_is_not_what_joins() -> None:
    noisy = alert(
        "KubePodCrashLooping",
        namespace="shop",
        pod="web-1",
        objects=pod_walk("shop", "web-1", "n1")
        + [
            obj("pod", "cart-1", "shop", 1, origin="warned", why="Object with warning events"),
            obj(
                "replicaset", "cart-5c4", "shop", 2, origin="warned", why="Owner of pod shop/cart-1"
            ),
        ],
    )
    other = pod_alert("shop", "cart-1", "n2", rs="cart-5c4")
    assert both(noisy, other) == (None, None)


def test_the_exporters_service_and_instance_join_nothing() -> None:
    def ksm(alertname: str, deployment: str) -> Investigation:
        return alert(
            alertname,
            namespace="shop",
            deployment=deployment,
            job="kube-state-metrics",
            instance="10.0.0.5:8080",
            service="prometheus-kube-state-metrics",
            container="kube-state-metrics",
            pod="prometheus-kube-state-metrics-6d8f-x2",
        )

    a, b = ksm("KubeDeploymentReplicasMismatch", "web"), ksm("KubeDeploymentRolloutStuck", "cart")
    assert both(a, b) == (None, None)
    assert incidents.footprint(a).core == {incidents.Thing("deployment", "shop", "web")}


def test_shared_kinds_do_not_join() -> None:
    def with_plumbing(pod: str) -> Investigation:
        walk = pod_walk("shop", pod, "n1") + [
            obj("configmap", "settings", "shop", 1),
            obj("serviceaccount", "default", "shop", 1),
            obj("namespace", "shop", None, 1),
        ]
        return alert("KubePodNotReady", namespace="shop", pod=pod, objects=walk)

    assert both(with_plumbing("a"), with_plumbing("b")) == (None, None)


# --- the head -------------------------------------------------------------------------
def node_failure() -> tuple[Investigation, list[Investigation]]:
    """Critical pod alerts first, the (warning) node alert last."""
    pods = [
        pod_alert("shop", f"web-7d9-{n}", "n3", rs="web-7d9", arrived=n, severity="critical")
        for n in range(4)
    ]
    deploy = alert(
        "KubeDeploymentReplicasMismatch",
        namespace="shop",
        deployment="web",
        objects=[
            obj("deployment", "web", "shop", 0),
            obj("pod", "web-7d9-0", "shop", 2),
            obj("node", "n3", None, 3, why="Node of pod shop/web-7d9-0"),
        ],
        arrived=5,
        severity="critical",
    )
    node = node_alert("n3", arrived=9, started="2026-12-02T11:58:00Z")
    return node, [*pods, deploy, node]


def test_the_node_alert_heads_even_last_and_less_severe() -> None:
    node, members = node_failure()
    assert incidents.choose_head(members) is node
    assert incidents.choose_head(list(reversed(members))) is node
    assert incidents.title(node, len(members)) == "KubeNodeNotReady on node n3 (+5 alerts)"
    assert all(incidents.explains(node, m) for m in members if m is not node)


def test_without_the_node_the_workload_heads_then_the_earliest() -> None:
    _, members = node_failure()
    pods = members[:4]
    assert incidents.choose_head(members[:5]) is members[4]
    late_start = pod_alert("shop", "web-7d9-z", "n3", rs="web-7d9", started="2026-12-02T11:59:00Z")
    assert incidents.choose_head([late_start, *pods]) is pods[0]
    assert incidents.choose_head([]) is None


def test_a_pod_head_does_not_explain_its_nodes_alert() -> None:
    node, members = node_failure()
    pod = members[0]
    assert incidents.link(pod, node) is not None
    assert incidents.explains(pod, node) is None
    assert incidents.explains(pod, members[1]) is not None  # the same workload


def test_a_group_alone_explains_nothing() -> None:
    key = '{}:{pod="web-1"}'
    a = alert("AppLatencyHigh", group_key=key, namespace="shop", job="app")
    b = alert("AppErrorsHigh", group_key=key, namespace="shop", job="app")
    assert incidents.link(a, b) is not None
    assert incidents.explains(a, b) is None


def test_title_without_an_object() -> None:
    a = alert("Watchdog", namespace="monitoring")
    assert incidents.title(a, 1) == "Watchdog in monitoring"
    assert incidents.title(a, 2) == "Watchdog in monitoring (+1 alert)"
    assert incidents.title(None, 0) == "0 alerts"


# --- the model's queue ----------------------------------------------------------------
def order(items: list[tuple[Investigation, bool]], now: datetime, storm: bool) -> list[str]:
    ranked = sorted(
        items,
        key=lambda x: incidents.priority(x[0], head=x[1], storm=storm, now=now, aging=600),
    )
    return [inv.alertname for inv, _ in ranked]


def test_severity_then_head_then_age() -> None:
    crit = alert("Crit", "critical", arrived=30)
    warn_head = alert("WarnHead", "warning", arrived=20)
    warn = alert("Warn", "warning", arrived=10)
    info = alert("Info", "info", arrived=0)
    now = T0 + timedelta(seconds=60)
    items = [(info, False), (warn, False), (warn_head, True), (crit, False)]
    assert order(items, now, storm=False) == ["Crit", "WarnHead", "Warn", "Info"]


def test_an_old_warning_overtakes_a_new_critical() -> None:
    old = alert("OldWarning", "warning", arrived=0)
    new = alert("NewCritical", "critical", arrived=599)
    items = [(new, False), (old, False)]
    assert order(items, T0 + timedelta(seconds=599), storm=False) == ["NewCritical", "OldWarning"]
    # one aging step: level on severity, the older first
    assert order(items, T0 + timedelta(seconds=600), storm=False) == ["OldWarning", "NewCritical"]


def test_in_a_storm_heads_go_first() -> None:
    crit = alert("Crit", "critical", arrived=0)
    head = alert("InfoHead", "info", arrived=10)
    now = T0 + timedelta(seconds=20)
    items = [(crit, False), (head, True)]
    assert order(items, now, storm=False) == ["Crit", "InfoHead"]
    assert order(items, now, storm=True) == ["InfoHead", "Crit"]


@pytest.mark.parametrize(
    ("severity", "step"), [("critical", 0), ("Warning", 1), ("info", 2), ("page", 3), ("", 3)]
)
def test_severity_steps(severity: str, step: int) -> None:
    assert incidents.severity_step(severity) == step


# --- Alertmanager group keys ----------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "labels"),
    [
        ('{}:{namespace="homepage"}', {"namespace": "homepage"}),
        (
            '{}/{severity=~"critical|warning"}:{namespace="lab", alertname="X"}',
            {"namespace": "lab", "alertname": "X"},
        ),
        (
            '{}/{job="a:b"}:{instance="10.0.0.5:8080", pod="we\\"b{1}"}',
            {"instance": "10.0.0.5:8080", "pod": 'we"b{1}'},
        ),
        ('{}:{"my.label"="caf\\u00e9\\n"}', {"my.label": "café\n"}),
        ("{}:{}", {}),
        ("", {}),
        ("not a group key", {}),
        ('{}:{namespace="unterminated}', {}),
    ],
)
def test_group_labels(key: str, labels: dict[str, str]) -> None:
    assert incidents.group_labels(key) == labels


def test_real_group_keys_of_the_examples() -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        key = json.loads(path.read_text())["groupKey"]
        assert incidents.group_labels(key) == {"namespace": "homepage"}, path.name
