"""What the model and Alertmanager write, parsed: durations, points in time, and an
alert rule's PromQL from its ``generatorURL``.

One parser for each, shared by the PromQL tools, the alert model and the lab's
scenarios, so a duration or a rule's expression means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

__all__ = ["expr_from_generator_url", "parse_duration", "parse_time"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(s: str | float | int) -> timedelta:
    """A Prometheus-style duration (``30s``, ``5m``, ``1h30m``, ``2d``); a bare number: seconds."""
    if isinstance(s, int | float):
        if s < 0:
            raise ValueError(f"negative duration: {s}")
        return timedelta(seconds=s)
    text = s.strip().lower()
    if _NUMBER.fullmatch(text):
        return timedelta(seconds=float(text))
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"not a duration: {s!r} (use e.g. 30s, 5m, 1h30m, 2d)")
    return timedelta(seconds=seconds)


def parse_time(value: str | None, default: datetime) -> datetime:
    """A point in time (UTC) from RFC3339, unix seconds or a relative form.

    Relative: ``now``, ``now-30m``, ``-2h``, or a bare duration (``30m``) meaning
    that long ago. None or an empty string gives ``default``.
    """
    if value is None or not str(value).strip():
        return default
    text = str(value).strip()
    now = datetime.now(UTC)
    lowered = text.lower()
    if lowered == "now":
        return now
    if lowered.startswith("now"):
        rest = lowered[3:].strip()
        if rest[:1] in ("-", "+"):
            delta = parse_duration(rest[1:].strip())
            return now - delta if rest[0] == "-" else now + delta
        raise ValueError(f"not a time: {value!r}")
    if lowered.startswith("-"):
        return now - parse_duration(lowered[1:])
    if _NUMBER.fullmatch(text):
        return datetime.fromtimestamp(float(text), UTC)
    if _DURATION_PART.match(lowered):
        try:
            return now - parse_duration(lowered)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"not a time: {value!r} (use RFC3339, unix seconds, now, now-30m or -2h)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def expr_from_generator_url(url: str) -> str | None:
    """The alert rule's PromQL, from the ``g0.expr`` parameter of Alertmanager's generatorURL.

    None when there is none: no URL, one that does not parse, no or a blank ``g0.expr``.
    """
    if not url:
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("g0.expr")
    except ValueError:  # e.g. a malformed IPv6 host: the URL names no query we can trust
        return None
    if not values or not values[0].strip():
        return None
    return values[0]
