"""Series as the model reads them: numbers in a few characters, one line per instant
series, a range series summarised (min/max/avg, first/last, trend, a few points),
and as many whole series as fit the output limit, the rest counted.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sre_agent_tools.result import cap

__all__ = ["SHOWN_POINTS", "fit", "format_value", "series_name", "summarise"]

#: Points shown per series in a range summary.
SHOWN_POINTS = 6


def format_value(value: float | str) -> str:
    """A number in a few characters: integers as such, others to 3 significant digits."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


def series_name(metric: dict[str, str]) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    name = metric.get("__name__", "")
    return f"{name}{{{labels}}}" if labels or not name else name


def _more(hidden: int) -> str:
    return (
        f"… {hidden} more series (aggregate with sum by (...), or pick with topk/bottomk, "
        "or add label filters)"
    )


def fit(header: str, blocks: list[str], total: int, limit: int) -> str:
    """As many whole series as fit in ``limit`` characters, then how many were left out.

    Counting the rest beats cutting mid-line: the model learns the query was
    too wide and by how much.
    """
    reserve = len(_more(total)) + 2
    lines = [header] if header else []
    used = len(header)
    for block in blocks:
        if used + len(block) + 1 > limit - reserve:
            if len(lines) == (1 if header else 0):  # even one series is too long: cut it
                lines.append(cap(block, max(0, limit - reserve - used - 1)))
            break
        lines.append(block)
        used += len(block) + 1
    shown = len(lines) - (1 if header else 0)
    if shown < total:
        lines.append(_more(total - shown))
    return cap("\n".join(lines), limit)


def _trend(values: list[float]) -> str:
    """rising/falling when the move from first to last is most of the spread; a wobble
    within 2% of the magnitude is flat; anything else (up and back) is spiky."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return "flat"
    low, high = min(finite), max(finite)
    spread = high - low
    scale = max(abs(high), abs(low))
    if spread == 0 or spread <= 0.02 * scale:
        return "flat"
    delta = finite[-1] - finite[0]
    if abs(delta) >= 0.5 * spread:
        return "rising" if delta > 0 else "falling"
    return "spiky"


def _point_time(ts: float, long_span: bool) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%m-%d %H:%M" if long_span else "%H:%M")


def summarise(item: dict[str, Any], long_span: bool) -> str:
    samples = [(float(ts), float(v)) for ts, v in item.get("values", [])]
    values = [v for _, v in samples]
    finite = [v for v in values if math.isfinite(v)] or values
    head = series_name(item.get("metric", {}))
    if not samples:
        return f"{head}: no samples"
    stats = (
        f"min={format_value(min(finite))} max={format_value(max(finite))} "
        f"avg={format_value(sum(finite) / len(finite))} first={format_value(values[0])} "
        f"last={format_value(values[-1])} trend={_trend(values)} samples={len(samples)}"
    )
    n = len(samples)
    picks = sorted({round(i * (n - 1) / (SHOWN_POINTS - 1)) for i in range(SHOWN_POINTS)})
    points = " ".join(
        f"{_point_time(samples[i][0], long_span)}={format_value(samples[i][1])}" for i in picks
    )
    return f"{head}\n  {stats}\n  points: {points}"
