"""The custom-resource hop of the evidence walk (docs/evidence.md, R13): a kind the walk
has no relation for gives its owner and the log of the controller that reported its
events, reduced to the lines that name it.
"""

from __future__ import annotations

from collections.abc import Awaitable

from sre_agent_tools import ToolResult
from sre_agent_tools import kubernetes as k8s

from sre_agent import graph_relations as rel
from sre_agent import graph_text as facts
from sre_agent.graph import CONTROLLERS, Walk
from sre_agent.graph_visit import P_SIGNAL, Obj, Visit, owner_visit

__all__ = ["custom"]


async def custom(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """Any other kind (custom resources): its owner, and R13 — the log of the controller
    that reported its events, reduced to the lines that name it."""
    out = owner_visit(v, obj) if v.up else []
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
        f"Pods of controller {dns}/{dname}", "pod", dns, rel.selector_text(rel.selector_of(dep))
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
