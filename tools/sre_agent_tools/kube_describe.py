"""``describe`` bodies by kind: the renderers, and the few reads some kinds need besides.

A Deployment is described with its ReplicaSets, a Node with what its pods
request, a Service with the pods behind it (EndpointSlices, else Endpoints);
every other kind is rendered from the object alone. Kinds without a renderer
of their own, custom resources included, get the generic one. Each object's
events come last; a failure to read them (RBAC) still shows the object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kubernetes.client.exceptions import ApiException

from sre_agent_tools import kube_scope
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.kube_api import (
    EVENT,
    POD,
    Failed,
    KindInfo,
    Obj,
    builtin,
    fail,
    get_json,
    list_items,
)
from sre_agent_tools.kube_render import (
    fmt_bytes,
    fmt_cpu,
    header,
    labels_text,
    pct,
    pod_request,
    quantity,
    render_conditions,
    render_events,
    render_pod,
)
from sre_agent_tools.kube_render_generic import render_generic
from sre_agent_tools.kube_render_net import (
    backing_lines,
    backing_pods,
    render_endpointslice,
    render_ingress,
    render_ingressclass,
    render_webhooks,
)
from sre_agent_tools.kube_render_storage import (
    render_configmap,
    render_limitrange,
    render_namespace,
    render_pv,
    render_pvc,
    render_quota,
    render_storageclass,
)
from sre_agent_tools.kube_render_workload import (
    render_cronjob,
    render_hpa,
    render_job,
    render_workload,
)
from sre_agent_tools.result import ToolResult

MAX_EVENTS_DESCRIBE = 10
Describer = Callable[[ToolDeps, Obj], Awaitable[list[str]]]


async def events_of(
    deps: ToolDeps,
    namespace: str | None,
    name: str | None = None,
    kind: str | None = None,
    *,
    namespaced: bool = True,
) -> list[Obj]:
    """Events (core/v1) of one object or of a namespace, oldest first.

    A cluster-scoped object's events (``namespaced=False``) are listed across
    namespaces by ``involvedObject.kind`` and ``.name`` (a Node's live in ``default``).
    """
    terms: kube_scope.Terms = [
        (f"involvedObject.{key}", "=", value)
        for key, value in (("name", name), ("namespace", namespace), ("kind", kind))
        if value
    ]
    if namespaced:
        if namespace is None:
            raise fail("events need a namespace")
        items = await list_items(deps, EVENT, namespace, field_selector=terms)
        return sorted(items, key=event_time)
    if not kind or not name:
        raise fail("the events of a cluster-scoped object need its kind and name")
    items = await list_items(
        deps, EVENT, None, field_selector=terms, summary="the events of a cluster-scoped object"
    )
    mine = [
        e
        for e in items
        if (e.get("involvedObject") or {}).get("kind") == kind
        and (e.get("involvedObject") or {}).get("name") == name
    ]
    return sorted(mine, key=event_time)


def event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


async def described(deps: ToolDeps, info: KindInfo, obj: Obj) -> ToolResult:
    """The object rendered by kind, then its recent events (nodes render their own)."""
    obj = {"kind": info.kind, "apiVersion": info.api_version, **obj}  # the caller's stays as is
    render = _RENDERERS.get(info.ref, _offline(render_generic))
    lines = await render(deps, obj)
    if info.kind != "Node" or info.group:
        meta = obj["metadata"]
        try:
            events = await events_of(
                deps,
                meta.get("namespace") or None,
                meta["name"],
                info.kind,
                namespaced=info.namespaced,
            )
            lines += render_events(events[-MAX_EVENTS_DESCRIBE:], len(events))
        except Failed as failed:  # the object itself is still worth showing
            lines.append(f"Events: unavailable ({failed.result.text})")
    return ToolResult("ok", "\n".join(lines))


async def _describe_pod(deps: ToolDeps, obj: Obj) -> list[str]:
    return header(obj, created=False) + render_pod(obj)


async def _describe_workload(deps: ToolDeps, obj: Obj) -> list[str]:
    lines = render_workload(obj)
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if obj["kind"] == "Deployment" and selector:
        lines += await _replica_sets(deps, obj, selector)
    return lines


def revision(rs: Obj) -> tuple[int, str]:
    """(``deployment.kubernetes.io/revision``, creation time): sorts ReplicaSets newest last."""
    value = (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    return (
        int(str(value)) if str(value).isdigit() else -1,
        rs["metadata"].get("creationTimestamp") or "",
    )


async def _replica_sets(deps: ToolDeps, deployment: Obj, selector: dict[str, str]) -> list[str]:
    name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
    owned = [
        rs
        for rs in await list_items(
            deps, builtin("replicaset"), ns, label_selector=kube_scope.label_selector(selector)
        )
        if not rs["metadata"].get("ownerReferences")
        or any(o.get("name") == name for o in rs["metadata"]["ownerReferences"])
    ]
    lines = [f"ReplicaSets ({len(owned)}, newest first):"]
    for rs in sorted(owned, key=revision, reverse=True)[:10]:
        st = rs.get("status") or {}
        images = ", ".join(
            c.get("image", "?")
            for c in rs["spec"].get("template", {}).get("spec", {}).get("containers", [])
        )
        lines.append(
            f"  {rs['metadata']['name']}  revision {revision(rs)[0]}  "
            f"desired {rs['spec'].get('replicas', 0)} / ready "
            f"{st.get('readyReplicas', 0)}  image {images}"
            f"  created {rs['metadata'].get('creationTimestamp', '?')}"
        )
    return lines


async def _describe_node(deps: ToolDeps, obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    name = obj["metadata"]["name"]
    lines = header(obj)
    info = status.get("nodeInfo") or {}
    lines.append(
        f"Kubelet: {info.get('kubeletVersion', '?')}  OS: {info.get('osImage', '?')}  "
        f"Unschedulable: {bool(spec.get('unschedulable'))}"
    )
    taints = [
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
        for t in spec.get("taints") or []
    ]
    lines.append(f"Taints: {', '.join(taints) or 'none'}")
    lines += render_conditions(status.get("conditions") or [])
    cap_, alloc = status.get("capacity") or {}, status.get("allocatable") or {}
    lines.append("Capacity: " + ", ".join(f"{k}={v}" for k, v in sorted(cap_.items())))
    lines.append("Allocatable: " + ", ".join(f"{k}={v}" for k, v in sorted(alloc.items())))
    # Across namespaces, but only summed up: no pod of another namespace is named.
    pods = await list_items(
        deps,
        POD,
        None,
        field_selector=[
            ("spec.nodeName", "=", name),
            ("status.phase", "!=", "Succeeded"),
            ("status.phase", "!=", "Failed"),
        ],
        summary="requests and limits summed over the node's pods",
    )
    totals = {"cpu": [0.0, 0.0], "memory": [0.0, 0.0]}  # requests, limits
    for pod in pods:
        for i, part in enumerate(("requests", "limits")):
            totals["cpu"][i] += pod_request(pod, part, "cpu", quantity)
            totals["memory"][i] += pod_request(pod, part, "memory", quantity)
    cpu_alloc, mem_alloc = quantity(alloc.get("cpu", "0")), quantity(alloc.get("memory", "0"))
    lines.append(f"Allocated resources ({len(pods)} non-terminated pods):")
    for res, alloc_v, fmt in (("cpu", cpu_alloc, fmt_cpu), ("memory", mem_alloc, fmt_bytes)):
        req, lim = totals[res]
        lines.append(
            f"  {res}: requests {fmt(req)}{pct(req, alloc_v)}, limits {fmt(lim)}"
            f"{pct(lim, alloc_v)} of allocatable {fmt(alloc_v)}"
        )
    events = await events_of(deps, None, name, "Node", namespaced=False)
    return lines + render_events(events[-MAX_EVENTS_DESCRIBE:], len(events))


async def service_endpoints(
    deps: ToolDeps, name: str, namespace: str
) -> tuple[Obj | None, list[Obj]]:
    """(the Endpoints object or None, the EndpointSlices) of one Service.

    Slices that cannot be listed (an old cluster, RBAC) leave the Endpoints alone to say it.
    """
    endpoints: Obj | None
    try:
        endpoints = await get_json(
            deps,
            "read_namespaced_endpoints",
            "/api/v1/namespaces/{namespace}/endpoints/{name}",
            name=name,
            namespace=namespace,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        endpoints = None
    try:
        slices = await list_items(
            deps,
            builtin("endpointslice"),
            namespace,
            label_selector={"kubernetes.io/service-name": name},
        )
    except (Failed, ApiException):
        slices = []
    return endpoints, slices


def _count(endpoints: Obj | None, slices: list[Obj]) -> str:
    if endpoints is not None:
        subsets = endpoints.get("subsets") or []
        ready = sum(len(s.get("addresses") or []) for s in subsets)
        not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
        return f"Endpoints: {ready} ready, {not_ready} not ready"
    if slices:
        ready_pods, not_ready_pods = backing_pods(slices, None)
        return f"Endpoints: {len(ready_pods)} ready, {len(not_ready_pods)} not ready"
    return "Endpoints: none (no Endpoints object)"


async def _describe_service(deps: ToolDeps, obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    lines = header(obj)
    lines.append(f"Type: {spec.get('type', 'ClusterIP')}  ClusterIP: {spec.get('clusterIP')}")
    lines.append(f"Selector: {labels_text(spec.get('selector') or {}, limit=20) or 'none'}")
    ports = [
        f"{p.get('name', '')}:{p.get('port')}->{p.get('targetPort', p.get('port'))}/"
        f"{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    lines.append(f"Ports: {', '.join(ports) or 'none'}")
    meta = obj["metadata"]
    endpoints, slices = await service_endpoints(deps, meta["name"], meta["namespace"])
    lines.append(_count(endpoints, slices))
    if endpoints is not None or slices:
        lines += backing_lines(*backing_pods(slices, endpoints))
    return lines


def _offline(render: Callable[[Obj], list[str]]) -> Describer:
    async def run(deps: ToolDeps, obj: Obj) -> list[str]:
        return render(obj)

    return run


_RENDERERS: dict[str, Describer] = {
    builtin(kind).ref: describer
    for kind, describer in (
        ("pod", _describe_pod),
        ("deployment", _describe_workload),
        ("statefulset", _describe_workload),
        ("daemonset", _describe_workload),
        ("replicaset", _describe_workload),
        ("job", _offline(render_job)),
        ("cronjob", _offline(render_cronjob)),
        ("node", _describe_node),
        ("service", _describe_service),
        ("persistentvolumeclaim", _offline(render_pvc)),
        ("persistentvolume", _offline(render_pv)),
        ("horizontalpodautoscaler", _offline(render_hpa)),
        ("ingress", _offline(render_ingress)),
        ("ingressclass", _offline(render_ingressclass)),
        ("endpointslice", _offline(render_endpointslice)),
        ("mutatingwebhookconfiguration", _offline(render_webhooks)),
        ("validatingwebhookconfiguration", _offline(render_webhooks)),
        ("resourcequota", _offline(render_quota)),
        ("limitrange", _offline(render_limitrange)),
        ("storageclass", _offline(render_storageclass)),
        ("configmap", _offline(render_configmap)),
        ("namespace", _offline(render_namespace)),
    )
}
