"""Spotting a model that loops, without mistaking a long answer for one."""

from __future__ import annotations

import json

from sre_agent.llm import REPEAT_WINDOW, repetition


def test_a_phrase_over_and_over_is_a_loop():
    assert repetition("Let me check. " + "all work and no play " * 40) == len(
        "all work and no play "
    )
    assert repetition('{"summary": "' + "=" * 600) == 1
    assert repetition("x" * (REPEAT_WINDOW - 1)) is None  # too short to tell


def test_long_answers_that_do_not_loop_are_not_loops():
    analysis = {
        "summary": "The api pod of bruno-site crash-loops: it exits at start.",
        "root_causes": [
            {
                "cause": "SITE_API_UPSTREAM_URL is not set",
                "evidence": [f"Back-off restarting failed container api (x{n})" for n in range(12)],
                "confidence": "high",
            }
        ],
        "mitigation": [f"step {n}: check the rollout" for n in range(10)],
    }
    assert repetition(json.dumps(analysis, indent=2)) is None
    assert repetition(" ".join(f"token{n}" for n in range(500))) is None
    # A period longer than we look for is not called a loop.
    assert repetition(("".join(chr(65 + i % 26) for i in range(300)) + "\n") * 4) is None
