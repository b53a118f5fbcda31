"""``GET /investigations`` and ``GET /investigations/{id}``.

Store reads run in a thread: a large record's decoding, or SQLite behind a
writer, must not hold up the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse

from sre_agent.api.deps import ServicesDep
from sre_agent.report import render_record

router = APIRouter()

StatusFilter = Literal["queued", "running", "completed", "degraded", "failed", "cancelled"]


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    analysis = record.get("analysis") or {}
    return {
        "id": record["id"],
        "alertname": record["alertname"],
        "severity": record["severity"],
        "namespace": record["namespace"],
        "fingerprint": record["fingerprint"],
        "status": record["status"],
        "status_reason": record["status_reason"],
        "alert_status": record["alert_status"],
        "created_at": record["created_at"],
        "finished_at": record["finished_at"],
        "summary": analysis.get("summary"),
    }


@router.get("/investigations")
async def list_investigations(
    services: ServicesDep,
    status: StatusFilter | None = None,
    alertname: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
    before: str | None = Query(None, description="an id: page on from after it (`next`)"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    filters = {
        "status": status,
        "alertname": alertname,
        "namespace": namespace,
        "severity": severity,
    }
    try:  # one more than asked: whether there is a next page
        records = await asyncio.to_thread(
            services.store.list, **filters, before=before, limit=limit + 1
        )
    except KeyError:
        raise HTTPException(422, f"before: no investigation with id {str(before)[:40]!r}") from None
    more, records = len(records) > limit, records[:limit]
    after = records[-1]["id"] if more else None
    query = {k: v for k, v in filters.items() if v} | {"limit": limit, "before": after}
    return {
        "investigations": [_summary(r) for r in records],
        "count": len(records),
        "next_before": after,  # the cursor: ?before= this for the next page, null at the end
        "next": f"/investigations?{urlencode(query)}" if after else None,
    }


@router.get("/investigations/{ident}", response_model=None)
async def get_investigation(
    ident: str, services: ServicesDep, format: Literal["json", "markdown"] = "json"
) -> dict[str, Any] | PlainTextResponse:
    record = await asyncio.to_thread(services.store.get, ident)
    if record is None:
        raise HTTPException(404, f"no investigation with id {ident[:40]!r}")
    if format == "markdown":
        text = await asyncio.to_thread(render_record, record)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
    record.pop("dedup_key", None)
    return record
