"""The :class:`Recorder` middleware: every model and tool call of one run, timed and
kept in its :class:`RunLog` as it happens (so a deadline that cuts the run short still
leaves what was gathered and said), each tool result under its evidence id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from sre_agent_tools import ToolDeps, ToolResult
from sre_agent_tools.redact import redact, redact_obj

from sre_agent.runlog import RunLog
from sre_agent.sources import without_status

log = logging.getLogger(__name__)


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
        args = redact_obj(dict(call.get("args") or {}))
        self.run.tool_calls.append(
            {
                "id": ident,
                "name": call.get("name"),
                "args": args,
                "duration_ms": round(elapsed * 1000, 1),
                "status": status,
                "output_chars": len(text),
                "phase": "agent",
            }
        )
        clean = redact(text)
        self.run.evidence.append(
            {
                "id": ident,
                "title": f"{call.get('name')}({_format_args(args)})",
                "tool": call.get("name"),
                "args": args,
                "status": status,
                "output": without_status(clean),
                "phase": "agent",
                "in_prompt": True,
            }
        )
        log.info(
            "tool %s %s in %.0f ms (%d chars)", call.get("name"), status, elapsed * 1000, len(text)
        )
        if isinstance(message, ToolMessage):
            # What the model (and the chat checkpointer) sees is redacted too, whatever the
            # tool, and carries the id the analysis cites it by.
            message = message.model_copy(update={"content": f"[{ident}] {clean}"})
        return message


def _format_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
