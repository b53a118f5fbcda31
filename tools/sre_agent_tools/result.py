"""What every tool returns: a status the agent and the records can rely on, and compact text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sre_agent_tools.redact import redact

Status = Literal["ok", "error", "no_data"]

#: Default cap on the text one tool call hands back to the model.
DEFAULT_OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer, capped by the tool itself. ``text`` is redacted here, where every
    tool output is made: the gatherer and the agent's tool calls read it as it is."""

    status: Status
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", redact(self.text))

    def render(self) -> str:
        """The string the model sees: a one-word status line, then the text."""
        return f"status: {self.status}\n{self.text}"

    @staticmethod
    def status_of(rendered: str) -> Status:
        """Read the status back from a rendered result (used when recording tool calls)."""
        first = rendered.split("\n", 1)[0]
        if first.startswith("status: "):
            value = first.removeprefix("status: ").strip()
            if value in ("ok", "error", "no_data"):
                return value  # type: ignore[return-value]
        return "ok"


def cap(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 60)
    return text[:keep] + f"\n… [truncated: {len(text) - keep} more characters]"
