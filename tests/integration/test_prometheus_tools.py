"""The PromQL tools against a real Prometheus holding the homepage scenario."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.prometheus import (
    MAX_INSTANT_SERIES,
    MAX_RANGE_SERIES,
    SHOWN_POINTS,
    expr_from_generator_url,
    make_prometheus,
    query_instant,
    query_range,
)

from tests.support.prometheus import API_POD, WEB_POD, PrometheusServer, free_port
from tests.support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "alertmanager" / "group-firing-homepage.json"


@pytest.fixture
def deps(prometheus: PrometheusServer) -> Iterator[ToolDeps]:
    client = make_prometheus(prometheus.url, timeout=5)
    yield ToolDeps(prometheus=client, timeout=5)
    client.close()


def _alert_expr(alertname: str) -> str:
    alerts = json.loads(EXAMPLE.read_text())["alerts"]
    url = next(a["generatorURL"] for a in alerts if a["labels"]["alertname"] == alertname)
    expr = expr_from_generator_url(url)
    assert expr
    return expr


async def test_instant_query_lists_series_with_values(deps: ToolDeps) -> None:
    result = await query_instant(deps, 'kube_deployment_spec_replicas{namespace="homepage"}')
    assert result.status == "ok"
    lines = result.text.splitlines()
    assert len(lines) == 2
    api = next(line for line in lines if 'deployment="bruno-site-api"' in line)
    assert api.startswith("kube_deployment_spec_replicas{")
    assert api.endswith("=> 3")


async def test_instant_query_at_a_past_time(deps: ToolDeps) -> None:
    query = 'kube_deployment_status_replicas_available{deployment="bruno-site-api"}'
    assert (await query_instant(deps, query)).text.endswith("=> 2")
    assert (await query_instant(deps, query, time="now-1h")).text.endswith("=> 3")


async def test_instant_scalar(deps: ToolDeps) -> None:
    result = await query_instant(deps, "scalar(sum(up))")
    assert result.status == "ok"
    assert result.text == "scalar => 2"


async def test_range_query_summarises_the_replica_drop(deps: ToolDeps) -> None:
    query = 'kube_deployment_status_replicas_available{deployment="bruno-site-api"}'
    result = await query_range(deps, query, start="now-1h")
    assert result.status == "ok", result.text
    assert "min=2 max=3" in result.text
    assert "first=3 last=2 trend=falling" in result.text
    points = re.findall(r"\b\d\d:\d\d=\d", result.text.split("points:")[1])
    assert len(points) <= SHOWN_POINTS
    # A summary, not the ~120 raw samples.
    assert len(result.text) < 600
    assert len(result.text.splitlines()) == 4


async def test_range_query_counter_rises(deps: ToolDeps) -> None:
    result = await query_range(
        deps, f'kube_pod_container_status_restarts_total{{pod="{API_POD}"}}', start="-2h", step="5m"
    )
    assert result.status == "ok"
    assert "trend=rising" in result.text
    assert "step 300s" in result.text


async def test_alert_expression_from_generator_url_fires(deps: ToolDeps) -> None:
    result = await query_instant(deps, _alert_expr("KubeDeploymentReplicasMismatch"))
    assert result.status == "ok", result.text
    assert 'deployment="bruno-site-api"' in result.text
    assert "bruno-site-web" not in result.text

    crash = await query_instant(deps, _alert_expr("KubePodCrashLooping"))
    assert API_POD in crash.text

    throttling = await query_instant(deps, _alert_expr("CPUThrottlingHigh"))
    assert WEB_POD in throttling.text
    assert throttling.text.endswith("=> 0.41")


async def test_bad_promql_returns_prometheus_parse_message(deps: ToolDeps) -> None:
    for call in (query_instant(deps, "sum(rate(up[5m])"), query_range(deps, "sum(rate(up[5m])")):
        result = await call
        assert result.status == "error"
        assert result.text.startswith("PromQL error:")
        assert "parse error" in result.text
        assert "unclosed left parenthesis" in result.text


async def test_unknown_metric_is_no_data_with_hint(deps: ToolDeps) -> None:
    result = await query_instant(deps, 'kube_deployment_replicas_wanted{namespace="homepage"}')
    assert result.status == "no_data"
    assert '{__name__=~"kube_deployment.*"}' in result.text
    assert (await query_range(deps, "no_such_metric")).status == "no_data"


async def test_unreachable_prometheus_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = make_prometheus(url, timeout=2)
    deps = ToolDeps(prometheus=client, timeout=2)
    result = await query_instant(deps, "up")
    client.close()
    assert result.status == "error"
    assert result.text.startswith(f"Prometheus unreachable at {url}: ")
    assert "Connection refused" in result.text  # refused at once, not waited out


async def test_not_configured() -> None:
    result = await query_range(ToolDeps(prometheus=None), "up")
    assert result == result.__class__("error", result.text)
    assert "not configured" in result.text


async def test_many_series_are_capped(deps: ToolDeps) -> None:
    instant = await query_instant(deps, "kube_pod_status_phase")
    assert instant.status == "ok"
    lines = instant.text.splitlines()
    assert len(lines) == MAX_INSTANT_SERIES + 1
    assert lines[-1].startswith(f"… {40 - MAX_INSTANT_SERIES} more series")

    ranged = await query_range(deps, "kube_pod_status_phase")
    assert ranged.text.startswith("40 series")
    # Whole series up to the size limit, then a count of the rest.
    shown = ranged.text.count("\n  points: ")
    assert 0 < shown <= MAX_RANGE_SERIES
    assert ranged.text.splitlines()[-1].startswith(f"… {40 - shown} more series")
    assert len(ranged.text) <= deps.output_limit


async def test_output_is_capped_to_the_limit(prometheus: PrometheusServer) -> None:
    client = make_prometheus(prometheus.url, timeout=5)
    deps = ToolDeps(prometheus=client, output_limit=500, timeout=5)
    result = await query_instant(deps, "kube_pod_status_phase")
    client.close()
    assert len(result.text) <= 500
    lines = result.text.splitlines()
    assert all(line.endswith(("=> 0", "=> 1")) for line in lines[:-1])
    assert lines[-1].startswith(f"… {40 - (len(lines) - 1)} more series")


async def test_bad_time_is_an_error_the_model_can_fix(deps: ToolDeps) -> None:
    result = await query_range(deps, "up", start="yesterday")
    assert result.status == "error"
    assert "not a time" in result.text


async def test_silent_prometheus_times_out() -> None:
    # Accepts connections (kernel backlog) but never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = make_prometheus(url, timeout=1)
        result = await query_range(ToolDeps(prometheus=client, timeout=1), "up")
        client.close()
        listener.setblocking(False)
        attempts = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                listener.accept()[0].close()
                attempts += 1
    assert result.status == "error"
    assert result.text == f"Prometheus unreachable at {url}: no answer within 1s."
    assert attempts == 1  # the one deadline, not retried into several


@pytest.fixture
def proxy(prometheus: PrometheusServer) -> Iterator[RecordingProxy]:
    """The real Prometheus behind a proxy that records every query it receives."""
    with RecordingProxy(prometheus.url) as recording:
        yield recording


def _deps(url: str, **limits: object) -> ToolDeps:
    return ToolDeps(prometheus=make_prometheus(url, 5), timeout=5, **limits)  # type: ignore[arg-type]


async def test_range_query_over_too_many_series_is_refused_before_fetching(proxy):
    deps = _deps(proxy.url, promql_max_range_series=10)  # the fixture holds 40 phase series
    result = await query_range(deps, "kube_pod_status_phase")
    assert result.status == "error"
    assert "up to 40 series" in result.text and "aggregate it" in result.text
    assert not any(path.endswith("query_range") for _, path, _ in proxy.requests)
    fine = await query_range(deps, "sum(kube_pod_status_phase)")
    assert fine.status == "ok" and fine.text.startswith("1 series")
    top = await query_range(deps, "topk(3, kube_pod_status_phase)")
    assert top.status == "ok", top.text


async def test_a_filtering_range_query_is_judged_by_what_survives_the_filter(proxy):
    """An alert's expression (``... == 1``) matches few of its selector's series."""
    deps = _deps(proxy.url, promql_max_range_series=10)
    firing = await query_range(deps, "kube_pod_status_phase == 1")  # 8 pods Running
    assert firing.status == "ok" and firing.text.startswith("8 series"), firing.text
    assert "count(kube_pod_status_phase == 1)" in proxy.queries()
    everything = await query_range(deps, "kube_pod_status_phase >= 0")
    assert everything.status == "error" and "up to 40 series" in everything.text
    assert not any("kube_pod_status_phase >= 0" == q for q in proxy.queries())


@pytest.mark.parametrize(
    ("tool", "query", "says"),
    [
        ("instant", '{__name__=~".+"}', "could match every series"),
        ("instant", '{__name__=~".+", job=~".+"}', "could match every series"),
        ("instant", '{namespace!=""}', "could match every series"),
        ("instant", 'count_over_time({__name__=~".+"}[3650d])', "reads 3650d of data"),
        ("instant", 'count_over_time(up{job="kube-state-metrics"}[3650d])', "the limit is 7d"),
        ("instant", "max_over_time(rate(up[5m])[30d:1m])", "the limit is 7d"),
        ("instant", "up offset 30d", "the limit is 7d"),
        ("instant", "up @ 0", "the limit is 7d"),
        ("instant", "max_over_time(up[1h:1ms])", "steps"),
        ("range", '{__name__=~".+"}', "could match every series"),
        ("range", "up", "the limit is 7d"),  # with start=now-3650d
    ],
)
async def test_expensive_queries_never_reach_prometheus(proxy, tool, query, says):
    deps = _deps(proxy.url)
    if tool == "instant":
        result = await query_instant(deps, query)
    else:
        result = await query_range(deps, query, start="now-3650d" if query == "up" else "now-1h")
    assert result.status == "error"
    assert result.text.startswith("Refused: ") and says in result.text, result.text
    assert proxy.requests == []  # not even a series count was asked for


async def test_instant_query_at_a_time_long_ago_is_refused(proxy):
    result = await query_instant(_deps(proxy.url), "up", time="now-30d")
    assert result.status == "error" and "the limit is 7d" in result.text
    assert proxy.requests == []


async def test_max_range_setting_widens_the_limit(proxy):
    deps = _deps(proxy.url, promql_max_range=timedelta(days=40))
    result = await query_instant(deps, "up offset 30d")
    assert result.status == "no_data"  # allowed, and nothing is that old
    assert any("offset" in q for q in proxy.queries())


async def test_selector_over_too_many_series_is_refused_after_counting_only(proxy):
    deps = _deps(proxy.url, promql_max_series=30)  # 40 phase series, 2 up series
    query = 'sum(rate(kube_pod_status_phase[5m])) + sum(up{job="kube-state-metrics"})'
    result = await query_instant(deps, query)
    assert result.status == "error"
    assert "matches 40 series" in result.text and "kube_pod_status_phase" in result.text
    sent = proxy.queries()
    assert len(sent) == 1 and "count(" in sent[0]  # the count of each selector, nothing else
    assert "rate(" not in sent[0] and query not in sent[0]


async def test_counting_runs_on_selectors_not_the_expression(proxy):
    deps = _deps(proxy.url)
    query = 'sum by (phase) (max_over_time(kube_pod_status_phase{namespace="filler"}[1h]))'
    result = await query_instant(deps, query)
    assert result.status == "ok", result.text
    count, real = proxy.queries()
    assert "max_over_time" not in count and "[1h]" not in count
    assert 'namespace="filler"' in count and "kube_pod_status_phase" in count
    assert real == query
    params = proxy.requests[-1][2]
    assert params["timeout"] == ["5"] and params["limit"]  # Prometheus' own bounds (seconds)


async def test_syntax_error_is_reported_without_a_request(proxy):
    result = await query_instant(_deps(proxy.url), "sum(rate(up[5m])")
    assert result.status == "error" and result.text.startswith("PromQL error:")
    assert proxy.requests == []


async def test_hostile_nesting_is_refused_not_crashed(proxy):
    deep = "(" * 20000 + "up" + ")" * 20000
    chained = "+".join(["up"] * 5000)
    for query in (deep, chained, "-" * 20000 + "up", "abs(" * 3000 + "up" + ")" * 3000):
        result = await query_instant(_deps(proxy.url), query)
        assert result.status == "error" and result.text.startswith("Refused: ")
    assert proxy.requests == []


async def test_a_fractional_backend_timeout_is_a_timeout_prometheus_accepts(
    prometheus: PrometheusServer,
) -> None:
    client = make_prometheus(prometheus.url, timeout=1.5)
    try:
        deps = ToolDeps(prometheus=client, timeout=1.5)
        query = 'kube_deployment_spec_replicas{namespace="homepage"}'
        assert (await query_instant(deps, query)).status == "ok"
        assert (await query_range(deps, query, start="now-30m")).status == "ok"
    finally:
        client.close()
