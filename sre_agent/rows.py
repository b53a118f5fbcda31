"""The store's row codec: an ``investigations`` row to an :class:`Investigation` and back.

JSON columns are read with the models' own validators (``validate_json``) and written
with their serialisers, so what the store keeps is what the API serves. Rows from before
a column or a field existed (``sources`` NULL, ``llm_usage`` ``'{}'``, evidence items
without ``id`` or ``status``) validate to the models' defaults. Nothing is redacted
here but the alert (:func:`intake_row`), at intake, where it enters: the rest was
redacted where it entered.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError
from sre_agent_tools.redact import redact, redact_obj

from sre_agent.alerts import Alert, mask_label
from sre_agent.models import (
    AlertRecord,
    Analysis,
    Evidence,
    Investigation,
    Join,
    LlmUsage,
    SimilarRef,
    Sources,
    ToolCall,
    WalkedObject,
)

log = logging.getLogger(__name__)

#: Each JSON column and how it is read and written.
COLUMNS: dict[str, TypeAdapter[Any]] = {
    "alert": TypeAdapter(AlertRecord),
    "evidence": TypeAdapter(list[Evidence]),
    "tool_calls": TypeAdapter(list[ToolCall]),
    "llm_usage": TypeAdapter(LlmUsage),
    "analysis": TypeAdapter(Analysis),
    "sources": TypeAdapter(Sources),
    "joined": TypeAdapter(list[Join]),
    "objects": TypeAdapter(list[WalkedObject]),
    "similar": TypeAdapter(list[SimilarRef]),
}
#: Columns a row has that the record does not serve.
_NOT_SERVED = ("dedup_key", "report")


def text(value: str) -> str:
    """Text SQLite can store: a lone surrogate becomes '?' instead of failing the write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def dump(column: str, value: Any) -> str:
    """A JSON column as stored: UTF-8 as it is, and no lone surrogate to fail a read later."""
    adapter = COLUMNS[column]
    try:
        return adapter.dump_json(value).decode("utf-8")
    except PydanticSerializationError:  # a lone surrogate: JSON escapes it, text() mends it
        return text(json.dumps(adapter.dump_python(value, mode="json"), ensure_ascii=False))


def decode(row: Any) -> Investigation:
    """One row as the record: JSON columns validated by their models."""
    data: dict[str, Any] = {k: row[k] for k in row.keys() if k not in _NOT_SERVED}
    for column, adapter in COLUMNS.items():
        raw = data.get(column)
        if raw is None:
            data.pop(column, None)
            continue
        try:
            data[column] = adapter.validate_json(raw)
        except ValidationError as exc:  # a row no model reads: served without that part
            kept = _items(column, raw)
            log.warning(
                "investigation %s: stored %s unreadable%s: %s",
                data.get("id"),
                column,
                f" ({len(kept)} item(s) kept)" if kept else "",
                exc,
            )
            if kept:
                data[column] = kept
            else:
                data.pop(column, None)
    data.setdefault("alert", AlertRecord())
    data["llm_retry"] = bool(data.get("llm_retry"))
    return Investigation.model_validate(data)


_ITEMS: dict[str, TypeAdapter[Any]] = {
    "evidence": TypeAdapter(Evidence),
    "tool_calls": TypeAdapter(ToolCall),
    "joined": TypeAdapter(Join),
    "objects": TypeAdapter(WalkedObject),
}


def _items(column: str, raw: str) -> list[Any]:
    """Of a list column no model reads whole, the items that read (one bad item of an
    old row must not hide the rest of its evidence)."""
    if column not in _ITEMS:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    kept = []
    for item in items if isinstance(items, list) else []:
        try:
            kept.append(_ITEMS[column].validate_python(item))
        except ValidationError:
            continue
    return kept


def intake_row(alert: Alert, group_key: str) -> dict[str, Any]:
    """The columns of a new investigation, masked where they enter."""
    record = redact_obj(
        {
            "annotations": alert.annotations,
            "startsAt": alert.startsAt.isoformat(),
            "endsAt": alert.ended_at.isoformat() if alert.ended_at else None,
            "generatorURL": alert.generatorURL,
            "expr": alert.expr,
            "status": alert.status,
        }
    )
    # Labels are identifiers the tools query with: masked as label values, so a label
    # like instance="auth-service:8080" still matches its series.
    labels = {k: mask_label(k, v) or "" for k, v in alert.labels.items()}
    fingerprint = mask_label("fingerprint", alert.fingerprint) or ""
    stored = AlertRecord(**record, labels=labels, fingerprint=fingerprint)
    return {
        "dedup_key": alert.dedup_key(),  # a hash of the raw values: never served
        "fingerprint": stored.fingerprint,
        "alertname": labels["alertname"],
        "severity": mask_label("severity", alert.severity),
        "namespace": labels.get("namespace"),
        "group_key": redact(group_key),
        "alert": dump("alert", stored),
    }
