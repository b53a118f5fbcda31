"""A model's answer is untrusted text: hostile shapes end as a ValueError the retry can
show the model, never as an exception that fails the investigation."""

from __future__ import annotations

import json

import pytest

from sre_agent.analysis import parse_analysis, without_surrogates


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
