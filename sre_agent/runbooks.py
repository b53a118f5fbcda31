"""Runbook drafts from what people confirmed (``GET /runbooks/{alertname}``,
``sre-agent runbook ALERTNAME``): for an alert, each cause a person confirmed or gave,
how it was recognised (the evidence lines and queries that showed it), what was done
about it, and the investigations it rests on. Drafted from the store when asked, so a
new verdict redrafts it at once; always marked a draft for a person to adopt.

Nothing here is the model's: the causes are people's words (or the analysis' a person
confirmed), the lines are the evidence's as it was gathered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from sre_agent.memory import feedback_line
from sre_agent.models import Feedback, Investigation
from sre_agent.report import code_span, inert, telling_lines

__all__ = ["Runbook", "RunbookCause", "draft", "markdown"]

#: Evidence lines, queries and steps kept per cause; investigations linked per cause.
MAX_LINES, MAX_QUERIES, MAX_STEPS, MAX_LINKS = 8, 5, 6, 10
_WORD = re.compile(r"[a-z0-9]+")


class RunbookCause(BaseModel):
    """One cause this alert has had here."""

    cause: str
    #: How many investigations it was the cause of.
    seen: int = 0
    #: Each person's word on it, newest first ("Cause confirmed (alice, ...): ...").
    verdicts: list[str] = Field(default_factory=list)
    #: The lines of the evidence that showed it, each with its investigation and id.
    recognised_by: list[str] = Field(default_factory=list)
    #: The PromQL that showed it (the cited queries), to run first next time.
    queries: list[str] = Field(default_factory=list)
    #: What was done about it: the confirmed analyses' mitigations and people's notes.
    fixed_by: list[str] = Field(default_factory=list)
    investigations: list[str] = Field(default_factory=list)


class Runbook(BaseModel):
    alertname: str
    #: Always true: drafted from the record, for a person to adopt.
    draft: bool = True
    note: str
    #: The alert's own runbook_url, when its alerts carried one.
    runbook_url: str | None = None
    #: What this draft adds to that runbook.
    adds: str | None = None
    causes: list[RunbookCause] = Field(default_factory=list)
    #: The newest verdict it was drafted from.
    updated_at: str | None = None


def draft(
    alertname: str, judged: Sequence[Investigation], public_url: str | None = None
) -> Runbook:
    """The draft for ``alertname`` from its judged investigations (newest first)."""
    groups: list[tuple[set[str], RunbookCause, list[Investigation]]] = []
    for record in judged:
        latest = record.feedback[-1]
        if not latest.cause:
            continue
        words = set(_WORD.findall(latest.cause.lower()))
        for seen_words, _entry, members in groups:
            if _alike(words, seen_words):
                members.append(record)
                break
        else:
            groups.append((words, RunbookCause(cause=latest.cause), [record]))
    causes = [_fill(entry, members, public_url) for _, entry, members in groups]
    causes.sort(key=lambda c: -c.seen)
    urls = [r.alert.annotations.get("runbook_url") for r in judged]
    runbook_url = next((u for u in urls if u), None)
    stamps = [f.created_at for r in judged for f in r.feedback]
    return Runbook(
        alertname=alertname,
        note=(
            f"A draft by sre-agent from {len(judged)} investigation(s) of {alertname} whose"
            " cause a person confirmed or gave: check it, then adopt it into your runbooks."
        ),
        runbook_url=runbook_url,
        adds=(
            "The alert's own runbook is linked, not read (reading it is a later issue): this"
            " draft adds the causes seen here, the evidence that showed each, and what was done."
            if runbook_url
            else None
        ),
        causes=causes,
        updated_at=max(stamps, default=None),
    )


def _alike(a: set[str], b: set[str]) -> bool:
    """The same cause in other words: most of their words shared."""
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= 0.6


def _fill(
    entry: RunbookCause, members: list[Investigation], public_url: str | None
) -> RunbookCause:
    base = (public_url or "").rstrip("/")
    for record in members:
        entry.seen += 1
        latest: Feedback = record.feedback[-1]
        entry.verdicts.append(feedback_line(latest))
        link = f"{base}/investigations/{record.id}" if base else f"/investigations/{record.id}"
        if len(entry.investigations) < MAX_LINKS:
            entry.investigations.append(link)
        if latest.note and latest.note not in entry.fixed_by and len(entry.fixed_by) < MAX_STEPS:
            entry.fixed_by.append(latest.note)
        analysis = record.analysis
        if analysis is None or latest.verdict == "wrong":
            continue  # a corrected cause: the analysis' evidence showed another one
        by_id = {e.id: e for e in record.evidence if e.id}
        for cause in analysis.root_causes[:1]:
            for ident in cause.evidence_ids:
                item = by_id.get(ident)
                if item is None or item.tool == "history":
                    continue
                for line in telling_lines(item.output, cause.evidence):
                    row = f"{line} — {item.title} ({record.id}, {ident})"
                    if len(entry.recognised_by) < MAX_LINES and line not in _lines(entry):
                        entry.recognised_by.append(row)
                query = str(item.args.get("query") or "")
                if query and query not in entry.queries and len(entry.queries) < MAX_QUERIES:
                    entry.queries.append(query)
        for step in analysis.mitigation:
            if step not in entry.fixed_by and len(entry.fixed_by) < MAX_STEPS:
                entry.fixed_by.append(step)
    return entry


def _lines(entry: RunbookCause) -> list[str]:
    return [row.rsplit(" — ", 1)[0] for row in entry.recognised_by]


def markdown(book: Runbook) -> str:
    """The draft as a markdown document (every text from outside made inert)."""
    name = inert(book.alertname)
    lines = [f"# Runbook draft: {name}", "", f"> **Draft.** {inert(book.note)}", ""]
    if book.runbook_url:
        lines += [f"Existing runbook: {inert(book.runbook_url)}", ""]
        if book.adds:
            lines += [inert(book.adds), ""]
    lines += [f"## What {name} has meant here", ""]
    for n, cause in enumerate(book.causes, 1):
        lines.append(f"{n}. {inert(cause.cause)} ({cause.seen} time(s))")
    for n, cause in enumerate(book.causes, 1):
        lines += ["", f"## {n}. {inert(cause.cause)}", ""]
        lines += [f"- {inert(v)}" for v in cause.verdicts]
        if cause.recognised_by:
            lines += ["", "### How it was recognised", ""]
            lines += [f"- {code_span(row)}" for row in cause.recognised_by]
        if cause.queries:
            lines += ["", "### Queries that showed it", ""]
            lines += [f"- {code_span(q)}" for q in cause.queries]
        if cause.fixed_by:
            lines += ["", "### What was done", ""]
            lines += [f"- {inert(step)}" for step in cause.fixed_by]
        lines += ["", "### Investigations", ""]
        lines += [f"- {inert(link)}" for link in cause.investigations]
    if book.updated_at:
        lines += ["", f"_Drafted from verdicts up to {inert(book.updated_at)}._"]
    return "\n".join(lines) + "\n"
