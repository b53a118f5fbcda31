"""Who is asking: one model of authentication for every endpoint but the probes.

A request is a person or a program by one of, in order:

- a trusted proxy's header (``SRE_AGENT_AUTH_PROXY_HEADER``, e.g. ``X-Forwarded-User``
  from oauth2-proxy), believed only on a connection from ``SRE_AGENT_AUTH_PROXY_CIDRS``;
- ``Authorization: Bearer <token>``, one of ``SRE_AGENT_API_TOKENS`` (compared in
  constant time), for the API, the CLI and scripts;
- the web session cookie the login page sets (signed, HttpOnly, SameSite=Strict), which
  carries a CSRF token that every state-changing request on it must send back.

With none of them configured, everyone is ``anonymous``: the CLI refuses to serve like
that on anything but a loopback address unless ``SRE_AGENT_ALLOW_ANONYMOUS=true``
(:func:`check_bind`). The probes (``/healthz``, ``/readyz``, ``/metrics``) stay open to
the NetworkPolicy's Prometheus; the webhook keeps its own token (``api/webhook.py``).

Refusals are logged (never a token) and counted in ``sre_agent_auth_failures_total``.
:class:`Auth` is pure ASGI, so it covers every route, mount and docs page alike.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sre_agent.api.rejections import printable
from sre_agent.credentials import Sessions, Tokens
from sre_agent.errors import ConfigError
from sre_agent.settings import Settings

log = logging.getLogger(__name__)

Via = Literal["token", "session", "proxy", "anonymous"]

#: Open to all: the probes (the NetworkPolicy admits Prometheus), the webhook (its own
#: token), the login page, the static assets (they hold no record), and Slack's
#: interactivity URL: Slack sends no token of ours, it signs each request with the app's
#: signing secret, which api/slack.py verifies (refusing a forged, unsigned or stale one).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/webhook/alert", "/login", "/slack/interactions"}
)
OPEN_PREFIXES = ("/static/",)
#: Forms that check their CSRF field themselves (the middleware checks the header).
FORM_PATHS = frozenset({"/logout"})
SESSION_COOKIE = "sre_agent_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Every value of ``sre_agent_auth_failures_total{reason}``.
REASONS = {
    "missing": "no credentials on a protected endpoint",
    "bad_token": "a bearer token that is none of SRE_AGENT_API_TOKENS",
    "bad_session": "a session cookie that is forged, expired, logged out or of a removed token",
    "bad_login": "the login form got a wrong token",
    "csrf": "a state-changing request on a session without its CSRF token",
    "cross_site": "a state-changing request from another site (Origin/Sec-Fetch-Site)",
    "untrusted_proxy_header": "the proxy header from outside SRE_AGENT_AUTH_PROXY_CIDRS",
    "bad_proxy_user": "the proxy header with an unusable user name",
}
MAX_USER_CHARS = 256


@dataclass(frozen=True)
class User:
    """Who a request is. ``csrf`` is the web session's token (None off a session)."""

    name: str
    via: Via
    csrf: str | None = None
    #: The web session's id (what logout revokes), None off a session.
    session: str | None = None


ANONYMOUS = User("anonymous", "anonymous")


def current_user(request: Request) -> User:
    """The user :class:`Auth` found (anonymous where nothing is configured)."""
    user = getattr(request.state, "user", None)
    return user if isinstance(user, User) else ANONYMOUS


UserDep = Annotated[User, Depends(current_user)]


