"""``GET /investigations`` and ``GET /investigations/{id}``.

Store reads run in a thread: a large record's decoding, or SQLite behind a
writer, must not hold up the event loop.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse

from sre_agent.api.deps import SettingsDep, StoreDep
from sre_agent.api.schemas import InvestigationList, InvestigationSummary, errors
from sre_agent.models import Investigation, Status
from sre_agent.report import render
from sre_agent.settings import KNOWN_SEVERITIES, Settings

router = APIRouter()


def _summary(record: Investigation) -> InvestigationSummary:
    return InvestigationSummary(
        **record.model_dump(include=set(InvestigationSummary.model_fields) - {"summary"}),
        summary=record.analysis.summary if record.analysis else None,
    )


def _unknown_severity(severity: str, settings: Settings) -> str | None:
    """Why a severity no investigation has is likely a mistake (a typo, a case), if it is
    one that sre-agent neither knows nor is set to investigate."""
    known = dict.fromkeys((*settings.severities, *KNOWN_SEVERITIES))
    if severity in known:
        return None
    close = difflib.get_close_matches(severity.lower(), known, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"severity: no investigation has {severity[:40]!r}{guess}; severities are matched"
        f" exactly, and SRE_AGENT_SEVERITIES investigates {', '.join(settings.severities)}"
    )


@router.get("/investigations", response_model=InvestigationList, responses=errors(422))
async def list_investigations(
    store: StoreDep,
    settings: SettingsDep,
    status: Status | None = None,
    alertname: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
    before: str | None = Query(None, description="an id: page on from after it (`next`)"),
    limit: int = Query(50, ge=1, le=500),
) -> InvestigationList:
    filters = {
        "status": status,
        "alertname": alertname,
        "namespace": namespace,
        "severity": severity,
    }
    try:  # one more than asked: whether there is a next page
        records = await asyncio.to_thread(store.list, **filters, before=before, limit=limit + 1)
    except KeyError:
        raise HTTPException(422, f"before: no investigation with id {str(before)[:40]!r}") from None
    if not records and severity and (problem := _unknown_severity(severity, settings)):
        raise HTTPException(422, problem)
    more, records = len(records) > limit, records[:limit]
    after = records[-1].id if more else None
    query: dict[str, Any] = {k: v for k, v in filters.items() if v}
    query |= {"limit": limit, "before": after}
    return InvestigationList(
        investigations=[_summary(r) for r in records],
        count=len(records),
        next_before=after,  # the cursor: ?before= this for the next page, null at the end
        next=f"/investigations?{urlencode(query)}" if after else None,
    )


@router.get(
    "/investigations/{ident}",
    response_model=Investigation,
    responses={
        200: {
            "description": "The record; with `?format=markdown` its report",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
        **errors(404, 422),
    },
)
async def get_investigation(
    ident: str, store: StoreDep, format: Literal["json", "markdown"] = "json"
) -> Investigation | PlainTextResponse:
    record = await asyncio.to_thread(store.get, ident)
    if record is None:
        raise HTTPException(404, f"no investigation with id {ident[:40]!r}")
    if format == "markdown":
        text = await asyncio.to_thread(render, record)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
    return record
