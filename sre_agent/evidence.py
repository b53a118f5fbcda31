"""Evidence first: before the first LLM call, gather in parallel — and
deterministically — what the alert points at, so a small model starts from
the facts and calls tools only for what is missing.

What is gathered follows the alert's labels (the kube-prometheus-stack
conventions: ``namespace``, ``pod``, ``container``, ``deployment``,
``statefulset``, ``daemonset``, ``job_name``, ``node``, ``instance``,
``persistentvolumeclaim``, ``horizontalpodautoscaler``, ``job``):

1. the alert's own PromQL (``generatorURL``'s ``g0.expr``) around ``startsAt``;
2. the objects its labels name, described; for a pod also its logs (the
   previous container's when it restarted), its owner and, when resources
   are in question, its node; for a workload its first unhealthy pod;
3. a few alert-specific queries (:data:`RECIPES`) and the scrape target;
4. the namespace's recent events.

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
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom

from sre_agent.findings import Finding, call_signature, fit_budget, render
from sre_agent.plan import Plan

log = logging.getLogger(__name__)

__all__ = [
    "Finding",
    "call_signature",
    "fit_budget",
    "gather",
    "other_events",
    "reduce_log",
    "render",
]

#: Label -> Kubernetes kind, for objects an alert names directly.
OBJECT_LABELS = (
    ("deployment", "deployment"),
    ("statefulset", "statefulset"),
    ("daemonset", "daemonset"),
    ("job_name", "job"),
    ("cronjob", "cronjob"),
    ("persistentvolumeclaim", "persistentvolumeclaim"),
    ("horizontalpodautoscaler", "horizontalpodautoscaler"),
)

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

#: Scrape jobs whose `job`/`instance` labels name the exporter, not the thing in trouble.
EXPORTERS = {"kube-state-metrics", "kubelet", "node-exporter", "apiserver"}

Obj = dict[str, Any]

_POD_LABEL = re.compile(r'\bpod="([^"]+)"')

_ERROR_LINE = re.compile(
    r"FATAL|ERROR|CRIT|panic|Exception|Traceback|\bfail(ed|ure)?\b|refused|denied|"
    r"timed? ?out|OOM|Killed|\bexit(ed)?\b|not found|missing|invalid|unable|cannot",
    re.IGNORECASE,
)


def reduce_log(text: str, error_lines: int = 12, tail: int = 10) -> str:
    """Logs for a prompt: the header, the error-looking lines, then the tail."""
    lines = text.splitlines()
    if len(lines) <= 1 + error_lines + tail:
        return text
    header, body = lines[0], lines[1:]
    last = body[-tail:]
    errors = [line for line in body[:-tail] if _ERROR_LINE.search(line)]
    seen: set[str] = set()
    unique = [e for e in errors if not (e in seen or seen.add(e))][-error_lines:]  # type: ignore[func-returns-value]
    skipped = len(body) - len(last) - len(unique)
    parts = [header]
    if unique:
        parts += ["[error-looking lines]", *unique]
    parts += [f"[last {len(last)} lines; {skipped} other lines omitted]", *last]
    return "\n".join(parts)


#: How far back the alert's expression is graphed, at most: a startsAt of year 1
#: (Alertmanager's zero time) or a week ago must not become a range over years.
_WINDOW_MAX = timedelta(days=3)
_WINDOW_LEAD = timedelta(minutes=30)


def _window(alert: dict[str, Any], now: datetime) -> tuple[str, str]:
    """From 30 minutes before the alert started (within ``_WINDOW_MAX``) to now.

    Only ``now - starts`` is computed: no arithmetic near datetime's own bounds."""
    try:
        starts = datetime.fromisoformat(str(alert.get("startsAt")).replace("Z", "+00:00"))
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


