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
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools import prometheus as prom
from sre_agent_tools.redact import redact

from sre_agent import tokens

log = logging.getLogger(__name__)

#: Label -> Kubernetes kind, for objects an alert names directly.
OBJECT_LABELS = (
    ("deployment", "deployment"),
    ("statefulset", "statefulset"),
    ("daemonset", "daemonset"),
    ("job_name", "job"),
    ("cronjob", "cronjob"),
    ("persistentvolumeclaim", "persistentvolumeclaim"),
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
        'kube_horizontalpodautoscaler_status_current_replicas{{namespace="{namespace}", horizontalpodautoscaler="{horizontalpodautoscaler}"}}',
        'kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{namespace}", horizontalpodautoscaler="{horizontalpodautoscaler}"}}',
        'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace="{namespace}", container!=""}}[5m]))',
    ],
    "KubeMemoryOvercommit": [
        'sum(kube_pod_container_resource_requests{{resource="memory"}})',
        'sum(kube_node_status_allocatable{{resource="memory"}})',
        'topk(5, sum by (namespace) (kube_pod_container_resource_requests{{resource="memory"}}))',
    ],
    "KubeCPUOvercommit": [
        'sum(kube_pod_container_resource_requests{{resource="cpu"}})',
        'sum(kube_node_status_allocatable{{resource="cpu"}})',
        'topk(5, sum by (namespace) (kube_pod_container_resource_requests{{resource="cpu"}}))',
    ],
    "NodeMemoryHighUtilization": [
        'node_memory_MemAvailable_bytes{{instance="{instance}"}} / node_memory_MemTotal_bytes{{instance="{instance}"}}',
        'topk(5, sum by (namespace, pod) (container_memory_working_set_bytes{{node="{node}", container!=""}}))',
    ],
    "TargetDown": [
        'up{{job="{job}", namespace="{namespace}"}} == 0',
    ],
}

_ERROR_LINE = re.compile(
    r"FATAL|ERROR|CRIT|panic|Exception|Traceback|\bfail(ed|ure)?\b|refused|denied|"
    r"timed? ?out|OOM|Killed|\bexit(ed)?\b|not found|missing|invalid|unable|cannot",
    re.IGNORECASE,
)


@dataclass
class Finding:
    """One piece of evidence, as the model and the stored record see it."""

    title: str
    tool: str  # the agent tool that returns the same thing
    args: dict[str, Any]
    status: str
    output: str
    duration_ms: float
    priority: int  # 0 = most important

    def signature(self) -> str:
        return call_signature(self.tool, self.args)

    def record(self) -> dict[str, Any]:
        return {"title": self.title, "tool": self.tool, "output": self.output, "phase": "evidence"}

    def tool_call(self) -> dict[str, Any]:
        return {
            "name": self.tool,
            "args": self.args,
            "duration_ms": round(self.duration_ms, 1),
            "status": self.status,
            "output_chars": len(self.output),
            "phase": "evidence",
        }


def call_signature(tool: str, args: dict[str, Any]) -> str:
    """Identity of a tool call: the same tool with the same (non-empty) arguments."""
    clean = {k: v for k, v in args.items() if v not in (None, "", False)}
    return f"{tool}:{json.dumps(clean, sort_keys=True, default=str)}"


