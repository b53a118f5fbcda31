"""The schema a model's final answer is decoded against: bounded, and citing only ids shown."""

from __future__ import annotations

import json

from sre_agent.analysis import Analysis, analysis_schema


def arrays(schema: dict) -> list[tuple[str, dict]]:
    found = []
    for model in [schema, *schema["$defs"].values()]:
        found += [(n, f) for n, f in model["properties"].items() if f.get("type") == "array"]
    return found


def test_every_list_and_text_is_bounded_and_an_analysis_needs_a_cause():
    schema = analysis_schema()
    for name, field in arrays(schema):
        assert field["maxItems"] >= 1, name
    texts = [
        f
        for model in [schema, *schema["$defs"].values()]
        for f in model["properties"].values()
        if f.get("type") == "string" and "enum" not in f
    ]
    assert texts and all(f["maxLength"] >= 200 for f in texts)
    assert schema["properties"]["root_causes"]["minItems"] == 1
    assert {"summary", "root_causes"} <= set(schema["required"])
    # At its longest, an answer inside the bounds stays near the generation cap.
    longest = sum(f["maxLength"] for f in texts[:2])  # summary, impact
    cause = schema["$defs"]["RootCause"]["properties"]
    per_cause = cause["cause"]["maxLength"] + (
        cause["evidence"]["maxItems"] * cause["evidence"]["items"]["maxLength"]
    )
    longest += schema["properties"]["root_causes"]["maxItems"] * per_cause
    for name in ("mitigation", "follow_up_queries", "follow_up_commands"):
        field = schema["properties"][name]
        longest += field["maxItems"] * field["items"]["maxLength"]
    assert longest <= 6000


def test_citations_can_only_be_the_ids_shown():
    cited = analysis_schema(["E3", "E1", "E12"])["$defs"]["RootCause"]["properties"]
    assert cited["evidence_ids"]["items"] == {"type": "string", "enum": ["E1", "E3", "E12"]}
    nothing = analysis_schema([])["$defs"]["RootCause"]["properties"]["evidence_ids"]
    assert nothing["maxItems"] == 0


def test_validation_stays_lenient():
    # A free-text answer longer than the schema's bounds still validates.
    long = {"summary": "s" * 2000, "root_causes": [{"cause": "c", "evidence": ["e"] * 9}]}
    assert Analysis.model_validate(long).summary == "s" * 2000
    json.dumps(analysis_schema())  # serialisable as sent
