"""``/healthz`` (the process answers) and ``/readyz`` (the database works;
Ollama, Prometheus and Kubernetes reachability reported alongside).

``/readyz`` answers within :data:`DATABASE_TIMEOUT` whatever the backends do:
it pings the database (in a thread, bounded) and serves the backends' states
as the background checker last saw them (:mod:`sre_agent.readiness`), each
with ``checked_at`` and ``age_s``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sre_agent.api.deps import ServicesDep

router = APIRouter()

#: Seconds the database ping may take; well inside deploy/'s 5 s probe timeout.
DATABASE_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    readiness = services.readiness
    database = await readiness.database(DATABASE_TIMEOUT)
    backends = readiness.states()
    body = {
        "status": "ready" if database["ok"] else "not ready",
        "database": database,
        "ollama": backends["ollama"],
        "prometheus": backends["prometheus"],
        "kubernetes": backends["kubernetes"],
        "queue_depth": services.worker.depth,
    }
    return JSONResponse(body, status_code=200 if database["ok"] else 503)
