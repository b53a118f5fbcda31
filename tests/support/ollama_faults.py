"""Model servers that break Ollama's protocol, as :class:`~tests.support.fake_ollama.Wire`
replies for the fake Ollama: what a crashing, proxied or runaway server sends.

Each builder returns a reply to ``enqueue`` (or set as ``default``); the real ``ollama``
client and ``ChatOllama`` read the bytes as they would from a real server.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.fake_ollama import Wire, WireWriter, num_predict, prompt_eval_count

HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>\n"
)


def not_json(line: str = 'data: {"content": "The"}', *, after: str = "The pod ") -> Wire:
    """A good chunk, then a line that is not JSON (a proxy's SSE framing, a log line)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        wire.line(wire.chunk(request, after))
        wire.line(line)
        wire.end()

    return Wire(write)


def wrong_shape(obj: Any) -> Wire:
    """A line that is JSON but not an Ollama chat chunk (``[1, 2]``, ``{"message": 7}``...)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        wire.line(obj)
        wire.end()

    return Wire(write)


def html_200(body: bytes = HTML) -> Wire:
    """``200 OK`` with an HTML page: a proxy or a captive portal in front of Ollama."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers(200, "text/html; charset=utf-8", chunked=False, length=len(body))
        wire.write(body)

    return Wire(write)


def endless_line(block: int = 64 * 1024, limit: int = 64 * 1024 * 1024) -> Wire:
    """Bytes and bytes with no line break (``limit`` at most): a reader that buffers lines
    would grow until it runs out of memory."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        sent = 0
        while sent < limit and not wire.stopped.is_set():
            wire.write(b"x" * block)
            sent += block

    return Wire(write)


def truncated(text: str = '{"summary": "The api pod', *, cut: bool = True) -> Wire:
    """Some content, then no final chunk: the connection cut mid-body (``cut``) or the body
    ended properly without ever sending ``done: true``."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        for piece in text.split(" "):
            wire.line(wire.chunk(request, piece + " "))
        if cut:
            wire.cut()
        else:
            wire.end()

    return Wire(write)


def stall_after_headers(seconds: float = 3600.0) -> Wire:
    """``200`` and the NDJSON headers, then nothing (a model runner that froze)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers()
        wire.stopped.wait(seconds)

    return Wire(write)


def endless(
    piece: str = "token{n} ",
    *,
    honour_num_predict: bool = True,
    interval: float = 0.0,
    limit: int = 1_000_000,
    sent: list[int] | None = None,
) -> Wire:
    """A model that never stops: one token per chunk (``piece``, ``{n}`` its number: no
    loop unless ``piece`` has none), forever. Honouring the request's
    ``num_predict`` (as Ollama does) it stops there with ``done_reason: "length"``;
    otherwise it streams until the client goes away or the fake stops (``limit`` chunks at
    most, so a broken test cannot run for ever). ``sent`` gets the number of chunks written
    once the writer ends (the client went away, or it was done)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        cap = num_predict(request) if honour_num_predict else None
        wire.headers()
        count = 0
        try:
            while count < (cap or limit) and not wire.stopped.is_set():
                wire.line(wire.chunk(request, piece.replace("{n}", str(count))))
                count += 1
                if interval:
                    time.sleep(interval)
        finally:
            if sent is not None:
                sent.append(count)
        if cap is not None and count >= cap:
            wire.line(
                wire.chunk(
                    request,
                    done=True,
                    done_reason="length",
                    prompt_eval_count=prompt_eval_count(request),
                    eval_count=count,
                    total_duration=count * 20_000_000,
                    eval_duration=count * 20_000_000,
                )
            )
        wire.end()

    return Wire(write)


__all__ = [
    "HTML",
    "endless",
    "endless_line",
    "html_200",
    "not_json",
    "stall_after_headers",
    "truncated",
    "wrong_shape",
]
