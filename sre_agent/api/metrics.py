"""``GET /metrics``: the service's own metrics, in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from sre_agent.api.deps import MetricsDep

router = APIRouter()

#: The classic text format that ``generate_latest`` writes, which every Prometheus reads.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(service_metrics: MetricsDep) -> Response:
    return Response(generate_latest(service_metrics.registry), media_type=TEXT_FORMAT)
