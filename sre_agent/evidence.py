"""Evidence first: before the first LLM call, gather in parallel — and
deterministically — what the alert points at, so a small model starts from
the facts and calls tools only for what is missing.

What is gathered (docs/evidence.md):

1. the alert's own PromQL (``generatorURL``'s ``g0.expr``), now and around
   ``startsAt``, its own series first;
2. the object graph, walked from what the labels name
   (:mod:`sre_agent.graph`): owners, nodes, claims, newest ReplicaSets,
   unhealthy pods and their logs, the pods behind Services, names and
   addresses found in the facts, the controllers of custom resources (the
   objects it reached, with how and from where, are the record's ``objects``);
3. a few alert-specific queries (:data:`RECIPES`) and the scrape target;
4. the namespace's other recent events.

Each finding carries a priority; :func:`fit_budget` keeps the most important
ones whole and trims the rest to the prompt budget.

Each finding is handed to ``on_finding`` the moment it is gathered, so a
deadline that cuts the investigation short still leaves what the backends
that answered gave. The phase as a whole is bounded (``timeout``): lookups
still pending then are cancelled and become ``error`` findings that say they
timed out, so the report names what did not answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom
from sre_agent_tools.kube_describe import event_time

from sre_agent import graph_roots as roots
from sre_agent.findings import Evidence, call_signature, fit_budget, render
from sre_agent.graph import LOOKUP_BUDGET, Visit, Walk
from sre_agent.graph_hops import RELATIONS
from sre_agent.graph_roots import EXPORTERS
from sre_agent.graph_text import reduce_log
from sre_agent.models import AlertRecord, WalkedObject
from sre_agent.plan import Plan
from sre_agent.series import identity, label_vector, own_series_first, score, values

log = logging.getLogger(__name__)

__all__ = [
    "Evidence",
    "call_signature",
    "fit_budget",
    "gather",
    "other_events",
    "own_series_first",
    "reduce_log",
    "render",
]

#: Extra PromQL per alert, filled from the alert's labels ({namespace}, {pod}, ...).
#: A query whose labels the alert lacks is skipped.
RECIPES: dict[str, list[str]] = {
    "CPUThrottlingHigh": [
        'sum by (pod, container) (rate(container_cpu_usage_seconds_total{{namespace="{namespace}", pod="{pod}", container="{container}"}}[5m]))',
        'kube_pod_container_resource_limits{{namespace="{namespace}", pod="{pod}", container="{container}", resource="cpu"}}',
    ],
    "KubePodCrashLooping": [
        'kube_pod_container_status_last_terminated_reason{{namespace="{namespace}", pod="{pod}", container="{container}"}} == 1',
    ],
    "KubeHpaMaxedOut": [
        'kube_horizontalpodautoscaler_status_target_metric{{namespace="{namespace}", horizontalpodautoscaler="{horizontalpodautoscaler}"}}',
        'kube_horizontalpodautoscaler_spec_target_metric{{namespace="{namespace}", horizontalpodautoscaler="{horizontalpodautoscaler}"}}',
    ],
    # kube-prometheus-stack's recording rules: which namespaces request the most.
    "KubeMemoryOvercommit": [
        "topk(5, sum by (namespace) (namespace_memory:kube_pod_container_resource_requests:sum))",
        'sum(kube_node_status_allocatable{{resource="memory"}})',
    ],
    "KubeCPUOvercommit": [
        "topk(5, sum by (namespace) (namespace_cpu:kube_pod_container_resource_requests:sum))",
        'sum(kube_node_status_allocatable{{resource="cpu"}})',
    ],
    "KubeNodeNotReady": [
        'kube_node_status_condition{{node="{node}", condition="Ready"}} == 1',
        'kube_node_spec_taint{{node="{node}"}}',
    ],
    "NodeMemoryHighUtilization": [
        'node_memory_MemAvailable_bytes{{instance="{instance}"}} / node_memory_MemTotal_bytes{{instance="{instance}"}}',
        'topk(5, sum by (namespace, pod) (container_memory_working_set_bytes{{node="{node}", container!=""}}))',
    ],
}

Obj = dict[str, Any]

_LABEL = re.compile(r'\b([a-zA-Z_]\w*)="([^"]*)"')

#: How far back the alert's expression is graphed, at most: a startsAt of year 1
#: (Alertmanager's zero time) or a week ago must not become a range over years.
_WINDOW_MAX = timedelta(days=3)
_WINDOW_LEAD = timedelta(minutes=30)


def _window(alert: AlertRecord, now: datetime) -> tuple[str, str]:
    """From 30 minutes before the alert started (within ``_WINDOW_MAX``) to now.

    Only ``now - starts`` is computed: no arithmetic near datetime's own bounds."""
    try:
        starts = datetime.fromisoformat(alert.startsAt.replace("Z", "+00:00"))
        if starts.tzinfo is None:
            starts = starts.replace(tzinfo=UTC)
        firing_for = max(now - starts, timedelta(0))  # a start in the future: from now
    except (ValueError, OverflowError, TypeError):
        firing_for = timedelta(0)
    start = now - min(firing_for + _WINDOW_LEAD, _WINDOW_MAX)
    return start.isoformat(), now.isoformat()


