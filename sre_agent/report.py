"""The markdown report a person reads (the API's ``?format=markdown``, ``?wait=true``,
``sre-agent show`` and ``investigate``), rendered from the :class:`Investigation` when it
is asked for: the one markdown presenter. Its texts were redacted where they entered;
here they are only made inert markdown (:func:`_md`).

It says first what it rests on (:func:`sre_agent.sources.warning`), then the alert
in full, the analysis with each cited finding beside its claim and the way to run it
again, the Sources, and what the run cost. Old records, from before evidence ids and
sources, render too: what they lack is said, not invented.
"""

from __future__ import annotations

import re

from sre_agent import sources as src
from sre_agent.models import (
    Analysis,
    Evidence,
    Incident,
    Investigation,
    LlmUsage,
    RootCause,
    Sources,
)

#: Lines of a cited finding's output shown beside its claim.
SHOWN_LINES = 4
_LINE_CHARS = 240
_TELLING = re.compile(
    r"error|fail|fatal|panic|oom|killed|back-?off|refused|denied|timeout|timed out|"
    r"not found|insufficient|unhealthy|evicted|=>",
    re.IGNORECASE,
)
_ID_PREFIX = re.compile(r"^\s*[\[(]\s*E\d+(?:[,;/\s]+E\d+)*\s*[\])]\s*[:\-—]?", re.IGNORECASE)
#: Bounds on what a (hostile) answer makes the report do: cited findings shown per
#: root cause, quotes matched, output lines searched, characters of a quote.
MAX_CITED, MAX_QUOTES, MAX_ROWS, QUOTE_CHARS = 6, 20, 2000, 400


def render(investigation: Investigation, incident: Incident | None = None) -> str:
    """The report of an investigation as it stands now (e.g. resolved since); with its
    ``incident``, that incident named by its title and the head that explains it by
    its alert (else both by id)."""
    inv = investigation
    alert, analysis, evidence = inv.alert, inv.analysis, inv.evidence
    status, reason = inv.status, inv.status_reason
    labels, annotations = alert.labels, alert.annotations
    title = f"{labels.get('alertname', 'alert')} ({labels.get('severity', 'none')})"
    lines = [f"# {_md(title)}", ""]
    warning = src.warning(inv.sources)
    if analysis is None:  # no analysis: the first line says so, and why
        lines += [f"**{_md(_no_analysis(inv))}**", ""]
        if warning:
            warning = warning.replace("this analysis rests on", "this report rests on")
    if warning:
        lines += [f"**{_md(warning)}**", ""]
    where = _md(
        ", ".join(f"{k}={v}" for k, v in labels.items() if k not in ("alertname", "severity"))
    )
    if where:
        lines.append(f"**Labels:** {where}  ")
    lines.append(f"**Started:** {_md(alert.startsAt or '?')}  ")
    if inv.resolved_at:
        lines.append(f"**Resolved:** {_md(inv.resolved_at)}  ")
    lines.append(
        f"**Investigation status:** {_md(status)}" + (f" — {_md(reason)}" if reason else "")
    )
    lines += _incident(inv, incident)
    summary, description = annotations.get("summary"), annotations.get("description")
    if summary:
        lines += ["", f"> {_md(summary)}"]
    if description and description != summary:
        lines += ["", f"> {_md(description)}"]
    if alert.generatorURL:
        lines += ["", f"Alert source: {_md(alert.generatorURL)}"]
    if annotations.get("runbook_url"):
        lines += ["", f"Runbook: {_md(annotations['runbook_url'])}"]
    if analysis is not None:
        lines += _analysis(analysis, evidence, inv.sources)
    elif inv.raw_text:
        text = inv.raw_text.strip()  # the model's, as it wrote it: never the report's markdown
        fence = _fence([text])
        lines += ["", "## Model output (not structured)", fence, text, fence]
    if evidence and analysis is None:
        lines += ["", "## Evidence gathered"]
        for item in evidence:
            output = item.output.strip()
            fence = _fence([output])
            note = "" if item.status == "ok" else f" [{item.status}]"
            if not item.in_prompt:
                note += " (not in the prompt: over the budget)"
            lines += ["", f"### {_label(item)}{note}", fence, output, fence]
    lines += _history(inv)
    lines += _feedback(inv)
    lines += _seen_before(inv)
    lines += _sources(inv.sources)
    lines += _run(inv.llm_usage, inv.duration_s)
    return "\n".join(lines).rstrip() + "\n"


def _no_analysis(inv: Investigation) -> str:
    """The first line of a report without analysis: what it is, and why."""
    if inv.status == "linked":
        return "No model run of its own: its incident's head's analysis explains it"
    if not inv.final and inv.evidence_at:
        return "Evidence report; the model's analysis is pending"
    reason = inv.status_reason
    return f"⚠ No analysis from the model ({inv.status}" + (f": {reason})" if reason else ")")


