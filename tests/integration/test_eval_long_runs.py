"""A long ``sre-agent eval`` (a slow model: minutes per scenario) keeps its evidence.

The scenario worlds' series end when the world opens (``World.now``) and the pipeline
queries at the real "now": a world that has aged past Prometheus' lookback answers
``no_data``, and one only a minute old already drifts off a ``rate(...[5m])`` over
30 s samples (see ``sre_agent_lab.world.MAX_AGE``). Instead of waiting half
an hour, a world is opened with its "now" in the past (what an old world is), against
the real Prometheus, and the re-anchoring is shown to bring the evidence back; the age
bound is a parameter of the eval, set to 0 to make every run re-anchor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sre_agent_tools.prom_parse import parse_duration

from sre_agent.prompts import Prompts, load_prompts
from sre_agent.settings import Settings, load_settings
from sre_agent_lab import world as worlds
from sre_agent_lab.eval import _evaluate
from sre_agent_lab.prometheus_world import prometheus_available
from sre_agent_lab.runs import RunResult, run_alert, scenario_alert
from sre_agent_lab.scenarios import Scenario, load_scenarios
from tests.support.fake_ollama import FakeOllama
from tests.support.model_scripts import investigator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not prometheus_available(), reason="prometheus/promtool not installed"),
]

#: Its decisive evidence is two PromQL results over ``[5m]`` windows (the alert's
#: ``increase`` ratio ``=> 0.65``, a ``rate`` ``=> 0.248``), at the finest step (30 s).
THROTTLING = "cpu-throttling"
#: Its decisive evidence includes a plain gauge at "now" (``=> 12`` percent free).
FILESYSTEM = "node-filesystem-filling"


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    return {s.name: s for s in load_scenarios(None, [THROTTLING, FILESYSTEM])}


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        fake.default = investigator
        yield fake


@pytest.fixture
def settings(ollama: FakeOllama) -> Settings:
    return load_settings(ollama_url=ollama.url)


@pytest.fixture(scope="module")
def prompts() -> Prompts:
    return load_prompts(load_settings().prompts_dir)


async def investigate(
    world: worlds.World, scenario: Scenario, settings: Settings, prompts: Prompts, tmp: Path
) -> RunResult:
    """The scenario's alert as the world serving it would have delivered it."""
    alert = scenario_alert(scenario, world.now)
    return await run_alert(alert, world.settings(settings), prompts, tmp / "db", scenario)


def instant_query_statuses(run: RunResult) -> set[str]:
    """How the run's PromQL instant queries (at "now") ended."""
    return {c.status for c in run.record.tool_calls if c.name == "promql_query"}


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def test_a_world_past_the_lookback_answers_no_data(scenarios, settings, prompts, tmp_path):
    """The bug: a scenario started 45 minutes into one world finds no sample at "now"."""
    scenario = scenarios[FILESYSTEM]
    with worlds.open_world(tmp_path / "world", [scenario], now=ago(minutes=45)) as world:
        assert world.age() > 45 * 60
        run = await investigate(world, scenario, settings, prompts, tmp_path)
    assert instant_query_statuses(run) == {"no_data"}
    assert any("=> 12" in d for d in run.decisive_missing or [])


async def test_a_world_a_minute_old_already_drifts_off_a_rate(
    scenarios, settings, prompts, tmp_path
):
    """Within the lookback, but the last sample two steps back: ``rate(...[5m])``
    extrapolates only half a step over the gap and gives 0.21, not the scenario's 0.248."""
    scenario = scenarios[THROTTLING]
    with worlds.open_world(tmp_path / "world", [scenario], now=ago(seconds=60)) as world:
        run = await investigate(world, scenario, settings, prompts, tmp_path)
    assert [d for d in run.decisive_missing or [] if "=>" in d] == [
        '{container="resizer",pod="image-resizer-5f9d8c7b6-w2p4r"} => 0.248'
    ]


def test_the_bound_leaves_the_evidence_phase_time_within_the_finest_step():
    """Rates stay exact while the last sample is under 1.1 steps back (see MAX_AGE)."""
    steps = [
        parse_duration(s.metrics.get("step", "30s")).total_seconds()
        for s in load_scenarios()
        if s.metrics
    ]
    assert worlds.MAX_AGE + 10 < 1.1 * min(steps)


async def test_a_world_as_old_as_the_bound_still_gives_the_decisive_values(
    scenarios, settings, prompts, tmp_path
):
    """The bound is small enough: rates over the finest step are still exact."""
    chosen = list(scenarios.values())
    anchor = ago(seconds=worlds.MAX_AGE)
    with worlds.open_world(tmp_path / "world", chosen, now=anchor) as world:
        for scenario in chosen:
            run = await investigate(world, scenario, settings, prompts, tmp_path)
            assert run.decisive_missing == [], scenario.name
            assert run.passed, scenario.name


async def test_an_old_world_is_reanchored_and_the_evidence_is_back(
    scenarios, settings, prompts, tmp_path
):
    chosen = list(scenarios.values())
    with worlds.FreshWorlds(tmp_path, chosen, now=ago(minutes=45)) as kept:
        old = kept.world
        world, replaced_age = kept.fresh(chosen)
        assert replaced_age is not None and replaced_age > 45 * 60
        assert world is not old and world.age() < 10
        assert not old.workdir.exists() and kept.opened == 2
        # Young enough now: the same world serves the next run.
        assert kept.fresh(chosen[1:]) == (world, None)
        for scenario in chosen:
            run = await investigate(world, scenario, settings, prompts, tmp_path)
            assert run.decisive_missing == [], scenario.name
            assert instant_query_statuses(run) == {"ok"}, scenario.name


async def test_eval_reanchors_before_each_run_once_the_world_is_older_than_the_bound(
    scenarios, settings, prompts, capsys
):
    chosen = list(scenarios.values())
    results = await _evaluate(settings, prompts, chosen, 2, max_world_age=0)
    err = capsys.readouterr().err
    assert err.count("re-anchoring the scenario worlds at ") == 4, err
    assert "s old)" in err
    for name, runs in results.items():
        assert [r.decisive_missing for r in runs] == [[], []], name
        assert all(r.passed for r in runs), name


async def test_a_fast_eval_keeps_one_world(scenarios, settings, prompts, capsys):
    results = await _evaluate(settings, prompts, list(scenarios.values()), 1)
    assert "re-anchoring" not in capsys.readouterr().err
    assert all(r.passed for runs in results.values() for r in runs)
