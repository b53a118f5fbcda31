"""Findings: what the evidence gatherer keeps, and how they are shaped for the
prompt (:func:`fit_budget`, :func:`render`). :mod:`sre_agent.plan` runs the
lookups that make them.
"""

from __future__ import annotations

import json
import logging
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
        finding.order,
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
