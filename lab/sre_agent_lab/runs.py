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

from sre_agent.agent import Investigator
from sre_agent.alerts import Alert, parse_payload
from sre_agent.backends import make_deps
from sre_agent.prompts import Prompts
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.worker import Worker
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
    record: dict[str, Any] = field(repr=False)
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
        return str(self.record.get("report") or "")

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
            "first_prompt_tokens": self.first_prompt_tokens,
            "llm_calls": self.llm_calls,
            "model_tool_calls": self.model_tool_calls,
            "evidence_tool_calls": self.evidence_tool_calls,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "root_causes": self.causes,
            "root_causes_citing_evidence": self.cited_causes,
            "analysis": self.record.get("analysis"),
        }


def scenario_alert(scenario: Scenario) -> Alert:
    return parse_payload(scenario.webhook_body(datetime.now(UTC))).alerts[0]


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
    store = Store(database)
    store.open()
    deps = make_deps(settings)
    try:
        investigator = Investigator(settings, prompts, deps)
        investigator.model = investigator.model.model_copy(update={"callbacks": [capture]})
        worker = Worker(store, investigator, concurrency=1, timeout=settings.investigation_timeout)
        record, _ = store.create_or_get(alert)
        started = time.perf_counter()
        await worker.process(record["id"])
        seconds = time.perf_counter() - started
        record = store.get(record["id"]) or record
    finally:
        store.close()
        if deps.kube is not None:
            deps.kube.close()
    return score(record, capture, seconds, scenario, prompts.version)


def score(
    record: dict[str, Any],
    capture: Capture,
    seconds: float,
    scenario: Scenario | None,
    prompt_version: str,
) -> RunResult:
    sent = capture.text()
    analysis = record.get("analysis")
    answer = json.dumps(analysis) if analysis else str(record.get("raw_text") or "")
    keywords = list(scenario.root_cause_keywords) if scenario else []
    usage = record.get("llm_usage") or {}
    calls = record.get("tool_calls") or []
    evidence_calls = sum(1 for c in calls if c.get("phase") == "evidence")
    gathered = {str(i.get("id")) for i in record.get("evidence") or [] if i.get("id")}
    causes = (analysis or {}).get("root_causes") or []
    return RunResult(
        name=scenario.name if scenario else str(record.get("alertname")),
        status=str(record["status"]),
        reason=record.get("status_reason"),
        prompt_version=prompt_version,
        decisive_missing=[d for d in scenario.decisive if d not in sent] if scenario else None,
        keywords=keywords,
        keywords_found=[k for k in keywords if k.lower() in answer.lower()],
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        first_prompt_tokens=_first_prompt_tokens(usage, capture),
        llm_calls=int(usage.get("calls") or 0),
        model_tool_calls=len(calls) - evidence_calls,
        evidence_tool_calls=evidence_calls,
        seconds=seconds,
        record=record,
        requests=capture.requests,
        causes=len(causes),
        cited_causes=sum(1 for c in causes if gathered & set(c.get("evidence_ids") or [])),
    )


def _first_prompt_tokens(usage: dict[str, Any], capture: Capture) -> int:
    """The first call's prompt, as recorded (a call cut by the deadline: our tokenizer's
    count), else as the callback saw it."""
    detail = usage.get("calls_detail") or []
    if detail:
        return int(detail[0].get("prompt_tokens") or 0)
    return int(capture.usage[0].get("input_tokens", 0)) if capture.usage else 0
