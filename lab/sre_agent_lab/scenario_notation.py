"""The notation inside a scenario file: promtool's expanding series notation (``1+2x3``)
and times relative to the anchor ``now`` (``-15m``, ``-2h``).

Durations are read by :func:`sre_agent_tools.prom_parse.parse_duration`, the
parser the PromQL tools use, so ``30s`` or ``1h30m`` mean the same in a scenario
as in a query.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sre_agent_tools.prom_parse import parse_duration

__all__ = ["RELATIVE", "ago", "expand_series", "is_relative", "resolve_times", "rfc3339"]

#: A time relative to ``now``: a minus sign and whole units (``-15m``, ``-1h30m``).
RELATIVE = re.compile(r"^-(?:\d+[smhd])+$")
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEGMENT = re.compile(
    rf"^(?P<start>[-+]?{_NUMBER}|_)(?:(?P<op>[-+])(?P<delta>{_NUMBER}))?(?:x(?P<times>\d+))?$"
)


def expand_series(notation: str) -> list[float | None]:
    """Expand promtool's "expanding notation" into one value (or None for a gap) per step.

    ``1+2x3`` -> 1 3 5 7; ``5x2`` -> 5 5 5; ``10-1x3`` -> 10 9 8 7; ``_`` a gap,
    ``_x3`` three gaps; plain numbers; segments separated by spaces.
    """
    values: list[float | None] = []
    for segment in str(notation).split():
        match = _SEGMENT.match(segment)
        if not match:
            raise ValueError(f"bad series notation {segment!r} (use e.g. 1+2x3, 5x10, _x3, 7)")
        start, op, delta, times = match.group("start", "op", "delta", "times")
        if start == "_":
            if op:
                raise ValueError(f"bad series notation {segment!r}: a gap has no increment")
            values.extend([None] * (int(times) if times else 1))
            continue
        if op and times is None:
            raise ValueError(f"bad series notation {segment!r}: an increment needs xN")
        base = float(start)
        step = float(delta) * (-1 if op == "-" else 1) if op else 0.0
        count = int(times) + 1 if times is not None else 1
        values.extend(float(f"{base + i * step:.12g}") for i in range(count))
    if not values:
        raise ValueError("empty series notation")
    return values


def is_relative(text: str) -> bool:
    return bool(RELATIVE.match(text))


def ago(text: str, now: datetime) -> datetime:
    """``-15m`` -> the moment that long before ``now``."""
    return now - parse_duration(text[1:])


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_times(value: Any, now: datetime) -> Any:
    """Every string like ``-15m`` becomes the RFC 3339 time that long before ``now``."""
    if isinstance(value, dict):
        return {k: resolve_times(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_times(v, now) for v in value]
    if isinstance(value, str) and is_relative(value):
        return rfc3339(ago(value, now))
    return value
