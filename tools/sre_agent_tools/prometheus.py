"""PromQL tools: instant and range queries that answer in a few compact lines.

The model never sees raw samples: an instant query gives one line per series,
a range query a per-series summary (min/max/avg, first/last, trend and a
handful of points). Backend trouble comes back as an error result the model
can read and act on (fix the query, or move on), never as an exception.

``deps.prometheus`` is the synchronous ``prometheus_api_client`` client, so
every call runs in a worker thread. This module holds the client and the tools;
parsing what the model writes is :mod:`sre_agent_tools.prom_parse`, the series
summaries :mod:`sre_agent_tools.prom_series`.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import urllib3
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from sre_agent_tools import promql_guard as guard
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.prom_parse import expr_from_generator_url, parse_duration, parse_time
from sre_agent_tools.prom_series import SHOWN_POINTS, fit, format_value, series_name, summarise
from sre_agent_tools.result import ToolResult, cap

__all__ = [
    "MAX_INSTANT_SERIES",
    "MAX_RANGE_SERIES",
    "SHOWN_POINTS",
    "expr_from_generator_url",
    "format_value",
    "make_prometheus",
    "parse_duration",
    "parse_time",
    "query_instant",
    "query_range",
]

logger = logging.getLogger(__name__)

#: Series shown by an instant query before the rest are only counted.
MAX_INSTANT_SERIES = 30
#: Series summarised by a range query before the rest are only counted.
MAX_RANGE_SERIES = 20
#: Points a default range query asks Prometheus for.
TARGET_POINTS = 120
DEFAULT_RANGE = timedelta(hours=1)
#: Series an instant query may return (Prometheus 3 honours ``limit``; older ones ignore it).
INSTANT_LIMIT = 1000

_NOT_CONFIGURED = ToolResult("error", "Prometheus is not configured: no PromQL tool can answer.")

# ---------------------------------------------------------------- client


def make_prometheus(url: str, timeout: float) -> PrometheusConnect:
    """A client that fails fast: one attempt per request, a request timeout.

    The library's default retries a refused connection three times with
    backoff (about 6 s), too slow for an agent that should move on; and each
    retry logs a urllib3 warning. Our one deliberate policy: no connect or read
    retry (a failed lookup is one error line, ours), and one retry of a 502/504
    from a proxy in front of Prometheus.
    """
    retry = Retry(
        total=1,
        connect=0,
        read=0,
        other=0,
        backoff_factor=0.1,
        # Not 503: that is how Prometheus says a query timed out; running it again doubles it.
        status_forcelist=(502, 504),
        raise_on_status=False,
        allowed_methods=("GET", "POST"),
    )
    return PrometheusConnect(url=url.rstrip("/"), timeout=timeout, retry=retry)  # type: ignore[arg-type]


# ---------------------------------------------------------------- errors


def _error_body(exc: PrometheusApiClientException) -> tuple[int | None, dict[str, Any] | str]:
    """Status code and JSON body from the library's ``HTTP Status Code N (b'...')`` message."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)\s*$", str(exc), re.DOTALL)
    if not match:
        return None, str(exc)
    code = int(match.group(1))
    raw: Any = match.group(2)
    try:
        raw = ast.literal_eval(raw)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        return code, json.loads(raw)
    except (ValueError, SyntaxError):
        return code, str(raw)


def _backend_error(deps: ToolDeps, exc: Exception) -> ToolResult:
    url = getattr(deps.prometheus, "url", "?")
    logger.debug("prometheus call failed: %r", exc)
    if isinstance(exc, PrometheusApiClientException):
        code, body = _error_body(exc)
        if isinstance(body, dict):
            kind, message = body.get("errorType", ""), body.get("error", "")
            if kind == "bad_data":
                return ToolResult(
                    "error",
                    f"PromQL error: {message}. Check the syntax, function names and "
                    "brackets, then retry with a corrected query.",
                )
            if kind == "timeout":
                return ToolResult(
                    "error",
                    f"Prometheus query timed out ({message}). Narrow the query: fewer series, "
                    "a shorter range or a larger step.",
                )
            return ToolResult("error", f"Prometheus answered HTTP {code}: {kind}: {message}")
        return ToolResult("error", f"Prometheus answered HTTP {code}: {str(body)[:300]}")
    if isinstance(exc, requests.RequestException):
        return ToolResult(
            "error", f"Prometheus unreachable at {url}: {_unreachable_reason(exc, deps.timeout)}."
        )
    return ToolResult("error", f"Unexpected answer from Prometheus at {url}: {exc!r}"[:500])


