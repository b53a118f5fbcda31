"""The first model call, and what a real small model taught us about it.

With evidence gathered first, the first call is the final answer: it is constrained to
the Analysis schema from the start (Ollama's ``format``), so a model that would answer
in prose costs no second call. Without evidence that answered, the model gets its tools.
An answer that only repeats our format instructions is refused, however valid its JSON.
Each test runs one real investigation (the fake Kubernetes API, ChatOllama against the
scripted Ollama, the stored record).
"""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_small_model import CRASH, answer, assert_reported, investigate
from tests.support.fake_ollama import answer_json, fail, say
from tests.support.model_scripts import analysis_from

#: What SmolLM2-135M answered, word for word: the answer format, copied.
ECHO = {
    "summary": "2-3 sentences: what is happening and since when",
    "root_causes": [
        {
            "cause": "the most likely cause, one sentence",
            "evidence": ["[E3] a line quoted from evidence block E3 that supports it", "..."],
            "evidence_ids": ["E3"],
            "confidence": "high",
        }
    ],
    "impact": "who or what is affected, and how badly",
    "mitigation": ["concrete step 1", "concrete step 2"],
    "follow_up_queries": ["a PromQL query worth running next"],
    "follow_up_commands": ["a read-only kubectl command worth running next"],
}


def prose_unless_constrained(request: dict[str, Any]):
    """A model that answers in prose unless its decoding is held to a schema."""
    if request.get("format"):
        return answer(request)
    return say("The api pod crash-loops because SITE_API_UPSTREAM_URL is not set.")


def kinds(record: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(c["kind"], c["done_reason"]) for c in record["llm_usage"]["calls_detail"]]


async def test_with_evidence_the_first_call_is_the_schema_constrained_answer(make_settings, ollama):
    ollama.default = prose_unless_constrained
    record = await investigate(make_settings())
    assert_reported(record)
    first = ollama.requests[0]
    assert first["format"]["title"] == "Analysis"
    assert not first.get("tools")  # the answer, not a tool call
    assert "Restart Count: 14" in json.dumps(first["messages"])  # the evidence is in it
    assert kinds(record) == [("answer", "stop")]
    assert record["llm_usage"]["calls"] == 1


async def test_the_free_first_call_costs_a_second_call_for_the_same_model(make_settings, ollama):
    # The comparison the setting is for: the same model, with tools and free text first.
    ollama.default = prose_unless_constrained
    record = await investigate(make_settings(first_call="tools"))
    assert_reported(record)
    assert ollama.requests[0].get("tools") and not ollama.requests[0].get("format")
    assert kinds(record) == [("agent", "stop"), ("repair", "stop")]
    assert "it was prose, not JSON" in json.dumps(ollama.requests[1]["messages"])


async def test_without_evidence_that_answered_the_model_gets_its_tools(make_settings, ollama, kube):
    kube.stop()  # nothing answers: Kubernetes is gone, Prometheus was never there
    ollama.enqueue(say("I cannot tell without looking."), answer)
    record = await investigate(make_settings())
    first = ollama.requests[0]
    assert first.get("tools") and not first.get("format")
    assert kinds(record)[0] == ("agent", "stop")


async def test_a_server_that_refuses_the_schema_is_asked_with_tools(make_settings, ollama):
    ollama.enqueue(fail(500, "invalid JSON schema in format"), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    assert ollama.requests[0].get("format") and ollama.requests[1].get("tools")
    assert [c["kind"] for c in record["llm_usage"]["calls_detail"]] == ["answer", "agent"]
    assert record["llm_usage"]["calls_detail"][0]["ended"] == "error"


async def test_an_echo_of_the_answer_format_is_refused_and_retried_saying_so(make_settings, ollama):
    ollama.enqueue(answer_json(ECHO), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    retry = json.dumps(ollama.requests[-1]["messages"])
    assert "repeat the answer format's instructions" in retry
    assert "summary" in retry and "root_causes[0].cause" in retry
    assert record["analysis"]["summary"] != ECHO["summary"]


async def test_an_echo_is_never_a_completed_analysis(make_settings, ollama):
    ollama.default = lambda request: answer_json(ECHO)
    record = await investigate(make_settings())
    assert_reported(record, "degraded")
    assert "no valid analysis after one retry" in record["status_reason"]
    assert "instructions" in record["status_reason"]
    assert record["analysis"] is None
    # The evidence still reaches the reader.
    assert "FATAL: config: required setting SITE_API_UPSTREAM_URL" in record["report"]


async def test_an_answer_naming_nothing_of_the_evidence_is_refused(make_settings, ollama):
    vague = {
        "summary": "Something is wrong with the service.",
        "root_causes": [{"cause": "An error occurred.", "confidence": "low"}],
    }
    ollama.enqueue(answer_json(vague), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    assert "names nothing from the alert or the evidence" in json.dumps(
        ollama.requests[-1]["messages"]
    )


async def test_a_real_analysis_of_the_evidence_is_accepted_at_once(make_settings, ollama):
    ollama.enqueue(lambda request: answer_json(analysis_from(request)))
    record = await investigate(make_settings())
    assert_reported(record)
    assert record["llm_usage"]["calls"] == 1
    assert record["analysis"]["root_causes"][0]["evidence_ids"]  # it cites what it read
    assert CRASH.labels["namespace"] in record["analysis"]["summary"]


async def test_after_a_refused_schema_the_retry_asks_without_one(make_settings, ollama):
    ollama.enqueue(
        fail(500, "invalid JSON schema in format"),
        say("The api pod crash-loops: SITE_API_UPSTREAM_URL is not set."),  # prose, tools' path
        answer,  # the retry
    )
    record = await investigate(make_settings())
    assert_reported(record)
    assert not ollama.requests[2].get("format")  # not asked for the schema it refused
    assert "it was prose, not JSON" in json.dumps(ollama.requests[2]["messages"])


async def test_a_prompt_too_long_is_not_a_refused_schema_nor_a_server_down(make_settings, ollama):
    ollama.enqueue(fail(400, "the request exceeds the available context size"))
    record = await investigate(make_settings())
    assert_reported(record, "degraded")
    assert len(ollama.requests) == 1  # no second try with tools: the schema was not the matter
    assert "exceeds the available context size" in record["status_reason"]
    assert "investigate again" not in record["status_reason"]  # a retry would fail the same


async def test_a_retry_whose_schema_is_refused_is_asked_again_plainly(make_settings, ollama):
    ollama.enqueue(
        say("The api pod crash-loops: SITE_API_UPSTREAM_URL is not set."),  # tools' path, prose
        fail(500, "invalid JSON schema in format"),  # what Ollama answers a bad schema
        answer,
    )
    record = await investigate(make_settings(first_call="tools"))
    assert_reported(record)
    assert ollama.requests[1].get("format") and not ollama.requests[2].get("format")
    detail = record["llm_usage"]["calls_detail"]
    # The refused call ended in an error; the plain one answered (nothing to note).
    assert [(c["kind"], c["ended"]) for c in detail][1:] == [("repair", "error"), ("repair", None)]
