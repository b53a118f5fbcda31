"""Text rendering of Kubernetes objects (plain JSON dicts) for the ``kubernetes`` tools.

Kept apart from the API calls so the shapes an engineer reads (``kubectl
describe``-like lines) can change without touching error handling. Nothing
here does I/O; env values pass through :func:`redact_value`, and values that
come from a Secret or ConfigMap are named, never resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes.utils import parse_quantity

from sre_agent_tools.redact import redact_value

Obj = dict[str, Any]

#: Binary units, largest first, for printing byte counts the way Kubernetes writes them.
_BINARY_UNITS = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """`` (3h12m ago)`` for an RFC 3339 time, or "" when unknown or in the future."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return ""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d{hours}h"
    elif hours:
        text = f"{hours}h{minutes}m"
    elif minutes:
        text = f"{minutes}m{secs}s"
    else:
        text = f"{secs}s"
    return f" ({text} ago)"


def quantity(value: object) -> float:
    """A Kubernetes quantity as a number, read by the client's own ``parse_quantity``
    (``250m`` -> 0.25, ``128Mi`` -> 134217728, ``1e3``, ``2k``); 0 for anything unparseable."""
    try:
        return float(parse_quantity(str(value).strip()))
    except (ValueError, TypeError, ArithmeticError):
        return 0.0


def fmt_cpu(cores: float) -> str:
    return f"{cores:g}" if cores == int(cores) else f"{round(cores * 1000)}m"


def fmt_bytes(value: float) -> str:
    for unit, size in _BINARY_UNITS:
        if value >= size:
            return f"{value / size:.4g}{unit}"
    return f"{value:.0f}"


def labels_text(labels: dict[str, str], limit: int = 6, sep: str = ", ") -> str:
    """``a=b, c=d`` for at most ``limit`` labels (a label selector when sep is ",")."""
    items = [f"{k}={v}" for k, v in sorted(labels.items())]
    more = [f"(+{len(items) - limit} more)"] if len(items) > limit else []
    return sep.join(items[:limit] + more)


def short(text: str | None, limit: int = 240) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def render_conditions(conditions: list[Obj], message_limit: int = 240) -> list[str]:
    if not conditions:
        return []
    lines = ["Conditions:"]
    for c in conditions:
        why = ": ".join(x for x in (c.get("reason"), short(c.get("message"), message_limit)) if x)
        since = c.get("lastTransitionTime")
        lines.append(
            f"  {c.get('type')}={c.get('status')}{' ' + why if why else ''}"
            f"{' (since ' + since + ')' if since else ''}"
        )
    return lines


def _resources(container: Obj) -> str:
    res = container.get("resources") or {}
    parts = [
        f"{part} " + ", ".join(f"{k}={v}" for k, v in sorted(res[part].items()))
        for part in ("requests", "limits")
        if res.get(part)
    ]
    return "; ".join(parts) or "no requests/limits"


def _env_lines(container: Obj) -> list[str]:
    lines: list[str] = []
    for env in container.get("env") or []:
        name, source = env.get("name", "?"), env.get("valueFrom") or {}
        if "value" in env:
            lines.append(f"{name}={redact_value(name, str(env['value']))}")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            lines.append(f"{name}=<from secret {ref.get('name')} key {ref.get('key')}>")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            lines.append(f"{name}=<from configmap {ref.get('name')} key {ref.get('key')}>")
        elif "fieldRef" in source:
            lines.append(f"{name}=<field {source['fieldRef'].get('fieldPath')}>")
        elif "resourceFieldRef" in source:
            lines.append(f"{name}=<resource {source['resourceFieldRef'].get('resource')}>")
        else:
            lines.append(f"{name}=<from {', '.join(source) or 'empty'}>")
    for ref in container.get("envFrom") or []:
        for key, label in (("secretRef", "secret"), ("configMapRef", "configmap")):
            if key in ref:
                lines.append(f"<all keys from {label} {ref[key].get('name')}>")
    return lines


def render_containers(pod_spec: Obj) -> list[str]:
    """Image, resources and env of each container in a pod template."""
    lines: list[str] = []
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        if pod_spec.get(key):
            lines.append(f"{title}:")
        for c in pod_spec.get(key) or []:
            lines.append(f"  {c.get('name')}: image {c.get('image')}; {_resources(c)}")
            lines += [f"    {e}" for e in _env_lines(c)]
    return lines


def _state(state: Obj | None) -> str:
    state = state or {}
    if "running" in state:
        started = state["running"].get("startedAt")
        return f"Running (since {started}{age(started)})" if started else "Running"
    if "waiting" in state:
        w = state["waiting"]
        why = f": {short(w['message'])}" if w.get("message") else ""
        return f"Waiting ({w.get('reason', '?')}{why})"
    if "terminated" in state:
        t = state["terminated"]
        finished = t.get("finishedAt")
        return (
            f"Terminated (reason {t.get('reason', '?')}, exit code {t.get('exitCode')}"
            f"{', signal ' + str(t['signal']) if t.get('signal') else ''}"
            f"{', finished ' + finished + age(finished) if finished else ''}"
            f"{': ' + short(t['message']) if t.get('message') else ''})"
        )
    return "unknown"


