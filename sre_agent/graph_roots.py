"""Where the evidence walk starts: the objects an alert's labels name.

Some labels name an object outright (``pod``, ``deployment``, ``service``,
...); some only an address (``instance``: a node, a pod's ``ip:port``, a URL
whose host is a Service's DNS name or an Ingress host), resolved here with a
lookup or two; a TargetDown's down series name the pods and nodes behind the
targets; and the namespace's warning events name objects of any kind, custom
resources included, that the labels cannot. Each root says which of these reached
it (its ``origin``), and what the walk reaches from it inherits that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from urllib.parse import urlsplit

from sre_agent import graph_relations as rel
from sre_agent.graph import WARNED_OBJECTS, Walk
from sre_agent.graph_visit import Obj, Visit, visit, visit_of
from sre_agent.models import Origin

#: Label -> the kind of object it names.
OBJECT_LABELS = (
    ("pod", "pod"),
    ("deployment", "deployment"),
    ("statefulset", "statefulset"),
    ("daemonset", "daemonset"),
    ("job_name", "job"),
    ("cronjob", "cronjob"),
    ("persistentvolumeclaim", "persistentvolumeclaim"),
    ("persistentvolume", "persistentvolume"),
    ("horizontalpodautoscaler", "horizontalpodautoscaler"),
    ("service", "service"),
    ("ingress", "ingress"),
    ("node", "node"),
    # kube-state-metrics' labels for the kinds its other metrics cover
    ("replicaset", "replicaset"),
    ("resourcequota", "resourcequota"),
    ("poddisruptionbudget", "poddisruptionbudget"),
    ("networkpolicy", "networkpolicy"),
)

#: Scrape jobs whose `job`/`instance`/`service`/`pod` labels name the exporter, not
#: the thing in trouble.
EXPORTERS = {"kube-state-metrics", "kubelet", "node-exporter", "apiserver", "cadvisor"}

_KIND = re.compile(r"[A-Z][A-Za-z0-9]{1,62}")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_SVC_HOST = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\..*)?"
)


def from_labels(labels: dict[str, str]) -> list[Visit]:
    """Visits (depth 0) of the objects the labels name outright."""
    ns = labels.get("namespace")
    exporter = labels.get("job") in EXPORTERS
    out = []
    for label, kind in OBJECT_LABELS:
        name = labels.get(label)
        if not name or (exporter and label == "service"):
            continue
        if label == "pod" and exporters_own(labels):
            continue
        if kind not in rel.CLUSTER_SCOPED and not ns:
            continue
        container = labels.get("container") if kind == "pod" else None
        out.append(
            visit(kind, name, ns, 0, "Named by the alert", container=container, origin="alert")
        )
    # `kind` + `name` (Flux's gotk_* metrics, custom-resource-state metrics): an object of
    # any kind; its namespace is `exported_namespace` when the exporter has one of its own.
    kind, name = labels.get("kind", ""), labels.get("name", "")
    where = labels.get("exported_namespace") or ns
    if _KIND.fullmatch(kind) and _NAME.fullmatch(name) and kind.lower() != "secret":
        out.append(visit(kind, name, where, 0, "Named by the alert", origin="alert"))
    return out


def exporters_own(labels: dict[str, str]) -> bool:
    """Whether ``pod`` names the exporter's own pod, not the one in trouble: always for
    node-exporter; for another exporter when its scrape left the target's labels on a
    series (kube-prometheus-stack's kube-state-metrics: ``container="kube-state-metrics"``,
    ``pod="...-kube-state-metrics-..."``) beside a label naming the object in trouble."""
    job = labels.get("job") or ""
    if job == "node-exporter":
        return True
    if job not in EXPORTERS or not (labels.get("container") == job or job in labels.get("pod", "")):
        return False
    # ... and another label names the object in trouble (the exporter's own pod can be it)
    return any(labels.get(label) for label, _ in OBJECT_LABELS if label != "pod")


def _host(instance: str) -> str:
    if "://" in instance:
        try:
            return urlsplit(instance).hostname or ""
        except ValueError:  # "http://[::1": not a URL a target could have
            return ""
    host = instance
    if host.startswith("["):  # [::1]:9090
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host


def _ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def from_addresses(walk: Walk, labels: dict[str, str]) -> list[Visit]:
    """The object behind ``instance``: a Service by DNS name, the pod with that IP, or
    the Ingress serving that host (node names are handled with the ``node`` label)."""
    instance = labels.get("instance") or ""
    if instance and not labels.get("node") and _node_target(labels) and _ip(_host(instance)):
        return await _node_at(walk, _host(instance), "address")
    if not instance or labels.get("job") in EXPORTERS or labels.get("node") == _host(instance):
        return []
    ns = labels.get("namespace")
    host = _host(instance).lower().rstrip(".")
    match = _SVC_HOST.fullmatch(host)
    if match:
        why = "Service the target's address names"
        return [visit("service", match.group(1), match.group(3), 0, why, origin="address")]
    if _ip(host):
        return await _pod_at(walk, host, ns, "address")
    if "." in host:
        ingresses = await walk.objects(f"Ingresses serving {host}", "ingress", ns)
        return [
            visit_of("ingress", i, 0, f"Ingress serving the target's host {host}", origin="address")
            for i in ingresses
            if any(rel.host_matches(h, host) for h in rel.ingress_hosts(i))
        ][:2]
    return []


async def _pod_at(walk: Walk, host: str, ns: str | None, origin: Origin) -> list[Visit]:
    pods = await walk.objects(
        f"Pod with the address {host}", "pod", ns, field_selector={"status.podIP": host}
    )
    why = f"Pod at the target's address {host}"
    return [visit_of("pod", p, 0, why, origin=origin) for p in pods[:1]]


#: Scrape jobs that run one target per node (their ``instance`` is the node's address).
NODE_JOBS = {"node-exporter", "kubelet", "cadvisor"}


def _node_target(labels: dict[str, str]) -> bool:
    """A node-level target: node-exporter/kubelet, or a ``Node*`` rule (node-mixin)."""
    return labels.get("job") in NODE_JOBS or labels.get("alertname", "").startswith("Node")


async def _node_at(walk: Walk, host: str, origin: Origin) -> list[Visit]:
    """The Node with that address: node-exporter's and the kubelet's ``instance`` is
    ``<node IP>:<port>`` unless relabelled to the node's name (kube-prometheus-stack).
    One list of the Nodes serves every address of the walk."""
    nodes = await walk.shared(("nodes",), lambda: walk.objects("Nodes, by address", "node", None))
    why = f"Node at the target's address {host}"
    return [
        visit("node", n["metadata"]["name"], None, 0, why, n, origin=origin)
        for n in nodes
        if any(a.get("address") == host for a in (n.get("status") or {}).get("addresses") or [])
    ][:1]


#: Objects behind the down targets of one TargetDown alert.
TARGETS_DOWN = 3


async def from_targets(walk: Walk, ns: str | None, down: list[dict[str, str]]) -> list[Visit]:
    """The objects behind the targets that are down (the labels of their ``up`` series):
    the pod a series names, else its node, else what its ``instance`` address is — the
    pod with that IP, or the Node with it (a kubelet or node-exporter target, or a host
    network). At most :data:`TARGETS_DOWN` targets, one lookup or two each."""
    chosen: dict[str, dict[str, str]] = {}
    for series in down:
        target = series.get("pod") or series.get("node") or _host(series.get("instance") or "")
        if target and len(chosen) < TARGETS_DOWN:
            chosen.setdefault(target, series)
    found = await asyncio.gather(*(_target(walk, ns, s) for s in chosen.values()))
    unique = {v.ref: v for group in found for v in group}
    return list(unique.values())


async def _target(walk: Walk, ns: str | None, series: dict[str, str]) -> list[Visit]:
    where = series.get("namespace") or ns
    if series.get("pod") and where:
        why = "Pod of a target that is down"
        return [visit("pod", series["pod"], where, 0, why, origin="target")]
    if series.get("node"):
        why = "Node of a target that is down"
        return [visit("node", series["node"], None, 0, why, origin="target")]
    host = _host(series.get("instance") or "")
    if not _ip(host):
        return []
    pods = [] if _node_target(series) else await _pod_at(walk, host, where, "target")
    return pods or await _node_at(walk, host, "target")


def warned_objects(events: list[Obj], ns: str | None, builtin_too: bool) -> list[Visit]:
    """Objects of the namespace with warning events, newest warning first: custom
    resources (no label names them, and their kind is not built in), and — when the
    labels name no object at all — objects of any kind. Never a Secret."""
    if not ns:
        return []
    custom: dict[tuple[str, str], Visit] = {}
    builtin: dict[tuple[str, str], Visit] = {}
    for event in reversed(events):
        obj = event.get("involvedObject") or {}
        kind, name = str(obj.get("kind") or ""), str(obj.get("name") or "")
        if event.get("type") != "Warning" or not kind or not name:
            continue
        if kind.lower() in ("secret", "event"):
            continue
        key = rel.kind_key(kind, obj.get("apiVersion"))
        bucket = builtin if key in rel.BUILT_IN else custom
        if bucket is builtin and not builtin_too:
            continue
        if (key, name) not in bucket and len(bucket) < WARNED_OBJECTS:
            bucket[(key, name)] = visit(
                kind,
                name,
                obj.get("namespace") or ns,
                1,
                f"Object with warning events in namespace {ns}",
                api_version=obj.get("apiVersion"),
                signal=True,
                origin="warned",
            )
    return [*custom.values(), *builtin.values()]
