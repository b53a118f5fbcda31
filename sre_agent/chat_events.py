"""Chat events from LangGraph's ``messages`` and ``updates`` streams.

Events are ``(kind, data)``: ``token`` ``{"text"}``, ``tool_call``
``{"name", "args"}``, ``tool_result`` ``{"name", "status", "size"}``; the chat
service adds ``done`` ``{"answer", "usage"}`` and ``error`` ``{"error"}``.

Tokens come from the model's raw stream, before any middleware, so this is where
the model's text enters the API: it goes out word by word, each time as the redacted
line so far (a secret split over two chunks goes out whole, masked; a value after
``password:`` is masked by the line it is in).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from sre_agent_tools import ToolResult
from sre_agent_tools.redact import redact

from sre_agent.findings import without_id

Event = tuple[str, Any]

#: A line longer than this is cut: redacting a line again per word stays cheap.
LINE_CHARS = 4000


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
        #: Per message, the line being written (from its start) and, of its redacted
        #: text, what has gone out.
        self._line: dict[str, str] = {}
        self._sent: dict[str, str] = {}

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
        if ident not in self._flowing:
            held = self._held.get(ident, "") + text
            if _maybe_tool_call(held):
                self._held[ident] = held
                return []
            self._held.pop(ident, None)
            self._flowing.add(ident)
            text = held
        events: list[Event] = []
        line = self._line.get(ident, "") + text
        while "\n" in line or len(line) > LINE_CHARS:  # lines that ended: out whole
            end = line.find("\n") + 1 or LINE_CHARS
            events += self._send(ident, line[:end])
            self._sent.pop(ident, None)
            line = line[end:]
        self._line[ident] = line
        words = max(line.rfind(" "), line.rfind("\t")) + 1  # complete words only
        if words:
            events += self._send(ident, line[:words])
        return events

    def _send(self, ident: str, text: str) -> list[Event]:
        """``text`` (the line so far) redacted, less what of it went out already."""
        clean, sent = redact(text), self._sent.get(ident, "")
        # Redacting more of a line does not change what went out (whole words, masked
        # as they were then); if it ever does, the new part goes out redacted alone.
        new = clean[len(sent) :] if clean.startswith(sent) else redact(text[len(sent) :])
        self._sent[ident] = clean
        return [("token", {"text": new})] if new else []

    def close(self) -> list[Event]:
        """What is still waiting for its word's end, when the stream ends."""
        return [event for ident in list(self._line) for event in self._flush(ident)]

    def _flush(self, ident: str) -> list[Event]:
        line = self._line.pop(ident, "")
        events = self._send(ident, line) if line else []
        self._sent.pop(ident, None)
        return events

    def _complete(self, message: Any) -> list[Event]:
        events: list[Event] = []
        if isinstance(message, AIMessage):
            held = self._held.pop(message.id or "", "")
            events.extend(self._flush(message.id or ""))
            if message.tool_calls:
                for call in message.tool_calls:
                    events.append(("tool_call", {"name": call["name"], "args": call["args"]}))
                return events
            content = message.content if isinstance(message.content, str) else ""
            if held:
                events.append(("token", {"text": redact(held)}))
            elif content and message.id not in self._streamed:
                events.append(("token", {"text": redact(content)}))  # e.g. the call-limit notice
            self.answer = redact(content.strip())
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
