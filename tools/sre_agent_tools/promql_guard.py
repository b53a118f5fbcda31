"""What a PromQL query would cost, worked out before Prometheus sees it.

A model (or a prompt injection it obeys) can ask for ``{__name__=~".+"}`` or
``count_over_time(x[3650d])``: each is one short string and a large amount of
work for Prometheus. The query is parsed (``promql-parser``, the Rust parser of
GreptimeDB) and refused when

- a vector selector could match every series (no positive matcher that
  narrows it: ``{__name__=~".+"}``, ``{job=~".*"}``, ``{pod!=""}``);
- it reads further back than ``max_range``: a range query's own span, plus
  every range, subquery range and offset on the way down to a selector, plus
  how long ago it is evaluated (``@`` and the query time included);
- a subquery asks for too many steps, or the query is too long, too deeply
  nested or names too many selectors (the parser itself is recursive).

What passes is then counted by selector (:func:`count_query`, one cheap
instant query), never by running the expression itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import promql_parser as pp
import re2

__all__ = [
    "Limits",
    "Plan",
    "Refused",
    "Selector",
    "check",
    "count_query",
    "result_bound",
]

#: Longer queries are refused unparsed: the parser recurses, and a few thousand
#: nested brackets or chained operators overflow its stack (a crash, not an error).
MAX_QUERY_CHARS = 4000
#: Brackets deeper than this are refused before parsing, expression trees after.
MAX_DEPTH = 64
#: Binary operators (and commas) one query may chain before it is refused unparsed.
MAX_OPERATORS = 64
_OPERATOR_CHARS = frozenset("+-*/%^<>=!,")
_SET_OPERATORS = re.compile(r"\b(?:and|or|unless|atan2)\b")
#: Distinct selectors one query may name (each is counted before the query runs).
MAX_SELECTORS = 20
#: Label matchers one selector may have (each regex is judged against the probes).
MAX_MATCHERS = 32
#: Evaluation steps one subquery may take.
MAX_SUBQUERY_STEPS = 11_000
#: A subquery without a step uses the rule evaluation interval: assume a short one
#: (kube-prometheus-stack's is 30s; Prometheus' default 1m).
DEFAULT_SUBQUERY_STEP = timedelta(seconds=15)

#: Names of unrelated metric families: a regex that fully matches most of them is
#: "every metric", whatever its spelling (.+, .*., [^x]*|x.*, (.)+ ...).
_PROBES = (
    "a",
    "up",
    "zz9",
    "x_y",
    "go_goroutines",
    "node_cpu_seconds_total",
    "kube_pod_info",
    "http_requests_total",
    "job:rule:sum",
    "process_open_fds",
    "Q",
    "10.0.0.1:9100",
)
_NARROWING_SHARE = 0.5
#: Prometheus' own engine is Go's RE2: same syntax, linear time (no ReDoS in the guard).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.dot_nl = True  # as Prometheus 3 matches; wider is the safe side


class Refused(Exception):
    """The query is not sent; the message tells the model what to ask instead."""


@dataclass(frozen=True)
class Limits:
    max_range: timedelta = timedelta(days=7)
    #: Series one selector may match (counted at the evaluation time).
    max_series: int = 10_000


@dataclass(frozen=True)
class Selector:
    """One vector selector as it is counted: matchers, offset and ``@`` kept."""

    text: str


@dataclass
class Plan:
    expr: pp.Expr
    selectors: list[Selector] = field(default_factory=list)
    #: How far back from now the oldest sample read lies.
    lookback: timedelta = timedelta(0)


def _seconds(delta: timedelta | None) -> float:
    return abs(delta.total_seconds()) if delta is not None else 0.0


def escape_string(value: str) -> str:
    """``value`` for the inside of a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _quote(value: str) -> str:
    return f'"{escape_string(value)}"'


_OPS = ((pp.MatchOp.Equal, "="), (pp.MatchOp.NotEqual, "!="), (pp.MatchOp.Re, "=~"))


def _op(op: pp.MatchOp) -> str:
    return next((text for known, text in _OPS if op == known), "!~")


def _narrows(matcher: pp.Matcher) -> bool:
    """A positive matcher that leaves out most series (and never matches an empty label)."""
    if matcher.op == pp.MatchOp.Equal:
        return matcher.value != ""
    if matcher.op != pp.MatchOp.Re:
        return False  # != and !~ exclude; what is left is (nearly) everything
    try:
        pattern = re2.compile(matcher.value, _RE2_OPTIONS)
    except re2.error:
        return False  # not a regex we can judge: treat as broad
    if pattern.fullmatch(""):
        return False
    matched = sum(1 for probe in _PROBES if pattern.fullmatch(probe))
    return matched < _NARROWING_SHARE * len(_PROBES)