def _incident(inv: Investigation, incident: Incident | None) -> list[str]:
    """Its incident, why it joined, and for a ``linked`` one the head that explains it."""
    if inv.incident_id is None:
        return []
    if incident is None or incident.id != inv.incident_id:
        incident = None
    names = {a.investigation_id: a.alertname for a in incident.alerts} if incident else {}
    named = f"{incident.title} ({inv.incident_id})" if incident and incident.title else None
    lines = [f"**Incident:** {_md(named or inv.incident_id)}"]
    if inv.joined:
        lines.append(f"**Joined:** {_md('; '.join(j.reason for j in inv.joined))}")
    if inv.explained_by:
        head = names.get(inv.explained_by)
        by = f"{head} ({inv.explained_by})" if head else inv.explained_by
        lines.append(f"**{_md(inv.status.capitalize())}:** explained by {_md(by)}")
    return ["", *(line + "  " for line in lines[:-1]), lines[-1]]


def _analysis(analysis: Analysis, evidence: list[Evidence], sources: Sources | None) -> list[str]:
    lines = ["", "## Summary", _md(analysis.summary)]
    by_id = {i.id: i for i in evidence if i.id}
    prometheus = sources.backends.get("prometheus") if sources is not None else None
    base = prometheus.graph_base if prometheus is not None else None
    if analysis.root_causes:
        lines += ["", "## Likely root cause"]
        for n, cause in enumerate(analysis.root_causes, 1):
            confidence: str = cause.confidence
            if cause.lowered_from:
                confidence += (
                    f", lowered from {cause.lowered_from}: it cites no finding that answered"
                )
            lines.append(f"{n}. **{_md(cause.cause)}** (confidence: {confidence})")
            lines += [f"   - {_md(ev)}" for ev in cause.evidence]
            cited = [by_id[i] for i in cause.evidence_ids if i in by_id]
            if cited:
                lines.append("   - *Cited evidence:*")
            for item in cited[:MAX_CITED]:
                lines += cited_finding(item, cause, base)
            if len(cited) > MAX_CITED:
                rest = ", ".join(i.id for i in cited[MAX_CITED:])
                lines.append(f"   - … and {rest} (in the record's evidence)")
    if analysis.impact:
        lines += ["", "## Impact", _md(analysis.impact)]
    if analysis.mitigation:
        lines += ["", "## Mitigation"]
        lines += [f"{i}. {_md(m)}" for i, m in enumerate(analysis.mitigation, 1)]
    if analysis.follow_up_queries or analysis.follow_up_commands:
        lines += ["", "## Follow-up"]
        lines += [f"- {_code(q)}" for q in analysis.follow_up_queries]
        lines += [f"- {_code(c)}" for c in analysis.follow_up_commands]
    return lines


def cited_finding(
    item: Evidence, cause: RootCause | None = None, graph_base: str | None = None
) -> list[str]:
    """One cited finding beside its claim: id, title, the telling lines, how to re-run it."""
    head = f"   - **{_label(item)}**" + ("" if item.status == "ok" else f" [{item.status}]")
    lines = [head]
    shown = telling_lines(item.output, cause.evidence if cause else [])
    if shown:
        fence = _fence(shown)
        lines += [f"     {fence}", *(f"     {line}" for line in shown), f"     {fence}"]
    command = src.rerun_command(item.tool, item.args)
    if command:
        rerun = f"     Re-run: {_code(command)}"
        if graph_base and item.tool.startswith("promql"):
            rerun += f" — [Prometheus graph]({src.graph_url(graph_base, command)})"
        lines.append(rerun)
    return lines


def telling_lines(output: str, quotes: list[str]) -> list[str]:
    """The lines of ``output`` the model quoted, else those that name a failure, else
    the first ones: at most :data:`SHOWN_LINES`, each cut short."""
    rows = [line.rstrip() for line in output.splitlines()[:MAX_ROWS] if line.strip()]
    rows = [r for r in rows if not r.startswith("status: ")]
    wanted = [_squash(_ID_PREFIX.sub("", q[:QUOTE_CHARS])) for q in quotes[:MAX_QUOTES]]
    wanted = [w for w in wanted if len(w) >= 8]
    quoted = [r for r in rows if any(w in _squash(r) or _squash(r) in w for w in wanted)]
    quoted = [r for r in quoted if len(_squash(r)) >= 8]
    chosen = quoted or [r for r in rows if _TELLING.search(r)] or rows
    return [_cut(r) for r in chosen[:SHOWN_LINES]]


