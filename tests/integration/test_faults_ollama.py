"""The model server fails in the ways real ones do; each investigation still ends in time
as ``degraded`` with the fake Kubernetes world's evidence, says what the server did, and is
marked to be investigated again (like Ollama being down).

Every fault is bytes on the wire (tests/support/ollama_faults.py): the real ``ollama``
client and ``ChatOllama`` read them, nothing of ours is patched.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import HumanMessage

from sre_agent.alerts import parse_payload
from sre_agent.app import create_app
from sre_agent.errors import ModelServerError
from sre_agent.llm import OllamaChat
from sre_agent.prompts import load_prompts
from sre_agent_lab.runs import run_alert
from tests.conftest import EXAMPLES, settings_env
from tests.support import ollama_faults as faults
from tests.support.fake_ollama import DEFAULT_MODEL, answer_json, calls, say
from tests.support.model_scripts import analysis_from
from tests.support.records import served
from tests.support.service import ServiceProcess

BODY = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
CRASH = parse_payload(BODY).alerts[1]
#: What the fake Kubernetes world says about the crash-looping pod (the evidence phase).
KUBE_FACT = "Restart Count: 14"


async def investigate(settings) -> tuple[dict[str, Any], float]:
    result = await run_alert(CRASH, settings, load_prompts(), settings.database_path.parent)
    return served(result.record), result.seconds


def assert_degraded_with_evidence(record: dict[str, Any], *reason_parts: str) -> None:
    assert record["status"] == "degraded", record["status_reason"]
    reason = record["status_reason"]
    for part in reason_parts:
        assert part in reason, reason
    assert KUBE_FACT in json.dumps(record["evidence"])
    assert "## Evidence gathered" in record["report"] and KUBE_FACT in record["report"]


def answer(request: dict[str, Any]):
    return answer_json(analysis_from(request))


GARBAGE = {
    "not-json": (faults.not_json(), ["sent a line that is not JSON", 'data: {"content"']),
    "html-200": (faults.html_200(), ["sent a line that is not JSON", "<!DOCTYPE html>"]),
    "json-list": (faults.wrong_shape([1, 2]), ["not Ollama's chat format"]),
    "wrong-message": (faults.wrong_shape({"message": 7, "done": False}), ["ChatResponse"]),
    "bad-count": (
        faults.wrong_shape(
            {"message": {"role": "assistant", "content": ""}, "done": True, "eval_count": "x"}
        ),
        ["eval_count"],
    ),
    "cut-mid-body": (faults.truncated(cut=True), ["broke off the answer"]),
    "no-final-chunk": (faults.truncated(cut=False), ["without its final chunk"]),
    "empty-line": (faults.wrong_shape(b""), ["not JSON"]),
    "no-line-break": (faults.endless_line(), ["sent a line of more than 1048576 bytes"]),
}


@pytest.mark.parametrize("fault", list(GARBAGE), ids=list(GARBAGE))
async def test_garbage_from_the_model_server_degrades_and_is_retried_later(
    make_settings, ollama, fault
):
    reply, says = GARBAGE[fault]
    ollama.enqueue(reply)
    settings = make_settings(investigation_timeout=20)
    record, _ = await investigate(settings)
    assert_degraded_with_evidence(record, "LLM call failed", *says)
    assert "will investigate again when Ollama answers" in record["status_reason"]
    assert record["llm_retry"] == 1  # picked up again by the re-investigation loop
    assert "internal error" not in record["status_reason"]
    assert ollama.chat_count == 1  # no repair call against a broken server


async def test_silence_after_the_headers_is_the_llm_timeout(make_settings, ollama):
    ollama.enqueue(faults.stall_after_headers(30))
    settings = make_settings(llm_timeout=1.0, investigation_timeout=20)
    record, _ = await investigate(settings)
    assert_degraded_with_evidence(record, "sent nothing for 1.0 s", "SRE_AGENT_LLM_TIMEOUT")
    assert record["llm_retry"] == 1  # cut at the 1 s timeout: the stall lasts 30 s


async def test_silence_after_the_headers_until_the_deadline(make_settings, ollama):
    ollama.enqueue(faults.stall_after_headers(60))
    settings = make_settings(investigation_timeout=3)
    record, _ = await investigate(settings)
    assert_degraded_with_evidence(
        record, "deadline of 3 s reached", "the model server had sent no tokens yet"
    )
    usage = record["llm_usage"]
    (call,) = usage["calls_detail"]
    # The server had the prompt: what it cost is counted by our tokenizer, marked partial.
    assert call["partial"] and call["ended"] == "cancelled"
    assert call["prompt_tokens"] > 500 and usage["prompt_tokens"] == call["prompt_tokens"]


@pytest.mark.parametrize("piece", ["token{n} ", ""], ids=["tokens", "empty-chunks"])
async def test_a_server_that_streams_forever_is_stopped_at_the_cap(make_settings, ollama, piece):
    # Tokens that never end and no final chunk, whatever num_predict says.
    sent: list[int] = []
    ollama.enqueue(faults.endless(piece, honour_num_predict=False, sent=sent))
    settings = make_settings(num_predict=64, investigation_timeout=20)
    record, _ = await investigate(settings)
    assert_degraded_with_evidence(record, "kept generating past num_predict=64")
    assert record["llm_retry"] == 1
    (call,) = record["llm_usage"]["calls_detail"]
    assert call["partial"] and call["ended"] == "error"
    assert call["completion_tokens"] > 64 or not piece  # what streamed, by our tokenizer
    # The connection was closed, so the server saw the client go and stopped writing.
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.05)
    assert sent and sent[0] < 10_000, sent


async def test_a_model_that_never_stops_is_capped_by_num_predict(make_settings, ollama):
    ollama.default = faults.endless()  # honours num_predict, as Ollama does
    settings = make_settings(num_predict=64)
    record, _ = await investigate(settings)
    assert record["status"] == "degraded", record["status_reason"]
    assert "cut off at 64 tokens" in record["status_reason"]
    assert [r["options"]["num_predict"] for r in ollama.requests] == [64, 64]
    usage = record["llm_usage"]
    assert [(c["kind"], c["done_reason"]) for c in usage["calls_detail"]] == [
        ("answer", "length"),
        ("repair", "length"),
    ]
    assert usage["truncated"] == 2 and usage["completion_tokens"] == 128
    # The repair call says why the first answer could not be used.
    repair_prompt = json.dumps(ollama.requests[1]["messages"])
    assert "cut off at the 64-token limit" in repair_prompt
    assert record["raw_text"].startswith("token0 token1 token2")


async def test_a_model_that_loops_is_stopped_long_before_num_predict(make_settings, ollama):
    sent: list[int] = []
    # At a steady pace, as a GPU generates (so the socket buffers do not hide the stop).
    ollama.enqueue(faults.endless("all work and no play ", interval=0.002, sent=sent), answer)
    record, _ = await investigate(make_settings())  # num_predict 1024
    assert record["status"] == "completed", record["status_reason"]
    first, repair = record["llm_usage"]["calls_detail"]
    assert first["done_reason"] == "repetition" and first["partial"]
    assert first["completion_tokens"] < 300  # stopped early: ~512 characters of loop
    assert record["llm_usage"]["repeated"] == 1 and repair["done_reason"] == "stop"
    assert "kept repeating the same text" in json.dumps(ollama.requests[1]["messages"])
    for _ in range(100):  # the connection was closed: the server stopped generating
        if sent:
            break
        await asyncio.sleep(0.05)
    assert sent and sent[0] < 300, sent


async def test_a_deadline_mid_answer_keeps_the_first_answer_and_the_usage(make_settings, ollama):
    prose = "The api pod crash-loops: SITE_API_UPSTREAM_URL is not set."
    ollama.enqueue(
        prose,  # not JSON: a repair call follows, and the deadline cuts it mid-answer
        faults.endless(honour_num_predict=False, interval=0.01),
    )
    settings = make_settings(investigation_timeout=4, num_predict=4096)
    record, _ = await investigate(settings)
    assert_degraded_with_evidence(record, "deadline of 4 s reached", "still generating")
    assert record["raw_text"] == prose
    assert prose in record["report"]
    usage = record["llm_usage"]
    first, cut = usage["calls_detail"]
    assert first["kind"] == "answer" and first["done_reason"] == "stop" and not first.get("partial")
    assert cut["kind"] == "repair" and cut["partial"] and cut["ended"] == "cancelled"
    assert cut["prompt_tokens"] > 300 and cut["completion_tokens"] > 0
    assert usage["calls"] == 2
    assert usage["prompt_tokens"] == first["prompt_tokens"] + cut["prompt_tokens"]
    assert usage["completion_tokens"] == first["completion_tokens"] + cut["completion_tokens"]


async def test_a_deadline_keeps_a_complete_analysis_given_before_it(make_settings, ollama):
    # The model answered the analysis and asked for one more lookup; the deadline cut the
    # next call. Its analysis stands.
    def analysis_and_lookup(request):
        content = json.dumps(analysis_from(request))
        return calls([("promql_query", {"query": "up"})], content=content)

    ollama.enqueue(analysis_and_lookup, faults.stall_after_headers(60))
    record, _ = await investigate(make_settings(investigation_timeout=3, first_call="tools"))
    assert record["status"] == "completed", record["status_reason"]
    assert "the analysis is the model's last complete answer" in record["status_reason"]
    assert "FATAL: config: required setting SITE_API_UPSTREAM_URL" in json.dumps(record["analysis"])


async def test_lone_surrogates_from_the_model_are_replaced_where_they_enter(make_settings, ollama):
    def with_surrogate(request):
        analysis = analysis_from(request)
        analysis["summary"] = "api pod \ud800 crash-loops"  # JSON-escaped on the wire
        return answer_json(analysis)

    ollama.enqueue(with_surrogate)
    record, _ = await investigate(make_settings())
    assert record["status"] == "completed", record["status_reason"]
    assert record["analysis"]["summary"] == "api pod \ufffd crash-loops"


async def test_lone_surrogates_in_the_stream_itself_are_replaced(make_settings, ollama):
    # "\ud800" as the NDJSON line's own escape: the client's json.loads makes a lone
    # surrogate of it in the message content.
    ollama.enqueue(say("The api pod \ud800 crash-loops."), answer)
    record, _ = await investigate(make_settings())
    assert record["status"] == "completed", record["status_reason"]
    assert "The api pod \ufffd crash-loops." in json.dumps(
        ollama.requests[1]["messages"], ensure_ascii=False
    )


async def test_errors_building_our_request_are_not_blamed_on_the_server(ollama):
    model = OllamaChat(model=DEFAULT_MODEL, base_url=ollama.url)
    bad = HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])
    with pytest.raises(ValueError) as caught:
        await model.ainvoke([bad])
    assert not isinstance(caught.value, ModelServerError)
    assert ollama.chat_count == 0


def test_the_service_stays_healthy_while_the_model_server_misbehaves(
    tmp_path, make_settings, ollama
):
    """A stalled server, then garbage: /healthz and /readyz answer at once throughout
    (the database works: ready), and both investigations end degraded in time."""
    ollama.enqueue(faults.stall_after_headers(60), faults.not_json())
    settings = make_settings(investigation_timeout=4, reinvestigate=False)
    service = ServiceProcess(settings_env(settings), tmp_path / "service.log")
    with service:
        probes: list[tuple[int, float]] = []  # (status, seconds) of each probe
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(timeout=2) as client:
                while not stop.is_set():
                    for path in ("/healthz", "/readyz"):
                        started = time.perf_counter()
                        try:
                            status = client.get(f"{service.url}{path}").status_code
                        except httpx.HTTPError:
                            status = 0
                        probes.append((status, time.perf_counter() - started))
                    time.sleep(0.05)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        posted = httpx.post(f"{service.url}/webhook/alert", json=BODY, timeout=10)
        assert posted.status_code == 202
        idents = [r["investigation_id"] for r in posted.json()["results"] if r["investigation_id"]]
        assert len(idents) == 2  # the third alert is "info": skipped
        deadline = time.monotonic() + 2 * 4 + 10
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            answers = [httpx.get(f"{service.url}/investigations/{i}", timeout=2) for i in idents]
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            records = [a.json() for a in answers]
            if all(r["status"] not in ("queued", "running") for r in records):
                break
            time.sleep(0.2)
        stop.set()
        prober.join(5)
    assert [r["status"] for r in records] == ["degraded", "degraded"], [
        r["status_reason"] for r in records
    ]
    reasons = " | ".join(r["status_reason"] for r in records)
    assert "deadline of 4 s reached" in reasons and "not JSON" in reasons
    # A probe that waited past the client's 2 s timeout would be a 0 here.
    assert len(probes) > 20 and {status for status, _ in probes} == {200}


def test_chat_turns_are_capped_and_garbage_is_a_model_server_error(make_settings, ollama):
    with TestClient(create_app(make_settings(num_predict=64))) as http:
        ollama.default = answer
        done = http.post("/webhook/alert?wait=true", json=BODY)
        assert done.status_code == 200, done.text
        (ident,) = [
            r["investigation_id"]
            for r in done.json()["results"]
            if r["alert_name"] == "KubePodCrashLooping"
        ]
        ollama.enqueue(faults.endless())  # a chat answer that would never stop
        capped = http.post(f"/investigations/{ident}/chat", json={"message": "why?"})
        assert capped.status_code == 200, capped.text
        assert capped.json()["answer"].startswith("token0 token1")
        assert ollama.requests[-1]["options"]["num_predict"] == 64
        ollama.enqueue(faults.not_json())
        broken = http.post(f"/investigations/{ident}/chat", json={"message": "and now?"})
        assert broken.status_code == 503
        assert "sent a line that is not JSON" in broken.json()["error"]
