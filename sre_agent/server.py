"""The HTTP server: uvicorn on h11, with the bounds uvicorn lacks.

uvicorn does not bound how long a client may take to send a request's head:
a connection that sends nothing, or a header a byte at a time (slowloris),
is held forever. It answers a head over h11's size bound with a plain-text
400 although h11 says 431. And with httptools installed it would pick that
parser, which bounds the head not at all; so h11 is named explicitly, and
its protocol gets a head deadline and JSON errors here. Bounds on the body,
the header count and the Host are the app's (``api/edge.py``): they hold
under any server.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import socket
from http import HTTPStatus
from typing import Any, ClassVar

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from sre_agent.api import rejections
from sre_agent.errors import ConfigError
from sre_agent.settings import Settings

log = logging.getLogger(__name__)


class _Connection(h11.Connection):
    """h11's connection, keeping the protocol error it raised (with its status hint)."""

    error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.error = exc
            raise


class BoundedH11Protocol(H11Protocol):
    """One connection: each request's head must arrive within ``head_timeout``."""

    head_timeout: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_since: object = None  # the cycle before the head we wait for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._waiting_since:
            self._stop_waiting()  # a new request's head has arrived

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()  # may already parse a pipelined request
        if self.cycle is finished and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting_since = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        partial = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if partial:  # a head begun and not finished; an idle connection is just closed
            message = (
                f"request headers not received within {self.head_timeout:g} s"
                " (SRE_AGENT_HEADER_TIMEOUT)"
            )
            self._reject(408, message)
            self.transport.write(_raw_response(408, message))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse: the status h11 suggests (431
        for an oversized head), as JSON."""
        error = self.conn.error if isinstance(self.conn, _Connection) else None
        status = error.error_status_hint if error is not None else 400
        if status == 431:
            message = (
                f"request headers over the limit of {self.max_head_bytes} bytes"
                " (SRE_AGENT_MAX_HEADER_BYTES)"
            )
        else:
            message = f"invalid HTTP request: {error or msg}"[:300]
        self._stop_waiting()
        self._reject(status, message)
        self.transport.write(_raw_response(status, message))
        self.transport.close()

    def _reject(self, status: int, message: str) -> None:
        """Logged like the app's rejections; not counted: no request, so no path, yet."""
        peer = self.transport.get_extra_info("peername")
        client = tuple(peer[:2]) if isinstance(peer, tuple) and len(peer) >= 2 else None
        reason = {408: "timeout", 431: "headers_too_large"}.get(status, "malformed_http")
        rejections.record({"client": client}, status, message, reason)


def _raw_response(status: int, message: str) -> bytes:
    """A whole response written past h11 (which has no request to answer): then close."""
    body = json.dumps({"error": message}).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def bound_names(host: str) -> tuple[str, ...]:
    """Host names a service bound to ``host`` is reached by, beyond IP literals."""
    names = [socket.gethostname()] if host in ("", "0.0.0.0", "::") else [host]
    found = []
    for name in names:
        name = name.strip().lower().rstrip(".")
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name:
                found.append(name)
    return tuple(found)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound as uvicorn would bind it; a ConfigError that says
    why when it cannot be (a port in use, an address not of this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        hint = (
            " (another sre-agent, or another program, listens there: stop it or pick"
            " another --port)"
            if exc.errno == errno.EADDRINUSE
            else " (--host: an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)"
        )
        raise ConfigError(f"cannot listen on {host}:{port}: {why}{hint}") from None
    sock.set_inheritable(True)
    return sock


def run(app: FastAPI, settings: Settings, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` (:func:`listen`) until SIGINT/SIGTERM."""
    protocol = type(
        "SreAgentH11Protocol",
        (BoundedH11Protocol,),
        {"head_timeout": settings.header_timeout, "max_head_bytes": settings.max_header_bytes},
    )
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        ws="none",  # no WebSocket routes: no upgrade path to attack
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    _Server(config, app).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn waits for every open response before the lifespan ends, and the pages'
    live feed never ends one by itself: its streams are ended as shutdown begins."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self.app.state, "services", None)
        if services is not None:
            services.feed.close()
        await super().shutdown(sockets)