def _unreachable_reason(exc: requests.RequestException, timeout: float) -> str:
    """A short why: requests wraps urllib3's error (often a timeout) in a ConnectionError."""
    inner: object = exc.args[0] if exc.args else exc
    inner = getattr(inner, "reason", inner)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first.
    timed_out = isinstance(inner, urllib3.exceptions.TimeoutError) and not isinstance(
        inner, urllib3.exceptions.NewConnectionError
    )
    if isinstance(exc, requests.ConnectTimeout | requests.ReadTimeout) or timed_out:
        return f"no answer within {timeout:g}s"
    text = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", str(inner)).removeprefix(
        "Failed to establish a new connection: "
    )
    return text[:200] or type(exc).__name__


def _metric_hint(query: str) -> str:
    """Suggest a name search for the first thing in ``query`` that looks like a metric."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", query)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = match.group(0)
        after = bare[match.end() :].lstrip()
        keywords = {"and", "or", "unless", "offset", "bool", "inf", "nan"}
        if after.startswith("(") or word.lower() in keywords:
            continue
        stem = "_".join(word.split("_")[:2])
        return (
            f'Check the metric name, e.g. count by (__name__)({{__name__=~"{stem}.*"}}), '
            "and the label values."
        )
    return "Check the metric names and label values."


def _timeout_param(deps: ToolDeps) -> str:
    """Prometheus' own query timeout, in seconds as a number: its duration syntax
    (``1.5s``) takes no fractions, so ``1.5s`` would fail every query."""
    return f"{deps.timeout:g}"


async def _call(deps: ToolDeps, fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, timeout=deps.timeout, **kwargs)


# ---------------------------------------------------------------- tools


async def query_instant(deps: ToolDeps, query: str, time: str | None = None) -> ToolResult:
    """Run an instant PromQL query: one line per series, ``{labels} => value``.

    ``time`` is RFC3339, unix seconds, or relative (``now-30m``, ``-2h``); default now.
    """
    if deps.prometheus is None:
        return _NOT_CONFIGURED
    now = datetime.now(UTC)
    try:
        at = parse_time(time, now) if time else now
    except (ValueError, OverflowError) as exc:
        return ToolResult("error", str(exc))
    plan = await _admit(deps, query, now=now, end=at)
    if isinstance(plan, ToolResult):
        return plan
    params: dict[str, Any] = {"timeout": _timeout_param(deps), "limit": INSTANT_LIMIT}
    if time:
        params["time"] = f"{at.timestamp():.3f}"
    try:
        result = await _call(deps, deps.prometheus.custom_query, query, params=params)
    except Exception as exc:  # backend trouble becomes a result the model can read
        return _backend_error(deps, exc)
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return ToolResult("ok", cap(f"scalar => {format_value(result[1])}", deps.output_limit))
    if not result:
        return ToolResult("no_data", f"No series matched {query}. {_metric_hint(query)}")
    lines = [
        f"{series_name(item.get('metric', {}))} => {format_value(item['value'][1])}"
        for item in result[:MAX_INSTANT_SERIES]
    ]
    return ToolResult("ok", fit("", lines, len(result), deps.output_limit))


class _Admitted:
    """A query that passed the guard, with its selectors' series counts."""

    def __init__(self, plan: guard.Plan, counts: dict[str, int], at_time: str) -> None:
        self.plan, self.counts, self.at_time = plan, counts, at_time

    def bound(self) -> int:
        return guard.result_bound(self.plan.expr, self.counts, self.at_time)


async def _admit(
    deps: ToolDeps, query: str, *, now: datetime, end: datetime, span: timedelta = timedelta(0)
) -> _Admitted | ToolResult:
    """Judge the query, then count its selectors' series: nothing expensive has run yet.

    A refusal or a syntax error is a result for the model; so is trouble counting
    (the query itself would meet the same trouble).
    """
    limits = guard.Limits(max_range=deps.promql_max_range, max_series=deps.promql_max_series)
    try:
        # Bounded work (a few ms at worst), but parsing is CPU: keep it off the event loop.
        plan = await asyncio.to_thread(guard.check, query, limits, now=now, end=end, span=span)
    except guard.Refused as exc:
        logger.info("promql refused: %s", exc)
        return ToolResult("error", f"Refused: {exc}")
    except ValueError as exc:
        return ToolResult(
            "error",
            f"PromQL error: parse error: {exc}. Check the syntax, function names and brackets, "
            "then retry with a corrected query.",
        )
    at_time = f"{end.timestamp():.3f}"
    if not plan.selectors:
        return _Admitted(plan, {}, at_time)
    try:
        counted = await _call(
            deps,
            deps.prometheus.custom_query,
            guard.count_query(plan.selectors),
            params={"time": at_time, "timeout": _timeout_param(deps)},
        )
    except Exception as exc:
        return _backend_error(deps, exc)
    counts: dict[str, int] = {}
    for item in counted if isinstance(counted, list) else []:
        if not isinstance(item, dict):
            continue
        index = str(item.get("metric", {}).get("sre_agent_selector", ""))
        if index.isdigit() and int(index) < len(plan.selectors):
            counts[plan.selectors[int(index)].text] = int(float(item["value"][1]))
    for selector in plan.selectors:
        n = counts.get(selector.text, 0)
        if n > deps.promql_max_series:
            return ToolResult(
                "error",
                f"Refused: {selector.text} matches {n} series; one selector may match at most "
                f"{deps.promql_max_series}. Filter it by labels (namespace, pod, job, ...).",
            )
    return _Admitted(plan, counts, at_time)