def _fill(template: str, labels: dict[str, str]) -> str | None:
    try:
        return template.format_map(_Strict(labels))
    except KeyError:
        return None


class _Strict(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


async def gather(
    alert: AlertRecord | Mapping[str, Any],
    deps: ToolDeps,
    *,
    now: datetime | None = None,
    on_finding: Callable[[Evidence], None] | None = None,
    timeout: float | None = None,
    walked: list[WalkedObject] | None = None,
) -> list[Evidence]:
    """Everything the alert points at, most important first.

    ``on_finding`` gets each finding as soon as it is gathered; past ``timeout``
    seconds the lookups still pending become timed-out findings and the rest is
    returned. A cancellation (the investigation's deadline) records them too. ``alert``
    is the stored alert, or its fields (the lab's and tests' alerts). ``walked`` gets
    the objects the walk reached, however the phase ends: the incident rule joins
    alerts on them.
    """
    alert = AlertRecord.model_validate(alert)
    plan = Plan(deps, on_finding, budget=LOOKUP_BUDGET)
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            await _gather(plan, alert, now or datetime.now(UTC))
    except TimeoutError:
        if not scope.expired():  # not ours: a bug to see, not a slow backend
            raise
        plan.cut(
            f"timed out: no answer within the evidence phase's {timeout:g} s"
            " (SRE_AGENT_EVIDENCE_TIMEOUT)"
        )
    except asyncio.CancelledError:
        plan.cut("cancelled: the investigation's deadline came before the answer")
        raise
    finally:
        if walked is not None:
            walked.extend(plan.walked)
    return sorted(plan.findings, key=lambda f: (f.priority, f.order))


async def _gather(plan: Plan, alert: AlertRecord, now: datetime) -> None:
    deps = plan.deps
    labels: dict[str, str] = dict(alert.labels)
    alertname = labels.get("alertname", "")
    metric: list[Awaitable[Any]] = []

    expr = alert.expr
    if expr:
        metric.append(_alert_expr(plan, expr, labels, _window(alert, now)))
    if not labels.get("node") and alertname.startswith("Node") and labels.get("instance"):
        # node-exporter alerts name the node only in `instance` (when relabelled to it).
        host = labels["instance"].rsplit(":", 1)[0]
        if k8s_name_like(host):
            labels["node"] = host
    for template in RECIPES.get(alertname, []):
        query = _fill(template, labels)
        if query:
            metric.append(_related_query(plan, query))
    scrape_job = labels.get("job")
    if (
        scrape_job
        and labels.get("instance")
        and not labels.get("pod")
        and scrape_job not in EXPORTERS
    ):
        query = f'up{{job="{scrape_job}", instance="{labels["instance"]}"}}'
        metric.append(
            plan.run(
                "Scrape target health",
                "promql_query",
                {"query": query},
                5,
                lambda: prom.query_instant(deps, query),
                optional=True,
            )
        )
    await asyncio.gather(*metric, _kube_side(plan, labels))


async def _kube_side(plan: Plan, labels: dict[str, str]) -> None:
    """The object-graph walk from what the labels name, then the namespace's other events."""
    ns = labels.get("namespace")
    walk = Walk(plan, {ns} if ns else set(), RELATIONS)
    named = roots.from_labels(labels)
    title = f"Other recent events in namespace {ns}"
    events: asyncio.Future[list[dict[str, Any]]] = asyncio.ensure_future(
        plan.lookup(title, "kubectl_events", {"namespace": ns}, 6, _events(plan, ns))
        if ns and plan.deps.kube is not None
        else _events(plan, None)
    )

    async def resolved() -> None:
        """Objects the labels name only through a lookup: walked as soon as found."""
        found = await asyncio.gather(
            _targets_down(walk, labels),
            roots.from_addresses(walk, labels),
            _warned(events, ns, builtin_too=not named),
        )
        await walk.run([v for group in found for v in group])

    await asyncio.gather(walk.run(named), resolved())
    walk.demote_repeats()
    listed = await events
    if ns and listed:
        # Last, so that events of objects already described are not shown twice.
        described = {str(f.args.get("name")) for f in plan.findings if f.tool == "kubectl_describe"}
        text = "\n".join(k8s.render_events(listed[-30:], len(listed), with_object=True))
        await plan.run(
            title,
            "kubectl_events",
            {"namespace": ns},
            6,
            lambda: _answer(ToolResult("ok", other_events(text, described))),
            optional=True,
        )


async def _events(plan: Plan, ns: str | None) -> list[dict[str, Any]]:
    """The namespace's events, oldest first (one list serves the walk and the finding)."""
    if not ns or plan.deps.kube is None:
        return []
    found = await k8s.list_objects(plan.deps, "event", ns)
    return sorted(found, key=event_time)


async def _warned(
    events: Awaitable[list[dict[str, Any]]], ns: str | None, builtin_too: bool
) -> list[Visit]:
    return roots.warned_objects(await events, ns, builtin_too)


async def _answer(result: ToolResult) -> ToolResult:
    return result


async def _alert_expr(
    plan: Plan, expr: str, labels: dict[str, str], window: tuple[str, str]
) -> None:
    """The firing series, the alert's own first, then the trend of the alert's own series.

    Many rules have no namespace filter: their expr returns the series of every
    namespace. The instant answer puts the alert's own series first and, when it
    was cut before that series, asks for it by its labels; the range query keeps to
    it (``(expr) and on(labels) <vector of those labels>``)."""
    deps = plan.deps
    result = await plan.run(
        "The alert's expression now (the firing series)",
        "promql_query",
        {"query": expr},
        0,
        lambda: prom.query_instant(deps, expr),
        reduce=lambda text: own_series_first(text, labels),
    )
    text = result.text if result is not None and result.status == "ok" else ""
    series = [line for line in text.splitlines() if "=>" in line]
    own = identity(labels)
    # Only the labels the series carry: a rule may add labels of its own (team, ...).
    mine = {k: v for k, v in own.items() if any(f'{k}="' in line for line in series)}
    # ... and of those, the ones that tell the series apart (namespace, deployment).
    mine = {k: v for k, v in mine.items() if len(values(k, series)) > 1} or mine
    narrow = f"({expr}) and on({', '.join(mine)}) {label_vector(mine)}" if mine else expr
    if "more series" in text and mine and not any(score(s, mine) == len(mine) for s in series):
        await plan.run(
            "The alert's own series",
            "promql_query",
            {"query": narrow},
            0,
            lambda: prom.query_instant(deps, narrow),
            optional=True,
        )
    start, end = window
    query = narrow if mine and (len(series) > 1 or "more series" in text) else expr
    title = "The alert's expression over time" + (" (its own series)" if query != expr else "")
    trend = await plan.run(
        title,
        "promql_range",
        {"query": query, "start": start, "end": end},
        4,
        lambda: prom.query_range(deps, query, start=start, end=end),
        optional=query != expr,
    )
    if query != expr and (trend is None or trend.status != "ok"):
        await plan.run(
            "The alert's expression over time",
            "promql_range",
            {"query": expr, "start": start, "end": end},
            4,
            lambda: prom.query_range(deps, expr, start=start, end=end),
        )


async def _targets_down(walk: Walk, labels: dict[str, str]) -> list[Visit]:
    """TargetDown: which targets are down (``up == 0``), then the objects behind them."""
    plan = walk.plan
    if labels.get("alertname") != "TargetDown" or not labels.get("job"):
        return []
    selector = ", ".join(
        f'{key}="{labels[key]}"' for key in ("job", "namespace", "service") if labels.get(key)
    )
    query = f"up{{{selector}}} == 0"
    result = await plan.run(
        "Targets that are down",
        "promql_query",
        {"query": query},
        1,
        lambda: prom.query_instant(plan.deps, query),
    )
    text = result.text if result is not None and result.status == "ok" else ""
    down = [dict(_LABEL.findall(line)) for line in text.splitlines() if "=>" in line]
    return await roots.from_targets(walk, labels.get("namespace"), down)


def other_events(text: str, described: set[str], limit: int = 10) -> str:
    """Namespace events minus those of objects already described; empty if none remain."""
    lines = text.splitlines()
    rows = [line for line in lines[1:] if not any(f"/{name} " in line for name in described)]
    if not rows:
        return ""
    return "\n".join([f"Events of other objects ({len(rows[-limit:])} newest):", *rows[-limit:]])


async def _related_query(plan: Plan, query: str) -> None:
    await plan.run(
        "Related query",
        "promql_query",
        {"query": query},
        2,
        lambda: prom.query_instant(plan.deps, query),
        optional=True,
    )


def k8s_name_like(value: str) -> bool:
    """A node name rather than an IP address."""
    return bool(value) and not re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", value)
