"""A fake Slack on 127.0.0.1: an incoming-webhook endpoint and the Web API's
``chat.postMessage`` and ``chat.update``.

- ``POST /services/T000/B000/XXXX`` (:attr:`FakeSlack.webhook_url`) answers ``200 ok``
  as text, like Slack's incoming webhooks;
- ``POST /api/chat.postMessage`` (:attr:`FakeSlack.api_url` + ``/chat.postMessage``) wants
  ``Authorization: Bearer <token>`` and a JSON body with ``channel``; it answers
  ``{"ok": true, "channel": "C...", "ts": "...", "message": {...}}`` (HTTP 200), and
  ``{"ok": false, "error": "invalid_auth"}`` for a wrong token, as Slack does;
- ``POST /api/chat.update`` edits a posted message (``channel`` as the post answered it,
  ``ts``) in place in :attr:`FakeSlack.messages` and answers ``{"ok": true, "channel",
  "ts", "text"}``; ``{"ok": false, "error": "message_not_found"}`` for a message it
  does not hold, as Slack does. :meth:`FakeSlack.delete` removes one (a person did);
- ``POST /actions/T000/...`` (:attr:`FakeSlack.response_url`, what a button's click names
  as its ``response_url``) answers ``{"ok": true}`` and keeps the note in
  :attr:`FakeSlack.notes` (an ephemeral one only the person who clicked sees).

:meth:`FakeSlack.fail` scripts the next requests to fail: :func:`server_error` (500),
:func:`rate_limited` (429 with ``Retry-After``), :func:`api_error` (``{"ok": false,
"error": ...}`` on the Web API, a 404 text on the webhook). Every request is in
:attr:`FakeSlack.requests`; delivered messages are in :attr:`FakeSlack.messages`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/services/T000/B000/XXXX"
RESPONSE_PATH = "/actions/T000/1764201600/RESPONSEURL"
TOKEN = "xoxb-1111-2222-fakeslacktoken"


@dataclass(frozen=True)
class Failure:
    status: int = 500
    retry_after: float | None = None
    error: str | None = None  # an API error: 200 {"ok": false} (webhook: 404 text)


def server_error(status: int = 500) -> Failure:
    return Failure(status)


def rate_limited(retry_after: float = 1) -> Failure:
    return Failure(429, retry_after=retry_after)


def api_error(error: str = "channel_not_found") -> Failure:
    return Failure(200, error=error)


class FakeSlack:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[dict[str, Any]] = []  # every attempt: path, headers, payload, answer
        self.messages: list[dict[str, Any]] = []  # delivered: payload + "ts", "channel"
        self.notes: list[dict[str, Any]] = []  # posted to a click's response_url
        self._failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self._count = 0
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeSlack:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @property
    def response_url(self) -> str:
        return self.url + RESPONSE_PATH

    def wait_for_notes(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The notes posted to :attr:`response_url` once there are ``count`` (or by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.notes) >= count:
                    return list(self.notes)
            time.sleep(0.02)
        with self._lock:
            return list(self.notes)

    def fail(self, *failures: Failure) -> None:
        """The next ``len(failures)`` requests fail, in this order."""
        with self._lock:
            self._failures.extend(failures)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The delivered messages once there are at least ``count`` (or what arrived by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)

    def wait_until(self, check: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The delivered messages once ``check(messages)`` holds (or as they are then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                messages = [dict(m) for m in self.messages]
            if check(messages):
                return messages
            time.sleep(0.02)
        with self._lock:
            return [dict(m) for m in self.messages]

    def channel_messages(self) -> list[dict[str, Any]]:
        """The messages in the channel itself (not in a thread), as they read now."""
        with self._lock:
            return [dict(m) for m in self.messages if "thread_ts" not in m]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of the message ``ts``, oldest first."""
        with self._lock:
            return [dict(m) for m in self.messages if m.get("thread_ts") == ts]

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The requests made to one Web API method (``chat.update``), answered or not."""
        with self._lock:
            return [r for r in self.requests if r["path"] == f"/api/{method}"]

    def delete(self, ts: str) -> None:
        with self._lock:
            self.messages = [m for m in self.messages if m.get("ts") != ts]

    def text(self) -> str:
        """Everything ever sent to this Slack, for grepping (e.g. for leaked secrets)."""
        with self._lock:
            return "\n".join(json.dumps(r["payload"]) for r in self.requests)

    def _answer(self, path: str, headers: dict[str, str], payload: Any) -> tuple[int, dict, bytes]:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            self.requests.append({"path": path, "headers": headers, "payload": payload})
            api = path.startswith("/api/")
            if failure is not None:
                if failure.error is None:
                    extra = {}
                    if failure.retry_after is not None:
                        extra["Retry-After"] = f"{failure.retry_after:g}"
                    return failure.status, extra, b"fake slack: scripted failure"
                if not api:
                    return 404, {}, failure.error.encode()
                return _json({"ok": False, "error": failure.error})
            if path == RESPONSE_PATH:
                self.notes.append(dict(payload))
                return _json({"ok": True})
            if path == WEBHOOK_PATH:
                self.messages.append(dict(payload))
                return 200, {"Content-Type": "text/plain"}, b"ok"
            if path not in ("/api/chat.postMessage", "/api/chat.update"):
                return 404, {}, b"not found"
            if headers.get("authorization") != f"Bearer {self.token}":
                return _json({"ok": False, "error": "invalid_auth"})
            if path == "/api/chat.update":
                return self._update(payload)
            if not isinstance(payload, dict) or not payload.get("channel"):
                return _json({"ok": False, "error": "channel_not_found"})
            channel = str(payload["channel"])
            if not channel.startswith("C"):
                channel = "C" + channel.lstrip("#").upper().replace("-", "")
            self._count += 1
            ts = f"1764201600.{self._count:06d}"
            self.messages.append({**payload, "ts": ts, "channel": channel})
            return _json({"ok": True, "channel": channel, "ts": ts, "message": payload})

    def _update(self, payload: Any) -> tuple[int, dict, bytes]:
        """Edit a message in place: its text and blocks become the update's."""
        if not isinstance(payload, dict) or not payload.get("channel"):
            return _json({"ok": False, "error": "channel_not_found"})
        for message in self.messages:
            if message.get("ts") == payload.get("ts") and message["channel"] == payload["channel"]:
                for key in ("text", "blocks"):
                    if key in payload:
                        message[key] = payload[key]
                    else:
                        message.pop(key, None)
                message["edits"] = message.get("edits", 0) + 1
                answer = {"ok": True, "channel": message["channel"], "ts": message["ts"]}
                return _json({**answer, "text": message.get("text", "")})
        return _json({"ok": False, "error": "message_not_found"})


def _json(obj: Any) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(obj).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeSlack

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body or b"null")
        except json.JSONDecodeError:
            payload = {"_invalid": body.decode("utf-8", "replace")}
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, answer = self.fake._answer(self.path, headers, payload)
        self.send_response(status)
        for name, value in {"Content-Type": "text/plain", **extra}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
