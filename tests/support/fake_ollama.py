"""A scripted Ollama server for tests: the real ``ChatOllama``/``ollama`` clients talk to it,
and so do ``ChatOpenAI``/``openai`` through the OpenAI-compatible API Ollama serves at
``/v1`` (as llama.cpp's llama-server, vLLM and LM Studio do).

It speaks the parts of Ollama's HTTP API those clients use, byte-compatible with what
they parse (``ollama/_client.py``, ``ollama/_types.py``, ``langchain_ollama/chat_models.py``):

- ``GET /`` -> ``Ollama is running``; ``GET /api/version``; ``GET /api/tags``;
  ``POST /api/show`` (with ``capabilities``);
- ``POST /api/chat``: ``stream: true`` (the ``ChatOllama`` default) answers NDJSON over
  chunked encoding -- content split over a few chunks, tool calls in their own chunk, then a
  ``done: true`` chunk carrying ``done_reason``, ``prompt_eval_count``, ``eval_count`` and
  durations in nanoseconds; ``stream: false`` answers the same as one JSON object.
- An unknown model answers 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``.
- ``options.num_predict`` is honoured as Ollama does: a longer reply stops there, with
  ``done_reason: "length"`` and ``eval_count`` equal to the cap.
- Under ``/v1`` (base URL ``fake.url + "/v1"``, byte-compatible with ``openai``'s
  ``_streaming.py`` and ``langchain_openai/chat_models/base.py``): ``GET /v1/models`` (and
  ``/v1/models/{model}``); ``POST /v1/chat/completions`` with ``"stream": true`` answers
  Server-Sent Events of ``chat.completion.chunk`` objects (content over a few chunks, one
  delta per tool call, a ``finish_reason`` chunk, a ``usage`` chunk when
  ``stream_options.include_usage``, then ``data: [DONE]``), otherwise one
  ``chat.completion``. ``max_completion_tokens``/``max_tokens`` cap the reply like
  ``num_predict`` (``finish_reason: "length"``). Errors there -- an unknown model's 404, a
  :func:`fail`, ``unavailable = "busy"`` -- have OpenAI's body,
  ``{"error": {"message": ..., "type": "api_error", "param": null, "code": null}}``.
  ``response_format`` is recorded, not enforced.

Replies are scripted with :meth:`FakeOllama.enqueue`, one consumed per chat request on
either API, ``/api/chat`` or ``/v1/chat/completions`` (see :func:`say`, :func:`call`,
:func:`calls`, :func:`fail`, :func:`hang`, a :class:`Wire` reply that writes raw bytes --
broken servers, in ``ollama_faults.py`` -- or a callable ``(request_json) -> reply``). When the queue is empty :attr:`FakeOllama.default`
answers, which by default is a 500 so an unscripted model call fails loudly.

Token counts are an honest approximation, not a tokenizer: one token per 4 characters,
rounded up, at least 1 (see :func:`prompt_eval_count` and :func:`eval_count`).
``ChatOllama`` turns them into ``usage_metadata`` as ``input_tokens = prompt_eval_count``,
``output_tokens = eval_count``; on ``/v1`` they are ``usage.prompt_tokens`` and
``usage.completion_tokens``, which ``ChatOpenAI`` maps the same way.

This module holds the server's state and script; the replies and token estimates are
:mod:`tests.support.ollama_replies`, the HTTP handler :mod:`tests.support.ollama_http`,
the ``/v1`` bodies :mod:`tests.support.openai_http`. :attr:`FakeOllama.requests` holds
every chat request body as received, in the form of the API it came by.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pytest

from tests.support.net import free_port
from tests.support.ollama_http import OllamaHTTPServer, WireWriter
from tests.support.ollama_replies import (
    DEFAULT_MODEL,
    Fail,
    Hang,
    Reply,
    Say,
    Wire,
    answer_json,
    approx_tokens,
    call,
    calls,
    eval_count,
    fail,
    hang,
    num_predict,
    prompt_eval_count,
    say,
)


class FakeOllama:
    """A scripted Ollama on ``127.0.0.1``; use as a context manager or ``start()``/``stop()``."""

    def __init__(self, models: Sequence[str] = (DEFAULT_MODEL,), *, port: int = 0) -> None:
        self.models = list(models)
        self.default: Reply = fail(500, "fake ollama: no scripted reply left")
        # None (healthy), "busy" (503 like an overloaded Ollama), or "drop" (close the
        # connection without answering, like a crashing server).
        self.unavailable: Literal["busy", "drop"] | None = None
        self.requests: list[dict[str, Any]] = []
        self.raw_bodies: list[bytes] = []
        self.paths: list[str] = []  # "POST /api/chat", "GET /v1/models", ...
        self._port = port
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: OllamaHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # lifecycle

    def start(self) -> FakeOllama:
        self._stopped.clear()
        self._listen()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.stop_accepting()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def stop_accepting(self) -> None:
        """Ollama goes down: the port refuses connections and open connections are cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def resume(self) -> None:
        """Ollama comes back on the same port."""
        if self._server is None:
            self._listen()

    def _listen(self) -> None:
        self._server = OllamaHTTPServer(self._port, self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns quickly
            name=f"fake-ollama-{self._port}",
            daemon=True,
        )
        self._thread.start()

    # scripting and inspection

    def enqueue(self, *replies: Reply) -> None:
        """Append replies; each chat request (``/api/chat``, ``/v1/chat/completions``)
        consumes the next one. A callable reply gets the request in its API's form."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._replies)

    @property
    def chat_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def received_text(self) -> str:
        """Every request body received, decoded, for grepping (e.g. for leaked secrets)."""
        with self._lock:
            return "\n".join(b.decode("utf-8", "replace") for b in self.raw_bodies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else self.default

    def _knows(self, model: str) -> bool:
        wanted = model if ":" in model else f"{model}:latest"
        return wanted in {m if ":" in m else f"{m}:latest" for m in self.models}


@pytest.fixture(name="fake_ollama")
def fake_ollama_fixture() -> Iterator[FakeOllama]:
    """A started :class:`FakeOllama` serving ``qwen2.5:7b-instruct``; stopped afterwards.

    Import either name into a conftest or test module; ``fake_ollama_fixture`` avoids
    ruff's F811 where test parameters are called ``fake_ollama``.
    """
    with FakeOllama() as fake:
        yield fake


fake_ollama = fake_ollama_fixture


__all__ = [
    "DEFAULT_MODEL",
    "Fail",
    "FakeOllama",
    "Hang",
    "Reply",
    "Say",
    "Wire",
    "WireWriter",
    "answer_json",
    "approx_tokens",
    "call",
    "calls",
    "eval_count",
    "fail",
    "fake_ollama",
    "fake_ollama_fixture",
    "free_port",
    "hang",
    "num_predict",
    "prompt_eval_count",
    "say",
]
