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

_POD_LABEL = re.compile(r'\bpod="([^"]+)"')

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
    if labels.get("job") == "node-exporter":  # there `pod` is the exporter, not the subject
        pod = container = None
    plan = _Plan(deps)
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
    return sorted(plan.findings, key=lambda f: f.priority)


def other_events(text: str, described: set[str], limit: int = 10) -> str:
    """Namespace events minus those of objects already described; empty if none remain."""
    lines = text.splitlines()
    rows = [line for line in lines[1:] if not any(f"/{name} " in line for name in described)]
    if not rows:
        return ""
    return "\n".join([f"Events of other objects ({len(rows[-limit:])} newest):", *rows[-limit:]])


async def _related_query(plan: _Plan, query: str) -> None:
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


async def _describe(
    plan: _Plan,
    kind: str,
    name: str,
    ns: str | None,
    priority: int,
    obj: dict[str, Any] | None = None,
) -> None:
    """Describe an object; ``obj`` when it was already read (no second GET)."""
    where = f"{ns}/{name}" if ns else name
    args = {"kind": kind, "name": name, **({"namespace": ns} if ns else {})}
    await plan.run(
        f"kubectl describe {kind} {where}",
        "kubectl_describe",
        args,
        priority,
        lambda: (
            k8s.describe_object(plan.deps, kind, obj)
            if obj is not None
            else k8s.describe(plan.deps, kind, name, ns)
        ),
    )


async def _pod_evidence(
    plan: _Plan, ns: str, pod: str, container: str | None, priority: int
) -> None:
    deps = plan.deps
    obj = await k8s.get_object(deps, "pod", pod, ns)
    await _describe(plan, "pod", pod, ns, priority, obj)  # without obj: says why it is missing
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
    if (obj.get("status") or {}).get("phase") == "Pending":
        follow.append(_unbound_claims(plan, ns, obj, priority + 1))
    await asyncio.gather(*follow)


async def _unbound_claims(plan: _Plan, ns: str, pod: dict[str, Any], priority: int) -> None:
    """A pending pod's volume claims that are not bound are often why it is pending."""
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]
    for claim in claims[:3]:
        obj = await k8s.get_object(plan.deps, "persistentvolumeclaim", claim, ns)
        if obj is not None and (obj.get("status") or {}).get("phase") != "Bound":
            await _describe(plan, "persistentvolumeclaim", claim, ns, priority, obj)


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
    obj = await k8s.get_object(deps, kind, name, ns)
    await _describe(plan, kind, name, ns, 1, obj)
    if not with_pods or obj is None or kind in ("persistentvolumeclaim", "horizontalpodautoscaler"):
        return
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if kind == "job":  # the Job controller labels its pods with the job's name
        selector = {"batch.kubernetes.io/job-name": name}
    if not selector:
        return
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = await k8s.list_objects(deps, "pod", ns, text)
    if not pods and kind == "job":  # clusters before Kubernetes 1.27
        pods = await k8s.list_objects(deps, "pod", ns, f"job-name={name}")
    bad = sorted((p for p in pods if _unhealthy(p)), key=lambda p: p["metadata"].get("name", ""))
    if bad:
        await _pod_evidence(plan, ns or "default", bad[0]["metadata"]["name"], None, priority=2)


async def _target_down_evidence(plan: _Plan, labels: dict[str, str]) -> None:
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
