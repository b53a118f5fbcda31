"""The relations the evidence walk follows, kind by kind (docs/evidence.md, R1-R13).

Each takes the :class:`~sre_agent.graph.Walk`, the visit and the object read,
and returns the next visits; the pure parts (selectors, owners, names in text)
are in :mod:`sre_agent.graph_relations`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any

from sre_agent_tools import ToolResult
from sre_agent_tools import kubernetes as k8s

from sre_agent import graph_relations as rel
from sre_agent import graph_text as facts
from sre_agent.graph import (
    CONTROLLERS,
    MAX_DEPTH,
    P_SIGNAL,
    PODS_PER_RELATION,
    SERVICES_FROM_NAMES,
    Relations,
    Visit,
    Walk,
    answer,
    visit,
    visit_of,
)

Obj = dict[str, Any]

#: NetworkPolicies read per pod (those whose podSelector selects it).
NETWORK_POLICIES = 2

#: A pod whose configuration is the trouble: then the ConfigMaps it reads are read.
_CONFIG_TROUBLE = re.compile(
    r"CreateContainerConfigError|couldn't find key|configmaps? \"[^\"]+\" not found|FailedMount",
    re.IGNORECASE,
)


# -- relations by kind (graph_relations has the pure parts) ---------------------------


async def _pod(walk: Walk, v: Visit, pod: Obj) -> list[Visit]:
    ns, name, depth = v.ref.namespace, v.ref.name, v.depth + 1
    # Its logs and the NetworkPolicies that select it (traffic to or from it may be what
    # fails; listed once per namespace) first: what follows only reads the pod.
    texts, policies = await asyncio.gather(walk.pod_logs(v, pod), _policies(walk, ns))
    out: list[Visit] = []
    bad = rel.unhealthy(pod)
    owner = rel.owner_of(pod)
    if owner and (not v.depth or (v.up and bad)):
        kind, oname, api = owner
        out.append(visit(kind, oname, ns, depth, f"Owner of pod {ns}/{name}", api_version=api))
    node = (pod.get("spec") or {}).get("nodeName")
    if node and bad:  # ranked by what it shows: a healthy node falls to the budget
        out.append(visit("node", node, None, depth, f"Node of pod {ns}/{name}"))
    if bad or not v.depth:
        for claim in rel.claims(pod)[:3]:
            out.append(
                visit("persistentvolumeclaim", claim, ns, depth, f"Volume claim of pod {ns}/{name}")
            )
    if bad and _CONFIG_TROUBLE.search(v.facts):  # it cannot be configured or mounted
        for cm in rel.configmaps(pod)[:2]:
            out.append(
                visit("configmap", cm, ns, depth, f"ConfigMap of pod {ns}/{name}", signal=True)
            )
    for policy in rel.policies_for(pod, policies)[:NETWORK_POLICIES]:
        out.append(
            visit(
                "networkpolicy",
                policy["metadata"]["name"],
                ns,
                depth,
                f"NetworkPolicy selecting pod {ns}/{name}",
                policy,
                up=False,
                signal=True,
            )
        )
    for text in texts:
        out += await walk.names_in(text, v, trusted=False)
    return out


async def _policies(walk: Walk, ns: str | None) -> list[Obj]:
    if not ns:  # never a list over all namespaces
        return []
    return list(
        await walk.shared(
            ("networkpolicies", ns),
            lambda: walk.objects(f"NetworkPolicies in namespace {ns}", "networkpolicy", ns),
        )
    )


async def _pods_of(
    walk: Walk, v: Visit, obj: Obj, why: str, limit: int = PODS_PER_RELATION
) -> list[Visit]:
    selector = rel.selector_of(obj)
    ns = v.ref.namespace
    if not selector or v.depth >= MAX_DEPTH:
        return []
    pods = await walk.objects(
        f"Pods of {v.ref.kind} {v.ref.where()}", "pod", ns, rel_selector(selector)
    )
    if not pods and "batch.kubernetes.io/job-name" in selector:  # before Kubernetes 1.27
        pods = await walk.objects(
            f"Pods of job {v.ref.where()}", "pod", ns, f"job-name={v.ref.name}"
        )
    pods = [p for p in pods if rel.owned_by(p, v.ref.name) or v.ref.kind != "replicaset"]
    chosen = rel.pick_pods(pods, limit)
    if not chosen and not v.depth and pods:
        # What the alert names has no unhealthy pod (an error rate, a latency): the newest
        # pod's current log may still hold the telling line.
        newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return [
            visit(
                "pod",
                newest["metadata"]["name"],
                ns,
                1,
                f"Newest pod of {v.ref.kind} {v.ref.where()} (none is unhealthy)",
                newest,
                up=False,
                echo=True,  # context, not a finding: ranks after every finding
            )
        ]
    return [
        visit("pod", p["metadata"]["name"], ns, v.depth + 1, why, p, up=False, echo=echo)
        for p, echo in rel.with_echoes(chosen)
    ]


def rel_selector(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={val}" for k, val in sorted(selector.items()))


async def _deployment(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    ns, where = v.ref.namespace, v.ref.where()
    selector = rel.selector_of(obj)
    out: list[Visit] = []
    if selector:
        sets = await walk.objects(
            f"ReplicaSets of deployment {where}", "replicaset", ns, rel_selector(selector)
        )
        newest = rel.newest_replicaset(sets, v.ref.name)
        if newest is not None:
            out.append(
                visit(
                    "replicaset",
                    newest["metadata"]["name"],
                    ns,
                    v.depth + 1,
                    f"Newest ReplicaSet of deployment {where}",
                    newest,
                    up=False,
                )
            )
    return out + await _pods_of(walk, v, obj, f"Unhealthy pod of deployment {where}")


async def _workload(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    out = await _pods_of(walk, v, obj, f"Unhealthy pod of {v.ref.kind} {v.ref.where()}")
    owner = rel.owner_of(obj)
    if owner and v.up:
        kind, name, api = owner
        out.append(
            visit(
                kind,
                name,
                v.ref.namespace,
                v.depth + 1,
                f"Owner of {v.ref.kind} {v.ref.where()}",
                api_version=api,
            )
        )
    return out


async def _replicaset(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    if v.up:
        return await _workload(walk, v, obj) if not v.depth else _owner_only(v, obj)
    return []


def _owner_only(v: Visit, obj: Obj) -> list[Visit]:
    owner = rel.owner_of(obj)
    if not owner:
        return []
    kind, name, api = owner
    return [
        visit(
            kind,
            name,
            v.ref.namespace,
            v.depth + 1,
            f"Owner of {v.ref.kind} {v.ref.where()}",
            api_version=api,
        )
    ]


async def _cronjob(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """R10: the namespace's suspended CronJobs are findings next to a failing one."""
    ns = v.ref.namespace
    out = []
    for cj in await walk.objects(f"CronJobs in namespace {ns}", "cronjob", ns):
        name = cj["metadata"]["name"]
        if name != v.ref.name and (cj.get("spec") or {}).get("suspend"):
            out.append(
                visit(
                    "cronjob",
                    name,
                    ns,
                    v.depth + 1,
                    f"Suspended CronJob in namespace {ns}",
                    cj,
                    up=False,
                    signal=True,
                )
            )
    return out[:2]