async def _too_wide(deps: ToolDeps, query: str, admitted: _Admitted) -> ToolResult | None:
    """A refusal when the range query would return more series than we fetch.

    The bound from the selectors' counts is exact enough unless the expression
    filters by value (an alert's ``... > 0``): then what survives the filter is
    counted at the end time, one instant of a query the guard has already judged.
    """
    limit = deps.promql_max_range_series
    bound = admitted.bound()
    if bound > limit and guard.filters(admitted.plan.expr):
        try:
            counted = await _call(
                deps,
                deps.prometheus.custom_query,
                f"count({query})",
                params={"time": admitted.at_time, "timeout": _timeout_param(deps)},
            )
            bound = int(float(counted[0]["value"][1])) if counted else 0
        except Exception as exc:
            return _backend_error(deps, exc)
    if bound <= limit:
        return None
    return ToolResult(
        "error",
        f"Refused: {query} could return up to {bound} series; range queries are limited to "
        f"{limit}. Filter by labels, or aggregate it (sum(...), topk(10, ...)).",
    )


async def query_range(
    deps: ToolDeps,
    query: str,
    start: str | None = None,
    end: str | None = None,
    step: str | None = None,
) -> ToolResult:
    """Run a PromQL range query and summarise each series (min/max/avg, trend, a few points).

    Times are RFC3339, unix seconds, or relative (``now-30m``, ``-2h``, ``30m`` ago);
    default the last hour. ``step`` (``30s``, ``5m``) defaults to about 120 points.
    """
    if deps.prometheus is None:
        return _NOT_CONFIGURED
    try:
        end_at = parse_time(end, datetime.now(UTC))
        start_at = parse_time(start, end_at - DEFAULT_RANGE)
        if start_at >= end_at:
            return ToolResult("error", f"start ({start_at:%Y-%m-%dT%H:%M:%SZ}) is not before end.")
        span = (end_at - start_at).total_seconds()
        step_s = max(1.0, math.ceil(span / TARGET_POINTS))
        if step:
            # Prometheus refuses more than 11,000 points per series; stay well below.
            step_s = max(parse_duration(step).total_seconds(), span / 1000, 0.001)
    except (ValueError, OverflowError) as exc:
        return ToolResult("error", f"bad time range: {exc}")
    admitted = await _admit(deps, query, now=datetime.now(UTC), end=end_at, span=end_at - start_at)
    if isinstance(admitted, ToolResult):
        return admitted
    too_wide = await _too_wide(deps, query, admitted)
    if too_wide:
        return too_wide
    try:
        result = await _call(
            deps,
            deps.prometheus.custom_query_range,
            query,
            start_time=start_at,
            end_time=end_at,
            step=f"{step_s:g}",
            params={"timeout": _timeout_param(deps), "limit": deps.promql_max_range_series + 1},
        )
    except Exception as exc:  # backend trouble becomes a result the model can read
        return _backend_error(deps, exc)
    end_fmt = "%H:%M" if end_at.date() == start_at.date() else "%Y-%m-%d %H:%M"
    window = f"{start_at:%Y-%m-%d %H:%M}–{end_at.strftime(end_fmt)} UTC, step {step_s:g}s"
    if not result:
        return ToolResult(
            "no_data", f"No series matched {query} in {window}. {_metric_hint(query)}"
        )
    long_span = span >= 86400
    blocks = [summarise(item, long_span) for item in result[:MAX_RANGE_SERIES]]
    header = f"{len(result)} series, {window}"
    return ToolResult("ok", fit(header, blocks, len(result), deps.output_limit))


async def range_points(
    deps: ToolDeps, query: str, start: datetime, end: datetime, step_s: float
) -> list[dict[str, Any]] | str:
    """The raw series of one of our own range queries (not the model's: no guard), or
    why there are none: a sentence, redacted like every tool's error."""
    if deps.prometheus is None:
        return "no Prometheus configured"
    try:
        result = await _call(
            deps,
            deps.prometheus.custom_query_range,
            query,
            start_time=start,
            end_time=end,
            step=f"{step_s:g}",
            params={"timeout": _timeout_param(deps)},
        )
    except Exception as exc:  # backend trouble: said, never raised
        return _backend_error(deps, exc).text
    return list(result or [])
