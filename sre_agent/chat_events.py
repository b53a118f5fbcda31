"""Chat events from LangGraph's ``messages`` and ``updates`` streams.

Events are ``(kind, data)``: ``token`` ``{"text"}``, ``tool_call``
``{"name", "args"}``, ``tool_result`` ``{"name", "status", "size"}``; the chat
service adds ``done`` ``{"answer", "usage"}`` and ``error`` ``{"error"}``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from sre_agent_tools import ToolResult

from sre_agent.findings import without_id

Event = tuple[str, Any]


class EventStream:
    """Turns LangGraph's ``messages`` and ``updates`` streams into chat events.

    Text that may be a tool call written as text (``{...}``, ``<tool_call>``) is
    held back until the model's message is complete: TextToolCalls may turn it
    into a real call, which the user should see as a tool call, not as text.
    """

    def __init__(self) -> None:
        self.answer = ""
        self._held: dict[str, str] = {}
        self._flowing: set[str] = set()
        self._streamed: set[str] = set()

    def feed(self, mode: str, chunk: Any) -> list[Event]:
        if mode == "messages":
            message, _meta = chunk
            if isinstance(message, AIMessageChunk) and isinstance(message.content, str):
                return self._token(message.id or "", message.content)
            return []
        events: list[Event] = []
        for update in (chunk or {}).values():
            for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                events.extend(self._complete(message))
        return events

    def _token(self, ident: str, text: str) -> list[Event]:
        if not text:
            return []
        self._streamed.add(ident)
        if ident in self._flowing:
            return [("token", {"text": text})]
        held = self._held.get(ident, "") + text
        if _maybe_tool_call(held):
            self._held[ident] = held
            return []
        self._held.pop(ident, None)
        self._flowing.add(ident)
        return [("token", {"text": held})]

    def _complete(self, message: Any) -> list[Event]:
        events: list[Event] = []
        if isinstance(message, AIMessage):
            held = self._held.pop(message.id or "", "")
            if message.tool_calls:
                for call in message.tool_calls:
                    events.append(("tool_call", {"name": call["name"], "args": call["args"]}))
                return events
            content = message.content if isinstance(message.content, str) else ""
            if held:
                events.append(("token", {"text": held}))
            elif content and message.id not in self._streamed:
                events.append(("token", {"text": content}))  # e.g. the call-limit notice
            self.answer = content.strip()
        elif isinstance(message, ToolMessage):
            text = str(message.content)
            status = (
                "error" if message.status == "error" else ToolResult.status_of(without_id(text))
            )
            events.append(
                ("tool_result", {"name": message.name, "status": status, "size": len(text)})
            )
        return events


def _maybe_tool_call(text: str) -> bool:
    """Could this start of a reply still turn out to be a tool call written as text?"""
    head = text.lstrip()
    if not head or head[0] in "{[":
        return True
    if head.startswith("<tool_call>") or "<tool_call>".startswith(head):
        return True
    if head.startswith("```"):
        line_end = head.find("\n")
        rest = head[line_end + 1 :].lstrip() if line_end >= 0 else ""
        return line_end < 0 or not rest or rest[0] in "{["
    return "```".startswith(head)
