"""The model client: ``ChatOllama`` (or, with ``SRE_AGENT_LLM_API=openai``, ``ChatOpenAI``
on an OpenAI-compatible server) whose failures are named where they happen, whose
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
import openai
from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
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
    openai.APIError,
    httpx.TransportError,
    ConnectionError,
)
#: What a model server that takes no JSON schema answers a request carrying one.
SCHEMA_REFUSED: tuple[type[BaseException], ...] = (
    ollama.ResponseError,
    openai.BadRequestError,
    openai.UnprocessableEntityError,
)
#: OpenAI's finish_reason as Ollama's done_reason (the record's word for how a call ended).
DONE_REASONS = {"tool_calls": "stop", "function_call": "stop"}

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
#: Characters of new content between two looks for a loop.
REPEAT_CHECK = 32


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
    content_chars: int = 0
    _looked_at: int = 0
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
        """One of Ollama's chunks."""
        message = part.message
        calls = message.tool_calls
        self.add(
            message.content or "",
            message.thinking or "",
            len(json.dumps([c.model_dump() for c in calls])) if calls else 0,
            final=bool(part.done),
        )
        if part.done:
            self.finish(part.done_reason, part.prompt_eval_count, part.eval_count)

    def add(
        self, content: str, thinking: str = "", tool_chars: int = 0, final: bool = False
    ) -> None:
        """One chunk of any API: its text, its thinking, the size of its tool calls."""
        self.chars += len(content) + len(thinking) + tool_chars
        if content:
            self.text.append(content)
            self.content_chars += len(content)
            self.tail = (self.tail + content)[-2 * REPEAT_WINDOW :]
        self.chunks += 1
        if not (content or thinking or tool_chars or final):
            self.empty += 1

    def finish(self, reason: str | None, prompt: int | None, completion: int | None) -> None:
        """The server's last word: why it stopped, and its counts (None: not sent)."""
        self.done = True
        self.done_reason = reason
        self.prompt_eval_count = prompt
        self.eval_count = completion

    def must_stop(self, limit: int | None, cap: str, missing: str) -> bool:
        """After a chunk: True when the content loops (we end the call, ``stopped_by_us``);
        raises :class:`ModelServerError` when the server generates far past ``limit``
        (``cap`` and the final word it never sent, ``missing``, say so)."""
        if self.looping() is not None:
            self.stopped_by_us = True
            return True
        if limit is not None and _runaway(self, limit):
            raise ModelServerError(
                f"the model server kept generating past {cap} (~{self.generated()} tokens,"
                f" {missing}): the call was stopped"
            )
        return False

    def looping(self) -> int | None:
        """The period of the loop the content ends in, if it ends in one (looked at every
        REPEAT_CHECK characters of content, whatever the size of the chunks)."""
        if self.content_chars - self._looked_at < REPEAT_CHECK:
            return None
        self._looked_at = self.content_chars
        return repetition(self.tail)


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


def _server_fault(exc: Exception, timeout: Any, api: str = "Ollama's chat") -> ModelServerError:
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
        what = f"sent a chunk that is not {api} format ({exc.__class__.__name__}: "
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
        limit = _runaway_limit(cap)
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
                if meter.must_stop(limit, f"num_predict={cap}", "no final chunk"):
                    # End the call here, as Ollama ends one at the cap.
                    final: Any = _final_part(part, "repetition")
                    meter.seen(final)
                    yield final
                    return
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


