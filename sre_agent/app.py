"""``create_app(settings)``: builds the FastAPI app. Clients, the database and
the workers open in the lifespan and close there; nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sre_agent_tools import ToolDeps
from starlette.exceptions import HTTPException as StarletteHTTPException

from sre_agent import __version__, tokens
from sre_agent.agent import Investigator
from sre_agent.api import rejections
from sre_agent.api.edge import Edge
from sre_agent.backends import make_deps, make_kube
from sre_agent.chat import ChatService
from sre_agent.metrics import Metrics
from sre_agent.notify import Notifier
from sre_agent.prompts import Prompts, load_prompts
from sre_agent.readiness import OneAtATime, Readiness
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.worker import Worker

log = logging.getLogger(__name__)

#: Statuses only the edge gives (a body too slow or too large): logged on every path.
EDGE_STATUSES = (408, 413)


@dataclass
class Services:
    settings: Settings
    store: Store
    deps: ToolDeps
    prompts: Prompts
    worker: Worker
    metrics: Metrics
    notifier: Notifier
    chat: ChatService
    readiness: Readiness


async def _load_kube(settings: Settings) -> tuple[Any | None, str | None]:
    """The Kubernetes client, bounded: a kubeconfig's exec plugin (a cloud CLI fetching
    a token) may hang, and must not hold start-up. In a daemon thread, never joined."""
    bound = settings.backend_timeout
    try:
        return await asyncio.wait_for(
            OneAtATime("kubeconfig-load")(lambda: make_kube(settings)), bound
        )
    except TimeoutError:
        return None, (
            f"Kubernetes configuration not loaded within {bound:g} s"
            " (SRE_AGENT_BACKEND_TIMEOUT; an exec plugin in the kubeconfig that does not"
            " answer?); restart once it does"
        )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_path)
        store.open()
        deps = make_deps(settings, await _load_kube(settings))
        prompts = load_prompts(settings.prompts_dir)
        metrics = Metrics()  # per app: tests build many apps in one process
        notifier = Notifier(settings, store, metrics)

        async def on_finished(record: dict[str, Any]) -> None:
            metrics.observe_investigation(record)
            notifier.investigation_finished(record)  # a background task: never delays

        worker = Worker(
            store,
            Investigator(settings, prompts, deps),
            concurrency=settings.max_concurrent,
            timeout=settings.investigation_timeout,
            on_finished=on_finished,
        )
        metrics.track_queue(lambda: worker.depth)
        chat = ChatService(settings, prompts, deps, store)
        await chat.open()
        # /readyz serves these states; the checks run in the background (readiness.py).
        readiness = Readiness.for_service(
            settings, deps, on_result=metrics.record_backend, ping=store.ping
        )
        app.state.services = Services(
            settings, store, deps, prompts, worker, metrics, notifier, chat, readiness
        )
        # One round of checks (each bounded by SRE_AGENT_READINESS_CHECK_TIMEOUT, blocking
        # calls in threads), then one line per backend: what works, what to change.
        await readiness.start()
        for ok, line in readiness.describe():
            if ok:
                log.info("%s", line)
            else:
                log.warning("%s. Alerts are still accepted and stored.", line)
        # The tokenizer loads in about a second: here, in a thread, not on the event loop
        # under the first investigation (every request would wait for it).
        await asyncio.to_thread(tokens.count, "warm up")
        await notifier.start()
        await worker.start()
        try:
            yield
        finally:
            await readiness.stop()
            await worker.stop()
            await notifier.stop()
            await chat.close()
            if deps.kube is not None:
                deps.kube.close()
            store.close()

    from sre_agent.api.deps import reject_unknown_query

    # Every route refuses query parameters it does not take (422 naming them).
    app = FastAPI(
        title="sre-agent",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
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

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.url.path == rejections.WEBHOOK_PATH or exc.status_code in EDGE_STATUSES:
            rejections.record(request.scope, exc.status_code, str(exc.detail))
        return JSONResponse(
            {"error": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p)[:40] for p in e['loc'])}: {e['msg'][:200]}" for e in exc.errors()[:5]
        )
        message = f"invalid request: {problems}"
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

    from sre_agent.api import chat as chat_api
    from sre_agent.api import health, investigations, webhook
    from sre_agent.api import metrics as metrics_api

    app.include_router(webhook.router)
    app.include_router(investigations.router)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    app.include_router(chat_api.router)
    return app
