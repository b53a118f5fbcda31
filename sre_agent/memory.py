"""What sre-agent remembers of an alert (docs/memory.md): its *subject* (the alert and
the object it is about), its history -- how often it fired and for how long, from our
own records and from Prometheus' ``ALERTS`` series, the causes earlier analyses found
and the ones a person confirmed or corrected -- as one finding of the first prompt,
held to a small fixed share of the evidence budget.

The subject is what makes two firings "the same alert": the alertname and the labels
that identify the object (namespace, workload, node, claim, ...). A pod's name changes
with every rollout, so a pod stands for its workload: the owner the evidence walk read
(``ReplicaSet`` -> ``Deployment``), else its name without the generated suffix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sre_agent_tools import ToolDeps
from sre_agent_tools import prometheus as prom

from sre_agent import graph_roots as roots
from sre_agent import tokens
from sre_agent.graph_roots import EXPORTERS
from sre_agent.models import AlertRecord, Evidence, Feedback, Investigation

if TYPE_CHECKING:
    from sre_agent.store import Store

log = logging.getLogger(__name__)

__all__ = [
    "HISTORY_SHARE",
    "Memory",
    "alerts_selector",
    "episodes",
    "history_text",
    "subject",
    "subject_key",
]

#: The share of the evidence budget the history finding may take, at most (and at least
#: :data:`HISTORY_MIN_TOKENS`).
HISTORY_SHARE = 0.15
HISTORY_MIN_TOKENS = 120
#: Past analyses named, at most; past records read, at most.
SHOWN_ANALYSES = 3
PAST_RECORDS = 200
#: Prometheus' ``ALERTS`` is read over 30 days in steps of this many seconds (Prometheus
#: takes at most 11,000 points per series: 30 days / 240 s = 10,800).
ALERTS_STEP = 240
DAYS = (7, 30)

#: Labels that name what an alert is about (besides its workload), in this order.
OBJECT_LABELS = (
    "namespace",
    "horizontalpodautoscaler",
    "persistentvolumeclaim",
    "persistentvolume",
    "resourcequota",
    "node",
    "service",
    "ingress",
    "container",
    "mountpoint",
    "device",
)
#: Labels that name a workload; a pod (``pod``) and a Job (``job_name``) stand for theirs.
WORKLOAD_LABELS = ("deployment", "statefulset", "daemonset", "cronjob")
#: The characters Kubernetes generates names from (``rand.String``, a pod template hash).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
#: The suffix Kubernetes adds to a workload's pod and Job names: a ReplicaSet's hash and
#: the pod's (``web-7d9f8b6c5-x2x4k``), a CronJob's schedule time and the pod's
#: (``backup-28391234-x2x4k``), a DaemonSet's or Job's (``agent-x2x4k``), an ordinal
#: (``db-0``), a CronJob's Job (``backup-28391234``).
_SUFFIX = rf"-(?:{_SAFE}{{6,10}}-{_SAFE}{{5}}|\d{{5,}}-{_SAFE}{{5}}|{_SAFE}{{5}}|\d+)"
_POD_SUFFIX = re.compile(_SUFFIX + "$")


# --- the subject ---------------------------------------------------------------------
def subject(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name what the alert is about, a pod or a Job by its workload.

    From the labels alone, so a firing whose evidence walk could not read its owners (the
    API server down) has the subject of the others. An exporter's own labels (the pod,
    container and Service of node-exporter or kube-state-metrics) name nothing."""
    job = labels.get("job") or ""
    exporter = job in EXPORTERS
    own = exporter and roots.exporters_own(dict(labels))
    out = {k: labels[k] for k in OBJECT_LABELS if labels.get(k)}
    if exporter:
        out.pop("service", None)
    if own:  # the exporter's pod: its container and (node-exporter) namespace are its own
        out.pop("container", None)
        if job == "node-exporter":
            out.pop("namespace", None)
    workload = next((labels[k] for k in WORKLOAD_LABELS if labels.get(k)), None)
    if workload is None and labels.get("job_name"):
        workload = _POD_SUFFIX.sub("", labels["job_name"]) or labels["job_name"]
    if workload is None and labels.get("pod") and not own:
        workload = _POD_SUFFIX.sub("", labels["pod"]) or labels["pod"]
    if workload:
        out["workload"] = workload
    if labels.get("instance") and (job == "node-exporter" or set(out) <= {"namespace"}):
        out["instance"] = labels["instance"]  # a host: nothing else names it
    if job and not exporter and "workload" not in out:
        out["job"] = job
    return out


