"""``GET /incidents`` and ``GET /incidents/{id}``: alerts joined by what they share
(:mod:`sre_agent.incidents`), with their roles and the head's analysis.

The conventions of ``/investigations``: store reads in a thread, a cursor ``before``
with ``next``, ``{"error": ...}`` answers, and the page (:mod:`sre_agent.web.pages`)
for a browser whose ``Accept`` ranks text/html above JSON.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from sre_agent.api.deps import StoreDep
from sre_agent.api.paging import page
from sre_agent.api.schemas import ErrorBody, IncidentList, IncidentSummary, errors
from sre_agent.models import Incident
from sre_agent.web import error_page
from sre_agent.web.pages import incident_page, prefers_html

router = APIRouter()


def _summary(incident: Incident) -> IncidentSummary:
    return IncidentSummary(
        **incident.model_dump(include=set(IncidentSummary.model_fields) - {"summary", "alerts"}),
        alerts=incident.alerts,
        summary=incident.analysis.summary if incident.analysis else None,
    )


@router.get("/incidents", response_model=IncidentList, responses=errors(422))
async def list_incidents(
    store: StoreDep,
    status: Literal["open", "resolved"] | None = None,
    before: str | None = Query(None, description="an incident id: page on from after it (`next`)"),
    limit: int = Query(50, ge=1, le=200),
) -> IncidentList:
    found, after, link = await page(
        store.list_incidents,
        path="/incidents",
        what="incident",
        filters={"status": status},
        before=before,
        limit=limit,
    )
    return IncidentList(
        incidents=[_summary(i) for i in found], count=len(found), next_before=after, next=link
    )


@router.get(
    "/incidents/{ident}",
    response_model=Incident,
    responses={
        200: {
            "description": "The incident; to a browser (`Accept` ranking text/html above"
            " JSON) its page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        404: {
            "model": ErrorBody,
            "description": "No incident with that id (to a browser: an HTML page saying so)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **errors(422),
    },
)
async def get_incident(ident: str, request: Request, store: StoreDep) -> Incident | HTMLResponse:
    browser = prefers_html(request.headers.get("accept"))
    incident = await asyncio.to_thread(store.get_incident, ident)
    if incident is None:
        message = f"no incident with id {ident[:40]!r}"
        if browser:
            return error_page(request, 404, "Not found", message)
        raise HTTPException(404, message)
    if browser:
        return await incident_page(request, incident, store)
    return incident