def _groups(vs: pp.VectorSelector) -> list[list[pp.Matcher]]:
    base = list(vs.matchers.matchers)
    if vs.name:
        base.append(pp.Matcher(pp.MatchOp.Equal, "__name__", vs.name))
    ors = [list(group) for group in vs.matchers.or_matchers]
    return [base + group for group in ors] if ors else [base]


def _check_selector(vs: pp.VectorSelector, at_time: str) -> list[Selector]:
    """The selector (one per ``or`` group) as counted, or Refused when it selects everything."""
    out = []
    for group in _groups(vs):
        if len(group) > MAX_MATCHERS:
            raise Refused(
                f"a selector has {len(group)} label matchers; the limit is {MAX_MATCHERS}."
            )
        shown = "{" + ",".join(f"{m.name}{_op(m.op)}{_quote(m.value)}" for m in group) + "}"
        if not any(_narrows(m) for m in group):
            raise Refused(
                f"{shown} could match every series in Prometheus, which is too expensive to "
                "run. Name the metric and filter by labels, e.g. "
                'kube_pod_container_status_restarts_total{namespace="..."}; to find metric '
                'names, count by (__name__) ({__name__=~"kube_pod_.*"}).'
            )
        text = shown
        if vs.at is not None:
            text += f" @ {at_time}" if vs.at.at is None else f" @ {vs.at.at.timestamp():.3f}"
        if vs.offset:
            text += f" offset {int(vs.offset.total_seconds())}s"
        out.append(Selector(text))
    return out


def _pre_check(query: str) -> None:
    """Bound what the parser is handed: its Python tree is built in time quadratic in the
    number of chained operators (1,300 ``up+up+...`` take 0.8 s), and deep nesting
    overflows its stack. Quoted strings and label matchers are skipped."""
    if len(query) > MAX_QUERY_CHARS:
        raise Refused(f"the query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}.")
    depth = deepest = operators = braces = 0
    quote = ""
    previous = " "
    for char in query:
        if quote:  # backquoted strings are raw: no escapes
            if char == quote and (quote == "`" or previous != "\\"):
                quote = ""
            previous = "" if previous == "\\" and char == "\\" else char
            continue
        if char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
            braces += char == "{"
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
            braces -= char == "}"
        elif not braces and char in _OPERATOR_CHARS and previous not in _OPERATOR_CHARS:
            operators += 1
        previous = char
    words = len(_SET_OPERATORS.findall(query))
    if deepest > MAX_DEPTH:
        raise Refused(f"the query nests brackets {deepest} deep; the limit is {MAX_DEPTH}.")
    if operators + words > MAX_OPERATORS:
        raise Refused(
            f"the query chains {operators + words} operators; the limit is {MAX_OPERATORS}:"
            " split it into smaller queries."
        )


def _children(node: pp.Expr) -> Iterator[pp.Expr]:
    if isinstance(node, pp.AggregateExpr):
        if isinstance(node.param, pp.Expr):
            yield node.param
        yield node.expr
    elif isinstance(node, pp.BinaryExpr):
        yield node.lhs
        yield node.rhs
    elif isinstance(node, pp.UnaryExpr | pp.ParenExpr | pp.SubqueryExpr):
        yield node.expr
    elif isinstance(node, pp.Call):
        yield from (a for a in node.args if isinstance(a, pp.Expr))
    elif isinstance(node, pp.MatrixSelector):
        yield node.vector_selector


def _at_distance(at: pp.AtModifier | None, now: datetime) -> float:
    if at is None or at.at is None:  # start() / end(): within the query's own window
        return 0.0
    return abs((now - at.at).total_seconds())


def check(
    query: str, limits: Limits, *, now: datetime, end: datetime, span: timedelta = timedelta(0)
) -> Plan:
    """Parse and judge ``query`` evaluated at ``end`` (a range query: over ``span`` before it).

    Raises :class:`Refused` (with a message for the model) or ``ValueError``
    (the parser's syntax error).
    """
    _pre_check(query)
    expr = pp.parse(query)
    plan = Plan(expr)
    base = max(0.0, (now - end).total_seconds()) + span.total_seconds()
    limit = limits.max_range.total_seconds()
    at_time = f"{end.timestamp():.3f}"
    seen: set[Selector] = set()
    stack: list[tuple[pp.Expr, float, int]] = [(expr, base, 0)]
    while stack:
        node, back, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Refused(f"the query nests more than {MAX_DEPTH} levels deep.")
        if isinstance(node, pp.MatrixSelector):
            back += node.range.total_seconds()
        elif isinstance(node, pp.SubqueryExpr):
            back += _seconds(node.range) + _seconds(node.offset) + _at_distance(node.at, now)
        elif isinstance(node, pp.VectorSelector):
            back += _seconds(node.offset) + _at_distance(node.at, now)
            for selector in _check_selector(node, at_time):
                if selector not in seen:
                    seen.add(selector)
                    plan.selectors.append(selector)
            if len(plan.selectors) > MAX_SELECTORS:
                raise Refused(f"the query names more than {MAX_SELECTORS} selectors; split it up.")
        if back > limit:
            raise Refused(
                f"the query reads {_days(back)} of data (the query's own range, the ranges and "
                f"offsets in it and how long ago it is evaluated); the limit is "
                f"{_days(limit)} (SRE_AGENT_PROMQL_MAX_RANGE). Use a shorter range, a smaller "
                "offset or a later time."
            )
        if isinstance(node, pp.SubqueryExpr):
            _check_steps(node)
        plan.lookback = max(plan.lookback, timedelta(seconds=back))
        stack.extend((child, back, depth + 1) for child in _children(node))
    return plan