async def _hpa(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    if not target.get("kind") or not target.get("name"):
        return []
    return [
        visit(
            target["kind"],
            target["name"],
            v.ref.namespace,
            v.depth + 1,
            f"Target of HPA {v.ref.where()}",
            api_version=target.get("apiVersion"),
            up=False,
        )
    ]


async def _claim(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    ns, where, depth = v.ref.namespace, v.ref.where(), v.depth + 1
    spec = obj.get("spec") or {}
    out = []
    if spec.get("volumeName"):
        out.append(
            visit(
                "persistentvolume",
                spec["volumeName"],
                None,
                depth,
                f"Volume of claim {where}",
                up=False,
            )
        )
    elif spec.get("storageClassName") and (obj.get("status") or {}).get("phase") != "Bound":
        out.append(
            visit(
                "storageclass",
                spec["storageClassName"],
                None,
                depth,
                f"StorageClass of claim {where}",
            )
        )
    if v.up:
        pods = await walk.objects(f"Pods in namespace {ns}", "pod", ns)
        users = [p for p in pods if rel.mounts(p, v.ref.name)]
        out += [
            visit("pod", p["metadata"]["name"], ns, depth, f"Pod that mounts claim {where}", p)
            for p in (rel.pick_pods(users, PODS_PER_RELATION) or users[:1])
        ]
    return out


async def _volume(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    depth, where = v.depth + 1, v.ref.where()
    claim = (obj.get("spec") or {}).get("claimRef") or {}
    out = []
    if claim.get("name") and claim.get("namespace") and v.up:
        out.append(
            visit(
                "persistentvolumeclaim",
                claim["name"],
                claim["namespace"],
                depth,
                f"Claim bound to volume {where}",
            )
        )
    for node in rel.affinity_nodes(obj)[:3]:
        out.append(
            visit("node", node, None, depth, f"Node that volume {where} is pinned to", signal=True)
        )
    return out


async def _node(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    if v.depth:  # reached from a pod or a volume: its conditions and events are the point
        return []
    name = v.ref.name
    pods = await walk.objects(
        f"Pods on node {name}", "pod", None, field_selector={"spec.nodeName": name}
    )
    return [
        visit_of("pod", p, 1, f"Failing pod on node {name}", echo=echo)
        for p, echo in rel.with_echoes(rel.pick_pods(pods, PODS_PER_RELATION))
    ]


async def _service(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """R8: the pods behind a Service; none is a finding, and then the workloads whose
    pods would carry (part of) its selector."""
    ns, where, depth = v.ref.namespace, v.ref.where(), v.depth + 1
    if depth > MAX_DEPTH:
        return []
    selector = {
        str(k): str(val) for k, val in ((obj.get("spec") or {}).get("selector") or {}).items()
    }
    if not selector:
        slices = await walk.objects(
            f"EndpointSlices of Service {where}",
            "endpointslice",
            ns,
            f"kubernetes.io/service-name={v.ref.name}",
        )
        names = [
            (e.get("targetRef") or {}).get("name")
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("targetRef") or {}).get("kind") == "Pod"
        ]
        return [
            visit("pod", n, ns, depth, f"Pod behind Service {where}")
            for n in dict.fromkeys(names)
            if n
        ][:PODS_PER_RELATION]
    pods = await walk.objects(f"Pods behind Service {where}", "pod", ns, rel_selector(selector))
    if pods:
        ordered = sorted(pods, key=lambda p: (rel.ready(p), p["metadata"]["name"]))
        return [
            visit("pod", p["metadata"]["name"], ns, depth, f"Pod behind Service {where}", p)
            for p in ordered[:PODS_PER_RELATION]
        ]
    return await _selector_misses(walk, v, selector)


async def _selector_misses(walk: Walk, v: Visit, selector: dict[str, str]) -> list[Visit]:
    ns, where = v.ref.namespace, v.ref.where()
    kinds = await asyncio.gather(
        *(walk.objects(f"{kind}s in namespace {ns}", kind, ns) for kind in rel.WORKLOADS)
    )
    scored = sorted(
        (
            (rel.overlap(selector, rel.template_labels(w)), kind, w)
            for kind, found in zip(rel.WORKLOADS, kinds, strict=True)
            for w in found
        ),
        key=lambda t: -t[0],
    )
    close = [(score, kind, w) for score, kind, w in scored if score][:2]
    wanted = ", ".join(f"{k}={val}" for k, val in sorted(selector.items()))
    lines = [f"No pod in namespace {ns} carries all of the selector of Service {where}: {wanted}."]
    for score, kind, w in close:
        labels = ", ".join(f"{k}={val}" for k, val in sorted(rel.template_labels(w).items()))
        spec = w.get("spec") or {}
        lines.append(
            f"{kind} {w['metadata']['name']} (replicas {spec.get('replicas', '?')}) labels its pods"
            f" {labels}: {score} of {len(selector)} selector terms."
        )
    if not close:
        lines.append(
            "No Deployment, StatefulSet or DaemonSet in the namespace carries any of them."
        )
    text = "\n".join(lines)
    await walk.plan.run(
        f"Service {where} selects no pod",
        "kubectl_describe",
        {"kind": "pod", "namespace": ns, "selector": wanted},
        P_SIGNAL,
        lambda: answer(ToolResult("ok", text)),
    )
    return [
        visit(
            kind,
            w["metadata"]["name"],
            ns,
            v.depth + 1,
            f"Workload whose pods carry the selector of Service {where}",
            w,
            up=False,
            signal=True,
        )
        for _, kind, w in close
    ]


async def _ingress(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    return [
        visit("service", svc, v.ref.namespace, v.depth + 1, f"Backend of Ingress {v.ref.where()}")
        for svc in rel.ingress_services(obj)[:SERVICES_FROM_NAMES]
    ]


async def _custom(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """Any other kind (custom resources): its owner, and R13 — the log of the controller
    that reported its events, reduced to the lines that name it."""
    out = _owner_only(v, obj) if v.up else []
    if v.ref.kind in rel.BUILT_IN or walk.deps.kube is None:
        return out
    object_events = getattr(k8s, "object_events", None)
    if object_events is None:
        return out
    events = await object_events(walk.deps, v.ref.kind, v.ref.name, v.ref.namespace)
    components = [
        e.get("reportingController")
        or e.get("reportingComponent")
        or (e.get("source") or {}).get("component")
        for e in reversed(events)
    ]
    chosen: list[str] = []
    for component in dict.fromkeys(c for c in components if c):
        if len(chosen) >= CONTROLLERS:
            break
        if component not in rel.CORE_COMPONENTS:
            chosen.append(component)
    for component in chosen:
        await _controller_log(walk, v, component)
    return out


async def _controller_log(walk: Walk, v: Visit, component: str) -> None:
    deployments = await walk.shared(
        ("deployments",), lambda: walk.objects("Deployments in all namespaces", "deployment", None)
    )
    dep = rel.controller_for(component, deployments)
    if dep is None:
        return
    dns, dname = dep["metadata"].get("namespace"), dep["metadata"]["name"]
    pods = await walk.objects(
        f"Pods of controller {dns}/{dname}", "pod", dns, rel_selector(rel.selector_of(dep))
    )
    pods = sorted(pods, key=lambda p: (not rel.ready(p), p["metadata"]["name"]))[:1]
    names = [f"{v.ref.namespace}/{v.ref.name}", v.ref.name] if v.ref.namespace else [v.ref.name]
    for pod in pods:
        pname = pod["metadata"]["name"]
        container = str(((pod.get("spec") or {}).get("containers") or [{}])[0].get("name") or "")

        def read(pname: str = pname, container: str = container) -> Awaitable[ToolResult]:
            return k8s.logs(walk.deps, pname, dns, container=container or None, tail_lines=500)

        await walk.plan.run(
            f"Log of the controller {dname}, lines naming {v.ref.where()}",
            "kubectl_logs",
            {"pod": pname, "namespace": dns, "container": container, "previous": False},
            P_SIGNAL,
            read,
            reduce=lambda text: facts.lines_naming(text, names),
            optional=True,
        )


async def _disruption_budget(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """A PodDisruptionBudget: the unhealthy pods it counts (they are why it allows none)."""
    return await _pods_of(walk, v, obj, f"Unhealthy pod of PodDisruptionBudget {v.ref.where()}")


RELATIONS: Relations = {
    "*": _custom,
    "pod": _pod,
    "deployment": _deployment,
    "statefulset": _workload,
    "daemonset": _workload,
    "job": _workload,
    "replicaset": _replicaset,
    "cronjob": _cronjob,
    "horizontalpodautoscaler": _hpa,
    "persistentvolumeclaim": _claim,
    "persistentvolume": _volume,
    "node": _node,
    "service": _service,
    "ingress": _ingress,
    "poddisruptionbudget": _disruption_budget,
}