def subject_key(labels: Mapping[str, str]) -> str:
    """The subject as one string (JSON, keys sorted): what past firings are matched on."""
    return json.dumps(subject(labels), sort_keys=True, separators=(",", ":"))


def subject_text(subject_of: Mapping[str, str]) -> str:
    """The subject as a person reads it."""
    return ", ".join(f"{k}={v}" for k, v in subject_of.items()) or "no identifying labels"


def alerts_selector(labels: Mapping[str, str]) -> str:
    """The ``ALERTS`` selector of this alert's subject: the same alertname and identifying
    labels; a workload by the label that named it (a pod or Job by its name and a
    generated suffix)."""
    matchers = [f'alertname="{_escape(labels.get("alertname", ""))}"', 'alertstate="firing"']
    for key, value in subject(labels).items():
        if key != "workload":
            matchers.append(f'{key}="{_escape(value)}"')
            continue
        named = next((k for k in WORKLOAD_LABELS if labels.get(k) == value), None)
        if named is not None:
            matchers.append(f'{named}="{_escape(value)}"')
            continue
        label = "pod" if labels.get("pod") and "job_name" not in labels else "job_name"
        matchers.append(f'{label}=~"{_escape(re.escape(value) + "(" + _SUFFIX + ")?")}"')
    return "ALERTS{" + ", ".join(matchers) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- episodes --------------------------------------------------------------------------
