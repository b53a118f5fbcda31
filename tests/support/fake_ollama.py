"""A scripted Ollama server for tests: the real ``ChatOllama``/``ollama`` clients talk to it.

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

Replies are scripted with :meth:`FakeOllama.enqueue`, one consumed per ``/api/chat``
request (see :func:`say`, :func:`call`, :func:`calls`, :func:`fail`, :func:`hang`, a
:class:`Wire` reply that writes raw bytes -- broken servers, in ``ollama_faults.py`` -- or a
callable ``(request_json) -> reply``). When the queue is empty :attr:`FakeOllama.default`
answers, which by default is a 500 so an unscripted model call fails loudly.

Token counts are an honest approximation, not a tokenizer: one token per 4 characters,
rounded up, at least 1 (see :func:`prompt_eval_count` and :func:`eval_count`).
``ChatOllama`` turns them into ``usage_metadata`` as ``input_tokens = prompt_eval_count``,
``output_tokens = eval_count``.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

DEFAULT_MODEL = "qwen2.5:7b-instruct"
OLLAMA_VERSION = "0.12.6"
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"


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

    ``format`` is not counted: Ollama applies it as a grammar, not as prompt text.
    """
    parts: list[str] = []
    for message in request.get("messages") or []:
        parts.append(str(message.get("content") or ""))
        if message.get("tool_calls"):
            parts.append(json.dumps(message["tool_calls"]))
    if request.get("tools"):
        parts.append(json.dumps(request["tools"]))
    return approx_tokens("".join(parts))


def eval_count(reply: Say) -> int:
    """Estimated output tokens: the content, thinking and tool calls as JSON."""
    text = reply.content + (reply.thinking or "")
    if reply.tool_calls:
        text += json.dumps([{"name": n, "arguments": a} for n, a in reply.tool_calls])
    return approx_tokens(text)


def num_predict(request: dict[str, Any]) -> int | None:
    """The request's generation cap (``options.num_predict``), as Ollama reads it."""
    value = (request.get("options") or {}).get("num_predict")
    return value if isinstance(value, int) and value > 0 else None


def _capped(request: dict[str, Any], reply: Say) -> Say:
    """What Ollama does with a reply longer than ``num_predict``: it stops generating there
    and says ``done_reason: "length"`` (the tool calls it never reached are not sent)."""
    cap = num_predict(request)
    wanted = reply.output_tokens or eval_count(reply)
    if cap is None or wanted <= cap:
        return reply
    thinking = (reply.thinking or "")[: cap * 4]
    content = reply.content[: max(0, cap * 4 - len(thinking))]
    return Say(content, (), thinking or None, "length", reply.prompt_tokens, cap)