@dataclass
class _Plan:
    deps: ToolDeps
    findings: list[Finding] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    async def run(
        self,
        title: str,
        tool: str,
        args: dict[str, Any],
        priority: int,
        call: Callable[[], Awaitable[ToolResult]],
        reduce: Callable[[str], str] | None = None,
        optional: bool = False,
    ) -> ToolResult | None:
        """Run one tool; an ``optional`` finding is kept only when it found something."""
        signature = call_signature(tool, args)
        if signature in self.seen:
            return None
        self.seen.add(signature)
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:  # a tool bug must not cost the investigation
            log.exception("evidence %s failed", title)
            result = ToolResult("error", f"{exc.__class__.__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        text = reduce(result.text) if reduce and result.status == "ok" else result.text
        if optional and (result.status != "ok" or not text.strip()):
            log.info(
                "tool %s %s in %.0f ms (evidence, not kept: %s)",
                tool,
                result.status,
                elapsed,
                title,
            )
            return result
        self.findings.append(
            Finding(title, tool, args, result.status, redact(text), elapsed, priority)
        )
        log.info("tool %s %s in %.0f ms (evidence: %s)", tool, result.status, elapsed, title)
        return result


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


def _window(alert: dict[str, Any], now: datetime) -> tuple[str, str]:
    try:
        starts = datetime.fromisoformat(str(alert.get("startsAt")).replace("Z", "+00:00"))
    except ValueError:
        starts = now - timedelta(minutes=30)
    start = min(starts - timedelta(minutes=30), now - timedelta(minutes=30))
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
    alert: dict[str, Any], deps: ToolDeps, *, now: datetime | None = None
) -> list[Finding]:
    """Everything the alert points at, most important first."""
    now = now or datetime.now(UTC)
    labels: dict[str, str] = dict(alert.get("labels") or {})
    alertname = labels.get("alertname", "")
    ns = labels.get("namespace")
    pod, container, node = labels.get("pod"), labels.get("container"), labels.get("node")
    plan = _Plan(deps)
    first: list[Awaitable[Any]] = []

    expr = alert.get("expr")
    if expr:
        start, end = _window(alert, now)
        first.append(
            plan.run(
                "The alert's expression over time",
                "promql_range",
                {"query": expr, "start": start, "end": end},
                0,
                lambda: prom.query_range(deps, expr, start=start, end=end),
            )
        )
    if pod and ns:
        first.append(_pod_evidence(plan, ns, pod, container, priority=1))
    for label, kind in OBJECT_LABELS:
        if labels.get(label) and (ns or kind == "node"):
            first.append(_workload_evidence(plan, kind, labels[label], ns, with_pods=not pod))
    if node:
        first.append(_describe(plan, "node", node, None, 2))
    elif alertname.startswith("Node") and labels.get("instance"):
        host = labels["instance"].rsplit(":", 1)[0]
        if k8s_name_like(host):
            first.append(_describe(plan, "node", host, None, 3))
    for template in RECIPES.get(alertname, []):
        query = _fill(template, labels)
        if query:
            first.append(
                plan.run(
                    "Related query",
                    "promql_query",
                    {"query": query},
                    4,
                    lambda q=query: prom.query_instant(deps, q),
                    optional=True,
                )
            )
    if labels.get("job") and labels.get("instance") and not pod:
        query = f'up{{job="{labels["job"]}", instance="{labels["instance"]}"}}'
        first.append(
            plan.run(
                "Scrape target health",
                "promql_query",
                {"query": query},
                5,
                lambda: prom.query_instant(deps, query),
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
    return sorted(plan.findings, key=lambda f: f.priority)


def other_events(text: str, described: set[str], limit: int = 10) -> str:
    """Namespace events minus those of objects already described; empty if none remain."""
    lines = text.splitlines()
    rows = [line for line in lines[1:] if not any(f"/{name} " in line for name in described)]
    if not rows:
        return ""
    return "\n".join([f"Events of other objects ({len(rows[-limit:])} newest):", *rows[-limit:]])


def k8s_name_like(value: str) -> bool:
    """A node name rather than an IP address."""
    return bool(value) and not re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", value)


async def _describe(plan: _Plan, kind: str, name: str, ns: str | None, priority: int) -> None:
    where = f"{ns}/{name}" if ns else name
    args = {"kind": kind, "name": name, **({"namespace": ns} if ns else {})}
    await plan.run(
        f"kubectl describe {kind} {where}",
        "kubectl_describe",
        args,
        priority,
        lambda: k8s.describe(plan.deps, kind, name, ns),
    )


async def _pod_evidence(
    plan: _Plan, ns: str, pod: str, container: str | None, priority: int
) -> None:
    deps = plan.deps
    obj, _ = await asyncio.gather(
        k8s.get_object(deps, "pod", pod, ns), _describe(plan, "pod", pod, ns, priority)
    )
    if obj is None:
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
    await asyncio.gather(*follow)


def _owner(obj: dict[str, Any]) -> tuple[str, str] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller", True) and ref.get("kind") and ref.get("name"):
            return ref["kind"].lower(), ref["name"]
    return None


async def _owner_evidence(plan: _Plan, ns: str, kind: str, name: str, priority: int) -> None:
    if kind == "replicaset":
        rs = await k8s.get_object(plan.deps, "replicaset", name, ns)
        parent = _owner(rs) if rs else None
        if parent is not None:
            kind, name = parent
    if kind in ("deployment", "statefulset", "daemonset", "job", "replicaset"):
        await _describe(plan, kind, name, ns, priority)


async def _workload_evidence(
    plan: _Plan, kind: str, name: str, ns: str | None, *, with_pods: bool
) -> None:
    """The workload, and — when the alert names no pod — its first unhealthy pod."""
    deps = plan.deps
    obj, _ = await asyncio.gather(
        k8s.get_object(deps, kind, name, ns), _describe(plan, kind, name, ns, 1)
    )
    if not with_pods or obj is None or kind == "persistentvolumeclaim":
        return
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = await k8s.list_objects(deps, "pod", ns, text)
    bad = sorted((p for p in pods if _unhealthy(p)), key=lambda p: p["metadata"].get("name", ""))
    if bad:
        await _pod_evidence(plan, ns or "default", bad[0]["metadata"]["name"], None, priority=2)


def fit_budget(findings: list[Finding], max_tokens: int, min_tokens: int = 60) -> list[Finding]:
    """Keep findings in priority order within ``max_tokens``, trimming the one that overflows.

    A finding that no longer fits even trimmed to ``min_tokens`` is dropped, and
    the log says so; the model can still ask for it with a tool.
    """
    kept: list[Finding] = []
    left = max_tokens
    dropped: list[str] = []
    for finding in findings:
        size = tokens.count(finding.title) + tokens.count(finding.output) + 8
        if size <= left:
            kept.append(finding)
            left -= size
            continue
        room = left - tokens.count(finding.title) - 30
        if room >= min_tokens:
            cut = finding.output[: int(len(finding.output) * room / size)]
            while cut and tokens.count(cut) > room:
                cut = cut[: int(len(cut) * 0.9)]
            cut = cut.rsplit("\n", 1)[0] if "\n" in cut else cut
            left_out = len(finding.output) - len(cut)
            note = f"\n… [trimmed to fit the prompt budget: {left_out} characters left out]"
            kept.append(_replace_output(finding, cut + note))
            left = 0
        else:
            dropped.append(finding.title)
    if dropped:
        log.info("evidence over budget: left out %s", "; ".join(dropped))
    return kept


def _replace_output(finding: Finding, output: str) -> Finding:
    return Finding(
        finding.title,
        finding.tool,
        finding.args,
        finding.status,
        output,
        finding.duration_ms,
        finding.priority,
    )


def render(findings: list[Finding]) -> str:
    """The evidence section of the first prompt."""
    if not findings:
        return "(nothing could be gathered: no backend answered)"
    blocks = []
    for f in findings:
        status = "" if f.status == "ok" else f" [{f.status}]"
        blocks.append(f"### {f.title}{status}\n{f.output.strip()}")
    return "\n\n".join(blocks)
