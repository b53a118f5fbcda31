"""The PromQL cost guard: what it refuses, what it lets through, and what it counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sre_agent_tools import promql_guard as guard

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMITS = guard.Limits()


def check(query: str, span: timedelta = timedelta(0), end: datetime = NOW) -> guard.Plan:
    return guard.check(query, LIMITS, now=NOW, end=end, span=span)


@pytest.mark.parametrize(
    "query",
    [
        '{__name__=~".+"}',
        '{__name__=~".+", job=~".+"}',
        '{__name__=~"..*"}',
        '{__name__=~".{1,}"}',
        '{__name__=~"[^\\n]+"}',
        '{__name__=~"(.+)"}',
        '{__name__=~".+|x"}',
        '{__name__!=""}',
        '{namespace!=""}',
        '{pod=~".+", container!=""}',
        'sum(rate({__name__=~".+"}[5m]))',
        'up or {job=~".+"}',
        'count by (__name__) ({__name__=~"[a-zA-Z_:].*"})',
        '{__name__=~"[[:alpha:]_:][[:word:]:.]*"}',  # RE2's POSIX classes, as Prometheus reads them
        r'{__name__=~"\\pL.*"}',
        '{__name__=~"(?i)UP|.*[^0]"}',
    ],
)
def test_selectors_that_match_everything_are_refused(query):
    with pytest.raises(guard.Refused, match="could match every series"):
        check(query)


@pytest.mark.parametrize(
    "query",
    [
        "up",
        'kube_pod_status_phase{namespace="homepage"}',
        '{__name__=~"kube_pod_.*"}',  # a family: what the no-data hint suggests
        '{__name__=~"kube_deployment.*"}',
        '{job="kube-state-metrics"}',
        '{namespace="homepage", pod=~"api-.*"}',
        'sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="x"}[5m]))',
        "scalar(sum(up))",
        "1 + 1",
        '{__name__=~"(a|aa)*(a*)*b"}',  # judged by RE2 in linear time, no backtracking blow-up
    ],
)
def test_narrow_selectors_pass(query):
    check(query)


@pytest.mark.parametrize(
    ("query", "span", "end", "reads"),
    [
        ("rate(up[5m])", timedelta(hours=1), NOW, "65m"),
        ("max_over_time(rate(up[5m])[1d:5m] offset 1h)", timedelta(0), NOW, "1d1h5m"),
        ("up", timedelta(0), NOW - timedelta(days=2), "2d"),
        ("up @ end()", timedelta(hours=1), NOW, "1h"),
    ],
)
def test_lookback_adds_up_every_range_on_the_way_down(query, span, end, reads):
    plan = check(query, span=span, end=end)
    expected = promql_parser.parse_duration(reads)
    assert plan.lookback == expected


@pytest.mark.parametrize(
    ("query", "span", "end"),
    [
        ("count_over_time(up[3650d])", timedelta(0), NOW),
        ("up", timedelta(days=3650), NOW),
        ("rate(up[5m])", timedelta(days=7), NOW),  # 7d + 5m
        ("up offset 8d", timedelta(0), NOW),
        ("up offset -8d", timedelta(0), NOW),
        ("up @ 0", timedelta(0), NOW),
        (f"up @ {NOW.timestamp() + 30 * 86400:.0f}", timedelta(0), NOW),
        ("max_over_time(max_over_time(up[4d])[4d:1h])", timedelta(0), NOW),
        ("up", timedelta(0), NOW - timedelta(days=30)),
    ],
)
def test_reading_further_back_than_the_limit_is_refused(query, span, end):
    with pytest.raises(guard.Refused, match=r"the limit is 7d \(SRE_AGENT_PROMQL_MAX_RANGE\)"):
        check(query, span=span, end=end)


def test_a_wider_limit_is_honoured():
    wide = guard.Limits(max_range=timedelta(days=400))
    guard.check("count_over_time(up[365d])", wide, now=NOW, end=NOW)


def test_subqueries_with_too_many_steps_are_refused():
    with pytest.raises(guard.Refused, match="steps"):
        check("max_over_time(up[1h:100ms])")
    check("max_over_time(up[1h:1s])")


def test_size_nesting_and_selector_count_are_bounded():
    with pytest.raises(guard.Refused, match="characters"):
        check("up + " * 2000 + "up")
    with pytest.raises(guard.Refused, match="deep"):
        check("(" * 100 + "up" + ")" * 100)
    with pytest.raises(guard.Refused, match="deep"):
        check("-" * 100 + "up")
    with pytest.raises(guard.Refused, match="selectors"):
        check(" or ".join(f"m{i}" for i in range(21)))
    with pytest.raises(guard.Refused, match="matchers"):
        check("up{" + ",".join(f'l{i}="x"' for i in range(40)) + "}")


def test_chained_operators_are_refused_before_parsing():
    """The parser builds its tree in quadratic time: 1,300 chained operators take ~1 s."""
    with pytest.raises(guard.Refused, match="chains 1299 operators"):
        check("+".join(["up"] * 1300))
    with pytest.raises(guard.Refused, match="operators"):
        check(" or ".join(["up"] * 100))
    check("+".join(["up"] * 20))
    # Operators inside strings and label matchers do not count; a raw string ends at its quote.
    check('up{path="' + "+" * 200 + '"}')
    with pytest.raises(guard.Refused, match="operators"):
        check("`\\`" + "+up" * 70)


def test_count_query_counts_each_selector_with_its_modifiers():
    at = int(NOW.timestamp()) - 3600
    plan = check(f'rate(a{{x="1"}}[5m] offset 1h) / on() group_left b @ {at} + a{{x="1"}}')
    texts = sorted(s.text for s in plan.selectors)
    assert texts == [
        f'{{__name__="b"}} @ {at}.000',
        '{x="1",__name__="a"}',
        '{x="1",__name__="a"} offset 3600s',
    ]
    query = guard.count_query(plan.selectors)
    promql_parser.parse(query)  # valid PromQL
    assert "rate" not in query and "[5m]" not in query
    assert query.count("count(") == 3


def test_label_values_are_quoted_back_safely():
    plan = check('up{job="a\\"b", path="c\\\\d"}')
    (selector,) = plan.selectors
    reparsed = promql_parser.parse(selector.text)
    values = {m.name: m.value for m in reparsed.matchers.matchers}
    assert values["job"] == 'a"b' and values["path"] == "c\\d"


@pytest.mark.parametrize(
    ("query", "bound"),
    [
        ("a", 40),
        ("sum(a)", 1),
        ("topk(3, a)", 3),
        ("sum by (x) (a)", 40),
        ("a / b", 5),
        ("a / on(x) group_left b", 40),
        ("a or b", 45),
        ("a and b", 40),
        ("a * 2", 40),
        ("vector(1)", 1),
        ("scalar(sum(a))", 1),
        ('label_replace(a, "y", "$1", "x", "(.*)")', 40),
        ("rate(a[5m])[1h:1m]", 40),
    ],
)
def test_result_bound(query, bound):
    plan = check(query)
    at = f"{NOW.timestamp():.3f}"
    counts = {s.text: (40 if '"a"' in s.text else 5) for s in plan.selectors}
    assert guard.result_bound(plan.expr, counts, at) == bound


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='()[]{}+-*/^,:=~!"`.5mhd@ abcupjobs_offsetsumratebylimitk', max_size=400))
def test_any_text_is_judged_without_crashing(query):
    try:
        plan = check(query)
    except (guard.Refused, ValueError):
        return
    for selector in plan.selectors:  # whatever passed can be counted as written
        promql_parser.parse(f"count({selector.text})")


@pytest.mark.parametrize(
    ("query", "filtering"),
    [
        ("a > 0", True),
        ("sum(a) by (x) == 1", True),
        ("a and b", True),
        ("a unless b", True),
        ("a > bool 0", False),
        ("a + b", False),
        ("rate(a[5m])", False),
    ],
)
def test_filters(query, filtering):
    assert guard.filters(promql_parser.parse(query)) is filtering
