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

import hmac
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sre_agent_tools.redact import redact

from sre_agent.alerts import WebhookPayload, decode_json, mask_label, parse_payload
from sre_agent.api.deps import ServicesDep, require_json
from sre_agent.app import Services
from sre_agent.errors import AlertPayloadError
from sre_agent.report import render_record
from sre_agent.settings import Settings
from sre_agent.store import Store

log = logging.getLogger(__name__)
router = APIRouter()

#: For the OpenAPI document (schemathesis generates requests from it): the body is read
#: raw, so FastAPI cannot derive it.
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": WebhookPayload.model_json_schema()}},
    },
    "responses": {
        "202": {"description": "Accepted: what became of each alert"},
        "400": {"description": "Malformed JSON"},
        "401": {"description": "Missing or wrong bearer token"},
        "408": {"description": "Body not sent within SRE_AGENT_BODY_TIMEOUT"},
        "413": {"description": "Body over SRE_AGENT_MAX_BODY_BYTES"},
        "415": {"description": "Content-Type is not application/json"},
        "422": {"description": "Not an Alertmanager v4 body, or an unknown query parameter"},
        "503": {"description": "The database failed: nothing was stored, retry"},
    },
}


def _check_token(services: Services, request: Request) -> None:
    token = services.settings.webhook_token
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
    resolved: list[dict[str, Any]] = field(default_factory=list)


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
        a for a in payload.alerts if a.status == "firing" and a.severity in settings.severities
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
                investigation_id=record["id"] if record else None,
                investigation_status=record["status"] if record else None,
            )
            if record is not None:
                done.resolved.append(record)
        elif id(alert) in by_alert:
            ident, status, created = by_alert[id(alert)]
            if created:
                done.created.append(ident)
            result.update(status=status, investigation_id=ident, duplicate=not created)
        else:
            result.update(
                status="skipped",
                reason=f"severity {result['severity']!r} is not in SRE_AGENT_SEVERITIES"
                f" ({','.join(settings.severities)})",
            )
        done.results.append(result)
    return done


@router.post("/webhook/alert", status_code=202, openapi_extra=_OPENAPI)
async def receive_alerts(
    request: Request, services: ServicesDep, wait: bool = False
) -> JSONResponse:
    _check_token(services, request)
    require_json(request)
    body = await request.body()  # bounded in size and time by the edge (api/edge.py)
    settings, worker = services.settings, services.worker
    try:
        done = await services.store.call(intake, settings, services.store, body)
    except sqlite3.Error as exc:
        log.error("webhook: could not store the alerts: %s", exc)
        raise HTTPException(
            503, f"could not store the alerts ({exc.__class__.__name__}); nothing was stored"
        ) from None
    for ident in done.created:
        worker.submit(ident)
    for record in done.resolved:
        services.notifier.alert_resolved(record)  # Slack: "resolved at" in the thread
    counts: dict[str, int] = {}
    for result in done.results:
        services.metrics.count_alert(result)
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no alerts"
    log.info(
        "webhook: %d alert(s) from %s: %s",
        len(done.results),
        redact(done.payload.receiver[:200]) or "?",
        summary,
    )
    if wait:  # the message then says where they ended, as each result does
        await _wait(services, done.results)
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


async def _wait(services: Services, results: list[dict[str, Any]]) -> None:
    """?wait=true: one deadline for the whole request, the time its investigations need
    when they run SRE_AGENT_MAX_CONCURRENT at a time, each within its own deadline."""
    settings = services.settings
    waiting = [
        r for r in results if r["investigation_id"] and r["status"] not in ("resolved", "skipped")
    ]
    rounds = -(-len(waiting) // settings.max_concurrent)
    deadline = time.monotonic() + settings.investigation_timeout * rounds
    for result in waiting:
        remaining = max(0.0, deadline - time.monotonic())
        record = await services.worker.wait(result["investigation_id"], remaining)
        if record is not None:
            result["status"] = record["status"]
            result["analysis"] = render_record(record)