class Refused(Exception):
    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class Auth:
    """The middleware: sets ``scope["state"]["user"]`` or refuses the request."""

    def __init__(self, app: ASGIApp, settings: Settings, sessions: Sessions, tokens: Tokens):
        self.app = app
        self.settings = settings
        self.sessions = sessions
        self.tokens = tokens
        self.configured = settings.auth_configured  # settings never change
        self.header = settings.auth_proxy_header
        self.trusted = settings.auth_proxy_cidrs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        headers = Headers(scope=scope)
        try:
            user = self.identify(scope, headers)
            if not open_path:
                if user is None:
                    raise Refused("missing")
                self.check_unsafe(scope, headers, user)
        except Refused as refused:
            if open_path and refused.status == 401:  # e.g. a stale cookie on /login
                user = None
            else:
                record_failure(scope, refused.reason)
                await self.refuse(scope, receive, send, headers, refused)
                return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)

    # --- who -----------------------------------------------------------------
    def identify(self, scope: Scope, headers: Headers) -> User | None:
        """The user, None when no credentials came; Refused for bad ones."""
        if not self.configured:
            return ANONYMOUS
        if self.header and (values := headers.getlist(self.header)):
            if self.from_proxy(scope):
                if len(values) > 1:  # a proxy that appends would let the client's win
                    raise Refused("bad_proxy_user")
                who = values[0].strip()
                if not who or len(who) > MAX_USER_CHARS or not who.isprintable():
                    raise Refused("bad_proxy_user")
                return User(who, "proxy", self.sessions.proxy_csrf(who))
            record_failure(scope, "untrusted_proxy_header")  # ignored, and noted
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, given = authorization.partition(" ")
            name = self.tokens.match(given.strip()) if scheme.lower() == "bearer" else None
            if name is None:
                raise Refused("bad_token")
            return User(name, "token")
        cookie = _cookie(headers, SESSION_COOKIE)
        if cookie is not None:
            session = self.sessions.read(cookie)
            if session is None:
                raise Refused("bad_session")
            return User(session[0], "session", session[1], session[2])
        return None

    def from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        try:
            address = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            return False
        return address is not None and any(address in net for net in self.trusted)

    def check_unsafe(self, scope: Scope, headers: Headers, user: User) -> None:
        """A browser's state-changing request must come from our own pages: same origin,
        and on a session with its CSRF token (a bearer token is no browser's)."""
        if scope["method"] not in UNSAFE_METHODS or user.via == "token":
            return
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Refused("cross_site", 403)
        origin = headers.get("origin")
        if (
            origin is not None
            and urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
        ):
            raise Refused("cross_site", 403)
        if user.via in ("session", "proxy") and scope["path"] not in FORM_PATHS:
            given = headers.get(CSRF_HEADER, "")
            if not user.csrf or not hmac.compare_digest(given.encode(), user.csrf.encode()):
                raise Refused("csrf", 403)

    # --- refusing --------------------------------------------------------------
    async def refuse(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, refused: Refused
    ) -> None:
        wants_page = scope["method"] in ("GET", "HEAD") and "text/html" in headers.get("accept", "")
        if refused.status == 401 and wants_page:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            response: JSONResponse | RedirectResponse = RedirectResponse(
                f"/login?next={quote(target, safe='')}", status_code=303
            )
            if refused.reason == "bad_session":
                response.delete_cookie(SESSION_COOKIE, path="/")
        else:
            response = JSONResponse(
                {"error": _message(refused.reason)},
                status_code=refused.status,
                headers={"WWW-Authenticate": "Bearer"} if refused.status == 401 else None,
            )
        await response(scope, receive, send)


