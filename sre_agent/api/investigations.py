"""``GET /investigations`` and ``GET /investigations/{id}``.

Store reads run in a thread: a large record's decoding, or SQLite behind a
writer, must not hold up the event loop. A browser asking for ``/investigations/{id}``
(its ``Accept`` ranks text/html above JSON) gets the page (:mod:`sre_agent.web.pages`);
every other client gets JSON, or the report with ``?format=markdown``.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from sre_agent.api.deps import ChatDep, SettingsDep, StoreDep
from sre_agent.api.paging import page
from sre_agent.api.schemas import (
    ERRORS,
    ErrorBody,
    InvestigationList,
    InvestigationSummary,
    errors,
)
from sre_agent.models import Investigation, Status
from sre_agent.report import render
from sre_agent.web import error_page
from sre_agent.web.pages import investigation_page, prefers_html

router = APIRouter()


def _summary(record: Investigation) -> InvestigationSummary:
    return InvestigationSummary(
        **record.model_dump(include=set(InvestigationSummary.model_fields) - {"summary"}),
        summary=record.analysis.summary if record.analysis else None,
    )


@router.get("/investigations", response_model=InvestigationList, responses=errors(422))
async def list_investigations(
    store: StoreDep,
    settings: SettingsDep,
    status: Status | None = None,
    alertname: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
    text: str | None = Query(
        None, description="matches anywhere in the alert, the analysis or the failure reason"
    ),
    before: str | None = Query(None, description="an id: page on from after it (`next`)"),
    limit: int = Query(50, ge=1, le=500),
) -> InvestigationList:
    filters = {
        "status": status,
        "alertname": alertname,
        "namespace": namespace,
        "severity": severity,
        "text": text,
    }
    records, after, link = await page(
        store.list,
        path="/investigations",
        what="investigation",
        filters=filters,
        before=before,
        limit=limit,
    )
    if not records and severity and (problem := settings.unknown_severity(severity)):
        raise HTTPException(422, problem)
    return InvestigationList(
        investigations=[_summary(r) for r in records],
        count=len(records),
        next_before=after,  # the cursor: ?before= this for the next page, null at the end
        next=link,
    )


@router.get(
    "/investigations/{ident}",
    response_model=Investigation,
    responses={
        200: {
            "description": "The record; with `?format=markdown` its report; to a browser"
            " (`Accept` ranking text/html above JSON, no `format`) the report as a page",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        404: {
            "model": ErrorBody,
            "description": f"{ERRORS[404]} (to a browser: an HTML page saying so)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **errors(422),
    },
)
async def get_investigation(
    ident: str,
    request: Request,
    store: StoreDep,
    talk: ChatDep,
    settings: SettingsDep,
    format: Literal["json", "markdown"] | None = None,
) -> Investigation | PlainTextResponse | HTMLResponse:
    browser = format is None and prefers_html(request.headers.get("accept"))
    record = await asyncio.to_thread(store.get, ident)
    if record is None:
        message = f"no investigation with id {ident[:40]!r}"
        if browser:
            return error_page(request, 404, "Not found", message)
        raise HTTPException(404, message)
    if browser:
        return await investigation_page(request, record, talk, settings)
    if format == "markdown":
        incident = None
        if record.incident_id is not None:
            incident = await asyncio.to_thread(store.get_incident, record.incident_id)
        text = await asyncio.to_thread(render, record, incident)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
    return record
