"""LangChain middleware that keeps a small local model on the rails.

Small models call tools with the wrong argument names, write a tool call as
JSON in their text instead of a real tool call, or ask for the same thing
again and again. Each case ends in a useful run instead of an exception:

- :class:`TextToolCalls` turns a tool call written as text
  (``{"name": ..., "arguments": {...}}``, Qwen's ``<tool_call>`` tags, a
  list of them) into a real tool call, when it names one of our tools.
- :class:`ArgumentRepair` renames arguments a model commonly gets wrong
  (``pod_name`` -> ``pod``, ``ns`` -> ``namespace``, ``promql`` -> ``query``)
  when the intended name is unambiguous; anything else is left to the tool's
  own validation, whose message goes back to the model.
- :class:`RepeatGuard` refuses a tool call identical to one already made
  (including the evidence gathered before the first call) and tells the
  model to use what it has.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest

from sre_agent.evidence import call_signature
from sre_agent.jsontext import first_json

ModelHandler = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
ToolHandler = Callable[[ToolCallRequest], Awaitable[ToolMessage | Any]]

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_ARG_KEYS = ("arguments", "args", "parameters", "input")

#: Wrong name -> right name, applied only when the tool has the right one and lacks the wrong one.
ALIASES = {
    "pod_name": "pod",
    "podname": "pod",
    "ns": "namespace",
    "namespace_name": "namespace",
    "promql": "query",
    "expr": "query",
    "expression": "query",
    "q": "query",
    "object_name": "name",
    "resource_name": "name",
    "type": "kind",
    "resource": "kind",
    "resource_type": "kind",
    "object_kind": "kind",
    "container_name": "container",
    "lines": "tail_lines",
    "tail": "tail_lines",
    "tail_line": "tail_lines",
    "start_time": "start",
    "end_time": "end",
}


def _candidates(text: str) -> Iterable[Any]:
    pieces = _TAGGED.findall(text) or _FENCED.findall(text) or [text]
    for piece in pieces:
        try:
            yield first_json(piece)
        except ValueError:
            continue


def parse_text_tool_calls(text: str, known: set[str]) -> list[dict[str, Any]]:
    """Tool calls a model wrote as text; only calls of known tools count."""
    found: list[dict[str, Any]] = []
    for data in _candidates(text):
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("function"), dict):
                item = item["function"]
            name = item.get("name") or item.get("tool")
            if name not in known:
                continue
            args: Any = next((item[k] for k in _ARG_KEYS if k in item), {})
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    args = {}
            if isinstance(args, dict):
                found.append(
                    {
                        "name": name,
                        "args": args,
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "tool_call",
                    }
                )
    return found


class TextToolCalls(AgentMiddleware[Any, Any, Any]):
    """A tool call written as text becomes a real one."""

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: ModelHandler
    ) -> ModelResponse[Any]:
        response = await handler(request)
        known = {getattr(t, "name", "") for t in request.tools}
        result = []
        for message in response.result:
            if isinstance(message, AIMessage) and not message.tool_calls:
                content = message.content if isinstance(message.content, str) else ""
                calls = parse_text_tool_calls(content, known) if content else []
                if calls:
                    message = message.model_copy(update={"content": "", "tool_calls": calls})
            result.append(message)
        return ModelResponse(result=result, structured_response=response.structured_response)


class ArgumentRepair(AgentMiddleware[Any, Any, Any]):
    """Rename commonly mistaken argument names when the intent is unambiguous."""

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: ToolHandler
    ) -> ToolMessage | Any:
        tool = request.tool
        args = request.tool_call.get("args") or {}
        if tool is not None and isinstance(args, dict):
            params = set((tool.args or {}).keys())
            fixed = dict(args)
            for wrong, right in ALIASES.items():
                if (
                    wrong in fixed
                    and wrong not in params
                    and right in params
                    and right not in fixed
                ):
                    fixed[right] = fixed.pop(wrong)
            if fixed != args:
                request = request.override(tool_call={**request.tool_call, "args": fixed})
        return await handler(request)


class RepeatGuard(AgentMiddleware[Any, Any, Any]):
    """Refuse a call identical to one already made; the model gets told why."""

    def __init__(self, already: Iterable[str] = ()) -> None:
        super().__init__()
        self.seen = set(already)

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: ToolHandler
    ) -> ToolMessage | Any:
        call = request.tool_call
        signature = call_signature(call.get("name", ""), dict(call.get("args") or {}))
        if signature in self.seen:
            return ToolMessage(
                content=(
                    "status: error\nRefused: this exact call was already made and its result "
                    "is above (in the evidence or an earlier tool result). Do not repeat it: "
                    "use that result, ask for something different, or give your final answer."
                ),
                tool_call_id=call.get("id") or "",
                name=call.get("name"),
                status="error",
            )
        self.seen.add(signature)
        return await handler(request)
