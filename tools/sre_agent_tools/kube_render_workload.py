"""Rendering of workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, HPA).

The shapes follow ``kubectl describe``: replica counts in kubectl's order,
conditions, then the pod template's containers (env values redacted, secret
references named, never resolved). Nothing here does I/O.
"""

from __future__ import annotations

from sre_agent_tools.kube_render import (
    Obj,
    age,
    header,
    labels_text,
    render_conditions,
    render_containers,
)

#: status field -> label, per workload kind, in the order kubectl prints them.
_WORKLOAD_STATUS: dict[str, tuple[tuple[str, str], ...]] = {
    "Deployment": (
        ("updatedReplicas", "updated"),
        ("readyReplicas", "ready"),
        ("availableReplicas", "available"),
        ("unavailableReplicas", "unavailable"),
        ("replicas", "total"),
    ),
    "StatefulSet": (
        ("currentReplicas", "current"),
        ("updatedReplicas", "updated"),
        ("readyReplicas", "ready"),
        ("availableReplicas", "available"),
    ),
    "ReplicaSet": (
        ("replicas", "current"),
        ("readyReplicas", "ready"),
        ("availableReplicas", "available"),
    ),
    "DaemonSet": (
        ("desiredNumberScheduled", "desired"),
        ("currentNumberScheduled", "current"),
        ("updatedNumberScheduled", "updated"),
        ("numberReady", "ready"),
        ("numberAvailable", "available"),
        ("numberUnavailable", "unavailable"),
        ("numberMisscheduled", "misscheduled"),
    ),
}


def render_workload(obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    revision = (obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    if revision:
        lines.append(f"Revision: {revision}")
    counts = [f"{status.get(f, 0)} {label}" for f, label in _WORKLOAD_STATUS.get(obj["kind"], ())]
    desired = f"{spec['replicas']} desired | " if "replicas" in spec else ""
    lines.append(f"Replicas: {desired}{' | '.join(counts)}")
    strategy = spec.get("strategy") or spec.get("updateStrategy")
    if strategy:
        rolling = ", ".join(
            f"{k} {v}" for k, v in sorted((strategy.get("rollingUpdate") or {}).items())
        )
        lines.append(f"Strategy: {strategy.get('type', '?')}{f' ({rolling})' if rolling else ''}")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    lines.append(f"Selector: {labels_text(selector, limit=20)}")
    lines += render_conditions(status.get("conditions") or [])
    lines += render_containers((spec.get("template") or {}).get("spec") or {})
    return lines


def render_job(obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    lines.append(
        f"Completions: {spec.get('completions', 1)}  Parallelism: "
        f"{spec.get('parallelism', 1)}  Backoff Limit: {spec.get('backoffLimit', 6)}"
    )
    lines.append(
        f"Pods: {status.get('active', 0)} active | {status.get('succeeded', 0)} "
        f"succeeded | {status.get('failed', 0)} failed"
    )
    for key in ("startTime", "completionTime"):
        if status.get(key):
            lines.append(f"{key}: {status[key]}{age(status[key])}")
    lines += render_conditions(status.get("conditions") or [])
    lines += render_containers((spec.get("template") or {}).get("spec") or {})
    return lines


def _metric_value(value: Obj) -> str:
    if "averageUtilization" in value:
        return f"{value['averageUtilization']}%"
    return str(value.get("averageValue") or value.get("value") or "?")


def _metric_name(metric: Obj) -> str:
    kind = metric.get("type", "?")
    body = metric.get(kind[:1].lower() + kind[1:]) or {}
    name = body.get("name") or (body.get("metric") or {}).get("name") or "?"
    return f"{kind.lower()} {name}"


def render_hpa(obj: Obj) -> list[str]:
    """Replicas against their bounds, each metric's current value against its target."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    target = spec.get("scaleTargetRef") or {}
    lines.append(f"Scale target: {target.get('kind', '?')}/{target.get('name', '?')}")
    lines.append(
        f"Replicas: {status.get('currentReplicas', '?')} current | "
        f"{status.get('desiredReplicas', '?')} desired | min {spec.get('minReplicas', 1)} | "
        f"max {spec.get('maxReplicas', '?')}"
    )
    current = {_metric_name(m): m for m in status.get("currentMetrics") or []}
    for metric in spec.get("metrics") or []:
        name = _metric_name(metric)
        kind = metric.get("type", "?")
        want = (metric.get(kind[:1].lower() + kind[1:]) or {}).get("target") or {}
        now = current.get(name, {})
        got = (now.get(kind[:1].lower() + kind[1:]) or {}).get("current") or {}
        lines.append(
            f"Metric {name}: current {_metric_value(got) if got else '?'} / target {_metric_value(want)}"
        )
    lines += render_conditions(status.get("conditions") or [])
    return lines


def render_cronjob(obj: Obj) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = header(obj)
    lines.append(
        f"Schedule: {spec.get('schedule')}  Suspend: {spec.get('suspend', False)}  "
        f"Concurrency: {spec.get('concurrencyPolicy', 'Allow')}"
    )
    for key in ("lastScheduleTime", "lastSuccessfulTime"):
        if status.get(key):
            lines.append(f"{key}: {status[key]}{age(status[key])}")
    active = [a.get("name", "?") for a in status.get("active") or []]
    lines.append(f"Active Jobs: {', '.join(active) or 'none'}")
    template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    lines += render_containers(template.get("spec") or {})
    return lines
