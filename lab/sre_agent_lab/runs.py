"""One investigation of an alert through the real pipeline, with what the model was sent.

The Investigator runs as the Worker runs it, into a throwaway SQLite store; a
LangChain callback on its chat model captures every request after our
middleware, so "did the decisive evidence reach the model?" is answered from
our side of the wire, for any Ollama. Used by ``sre-agent eval`` and the
prompt lab notebook.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from sre_agent.alerts import Alert, parse_payload
from sre_agent.models import Investigation, LlmUsage
from sre_agent.prompts import Prompts
from sre_agent.report import render
from sre_agent.services import open_services
from sre_agent.settings import Settings
from sre_agent_lab.scenarios import Scenario

#: Share of a scenario's root-cause keywords a passing analysis mentions.
KEYWORD_PASS = 0.5


class Capture(AsyncCallbackHandler):
    """Every chat request as sent to the model (after our middleware), and its usage."""

    def __init__(self) -> None:
        self.requests: list[list[BaseMessage]] = []
        self.usage: list[dict[str, Any]] = []

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.requests.extend(list(batch) for batch in messages)

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                self.usage.append(dict(getattr(message, "usage_metadata", None) or {}))

    def text(self) -> str:
        """Everything the model received, every request, as one text."""
        return "\n".join(_content(m) for request in self.requests for m in request)


def _content(message: BaseMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else json.dumps(content)


@dataclass
class RunResult:
    """One investigation, scored (decisive evidence and keywords need a scenario)."""

    name: str
    status: str
    reason: str | None
    prompt_version: str
    decisive_missing: list[str] | None
    keywords: list[str]
    keywords_found: list[str]
    prompt_tokens: int
    first_prompt_tokens: int
    llm_calls: int
    model_tool_calls: int
    evidence_tool_calls: int
    seconds: float
    record: Investigation = field(repr=False)
    requests: list[list[BaseMessage]] = field(repr=False)
    #: Root causes in the analysis, and how many cite at least one gathered finding.
    causes: int = 0
    cited_causes: int = 0

    @property
    def decisive_reached(self) -> bool | None:
        return None if self.decisive_missing is None else not self.decisive_missing

    @property
    def valid(self) -> bool:
        return self.status == "completed"

    @property
    def keyword_fraction(self) -> float | None:
        return len(self.keywords_found) / len(self.keywords) if self.keywords else None

    @property
    def passed(self) -> bool:
        """Valid analysis, decisive evidence sent, and enough root-cause keywords in it."""
        fraction = self.keyword_fraction
        return (
            self.valid
            and self.decisive_reached is not False
            and (fraction is None or fraction >= KEYWORD_PASS)
        )

    @property
    def report(self) -> str:
        return render(self.record)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "prompt_version": self.prompt_version,
            "decisive_reached": self.decisive_reached,
            "decisive_missing": self.decisive_missing,
            "valid_output": self.valid,
            "keywords": self.keywords,
            "keywords_found": self.keywords_found,
            "keyword_fraction": self.keyword_fraction,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.record.llm_usage.completion_tokens,
            "first_prompt_tokens": self.first_prompt_tokens,
            "llm_calls": self.llm_calls,
            "model_tool_calls": self.model_tool_calls,
            "evidence_tool_calls": self.evidence_tool_calls,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "root_causes": self.causes,
            "root_causes_citing_evidence": self.cited_causes,
            "llm_usage": self.record.llm_usage.model_dump(mode="json"),
            "raw_text": self.record.raw_text,
            "analysis": self.record.analysis.model_dump(mode="json")
            if self.record.analysis
            else None,
        }


def scenario_alert(scenario: Scenario, now: datetime | None = None) -> Alert:
    """The scenario's alert as delivered at ``now`` (default: this moment); pass the
    ``World.now`` of the world serving it, so its times and the world's agree."""
    return parse_payload(scenario.webhook_body(now or datetime.now(UTC))).alerts[0]


async def run_alert(
    alert: Alert,
    settings: Settings,
    prompts: Prompts,
    workdir: Path,
    scenario: Scenario | None = None,
) -> RunResult:
    """One investigation through the real pipeline (a Worker run into a fresh SQLite store)."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    database = workdir / f"{alert.name}-{uuid.uuid4().hex[:8]}.db"
    settings = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
    capture = Capture()
    # The service's own construction (sre_agent.services); the worker is driven here.
    async with open_services(settings, prompts=prompts, serve=False, concurrency=1) as services:
        investigator = services.investigator
        investigator.model = investigator.model.model_copy(update={"callbacks": [capture]})
        record, _ = services.store.create_or_get(alert)
        started = time.perf_counter()
        await services.worker.process(record.id)
        seconds = time.perf_counter() - started
        record = services.store.get(record.id) or record
    return score(record, capture, seconds, scenario, prompts.version)


def score(
    record: Investigation,
    capture: Capture,
    seconds: float,
    scenario: Scenario | None,
    prompt_version: str,
) -> RunResult:
    sent = capture.text()
    analysis = record.analysis
    answer = analysis.model_dump_json() if analysis else (record.raw_text or "")
    keywords = list(scenario.root_cause_keywords) if scenario else []
    usage = record.llm_usage
    calls = record.tool_calls
    evidence_calls = sum(1 for c in calls if c.phase == "evidence")
    gathered = {i.id for i in record.evidence if i.id}
    causes = analysis.root_causes if analysis else []
    return RunResult(
        name=scenario.name if scenario else record.alertname,
        status=record.status,
        reason=record.status_reason,
        prompt_version=prompt_version,
        decisive_missing=[d for d in scenario.decisive if d not in sent] if scenario else None,
        keywords=keywords,
        keywords_found=[k for k in keywords if k.lower() in answer.lower()],
        prompt_tokens=usage.prompt_tokens,
        first_prompt_tokens=_first_prompt_tokens(usage, capture),
        llm_calls=usage.calls,
        model_tool_calls=len(calls) - evidence_calls,
        evidence_tool_calls=evidence_calls,
        seconds=seconds,
        record=record,
        requests=capture.requests,
        causes=len(causes),
        cited_causes=sum(1 for c in causes if gathered & set(c.evidence_ids)),
    )


def _first_prompt_tokens(usage: LlmUsage, capture: Capture) -> int:
    """The first call's prompt, as recorded (a call cut by the deadline: our tokenizer's
    count), else as the callback saw it."""
    if usage.calls_detail:
        return usage.calls_detail[0].prompt_tokens
    return int(capture.usage[0].get("input_tokens", 0)) if capture.usage else 0
