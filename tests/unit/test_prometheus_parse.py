"""Time, duration and generatorURL parsing for the PromQL tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sre_agent_tools.prometheus import (
    expr_from_generator_url,
    format_value,
    parse_duration,
    parse_time,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "alertmanager" / "group-firing-homepage.json"
DEFAULT = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("90", 90),
        ("1.5h", 5400),
        (45, 45),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "m5", "1h 30m", "5m-"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _close(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 5


def test_parse_time_default_for_none_and_empty() -> None:
    assert parse_time(None, DEFAULT) == DEFAULT
    assert parse_time("  ", DEFAULT) == DEFAULT


@pytest.mark.parametrize(
    ("text", "ago"),
    [("now", 0), ("now-30m", 1800), ("now - 1h", 3600), ("-2h", 7200), ("30m", 1800)],
)
def test_parse_time_relative(text: str, ago: int) -> None:
    expected = datetime.now(UTC) - timedelta(seconds=ago)
    assert _close(parse_time(text, DEFAULT), expected)


def test_parse_time_absolute() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert parse_time("2024-05-06T07:08:09Z", DEFAULT) == moment
    assert parse_time("2024-05-06T09:08:09+02:00", DEFAULT) == moment
    assert parse_time("2024-05-06T07:08:09", DEFAULT) == moment  # naive means UTC
    assert parse_time(str(int(moment.timestamp())), DEFAULT) == moment
    assert parse_time(f"{int(moment.timestamp())}.5", DEFAULT) == moment + timedelta(seconds=0.5)


@pytest.mark.parametrize("text", ["yesterday", "now*2", "2024-13-01T00:00:00Z"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text, DEFAULT)


def test_expr_from_example_generator_urls() -> None:
    alerts = json.loads(EXAMPLE.read_text())["alerts"]
    exprs = {a["labels"]["alertname"]: expr_from_generator_url(a["generatorURL"]) for a in alerts}
    assert exprs["KubePodCrashLooping"] == (
        'max_over_time(kube_pod_container_status_waiting_reason{job="kube-state-metrics",'
        'namespace=~".*",reason="CrashLoopBackOff"}[5m]) >= 1'
    )
    assert exprs["KubeDeploymentReplicasMismatch"].startswith(
        '(kube_deployment_spec_replicas{job="kube-state-metrics",namespace=~".*"} > '
    )


@pytest.mark.parametrize(
    "url",
    ["", "http://prometheus:9090/graph", "http://prometheus:9090/graph?g0.tab=1&g0.expr="],
)
def test_expr_absent(url: str) -> None:
    assert expr_from_generator_url(url) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("3", "3"),
        ("0.04123", "0.0412"),
        ("1234567890", "1.23e+09"),
        ("41.234", "41.2"),
        ("NaN", "NaN"),
        ("+Inf", "+Inf"),
        (-2.0, "-2"),
    ],
)
def test_format_value(value: str | float, text: str) -> None:
    assert format_value(value) == text
