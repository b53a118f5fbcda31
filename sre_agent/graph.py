"""The evidence walk: from what an alert names, along the relations a person follows.

A breadth-first walk over the cluster's object graph (docs/evidence.md): each
object is read once, described (its events included), and its relations
(:mod:`sre_agent.graph_hops`, with pure parts in :mod:`sre_agent.graph_relations`
and :mod:`sre_agent.graph_text`) give the next objects — a pod's owner,
node and claims, a workload's newest ReplicaSet and unhealthy pods, a
Service's pods, names and addresses found in the facts themselves, a custom
resource's controller. Pods give their logs (previous and current when the
container restarted). What one visit is, and whether what it says is a finding,
is :mod:`sre_agent.graph_visit`.

Every object visited is recorded on the :class:`Plan` as a
:class:`~sre_agent.models.WalkedObject`: how the walk reached its chain (the
root's origin, inherited) and the object it was reached from (its parent).

Depth, fan-out per relation and the lookups of one investigation are bounded;
what is far from the alert ranks below what the labels name, except facts that
are findings in themselves (an unhealthy pod, a Service with no ready
endpoint, warning events), which keep a high priority at any depth, so that
:func:`~sre_agent.findings.fit_budget` keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from sre_agent_tools import ToolResult
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom

from sre_agent import graph_relations as rel
from sre_agent import graph_text as facts
from sre_agent.graph_visit import (
    P_HOP,
    P_LABEL,
    P_SIGNAL,
    Obj,
    Ref,
    Visit,
    inherit,
    is_signal,
    reduce_describe,
    visit,
    visit_of,
)
from sre_agent.models import WalkedObject
from sre_agent.plan import Plan

__all__ = [
    "CONTROLLERS",
    "LOOKUP_BUDGET",
    "MAX_DEPTH",
    "OBJECT_QUERIES",
    "P_HOP",
    "P_LABEL",
    "P_SIGNAL",
    "PODS_PER_RELATION",
    "SERVICES_FROM_NAMES",
    "WARNED_OBJECTS",
    "Obj",
    "Ref",
    "Relations",
    "Visit",
    "Walk",
    "answer",
    "reduce_describe",
    "visit",
    "visit_of",
    "walked_object",
]

log = logging.getLogger(__name__)


#: Hops from what the labels name.
MAX_DEPTH = 4
#: Pods read per relation (a workload's unhealthy pods, a Service's pods).
PODS_PER_RELATION = 3
#: Services followed from the names and addresses in one object's facts.
SERVICES_FROM_NAMES = 3
#: Controllers whose logs are read for one custom resource.
CONTROLLERS = 2
#: Objects with warning events in the namespace visited besides the walk's own.
WARNED_OBJECTS = 2
#: Lookups one investigation's evidence phase may start (reads, lists, tools).
LOOKUP_BUDGET = 80

#: kube-state-metrics series of an object that turned out to be a finding.
OBJECT_QUERIES = {
    "cronjob": 'kube_cronjob_spec_suspend{{namespace="{ns}", cronjob="{name}"}}',
    "statefulset": 'kube_statefulset_replicas{{namespace="{ns}", statefulset="{name}"}}',
    "deployment": 'kube_deployment_spec_replicas{{namespace="{ns}", deployment="{name}"}}',
    "resourcequota": (
        'kube_resourcequota{{namespace="{ns}", resourcequota="{name}", type="used"}}'
        ' / ignoring(type) kube_resourcequota{{namespace="{ns}", resourcequota="{name}",'
        ' type="hard"}}'
    ),
}


Relations = dict[str, Callable[["Walk", Visit, Obj], Awaitable[list[Visit]]]]


class Walk:
    """One investigation's walk over the object graph (bounded by its :class:`Plan`)."""

    def __init__(self, plan: Plan, scope: set[str], relations: Relations) -> None:
        self.plan = plan
        #: kind -> the relation that gives an object's next visits (:mod:`sre_agent.graph_hops`);
        #: a kind without one (custom resources) uses ``relations["*"]``.
        self.relations = relations
        self.deps = plan.deps
        self.visited: set[Ref] = set()
        #: What the plan records of each visited object (``found`` once it was read).
        self.walked: dict[Ref, WalkedObject] = {}
        #: Namespaces the walk may follow names found in log text into.
        self.scope = scope
        self._shared: dict[tuple[str, ...], asyncio.Task[Any]] = {}

    # -- driving ---------------------------------------------------------------------
    async def run(self, roots: list[Visit]) -> None:
        """Visit ``roots``, then what each visit leads to, depth by depth; each object
        reached takes its root's origin and names the object it was reached from."""
        frontier = roots
        while frontier:
            fresh: list[Visit] = []
            for v in frontier:
                if v.ref in self.visited or v.depth > MAX_DEPTH:
                    continue
                if not self.plan.afford():
                    log.info("evidence walk: lookup budget %d spent", self.plan.budget)
                    break
                self.visited.add(v.ref)
                self.walked[v.ref] = self.plan.reached(walked_object(v))
                fresh.append(v)
            found = await asyncio.gather(*(self.visit(v) for v in fresh), return_exceptions=True)
            frontier = []
            for v, group in zip(fresh, found, strict=True):
                if isinstance(group, list):
                    frontier += inherit(v, group)
                elif isinstance(group, Exception):  # one odd object, not the whole walk
                    log.error("evidence walk: visit of %s failed", v.ref.where(), exc_info=group)
                elif isinstance(group, BaseException):  # cancelled: the phase's deadline
                    raise group

    def demote_repeats(self) -> None:
        """A later pod's log that only repeats the error lines of an earlier one (two
        replicas failing alike) ranks with the rest: one copy is the finding."""
        seen: set[str] = set()
        logs = sorted(
            (f for f in self.plan.findings if f.tool == "kubectl_logs" and f.status == "ok"),
            key=lambda f: f.order,
        )
        for finding in logs:
            errors = _error_templates(finding.output)
            if finding.priority == P_SIGNAL and errors and errors <= seen:
                finding.priority = P_HOP + 2
            seen |= errors

    def _lister(self, title: str, kind: str) -> Callable[[], Awaitable[list[Obj]]]:
        async def make() -> list[Obj]:
            return await self.objects(title, kind, None)

        return make

    def shared(self, key: tuple[str, ...], make: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        """One lookup for everyone who needs it (a namespace's Services, all Deployments)."""
        if key not in self._shared:
            self._shared[key] = asyncio.ensure_future(make())
        return self._shared[key]

    async def objects(
        self,
        title: str,
        kind: str,
        namespace: str | None,
        label_selector: Any = None,
        field_selector: Any = None,
    ) -> list[Obj]:
        """A list the walk searches (counted against the budget; empty on failure)."""
        if self.deps.kube is None or not self.plan.afford():
            return []
        log.debug("evidence walk: %s", title)
        call = k8s.list_objects(self.deps, kind, namespace, label_selector, field_selector)
        return list(await self.plan.search(call))

    # -- one object ------------------------------------------------------------------
    async def visit(self, v: Visit) -> list[Visit]:
        ref = v.ref
        where = ref.where()
        label = ref.kind if ref.kind in rel.BUILT_IN else ref.kind.split(".")[0]
        title = f"{v.why}: {label} {where}" if v.depth else f"kubectl describe {label} {where}"
        args = {
            "kind": ref.kind,
            "name": ref.name,
            **({"namespace": ref.namespace} if ref.namespace else {}),
        }
        obj = v.obj
        if obj is None:
            read = await self.plan.lookup(
                title,
                "kubectl_describe",
                args,
                P_LABEL if not v.depth else P_SIGNAL,
                k8s.read_object(self.deps, ref.kind, ref.name, ref.namespace),
            )
            if isinstance(read, ToolResult):  # not found (and what exists), forbidden, ...
                failed = read
                priority = P_LABEL if not v.depth else P_SIGNAL if v.signal else P_HOP + v.depth
                await self.plan.run(
                    title, "kubectl_describe", args, priority, lambda: answer(failed)
                )
                return []
            obj = read
        if ref in self.walked:
            self.walked[ref].found = True

        def rank(result: ToolResult) -> int:
            if not v.depth:
                return P_LABEL
            if not v.echo and (v.signal or is_signal(ref.kind, obj, result.text)):
                return P_SIGNAL
            return P_HOP + v.depth

        described = await self.plan.run(
            title,
            "kubectl_describe",
            args,
            P_HOP + v.depth,
            lambda: k8s.describe_object(self.deps, ref.kind, obj),
            reduce=reduce_describe,
            rank=rank,
        )
        text = described.text if described is not None and described.status == "ok" else ""
        signal = v.signal or is_signal(ref.kind, obj, text)
        v.facts = text
        follow = self.relations.get(ref.kind, self.relations["*"])
        jobs = [follow(self, v, obj), self.names_in(text, v, trusted=True)]
        if v.depth and signal and ref.kind in OBJECT_QUERIES and ref.namespace:
            jobs.append(self.object_metric(ref))
        # A relation that trips over an odd object costs its own hops, not the phase.
        found = await asyncio.gather(*jobs, return_exceptions=True)
        out: list[Visit] = []
        for group in found:
            if isinstance(group, Exception):
                log.error(
                    "evidence walk: relations of %s %s failed", ref.kind, where, exc_info=group
                )
            elif isinstance(group, list):
                out += group
            elif isinstance(group, BaseException):  # cancelled: the phase's deadline
                raise group
        return out

    async def object_metric(self, ref: Ref) -> list[Visit]:
        if self.deps.prometheus is None:
            return []
        query = OBJECT_QUERIES[ref.kind].format(ns=ref.namespace, name=ref.name)
        await self.plan.run(
            f"kube-state-metrics of {ref.kind} {ref.where()}",
            "promql_query",
            {"query": query},
            P_SIGNAL,
            lambda: prom.query_instant(self.deps, query),
            optional=True,
        )
        return []

    # -- names and addresses found in facts (R11, R12) ---------------------------------
    async def names_in(self, text: str, v: Visit, trusted: bool) -> list[Visit]:
        """Services, webhooks and quotas the text names, as visits one hop further."""
        if not text or v.depth >= MAX_DEPTH:
            return []
        ns, depth = v.ref.namespace, v.depth + 1
        text = facts.references(text)
        out: list[Visit] = []
        for other_ns, svc in facts.dns_services(text):
            if trusted or other_ns in self.scope:
                out.append(
                    visit("service", svc, other_ns, depth, f"Service named in {v.ref.where()}")
                )
        if ns:
            services = await self.shared(
                ("services", ns), lambda: self.objects(f"Services in namespace {ns}", "service", ns)
            )
            for svc in facts.named_services(text, services):
                if v.ref.name.startswith(svc):  # its own Service (cart-api for cart-api-7c6b…)
                    continue
                out.append(visit("service", svc, ns, depth, f"Service named in {v.ref.where()}"))
            for quota in facts.quotas_named(text):
                out.append(
                    visit(
                        "resourcequota",
                        quota,
                        ns,
                        depth,
                        f"Quota named in {v.ref.where()}",
                        signal=True,
                    )
                )
        out = [o for o in out if o.ref != v.ref][: SERVICES_FROM_NAMES + 2]
        for hook in facts.webhooks_named(text)[:2]:
            out += await self.webhook(hook, depth)
        return out

    async def webhook(self, hook: str, depth: int) -> list[Visit]:
        out = []
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            configs = await self.shared((kind,), self._lister(f"{kind}s", kind))
            for config in configs:
                if rel.has_webhook(config, hook):
                    out.append(
                        visit(
                            kind,
                            config["metadata"]["name"],
                            None,
                            depth,
                            f"Configuration of the failing webhook {hook}",
                            config,
                            signal=True,
                        )
                    )
                    backend = rel.webhook_backend(config, hook)
                    if backend:
                        out.append(
                            visit(
                                "service",
                                backend[1],
                                backend[0],
                                depth + 1,
                                f"Backend Service of webhook {hook}",
                                signal=True,
                                parent=out[-1].ref,  # reached through the configuration
                            )
                        )
        return out

    # -- logs (L1) ---------------------------------------------------------------------
    async def pod_logs(self, v: Visit, pod: Obj) -> list[str]:
        ns, name = v.ref.namespace or "default", v.ref.name
        texts: list[str] = []

        async def one(container: str, previous: bool) -> None:
            which = "previous" if previous else "current"
            title = f"Logs of {ns}/{name} container {container} ({which})"
            if v.depth:
                title = f"{v.why}: {title[0].lower()}{title[1:]}"

            def rank(result: ToolResult) -> int:
                if not v.depth:
                    return P_LABEL
                if not v.echo and (facts.error_lines(result.text) or rel.unhealthy(pod)):
                    return P_SIGNAL
                return P_HOP + v.depth

            result = await self.plan.run(
                title,
                "kubectl_logs",
                {"pod": name, "namespace": ns, "container": container, "previous": previous},
                P_LABEL if not v.depth else P_HOP + v.depth,
                lambda: k8s.logs(
                    self.deps, name, ns, container=container, previous=previous, tail_lines=200
                ),
                reduce=facts.reduce_log,
                # Beside a previous log, an empty or unreadable current one says nothing.
                optional=bool(v.depth) or (container, True) in targets,
                rank=rank,
            )
            if result is not None and result.status == "ok":
                texts.append(result.text)

        targets = rel.log_targets(pod, v.container)
        if self.plan.afford(len(targets)):
            await asyncio.gather(*(one(c, p) for c, p in targets))
        return texts


_DIGITS = re.compile(r"\d+")


def _error_templates(reduced: str) -> set[str]:
    """The error-looking lines of a reduced log, numbers blurred."""
    return {_DIGITS.sub("#", line) for line in facts.error_lines(reduced)}


async def answer(result: ToolResult) -> ToolResult:
    return result


def walked_object(v: Visit) -> WalkedObject:
    """The record of a visit, not found until its object is read. A root given without
    an origin is one the caller named, as the alert's labels do."""
    return WalkedObject(
        kind=v.ref.kind,
        name=v.ref.name,
        namespace=v.ref.namespace,
        depth=v.depth,
        why=v.why,
        origin=v.origin or "alert",
        parent=v.parent.key() if v.parent else None,
        found=False,
    )
