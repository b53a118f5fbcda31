"""The report a person reads, from a stored record (or one about to be stored).

It says first what it rests on (:func:`sre_agent.sources.warning`), then the alert
in full, the analysis with each cited finding beside its claim and the way to run it
again, the Sources, and what the run cost. Old records, from before evidence ids and
sources, render too: what they lack is said, not invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sre_agent import sources as src
from sre_agent.analysis import Analysis, RootCause

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


def render_record(record: Mapping[str, Any]) -> str:
    """The report of an investigation as it stands now (e.g. resolved since)."""
    analysis = Analysis.model_validate(record["analysis"]) if record.get("analysis") else None
    alert = {**(record.get("alert") or {}), "resolved_at": record.get("resolved_at")}
    return render_report(
        alert,
        analysis,
        status=str(record.get("status") or "?"),
        reason=record.get("status_reason"),
        raw_text=record.get("raw_text"),
        evidence=record.get("evidence") or [],
        sources=record.get("sources"),
        usage=record.get("llm_usage") or {},
        duration_s=record.get("duration_s"),
    )


def render_report(
    alert: Mapping[str, Any],
    analysis: Analysis | None,
    *,
    status: str,
    reason: str | None = None,
    raw_text: str | None = None,
    evidence: list[dict[str, Any]] | None = None,
    sources: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
    duration_s: float | None = None,
) -> str:
    evidence = evidence or []
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    title = f"{labels.get('alertname', 'alert')} ({labels.get('severity', 'none')})"
    lines = [f"# {_md(title)}", ""]
    warning = src.warning(sources)
    if analysis is None:  # no analysis: the first line says so, and why
        nothing = f"⚠ No analysis from the model ({status}" + (f": {reason})" if reason else ")")
        lines += [f"**{_md(nothing)}**", ""]
        if warning:
            warning = warning.replace("this analysis rests on", "this report rests on")
    if warning:
        lines += [f"**{_md(warning)}**", ""]
    where = _md(
        ", ".join(f"{k}={v}" for k, v in labels.items() if k not in ("alertname", "severity"))
    )
    if where:
        lines.append(f"**Labels:** {where}  ")
    lines.append(f"**Started:** {_md(alert.get('startsAt', '?'))}  ")
    if alert.get("resolved_at"):
        lines.append(f"**Resolved:** {_md(alert['resolved_at'])}  ")
    lines.append(
        f"**Investigation status:** {_md(status)}" + (f" — {_md(reason)}" if reason else "")
    )
    summary, description = annotations.get("summary"), annotations.get("description")
    if summary:
        lines += ["", f"> {_md(summary)}"]
    if description and description != summary:
        lines += ["", f"> {_md(description)}"]
    if alert.get("generatorURL"):
        lines += ["", f"Alert source: {_md(alert['generatorURL'])}"]
    if annotations.get("runbook_url"):
        lines += ["", f"Runbook: {_md(annotations['runbook_url'])}"]
    if analysis is not None:
        lines += _analysis(analysis, evidence, sources)
    elif raw_text:
        text = raw_text.strip()  # the model's, as it wrote it: never the report's markdown
        fence = _fence([text])
        lines += ["", "## Model output (not structured)", fence, text, fence]
    if evidence and analysis is None:
        lines += ["", "## Evidence gathered"]
        for item in evidence:
            output = str(item.get("output", "")).strip()
            fence = _fence([output])
            status = str(item.get("status") or "ok")
            note = "" if status == "ok" else f" [{status}]"
            if item.get("in_prompt") is False:
                note += " (not in the prompt: over the budget)"
            lines += ["", f"### {_label(item)}{note}", fence, output, fence]
    lines += _sources(sources)
    lines += _run(usage or {}, duration_s)
    return "\n".join(lines).rstrip() + "\n"


def _analysis(
    analysis: Analysis, evidence: list[dict[str, Any]], sources: Mapping[str, Any] | None
) -> list[str]:
    lines = ["", "## Summary", _md(analysis.summary)]
    by_id = {str(i["id"]): i for i in evidence if i.get("id")}
    base = ((sources or {}).get("backends") or {}).get("prometheus", {}).get("graph_base")
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
                rest = ", ".join(str(i["id"]) for i in cited[MAX_CITED:])
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
    item: Mapping[str, Any], cause: RootCause | None = None, graph_base: str | None = None
) -> list[str]:
    """One cited finding beside its claim: id, title, the telling lines, how to re-run it."""
    status = str(item.get("status") or "ok")
    head = f"   - **{_label(item)}**" + ("" if status == "ok" else f" [{status}]")
    lines = [head]
    shown = telling_lines(str(item.get("output") or ""), cause.evidence if cause else [])
    if shown:
        fence = _fence(shown)
        lines += [f"     {fence}", *(f"     {line}" for line in shown), f"     {fence}"]
    command = src.rerun_command(str(item.get("tool") or ""), item.get("args") or {})
    if command:
        rerun = f"     Re-run: {_code(command)}"
        if graph_base and str(item.get("tool")).startswith("promql"):
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


def _sources(sources: Mapping[str, Any] | None) -> list[str]:
    lines = ["", "## Sources"]
    backends = (sources or {}).get("backends")
    if not isinstance(backends, dict):
        return [*lines, "Not recorded (this investigation predates source tracking)."]
    for entry in backends.values():
        state = str(entry.get("state"))
        text = f"- **{_md(entry.get('name'))}**: {_md(state)}"
        if entry.get("why"):
            text += f" — {_md(entry['why'])}"
        if state == src.ANSWERED:
            ids = entry.get("ids") or []
            text += f" — {entry.get('answered', 0)} answer(s)"
            if ids:
                text += f" ({', '.join(ids)})"
            if entry.get("no_data"):
                empty = entry["no_data"] == entry.get("answered")
                text += ", none with data" if empty else f", {entry['no_data']} with no data"
            if entry.get("errors"):
                text += f", {entry['errors']} error(s)"
        lines.append(text)
    return lines


def _run(usage: Mapping[str, Any], duration_s: float | None) -> list[str]:
    parts = []
    if usage.get("model"):
        parts.append(f"model {usage['model']}")
    if usage.get("prompt_version"):
        parts.append(f"prompts {usage['prompt_version']}")
    if usage.get("evidence_seconds") is not None:
        parts.append(f"evidence {_seconds(usage['evidence_seconds'])}")
    if usage.get("calls") is not None:
        parts.append(f"LLM {_seconds(usage.get('seconds') or 0)} in {usage['calls']} call(s)")
    if duration_s is not None:
        parts.append(f"total {_seconds(duration_s)}")
    return ["", "## Run", " · ".join(parts)] if parts else []


def _seconds(value: object) -> str:
    seconds = float(value)  # type: ignore[arg-type]
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def _label(item: Mapping[str, Any]) -> str:
    title = str(item.get("title") or item.get("tool") or "evidence")
    return _md(f"[{item['id']}] {title}" if item.get("id") else title)


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


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()


def _cut(line: str) -> str:
    return line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + "…"
