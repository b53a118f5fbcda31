"""Rejected requests: one log line each, and a count of the webhook's by reason.

Alertmanager never retries a 4xx and logs it only on its own side, so a
delivery we refuse must leave a trace here: status, reason, remote address and
body size; never the body, never a header (the token is one). The reasons
are a fixed set (a metric label must be bounded); the edge (``api/edge.py``),
the webhook and the app's error handlers all report through :func:`record`.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Scope

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/alert"

#: Every value of ``sre_agent_webhook_rejected_total{reason}``, with what it means.
REASONS = {
    "unauthorized": "401: no bearer token, or not SRE_AGENT_WEBHOOK_TOKEN",
    "unsupported_media_type": "415: Content-Type is not application/json",
    "bad_json": "400: the body is not JSON (or not UTF-8, or NaN/Infinity)",
    "invalid": "422: JSON, but not an Alertmanager v4 body",
    "bad_query": "422: an unknown or malformed query parameter",
    "too_large": "413: body over SRE_AGENT_MAX_BODY_BYTES",
    "timeout": "408: body not sent within SRE_AGENT_BODY_TIMEOUT",
    "headers_too_large": "431: over SRE_AGENT_MAX_HEADERS or SRE_AGENT_MAX_HEADER_BYTES",
    "bad_host": "400: Host not in SRE_AGENT_ALLOWED_HOSTS (or more than one Host)",
    "malformed_http": "400: not a parseable HTTP/1.1 request",
    "store_failed": "503: the database failed; nothing stored, Alertmanager retries",
    "other": "any other 4xx/5xx",
}

#: The reason a status means when the code that refused did not say.
BY_STATUS = {
    400: "bad_json",
    401: "unauthorized",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    431: "headers_too_large",
    503: "store_failed",
}

#: Where the edge keeps what it has seen of a request's body (bytes read, declared size).
BODY_KEY = "sre_agent.body"


def reason_for(status: int, given: str | None = None) -> str:
    if given in REASONS:
        return given  # type: ignore[return-value]
    return BY_STATUS.get(status, "other")


def body_size(scope: Scope) -> str:
    """What is known of the body's size: bytes read, else the declared Content-Length."""
    body = scope.get(BODY_KEY)
    if body is not None and (body.size or body.declared is None):
        return f"{body.size} bytes read"
    declared = body.declared if body is not None else _content_length(scope)
    return f"{declared} bytes declared" if declared is not None else "size unknown"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _remote(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def printable(text: str, limit: int) -> str:
    """Client text for a log line: cut, control characters escaped. The path is
    percent-decoded: ``%0A`` in it would otherwise start a forged log line."""
    text = text[:limit]
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def record(scope: Scope, status: int, message: str, reason: str | None = None) -> str:
    """Log one rejection (every path) and count it when it was a webhook delivery."""
    reason = reason_for(status, reason)
    path = str(scope.get("path", ""))
    # The message may quote the request (a Host, a field name): one line, bounded; the
    # log filter masks secret-looking values in it.
    detail = printable(" ".join(str(message).split()), 300)
    method = scope.get("method")
    log.warning(
        "rejected %s: %d %s from %s (body %s): %s",
        f"{method} {printable(path, 200)}" if method else "a request",
        status,
        reason,
        _remote(scope),
        body_size(scope),
        detail,
    )
    if path == WEBHOOK_PATH:
        metrics = _metrics(scope)
        if metrics is not None:
            metrics.count_rejection(reason)
    return reason


def _metrics(scope: Scope) -> Any | None:
    """The app's Metrics, once its lifespan has made them."""
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    return getattr(services, "metrics", None)
