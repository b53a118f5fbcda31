"""Ollama's HTTP API as the fake speaks it: the request handler (``/api/chat`` streaming
and not, ``/api/tags``, ``/api/show``, ...) and the :class:`WireWriter` a :class:`Wire`
reply writes raw bytes with. The server's state and script are
:class:`~tests.support.fake_ollama.FakeOllama`'s.

The handler also serves the OpenAI-compatible API Ollama has under ``/v1``
(``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/chat/completions``, streamed as
Server-Sent Events over the same chunked encoding or answered as one object), with
OpenAI's ``{"error": {"message": ...}}`` bodies for every error on a ``/v1`` path; its
bodies are built in :mod:`tests.support.openai_http`. One script answers both APIs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.support import openai_http
from tests.support.ollama_replies import (
    Fail,
    Hang,
    Reply,
    Say,
    Wire,
    capped,
    say,
    stream_pieces,
    usage_counts,
)

if TYPE_CHECKING:
    from tests.support.fake_ollama import FakeOllama

OLLAMA_VERSION = "0.12.6"
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"


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

    def event(self, obj: Any) -> None:
        """One Server-Sent Event, as ``/v1`` streams: ``data: <obj as JSON>`` (a ``str`` as
        it is, e.g. ``"[DONE]"``); send ``headers(content_type="text/event-stream")`` first."""
        self.write(openai_http.sse_event(obj))

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


class OllamaHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, fake: FakeOllama) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle and delayed ACKs
    # add ~40 ms to every keep-alive response (a real API server has no such delay).
    disable_nagle_algorithm = True
    server: OllamaHTTPServer

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
                return self._error(503, BUSY_ERROR)
            if self.path.startswith("/v1/"):
                self._route_openai(body)
            else:
                self._route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a broken script: say so to the client, not only on stderr
            self._error(500, f"fake ollama: scripted reply raised {exc!r}")

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
        reply = self._resolve(request, fake._next_reply())
        if reply is None:
            return
        chunks = list(self._chunks(request, capped(request, reply)))
        if request.get("stream", True):
            self._stream(json.dumps(part).encode() + b"\n" for part in chunks)
        else:
            self._json(200, self._aggregate(chunks))

    def _route_openai(self, body: bytes) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0]
        if self.command == "GET" and path == "/v1/models":
            return self._json(200, openai_http.models_list(fake.models))
        if self.command == "GET" and path.startswith("/v1/models/"):
            model = path.removeprefix("/v1/models/")
            if not fake._knows(model):
                return self._error(404, f"model '{model}' not found")
            return self._json(200, openai_http.model_object(model))
        if (self.command, path) != ("POST", "/v1/chat/completions"):
            return self._send(404, b"404 page not found", "text/plain")
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return self._error(400, f"invalid request body: {exc}", "invalid_request_error")
        with fake._lock:
            fake.requests.append(request)
        if not request.get("messages"):
            return self._error(400, "[] is too short - 'messages'", "invalid_request_error")
        model = str(request.get("model") or "")
        if not fake._knows(model):
            return self._error(404, f'model "{model}" not found, try pulling it first')
        reply = self._resolve(request, fake._next_reply())
        if reply is None:
            return
        reply = capped(request, reply)
        if request.get("stream") is True:
            events = [openai_http.sse_event(c) for c in openai_http.stream_chunks(request, reply)]
            self._stream([*events, openai_http.SSE_DONE], "text/event-stream")
        else:
            self._json(200, openai_http.completion(request, reply))

    def _resolve(self, request: dict[str, Any], reply: Reply) -> Say | None:
        """The scripted reply as a :class:`Say`, or None when it was answered otherwise (an
        error, a :class:`Wire` reply, or a hang the fake's stop cut short)."""
        fake = self.server.fake
        while True:
            if isinstance(reply, str):
                reply = say(reply)
            elif isinstance(reply, Hang):
                if fake._stopped.wait(reply.seconds):
                    self.close_connection = True
                    return None
                reply = reply.then
            elif isinstance(reply, Fail):
                self._error(reply.status, reply.error)
                return None
            elif isinstance(reply, Wire):
                self.close_connection = True  # whatever it left on the connection is garbage
                reply.write(WireWriter(self), request)
                return None
            elif isinstance(reply, Say):
                return reply
            elif callable(reply):
                reply = reply(request)
            else:
                raise TypeError(f"fake ollama: not a reply: {reply!r}")

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
            for piece in stream_pieces(reply.thinking):
                yield chunk({"content": "", "thinking": piece})
        for piece in stream_pieces(reply.content):
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
        prompt, output = usage_counts(request, reply)
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

    def _stream(self, parts: Iterable[bytes], content_type: str = "application/x-ndjson") -> None:
        """A 200 whose body goes out in chunked encoding, one HTTP chunk per part."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(0.001)  # let the client see separate reads, as with a real model
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _error(self, status: int, message: str, openai_type: str = "api_error") -> None:
        """An error in the form of the API asked: Ollama's ``{"error": message}``, or on a
        ``/v1`` path OpenAI's body (see :func:`openai_http.error_body`)."""
        if self.path.startswith("/v1/"):
            return self._json(status, openai_http.error_body(message, openai_type))
        self._json(status, {"error": message})

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
