"""The :class:`Recorder` middleware: every model and tool call of one run, timed and
kept in its :class:`RunLog` as it happens (so a deadline that cuts the run short still
leaves what was gathered and said), each tool result under its evidence id.

It is also where the model's text enters: each reply is redacted as it arrives (its
text and the arguments of the tool calls it asks for), so the tools, the record, the
chat history and the answer all hold the redacted reply. Tool results need no second
pass: a :class:`~sre_agent_tools.ToolResult` is redacted where the tool makes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools.redact import redact, redact_obj

from sre_agent.models import Evidence
from sre_agent.runlog import RunLog
from sre_agent.sources import without_status

log = logging.getLogger(__name__)


M = TypeVar("M", bound=BaseMessage)


def clean_reply(message: M) -> M:
    """A model's reply as it may enter: its text and its tool calls' arguments redacted."""
    if not isinstance(message, AIMessage):
        return message
    update: dict[str, Any] = {}
    if isinstance(message.content, str) and message.content:
        text = redact(message.content)
        if text != message.content:
            update["content"] = text
    if message.tool_calls:
        calls = [
            {**c, "name": redact(c["name"]), "args": redact_obj(dict(c.get("args") or {}))}
            for c in message.tool_calls
        ]
        if calls != message.tool_calls:
            update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message


def clean_replies(messages: Iterable[BaseMessage]) -> list[BaseMessage]:
    return [clean_reply(m) for m in messages]


class Recorder(AgentMiddleware[Any, ToolDeps, Any]):
    """Times and records every model and tool call of one run.

    Each tool call gets the run's next evidence id, and its result reaches the model
    as ``[E14] status: ...`` so the analysis can cite it like the gathered evidence.
    """

    def __init__(self, run: RunLog) -> None:
        super().__init__()
        self.run = run

    async def awrap_model_call(
        self,
        request: ModelRequest[ToolDeps],
        handler: Callable[[ModelRequest[ToolDeps]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        with self.run.metered("agent") as meter:
            response = await handler(request)
            for message in response.result:
                meter.adopt(message)
        response.result = clean_replies(response.result)
        self.run.remember(response.result)
        return response

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Any]],
    ) -> ToolMessage | Any:
        call = request.tool_call
        ident = self.run.new_id()
        started = time.perf_counter()
        message = await handler(request)
        elapsed = time.perf_counter() - started
        text = message.content if isinstance(message, ToolMessage) else str(message)
        text = text if isinstance(text, str) else json.dumps(text)
        known = request.tool is not None
        status = ToolResult.status_of(text) if known else "error"
        if isinstance(message, ToolMessage) and message.status == "error":
            status = "error"
        if not text.startswith("status: "):
            # Not a ToolResult's text (those are redacted where the tool made them):
            # LangChain's own error (an unknown tool, bad arguments), which may quote
            # what the model sent, or a guard's refusal.
            text = redact(text)
        args = dict(call.get("args") or {})  # the model's, redacted as its reply arrived
        item = Evidence(
            id=ident,
            title=f"{call.get('name')}({_format_args(args)})",
            tool=str(call.get("name") or ""),
            args=args,
            status=status,
            output=without_status(text),
            phase="agent",
            duration_ms=elapsed * 1000,
        )
        self.run.evidence.append(item)
        self.run.tool_calls.append(item.tool_call().model_copy(update={"output_chars": len(text)}))
        log.info(
            "tool %s %s in %.0f ms (%d chars)", call.get("name"), status, elapsed * 1000, len(text)
        )
        if isinstance(message, ToolMessage):
            # What the model (and the chat checkpointer) sees carries the id the analysis
            # cites it by.
            message = message.model_copy(update={"content": f"[{ident}] {text}"})
        return message


def _format_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
