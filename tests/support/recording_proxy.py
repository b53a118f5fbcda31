"""A forwarding HTTP proxy that records what reached the real server behind it.

Tests put it in front of the real Prometheus to prove an expensive query was
never sent (Prometheus 2.42's query log needs a config reload; this needs nothing).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class RecordingProxy:
    """Forwards GET/POST to ``upstream`` and keeps (method, path, params) of each request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> RecordingProxy:
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queries(self) -> list[str]:
        """Every PromQL expression sent (instant and range), in order."""
        return [q for _, _, params in self.requests for q in params.get("query", [])]


class _Handler(BaseHTTPRequestHandler):
    proxy: RecordingProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        params = parse_qs(urlsplit(self.path).query)
        if body and "form-urlencoded" in self.headers.get("Content-Type", ""):
            for key, values in parse_qs(body.decode()).items():
                params.setdefault(key, []).extend(values)
        self.proxy.requests.append((self.command, urlsplit(self.path).path, params))
        request = urllib.request.Request(
            self.proxy.upstream + self.path,
            data=body or None,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type",)},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                code, data, ctype = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            code, data, ctype = exc.code, exc.read(), exc.headers
        self.send_response(code)
        self.send_header("Content-Type", ctype.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""
