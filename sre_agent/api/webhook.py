"""``POST /webhook/alert``: Alertmanager's webhook receiver.

Answers 202 at once (an LLM run inside the request would be cancelled and
re-sent by Alertmanager); 4xx only for a request that is bad, since
Alertmanager never retries a 4xx. The whole body is validated before
anything is stored, and a group is stored in one transaction, in a thread:
the event loop (chat, ``/readyz``, the workers) never waits on SQLite or on
the redactor, and a rejected or failed delivery leaves nothing behind for
Alertmanager's retry to trip on. A refused delivery is logged and counted by
reason (``api/rejections.py``, from the app's error handlers), since
Alertmanager logs it only on its side.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sre_agent_tools.redact import redact

from sre_agent.alerts import WebhookPayload, decode_json, mask_label, parse_payload
from sre_agent.api.deps import (
    MetricsDep,
    NotifierDep,
    SettingsDep,
    StoreDep,
    WorkerDep,
    require_json,
)
from sre_agent.api.schemas import WebhookAnswer, errors
from sre_agent.db import DB_ERRORS
from sre_agent.errors import AlertPayloadError
from sre_agent.models import Investigation
from sre_agent.report import render
from sre_agent.settings import Settings
from sre_agent.store import Store
from sre_agent.worker import Worker

log = logging.getLogger(__name__)
router = APIRouter()


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` put in place: in the OpenAPI document a
    ``#/$defs/...`` reference would point at the document's root, where there are none."""
    defs = schema.pop("$defs", {})

    def place(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return place(defs[ref.removeprefix("#/$defs/")])
            return {k: place(v) for k, v in node.items()}
        if isinstance(node, list):
            return [place(v) for v in node]
        return node

    return place(schema)  # type: ignore[no-any-return]


#: For the OpenAPI document (schemathesis generates requests from it): the body is read
#: raw (bounded by the edge, decoded by :func:`intake`), so FastAPI cannot derive it.
_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": "An Alertmanager webhook body (version 4)",
        "content": {"application/json": {"schema": _inline(WebhookPayload.model_json_schema())}},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookAnswer, "description": "?wait=true: where each alert ended"},
    202: {"description": "Accepted: what became of each alert"},
    **errors(400, 401, 405, 408, 413, 415, 422, 503),
}


#: Seconds a delivery may wait on the database before it is answered 503.
INTAKE_TIMEOUT = 20.0
#: What answers a delivery 503 (so Alertmanager sends it again).
REFUSED: tuple[type[BaseException], ...] = (*DB_ERRORS, TimeoutError)


def _check_token(settings: Settings, request: Request) -> None:
    token = settings.webhook_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    # Which of three, never what was sent; worded so that the log's secret masking
    # leaves the line whole ("bearer token ..." reads to it as a credential).
    if not header:
        problem = "no Authorization header"
    elif scheme.lower() != "bearer":
        problem = "the Authorization scheme is not Bearer"
    elif not hmac.compare_digest(given.strip().encode(), expected):
        problem = "a wrong token in the Authorization header"
    else:
        return
    raise HTTPException(
        401,
        f"{problem} (SRE_AGENT_WEBHOOK_TOKEN, sent as Bearer)",
        headers={"WWW-Authenticate": "Bearer"},
    )