@dataclass(frozen=True)
class Episode:
    start: datetime
    end: datetime

    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def episodes(stamps: Sequence[float], step: float) -> list[tuple[float, float]]:
    """Runs of one series' sample times no more than 1.5 steps apart: one firing each,
    (first, last)."""
    runs: list[tuple[float, float]] = []
    for t in sorted(set(stamps)):
        if runs and t - runs[-1][1] <= step * 1.5:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def merged(spans: Sequence[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    """Spans that overlap (or are within ``gap``) as one: firings of several pods (or
    records) of one workload at once are one episode."""
    out: list[tuple[float, float]] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


@dataclass
class PromHistory:
    """What Prometheus' ``ALERTS`` said: past firings (ended before this one began), or
    why there is no answer."""

    past: list[Episode]
    error: str | None = None
    configured: bool = True


async def prometheus_history(
    deps: ToolDeps, selector: str, starts: datetime, now: datetime
) -> PromHistory:
    """Firings of ``selector`` over the last 30 days, before the one that began at
    ``starts``: read in windows of at most SRE_AGENT_PROMQL_MAX_RANGE (the bound on how
    far back one query may read holds for ours too), at once."""
    if deps.prometheus is None:
        return PromHistory([], configured=False)
    width = max(timedelta(hours=1), deps.promql_max_range)
    edges, start = [], now - timedelta(days=DAYS[-1])
    while start < now:
        edges.append((start, min(start + width, now)))
        start += width
    answers = await asyncio.gather(
        *(prom.range_points(deps, selector, a, b, ALERTS_STEP) for a, b in edges)
    )
    values: dict[str, list[float]] = {}  # each series' sample times, across the windows
    for answer in answers:
        if isinstance(answer, str):
            return PromHistory([], error=answer)
        for series in answer:
            key = json.dumps(series.get("metric", {}), sort_keys=True)
            values.setdefault(key, []).extend(float(t) for t, _ in series.get("values", []))
    # Each series' firings (one per pod or node of the subject), without the runs that
    # reach this firing's start (this one, and others still firing beside it); then the
    # firings of several series at once as one.
    current = starts.timestamp() - ALERTS_STEP * 1.5
    runs = [
        run
        for stamps in values.values()
        for run in episodes(stamps, ALERTS_STEP)
        if run[1] < current
    ]
    return PromHistory(
        [
            Episode(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC))
            for a, b in merged(runs, ALERTS_STEP * 1.5)
        ]
    )


# --- the finding -------------------------------------------------------------------------
def history_text(
    alert: AlertRecord,
    subject_of: Mapping[str, str],
    past: Sequence[Investigation],
    prometheus: PromHistory,
    now: datetime,
    max_tokens: int,
) -> str | None:
    """The history finding's text, most telling first, within ``max_tokens``; None when
    there is no history (no earlier firing in our records nor in Prometheus)."""
    if not past and not prometheus.past:
        return None
    name = alert.labels.get("alertname", "this alert")
    lines = [f"{name} on {subject_text(subject_of)}:"]
    lines.append("- sre-agent's records: " + _records_line(past, now))
    if prometheus.past:
        lines.append("- Prometheus ALERTS: " + _episodes_line(prometheus.past, now))
    elif prometheus.error:
        lines.append(
            f"- Prometheus ALERTS: no answer ({prometheus.error[:100]}); counts from"
            " sre-agent's records only"
        )
    elif not prometheus.configured:
        lines.append("- Prometheus ALERTS: not consulted (no Prometheus configured)")
    else:
        lines.append("- Prometheus ALERTS: no earlier firing in the last 30 days")
    lines += _judged(past)
    lines += _analyses(past)
    return _fit(lines, max_tokens)


def _records_line(past: Sequence[Investigation], now: datetime) -> str:
    """Our records' firings: investigations whose alerts overlapped in time (several pods
    of one workload) are one episode."""
    if not past:
        return "no earlier investigation of it"
    spans = [
        (_when(r.alert.startsAt or r.created_at).timestamp(), _when(r.resolved_at).timestamp())
        if r.resolved_at
        else (_when(r.alert.startsAt or r.created_at).timestamp(),) * 2
        for r in past
    ]
    firings = merged(spans)
    begun = [datetime.fromtimestamp(a, UTC) for a, _ in firings]
    counts = [sum(1 for b in begun if now - b <= timedelta(days=d)) for d in DAYS]
    lasted = [
        b - a for a, b in merged([sp for sp, r in zip(spans, past, strict=True) if r.resolved_at])
    ]
    text = f"fired {counts[0]} time(s) in the last 7 days, {counts[1]} in 30 days"
    if len(past) > len(firings):
        text += f" ({len(past)} alerts investigated)"
    if lasted:
        text += (
            f"; lasted {_duration(statistics.median(lasted))} median,"
            f" {_duration(max(lasted))} longest"
        )
    unresolved = sum(1 for r in past if not r.resolved_at)
    if unresolved:
        text += f"; {unresolved} not resolved when last seen"
    if len(past) >= PAST_RECORDS:
        text += f" (the newest {PAST_RECORDS} read)"
    return text + f"; last {_day(past[0].alert.startsAt or past[0].created_at)}"


def _episodes_line(past: Sequence[Episode], now: datetime) -> str:
    counts = [sum(1 for e in past if now - e.start <= timedelta(days=d)) for d in DAYS]
    ended = [e.seconds() for e in past]
    text = f"fired {counts[0]} time(s) in the last 7 days, {counts[1]} in 30 days (before this one)"
    if ended:
        text += (
            f"; lasted {_duration(statistics.median(ended))} median,"
            f" {_duration(max(ended))} longest (4-minute steps)"
        )
    return text + f"; last began {_day(past[-1].start.isoformat())}"


def _judged(past: Sequence[Investigation]) -> list[str]:
    """What people said of earlier analyses (the latest word on each): confirmed causes
    first, then partly right, then corrected or wrong."""
    rank = {"confirmed": 0, "partial": 1, "wrong": 2}
    judged = [(rank[r.feedback[-1].verdict], r.feedback[-1]) for r in past if r.feedback]
    return ["- " + feedback_line(item) for _, item in sorted(judged, key=lambda p: p[0])]


def feedback_line(item: Feedback) -> str:
    """One person's verdict on an analysis, as the history (and the runbook) says it."""
    who = f"by {item.author} {item.created_at[:10]}"
    if item.verdict == "confirmed":
        return f"Cause confirmed ({who}): {_quote(item.cause)}"
    note = f" — note: {_quote(item.note)}" if item.note else ""
    if item.verdict == "partial":
        if item.cause:
            return f"Partly right ({who}): {_quote(item.cause)}{note}"
        said = _quote(item.analysis_cause) if item.analysis_cause else "its cause"
        return f"Partly right ({who}): the analysis said {said}{note}"
    said = (
        f"the analysis said {_quote(item.analysis_cause)}"
        if item.analysis_cause
        else "the analysis"
    )
    if item.cause:
        return f"Corrected ({who}): {said}; the cause was {_quote(item.cause)}"
    return f"Judged wrong ({who}): {said} was wrong{note}"


def _analyses(past: Sequence[Investigation]) -> list[str]:
    lines = []
    for record in past:
        if record.analysis is None or not record.analysis.root_causes or record.feedback:
            continue
        cause = record.analysis.root_causes[0]
        lines.append(
            f"- Analysis of {record.created_at[:10]} (not confirmed):"
            f" {_quote(cause.cause)} ({cause.confidence})"
        )
        if len(lines) >= SHOWN_ANALYSES:
            break
    return lines


def _fit(lines: list[str], max_tokens: int) -> str:
    """The lines in order while they fit, then a line saying how many did not (its room
    kept: the whole stays within ``max_tokens``)."""
    kept: list[str] = []
    used = 0
    for n, line in enumerate(lines):
        size = tokens.count(line) + 1
        room = max_tokens - (0 if n == len(lines) - 1 else _NOTE_TOKENS)
        if used + size > room:
            if len(kept) < len(lines):
                kept.append(
                    f"- ({len(lines) - len(kept)} more line(s) left out: the history's budget)"
                )
            break
        kept.append(line)
        used += size
    return "\n".join(kept)


_NOTE_TOKENS = 20


def _quote(text: str | None, limit: int = 240) -> str:
    text = " ".join((text or "").split())
    return f'"{text[:limit]}{"…" if len(text) > limit else ""}"'


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d"


def _day(iso: str) -> str:
    return _when(iso).strftime("%Y-%m-%d %H:%M UTC")


def _when(iso: str | None) -> datetime:
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Memory:
    """The history finding of one investigation, from the store and Prometheus."""

    async def _prometheus(self, selector: str, starts: datetime, now: datetime) -> PromHistory:
        bound = self.deps.timeout + 1.0  # the HTTP timeout, and a margin for its thread
        try:
            async with asyncio.timeout(bound):
                return await prometheus_history(self.deps, selector, starts, now)
        except TimeoutError:
            return PromHistory([], error=f"no answer within {bound:g} s")

    def __init__(self, store: Store, deps: ToolDeps, budget_tokens: int) -> None:
        self.store, self.deps = store, deps
        self.max_tokens = max(HISTORY_MIN_TOKENS, int(budget_tokens * HISTORY_SHARE))

    async def history(self, record: Investigation, now: datetime | None = None) -> Evidence | None:
        """The finding (tool ``history``), or None when the alert has no history. Our
        records always count: Prometheus gets its own bound (a slow one costs its part)."""
        now = now or datetime.now(UTC)
        alert = record.alert
        about = subject(alert.labels)
        key = subject_key(alert.labels)
        since = (now - timedelta(days=DAYS[-1])).isoformat(timespec="milliseconds")
        past, from_prometheus = await asyncio.gather(
            asyncio.to_thread(
                self.store.past_firings, record.alertname, key, since, record.id, PAST_RECORDS
            ),
            self._prometheus(alerts_selector(alert.labels), _when(alert.startsAt), now),
        )
        title = f"History of this alert on {subject_text(about)} (last 30 days)"
        room = self.max_tokens - tokens.count(title) - 8  # as fit_budget counts a finding
        text = history_text(alert, about, past, from_prometheus, now, room)
        if text is None:
            return None
        args: dict[str, Any] = {"alertname": record.alertname, "subject": key}
        return Evidence(
            title=title,
            tool="history",
            args=args,
            status="ok",
            output=text,
            priority=-1,  # first: its share is fixed, the rest of the budget is the walk's
        )
