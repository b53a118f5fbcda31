"""The Alertmanager webhook payload (version 4), validated with pydantic.

Unknown keys are accepted: newer Alertmanagers add fields without bumping the
version (``notification_reason``, ``routeLabels``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sre_agent.errors import AlertPayloadError

#: Alertmanager's "not ended" timestamp.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime = ZERO_TIME
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must be an RFC 3339 time with a timezone, e.g. 2026-11-27T03:20:00Z")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range") from None

    @field_validator("labels")
    @classmethod
    def _needs_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels must include a non-empty 'alertname'")
        return labels

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "none").lower()

    @property
    def namespace(self) -> str | None:
        return self.labels.get("namespace")

    @property
    def ended_at(self) -> datetime | None:
        return None if self.endsAt <= ZERO_TIME else self.endsAt

    @property
    def expr(self) -> str | None:
        """The alert rule's PromQL, recovered from generatorURL's ``g0.expr``."""
        if not self.generatorURL:
            return None
        values = parse_qs(urlparse(self.generatorURL).query).get("g0.expr")
        return values[0] if values else None

    def dedup_key(self) -> str:
        """The same firing of the same alert: fingerprint + startsAt."""
        return f"{self.fingerprint}@{self.startsAt.astimezone(UTC).isoformat()}"


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert]


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem: where, and what is wrong."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"(and {more} more)")
    return "; ".join(parts)


def parse_payload(data: Any) -> WebhookPayload:
    """Validate a decoded JSON body as an Alertmanager v4 payload."""
    if not isinstance(data, dict):
        raise AlertPayloadError("body must be a JSON object (an Alertmanager v4 payload)")
    if "version" in data and data["version"] != "4":
        raise AlertPayloadError(
            f'unsupported payload version {data["version"]!r}: expected "4" (Alertmanager webhook)'
        )
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise AlertPayloadError(
            f"invalid Alertmanager payload: {describe_validation_error(exc)}"
        ) from None


def load_alert_file(text: str) -> WebhookPayload:
    """An Alertmanager body, or one alert on its own (wrapped into a one-alert group)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AlertPayloadError(
            f"not valid JSON: {str(exc)[:200] or 'too deeply nested'}"
        ) from None
    if isinstance(data, dict) and "alerts" not in data and "labels" in data:
        data = {
            "version": "4",
            "status": data.get("status", "firing"),
            "alerts": [{"status": "firing", **data}],
        }
        data["alerts"][0].setdefault("fingerprint", _fingerprint(data["alerts"][0]["labels"]))
        data["alerts"][0].setdefault("startsAt", datetime.now(UTC).isoformat())
    return parse_payload(data)


def _fingerprint(labels: Any) -> str:
    import hashlib

    blob = json.dumps(labels, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
