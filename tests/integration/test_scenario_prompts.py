"""Every scenario, through the real pipeline: the decisive evidence a person
would need is in the very first prompt the model receives, within budget."""

from __future__ import annotations

import pytest

from sre_agent import tokens
from sre_agent_lab.scenarios import load_scenarios
from tests.support.lab import Lab, open_lab, run_scenario
from tests.support.model_scripts import investigator

SCENARIOS = load_scenarios()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    with open_lab(tmp_path_factory.mktemp("lab"), SCENARIOS) as lab:
        lab.ollama.default = investigator
        yield lab


def test_there_are_enough_scenarios():
    assert len(SCENARIOS) >= 10
    assert len({s.alertname for s in SCENARIOS}) >= 10


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_decisive_evidence_is_in_the_first_prompt(lab, scenario):
    settings = lab.settings()
    run = await run_scenario(lab, scenario, settings)
    assert run.record.status == "completed", run.record.status_reason
    first = run.requests[0]
    prompt = "\n".join(str(m.get("content", "")) for m in first["messages"])
    missing = [d for d in scenario.decisive if d not in prompt]
    assert not missing, f"decisive evidence not in the first prompt: {missing}"
    used = tokens.count_chat(first["messages"], first.get("tools") or [])
    assert used <= settings.prompt_budget_tokens
    assert "CANARY" not in lab.ollama.received_text()
    # The scripted model answers from the evidence: one call, no tools of its own.
    assert run.record.llm_usage.calls == 1
