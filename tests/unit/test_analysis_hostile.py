"""A model's answer is untrusted text: hostile shapes end as a ValueError the retry can
show the model, never as an exception that fails the investigation."""

from __future__ import annotations

import json
import time

import pytest

from sre_agent.analysis import CitationError, check_citations, parse_analysis, without_surrogates
from sre_agent.report import MAX_CITED, telling_lines
from tests.support.records import render_report


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 50_000, '{"summary": "x", "root_causes": ' + "[" * 990 + "]" * 990],
    ids=["deep-list", "deep-object", "deep-field"],
)
def test_deeply_nested_answers_are_invalid_not_a_crash(text):
    with pytest.raises(ValueError):
        parse_analysis(text)


def test_lone_surrogates_in_the_json_become_replacement_characters():
    text = json.dumps({"summary": "api \ud800 down", "mitigation": ["roll \udfff back"]})
    analysis = parse_analysis(text)
    assert analysis.summary == "api \ufffd down"
    assert analysis.mitigation == ["roll \ufffd back"]
    analysis.model_dump_json().encode("utf-8")  # storable


def test_characters_outside_the_bmp_are_kept():
    # JSON writes them as a surrogate pair, which json.loads joins into one character.
    assert parse_analysis('{"summary": "fire \\ud83d\\udd25"}').summary == "fire \U0001f525"
    assert without_surrogates(["\U0001f525", "\ud83d"]) == ["\U0001f525", "\ufffd"]


# --- citations: untrusted too -------------------------------------------------------------

SMALL, BIG = 16 * 1024, 256 * 1024
BOUND = 40  # work(16x the text) < BOUND x work(the text): linear is 16, quadratic 256


def _work(fn, text: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn(text)
        best = min(best, time.process_time() - start)
    return max(best, 1e-4)


def _ratio(fn, make) -> float:
    small, big = make(SMALL), make(BIG)
    best = float("inf")
    for _ in range(2):  # a second try absorbs a noisy neighbour, never a quadratic
        best = min(best, _work(fn, big, 1) / _work(fn, small, 3))
        if best < BOUND:
            break
    return best


def _repeat(unit: str):
    return lambda n: (unit * (n // len(unit) + 1))[:n]


CITATION_SHAPES = {
    "spaces-after-id": lambda n: "[E1" + " " * n,
    "separators": _repeat("[E1, ,"),
    "open-brackets": _repeat("(["),
    "many-ids": _repeat("[E1, E2] "),
    "zeros": lambda n: "E" + "0" * n,
}


def _observation(text: str) -> None:
    try:
        parse_analysis(
            json.dumps(
                {
                    "summary": "s",
                    "root_causes": [
                        {"cause": "c", "evidence": [text], "evidence_ids": [text[:200]]}
                    ],
                }
            )
        )
    except ValueError:
        pass


@pytest.mark.parametrize("name", CITATION_SHAPES)
def test_reading_citations_is_linear_on_adversarial_observations(name):
    assert _ratio(_observation, CITATION_SHAPES[name]) < BOUND


@pytest.mark.parametrize("name", CITATION_SHAPES)
def test_matching_quotes_to_a_finding_is_linear_too(name):
    make = CITATION_SHAPES[name]

    def render(text: str) -> None:
        telling_lines(text.replace(" ", "\n")[: len(text)], [text] * 50)

    assert _ratio(render, make) < BOUND


def test_a_flood_of_citations_is_refused_briefly_and_shown_briefly():
    ids = [f"E{n}" for n in range(1, 5001)]
    analysis = parse_analysis(
        json.dumps({"summary": "s", "root_causes": [{"cause": "c", "evidence_ids": ids}]})
    )
    with pytest.raises(CitationError) as caught:
        check_citations(analysis, {"E1": "ok"})
    assert len(str(caught.value)) < 200
    evidence = [{"id": i, "tool": "kubectl_describe", "output": "x"} for i in ids]
    md = render_report({"labels": {}}, analysis, status="completed", evidence=evidence)
    assert md.count("**[E") == MAX_CITED and "… and E7, E8" in md
