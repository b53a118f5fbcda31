"""Logging, configured once by the CLI. Every line passes through ``redact``.

A record's message (and traceback) is cut to :data:`MESSAGE_CHARS` before it
is redacted, at a line break or a space so no half secret is left at the cut,
so one huge message costs a bounded time. Libraries that log what they carry
at DEBUG (aiosqlite and LangGraph: whole chat checkpoints; httpx: requests)
stay at WARNING whatever ``SRE_AGENT_LOG_LEVEL`` is.
"""

from __future__ import annotations

import logging
import sys

from sre_agent_tools.redact import PIECE_CHARS, redact

#: Longest message (and traceback) written; the rest is replaced by a note.
MESSAGE_CHARS = PIECE_CHARS
#: Library loggers kept at WARNING or above: their DEBUG lines hold bodies and conversations.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "urllib3",
    "kubernetes",
    "aiosqlite",
    "sqlite3",
    "langgraph",
    "langchain",
    "langchain_core",
    "langchain_ollama",
    "langsmith",
    "ollama",
    "multipart",
    "python_multipart",
)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to about ``limit`` characters at a break, with a note of what was cut."""
    if len(text) <= limit:
        return text
    lo = max(0, limit - 4096)
    cut = max(text.rfind("\n", lo, limit), text.rfind(" ", lo, limit))
    cut = cut if cut != -1 else lo  # one token longer than 4 KiB: drop its end with the rest
    return f"{text[:cut]} [... {len(text) - cut} characters cut]"


class RedactingFilter(logging.Filter):
    """Masks secret-looking values in the formatted message (and the traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        cleaned = redact(clip(message))
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(clip(record.exc_text))
        if record.stack_info:
            record.stack_info = redact(clip(record.stack_info))
        return True


def configure_logging(level: str = "INFO", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