class OpenAIChat(ChatOpenAI):
    """``ChatOpenAI`` for an OpenAI-compatible model server (llama.cpp's server, vLLM, LM
    Studio, LocalAI), held to what :class:`OllamaChat` holds Ollama to: each chunk reaches
    the current :class:`CallMeter`, a looping answer is stopped, a server that ignores the
    cap is stopped past it, and whatever the server does wrong is a
    :class:`ModelServerError` (the API's own errors are ``openai.APIError``)."""

    async def _astream(  # type: ignore[override]
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        meter = _current.get() or CallMeter("unmetered")
        meter.request = self._get_request_payload(messages, stop=stop, **kwargs)  # ours
        limit = _runaway_limit(self.max_tokens)
        stream = super()._astream(messages, stop, run_manager, **kwargs)
        try:
            async for chunk in stream:
                message = chunk.message
                reason = (chunk.generation_info or {}).get("finish_reason")
                usage = getattr(message, "usage_metadata", None)
                content = without_surrogates(message.content) if message.content else ""
                if isinstance(content, str) and content != message.content:
                    message.content = content
                tool_chars = sum(
                    len(c.get("name") or "") + len(c.get("args") or "")
                    for c in getattr(message, "tool_call_chunks", None) or ()
                )
                if not usage or content or tool_chars or reason:
                    meter.add(content if isinstance(content, str) else "", "", tool_chars)
                if reason:  # counts that came first (a usage chunk) are kept
                    done = DONE_REASONS.get(reason, reason)
                    meter.finish(done, meter.prompt_eval_count, meter.eval_count)
                if usage:  # the last chunk when stream_options.include_usage is honoured
                    meter.prompt_eval_count = int(usage.get("input_tokens") or 0)
                    meter.eval_count = int(usage.get("output_tokens") or 0)
                yield chunk
                if meter.done:  # the usage chunk may still follow
                    continue
                if meter.must_stop(limit, f"max_tokens={self.max_tokens}", "no finish_reason"):
                    meter.finish("repetition", None, None)
                    yield ChatGenerationChunk(
                        message=AIMessageChunk(content=""),
                        generation_info={"finish_reason": "repetition"},
                    )
                    return
        except (ModelServerError, openai.APIError, ConnectionError):
            raise
        except Exception as exc:  # the request was built above: what breaks now is theirs
            raise _server_fault(exc, self.request_timeout, "the OpenAI chat-completion") from exc
        finally:
            with contextlib.suppress(Exception):  # the connection goes: the server stops
                await stream.aclose()  # type: ignore[attr-defined]
        if not meter.done:
            raise ModelServerError(
                f"the model server ended the answer without a finish_reason after"
                f" {meter.chunks} chunk(s)"
            )


def _runaway_limit(cap: Any) -> int | None:
    return int(cap * RUNAWAY_FACTOR) + RUNAWAY_SLACK if isinstance(cap, int) else None


def _runaway(meter: CallMeter, limit: int) -> bool:
    return meter.generated() > limit or meter.chars > limit * RUNAWAY_CHARS_PER_TOKEN


def constrained(model: BaseChatModel, schema: dict[str, Any]) -> Runnable[Any, Any]:
    """``model`` whose answer is held to the JSON ``schema`` as it is generated: Ollama's
    ``format``, or an OpenAI-compatible server's ``response_format`` (sent as is, so
    the answer streams and is metered like any other)."""
    if isinstance(model, ChatOllama):
        return model.model_copy(update={"format": schema})
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "analysis", "schema": schema},
    }
    extra = getattr(model, "extra_body", None) or {}
    return model.bind(extra_body={**extra, "response_format": response_format})


#: What a refusal of the schema names (a 400 for a prompt too long names none of them).
_SCHEMA_WORDS = ("response_format", "json_schema", "json schema", "grammar", "schema", "format")


def refused_schema(exc: BaseException) -> bool:
    """Whether a model server's error says it takes no JSON schema: a 400 or 422 whose
    message names the schema (not a prompt past the context, not a server that is down)."""
    if isinstance(exc, ContextOverflowError):
        return False
    if not isinstance(
        exc, openai.BadRequestError | openai.UnprocessableEntityError | ollama.ResponseError
    ):
        return False
    status: int = exc.status_code
    text = str(exc).lower()
    if isinstance(exc, ollama.ResponseError) and (
        "invalid json schema" in text or "grammar" in text
    ):
        return True  # Ollama: a 500, or an error in the stream (status -1)
    return status in (400, 422) and any(word in text for word in _SCHEMA_WORDS)


def server_down(exc: BaseException) -> bool:
    """Whether a model call's failure is worth trying again once the server answers: not
    when the server refused the request itself (a 4xx but timeouts and rate limits)."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APIStatusError | ollama.ResponseError) and isinstance(status, int):
        return not (400 <= status < 500) or status in (404, 408, 429)
    return True


def make_model(settings: Settings) -> BaseChatModel:
    """The model every agent of ours runs on (investigations and chat alike)."""
    if settings.llm_api == "openai":
        key = settings.openai_api_key
        return OpenAIChat(
            model=settings.model,
            base_url=settings.openai_base_url,
            api_key=key or SecretStr("none"),  # most servers want none
            temperature=0,
            max_completion_tokens=settings.num_predict,  # per call, as Ollama's num_predict...
            # ... sent as max_completion_tokens, which Ollama's own /v1 does not read.
            extra_body={"max_tokens": settings.num_predict},
            streaming=True,
            stream_usage=True,
            max_retries=0,  # the worker retries, once the server answers again
            timeout=settings.llm_timeout,  # httpx's: silence on the wire, as for Ollama
            # Not langchain-openai's own per-chunk timer: it waits with asyncio.wait_for,
            # which on Python 3.11 can drop the cancel of our deadline.
            stream_chunk_timeout=None,
            http_async_client=httpx.AsyncClient(
                timeout=settings.llm_timeout, event_hooks={"response": [bound_lines]}
            ),
        )
    return OllamaChat(
        model=settings.model,
        base_url=settings.ollama_url,
        temperature=0,
        num_ctx=settings.num_ctx,
        num_predict=settings.num_predict,  # per call: a looping model stops here
        client_kwargs={"timeout": settings.llm_timeout},
        async_client_kwargs={"event_hooks": {"response": [bound_lines]}},
    )
