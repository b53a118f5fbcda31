"""Findings: what the evidence gatherer keeps, and the plan that runs its lookups.

A :class:`Plan` runs each lookup once (by tool and arguments), hands every
finding to its ``on_finding`` the moment it is gathered, and remembers the
lookups still waiting, so that when the evidence phase is cut (its own
timeout, or the investigation's deadline) :meth:`Plan.cut` turns them into
``error`` findings that say so. :func:`fit_budget` and :func:`render` shape
findings for the prompt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools.redact import redact

from sre_agent import tokens

log = logging.getLogger(__name__)

T = TypeVar("T")


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


@dataclass
class _Lookup:
    title: str
    tool: str
    args: dict[str, Any]
    priority: int
    order: int
    started: float


@dataclass
class Plan:
    deps: ToolDeps
    on_finding: Callable[[Finding], None] | None = None
    findings: list[Finding] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    #: Lookups started and not yet answered, by start order.
    pending: dict[int, _Lookup] = field(default_factory=dict)
    started: int = 0

    def _start(self, title: str, tool: str, args: dict[str, Any], priority: int) -> int:
        self.started += 1
        self.pending[self.started] = _Lookup(
            title, tool, args, priority, self.started, time.perf_counter()
        )
        return self.started

    def _keep(self, finding: Finding) -> None:
        self.findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)

    async def lookup(
        self, title: str, tool: str, args: dict[str, Any], priority: int, call: Awaitable[T]
    ) -> T:
        """A read that leads to a finding (a pod read before it is described): if the
        phase is cut while it waits, the finding it leads to is reported as timed out."""
        token = self._start(title, tool, args, priority)
        try:
            value = await call
        except Exception:
            del self.pending[token]
            raise
        del self.pending[token]  # not when cancelled: then cut() reports it
        return value

    def cut(self, why: str) -> None:
        """Record every pending lookup as an error finding saying ``why``."""
        kept = {f.signature() for f in self.findings}
        for lookup in sorted(self.pending.values(), key=lambda p: p.order):
            signature = call_signature(lookup.tool, lookup.args)
            if signature in kept:
                continue
            kept.add(signature)
            elapsed = (time.perf_counter() - lookup.started) * 1000
            self._keep(
                Finding(
                    lookup.title,
                    lookup.tool,
                    lookup.args,
                    "error",
                    why,
                    elapsed,
                    lookup.priority,
                    lookup.order,
                )
            )
            log.info(
                "tool %s error in %.0f ms (evidence: %s): %s",
                lookup.tool,
                elapsed,
                lookup.title,
                why,
            )
        self.pending.clear()

    async def run(
        self,
        title: str,
        tool: str,
        args: dict[str, Any],
        priority: int,
        call: Callable[[], Awaitable[ToolResult]],
        reduce: Callable[[str], str] | None = None,
        optional: bool = False,
    ) -> ToolResult | None:
        """Run one tool; an ``optional`` finding is kept only when it found something."""
        signature = call_signature(tool, args)
        if signature in self.seen:
            return None
        self.seen.add(signature)
        token = self._start(title, tool, args, priority)
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:  # a tool bug must not cost the investigation
            log.exception("evidence %s failed", title)
            result = ToolResult("error", f"{exc.__class__.__name__}: {exc}")
        del self.pending[token]  # not when cancelled: then cut() reports it
        elapsed = (time.perf_counter() - started) * 1000
        text = reduce(result.text) if reduce and result.status == "ok" else result.text
        if optional and (result.status != "ok" or not text.strip()):
            log.info(
                "tool %s %s in %.0f ms (evidence, not kept: %s)",
                tool,
                result.status,
                elapsed,
                title,
            )
            return result
        self._keep(
            Finding(title, tool, args, result.status, redact(text), elapsed, priority, token)
        )
        log.info("tool %s %s in %.0f ms (evidence: %s)", tool, result.status, elapsed, title)
        return result


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
