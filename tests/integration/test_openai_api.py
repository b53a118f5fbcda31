"""``SRE_AGENT_LLM_API=openai``: an OpenAI-compatible model server (llama.cpp's server, vLLM,
LM Studio, LocalAI) gets what Ollama gets -- the same guards, the cap, the schema-held
first answer, the token accounting, the faults named -- through ``langchain-openai``.

The server is the scripted fake's ``/v1`` API (real Ollama serves one too); the real
``openai`` client and ``ChatOpenAI`` talk to it over HTTP and server-sent events.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sre_agent.backends import check_ollama
from sre_agent.errors import OllamaUnavailable
from tests.integration.test_first_answer import ECHO, prose_unless_constrained
from tests.integration.test_small_model import NS, POD, answer, assert_reported, investigate
from tests.support.fake_ollama import Wire, WireWriter, answer_json, call, fail, say
from tests.support.net import free_port


@pytest.fixture
def openai_settings(make_settings, ollama):
    def make(**overrides: Any):
        values: dict[str, Any] = {"llm_api": "openai", "openai_base_url": f"{ollama.url}/v1"}
        return make_settings(**{**values, **overrides})

    return make


def held_to_schema(request: dict[str, Any]) -> bool:
    fmt = request.get("response_format") or {}
    return fmt.get("type") == "json_schema" and fmt["json_schema"]["schema"]["title"] == "Analysis"


def openai_answer(request: dict[str, Any]):
    """A model that answers prose unless held to a schema (``response_format``)."""
    return answer(request) if held_to_schema(request) else prose_unless_constrained(request)


#: A long answer that does not repeat itself (a loop would be stopped before the cap).
RAMBLING = " ".join(f"then step {n} of the plan," for n in range(600))


async def test_an_investigation_on_an_openai_compatible_server(openai_settings, ollama):
    ollama.default = openai_answer
    record = await investigate(openai_settings(num_predict=900))
    assert_reported(record)
    assert ollama.paths[0] == "POST /v1/chat/completions"
    first = ollama.requests[0]
    assert held_to_schema(first) and not first.get("tools")
    assert first["max_completion_tokens"] == 900  # the cap, as Ollama's num_predict
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    usage = record["llm_usage"]
    (call_detail,) = usage["calls_detail"]
    assert call_detail["kind"] == "answer" and call_detail["done_reason"] == "stop"
    assert not call_detail["partial"]
    assert usage["prompt_tokens"] > 300 and usage["completion_tokens"] > 20


async def test_tool_calls_run_through_the_same_guards(openai_settings, ollama):
    # A wrong argument name (pod_name) is repaired, the tool result goes back, then the answer.
    ollama.enqueue(call("kubectl_events", ns=NS, object_name=POD), answer)
    record = await investigate(openai_settings(first_call="tools"))
    assert_reported(record)
    assert ollama.requests[0].get("tools")
    sent_back = [m for m in ollama.requests[1]["messages"] if m["role"] == "tool"]
    assert sent_back and "status: ok" in sent_back[0]["content"]
    assert "BackOff" in sent_back[0]["content"]
    agent_logs = [e for e in record["evidence"] if e["phase"] == "agent"]
    assert agent_logs and agent_logs[0]["status"] == "ok"
    assert record["llm_usage"]["calls"] == 2


async def test_a_long_answer_is_cut_at_the_cap_and_retried_saying_why(openai_settings, ollama):
    good: list[dict[str, Any]] = []

    def rambling(request: dict[str, Any]):
        from tests.support.model_scripts import analysis_from

        good.append(analysis_from(request))
        return answer_json({**good[0], "impact": RAMBLING})

    ollama.enqueue(rambling, lambda request: answer_json(good[0]))
    record = await investigate(openai_settings(num_predict=600))
    assert_reported(record)
    detail = record["llm_usage"]["calls_detail"]
    assert [(c["kind"], c["done_reason"]) for c in detail] == [
        ("answer", "length"),
        ("repair", "stop"),
    ]
    assert detail[0]["completion_tokens"] == 600
    assert "cut off at the 600-token limit" in json.dumps(ollama.requests[-1]["messages"])


async def test_a_looping_answer_is_stopped_long_before_the_cap(openai_settings, ollama):
    ollama.enqueue(say("the pod is down. " * 400), answer)
    record = await investigate(openai_settings(num_predict=4096))
    assert_reported(record)
    first = record["llm_usage"]["calls_detail"][0]
    assert first["done_reason"] == "repetition" and first["partial"]
    assert first["completion_tokens"] < 1000


async def test_an_echo_is_refused_on_this_api_too(openai_settings, ollama):
    ollama.default = lambda request: answer_json(ECHO)
    record = await investigate(openai_settings())
    assert_reported(record, "degraded")
    assert "instructions" in record["status_reason"]


async def test_a_server_that_refuses_the_schema_gets_the_tools_path(openai_settings, ollama):
    ollama.enqueue(fail(400, "response_format json_schema is not supported"), answer)
    record = await investigate(openai_settings())
    assert_reported(record)
    assert held_to_schema(ollama.requests[0]) and ollama.requests[1].get("tools")


async def test_a_server_error_degrades_with_the_evidence(openai_settings, ollama):
    ollama.enqueue(fail(500, "llama runner process has terminated"))
    record = await investigate(openai_settings())
    assert_reported(record, "degraded")
    assert "llama runner process has terminated" in record["status_reason"]
    assert f"{ollama.url}/v1" in record["status_reason"]
    assert "Restart Count: 14" in record["report"]


async def test_an_unreachable_server_degrades(openai_settings):
    settings = openai_settings(openai_base_url=f"http://127.0.0.1:{free_port()}/v1")
    record = await investigate(settings)
    assert_reported(record, "degraded")
    assert "LLM call failed" in record["status_reason"]


async def test_the_start_up_check_lists_what_the_server_serves(openai_settings, ollama):
    assert (await check_ollama(openai_settings()))["ok"]
    status = await check_ollama(openai_settings(model="no-such-model"))
    assert not status["ok"]
    assert "qwen2.5:7b-instruct" in status["error"] and "SRE_AGENT_MODEL" in status["error"]
    from sre_agent.backends import require_ollama

    with pytest.raises(OllamaUnavailable, match="SRE_AGENT_OPENAI_BASE_URL"):
        await require_ollama(openai_settings(model="no-such-model"))


def test_the_openai_api_needs_its_url(make_settings):
    from sre_agent.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="SRE_AGENT_OPENAI_BASE_URL"):
        make_settings(llm_api="openai")


def broken_sse(*events: Any) -> Wire:
    """An OpenAI-style stream whose events are ``events`` as sent (then ``[DONE]``)."""

    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers(content_type="text/event-stream")
        for event in events:
            wire.event(event)
        wire.event("[DONE]")
        wire.end()

    return Wire(write)


@pytest.mark.parametrize(
    "event",
    [{"choices": [None]}, {"choices": "x"}, [1, 2], {"choices": [], "usage": "lots"}],
    ids=["null-choice", "choices-not-a-list", "not-an-object", "usage-not-an-object"],
)
async def test_a_malformed_chunk_is_the_servers_fault_not_ours(openai_settings, ollama, event):
    ollama.enqueue(broken_sse(event))
    record = await investigate(openai_settings())
    assert_reported(record, "degraded")  # the evidence report, and investigated again later
    assert (
        "the model server sent a chunk that is not the OpenAI chat-completion format"
        in (record["status_reason"])
    )
    assert "internal error" not in record["status_reason"]


async def test_a_stream_without_a_finish_reason_is_a_broken_answer(openai_settings, ollama):
    content = {"choices": [{"index": 0, "delta": {"content": "The pod"}, "finish_reason": None}]}
    ollama.enqueue(broken_sse(content))
    record = await investigate(openai_settings())
    assert_reported(record, "degraded")
    assert "ended the answer without a finish_reason" in record["status_reason"]


async def test_usage_before_the_finish_chunk_is_kept(openai_settings, ollama):
    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        text = json.dumps(answer(request).content)  # the analysis, as one JSON string
        wire.headers(content_type="text/event-stream")
        delta = {"role": "assistant", "content": json.loads(text)}
        wire.event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        usage = {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
        wire.event({"choices": [], "usage": usage})
        wire.event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        wire.event("[DONE]")
        wire.end()

    ollama.enqueue(Wire(write))
    record = await investigate(openai_settings())
    assert_reported(record)
    (only,) = record["llm_usage"]["calls_detail"]
    assert (only["prompt_tokens"], only["completion_tokens"]) == (1234, 56)
    assert not only["partial"]


async def test_a_server_that_sends_no_usage_gets_our_count_marked_partial(openai_settings, ollama):
    def write(wire: WireWriter, request: dict[str, Any]) -> None:
        wire.headers(content_type="text/event-stream")
        delta = {"role": "assistant", "content": answer(request).content}
        wire.event({"choices": [{"index": 0, "delta": delta, "finish_reason": "stop"}]})
        wire.event("[DONE]")
        wire.end()

    ollama.enqueue(Wire(write))
    record = await investigate(openai_settings())
    assert_reported(record)
    (only,) = record["llm_usage"]["calls_detail"]
    assert only["partial"] and only["done_reason"] == "stop"
    assert only["prompt_tokens"] > 300 and only["completion_tokens"] > 20


async def test_the_api_key_is_never_shown(openai_settings, ollama, tmp_path):
    key = "sk-canary-0123456789abcdef0123"
    ollama.enqueue(fail(500, "llama runner process has terminated"))
    record = await investigate(openai_settings(openai_api_key=key))
    assert key not in json.dumps(record)
    assert key not in (await check_ollama(openai_settings(openai_api_key=key, model="x")))["error"]
