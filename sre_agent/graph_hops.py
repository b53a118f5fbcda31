"""The relations the evidence walk follows, kind by kind (docs/evidence.md, R1-R13).

Each takes the :class:`~sre_agent.graph.Walk`, the visit and the object read,
and returns the next visits; the pure parts (selectors, owners, names in text)
are in :mod:`sre_agent.graph_relations`. Pods, workloads, storage and nodes are
here; Services and Ingresses in :mod:`sre_agent.graph_hops_service`, custom
resources in :mod:`sre_agent.graph_hops_custom`; :data:`RELATIONS` lists them all.
"""

from __future__ import annotations

import asyncio
import re

from sre_agent import graph_relations as rel
from sre_agent.graph import MAX_DEPTH, PODS_PER_RELATION, Relations, Walk
from sre_agent.graph_hops_custom import custom
from sre_agent.graph_hops_service import ingress, service
from sre_agent.graph_visit import Obj, Visit, owner_visit, visit, visit_of

__all__ = ["NETWORK_POLICIES", "RELATIONS"]

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
        f"Pods of {v.ref.kind} {v.ref.where()}", "pod", ns, rel.selector_text(selector)
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


async def _deployment(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    ns, where = v.ref.namespace, v.ref.where()
    selector = rel.selector_of(obj)
    out: list[Visit] = []
    if selector:
        sets = await walk.objects(
            f"ReplicaSets of deployment {where}", "replicaset", ns, rel.selector_text(selector)
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
    if v.up:
        out += owner_visit(v, obj)
    return out


async def _replicaset(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    if v.up:
        return await _workload(walk, v, obj) if not v.depth else owner_visit(v, obj)
    return []


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


async def _disruption_budget(walk: Walk, v: Visit, obj: Obj) -> list[Visit]:
    """A PodDisruptionBudget: the unhealthy pods it counts (they are why it allows none)."""
    return await _pods_of(walk, v, obj, f"Unhealthy pod of PodDisruptionBudget {v.ref.where()}")


RELATIONS: Relations = {
    "*": custom,
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
    "service": service,
    "ingress": ingress,
    "poddisruptionbudget": _disruption_budget,
}
