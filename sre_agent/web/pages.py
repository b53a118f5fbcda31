"""The pages: ``/`` (the investigations, newest first, filtered and paged), the live feed
behind it (``/events/investigations``, :mod:`sre_agent.web.feed`), and the investigation
page that ``GET /investigations/{id}`` answers a browser with (:func:`investigation_page`).

A page reads what the API reads, through the same store calls in a thread; a filter
value the store does not know (a status that is none, a page cursor gone) is said on
the page, never a 4xx JSON or a 500 in a browser's face.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse

from sre_agent import sources as src
from sre_agent.api.deps import SettingsDep, StoreDep, get_services
from sre_agent.chat import ChatService
from sre_agent.models import ACTIVE, FINAL, Incident, Investigation
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.web import page, view
from sre_agent.web.feed import Feed, Filters

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

STATUSES = (*ACTIVE, *FINAL)
#: The list's page size, and the most a ``limit`` may ask for.
PAGE_SIZE, MAX_PAGE = 50, 500
FILTERS = ("status", "severity", "namespace", "alertname", "text")
#: Characters of a filter value kept (a longer one is no filter a person typed).
FILTER_CHARS = 200


def get_feed(request: Request) -> Feed:
    return get_services(request).feed


def prefers_html(accept: str | None) -> bool:
    """Whether ``Accept`` ranks text/html above JSON (a browser's does; curl's ``*/*``,
    a client's ``application/json`` and none at all do not)."""
    ranks: dict[str, tuple[int, float]] = {}  # media range -> (specificity, q)
    for part in (accept or "").split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind:
            ranks[kind.lower()] = (kind.count("*") * -1, q)

    def quality(media: str) -> float:
        major = media.split("/")[0]
        found = [ranks[r] for r in (media, f"{major}/*", "*/*") if r in ranks]
        return max(found)[1] if found else 0.0

    return quality("text/html") > quality("application/json")


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:FILTER_CHARS] or None


def _limit(value: str | None) -> int:
    try:
        return min(max(int(value or PAGE_SIZE), 1), MAX_PAGE)
    except ValueError:
        return PAGE_SIZE


@router.get("/", response_class=HTMLResponse)
async def list_page(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    status: str | None = None,
    severity: str | None = None,
    namespace: str | None = None,
    alertname: str | None = None,
    text: str | None = None,
    before: str | None = None,
    limit: str | None = None,
) -> HTMLResponse:

    given = (status, severity, namespace, alertname, text)
    filters = {k: v for k, v in zip(FILTERS, map(_clean, given), strict=True) if v}
    size, cursor_from = _limit(limit), _clean(before)
    cursor = get_feed(request).cursor  # first: what changes after the read is sent live
    notice, records, more = None, [], False
    if filters.get("status") not in (None, *STATUSES):
        notice = f"No investigation has status {filters['status']!r}: the statuses are " + (
            ", ".join(STATUSES)
        )
    else:
        try:
            found = await asyncio.to_thread(
                store.list, **filters, before=cursor_from, limit=size + 1
            )
        except KeyError:
            found = []
            notice = "That page is gone (its investigation no longer exists): start again."
        more, records = len(found) > size, found[:size]
        severity_given = filters.get("severity")
        if not records and severity_given and not notice:
            notice = settings.unknown_severity(severity_given)
    query = dict(filters)
    if limit is not None and size != PAGE_SIZE:
        query["limit"] = str(size)
    older = f"/?{urlencode({**query, 'before': records[-1].id})}" if more else None
    feed_query = urlencode({**filters, "after": cursor})
    context = {
        "records": records,
        "filters": filters,
        "statuses": STATUSES,
        "severities": settings.severities,
        "notice": notice,
        "older": older,
        # The live feed keeps the first page at its size: the rows it pushes off are
        # behind an "Older" link that starts before the last row kept.
        "page_size": size,
        "older_base": f"/?{urlencode(query)}",
        "first_page": cursor_from is None,
        "feed": f"/events/investigations?{feed_query}",
    }
    return page(request, "list.html", context)


