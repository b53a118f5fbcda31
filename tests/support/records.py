"""Investigations built for the presenters' tests: the record as the store returns it."""

from __future__ import annotations

from typing import Any

from sre_agent.models import Investigation
from sre_agent.report import render


def investigation(
    alert: dict[str, Any] | None = None,
    analysis: Any = None,
    *,
    status: str = "completed",
    reason: str | None = None,
    raw_text: str | None = None,
    evidence: Any = (),
    sources: Any = None,
    usage: Any = None,
    duration_s: float | None = None,
    **fields: Any,
) -> Investigation:
    alert = dict(alert or {})
    resolved_at = alert.pop("resolved_at", None)
    labels = alert.get("labels") or {}
    return Investigation.model_validate(
        {
            "id": "i1",
            "fingerprint": "f1",
            "alertname": labels.get("alertname", "alert"),
            "severity": labels.get("severity", "none"),
            "namespace": labels.get("namespace"),
            "created_at": "2026-11-26T23:48:00+00:00",
            "alert": alert,
            "status": status,
            "status_reason": reason,
            "raw_text": raw_text,
            "evidence": list(evidence or []),
            "sources": sources,
            "llm_usage": usage or {},
            "duration_s": duration_s,
            "analysis": analysis,
            "resolved_at": resolved_at,
            **fields,
        }
    )


def render_report(alert: dict[str, Any] | None, analysis: Any, **kwargs: Any) -> str:
    """The markdown report of an investigation with these parts."""
    return render(investigation(alert, analysis, **kwargs))


def served(record: Investigation) -> dict[str, Any]:
    """A record as the API serves it, with the markdown report ``?format=markdown`` gives
    beside it (``report``), for tests that read both."""
    return {**record.model_dump(mode="json"), "report": render(record)}
