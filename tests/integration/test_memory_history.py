"""The history finding of a recurring alert (sre_agent.memory): its facts come from our
records and from a real Prometheus' ALERTS series, within a fixed share of the budget;
the same alert on another workload has none of it."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sre_agent import tokens
from sre_agent.backends import make_deps
from sre_agent.memory import Memory
from sre_agent.settings import load_settings
from sre_agent.store import Store
from sre_agent_lab.openmetrics import Series, openmetrics_text
from sre_agent_lab.prometheus_world import PrometheusServer
from tests.support.memory import WEB, ago, body, seed, suffix
from tests.support.net import free_port

OOM = "web was OOMKilled: memory limit 256Mi reached under the nightly import job"


def memory(store: Store, prometheus_url: str, budget: int = 3000) -> Memory:
    settings = load_settings(prometheus_url=prometheus_url, backend_timeout=3.0)
    return Memory(store, make_deps(settings, (None, None)), budget)


def firing(store: Store, labels: dict[str, str], starts: datetime):
    from sre_agent.alerts import parse_payload

    payload = parse_payload(body(labels, starts))
    [(ident, _, _)], _ = store.create_group(payload.alerts)
    return store.get(ident)


def test_a_recurring_alert_gets_its_history_and_another_workload_does_not(store: Store):
    pods = [
        "web-7d9f8b6c5-x2x4k",
        "web-7d9f8b6c5-p9q8r",
        "web-5c4b7d29f-bcdfg",
        "web-66b5f7d8c-zzzzz",
    ]
    # Four earlier firings of web: two in the last 7 days, two before; 10, 20, 30, 40 min.
    when = [ago(days=1), ago(days=5), ago(days=12), ago(days=25)]
    ids = [
        seed(store, {**WEB, "pod": pod}, starts=at, lasted=timedelta(minutes=10 * (n + 1)), cause=c)
        for n, (pod, at, c) in enumerate(
            zip(pods, when, [OOM, "a bad config push", OOM, "the database was down"], strict=True)
        )
    ]
    store.add_feedback(ids[2], "confirmed", author="alice", via="token")
    store.add_feedback(
        ids[1], "wrong", cause="the node ran out of disk", author="bob", via="session"
    )
    # The same alert on another workload, with a cause of its own.
    seed(
        store,
        {**WEB, "container": "cart", "pod": "cart-6f7d8c9b4-npqrs"},
        starts=ago(days=2),
        cause="cart's cache is cold",
    )

    now_web = firing(store, {**WEB, "pod": "web-7d9f8b6c5-tvwxz"}, ago(minutes=3))
    mem = memory(store, f"http://127.0.0.1:{free_port()}")  # Prometheus down
    found = asyncio.run(mem.history(now_web, []))
    assert found is not None and found.tool == "history"
    text = found.output
    assert "fired 2 time(s) in the last 7 days, 4 in 30 days" in text
    assert "lasted 25m median, 40m longest" in text
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert f'Cause confirmed (by alice {today}): "{OOM}"' in text
    assert f"Corrected (by bob {today})" in text and '"the node ran out of disk"' in text
    # Confirmed before corrected; an analysis nobody judged is named as such.
    assert text.index("Cause confirmed") < text.index("Corrected")
    assert "not confirmed" in text and "the database was down" in text
    # Prometheus did not answer: said, and the counts are ours alone.
    assert "Prometheus ALERTS: no answer" in text and "records only" in text
    assert "cart" not in text
    assert tokens.count(found.title) + tokens.count(text) + 8 <= mem.max_tokens

    # The same alert on a workload with no earlier firing: no history at all.
    now_api = firing(
        store, {**WEB, "container": "api", "pod": "api-7d9f8b6c5-x2x4k"}, ago(minutes=1)
    )
    assert asyncio.run(mem.history(now_api, [])) is None


def test_the_history_is_held_to_its_share_of_the_budget(store: Store):
    for n in range(30):
        seed(
            store,
            {**WEB, "pod": f"web-7d9f8b6c5-{suffix(n)}"},
            starts=ago(days=n % 29 + 0.5),
            cause=f"{OOM} ({n})",
        )
    for ident in [r.id for r in store.list(limit=10)]:
        store.add_feedback(ident, "confirmed", author="alice", note="raised the limit " * 20)
    now = firing(store, {**WEB, "pod": "web-7d9f8b6c5-tvwxz"}, ago(minutes=3))
    mem = memory(store, f"http://127.0.0.1:{free_port()}", budget=2000)
    found = asyncio.run(mem.history(now, []))
    assert found is not None
    assert mem.max_tokens == 300
    assert tokens.count(found.title) + tokens.count(found.output) + 8 <= mem.max_tokens
    assert "left out: the history's budget" in found.output
    assert "fired" in found.output.splitlines()[1]  # the counts come first, never cut for causes


def _alerts(pod: str, start: datetime, minutes: int) -> list[tuple[float, float]]:
    t0 = start.timestamp()
    return [(t0 + 60 * m, 1.0) for m in range(minutes + 1)]


@pytest.fixture(scope="module")
def alerts_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus with 30 days of ALERTS: web fired five times before now (three
    in the last week: 20, 40, 60 min; two before: 80, 100 min), cart twice, and web's
    current firing began five minutes ago (beside another web pod firing for two days)."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    web = {**WEB, "alertstate": "firing", "severity": "warning"}
    series = []
    for n, (days, minutes) in enumerate([(1, 20), (3, 40), (6, 60), (10, 80), (20, 100)]):
        pod = f"web-7d9f8b6c5-{suffix(n)}"
        series.append(
            Series("ALERTS", {**web, "pod": pod}, _alerts(pod, now - timedelta(days=days), minutes))
        )
    for days in (2, 4):
        labels = {**web, "container": "cart", "pod": f"cart-6f7d8c9b4-{suffix(days)}"}
        series.append(Series("ALERTS", labels, _alerts("", now - timedelta(days=days), 30)))
    series.append(
        Series(
            "ALERTS",
            {**web, "pod": "web-7d9f8b6c5-tvwxz"},
            _alerts("", now - timedelta(minutes=5), 4),
        )
    )
    # Another pod of web has been firing for two days and still is: the same episode as
    # this one, not history -- and it must not swallow the firings it overlaps.
    series.append(
        Series(
            "ALERTS",
            {**web, "pod": "web-7d9f8b6c5-wxzbc"},
            _alerts("", now - timedelta(days=2), 2 * 24 * 60),
        )
    )
    # A DaemonSet web-agent (its pods' names begin with web-) is another workload.
    series.append(
        Series(
            "ALERTS", {**web, "pod": "web-agent-x7f2k"}, _alerts("", now - timedelta(days=5), 30)
        )
    )
    # One sample every minute, nothing between firings: a 1-minute lookback keeps each
    # firing as long as it was (rule evaluation writes stale markers; a backfill cannot).
    server = PrometheusServer(
        tmp_path_factory.mktemp("alerts"), openmetrics=openmetrics_text(series), lookback_delta="1m"
    )
    with server:
        yield server


def _minutes(text: str, word: str) -> int:
    match = re.search(rf"(\d+)h(\d\d)m {word}|(\d+)m {word}", text)
    assert match, text
    if match.group(3):
        return int(match.group(3))
    return int(match.group(1)) * 60 + int(match.group(2))


def test_prometheus_alerts_history_is_counted(store: Store, alerts_prometheus: PrometheusServer):
    now = firing(store, {**WEB, "pod": "web-7d9f8b6c5-tvwxz"}, ago(minutes=5))
    found = asyncio.run(memory(store, alerts_prometheus.url).history(now, []))
    assert found is not None
    line = next(x for x in found.output.splitlines() if x.startswith("- Prometheus ALERTS"))
    # Five before this one (three this week), none of cart's; the current one is not history.
    assert "fired 3 time(s) in the last 7 days, 5 in 30 days (before this one)" in line
    assert abs(_minutes(line, "median") - 60) <= 5
    assert abs(_minutes(line, "longest") - 100) <= 5
    assert "no earlier investigation" in found.output  # our own records have none