def render_pod(pod: Obj) -> list[str]:
    """The body of a pod description (after its name, labels and owner)."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "?")
    if status.get("reason"):
        phase += f" ({status['reason']}: {short(status.get('message'))})"
    lines = [
        f"Node: {spec.get('nodeName', '<none>')}  Status: {phase}"
        f"  QoS: {status.get('qosClass', '?')}  IP: {status.get('podIP', '-')}"
    ]
    if status.get("startTime"):
        lines.append(f"Start Time: {status['startTime']}{age(status['startTime'])}")
    lines += render_conditions(status.get("conditions") or [])
    statuses = {
        s["name"]: s
        for s in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
    }
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        if spec.get(key):
            lines.append(f"{title}:")
        for c in spec.get(key) or []:
            st = statuses.get(c["name"], {})
            lines.append(f"  {c['name']}:")
            lines.append(f"    Image: {c.get('image')}")
            lines.append(f"    State: {_state(st.get('state'))}")
            if st.get("lastState"):
                lines.append(f"    Last State: {_state(st['lastState'])}")
            lines.append(
                f"    Ready: {st.get('ready', False)}  Restart Count: {st.get('restartCount', 0)}"
            )
            lines.append(f"    Resources: {_resources(c)}")
            env = _env_lines(c)
            if env:
                lines.append("    Env:")
                lines += [f"      {e}" for e in env]
    return lines


def render_events(events: list[Obj], total: int, with_object: bool = False) -> list[str]:
    """Event lines, newest last, after a header counting Warning vs Normal."""
    if not events:
        return ["Events: none recent (events expire after about an hour)"]
    warnings = sum(1 for e in events if e.get("type") == "Warning")
    shown = f"newest {len(events)} of {total}" if total > len(events) else f"{total}"
    lines = [f"Events ({shown}, newest last; {warnings} Warning, {len(events) - warnings} Normal):"]
    for e in events:
        when = e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
        count = e.get("count") or (e.get("series") or {}).get("count") or 1
        obj = e.get("involvedObject") or e.get("regarding") or {}
        target = f" {obj.get('kind')}/{obj.get('name')}" if with_object else ""
        lines.append(
            f"  {e.get('type', '?'):<7} {e.get('reason', '?')}{target} "
            f"x{count} last {when}{age(when)}: {short(e.get('message'), 500)}"
        )
    return lines


# -- whole objects ----------------------------------------------------------------


def header(obj: Obj, created: bool = True) -> list[str]:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    lines = [f"{obj.get('kind', '')} {where}"]
    if meta.get("labels"):
        lines.append(f"Labels: {labels_text(meta['labels'])}")
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append("Controlled By: " + ", ".join(f"{o['kind']}/{o['name']}" for o in owners))
    if created and meta.get("creationTimestamp"):
        lines.append(f"Created: {meta['creationTimestamp']}{age(meta['creationTimestamp'])}")
    if meta.get("deletionTimestamp"):  # stuck deleting: what holds it is the point
        held = ", ".join(str(f) for f in meta.get("finalizers") or []) or "none"
        when = meta["deletionTimestamp"]
        lines.append(f"Terminating: deletion requested {when}{age(when)}; finalizers: {held}")
    return lines


def pct(part: float, whole: float) -> str:
    return f" ({part / whole:.0%})" if whole else ""


def pod_request(pod: Obj, part: str, resource: str, parse: Callable[[str], float]) -> float:
    """A pod's effective request/limit: sum over containers, or the largest init container."""
    spec = pod.get("spec") or {}

    def value(c: Obj) -> float:
        return parse(str(((c.get("resources") or {}).get(part) or {}).get(resource, "0")))

    main = sum(value(c) for c in spec.get("containers") or [])
    return max([main, *(value(c) for c in spec.get("initContainers") or [])])


def keep_tail(title: str, text: str, limit: int) -> str:
    """Drop the oldest lines first: the end of a log is where a crash explains itself."""
    lines = [ln if len(ln) <= 1000 else ln[:1000] + " …" for ln in text.split("\n")]
    budget, kept = limit - len(title) - 80, list[str]()
    for line in reversed(lines):
        budget -= len(line) + 1
        if budget < 0 and kept:
            break
        kept.append(line)
    kept.reverse()
    dropped = len(lines) - len(kept)
    note = [f"[… {dropped} earlier lines omitted]"] if dropped else []
    return "\n".join([title, *note, *kept])
