"""Findings: what the evidence gatherer keeps, and how they are shaped for the
prompt (:func:`fit_budget`, :func:`render`). :mod:`sre_agent.plan` runs the
lookups that make them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sre_agent import tokens

log = logging.getLogger(__name__)


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
    order: int = 0  # when it was started: ties in priority keep the plan's order
    #: ``E1``, ``E2``, ... in prompt order (:func:`assign_ids`); the model cites it.
    id: str = ""
    #: False when :func:`fit_budget` left it out of the first prompt (it stays in the record).
    in_prompt: bool = True

    @classmethod
    def from_record(cls, item: dict[str, Any], position: int = 0) -> Finding:
        """A stored evidence item back as a finding (chat context); older rows lack some
        fields: no id, no args, no status (they were kept only when they answered)."""
        args = item.get("args")
        return cls(
            title=str(item.get("title") or item.get("tool") or "evidence"),
            tool=str(item.get("tool") or ""),
            args=dict(args) if isinstance(args, dict) else {},
            status=str(item.get("status") or "ok"),
            output=str(item.get("output") or ""),
            duration_ms=float(item.get("duration_ms") or 0.0),
            priority=position,
            order=position,
            id=str(item.get("id") or ""),
            in_prompt=bool(item.get("in_prompt", True)),
        )

    def signature(self) -> str:
        return call_signature(self.tool, self.args)

    def record(self) -> dict[str, Any]:
        """The stored evidence item (the agent's own tool calls are stored alike)."""
        return {
            "id": self.id,
            "title": self.title,
            "tool": self.tool,
            "args": self.args,
            "status": self.status,
            "output": self.output,
            "phase": "evidence",
            "in_prompt": self.in_prompt,
        }

    def tool_call(self) -> dict[str, Any]:
        return {
            "id": self.id,
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


_ID_PREFIX = re.compile(r"^\[E\d+\] ")


def without_id(text: str) -> str:
    """A tool result as the tool gave it, without the ``[E14] `` the model reads it by."""
    return _ID_PREFIX.sub("", text, count=1)


def assign_ids(findings: list[Finding], first: int = 1) -> int:
    """Number the findings ``E<first>``, ``E<first+1>``, ... in their order; returns the
    next free number (the agent's own tool calls continue from it)."""
    for n, finding in enumerate(findings, first):
        finding.id = f"E{n}"
    return first + len(findings)


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
    return dataclasses.replace(finding, output=output)


def render(findings: list[Finding]) -> str:
    """The evidence section of the first prompt."""
    if not findings:
        return "(nothing could be gathered: no backend answered)"
    blocks = []
    for f in findings:
        status = "" if f.status == "ok" else f" [{f.status}]"
        label = f"[{f.id}] " if f.id else ""
        blocks.append(f"### {label}{f.title}{status}\n{f.output.strip()}")
    return "\n\n".join(blocks)