@router.get("/events/investigations")
async def investigation_events(
    request: Request,
    status: str | None = None,
    severity: str | None = None,
    namespace: str | None = None,
    alertname: str | None = None,
    text: str | None = None,
    id: str | None = None,
    after: str | None = None,
    last_event_id: str | None = Header(None),
) -> EventSourceResponse:
    """Changes as they happen (:mod:`sre_agent.web.feed`); ``Last-Event-ID`` (a browser's
    reconnect) or ``after`` (the cursor a page was rendered at) resume."""
    filters = Filters(
        status=_clean(status),
        severity=_clean(severity),
        namespace=_clean(namespace),
        alertname=_clean(alertname),
        text=_clean(text),
        id=_clean(id),
    )
    resume = None
    for value in (last_event_id, after):  # the reconnect's is the newer
        try:
            resume = int(value) if value else None
        except ValueError:
            continue
        if resume is not None and resume >= 0:
            break
        resume = None
    return EventSourceResponse(
        get_feed(request).stream(filters, resume),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- the investigation page -------------------------------------------------------


@dataclass
class Turn:
    """One message of the chat as the panel shows it: an answer with its tool calls."""

    role: str
    text: str = ""
    tools: list[tuple[str, str]] = field(default_factory=list)


def turns(history: list[dict[str, Any]]) -> list[Turn]:
    """The history as the panel shows a live turn: each answer in one message, the tool
    calls it made above its text (the tools' outputs are not shown)."""
    shown: list[Turn] = []
    for message in history:
        role = message.get("role")
        if role == "user":
            shown.append(Turn("user", str(message.get("content") or "")))
            continue
        if role != "assistant":
            continue
        if not shown or shown[-1].role != "assistant":
            shown.append(Turn("assistant"))
        turn = shown[-1]
        for call in message.get("tool_calls") or []:
            turn.tools.append((str(call.get("name")), view.args_text(call.get("args") or {})))
        content = str(message.get("content") or "").strip()
        if content:
            turn.text = content
    return shown


async def _history(talk: ChatService, ident: str) -> list[Turn] | None:
    try:
        return turns(await talk.history(ident))
    except Exception:  # the page still shows the record
        log.exception("chat history of %s could not be read", ident)
        return None


async def investigation_page(
    request: Request, record: Investigation, talk: ChatService, settings: Settings
) -> HTMLResponse:
    """The report as a page, the chat panel below it; its incident (and the head that
    explains it) above; past investigations like it ("Seen before") and people's verdicts
    on it, with the form that gives one once it is final ("Feedback")."""
    cursor = get_feed(request).cursor
    history = await _history(talk, record.id) if record.final else []
    incident = await _incident_of(request, record)
    context = {
        "r": record,
        "incident": incident,
        "head": view.member(incident, record.explained_by),
        "role": view.member_role(incident, record.id),
        "warning": src.warning(record.sources),
        "gaps": view.source_gaps(record),
        "since": view.active_since(record),
        "causes": view.causes(record),
        "follow_ups": view.follow_ups(record),
        "links": view.alert_links(record),
        "history": history,
        "chat_open": record.final,
        "root_cause": view.first_cause(record),
        "feed": f"/events/investigations?{urlencode({'id': record.id, 'after': cursor})}",
        "chat_rate": settings.chat_rate_per_minute,
    }
    return page(request, "investigation.html", context)


async def _incident_of(request: Request, record: Investigation) -> Incident | None:
    if record.incident_id is None:
        return None
    try:
        store = get_services(request).store
        return await asyncio.to_thread(store.get_incident, record.incident_id)
    except Exception:  # the page still shows the record
        log.exception("incident %s of %s could not be read", record.incident_id, record.id)
        return None


# --- the incident page ------------------------------------------------------------


async def incident_page(request: Request, incident: Incident, store: Store) -> HTMLResponse:
    """The incident: the head's analysis with the findings it cites (as the head's own
    page shows them), then each alert, its part and why it joined."""
    head = await asyncio.to_thread(store.get, incident.head_id) if incident.head_id else None
    context = {
        "i": incident,
        "head": head,
        "causes": view.causes(head) if head is not None else [],
        "names": {a.investigation_id: a.alertname for a in incident.alerts},
    }
    return page(request, "incident.html", context)