def _unhealthy(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Running", "Succeeded"):
        return True
    return any(not c.get("ready") for c in status.get("containerStatuses") or [])


def _restarted(pod: dict[str, Any], container: str | None) -> bool:
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if container in (None, c.get("name")):
            if c.get("restartCount", 0) > 0 or (c.get("lastState") or {}).get("terminated"):
                return True
    return False


def _needs_node(pod: dict[str, Any]) -> bool:
    """Resource trouble (OOM, eviction, pressure) makes the node part of the story."""
    text = json.dumps(pod.get("status") or {})
    return any(word in text for word in ("OOMKilled", "Evicted", "Pressure", "NodeLost"))


async def gather(
    alert: dict[str, Any],
    deps: ToolDeps,
    *,
    now: datetime | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    timeout: float | None = None,
) -> list[Finding]:
    """Everything the alert points at, most important first.

    ``on_finding`` gets each finding as soon as it is gathered; past ``timeout``
    seconds the lookups still pending become timed-out findings and the rest is
    returned. A cancellation (the investigation's deadline) records them too.
    """
    plan = Plan(deps, on_finding)
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
    return sorted(plan.findings, key=lambda f: (f.priority, f.order))


async def _gather(plan: Plan, alert: dict[str, Any], now: datetime) -> None:
    deps = plan.deps
    labels: dict[str, str] = dict(alert.get("labels") or {})
    alertname = labels.get("alertname", "")
    ns = labels.get("namespace")
    pod, container, node = labels.get("pod"), labels.get("container"), labels.get("node")
    if labels.get("job") == "node-exporter":  # there `pod` is the exporter, not the subject
        pod = container = None
    first: list[Awaitable[Any]] = []

    expr = alert.get("expr")
    if expr:
        start, end = _window(alert, now)
        first.append(
            plan.run(
                "The alert's expression now (the firing series)",
                "promql_query",
                {"query": expr},
                0,
                lambda: prom.query_instant(deps, expr),
            )
        )
        first.append(
            plan.run(
                "The alert's expression over time",
                "promql_range",
                {"query": expr, "start": start, "end": end},
                1,
                lambda: prom.query_range(deps, expr, start=start, end=end),
            )
        )
    if pod and ns:
        first.append(_pod_evidence(plan, ns, pod, container, priority=1))
    for label, kind in OBJECT_LABELS:
        if labels.get(label) and (ns or kind == "node"):
            first.append(_workload_evidence(plan, kind, labels[label], ns, with_pods=not pod))
    if not node and alertname.startswith("Node") and labels.get("instance"):
        # node-exporter alerts name the node only in `instance` (when relabelled to it).
        host = labels["instance"].rsplit(":", 1)[0]
        if k8s_name_like(host):
            node = labels["node"] = host
    if node:
        first.append(_describe(plan, "node", node, None, 2))
    if alertname == "TargetDown" and labels.get("job"):
        first.append(_target_down_evidence(plan, labels))
    for template in RECIPES.get(alertname, []):
        query = _fill(template, labels)
        if query:
            first.append(_related_query(plan, query))
    scrape_job = labels.get("job")
    if scrape_job and labels.get("instance") and not pod and scrape_job not in EXPORTERS:
        query = f'up{{job="{scrape_job}", instance="{labels["instance"]}"}}'
        first.append(
            plan.run(
                "Scrape target health",
                "promql_query",
                {"query": query},
                5,
                lambda: prom.query_instant(deps, query),
                optional=True,
            )
        )
    await asyncio.gather(*first)
    if ns:
        # Last, so that events of objects already described are not shown twice.
        described = {str(f.args.get("name")) for f in plan.findings if f.tool == "kubectl_describe"}
        await plan.run(
            f"Other recent events in namespace {ns}",
            "kubectl_events",
            {"namespace": ns},
            6,
            lambda: k8s.events(deps, ns, limit=30),
            reduce=lambda text: other_events(text, described),
            optional=True,
        )


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
        4,
        lambda: prom.query_instant(plan.deps, query),
        optional=True,
    )


def k8s_name_like(value: str) -> bool:
    """A node name rather than an IP address."""
    return bool(value) and not re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", value)


def _describe_call(kind: str, name: str, ns: str | None) -> tuple[str, dict[str, Any]]:
    """The title and tool arguments of describing one object."""
    where = f"{ns}/{name}" if ns else name
    return f"kubectl describe {kind} {where}", {
        "kind": kind,
        "name": name,
        **({"namespace": ns} if ns else {}),
    }


async def _read_object(
    plan: Plan, kind: str, name: str, ns: str | None, priority: int
) -> Obj | ToolResult:
    """One object, or why it cannot be read; pending as its describe finding meanwhile."""
    title, args = _describe_call(kind, name, ns)
    return await plan.lookup(
        title, "kubectl_describe", args, priority, k8s.read_object(plan.deps, kind, name, ns)
    )


async def _describe(
    plan: Plan,
    kind: str,
    name: str,
    ns: str | None,
    priority: int,
    obj: Obj | ToolResult | None = None,
) -> None:
    """Describe an object; ``obj`` when it was already read, or why it could not be
    (no second GET either way)."""
    title, args = _describe_call(kind, name, ns)

    async def call() -> ToolResult:
        if isinstance(obj, ToolResult):
            return obj
        if obj is not None:
            return await k8s.describe_object(plan.deps, kind, obj)
        return await k8s.describe(plan.deps, kind, name, ns)

    await plan.run(title, "kubectl_describe", args, priority, call)


