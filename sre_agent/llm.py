"""The model client: ``ChatOllama`` whose failures are named where they happen, whose
generation is capped, and whose every call is metered.

Everything between sending a request and Ollama's final chunk -- the connection, the
NDJSON lines, their shape, how the stream ends -- is the model server's part. Whatever
goes wrong there becomes one :class:`ModelServerError` that says what the server did
(a line that is not JSON, a cut stream, silence, tokens past ``num_predict``). Building
the request (our messages) happens outside that region, and so do our middleware and the
parsing of the analysis: their exceptions stay bugs of ours, never "Ollama failed".

A :class:`CallMeter` made current with :func:`metering` sees each call's chunks as they
arrive, so a call cut short by a deadline still tells how far it got.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
import ollama
from langchain_core.messages import BaseMessage
from langchain_ollama import ChatOllama
from sre_agent_tools.redact import redact

from sre_agent import tokens
from sre_agent.analysis import without_surrogates
from sre_agent.errors import ModelServerError
from sre_agent.settings import Settings

#: What a model call raises when the model server fails (down, refused, an HTTP error,
#: garbage, a broken stream): the one place that says so.
LLM_ERRORS: tuple[type[BaseException], ...] = (
    ModelServerError,
    ollama.ResponseError,
    httpx.TransportError,
    ConnectionError,
)

#: A server that ignores ``num_predict`` is stopped by us past this share of it (with some
#: slack: a chunk can be less than a token) ...
RUNAWAY_FACTOR = 1.5
RUNAWAY_SLACK = 32
#: ... or past this many characters per token of it (chunks of any size).
RUNAWAY_CHARS_PER_TOKEN = 16
#: The longest NDJSON line read from the model server (a chunk is a few hundred bytes):
#: a body without line breaks must not grow in memory until the deadline.
MAX_LINE_BYTES = 1024 * 1024
#: A call whose last REPEAT_WINDOW characters are one piece of at most REPEAT_MAX_PERIOD
#: characters over and over is looping: it is stopped there (``done_reason: "repetition"``,
#: ours) instead of burning the GPU up to num_predict.
REPEAT_WINDOW = 512
REPEAT_MAX_PERIOD = 128


@dataclass
class CallMeter:
    """One model call as it happens: what was sent, what streamed back, how it ended."""

    kind: str
    started: float = field(default_factory=time.perf_counter)
    request: Mapping[str, Any] | None = None
    chunks: int = 0
    #: Chunks that carried nothing (no text, no tool call): each still counts as a token.
    empty: int = 0
    chars: int = 0
    text: list[str] = field(default_factory=list)
    #: The latest content, for spotting a loop.
    tail: str = ""
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    #: We ended the call (a loop), so the counts are ours, not Ollama's.
    stopped_by_us: bool = False

    def estimate_prompt(self) -> int:
        """The prompt's tokens by our tokenizer (for a call whose final chunk never came)."""
        if not self.request:
            return 0
        return tokens.count_chat(
            self.request.get("messages") or (), self.request.get("tools") or ()
        )

    def generated(self) -> int:
        """Tokens generated so far, at least: a chunk is a token, or a few characters."""
        return min(self.chunks - self.empty, math.ceil(self.chars / 3)) + self.empty

    def adopt(self, message: BaseMessage) -> None:
        """Usage reported on the answer itself, when no chunk reached this meter (a model
        that is not :class:`OllamaChat`)."""
        usage = getattr(message, "usage_metadata", None)
        if not self.done and self.chunks == 0 and usage:
            self.done = True
            self.done_reason = getattr(message, "response_metadata", {}).get("done_reason")
            self.prompt_eval_count = int(usage.get("input_tokens", 0))
            self.eval_count = int(usage.get("output_tokens", 0))

    def seen(self, part: ollama.ChatResponse) -> None:
        message = part.message
        for text in (message.content, message.thinking):
            if text:
                self.chars += len(text)
        if message.content:
            self.text.append(message.content)
            self.tail = (self.tail + message.content)[-2 * REPEAT_WINDOW :]
        if message.tool_calls:
            self.chars += len(json.dumps([c.model_dump() for c in message.tool_calls]))
        self.chunks += 1
        if not (message.content or message.thinking or message.tool_calls or part.done):
            self.empty += 1
        if part.done:
            self.done = True
            self.done_reason = part.done_reason
            self.prompt_eval_count = part.prompt_eval_count
            self.eval_count = part.eval_count

    def looping(self) -> int | None:
        """The period of the loop the content ends in, if it ends in one."""
        return repetition(self.tail) if self.chunks % 8 == 0 else None


def repetition(text: str) -> int | None:
    """The smallest period (<= REPEAT_MAX_PERIOD) of ``text``'s last REPEAT_WINDOW
    characters, when they are one piece repeated; else None."""
    if len(text) < REPEAT_WINDOW:
        return None
    window = text[-REPEAT_WINDOW:]
    if len(set(window)) == 1:
        return 1
    for period in range(2, REPEAT_MAX_PERIOD + 1):
        if window[period:] == window[:-period]:
            return period
    return None


_current: ContextVar[CallMeter | None] = ContextVar("sre_agent_call_meter", default=None)


@contextmanager
def metering(meter: CallMeter) -> Iterator[CallMeter]:
    """Make ``meter`` the one the model calls of this task (and its children) report to."""
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return redact(f"{exc.__class__.__name__}: {text}")[:500]


def _excerpt(text: str, limit: int = 80) -> str:
    text = text.strip()
    return redact(text[:limit] + ("…" if len(text) > limit else ""))


