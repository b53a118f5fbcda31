"""The Alertmanager webhook payload (version 4), validated with pydantic.

Unknown keys are accepted: newer Alertmanagers add fields without bumping the
version (``notification_reason``, ``routeLabels``). Everything else is checked
here, before anything is stored: text that cannot be encoded (lone UTF-16
surrogates) or that no backend accepts (NUL), URLs that do not parse, times
out of range. What passes can be stored, queried with and rendered without
failing later for the same reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sre_agent_tools.prom_parse import expr_from_generator_url
from sre_agent_tools.redact import redact_label_value

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

    @field_validator("generatorURL")
    @classmethod
    def _parseable_url(cls, value: str) -> str:
        return check_url(value)

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
        return expr_from_generator_url(self.generatorURL)

    def dedup_key(self) -> str:
        """The same firing of the same alert: fingerprint + startsAt, hashed (it is stored
        and may hold whatever the sender put in a fingerprint)."""
        return dedup_hash(f"{self.fingerprint}@{self.startsAt.astimezone(UTC).isoformat()}")


def mask_label(name: str, value: str | None) -> str | None:
    """A label value as it is stored and served: the alert's labels, and the columns
    that copy them (alertname, namespace), pass this one function."""
    return None if value is None else redact_label_value(name, value)


def dedup_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def check_url(value: str) -> str:
    """A URL our code will parse later (evidence, links) must parse now."""
    try:
        urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"is not a URL that can be parsed ({exc})") from None
    return value


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

    @field_validator("externalURL")
    @classmethod
    def _parseable_url(cls, value: str) -> str:
        return check_url(value)


def _where(loc: Sequence[int | str]) -> str:
    """A field path for a message: keys come from the sender, so each is shown short."""
    parts = []
    for part in loc:
        text = str(part)
        parts.append(text if len(text) <= 40 else f"{text[:40]}…")
    return ".".join(parts) or "body"


def describe_errors(
    errors: Sequence[Mapping[str, Any]],
    where: Callable[[Sequence[int | str]], str] = _where,
    limit: int = 5,
    width: int | None = 200,
) -> str:
    """One readable line per problem: where, and what is wrong. The one formatting of
    validation errors: the webhook body's, a request's (the API), the settings'."""
    parts = []
    for err in errors[:limit]:
        place, message = where(err["loc"]), str(err["msg"]).removeprefix("Value error, ")[:width]
        parts.append(f"{place}: {message}" if place else message)
    if len(errors) > limit:
        parts.append(f"(and {len(errors) - limit} more)")
    return "; ".join(parts)


def describe_validation_error(exc: ValidationError) -> str:
    """:func:`describe_errors` of a pydantic error."""
    return describe_errors(exc.errors(include_url=False, include_input=False))


def _bad_text(text: str) -> str | None:
    """Why no store, backend or JSON encoder would take this text, if one would not."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def check_text(data: Any) -> None:
    """Every key and string of a decoded JSON body can be stored and sent on.

    ``json.loads`` accepts ``"\\ud800"`` (a lone UTF-16 surrogate) and ``"\\u0000"``;
    either would fail much later (encoding for SQLite or a response, a Kubernetes
    or Prometheus request), so the whole body is walked once, iteratively (no
    recursion limit), and the first problem is named by its path.
    """
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = _bad_text(value)
            if problem:
                raise AlertPayloadError(f"invalid Alertmanager payload: {_where(path)}: {problem}")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_text(key)
                if problem:
                    raise AlertPayloadError(
                        f"invalid Alertmanager payload: {_where(path)}: a key {problem}"
                    )
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, n), item) for n, item in enumerate(value))


def parse_payload(data: Any) -> WebhookPayload:
    """Validate a decoded JSON body as an Alertmanager v4 payload."""
    if not isinstance(data, dict):
        raise AlertPayloadError("body must be a JSON object (an Alertmanager v4 payload)")
    check_text(data)
    if "version" in data and data["version"] != "4":
        version = json.dumps(data["version"])
        raise AlertPayloadError(
            f'unsupported payload version {version[:40]}: expected "4" (Alertmanager webhook)'
        )
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise AlertPayloadError(
            f"invalid Alertmanager payload: {describe_validation_error(exc)}"
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(text: str | bytes) -> Any:
    """Strict JSON (RFC 8259: no NaN or Infinity), as the webhook and the CLI read it."""
    return json.loads(text, parse_constant=_no_constant)


def load_alert_file(text: str) -> WebhookPayload:
    """An Alertmanager body, or one alert on its own (wrapped into a one-alert group)."""
    try:
        data = decode_json(text)
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
    blob = json.dumps(labels, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