class LogThrottle:
    """At most one log line per reason per second: a flood of bad tokens must not
    become a flood of log lines (the counter still counts every one)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def allow(self, reason: str) -> int | None:
        """None to hold this line back, else how many were held back before it."""
        now = time.monotonic()
        if now - self.last.get(reason, -1.0) < 1.0:
            self.held[reason] = self.held.get(reason, 0) + 1
            return None
        self.last[reason] = now
        return self.held.pop(reason, 0)


_fallback = LogThrottle()


def record_failure(scope: Scope, reason: str) -> None:
    """One log line (never a credential) and one count of a refused or ignored login.
    A request with no credentials at all is no failed login: it is counted, and
    logged at INFO (a browser's first visit is one)."""
    state = scope["app"].state if "app" in scope else None
    services = getattr(state, "services", None)
    if services is not None:
        services.metrics.auth_failures.labels(reason).inc()
    held = getattr(state, "auth_log", _fallback).allow(reason)
    if held is None:
        return
    client = scope.get("client")
    log.log(
        logging.INFO if reason == "missing" else logging.WARNING,
        "auth: %s %s from %s refused or ignored: %s (%s)%s",
        printable(scope.get("method", ""), 10),
        printable(scope.get("path", ""), 200),
        client[0] if client else "unknown",
        reason,
        REASONS.get(reason, ""),
        f"; {held} more like it in the last second, not logged" if held else "",
    )


def _message(reason: str) -> str:
    if reason == "missing":
        return (
            "authentication required: send Authorization: Bearer <token> (one of"
            " SRE_AGENT_API_TOKENS; the CLI sends SRE_AGENT_API_TOKEN), or log in at /login"
        )
    if reason == "csrf":
        return "refused: a request on a web session must send its X-CSRF-Token header"
    if reason == "cross_site":
        return "refused: a state-changing request from another site"
    return f"not authenticated: {REASONS.get(reason, reason)}"


def _cookie(headers: Headers, name: str) -> str | None:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name and value:
                return value
    return None


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this service only (no ``//host``)."""
    target = (target or "").strip()
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> str | None:
    """Refuse to serve records to a network with nothing to authenticate people; the
    warning to log when SRE_AGENT_ALLOW_ANONYMOUS allows it anyway (None: nothing)."""
    if settings.auth_configured or is_loopback(host):
        return None
    if not settings.allow_anonymous:
        raise ConfigError(
            f"refusing to serve on {host}: with no SRE_AGENT_API_TOKENS and no"
            " SRE_AGENT_AUTH_PROXY_HEADER, anyone who reaches this address could read every"
            " investigation and spend the GPU on chat. Set SRE_AGENT_API_TOKENS (name=token"
            " entries), or an auth proxy's SRE_AGENT_AUTH_PROXY_HEADER with"
            " SRE_AGENT_AUTH_PROXY_CIDRS, or bind 127.0.0.1; SRE_AGENT_ALLOW_ANONYMOUS=true"
            " serves anyone anyway"
        )
    return (
        f"SRE_AGENT_ALLOW_ANONYMOUS=true: serving on {host} with no authentication; anyone"
        " who reaches it can read every investigation and use chat"
    )


def webhook_warning(settings: Settings, host: str) -> str | None:
    """The webhook with no token of its own, reachable from a network: worth a warning
    (anyone there can post alerts, which spend the GPU), not a refusal (a NetworkPolicy
    may be what guards it)."""
    if settings.webhook_token is not None or is_loopback(host):
        return None
    return (
        f"SRE_AGENT_WEBHOOK_TOKEN is unset: anyone who reaches {host} can post alerts to"
        " /webhook/alert (and spend the model's time); set it, and Alertmanager's bearer"
        " token (README: Point Alertmanager at it)"
    )


def describe(settings: Settings) -> str:
    """How people are authenticated, for the start-up log (names, never tokens)."""
    ways = []
    if settings.named_api_tokens:
        names = ", ".join(name for name, _ in settings.named_api_tokens)
        ways.append(f"API tokens ({names}) for the API (Authorization header) and at /login")
    if settings.auth_proxy_header:
        nets = ", ".join(str(net) for net in settings.auth_proxy_cidrs)
        ways.append(f"the {settings.auth_proxy_header} header from {nets}")
    if not ways:
        return "none (anyone who reaches this address; SRE_AGENT_API_TOKENS adds it)"
    webhook = "its own token" if settings.webhook_token else "no token"
    return "; ".join(ways) + f" (the webhook: {webhook}; /healthz, /readyz, /metrics: open)"
