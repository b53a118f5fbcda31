"""One investigation: LangChain ``create_agent`` on ``ChatOllama`` with our
read-only tools, then a validated :class:`Analysis`.

We write no agent loop of our own: limits are LangChain middleware, and the
:class:`Recorder` middleware keeps the tool calls, evidence and token counts
of the run as they happen (so a deadline that cuts a run short still leaves
what was gathered).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import ollama
from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ClearToolUsesEdit,
    ContextEditingMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    ModelResponse,
    ToolCallLimitMiddleware,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_ollama import ChatOllama
from langgraph.prebuilt.tool_node import ToolCallRequest
from sre_agent_tools import ToolDeps, ToolResult, make_tools
from sre_agent_tools.redact import redact, redact_obj

from sre_agent import evidence, tokens
from sre_agent.analysis import Analysis, analysis_schema, parse_analysis
from sre_agent.guards import ArgumentRepair, RepeatGuard, TextToolCalls
from sre_agent.prompts import Prompts
from sre_agent.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["completed", "degraded", "failed"]

#: What the Ollama client raises when the model server fails (HTTP error, refused, timeout).
LLM_ERRORS: tuple[type[BaseException], ...] = (
    ollama.ResponseError,
    httpx.TransportError,
    ConnectionError,
)


@dataclass
class RunLog:
    """What one investigation did; filled in while it runs."""

    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    model: str = ""
    prompt_version: str = ""

    def usage(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_version": self.prompt_version,
            "calls": self.llm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.llm_seconds, 3),
        }

    def count(self, message: BaseMessage) -> None:
        usage = getattr(message, "usage_metadata", None) or {}
        self.prompt_tokens += int(usage.get("input_tokens", 0))
        self.completion_tokens += int(usage.get("output_tokens", 0))


@dataclass
class Result:
    status: Outcome
    reason: str | None = None
    analysis: Analysis | None = None
    raw_text: str | None = None
    #: The model server failed: worth investigating again once it answers.
    llm_unavailable: bool = False


class Recorder(AgentMiddleware[Any, ToolDeps, Any]):
    """Times and records every model and tool call of one run."""

    def __init__(self, run: RunLog) -> None:
        super().__init__()
        self.run = run

    async def awrap_model_call(
        self,
        request: ModelRequest[ToolDeps],
        handler: Callable[[ModelRequest[ToolDeps]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        started = time.perf_counter()
        self.run.llm_calls += 1
        try:
            response = await handler(request)
        finally:
            self.run.llm_seconds += time.perf_counter() - started
        for message in response.result:
            self.run.count(message)
        return response

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Any]],
    ) -> ToolMessage | Any:
        call = request.tool_call
        started = time.perf_counter()
        message = await handler(request)
        elapsed = time.perf_counter() - started
        text = message.content if isinstance(message, ToolMessage) else str(message)
        text = text if isinstance(text, str) else json.dumps(text)
        known = request.tool is not None
        status = ToolResult.status_of(text) if known else "error"
        if isinstance(message, ToolMessage) and message.status == "error":
            status = "error"
        args = redact_obj(dict(call.get("args") or {}))
        self.run.tool_calls.append(
            {
                "name": call.get("name"),
                "args": args,
                "duration_ms": round(elapsed * 1000, 1),
                "status": status,
                "output_chars": len(text),
            }
        )
        clean = redact(text)
        self.run.evidence.append(
            {
                "title": f"{call.get('name')}({_format_args(args)})",
                "tool": call.get("name"),
                "output": clean,
            }
        )
        log.info(
            "tool %s %s in %.0f ms (%d chars)", call.get("name"), status, elapsed * 1000, len(text)
        )
        if isinstance(message, ToolMessage) and clean != text:
            # What the model (and the chat checkpointer) sees is redacted too, whatever the tool.
            message = message.model_copy(update={"content": clean})
        return message


def _format_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def alert_fields(alert: dict[str, Any]) -> dict[str, str]:
    """The fields the investigation prompt is filled with."""
    labels = alert.get("labels", {})
    annotations = alert.get("annotations", {})
    shown = {k: v for k, v in labels.items() if k not in ("prometheus",)}
    return {
        "alertname": labels.get("alertname", "?"),
        "severity": labels.get("severity", "none"),
        "status": alert.get("status", "firing"),
        "starts_at": str(alert.get("startsAt", "?")),
        "labels": ", ".join(f'{k}="{v}"' for k, v in shown.items()),
        "summary": annotations.get("summary", "(none)"),
        "description": annotations.get("description", "(none)"),
        "runbook_url": annotations.get("runbook_url", "(none)"),
        "expr": alert.get("expr") or "(unknown)",
        "evidence": "(none gathered)",
    }


def guarded_middleware(
    settings: Settings,
    run: RunLog,
    edits: list[Any],
    count: Callable[[Sequence[BaseMessage]], int],
    already: Iterable[str] = (),
) -> list[AgentMiddleware[Any, Any, Any]]:
    """The middleware every agent of ours runs with (investigations and chat alike):
    recording, the small-model guards, the prompt budget ``edits``, the call limits."""
    return [
        Recorder(run),
        TextToolCalls(),
        ArgumentRepair(),
        RepeatGuard(already),
        ContextEditingMiddleware(token_counter=count, edits=edits),
        ModelCallLimitMiddleware(run_limit=settings.max_model_calls, exit_behavior="end"),
        ToolCallLimitMiddleware(run_limit=settings.max_tool_calls, exit_behavior="continue"),
    ]


class Investigator:
    """Runs investigations against one Ollama model with one set of tool clients."""

    def __init__(self, settings: Settings, prompts: Prompts, deps: ToolDeps) -> None:
        self.settings = settings
        self.prompts = prompts
        self.deps = deps
        self.model = ChatOllama(
            model=settings.model,
            base_url=settings.ollama_url,
            temperature=0,
            num_ctx=settings.num_ctx,
            client_kwargs={"timeout": settings.llm_timeout},
        )
        self.tools = make_tools()
        tokens.count("warm up")  # load the tokenizer now, not during the first investigation

    def _agent(self, run: RunLog, already: list[str]) -> Any:
        # Per call, the prompt stays under the budget: older tool results are cleared
        # first (the system prompt and tool schemas are counted in the overhead).
        overhead = 1200
        clear = ClearToolUsesEdit(
            trigger=max(1000, self.settings.prompt_budget_tokens - overhead),
            keep=1,
            placeholder="[cleared to stay within the prompt budget]",
        )
        return create_agent(
            self.model,
            self.tools,
            system_prompt=self.prompts.render("system"),
            middleware=guarded_middleware(
                self.settings, run, [clear], tokens.count_messages, already
            ),
            context_schema=ToolDeps,
        )

    async def gather(self, alert: dict[str, Any], run: RunLog) -> list[evidence.Finding]:
        """Evidence first: what the alert points at, within the evidence budget."""
        if not self.settings.evidence_first:
            return []
        findings = await evidence.gather(alert, self.deps)
        kept = evidence.fit_budget(findings, self.settings.evidence_budget_tokens)
        for finding in kept:
            run.evidence.append(finding.record())
            run.tool_calls.append(finding.tool_call())
        return kept

    async def run(self, alert: dict[str, Any], run: RunLog) -> Result:
        """Investigate one alert. Never raises for backend trouble: the result says what happened."""
        run.model = self.settings.model
        run.prompt_version = self.prompts.version
        findings = await self.gather(alert, run)
        fields = alert_fields(alert)
        fields["evidence"] = (
            evidence.render(findings)
            if self.settings.evidence_first
            else "(none gathered: use your tools)"
        )
        question = self.prompts.render("investigation", **fields)
        final_text: str | None = None
        try:
            state = await self._agent(run, [f.signature() for f in findings]).ainvoke(
                {"messages": [HumanMessage(question)]}, context=self.deps
            )
            final_text = _final_text(state["messages"])
        except LLM_ERRORS as exc:  # the model server failed: keep what was gathered
            reason = f"LLM call failed ({self.settings.ollama_url}): {describe_error(exc)}"
            if self.settings.reinvestigate:
                reason += "; will investigate again when Ollama answers"
            log.warning("investigation of %s: %s", alert.get("labels", {}).get("alertname"), reason)
            status: Outcome = "degraded" if run.evidence else "failed"
            return Result(status, reason, llm_unavailable=True)

        error = "the answer was empty"
        if final_text:
            try:
                return Result("completed", analysis=parse_analysis(final_text), raw_text=final_text)
            except ValueError as exc:
                error = str(exc)
        return await self._repair(alert, run, final_text, error)

    async def _repair(
        self, alert: dict[str, Any], run: RunLog, final_text: str | None, error: str
    ) -> Result:
        """One more call, constrained to the Analysis JSON schema, with the validation error."""
        notes = self._notes(alert, run, final_text)
        prompt = self.prompts.render("repair", error=error, notes=notes)
        structured = self.model.model_copy(update={"format": analysis_schema()})
        started = time.perf_counter()
        run.llm_calls += 1
        try:
            reply = await structured.ainvoke(
                [SystemMessage(self.prompts.render("system")), HumanMessage(prompt)]
            )
        except LLM_ERRORS as exc:
            reason = f"final answer invalid ({error}); retry failed: {describe_error(exc)}"
            return Result("degraded", reason, raw_text=final_text, llm_unavailable=True)
        finally:
            run.llm_seconds += time.perf_counter() - started
        run.count(reply)
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        try:
            return Result("completed", analysis=parse_analysis(text), raw_text=text)
        except ValueError as exc:
            reason = f"the model gave no valid analysis after one retry: {exc}"
            return Result("degraded", reason, raw_text=final_text or text)

    def _notes(self, alert: dict[str, Any], run: RunLog, final_text: str | None) -> str:
        """What the model saw, within the evidence budget, for the schema-constrained retry."""
        budget = self.settings.evidence_budget_tokens * 4
        parts = [self.prompts.render("investigation", **alert_fields(alert))]
        for item in run.evidence:
            block = f"## {item['title']}\n{item['output']}"
            if len(block) > budget:
                block = block[: max(0, budget)]
            budget -= len(block)
            parts.append(block)
            if budget <= 0:
                break
        if final_text:
            parts.append(f"## Your previous answer\n{final_text[:4000]}")
        return "\n\n".join(parts)


def _final_text(messages: list[BaseMessage]) -> str | None:
    """The model's last answer that is not a tool call (nor the call-limit notice)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            content = message.content if isinstance(message.content, str) else ""
            if not message.response_metadata and content.startswith("Model call limit"):
                return None
            return content.strip() or None
        if isinstance(message, AIMessage | ToolMessage):
            return None
    return None


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return redact(f"{exc.__class__.__name__}: {text}")[:500]