@dataclass
class Intake:
    """What one delivery did: its results (in the order of the body) and what follows."""

    payload: WebhookPayload
    results: list[dict[str, Any]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    resolved: list[Investigation] = field(default_factory=list)


def intake(settings: Settings, store: Store, body: bytes) -> Intake:
    """Decode, validate and store one delivery; blocking: called in a thread."""
    try:
        data = decode_json(body)
    except (ValueError, RecursionError) as exc:  # also bad UTF-8, absurd nesting or numbers
        raise HTTPException(
            400, f"malformed JSON: {str(exc)[:200] or 'too deeply nested'}"
        ) from None
    try:
        payload = parse_payload(data)
    except AlertPayloadError as exc:
        raise HTTPException(422, str(exc)) from None

    done = Intake(payload)
    investigate = [
        a for a in payload.alerts if a.status == "firing" and not settings.skip_reason(a.severity)
    ]
    ended = [a for a in payload.alerts if a.status == "resolved"]
    opened, closed = store.create_group(investigate, ended, payload.groupKey)
    by_alert = {id(a): r for a, r in zip(investigate, opened, strict=True)}
    resolved = {id(a): r for a, r in zip(ended, closed, strict=True)}
    for alert in payload.alerts:
        result: dict[str, Any] = {
            "alert_name": mask_label("alertname", alert.name),
            "severity": mask_label("severity", alert.severity),
            "fingerprint": mask_label("fingerprint", alert.fingerprint),
            "investigation_id": None,
        }
        if id(alert) in resolved:
            record = resolved[id(alert)]
            result.update(
                status="resolved",
                investigation_id=record.id if record else None,
                investigation_status=record.status if record else None,
            )
            if record is not None:
                done.resolved.append(record)
        elif id(alert) in by_alert:
            ident, status, created = by_alert[id(alert)]
            if created:
                done.created.append(ident)
            result.update(status=status, investigation_id=ident, duplicate=not created)
        else:
            result.update(status="skipped", reason=settings.skip_reason(alert.severity))
        done.results.append(result)
    return done


@router.post(
    "/webhook/alert",
    status_code=202,
    response_model=WebhookAnswer,
    responses=_RESPONSES,
    openapi_extra=_OPENAPI,
)
async def receive_alerts(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    worker: WorkerDep,
    notifier: NotifierDep,
    metrics: MetricsDep,
    wait: bool = Query(False, description="answer once the investigations have finished"),
) -> JSONResponse:
    _check_token(settings, request)
    require_json(request)
    body = await request.body()  # bounded in size and time by the edge (api/edge.py)
    try:
        # A database that stops answering mid-delivery gets a 503 too, not a hang; the
        # delivery is all or nothing, and stored once when Alertmanager sends it again.
        async with asyncio.timeout(INTAKE_TIMEOUT):
            done = await store.call_intake(intake, settings, store, body)
    except REFUSED as exc:
        log.error(
            "webhook: could not store the alerts (%s: %s); answered 503, Alertmanager retries",
            exc.__class__.__name__,
            str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail",
        )
        raise HTTPException(
            503,
            f"could not store the alerts ({exc.__class__.__name__}); nothing was stored,"
            " send them again",
            headers={"Retry-After": "5"},
        ) from None
    for ident in done.created:
        worker.submit(ident)
    for record in done.resolved:
        notifier.alert_resolved(record)  # Slack: "resolved at" in the thread
    if done.resolved:
        await worker.alerts_resolved(done.resolved)  # incidents may have resolved
    counts: dict[str, int] = {}
    for result in done.results:
        metrics.count_alert(result)
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no alerts"
    log.info(
        "webhook: %d alert(s) from %s: %s",
        len(done.results),
        redact(done.payload.receiver[:200]) or "?",
        summary,
    )
    if wait:  # the message then says where they ended, as each result does
        await _wait(settings, worker, done.results)
        counts = {}
        for result in done.results:
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no alerts"
    return JSONResponse(
        {
            "message": f"received {len(done.results)} alert(s): {summary}",
            "results": done.results,
            "service": "sre-agent",
            "timestamp": datetime.now(UTC).isoformat(),
        },
        status_code=200 if wait else 202,
    )


async def _wait(settings: Settings, worker: Worker, results: list[dict[str, Any]]) -> None:
    """?wait=true: one deadline for the whole request, the time its investigations need
    when they run SRE_AGENT_MAX_CONCURRENT at a time, each within its own deadline."""
    waiting = [
        r for r in results if r["investigation_id"] and r["status"] not in ("resolved", "skipped")
    ]
    rounds = -(-len(waiting) // settings.max_concurrent)
    deadline = time.monotonic() + settings.investigation_timeout * rounds
    for result in waiting:
        remaining = max(0.0, deadline - time.monotonic())
        record = await worker.wait(result["investigation_id"], remaining)
        if record is not None:
            result["status"] = record.status
            result["analysis"] = render(record)
            head = (
                await asyncio.to_thread(worker.store.get, record.explained_by)
                if record.status == "linked" and record.explained_by
                else None
            )
            if head is not None:  # the analysis that explains it, after its own report
                result["explained_by"] = head.id
                result["analysis"] += "\n\n" + render(head)
