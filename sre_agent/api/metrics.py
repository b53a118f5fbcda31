"""``GET /metrics``: the service's own metrics, in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import generate_latest

from sre_agent.api.deps import ServicesDep

router = APIRouter()

#: The classic text format that ``generate_latest`` writes, which every Prometheus reads.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=TEXT_FORMAT)
