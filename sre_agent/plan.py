"""The plan that runs the evidence gatherer's lookups.

A :class:`Plan` runs each lookup once (by tool and arguments), hands every
finding to its ``on_finding`` the moment it is gathered, and remembers the
lookups still waiting, so that when the evidence phase is cut (its own
timeout, or the investigation's deadline) :meth:`Plan.cut` turns them into
``error`` findings that say so. It also holds the walk to a lookup budget
(:attr:`Plan.budget`): a hostile or huge cluster cannot make one
investigation read it all, and keeps the objects the walk reached
(:attr:`Plan.walked`), which the investigation's record lists.

Findings are :class:`~sre_agent.models.Evidence`; their text is the tool's
:class:`~sre_agent_tools.ToolResult`, redacted where the tool made it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools.redact import redact, redact_obj

from sre_agent.models import Evidence, WalkedObject, call_signature

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    on_finding: Callable[[Evidence], None] | None = None
    findings: list[Evidence] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    #: Lookups started and not yet answered, by start order.
    pending: dict[int, _Lookup] = field(default_factory=dict)
    started: int = 0
    #: Lookups (reads, lists, tool runs) this plan may start; past it :meth:`afford` is False.
    budget: int = 10_000
    #: Lookups refused for want of budget (the walk says so in the log).
    refused: int = 0
    #: The objects the walk reached, in visit order, once each.
    walked: list[WalkedObject] = field(default_factory=list)

    def afford(self, lookups: int = 1) -> bool:
        """Whether ``lookups`` more fit the budget; counts a refusal when not."""
        if self.started + lookups <= self.budget:
            return True
        self.refused += 1
        return False

    def _start(self, title: str, tool: str, args: dict[str, Any], priority: int) -> int:
        self.started += 1
        self.pending[self.started] = _Lookup(
            title, tool, args, priority, self.started, time.perf_counter()
        )
        return self.started

    def _keep(self, finding: Evidence) -> None:
        # Its output was masked by the tool; its title and arguments are built from what
        # the cluster said (an event's object name, an owner's name): masked here, where
        # they enter the run, before the prompt, the record and the report.
        finding.title = redact(finding.title)
        finding.args = redact_obj(finding.args)
        self.findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)

    def reached(self, item: WalkedObject) -> WalkedObject:
        """Keep an object the walk reached. Its names and why are what the cluster said
        (an event's object name): masked here, as finding titles are."""
        item.name, item.why = redact(item.name), redact(item.why)
        if item.namespace is not None:
            item.namespace = redact(item.namespace)
        if item.parent is not None:
            item.parent = redact(item.parent)
        self.walked.append(item)
        return item

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

    async def search(self, call: Awaitable[T]) -> T:
        """A list the walk searches (pods by selector, a namespace's Services): counted
        against the budget, but no finding of its own, so none when the phase is cut."""
        self.started += 1
        return await call

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
                Evidence(
                    title=lookup.title,
                    tool=lookup.tool,
                    args=lookup.args,
                    status="error",
                    output=why,
                    duration_ms=elapsed,
                    priority=lookup.priority,
                    order=lookup.order,
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
        rank: Callable[[ToolResult], int] | None = None,
    ) -> ToolResult | None:
        """Run one tool; an ``optional`` finding is kept only when it found something.

        ``rank`` sets the finding's priority from the answer (a fact that is itself a
        finding keeps a high priority however far from the alert it was found)."""
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
        if rank is not None and result.status == "ok":
            priority = rank(result)
        self._keep(
            Evidence(
                title=title,
                tool=tool,
                args=args,
                status=result.status,
                output=text,
                duration_ms=elapsed,
                priority=priority,
                order=token,
            )
        )
        log.info("tool %s %s in %.0f ms (evidence: %s)", tool, result.status, elapsed, title)
        return result
