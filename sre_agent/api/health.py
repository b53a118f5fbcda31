"""``/healthz`` (the process answers) and ``/readyz`` (the database works;
Ollama, Prometheus and Kubernetes reachability reported alongside, and
``degraded`` when any of them is not usable).

``/readyz`` answers within :data:`DATABASE_TIMEOUT` whatever the backends do:
it pings the database (in a thread, bounded) and serves the backends' states
as the background checker last saw them (:mod:`sre_agent.readiness`), each
with ``checked_at`` and ``age_s``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sre_agent.api.deps import ReadinessDep, WorkerDep
from sre_agent.api.schemas import Health, Ready

router = APIRouter()

#: The backends /readyz reports; any of them down makes it ``degraded``, still 200.
BACKENDS = ("ollama", "prometheus", "kubernetes")

#: Seconds the database ping may take; well inside deploy/'s 5 s probe timeout.
DATABASE_TIMEOUT = 2.0


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready: the database does not answer"}},
)
async def readyz(readiness: ReadinessDep, worker: WorkerDep) -> JSONResponse:
    """Ready (200) means alerts can be accepted and stored: the database answers. A
    backend that is down makes the service ``degraded`` (investigations will lack what
    it would give), not unready: Alertmanager must still be able to deliver."""
    database = await readiness.database(DATABASE_TIMEOUT)
    backends = readiness.states()
    down = [name for name in BACKENDS if not backends[name].get("ok")]
    body = {
        "status": "ready" if database["ok"] else "not ready",
        "degraded": bool(down),
        "degraded_components": down,
        "database": database,
        **{name: backends[name] for name in BACKENDS},
        "queue_depth": worker.depth,
    }
    return JSONResponse(body, status_code=200 if database["ok"] else 503)
