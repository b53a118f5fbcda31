"""The Service hops of the evidence walk (docs/evidence.md, R8): the pods behind a Service
or an Ingress's backends, and, when a Service selects no pod, the workloads whose pods
carry part of its selector -- itself a finding.
"""

from __future__ import annotations

import asyncio

from sre_agent_tools import ToolResult

from sre_agent import graph_relations as rel
from sre_agent.graph import (
    MAX_DEPTH,
    PODS_PER_RELATION,
    SERVICES_FROM_NAMES,
    Walk,
    answer,
)
from sre_agent.graph_visit import P_SIGNAL, Obj, Visit, visit

__all__ = ["ingress", "service"]


async def service(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
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
    pods = await walk.objects(
        f"Pods behind Service {where}", "pod", ns, rel.selector_text(selector)
    )
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


async def ingress(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    return [
        visit("service", svc, v.ref.namespace, v.depth + 1, f"Backend of Ingress {v.ref.where()}")
        for svc in rel.ingress_services(obj)[:SERVICES_FROM_NAMES]
    ]
