"""``sre-agent eval`` as a user runs it: a subprocess against the scenario worlds and an
Ollama (here the scripted one, which answers from the evidence it is sent)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_agent_lab.prometheus_world import prometheus_available
from sre_agent_lab.scenarios import load_scenarios
from tests.support.fake_ollama import FakeOllama, free_port
from tests.support.model_scripts import investigator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAMES = [s.name for s in load_scenarios()]
needs_prometheus = pytest.mark.skipif(
    not prometheus_available(), reason="prometheus/promtool not installed"
)


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        fake.default = investigator
        yield fake


def sre_agent_eval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", "eval", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def table(stdout: str) -> dict[str, list[str]]:
    """Rows of the printed table by their first column."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    return {
        line.split()[0]: line.split()
        for line in lines[start + 1 :]
        if line.strip() and not line.startswith("-")
    }


@pytest.fixture(scope="module")
def every_scenario(ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory):
    if not prometheus_available():
        pytest.skip("prometheus/promtool not installed")
    out = tmp_path_factory.mktemp("eval") / "results.json"
    return sre_agent_eval("--ollama-url", ollama.url, "--json", str(out)), out


@needs_prometheus
def test_every_scenario_gets_a_row_with_decisive_evidence_and_a_valid_analysis(every_scenario):
    result, _ = every_scenario
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert set(NAMES) <= set(rows)
    for name in NAMES:
        decisive, valid = rows[name][1], rows[name][2]
        assert (decisive, valid) == ("yes", "yes"), rows[name]
    assert rows["total"][1:3] == [f"{len(NAMES)}/{len(NAMES)}"] * 2
    # The scripted model cites the block of each line it quotes: every root cause cites.
    assert rows["total"][4] == f"{len(NAMES)}/{len(NAMES)}"
    assert "[1/" in result.stderr  # progress goes to stderr, not into the table


@needs_prometheus
def test_json_results_have_every_run_and_its_scores(every_scenario):
    _, out = every_scenario
    document = json.loads(out.read_text())
    assert [s["name"] for s in document["scenarios"]] == NAMES
    assert document["totals"]["runs"] == len(NAMES)
    assert len(document["prompt_version"]) == 12
    for scenario in document["scenarios"]:
        (run,) = scenario["runs"]
        assert run["decisive_reached"] is True and run["decisive_missing"] == []
        assert run["valid_output"] is True and run["status"] == "completed"
        assert 0 <= run["keyword_fraction"] <= 1
        assert run["prompt_tokens"] >= run["first_prompt_tokens"] > 0
        assert run["llm_calls"] == 1 and run["model_tool_calls"] == 0
        assert run["evidence_tool_calls"] > 0 and run["seconds"] > 0
        assert run["analysis"]["root_causes"]
        assert run["root_causes_citing_evidence"] == run["root_causes"] >= 1
        # Each call as recorded: the schema-held answer, its tokens.
        (call,) = run["llm_usage"]["calls_detail"]
        assert call["kind"] == "answer" and call["prompt_tokens"] == run["first_prompt_tokens"]
        assert run["completion_tokens"] == call["completion_tokens"] > 0


@needs_prometheus
def test_repeat_reports_pass_rates(ollama):
    chosen = ["crashloop-missing-config", "node-not-ready"]
    result = sre_agent_eval("--ollama-url", ollama.url, "--repeat", "2", *chosen)
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert set(rows) == {*chosen, "total"}
    for name in chosen:
        assert rows[name][1:3] == ["2/2", "2/2"]
        assert rows[name][-1] == "2/2"
    assert rows["total"][-2:] == ["4/4", "(100%)"]
    assert "run 2/2" in result.stderr


def test_an_unknown_scenario_is_refused_naming_the_available_ones():
    result = sre_agent_eval("--ollama-url", "http://127.0.0.1:9", "no-such-scenario")
    assert result.returncode == 2
    assert "no-such-scenario" in result.stderr
    assert all(name in result.stderr for name in NAMES)


def test_without_ollama_it_stops_at_once_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    result = sre_agent_eval("--ollama-url", url, NAMES[0])
    assert result.returncode == 3
    assert url in result.stderr and "SRE_AGENT_OLLAMA_URL" in result.stderr
    assert result.stdout == ""