class WireWriter:
    """What a :class:`Wire` reply writes with: a status line and headers, body bytes (chunked
    or not), and the end of the body, a cut connection, or a stall."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self.chunked = False

    @property
    def stopped(self) -> threading.Event:
        """Set when the fake stops: a reply that waits or loops must end then."""
        return self._handler.server.fake._stopped

    def headers(
        self,
        status: int = 200,
        content_type: str = "application/x-ndjson",
        *,
        chunked: bool = True,
        length: int | None = None,
    ) -> None:
        self._handler.send_response(status)
        self._handler.send_header("Content-Type", content_type)
        if chunked:
            self._handler.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self._handler.send_header("Content-Length", str(length))
        self._handler.end_headers()
        self._handler.wfile.flush()
        self.chunked = chunked

    def write(self, data: bytes) -> None:
        """Body bytes (one HTTP chunk when chunked); raises when the client has gone."""
        wfile = self._handler.wfile
        wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        wfile.flush()

    def line(self, obj: Any) -> None:
        """One NDJSON line: ``obj`` as JSON (a ``str``/``bytes`` is sent as it is)."""
        if isinstance(obj, str):
            data = obj.encode()
        elif isinstance(obj, bytes):
            data = obj
        else:
            data = json.dumps(obj).encode()
        self.write(data + b"\n")

    def chunk(self, request: dict[str, Any], content: str = "", **fields: Any) -> dict[str, Any]:
        """A well-formed streaming chunk, as Ollama sends them (``done`` false unless given)."""
        return {
            "model": request.get("model"),
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": False,
            **fields,
        }

    def end(self) -> None:
        """The body ends properly (the last chunk of a chunked body)."""
        if self.chunked:
            self._handler.wfile.write(b"0\r\n\r\n")
            self._handler.wfile.flush()

    def cut(self) -> None:
        """The connection closes mid-body, like a server that crashed."""
        try:
            self._handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (for the "Ollama is not running" case)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, fake: FakeOllama) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)


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
        self.paths: list[str] = []  # "POST /api/chat", "GET /api/tags", ...
        self._port = port
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: _Server | None = None
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
        self._server = _Server(self._port, self)
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
        """Append replies; each ``/api/chat`` request consumes the next one."""
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


# --- HTTP ----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-06-01T12:00:00.000000000Z",
        "size": 4683087332,
        "digest": _digest(name),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "qwen2",
            "families": ["qwen2"],
            "parameter_size": "7.6B",
            "quantization_level": "Q4_K_M",
        },
    }


def _show(name: str) -> dict[str, Any]:
    tag = _tag(name)
    return {
        "license": "Apache License 2.0",
        "modelfile": f"# Modelfile generated by fake ollama\nFROM {name}\n",
        "parameters": 'stop "<|im_start|>"\nstop "<|im_end|>"',
        "template": "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n",
        "details": tag["details"],
        "model_info": {
            "general.architecture": "qwen2",
            "general.parameter_count": 7615616512,
            "qwen2.context_length": 32768,
            "qwen2.embedding_length": 3584,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": tag["modified_at"],
    }


def _split(text: str, parts: int = 3) -> list[str]:
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle and delayed ACKs
    # add ~40 ms to every keep-alive response (a real API server has no such delay).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # plumbing

    def _dispatch(self) -> None:
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with fake._lock:
            fake.raw_bodies.append(body)
            fake.paths.append(f"{self.command} {self.path}")
        try:
            if fake.unavailable == "drop":
                self.close_connection = True
                return
            if fake.unavailable == "busy":
                return self._json(503, {"error": BUSY_ERROR})
            self._route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a broken script: say so to the client, not only on stderr
            self._json(500, {"error": f"fake ollama: scripted reply raised {exc!r}"})

    def _route(self, body: bytes) -> None:
        fake = self.server.fake
        route = (self.command, self.path.split("?")[0])
        if route in {("GET", "/"), ("HEAD", "/")}:
            return self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        if route == ("GET", "/api/version"):
            return self._json(200, {"version": OLLAMA_VERSION})
        if route == ("GET", "/api/tags"):
            return self._json(200, {"models": [_tag(m) for m in fake.models]})
        if self.command != "POST" or route[1] not in {"/api/show", "/api/chat"}:
            return self._send(404, b"404 page not found", "text/plain")
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return self._json(400, {"error": f"invalid request body: {exc}"})
        if route[1] == "/api/chat":
            with fake._lock:
                fake.requests.append(request)
        model = str(request.get("model") or "")
        if not fake._knows(model):
            if route[1] == "/api/show":
                return self._json(404, {"error": f"model '{model}' not found"})
            return self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
        if route[1] == "/api/show":
            return self._json(200, _show(model))
        self._chat(request, fake._next_reply())

    def _chat(self, request: dict[str, Any], reply: Reply) -> None:
        fake = self.server.fake
        while True:
            if isinstance(reply, str):
                reply = say(reply)
            elif isinstance(reply, Hang):
                if fake._stopped.wait(reply.seconds):
                    self.close_connection = True
                    return
                reply = reply.then
            elif isinstance(reply, Fail):
                return self._json(reply.status, {"error": reply.error})
            elif isinstance(reply, Wire):
                self.close_connection = True  # whatever it left on the connection is garbage
                return reply.write(WireWriter(self), request)
            elif isinstance(reply, Say):
                break
            elif callable(reply):
                reply = reply(request)
            else:
                raise TypeError(f"fake ollama: not a reply: {reply!r}")
        chunks = list(self._chunks(request, _capped(request, reply)))
        if request.get("stream", True):
            self._stream(chunks)
        else:
            self._json(200, self._aggregate(chunks))

    def _chunks(self, request: dict[str, Any], reply: Say) -> Iterator[dict[str, Any]]:
        model = request["model"]

        def chunk(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", **message},
                "done": False,
                **extra,
            }

        if reply.thinking:
            for piece in _split(reply.thinking):
                yield chunk({"content": "", "thinking": piece})
        for piece in _split(reply.content):
            yield chunk({"content": piece})
        if reply.tool_calls:
            yield chunk(
                {
                    "content": "",
                    "tool_calls": [
                        {
                            "id": f"call_{uuid.uuid4().hex[:8]}",
                            "function": {"index": i, "name": name, "arguments": args},
                        }
                        for i, (name, args) in enumerate(reply.tool_calls)
                    ],
                }
            )
        prompt = reply.prompt_tokens or prompt_eval_count(request)
        output = reply.output_tokens or eval_count(reply)
        prompt_ns, eval_ns, load_ns = prompt * 250_000, output * 20_000_000, 12_000_000
        yield chunk(
            {"content": ""},
            done=True,
            done_reason=reply.done_reason,
            total_duration=load_ns + prompt_ns + eval_ns + 1_000_000,
            load_duration=load_ns,
            prompt_eval_count=prompt,
            prompt_eval_duration=prompt_ns,
            eval_count=output,
            eval_duration=eval_ns,
        )

    @staticmethod
    def _aggregate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
        final = dict(chunks[-1])
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        for part in chunks:
            m = part["message"]
            message["content"] += m.get("content", "")
            if m.get("thinking"):
                message["thinking"] = message.get("thinking", "") + m["thinking"]
            if m.get("tool_calls"):
                message["tool_calls"] = message.get("tool_calls", []) + m["tool_calls"]
        final["message"] = message
        return final

    def _stream(self, chunks: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in chunks:
            line = json.dumps(part).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(0.001)  # let the client see separate reads, as with a real model
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


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
