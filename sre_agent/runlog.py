"""What one run (an investigation, or a chat turn) did, filled in while it runs: tool
calls, evidence, the objects the evidence walk reached, every model call's usage, the
model's latest answer.

Each model call is metered from start to end (:meth:`RunLog.metered`), so one that a
deadline cancels is recorded too: with Ollama's counts when its final chunk came, else
with our tokenizer's count of what was sent and streamed, marked ``partial``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage

from sre_agent import tokens
from sre_agent.llm import CallMeter, metering
from sre_agent.models import Evidence, LlmCall, LlmUsage, ToolCall, WalkedObject


@dataclass
class RunLog:
    """What one investigation did; filled in while it runs."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    #: The objects the evidence walk reached, how and from where (the incident rule
    #: joins alerts on them).
    objects: list[WalkedObject] = field(default_factory=list)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    model: str = ""
    prompt_version: str = ""
    #: One entry per model call: kind, done_reason, tokens, seconds (``partial`` when the
    #: call ended before Ollama's final chunk: its tokens are then our tokenizer's count).
    calls_detail: list[LlmCall] = field(default_factory=list)
    #: The investigation's question (the alert and its evidence, as the model got them).
    question: str = ""
    #: The model's last complete answer (text), kept for a run that is cut short.
    last_answer: str | None = None
    #: The number of the next evidence id (``E<n>``): the gatherer's findings take the
    #: first ones, each tool call the agent makes later the next.
    next_id: int = 1
    #: How long the evidence-first phase took (seconds); None when it did not run.
    evidence_seconds: float | None = None

    def new_id(self) -> str:
        ident, self.next_id = f"E{self.next_id}", self.next_id + 1
        return ident

    def gathered(self) -> dict[str, str]:
        """Each evidence id the model was shown and its status (what a citation may name):
        a finding the budget left out of the prompt is one it cannot have read."""
        return {item.id: item.status for item in self.evidence if item.id and item.in_prompt}

    def answered(self) -> bool:
        """Whether any lookup answered (with data or without): errors alone are no
        evidence, and a run with nothing else is ``failed``, not ``degraded``."""
        return any(item.answered() for item in self.evidence)

    def usage(self) -> LlmUsage:
        return LlmUsage(
            model=self.model,
            prompt_version=self.prompt_version,
            calls=self.llm_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            seconds=round(self.llm_seconds, 3),
            evidence_seconds=(
                None if self.evidence_seconds is None else round(self.evidence_seconds, 3)
            ),
            truncated=sum(1 for c in self.calls_detail if c.done_reason == "length"),
            repeated=sum(1 for c in self.calls_detail if c.done_reason == "repetition"),
            partial_calls=sum(1 for c in self.calls_detail if c.partial),
            calls_detail=list(self.calls_detail),
        )

    @contextmanager
    def metered(self, kind: str) -> Iterator[CallMeter]:
        """One model call, counted, timed and recorded however it ends (cancelled too)."""
        meter = CallMeter(kind)
        self.llm_calls += 1
        ended = "error"
        try:
            with metering(meter):
                yield meter
            ended = "ok"
        except asyncio.CancelledError:
            ended = "cancelled"
            raise
        finally:
            self._record(meter, ended)

    def _record(self, meter: CallMeter, ended: str) -> None:
        elapsed = time.perf_counter() - meter.started
        self.llm_seconds += elapsed
        entry = LlmCall(kind=meter.kind, done_reason=meter.done_reason, seconds=round(elapsed, 3))
        counted = meter.prompt_eval_count is not None or meter.eval_count is not None
        if meter.done and not meter.stopped_by_us and counted:
            # The server's counts (Ollama sends no prompt count for a cached prompt).
            prompt, completion = meter.prompt_eval_count or 0, meter.eval_count or 0
        elif meter.done and not meter.stopped_by_us:  # a server that sends no usage
            prompt, completion = meter.estimate_prompt(), tokens.count("".join(meter.text))
            entry.partial = True
        elif ended == "cancelled" or meter.chunks:  # the server had the prompt: count it
            prompt, completion = meter.estimate_prompt(), tokens.count("".join(meter.text))
            entry.partial = True
            entry.ended = meter.done_reason if meter.stopped_by_us else ended
        else:  # failed before the server answered anything
            prompt, completion = 0, 0
            entry.partial, entry.ended = True, ended
        entry.prompt_tokens, entry.completion_tokens = prompt, completion
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.calls_detail.append(entry)

    def remember(self, messages: Iterable[BaseMessage]) -> None:
        """Keep the text of the model's latest complete answer."""
        for message in messages:
            if isinstance(message, AIMessage) and isinstance(message.content, str):
                if message.content.strip():
                    self.last_answer = message.content.strip()

    def cut_off(self, kind: str | None = None) -> str | None:
        """Why the latest model call (of ``kind``) was cut short: ``"length"`` (it reached
        num_predict) or ``"repetition"`` (it looped and we stopped it); else None."""
        calls = [c for c in self.calls_detail if kind is None or c.kind == kind]
        reason = calls[-1].done_reason if calls else None
        return reason if reason in ("length", "repetition") else None
