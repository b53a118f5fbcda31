"""``create_app(settings)``: the FastAPI app, wiring only -- the routers, the edge
middleware, the error handlers and a lifespan that opens the services
(:func:`sre_agent.services.open_services`) and closes them. Nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from sre_agent import __version__, web
from sre_agent.alerts import describe_errors
from sre_agent.api import (
    chat,
    health,
    incidents,
    investigations,
    login,
    memory,
    metrics,
    rejections,
    slack,
    webhook,
)
from sre_agent.api.deps import reject_unknown_query
from sre_agent.api.edge import Edge
from sre_agent.api.schemas import edge_errors, errors
from sre_agent.auth import Auth, LogThrottle, Sessions, Tokens
from sre_agent.services import Services, open_services
from sre_agent.settings import Settings
from sre_agent.tasks import cancel_and_wait
from sre_agent.web import pages

log = logging.getLogger(__name__)

__all__ = ["Services", "create_app"]

API_TOKEN = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="One of SRE_AGENT_API_TOKENS; a web session or the auth proxy's header also"
    " passes. Unset on the service: no authentication (loopback only).",
)

#: Statuses only the edge gives (a body too slow or too large): logged on every path.
EDGE_STATUSES = (408, 413)


#: Seconds between a replica's looks at the logouts other replicas stored.
LOGOUT_REFRESH = 3.0


async def _follow_logouts(app: FastAPI, store: Any) -> None:
    while True:
        await asyncio.sleep(LOGOUT_REFRESH)
        try:
            app.state.sessions.restore(await asyncio.to_thread(store.revoked_sessions))
        except Exception:  # the database is down: the next look tries again
            log.debug("logouts of other replicas not read", exc_info=True)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            # Sessions ended before a restart stay ended.
            app.state.sessions.restore(await asyncio.to_thread(services.store.revoked_sessions))
            refresh = None
            if services.store.shared:  # and those another replica ended, within seconds
                refresh = asyncio.create_task(_follow_logouts(app, services.store))
            try:
                yield
            finally:
                if refresh is not None:
                    await cancel_and_wait([refresh])

    # Every route refuses query parameters it does not take (422 naming them). /docs and
    # /redoc load Swagger UI and ReDoc from fastapi-offline's package, not from a CDN: they
    # work in an air-gapped cluster.
    app = FastAPIOffline(
        title="sre-agent",
        version=__version__,
        description="Investigates Alertmanager alerts with a local model; the records,"
        ' their reports and follow-up chat. Errors answer `{"error": "..."}`.',
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        # What the edge (api/edge.py) may answer on any route, before the route runs.
        responses=edge_errors(400, 431, 500),
        static_url="/static/docs",
    )
    # Who is asking, on every path but the probes and the webhook (sre_agent/auth.py).
    # Added first, so it runs inside the edge added next: a request too large or for a
    # wrong Host never gets this far.
    tokens = Tokens(settings)
    app.state.tokens = tokens
    app.state.sessions = Sessions(settings, tokens)
    app.state.auth_log = LogThrottle()
    app.add_middleware(Auth, settings=settings, sessions=app.state.sessions, tokens=tokens)
    # Before any route: the Host allowlist, header and body bounds, and a JSON 500 that
    # keeps the connection (api/edge.py).
    app.add_middleware(
        Edge,
        allowed_hosts=settings.allowed_hosts,
        max_headers=settings.max_headers,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
    )
    _add_error_handlers(app)
    for module in (webhook, health, metrics, login, pages, slack):
        app.include_router(module.router)
    # What sre_agent/auth.py enforces on these, documented: /docs gets an "Authorize" box
    # (the scheme checks nothing itself; the middleware does, before any route runs).
    for module in (investigations, incidents, chat, memory):
        app.include_router(
            module.router, dependencies=[Security(API_TOKEN)], responses=errors(401, 403)
        )
    # The pages' CSS and JavaScript, shipped in the wheel (sre_agent/web/static).
    app.mount(web.STATIC_URL, StaticFiles(directory=web.STATIC_DIR), name="web-static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": message}``; refused webhook deliveries are logged and
    counted (api/rejections.py), since Alertmanager logs them only on its side."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = _not_allowed(request, exc) if exc.status_code == 405 else exc.detail
        if request.url.path == rejections.WEBHOOK_PATH or exc.status_code in EDGE_STATUSES:
            rejections.record(request.scope, exc.status_code, str(detail))
        return JSONResponse(
            {"error": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = f"invalid request: {describe_errors(exc.errors())}"
        if request.url.path == rejections.WEBHOOK_PATH:
            query = any(e["loc"][:1] == ("query",) for e in exc.errors())
            rejections.record(request.scope, 422, message, "bad_query" if query else None)
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception(
            "unexpected error on %s %s",
            request.method,
            rejections.printable(request.url.path, 200),
        )
        return JSONResponse({"error": "internal error; see the service log"}, status_code=500)


def _not_allowed(request: Request, exc: StarletteHTTPException) -> str:
    """A 405 that says what to do instead (a browser's GET of the webhook URL, say)."""
    method = rejections.printable(request.method, 20)
    if request.url.path == rejections.WEBHOOK_PATH:
        return (
            f"{method} is not accepted here: Alertmanager POSTs its webhook body (JSON,"
            f" Content-Type: application/json) to {rejections.WEBHOOK_PATH}"
        )
    allowed = (getattr(exc, "headers", None) or {}).get("Allow", "")
    return f"{method} is not allowed on this path" + (f" (allowed: {allowed})" if allowed else "")
