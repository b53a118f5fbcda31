"""How the gathered :class:`~sre_agent.models.Evidence` is shaped for the prompt:
numbered (:func:`assign_ids`), held to a token budget (:func:`fit_budget`) and
rendered (:func:`render`). :mod:`sre_agent.plan` runs the lookups that make it.
"""

from __future__ import annotations

import logging
import re

from sre_agent import tokens
from sre_agent.models import Evidence, call_signature

log = logging.getLogger(__name__)

__all__ = ["Evidence", "assign_ids", "call_signature", "fit_budget", "render", "without_id"]

_ID_PREFIX = re.compile(r"^\[E\d+\] ")


def without_id(text: str) -> str:
    """A tool result as the tool gave it, without the ``[E14] `` the model reads it by."""
    return _ID_PREFIX.sub("", text, count=1)


def assign_ids(findings: list[Evidence], first: int = 1) -> int:
    """Number the findings ``E<first>``, ``E<first+1>``, ... in their order; returns the
    next free number (the agent's own tool calls continue from it)."""
    for n, finding in enumerate(findings, first):
        finding.id = f"E{n}"
    return first + len(findings)


def fit_budget(findings: list[Evidence], max_tokens: int, min_tokens: int = 60) -> list[Evidence]:
    """Keep findings in priority order within ``max_tokens``, trimming the one that overflows.

    A finding that no longer fits even trimmed to ``min_tokens`` is dropped, and
    the log says so; the model can still ask for it with a tool. The findings
    themselves are not changed: a trimmed one is a copy.
    """
    kept: list[Evidence] = []
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
            kept.append(finding.model_copy(update={"output": cut + note}))
            left = 0
        else:
            dropped.append(finding.title)
    if dropped:
        log.info("evidence over budget: left out %s", "; ".join(dropped))
    return kept


def render(findings: list[Evidence]) -> str:
    """The evidence section of a prompt."""
    if not findings:
        return "(nothing could be gathered: no backend answered)"
    blocks = []
    for f in findings:
        status = "" if f.status == "ok" else f" [{f.status}]"
        label = f"[{f.id}] " if f.id else ""
        blocks.append(f"### {label}{f.title}{status}\n{f.output.strip()}")
    return "\n\n".join(blocks)
