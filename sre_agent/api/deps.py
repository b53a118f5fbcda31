"""Narrow dependencies for the routes (``StoreDep``, ``WorkerDep``...), read from the
services the lifespan opened (:mod:`sre_agent.services`), and the checks every route
shares. Nothing here imports the app: routes depend on parts, not on its wiring."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from sre_agent.chat import ChatService
from sre_agent.metrics import Metrics
from sre_agent.notify import Notifier
from sre_agent.readiness import Readiness
from sre_agent.services import Services
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.worker import Worker


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return get_services(request).settings


def get_store(request: Request) -> Store:
    return get_services(request).store


def get_worker(request: Request) -> Worker:
    return get_services(request).worker


def get_metrics(request: Request) -> Metrics:
    return get_services(request).metrics


def get_notifier(request: Request) -> Notifier:
    return get_services(request).notifier


def get_chat(request: Request) -> ChatService:
    return get_services(request).chat


def get_readiness(request: Request) -> Readiness:
    return get_services(request).readiness


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
WorkerDep = Annotated[Worker, Depends(get_worker)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]

log = logging.getLogger(__name__)

#: Routes whose clients are machines configured once (Alertmanager's receiver URL,
#: Prometheus' scrape config, kubelet probes): an extra query parameter there is
#: ignored with a warning, because a 4xx would not be retried — every alert of a
#: receiver URL with ``?source=prod`` would be lost.
MACHINE_ROUTES = frozenset({"/webhook/alert", "/metrics", "/healthz", "/readyz"})


def require_json(request: Request) -> None:
    """A JSON body must say so. A browser can send text/plain, a form or no type at all
    cross-origin without asking first (no CORS preflight); none of those is ours."""
    given = request.headers.get("content-type", "")
    if given.split(";", 1)[0].strip().lower() != "application/json":
        shown = given[:60] or "none"
        raise HTTPException(415, f"Content-Type must be application/json (got {shown})")


def _known_query(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` declares, its dependencies' (and query models') too."""
    cached: frozenset[str] | None = getattr(route, "_sre_agent_query", None)
    if cached is None:
        cached = frozenset(
            f.alias
            for f in get_flat_params(route.dependant)
            if not isinstance(f.field_info, params.Path | params.Header | params.Cookie)
        )
        route._sre_agent_query = cached  # type: ignore[attr-defined]
    return cached


def reject_unknown_query(request: Request) -> None:
    """Every route (a global dependency): a query parameter it does not take is a 422
    naming it, not silently ignored (``?severty=critical`` must not return everything);
    on :data:`MACHINE_ROUTES` it is ignored with a warning instead."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _known_query(route)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown and route.path in MACHINE_ROUTES:
        log.warning(
            "%s %s: ignored unknown query parameter(s) %s (this route takes: %s)",
            request.method,
            route.path,
            ", ".join(repr(name[:40]) for name in unknown[:10]),
            ", ".join(sorted(known)) or "none",
        )
        return
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        # The name in the message, not the location: "query.token: unknown ..." reads to
        # the log's secret masking as a credential, and the line would lose its point.
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query",),
                    "msg": f"unknown query parameter {name[:40]!r} (this route takes: {takes})",
                    "input": None,
                }
                for name in unknown
            ]
        )