def _check_steps(node: pp.SubqueryExpr) -> None:
    step = _seconds(node.step) or DEFAULT_SUBQUERY_STEP.total_seconds()
    steps = _seconds(node.range) / step
    if steps > MAX_SUBQUERY_STEPS:
        shown = f"[{_days(_seconds(node.range))}:{_days(step)}]"
        raise Refused(
            f"the subquery {shown} takes {steps:.0f} steps; the limit is {MAX_SUBQUERY_STEPS}:"
            " use a larger step or a shorter range."
        )


def _days(seconds: float) -> str:
    """``7d``, ``3650d``, ``1d6h``, ``45m``: days rather than Prometheus' weeks and years."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def count_query(selectors: list[Selector]) -> str:
    """One instant query that counts each selector's series, labelled by its index."""
    return " or ".join(
        f'label_replace(count({s.text}), "sre_agent_selector", "{i}", "", "")'
        for i, s in enumerate(selectors)
    )


_ONE_SERIES = {"vector", "time", "scalar", "absent", "absent_over_time", "pi"}
_REDUCING = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile"}
_TOP = {"topk", "bottomk", "limitk"}


def _scalar(node: pp.Expr) -> bool:
    if isinstance(node, pp.NumberLiteral):
        return True
    if isinstance(node, pp.Call):
        return bool(node.func.return_type == pp.ValueType.Scalar)
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _scalar(node.expr)
    if isinstance(node, pp.BinaryExpr):
        return _scalar(node.lhs) and _scalar(node.rhs)
    return False


def result_bound(node: pp.Expr, counts: dict[str, int], at_time: str) -> int:
    """An upper bound on the series ``node`` returns, from its selectors' counts.

    ``check`` has bounded the tree's depth, so this recursion is safe.
    """
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    if isinstance(node, pp.VectorSelector):
        return sum(counts.get(s.text, 0) for s in _check_selector(node, at_time))
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return 1
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return result_bound(node.expr, counts, at_time)
    if isinstance(node, pp.Call):
        if node.func.name in _ONE_SERIES:
            return 1
        vectors = [a for a in node.args if isinstance(a, pp.Expr) and not _scalar(a)]
        vectors = [a for a in vectors if not isinstance(a, pp.StringLiteral)]
        return sum(result_bound(a, counts, at_time) for a in vectors) or 1
    if isinstance(node, pp.AggregateExpr):
        inner = result_bound(node.expr, counts, at_time)
        op = str(node.op)
        if node.modifier is None and op in _REDUCING:
            return min(1, inner)
        if node.modifier is None and op in _TOP and isinstance(node.param, pp.NumberLiteral):
            return min(inner, max(0, int(node.param.val)))
        return inner
    if isinstance(node, pp.BinaryExpr):
        if _scalar(node.lhs):
            return result_bound(node.rhs, counts, at_time)
        if _scalar(node.rhs):
            return result_bound(node.lhs, counts, at_time)
        lhs = result_bound(node.lhs, counts, at_time)
        rhs = result_bound(node.rhs, counts, at_time)
        op = str(node.op)
        card = node.modifier.card if node.modifier is not None else None
        if op == "or":
            return lhs + rhs
        if op in ("and", "unless") or card == pp.VectorMatchCardinality.ManyToOne:
            return lhs
        if card == pp.VectorMatchCardinality.OneToMany:
            return rhs
        return min(lhs, rhs)
    return 1


_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


def filters(expr: pp.Expr) -> bool:
    """Whether ``expr`` drops series by value (``> 0``, ``and``, ``unless``): then its
    result can be far smaller than :func:`result_bound` (an alert's expression is)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, pp.BinaryExpr):
            op = str(node.op)
            returns_bool = node.modifier is not None and node.modifier.return_bool
            if op in ("and", "unless") or (op in _COMPARISONS and not returns_bool):
                return True
        stack.extend(_children(node))
    return False