def _server_fault(exc: Exception, timeout: Any) -> ModelServerError:
    """What the model server did, from what its client raised while reading the answer."""
    if isinstance(exc, json.JSONDecodeError):
        what = f"sent a line that is not JSON: {_excerpt(exc.doc)!r}"
    elif isinstance(exc, httpx.TimeoutException):
        what = f"sent nothing for {timeout} s (SRE_AGENT_LLM_TIMEOUT)"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = f"broke off the answer ({describe_error(exc)})"
    elif isinstance(exc, httpx.TransportError):
        what = f"could not be read ({describe_error(exc)})"
    else:  # pydantic's ValidationError, or a JSON value that is not an object at all
        first = str(exc).strip().splitlines()
        what = f"sent a chunk that is not Ollama's chat format ({exc.__class__.__name__}: "
        what += f"{_excerpt(' '.join(first[:3]), 200)})"
    return ModelServerError(f"the model server {what}")


def _clean(part: ollama.ChatResponse) -> ollama.ChatResponse:
    """Where the model's text enters: no lone surrogates (they can be neither stored nor
    encoded; JSON's ``\\ud800`` makes them) and no null content (no content is "")."""
    message = part.message
    message.content = without_surrogates(message.content or "")
    if message.thinking:
        message.thinking = without_surrogates(message.thinking)
    for call in message.tool_calls or ():
        call.function.arguments = without_surrogates(call.function.arguments)
    return part


class _BoundedLines(httpx.AsyncByteStream):
    """A response body that may not run longer than ``limit`` bytes without a line break."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        open_line = 0
        async for data in self._stream:
            end = data.rfind(b"\n")
            open_line = len(data) - end - 1 if end >= 0 else open_line + len(data)
            if open_line > self._limit:
                raise ModelServerError(
                    f"the model server sent a line of more than {self._limit} bytes"
                )
            yield data

    async def aclose(self) -> None:
        await self._stream.aclose()


async def bound_lines(response: httpx.Response) -> None:
    """An httpx response hook: the body is read through :class:`_BoundedLines` (a hook,
    not a transport of ours, so proxies and TLS settings stay httpx's own)."""
    if isinstance(response.stream, httpx.AsyncByteStream):
        response.stream = _BoundedLines(response.stream, MAX_LINE_BYTES)


class OllamaChat(ChatOllama):
    """``ChatOllama`` whose model-server faults are :class:`ModelServerError` (see above).

    Build it with ``async_client_kwargs={"event_hooks": {"response": [bound_lines]}}`` so
    that no line of the answer can grow without bound.
    """

    async def _acreate_chat_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Mapping[str, Any] | str]:
        params = self._chat_params(messages, stop, **kwargs)  # our side: errors are ours
        meter = _current.get() or CallMeter("unmetered")
        meter.request = params
        cap = (params.get("options") or {}).get("num_predict")
        limit = int(cap * RUNAWAY_FACTOR) + RUNAWAY_SLACK if isinstance(cap, int) else None
        client = self._async_client
        if client is None:  # pragma: no cover - ChatOllama builds it
            raise RuntimeError("Ollama async client is not initialized")
        parts: Any = None
        try:
            response = await client.chat(**params)
            parts = response if params["stream"] else _single(response)
            async for part in parts:
                meter.seen(_clean(part))
                yield part
                if part.done:  # Ollama's last word: anything after it is not read
                    return
                period = meter.looping()
                if period is not None:  # end the call here, as Ollama ends one at the cap
                    meter.stopped_by_us = True
                    final: Any = _final_part(part, "repetition")
                    meter.seen(final)
                    yield final
                    return
                if limit is not None and (
                    meter.generated() > limit or meter.chars > limit * RUNAWAY_CHARS_PER_TOKEN
                ):
                    raise ModelServerError(
                        f"the model server kept generating past num_predict={cap}"
                        f" (~{meter.generated()} tokens, no final chunk): the call was stopped"
                    )
        except (ModelServerError, ollama.ResponseError, ConnectionError):
            raise
        except Exception as exc:
            raise _server_fault(exc, (self.client_kwargs or {}).get("timeout")) from exc
        finally:
            # Close the response now, not when it is collected: a server still generating
            # sees the connection go and stops (Ollama does), and the pool gets it back.
            if parts is not None and hasattr(parts, "aclose"):
                with contextlib.suppress(Exception):  # the fault above is the one to tell
                    await parts.aclose()
        raise ModelServerError(
            f"the model server ended the answer without its final chunk (done) after"
            f" {meter.chunks} chunk(s)"
        )


def _final_part(last: ollama.ChatResponse, reason: str) -> ollama.ChatResponse:
    """A final chunk of ours, for a call we end: no counts (the record estimates them)."""
    return ollama.ChatResponse(
        model=last.model,
        created_at=last.created_at,
        done=True,
        done_reason=reason,
        message=ollama.Message(role="assistant", content=""),
    )


async def _single(response: ollama.ChatResponse) -> AsyncIterator[ollama.ChatResponse]:
    yield response


def make_model(settings: Settings) -> OllamaChat:
    """The model every agent of ours runs on (investigations and chat alike)."""
    return OllamaChat(
        model=settings.model,
        base_url=settings.ollama_url,
        temperature=0,
        num_ctx=settings.num_ctx,
        num_predict=settings.num_predict,  # per call: a looping model stops here
        client_kwargs={"timeout": settings.llm_timeout},
        async_client_kwargs={"event_hooks": {"response": [bound_lines]}},
    )
