"""The edge of the HTTP API: what every request passes before a route sees it.

A pure ASGI middleware (no buffering, streaming responses untouched) that
answers, each with a JSON ``{"error"}`` that names the setting to change:

- 400 for a Host header not in ``SRE_AGENT_ALLOWED_HOSTS`` (DNS rebinding: a
  web page whose name resolves to 127.0.0.1 must not reach a loopback
  service). IP literals always pass: a rebinding page cannot make the browser
  send one, and kubelet probes and Prometheus scrapes use the pod IP;
- 431 for too many or too large headers (whatever server runs the app);
- 408 for a body not sent within ``SRE_AGENT_BODY_TIMEOUT`` (slowloris);
- 413 for a body over ``SRE_AGENT_MAX_BODY_BYTES``, after reading and dropping
  what the client still sends (up to a bound): closing with unread data
  makes the kernel reset the connection, and the client, still writing,
  would never read the 413;
- 500 for an exception of ours, as JSON, with the connection kept: left to
  the server, it would close the keep-alive connection instead.

Each refusal is one log line (and, for the webhook, a count by reason):
:mod:`sre_agent.api.rejections`.

Starlette's ``TrustedHostMiddleware`` and ``RequestBodyLimitMiddleware`` do
the first and the fourth in plain text, without the IP rule or the drain.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sre_agent.api import rejections

log = logging.getLogger(__name__)

#: Over the body limit, at most this many times the limit is read and dropped so the
#: client reads our 413; a client announcing more gets the 413 at once, and a close.
DRAIN_FACTOR = 8


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """``host`` is a Host header value without its port, lower-cased."""
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return True
    except ValueError:
        pass
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _host_name(value: str) -> str:
    """The host part of a Host header: ``[::1]:8080`` -> ``[::1]``, ``a.b.:80`` -> ``a.b``."""
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    name, _, port = value.rpartition(":")
    if name and port.isdigit():
        value = name
    return value.lower().rstrip(".")


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: tuple[str, ...],
        max_headers: int,
        max_header_bytes: int,
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self._check_head(scope["headers"])
        if problem is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            status, message = problem
            rejections.record(scope, status, message, "bad_host" if status == 400 else None)
            await _error(status, message, close=True)(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, scope["headers"], self.max_body_bytes, self.body_timeout)
        scope[rejections.BODY_KEY] = body  # for the rejection log: the size seen so far
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, body.receive, tracked)
        except Exception:
            if started:  # too late for an answer: the server closes the connection
                raise
            log.exception(
                "unexpected error on %s %s",
                scope["method"],
                rejections.printable(scope["path"], 200),
            )
            await _error(500, "internal error; see the service log")(scope, receive, send)

    def _check_head(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        if len(headers) > self.max_headers:
            return 431, (
                f"{len(headers)} request headers, over the limit of {self.max_headers}"
                " (SRE_AGENT_MAX_HEADERS)"
            )
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.max_header_bytes:
            return 431, (
                f"request headers of {size} bytes, over the limit of {self.max_header_bytes}"
                " (SRE_AGENT_MAX_HEADER_BYTES)"
            )
        hosts = [v for k, v in headers if k == b"host"]
        if len(hosts) > 1:
            return 400, "more than one Host header"
        if hosts:
            host = _host_name(hosts[0].decode("latin-1").strip())
            if not host_allowed(host, self.allowed_hosts):
                return 400, (
                    f"Host {host[:100]!r} is not one this service answers to: add it to"
                    f" SRE_AGENT_ALLOWED_HOSTS (now {','.join(self.allowed_hosts)})"
                )
        return None


class _Body:
    """The request body as the app receives it, bounded in size and in time."""

    def __init__(
        self, receive: Receive, headers: list[tuple[bytes, bytes]], limit: int, timeout: float
    ) -> None:
        self._receive = receive
        self.limit = limit
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.timeout = timeout
        self.size = 0
        self.complete = False
        self.declared: int | None = None
        self.expects_continue = False
        for name, value in headers:
            if name == b"content-length" and value.strip().isdigit():
                self.declared = int(value)
            elif name == b"expect" and value.strip().lower() == b"100-continue":
                self.expects_continue = True

    async def receive(self) -> Message:
        if self.complete:  # after the body: waiting for a disconnect, unbounded
            return await self._receive()
        if self.declared is not None and self.declared > self.limit:
            await self._drain(self.declared)
            raise self._too_large(self.declared)
        message = await self._next()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                if not self.complete:
                    await self._drain(None)
                raise self._too_large(None)
        return message

    async def _next(self) -> Message:
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                message = await self._receive()
        except TimeoutError:
            raise HTTPException(
                408,
                f"request body not received within {self.timeout:g} s (SRE_AGENT_BODY_TIMEOUT)",
                headers={"Connection": "close"},
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
        return message

    async def _drain(self, declared: int | None) -> None:
        """Read and drop the rest, within the deadline and a bound, so the 413 is read."""
        bound = self.limit * DRAIN_FACTOR
        if self.expects_continue or (declared is not None and declared > bound):
            return  # it waits for our answer, or is not worth reading: answer and close
        try:
            while not self.complete and self.size <= bound:
                message = await self._next()
                self.size += len(message.get("body", b""))
        except HTTPException:
            pass  # out of time: the 413 goes out anyway

    def _too_large(self, declared: int | None) -> HTTPException:
        size = f"of {declared} bytes " if declared is not None else ""
        return HTTPException(
            413,
            f"body {size}is over the limit of {self.limit} bytes (SRE_AGENT_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )


def _error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)
