"""What a scripted model answers: the replies :meth:`FakeOllama.enqueue` takes (:func:`say`,
:func:`call`, :func:`calls`, :func:`fail`, :func:`hang`, a :class:`Wire`), and the honest
token estimates the fake reports (one token per 4 characters, rounded up, at least 1).
Both APIs the fake speaks (Ollama's ``/api/chat``, OpenAI's ``/v1/chat/completions``) use
them; the helpers read either request form.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.ollama_http import WireWriter

DEFAULT_MODEL = "qwen2.5:7b-instruct"

# --- replies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """The assistant answers with text (and optionally tool calls)."""

    content: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    thinking: str | None = None
    done_reason: str = "stop"
    prompt_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Fail:
    """Ollama answers an HTTP error with its usual ``{"error": ...}`` body."""

    status: int = 500
    error: str = "fake ollama: scripted failure"


@dataclass(frozen=True)
class Hang:
    """Nothing is sent for ``seconds``, then ``then`` is answered (if the client still waits)."""

    seconds: float
    then: Reply = field(default_factory=lambda: Say("(late reply)"))


@dataclass(frozen=True)
class Wire:
    """The reply is written byte by byte by ``write(wire, request)``: for model servers that
    break the protocol (see :mod:`tests.support.ollama_faults`)."""

    write: Callable[[WireWriter, dict[str, Any]], None]


Reply = Say | Fail | Hang | Wire | str | Callable[[dict[str, Any]], Any]


def say(
    text: str,
    *,
    thinking: str | None = None,
    done_reason: str = "stop",
    prompt_tokens: int | None = None,
    output_tokens: int | None = None,
) -> Say:
    """Assistant content. ``prompt_tokens``/``output_tokens`` override the estimated counts."""
    return Say(text, (), thinking, done_reason, prompt_tokens, output_tokens)


def answer_json(obj: Any, **kwargs: Any) -> Say:
    """Assistant content that is ``obj`` as JSON (what ``format=`` asks the model for)."""
    return say(json.dumps(obj), **kwargs)


def call(name: str, /, **arguments: Any) -> Say:
    """One tool call ``name(**arguments)``."""
    return Say("", ((name, arguments),))


def calls(
    tool_calls: Sequence[tuple[str, dict[str, Any]]], *, content: str = "", **kwargs: Any
) -> Say:
    """Several tool calls in one assistant message, optionally with some content."""
    return Say(content, tuple((name, dict(args)) for name, args in tool_calls), **kwargs)


def fail(status: int = 500, error: str = "fake ollama: scripted failure") -> Fail:
    """An HTTP error reply, e.g. ``fail(500, "llama runner process has terminated")``."""
    return Fail(status, error)


def hang(seconds: float, then: Reply | None = None) -> Hang:
    """Send nothing for ``seconds`` (to trip client timeouts), then answer ``then``."""
    return Hang(seconds, then if then is not None else Say("(late reply)"))


# --- token estimates -----------------------------------------------------------------------


def approx_tokens(text: str) -> int:
    """One token per 4 characters, rounded up, at least 1: good enough for budget tests."""
    return max(1, math.ceil(len(text) / 4))


def prompt_eval_count(request: dict[str, Any]) -> int:
    """Estimated prompt tokens: every message's content (and tool calls) plus the tool schemas.

    Reads Ollama and OpenAI requests alike (OpenAI content may be a list of parts: their
    ``text`` counts). ``format``/``response_format`` is not counted: it is applied as a
    grammar, not as prompt text.
    """
    parts: list[str] = []
    for message in request.get("messages") or []:
        parts.append(_text(message.get("content")))
        if message.get("tool_calls"):
            parts.append(json.dumps(message["tool_calls"]))
    if request.get("tools"):
        parts.append(json.dumps(request["tools"]))
    return approx_tokens("".join(parts))


def _text(content: Any) -> str:
    """A message's text: a string, or the ``text`` of OpenAI's content parts."""
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content or "")


def eval_count(reply: Say) -> int:
    """Estimated output tokens: the content, thinking and tool calls as JSON."""
    text = reply.content + (reply.thinking or "")
    if reply.tool_calls:
        text += json.dumps([{"name": n, "arguments": a} for n, a in reply.tool_calls])
    return approx_tokens(text)


def usage_counts(request: dict[str, Any], reply: Say) -> tuple[int, int]:
    """(prompt, output) tokens reported for ``reply``: its overrides, else the estimates."""
    return (
        reply.prompt_tokens or prompt_eval_count(request),
        reply.output_tokens or eval_count(reply),
    )


def num_predict(request: dict[str, Any]) -> int | None:
    """The request's generation cap: Ollama's ``options.num_predict``, or on the OpenAI API
    ``max_completion_tokens`` (what ``ChatOpenAI(max_tokens=...)`` sends) or the older
    ``max_tokens``, the first one present winning, as vLLM reads them."""
    options = request.get("options")
    candidates = (
        options.get("num_predict") if isinstance(options, dict) else None,
        request.get("max_completion_tokens"),
        request.get("max_tokens"),
    )
    value = next((v for v in candidates if v is not None), None)
    return value if isinstance(value, int) and value > 0 else None


def capped(request: dict[str, Any], reply: Say) -> Say:
    """What Ollama does with a reply longer than :func:`num_predict`: it stops generating
    there and says ``done_reason: "length"`` (the tool calls it never reached are not sent);
    on the OpenAI API that is ``finish_reason: "length"``."""
    cap = num_predict(request)
    wanted = reply.output_tokens or eval_count(reply)
    if cap is None or wanted <= cap:
        return reply
    thinking = (reply.thinking or "")[: cap * 4]
    content = reply.content[: max(0, cap * 4 - len(thinking))]
    return Say(content, (), thinking or None, "length", reply.prompt_tokens, cap)


# --- streaming -----------------------------------------------------------------------------


def stream_pieces(text: str, parts: int = 3) -> list[str]:
    """``text`` split over a few streamed chunks, as a model sends it (none when empty)."""
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
