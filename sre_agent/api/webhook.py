"""``POST /webhook/alert``: Alertmanager's webhook receiver.

Answers 202 at once (an LLM run inside the request would be cancelled and
re-sent by Alertmanager); 4xx only for a request that is bad, since
Alertmanager never retries a 4xx.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from sre_agent.alerts import parse_payload
from sre_agent.analysis import render_record
from sre_agent.api.deps import ServicesDep
from sre_agent.app import Services
from sre_agent.errors import AlertPayloadError

log = logging.getLogger(__name__)
router = APIRouter()


def _check_token(services: Services, request: Request) -> None:
    token = services.settings.webhook_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401,
            "missing or wrong bearer token (SRE_AGENT_WEBHOOK_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
    return bytes(body)


@router.post("/webhook/alert", status_code=202)
async def receive_alerts(
    request: Request, services: ServicesDep, wait: bool = False
) -> JSONResponse:
    _check_token(services, request)
    body = await _read_body(request, services.settings.max_body_bytes)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also bad UTF-8, absurd nesting or numbers
        raise HTTPException(
            400, f"malformed JSON: {str(exc)[:200] or 'too deeply nested'}"
        ) from None
    try:
        payload = parse_payload(data)
    except AlertPayloadError as exc:
        raise HTTPException(422, str(exc)) from None

    settings, store, worker = services.settings, services.store, services.worker
    results: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for alert in payload.alerts:
        result: dict[str, Any] = {
            "alert_name": alert.name,
            "severity": alert.severity,
            "fingerprint": alert.fingerprint,
            "investigation_id": None,
        }
        if alert.status == "resolved":
            record = store.mark_resolved(alert)
            result.update(
                status="resolved",
                investigation_id=record["id"] if record else None,
                investigation_status=record["status"] if record else None,
            )
            if record is not None:
                services.notifier.alert_resolved(record)  # Slack: "resolved at" in the thread
        elif alert.severity not in settings.severities:
            result.update(
                status="skipped",
                reason=f"severity {alert.severity!r} is not in SRE_AGENT_SEVERITIES"
                f" ({','.join(settings.severities)})",
            )
        else:
            record, created = store.create_or_get(alert, payload.groupKey)
            if created:
                worker.submit(record["id"])
            result.update(
                status=record["status"], investigation_id=record["id"], duplicate=not created
            )
        services.metrics.count_alert(result)
        counts[result["status"]] = counts.get(result["status"], 0) + 1
        results.append(result)

    log.info(
        "webhook: %d alert(s) from %s: %s",
        len(results),
        payload.receiver or "?",
        ", ".join(f"{n} {s}" for s, n in counts.items()),
    )
    if wait:
        # One deadline for the whole request: the time its investigations need when
        # they run SRE_AGENT_MAX_CONCURRENT at a time, each within its own deadline.
        waiting = [
            r
            for r in results
            if r["investigation_id"] and r["status"] not in ("resolved", "skipped")
        ]
        rounds = -(-len(waiting) // settings.max_concurrent)
        deadline = time.monotonic() + settings.investigation_timeout * rounds
        for result in waiting:
            remaining = max(0.0, deadline - time.monotonic())
            record = await worker.wait(result["investigation_id"], remaining)
            if record is not None:
                result["status"] = record["status"]
                result["analysis"] = render_record(record)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no alerts"
    return JSONResponse(
        {
            "message": f"received {len(results)} alert(s): {summary}",
            "results": results,
            "service": "sre-agent",
            "timestamp": datetime.now(UTC).isoformat(),
        },
        status_code=200 if wait else 202,
    )
