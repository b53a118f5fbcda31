"""A backend that hangs, at the wire: it accepts connections and never finishes an answer.

Two ways a real server hangs: ``"silent"`` reads the request and never answers
(a wedged API server, a black-holing proxy); ``"headers"`` sends the status
line and headers of a 200 with a ``Content-Length``, one byte of body, then
nothing (a server stuck while streaming its answer). Every connection and every
request line is recorded, so a test can count the attempts a client made.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Literal

Mode = Literal["silent", "headers"]


class HungServer:
    """A raw TCP server on 127.0.0.1; use as a context manager or ``start()``/``stop()``."""

    def __init__(self, mode: Mode = "silent") -> None:
        self.mode = mode
        #: One entry per accepted connection.
        self.connections = 0
        #: "GET /path?query" for each request received, in order.
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> HungServer:
        self._listener.listen(128)
        threading.Thread(target=self._accept, name="hung-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:  # shutdown() first: it wakes a recv() blocked in another thread
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> HungServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose cluster is this server (JSON is valid YAML)."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "hung",
                    "clusters": [{"name": "hung", "cluster": {"server": self.url}}],
                    "users": [{"name": "hung", "user": {}}],
                    "contexts": [{"name": "hung", "context": {"cluster": "hung", "user": "hung"}}],
                }
            )
        )
        return path

    def requests_to(self, prefix: str) -> list[str]:
        with self._lock:
            return [r for r in self.requests if r.split(" ", 1)[-1].startswith(prefix)]

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(sock)
            threading.Thread(target=self._hold, args=(sock,), daemon=True).start()

    def _hold(self, sock: socket.socket) -> None:
        """Read requests and never finish an answer; the connection stays open until the
        client gives up (or the server stops)."""
        buffer = b""
        try:
            while not self._stopped.is_set():
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0].decode("latin-1")
                    method, _, rest = line.partition(" ")
                    with self._lock:
                        self.requests.append(f"{method} {rest.rsplit(' ', 1)[0]}")
                    if self.mode == "headers":
                        sock.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 4096\r\n\r\n{"
                        )
        except OSError:
            return
