"""The parsers that used to be written twice or three times, now one each: every caller
must read the same input the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sre_agent_tools.kube_render import fmt_bytes, fmt_cpu, quantity
from sre_agent_tools.prom_parse import expr_from_generator_url, parse_duration

from sre_agent.alerts import Alert
from sre_agent.analysis import extract_json
from sre_agent.guards import parse_text_tool_calls
from sre_agent_lab.openmetrics import Series, openmetrics_text
from sre_agent_lab.scenarios import Scenario, ScenarioError, load_scenario

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


def _alert(url: str) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "X"},
            "startsAt": "2026-11-27T03:45:00Z",
            "generatorURL": url,
            "fingerprint": "f",
        }
    )


def _scenario(alert: dict[str, object], metrics: dict[str, object] | None = None) -> Scenario:
    return Scenario("s", "", Path("s/scenario.yaml"), alert, {}, metrics or {}, ["x"])


@pytest.mark.parametrize(
    ("url", "expr"),
    [
        ("http://p:9090/graph?g0.expr=up%20%3D%3D%200&g0.tab=1", "up == 0"),
        ("http://p:9090/graph?g0.tab=1&g0.expr=rate(x%5B5m%5D)%20%3E%200", "rate(x[5m]) > 0"),
        ("http://p:9090/graph?g0.expr=%20%20&g0.tab=1", None),  # blank: no expression
        ("http://p:9090/graph?g0.tab=1", None),
        ("", None),
    ],
)
def test_the_alert_the_lab_and_the_tools_recover_the_same_promql(
    url: str, expr: str | None
) -> None:
    assert expr_from_generator_url(url) == expr
    assert _alert(url).expr == expr
    assert _scenario({"labels": {"alertname": "X"}, "generatorURL": url}).expr == expr


def test_a_url_that_does_not_parse_names_no_promql() -> None:
    assert expr_from_generator_url("http://[::1/graph?g0.expr=up") is None


@pytest.mark.parametrize(
    ("step", "seconds"), [("30s", 30), ("1m30s", 90), ("1.5m", 90), ("90", 90)]
)
def test_a_scenario_step_is_a_duration_as_the_promql_tools_read_it(step: str, seconds: int) -> None:
    assert parse_duration(step) == timedelta(seconds=seconds)
    metrics = {"step": step, "series": [{"name": "up", "values": "1x2"}]}
    points = _scenario({"labels": {}}, metrics).series(NOW)[0].points
    assert [t for t, _ in points] == [int(NOW.timestamp()) - seconds * i for i in (2, 1, 0)]


def test_a_bad_step_fails_the_scenario_at_load_time(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "scenario.yaml").write_text(
        "name: bad\nalert: {labels: {alertname: A, severity: warning}, expr: up}\n"
        "decisive: [x]\nmetrics: {step: 5 minutes, series: [{name: up, values: '1'}]}\n"
    )
    with pytest.raises(ScenarioError, match="metrics.step"):
        load_scenario(folder)


def test_openmetrics_groups_a_family_and_refuses_two_types_for_it() -> None:
    text = openmetrics_text(
        [
            Series("b_total", {"pod": "p2"}, [(20, 2), (10, 1)], "counter"),
            Series("a", {"x": 'say "hi"\n'}, [(10.5, 0.25)]),
            Series("b_total", {"pod": "p1"}, [(10, 3)], "counter"),
        ]
    )
    assert text == (
        "# TYPE a gauge\n"
        'a{x="say \\"hi\\"\\n"} 0.25 10.5\n'
        "# TYPE b counter\n"
        'b_total{pod="p1"} 3 10\n'
        'b_total{pod="p2"} 1 10\n'
        'b_total{pod="p2"} 2 20\n'
        "# EOF\n"
    )
    with pytest.raises(ValueError, match="both counter and gauge"):
        openmetrics_text([Series("c_total", {}, [], "counter"), Series("c", {}, [])])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here it is:\n```json\n{"a": 2}\n```\nDone.', {"a": 2}),
        ('I think {"a": 3} is right', {"a": 3}),
    ],
)
def test_json_amid_prose_is_found_the_same_by_both_readers(text: str, value: object) -> None:
    assert extract_json(text) == value
    call = {"name": "query_instant", "arguments": {"query": "up"}}
    wrapped = text.replace(json.dumps(value), json.dumps(call))
    assert parse_text_tool_calls(wrapped, {"query_instant"})[0]["name"] == "query_instant"


def test_json_nested_too_deep_is_no_json_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json(deep)
    assert parse_text_tool_calls(deep, {"query_instant"}) == []


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("250m", 0.25),
        ("2", 2.0),
        ("1.5", 1.5),
        ("128Mi", 134217728.0),
        ("1Gi", 1073741824.0),
        ("2k", 2000.0),
        ("1e3", 1000.0),
        ("500M", 5e8),
        ("", 0.0),
        ("lots", 0.0),
        ("1.2.3", 0.0),  # the old reader raised here
    ],
)
def test_quantities_are_read_by_the_kubernetes_client(text: str, number: float) -> None:
    assert quantity(text) == number


def test_quantities_print_as_before() -> None:
    assert fmt_cpu(quantity("250m")) == "250m"
    assert fmt_cpu(quantity("2")) == "2"
    assert fmt_bytes(quantity("128Mi")) == "128Mi"
    assert fmt_bytes(quantity("1536Mi")) == "1.5Gi"
    assert fmt_bytes(quantity("100")) == "100"
