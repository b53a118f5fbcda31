"""``/healthz`` (the process answers) and ``/readyz`` (the database works;
Ollama, Prometheus and Kubernetes reachability reported alongside)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sre_agent.api.deps import ServicesDep
from sre_agent.backends import check_kubernetes, check_ollama, check_prometheus

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        services.store.ping()
        database: dict[str, Any] = {"ok": True}
    except Exception as exc:
        database = {"ok": False, "error": str(exc)}
    ollama, prometheus, kubernetes = await asyncio.gather(
        check_ollama(services.settings),
        check_prometheus(services.settings),
        check_kubernetes(services.deps),
    )
    services.metrics.set_ollama(ollama)
    body = {
        "status": "ready" if database["ok"] else "not ready",
        "database": database,
        "ollama": ollama,
        "prometheus": prometheus,
        "kubernetes": kubernetes,
        "queue_depth": services.worker.depth,
    }
    return JSONResponse(body, status_code=200 if database["ok"] else 503)
