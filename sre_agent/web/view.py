"""What the templates show, worked out in Python: ages, durations, one-line summaries, the
links a record may carry, each root cause with the findings it cites, and how people's
verdicts read ("Seen before", "Feedback").

The record's texts were redacted where they entered and are escaped by the templates
(autoescape); here nothing is marked safe. A URL from outside (an annotation, the alert's
generatorURL) becomes a link only when it is http(s) with a host: a ``javascript:`` or
``data:`` URL in an annotation stays text (:func:`safe_url`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sre_agent import sources as src
from sre_agent.models import (
    Evidence,
    Incident,
    IncidentAlert,
    Investigation,
    RootCause,
    SimilarRef,
)
from sre_agent.report import MAX_CITED, telling_lines

#: Characters of the one-line summary in the list.
SUMMARY_CHARS = 160
#: Annotations shown as links (when they are web URLs), and their names on the page.
LINK_ANNOTATIONS = {
    "runbook_url": "Runbook",
    "runbook": "Runbook",
    "dashboard_url": "Dashboard",
    "dashboard": "Dashboard",
}
#: A verdict as the pages name it: the feedback form's buttons say the same.
VERDICTS = {"confirmed": "Cause confirmed", "partial": "Partly right", "wrong": "Wrong"}


def safe_url(url: object) -> str | None:
    """``url`` when a browser may follow it (http or https, with a host), else None."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    if any(ord(c) < 32 or c.isspace() for c in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return text


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago: ``12 s``, ``5 min``, ``3 h``, ``2 d`` (``?`` when unknown)."""
    moment = parse_time(value)
    if moment is None:
        return "?"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def one_line(record: Investigation) -> str:
    """The line the list shows: the analysis' summary, else why there is none."""
    text = (
        (record.analysis.summary if record.analysis else None)
        or record.status_reason
        or record.alert.annotations.get("summary")
        or ""
    )
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def args_text(args: dict[str, Any]) -> str:
    """A tool call's arguments, compact and in order."""
    shown = {k: v for k, v in args.items() if v not in (None, "")}
    return json.dumps(shown, ensure_ascii=False, default=str, sort_keys=True)


@dataclass
class Finding:
    """One cited finding beside its claim: the lines that tell, and how to ask again."""

    item: Evidence
    lines: list[str]
    command: str | None
    graph: str | None


@dataclass
class Cause:
    cause: RootCause
    findings: list[Finding] = field(default_factory=list)
    #: Cited ids beyond those shown, or never gathered (old records).
    more: list[str] = field(default_factory=list)


@dataclass
class Link:
    label: str
    text: str
    href: str | None


def graph_base(record: Investigation) -> str | None:
    """The Prometheus UI this run's graph links go to (checked again: it is stored)."""
    backends = record.sources.backends if record.sources is not None else {}
    prometheus = backends.get("prometheus")
    return safe_url(prometheus.graph_base) if prometheus is not None else None


def graph_link(base: str | None, query: str) -> str | None:
    return safe_url(src.graph_url(base, query)) if base else None


def finding(item: Evidence, cause: RootCause | None, base: str | None) -> Finding:
    command = src.rerun_command(item.tool, item.args)
    graph = graph_link(base, command) if command and item.tool.startswith("promql") else None
    return Finding(
        item, telling_lines(item.output, cause.evidence if cause else []), command, graph
    )


def causes(record: Investigation) -> list[Cause]:
    """Each root cause with the findings it cites (as many as the report shows)."""
    if record.analysis is None:
        return []
    by_id = {item.id: item for item in record.evidence if item.id}
    base = graph_base(record)
    shown = []
    for cause in record.analysis.root_causes:
        cited = [by_id[i] for i in cause.evidence_ids if i in by_id]
        entry = Cause(cause, [finding(item, cause, base) for item in cited[:MAX_CITED]])
        entry.more = [item.id for item in cited[MAX_CITED:]]
        entry.more += [i for i in cause.evidence_ids if i not in by_id]
        shown.append(entry)
    return shown


def follow_ups(record: Investigation) -> list[Link]:
    """The follow-up queries (with their graph link) and commands."""
    if record.analysis is None:
        return []
    base = graph_base(record)
    queries = [Link("PromQL", q, graph_link(base, q)) for q in record.analysis.follow_up_queries]
    return queries + [Link("command", c, None) for c in record.analysis.follow_up_commands]


def alert_links(record: Investigation) -> list[Link]:
    """The alert's links: its source (generatorURL) and the URL annotations."""
    found = []
    if record.alert.generatorURL:
        url = record.alert.generatorURL
        found.append(Link("Alert source", url, safe_url(url)))
    for name, label in LINK_ANNOTATIONS.items():
        value = record.alert.annotations.get(name)
        if value:
            found.append(Link(label, value, safe_url(value)))
    return found


def source_gaps(record: Investigation) -> str | None:
    """The sources warning in a few words (the page opens with it; the whole sentence,
    with each failure's cause, is one click away): which backends are missing."""
    if src.warning(record.sources) is None or record.sources is None:
        return None
    backends = record.sources.backends
    kube = backends.get("kubernetes")
    gaps = []
    for key, entry in backends.items():
        if key == "logs" and kube is not None and entry.state == kube.state:
            continue  # as the warning says it: once, under Kubernetes
        if entry.state == src.FAILED:
            gaps.append(f"{entry.name} did not answer")
        elif entry.state == src.NOT_CONFIGURED:
            gaps.append(f"{entry.name} not configured")
    if not any(e.state == src.ANSWERED for e in backends.values()):
        return "⚠ " + (", ".join(gaps) or "No source consulted") + ": the alert's text alone"
    return "⚠ Partial evidence: " + ", ".join(gaps)


def active_since(record: Investigation) -> str:
    """When an active record entered its state: a running one when it was claimed, a
    queued one when it was received (the page says "running for 12 s")."""
    if record.status == "running" and record.started_at:
        return record.started_at
    return record.created_at


def member(incident: Incident | None, ident: str | None) -> IncidentAlert | None:
    """The alert ``ident`` as its incident lists it (None when it is not there)."""
    if incident is None or ident is None:
        return None
    return next((a for a in incident.alerts if a.investigation_id == ident), None)


def member_role(incident: Incident | None, ident: str) -> str | None:
    found = member(incident, ident)
    return found.role if found is not None else None


def verdict_label(verdict: str | None) -> str:
    return VERDICTS.get(verdict or "", verdict or "")


def standing(ref: SimilarRef) -> str:
    """How a cause "Seen before" shows stands: a person confirmed it, gave it or partly
    agreed with it, or it is only what that analysis said."""
    if ref.verdict == "confirmed":
        return "✓ Confirmed cause"
    if ref.verdict == "partial":
        return "Cause (partly right)"
    if ref.verdict == "wrong":
        return "Cause a person gave (the analysis was wrong)"
    return "The analysis' cause (nobody judged it)"


def first_cause(record: Investigation) -> str | None:
    """The cause "Cause confirmed" confirms: the analysis' first root cause."""
    if record.analysis is None or not record.analysis.root_causes:
        return None
    return record.analysis.root_causes[0].cause


def register(env: Any) -> None:
    """The filters the templates use."""
    env.filters["age"] = age
    env.filters["duration"] = duration
    env.filters["one_line"] = one_line
    env.filters["args_text"] = args_text
    env.filters["safe_url"] = safe_url
    env.filters["verdict_label"] = verdict_label
    env.filters["standing"] = standing
