"""Small local models misbehave; every misbehaviour still ends in a report.

Each test scripts the fake Ollama to do one thing small models do (wrong
argument names, an unknown tool, a tool call written as text, the same call
again and again, prose instead of JSON, an empty answer) and runs one real
investigation: evidence against the fake Kubernetes API, the agent on
ChatOllama, the stored record and its markdown report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sre_agent.alerts import parse_payload
from sre_agent.prompts import load_prompts
from sre_agent_lab.runs import run_alert
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import answer_json, call, fail, say
from tests.support.model_scripts import analysis_from
from tests.support.records import served

CRASH = parse_payload(json.loads((EXAMPLES / "group-firing-homepage.json").read_text())).alerts[1]
POD, NS = "bruno-site-api-7d9f8c6b5-x2x4q", "homepage"


@pytest.fixture
def make_settings(make_settings):
    """The tools' path: these misbehaviours happen where the model calls its tools (with
    evidence that answered, the first call is otherwise the schema-held answer)."""
    return lambda **overrides: make_settings(**{"first_call": "tools", **overrides})


#: A long answer that does not repeat itself (a loop would be stopped before the cap).
RAMBLING = " ".join(f"then step {n} of the plan," for n in range(600))


async def investigate(settings) -> dict[str, Any]:
    """One real investigation of the crash-loop alert, into a fresh store."""
    result = await run_alert(CRASH, settings, load_prompts(), settings.database_path.parent)
    return served(result.record)


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def answer(request: dict[str, Any]):
    return answer_json(analysis_from(request))


def assert_reported(record: dict[str, Any], status: str = "completed") -> None:
    assert record["status"] == status, record["status_reason"]
    assert record["report"].startswith("# KubePodCrashLooping")
    if status == "completed":
        assert "FATAL: config: required setting SITE_API_UPSTREAM_URL" in json.dumps(
            record["analysis"]
        )


async def test_wrong_argument_names_are_repaired(make_settings, ollama):
    ollama.enqueue(call("kubectl_events", ns=NS, object_name=POD), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    result = tool_messages(ollama.requests[1])[0]
    (made,) = [e for e in record["evidence"] if e["phase"] == "agent"]
    # The model reads the result under the id the record keeps for it.
    assert result.startswith(f"[{made['id']}] status: ok") and "BackOff" in result


async def test_wrong_argument_types_go_back_to_the_model(make_settings, ollama):
    ollama.enqueue(call("kubectl_logs", pod=POD, namespace=NS, tail_lines="many"), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    error = tool_messages(ollama.requests[1])[0]
    assert "tail_lines" in error  # the model is told which argument was wrong
    assert record["llm_usage"]["calls"] == 2


async def test_unknown_tool_is_named_back_to_the_model(make_settings, ollama):
    ollama.enqueue(call("kubectl_exec", pod=POD, command="env"), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    error = tool_messages(ollama.requests[1])[0]
    assert "kubectl_exec" in error and "kubectl_describe" in error  # lists the real tools
    assert [c["status"] for c in record["tool_calls"] if c.get("phase") != "evidence"] == ["error"]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "promql_query", "arguments": {"query": "up"}}',
        '<tool_call>\n{"name": "promql_query", "arguments": {"query": "up"}}\n</tool_call>',
        'I will check.\n```json\n[{"function": {"name": "promql_query", "parameters": {"query": "up"}}}]\n```',
    ],
    ids=["bare-json", "qwen-tags", "fenced-list"],
)
async def test_tool_call_written_as_text_is_run(make_settings, ollama, text):
    ollama.enqueue(say(text), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    model_calls = [c for c in record["tool_calls"] if c.get("phase") != "evidence"]
    assert [(c["name"], c["args"]) for c in model_calls] == [("promql_query", {"query": "up"})]
    assert tool_messages(ollama.requests[1])  # the result went back to the model


async def test_no_tool_call_at_all(make_settings, ollama):
    ollama.enqueue(answer)
    record = await investigate(make_settings())
    assert_reported(record)
    assert record["llm_usage"]["calls"] == 1


async def test_same_call_again_and_again_is_refused(make_settings, ollama):
    # The model asks for the logs the evidence already holds, over and over.
    same = call("kubectl_logs", pod=POD, namespace=NS, container="api", previous=True)
    ollama.default = lambda request: answer(request) if request.get("format") else same
    record = await investigate(make_settings(max_model_calls=4))
    assert_reported(record)  # the schema-constrained retry wrote the analysis
    refused = [m for r in ollama.requests for m in tool_messages(r) if "Refused" in m]
    assert refused, "identical calls must be refused, not run again"
    logs_runs = [c for c in record["tool_calls"] if c["name"] == "kubectl_logs"]
    assert len([c for c in logs_runs if c["status"] == "ok"]) == 1  # read once, in the evidence
    assert ollama.requests[-1].get("format")  # the last call asked for the schema
    assert record["llm_usage"]["calls"] == 5


async def test_prose_instead_of_json_is_retried_with_the_error(make_settings, ollama):
    ollama.enqueue(say("The pod crashes because a setting is missing."), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    retry = ollama.requests[-1]
    assert retry["format"]["title"] == "Analysis"  # Ollama's JSON-schema format
    assert "no JSON object" in json.dumps(retry["messages"])  # the validation error is shown


async def test_invalid_json_twice_is_degraded_with_raw_text_and_evidence(make_settings, ollama):
    ollama.enqueue(say('{"summary": ""}'), say('{"root_causes": "none"}'))
    record = await investigate(make_settings())
    assert_reported(record, "degraded")
    assert "after one retry" in record["status_reason"]
    assert record["raw_text"] == '{"summary": ""}'
    assert "## Evidence gathered" in record["report"]
    assert "FATAL: config: required setting SITE_API_UPSTREAM_URL" in record["report"]


async def test_empty_answer_is_retried(make_settings, ollama):
    ollama.enqueue(say(""), answer)
    record = await investigate(make_settings())
    assert_reported(record)
    assert "empty" in json.dumps(ollama.requests[-1]["messages"])


async def test_model_errors_give_an_evidence_report(make_settings, ollama):
    ollama.enqueue(fail(500, "llama runner process has terminated"))
    record = await investigate(make_settings())
    assert_reported(record, "degraded")
    assert "llama runner process has terminated" in record["status_reason"]
    assert "Restart Count: 14" in record["report"]
    assert "Runbook: https://runbooks.prometheus-operator.dev" in record["report"]


async def test_an_answer_cut_off_at_num_predict_is_retried_saying_why(make_settings, ollama):
    good: list[dict[str, Any]] = []

    def rambling(request: dict[str, Any]):
        good.append(analysis_from(request))
        return answer_json({**good[0], "impact": RAMBLING})

    ollama.enqueue(rambling, lambda request: answer_json(good[0]))
    record = await investigate(make_settings(num_predict=600))
    assert_reported(record)
    usage = record["llm_usage"]
    assert [(c["kind"], c["done_reason"]) for c in usage["calls_detail"]] == [
        ("agent", "length"),
        ("repair", "stop"),
    ]
    assert usage["truncated"] == 1 and usage["calls_detail"][0]["completion_tokens"] == 600
    assert "cut off at the 600-token limit" in json.dumps(ollama.requests[-1]["messages"])