async def _pod_evidence(
    plan: Plan, ns: str, pod: str, container: str | None, priority: int
) -> None:
    deps = plan.deps
    obj = await _read_object(plan, "pod", pod, ns, priority)
    await _describe(plan, "pod", pod, ns, priority, obj)  # an error result: says why it is missing
    if isinstance(obj, ToolResult):
        return
    follow: list[Awaitable[Any]] = []
    previous = _restarted(obj, container)
    args = {"pod": pod, "namespace": ns, "container": container, "previous": previous}
    follow.append(
        plan.run(
            f"Logs of {ns}/{pod}" + (" (previous container)" if previous else ""),
            "kubectl_logs",
            args,
            priority,
            lambda: k8s.logs(deps, pod, ns, container=container, previous=previous, tail_lines=200),
            reduce=reduce_log,
        )
    )
    owner = _owner(obj)
    if owner is not None:
        follow.append(_owner_evidence(plan, ns, *owner, priority=priority + 2))
    node = (obj.get("spec") or {}).get("nodeName")
    if node and _needs_node(obj):
        follow.append(_describe(plan, "node", node, None, priority + 3))
    if (obj.get("status") or {}).get("phase") == "Pending":
        follow.append(_unbound_claims(plan, ns, obj, priority + 1))
    await asyncio.gather(*follow)


async def _unbound_claims(plan: Plan, ns: str, pod: dict[str, Any], priority: int) -> None:
    """A pending pod's volume claims that are not bound are often why it is pending."""
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]
    for claim in claims[:3]:
        obj = await _read_object(plan, "persistentvolumeclaim", claim, ns, priority)
        if not isinstance(obj, ToolResult) and (obj.get("status") or {}).get("phase") != "Bound":
            await _describe(plan, "persistentvolumeclaim", claim, ns, priority, obj)


def _owner(obj: dict[str, Any]) -> tuple[str, str] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller", True) and ref.get("kind") and ref.get("name"):
            return ref["kind"].lower(), ref["name"]
    return None


async def _owner_evidence(plan: Plan, ns: str, kind: str, name: str, priority: int) -> None:
    if kind == "replicaset":
        rs = await _read_object(plan, "replicaset", name, ns, priority)
        parent = None if isinstance(rs, ToolResult) else _owner(rs)
        if parent is not None:
            kind, name = parent
    if kind in ("deployment", "statefulset", "daemonset", "job", "replicaset"):
        await _describe(plan, kind, name, ns, priority)


async def _workload_evidence(
    plan: Plan, kind: str, name: str, ns: str | None, *, with_pods: bool
) -> None:
    """The workload, and — when the alert names no pod — its first unhealthy pod."""
    deps = plan.deps
    obj = await _read_object(plan, kind, name, ns, 1)
    await _describe(plan, kind, name, ns, 1, obj)
    if isinstance(obj, ToolResult) or not with_pods:
        return
    if kind in ("persistentvolumeclaim", "horizontalpodautoscaler"):
        return
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if kind == "job":  # the Job controller labels its pods with the job's name
        selector = {"batch.kubernetes.io/job-name": name}
    if not selector:
        return
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    where = f"{ns}/{name}" if ns else name
    listing = f"Pods of {kind} {where}"
    args = {"kind": "pod", "namespace": ns, "selector": text}
    pods = await plan.lookup(
        listing, "kubectl_describe", args, 2, k8s.list_objects(deps, "pod", ns, text)
    )
    if not pods and kind == "job":  # clusters before Kubernetes 1.27
        old = f"job-name={name}"
        args = {"kind": "pod", "namespace": ns, "selector": old}
        pods = await plan.lookup(
            listing, "kubectl_describe", args, 2, k8s.list_objects(deps, "pod", ns, old)
        )
    bad = sorted((p for p in pods if _unhealthy(p)), key=lambda p: p["metadata"].get("name", ""))
    if bad:
        await _pod_evidence(plan, ns or "default", bad[0]["metadata"]["name"], None, priority=2)


async def _target_down_evidence(plan: Plan, labels: dict[str, str]) -> None:
    """Which targets are down (``up == 0``), then the first down pod: its state and logs."""
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
    ns = labels.get("namespace")
    pods = _POD_LABEL.findall(result.text) if result is not None and result.status == "ok" else []
    if pods and ns:
        await _pod_evidence(plan, ns, pods[0], None, priority=2)