def _history(inv: Investigation) -> list[str]:
    """The alert's history as the model read it (earlier firings, confirmed causes, and
    which of our records and Prometheus' ALERTS it rests on)."""
    found = next((e for e in inv.evidence if e.tool == "history"), None)
    if found is None or inv.analysis is None:  # without one, "Evidence gathered" has it
        return []
    text = found.output.strip()
    fence = _fence([text])
    return ["", f"## History [{found.id}]" if found.id else "## History", fence, text, fence]


def _feedback(inv: Investigation) -> list[str]:
    """People's verdicts on the analysis, oldest first."""
    if not inv.feedback:
        return []
    lines = ["", "## Feedback"]
    for item in inv.feedback:
        text = f"- **{_md(item.verdict)}** by {_md(item.author)} ({_md(item.created_at[:16])})"
        if item.cause:
            text += f": {_md(item.cause)}"
        if item.note:
            text += f" — {_md(item.note)}"
        lines.append(text)
    return lines


def _seen_before(inv: Investigation) -> list[str]:
    """Past investigations like this one, best first, with their causes."""
    if not inv.similar:
        return []
    lines = ["", "## Seen before"]
    for ref in inv.similar:
        judged = {"confirmed": "confirmed cause", "partial": "partly right", "wrong": "corrected"}
        said = judged.get(ref.verdict or "", "analysis, not confirmed")
        text = f"- {_md(ref.alertname)} {_md(ref.created_at[:16])} ({_md(ref.match)}): "
        text += f"[{ref.investigation_id}](/investigations/{ref.investigation_id})"
        if ref.cause:
            text += f" — {said}: {_md(ref.cause)}"
        elif ref.verdict == "wrong":
            text += " — its analysis was judged wrong"
        lines.append(text)
    return lines


def _sources(sources: Sources | None) -> list[str]:
    lines = ["", "## Sources"]
    if sources is None:
        return [*lines, "Not recorded (this investigation predates source tracking)."]
    for entry in sources.backends.values():
        text = f"- **{_md(entry.name)}**: {_md(entry.state)}"
        if entry.why:
            text += f" — {_md(entry.why)}"
        if entry.state == src.ANSWERED:
            text += f" — {entry.answered} answer(s)"
            if entry.ids:
                text += f" ({', '.join(entry.ids)})"
            if entry.no_data:
                empty = entry.no_data == entry.answered
                text += ", none with data" if empty else f", {entry.no_data} with no data"
            if entry.errors:
                text += f", {entry.errors} error(s)"
        lines.append(text)
    return lines


def _run(usage: LlmUsage, duration_s: float | None) -> list[str]:
    parts = []
    if usage.model:
        parts.append(f"model {usage.model}")
    if usage.prompt_version:
        parts.append(f"prompts {usage.prompt_version}")
    if usage.evidence_seconds is not None:
        parts.append(f"evidence {_seconds(usage.evidence_seconds)}")
    if usage.model or usage.calls:  # not on a row that recorded no run
        parts.append(f"LLM {_seconds(usage.seconds)} in {usage.calls} call(s)")
    if duration_s is not None:
        parts.append(f"total {_seconds(duration_s)}")
    return ["", "## Run", " · ".join(parts)] if parts else []


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def _label(item: Evidence) -> str:
    title = item.title or item.tool or "evidence"
    return _md(f"[{item.id}] {title}" if item.id else title)


def _code(text: str) -> str:
    """Inline code that no run of backticks inside can close."""
    text = " ".join(str(text).split())
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall(r"`+", text)) + 1)
    return f"{fence} {text} {fence}"


def _fence(texts: list[str]) -> str:
    """A code fence longer than any run of backticks in ``texts``: none can close it."""
    longest = max((len(run) for t in texts for run in re.findall(r"`+", t)), default=0)
    return "`" * max(3, longest + 1)


#: What makes a line a heading, list, quote, fence, table, HTML block or link definition.
_BLOCK_START = re.compile(r"[#>+*=|~`-]|\[(?=[^\]]*\]:)|\d{1,9}[.)]")


#: Inline markup outside text must not make: raw HTML, code spans, emphasis, table cells.
_INLINE = re.compile(r"[<`*|\\]")


def _md(text: object) -> str:
    """Text from outside (the model, the alert, a backend) as one inert markdown line: it
    cannot open a heading or section of its own, raw HTML, an autolink, a link, a code
    span, emphasis or a table cell; a viewer shows it as it was written."""
    line = " ".join(str(text).split())
    line = _INLINE.sub(r"\\\g<0>", line).replace("](", "]\\(")
    start = _BLOCK_START.match(line)
    if start is None:
        return line
    cut = start.end() - 1  # before the marker's last character: `\#`, `1\.`
    return f"{line[:cut]}\\{line[cut:]}"


#: :func:`_md` and :func:`_code` for the other markdown presenters (runbook drafts).
inert, code_span = _md, _code


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()


def _cut(line: str) -> str:
    return line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + "…"
