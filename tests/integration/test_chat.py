"""Follow-up chat about one investigation, as the on-call engineer uses it: over
HTTP (JSON and Server-Sent Events), from the CLI, across restarts, and within
the prompt budget however long the conversation gets."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sre_agent import tokens
from sre_agent.alerts import load_alert_file
from sre_agent.app import create_app
from sre_agent.settings import Settings
from sre_agent.store import Store
from tests.conftest import EXAMPLES, settings_env
from tests.support.fake_ollama import call, fail, say
from tests.support.model_scripts import investigator
from tests.support.service import ServiceProcess

FIRING = json.loads((EXAMPLES / "group-firing-homepage.json").read_text())
FATAL = "FATAL: config: required setting SITE_API_UPSTREAM_URL is missing"
NO_REPLY = fail(500, "fake ollama: no scripted reply left")


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Chat about one investigation of its own: no incident links the crash loop to its
    Deployment's alert (tests/integration/test_incidents_api.py covers that); and every
    read the chat's tools make reaches the fake API, whose log the tests read (no read
    cache answers from what the investigation read a second before)."""
    return functools.partial(make_settings, incidents=False, kube_read_cache=0)


def investigate(http: Any, ollama: Any) -> str:
    """Investigate the homepage group; the id of the KubePodCrashLooping investigation."""
    ollama.default = investigator
    response = http.post("/webhook/alert?wait=true", json=FIRING)
    assert response.status_code == 200, response.text
    ollama.default = NO_REPLY  # from here on every model reply is scripted by the test
    (found,) = [r for r in response.json()["results"] if r["alert_name"] == "KubePodCrashLooping"]
    assert found["status"] == "completed", found
    return str(found["investigation_id"])


def sse(response: httpx.Response) -> list[tuple[str, Any]]:
    events, event, data = [], "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                events.append((event, json.loads("\n".join(data))))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    return events


def stream(client: TestClient, ident: str, message: str) -> list[tuple[str, Any]]:
    with client.stream(
        "POST",
        f"/investigations/{ident}/chat",
        json={"message": message},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse(response)


@pytest.fixture
def client(make_settings):
    with TestClient(create_app(make_settings(chat_rate_per_minute=60))) as client:
        yield client


@pytest.fixture
def ident(client, ollama) -> str:
    return investigate(client, ollama)


def test_answer_is_grounded_in_the_stored_investigation(client, ollama, ident):
    before = client.get(f"/investigations/{ident}").json()
    first = ollama.chat_count
    ollama.enqueue(say("The api container exits: SITE_API_UPSTREAM_URL is not set."))

    response = client.post(f"/investigations/{ident}/chat", json={"message": "what changed?"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["investigation_id"] == ident
    assert body["answer"] == "The api container exits: SITE_API_UPSTREAM_URL is not set."
    assert body["tool_calls"] == [] and body["usage"]["calls"] == 1
    assert ollama.chat_count == first + 1  # nothing was re-run: one model call
    request = ollama.requests[first]
    system, question = request["messages"][0], request["messages"][-1]
    assert system["role"] == "system"
    assert "KubePodCrashLooping fired in homepage." in system["content"]  # the analysis
    assert FATAL in system["content"]
    assert "bruno-site-api-7d9f8c6b5-x2x4q" in system["content"]  # the alert and evidence
    assert question == {"role": "user", "content": "what changed?"}
    assert {t["function"]["name"] for t in request["tools"]} >= {"kubectl_describe", "promql_query"}
    assert "CANARY" not in ollama.received_text()
    after = client.get(f"/investigations/{ident}").json()
    assert after == before  # the investigation record itself is untouched


def test_a_tool_call_reaches_kubernetes_and_its_result_the_model(client, ollama, kube, ident):
    kube.requests.clear()
    seen: list[dict[str, Any]] = []

    def answer_from_tool(request: dict[str, Any]) -> Any:
        seen.append(request)
        node = [m for m in request["messages"] if m["role"] == "tool"][-1]["content"]
        return say(f"The node looks fine: {node.splitlines()[1]}")

    ollama.enqueue(call("kubectl_describe", kind="node", name="worker-1"), answer_from_tool)
    response = client.post(
        f"/investigations/{ident}/chat", json={"message": "is the node fine?"}
    ).json()

    assert ("GET", "/api/v1/nodes/worker-1") in [(m, p.split("?")[0]) for m, p in kube.requests]
    assert all(method == "GET" for method, _ in kube.requests)
    tool_result = [m for m in seen[0]["messages"] if m["role"] == "tool"][-1]
    # Cited by the id after the investigation's own: a follow-up can tell them apart.
    last = max(int(e["id"][1:]) for e in client.get(f"/investigations/{ident}").json()["evidence"])
    assert tool_result["content"].startswith(f"[E{last + 1}] status: ok")
    assert "worker-1" in tool_result["content"]
    assert response["answer"].startswith("The node looks fine: ")
    assert "worker-1" in response["answer"]
    assert [(c["name"], c["status"]) for c in response["tool_calls"]] == [
        ("kubectl_describe", "ok")
    ]


def test_history_is_kept_per_investigation_without_the_system_prompt(client, ollama, ident):
    assert client.get(f"/investigations/{ident}/chat").json() == {
        "investigation_id": ident,
        "messages": [],
    }
    ollama.enqueue(
        call("kubectl_events", namespace="homepage"), say("Mostly back-offs."), say("No.")
    )
    client.post(f"/investigations/{ident}/chat", json={"message": "any events?"})
    client.post(f"/investigations/{ident}/chat", json={"message": "anything else?"})

    history = client.get(f"/investigations/{ident}/chat").json()
    messages = history["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"] + [
        "user",
        "assistant",
    ]
    assert messages[0] == {"role": "user", "content": "any events?"}
    assert messages[1]["tool_calls"] == [
        {"name": "kubectl_events", "args": {"namespace": "homepage"}}
    ]
    assert messages[2]["name"] == "kubectl_events" and "BackOff" in messages[2]["content"]
    assert messages[3]["content"] == "Mostly back-offs." and messages[5]["content"] == "No."
    assert "sre-agent, answering" not in json.dumps(history)
    # The second turn saw the first one.
    last = ollama.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool"] + [
        "assistant",
        "user",
    ]


def test_answers_stream_as_server_sent_events(client, ollama, ident):
    answer = "The pod restarts because SITE_API_UPSTREAM_URL is missing from its config."
    pod = {"namespace": "homepage", "pod": "bruno-site-api-7d9f8c6b5-x2x4q", "previous": True}
    ollama.enqueue(call("kubectl_logs", **pod), say(answer))

    events = stream(client, ident, "show me the logs")

    kinds = [kind for kind, _ in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    assert kinds[-1] == "done"
    call_event = events[kinds.index("tool_call")][1]
    assert call_event == {"name": "kubectl_logs", "args": pod}
    result = events[kinds.index("tool_result")][1]
    assert result["name"] == "kubectl_logs" and result["size"] > 0
    assert result["status"] == "ok"
    assert "starting bruno-site-api" in ollama.requests[-1]["messages"][-1]["content"]
    tokens_ = [data["text"] for kind, data in events if kind == "token"]
    assert len(tokens_) > 1  # streamed, not one block
    assert "".join(tokens_) == answer
    done = events[-1][1]
    assert done["answer"] == answer
    assert done["usage"]["calls"] == 2 and done["usage"]["prompt_tokens"] > 0


def test_a_tool_call_written_as_text_is_shown_as_a_tool_call(client, ollama, ident):
    written = json.dumps({"name": "kubectl_events", "arguments": {"namespace": "homepage"}})
    ollama.enqueue(say(written), say("Back-offs only."))

    events = stream(client, ident, "events?")

    kinds = [k for k, _ in events]
    # The call as a call (its text never shown), then the answer word by word, then done.
    assert kinds[:2] == ["tool_call", "tool_result"] and kinds[-1] == "done"
    assert set(kinds[2:-1]) == {"token"} and len(kinds[2:-1]) == 2  # "Back-offs ", "only."
    assert "".join(data["text"] for kind, data in events if kind == "token") == "Back-offs only."
    assert events[0][1]["name"] == "kubectl_events"


def test_a_secret_the_model_streams_goes_out_masked(client, ollama, ident):
    """Tokens come from the model's raw stream: masked there, even split over chunks."""
    secret = "hunter2-" + "q7Zp" * 6
    ollama.enqueue(say(f"The pod's env has\nDB_PASSWORD={secret} set, and password: {secret}."))

    events = stream(client, ident, "what is in the env?")

    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    assert "DB_PASSWORD=" in streamed and "password:" in streamed
    assert secret not in streamed and secret[:12] not in streamed
    [done] = [data for kind, data in events if kind == "done"]
    assert secret not in done["answer"] and done["answer"] == streamed.strip()


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"message": ""}, 422, "message"),
        ({"message": "   \n"}, 422, "must not be empty"),
        ({"message": "x" * 4001}, 422, "4000"),
        ({}, 422, "message"),
        ({"message": 42}, 422, "message"),
    ],
)
def test_bad_messages_get_a_422(client, ident, body, code, message):
    response = client.post(f"/investigations/{ident}/chat", json=body)
    assert response.status_code == code
    assert message in response.json()["error"]


def test_unknown_investigation_is_404(client):
    for response in (
        client.post("/investigations/nope/chat", json={"message": "hi"}),
        client.get("/investigations/nope/chat"),
    ):
        assert response.status_code == 404
        assert "nope" in response.json()["error"]


def test_an_unfinished_investigation_is_409(client, ollama):
    payload = load_alert_file(json.dumps(FIRING))
    store = client.app.state.services.store
    record, _ = store.create_or_get(payload.alerts[0], payload.groupKey)  # queued, not started

    response = client.post(f"/investigations/{record.id}/chat", json={"message": "hi"})

    assert response.status_code == 409
    assert "still queued" in response.json()["error"]
    assert ollama.chat_count == 0


def test_ollama_down_is_a_readable_error_and_the_service_stays_up(client, ollama, ident):
    ollama.stop_accepting()

    plain = client.post(f"/investigations/{ident}/chat", json={"message": "what changed?"})
    events = stream(client, ident, "what changed?")

    assert plain.status_code == 503
    error = plain.json()["error"]
    assert ollama.url in error and "SRE_AGENT_OLLAMA_URL" in error
    assert events == [("error", {"error": events[0][1]["error"]})]
    assert ollama.url in events[0][1]["error"] and "SRE_AGENT_OLLAMA_URL" in events[0][1]["error"]
    assert client.get("/healthz").status_code == 200
    assert client.get(f"/investigations/{ident}/chat").json()["messages"] == []  # no dangling turn

    ollama.resume()
    ollama.enqueue(say("Back again."))
    response = client.post(f"/investigations/{ident}/chat", json={"message": "and now?"})
    assert response.json()["answer"] == "Back again."
    assert ollama.requests[-1]["messages"][1:] == [{"role": "user", "content": "and now?"}]


def test_the_prompt_stays_within_the_budget_over_many_long_turns(make_settings, ollama):
    budget = 4000
    settings = make_settings(prompt_budget_tokens=budget, chat_rate_per_minute=60)
    with TestClient(create_app(settings)) as client:
        ident = investigate(client, ollama)
        first = ollama.chat_count
        for turn in range(16):
            count = 120 if turn == 7 else 25  # one question at the 4,000-character limit
            words = " ".join(f"pod-{turn}-{i} restarted at 03:{i % 60:02d}" for i in range(count))
            if turn % 4 == 1:  # now and then a large tool result
                ollama.enqueue(
                    call("kubectl_logs", pod="bruno-site-api-7d9f8c6b5-x2x4q", tail_lines=400)
                )
            ollama.enqueue(say(f"Answer {turn}: {words} {words}"))
            body = client.post(
                f"/investigations/{ident}/chat",
                json={"message": f"Question {turn}: {words}"[:4000]},
            ).json()
            assert body["answer"].startswith(f"Answer {turn}: ")

        sizes = [
            tokens.count_chat(r["messages"], r.get("tools") or []) for r in ollama.requests[first:]
        ]
        assert max(sizes) <= budget, sizes
        assert sizes[-1] > budget * 0.6  # the room is used, not thrown away
        last = ollama.requests[-1]["messages"]
        assert last[-1]["content"] == f"Question 15: {words}"
        kept = [m["content"] for m in last if m["role"] == "user"]
        assert len(kept) > 1 and kept[0].startswith("[") and "earlier messages left out" in kept[0]
        history = client.get(f"/investigations/{ident}/chat").json()["messages"]
        assert sum(m["role"] == "user" for m in history) == 16  # the stored history keeps all


def test_chat_and_store_writes_share_the_database(client, ollama, ident, make_settings):
    """The checkpointer (aiosqlite) and the store (sqlite3) write the same WAL file at once."""
    other = Store(make_settings().database_path)
    other.open()
    payload = load_alert_file(json.dumps(FIRING))
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            try:
                alert = payload.alerts[0].model_copy(update={"fingerprint": f"fp-{n}"})
                other.create_or_get(alert, "g")
                n += 1
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for turn in range(8):
            ollama.enqueue(call("kubectl_events", namespace=f"ns{turn}"), say(f"ok {turn}"))
            response = client.post(f"/investigations/{ident}/chat", json={"message": f"q{turn}"})
            assert response.status_code == 200, response.text
    finally:
        stop.set()
        writer.join()
        other.close()
    assert errors == []
    assert len(client.get(f"/investigations/{ident}/chat").json()["messages"]) == 8 * 4
    assert client.get("/investigations?limit=500").json()["count"] > 3


def test_history_survives_a_restart_and_the_cli_streams_answers(make_settings, ollama, tmp_path):
    env = settings_env(make_settings())
    with ServiceProcess(env, tmp_path / "first.log") as service:
        ident = investigate(httpx.Client(base_url=service.url, timeout=60), ollama)
        ollama.enqueue(say("It crashes on start: SITE_API_UPSTREAM_URL is missing."))
        first = httpx.post(
            f"{service.url}/investigations/{ident}/chat", json={"message": "why?"}, timeout=60
        )
        assert first.status_code == 200, service.log()

    with ServiceProcess(env, tmp_path / "second.log") as service:
        history = httpx.get(f"{service.url}/investigations/{ident}/chat").json()["messages"]
        assert history == [
            {"role": "user", "content": "why?"},
            {
                "role": "assistant",
                "content": "It crashes on start: SITE_API_UPSTREAM_URL is missing.",
            },
        ]
        ollama.enqueue(
            call("kubectl_describe", kind="node", name="worker-1"),
            say("The node worker-1 is Ready; the pod is the problem."),
        )
        cli = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "chat", ident, "--url", service.url]
            + ["--message", "is the node fine?"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout == "The node worker-1 is Ready; the pod is the problem.\n"
        assert "[tool kubectl_describe(kind='node', name='worker-1')]" in cli.stderr
        # The model saw the turn from before the restart.
        seen = [m["content"] for m in ollama.requests[-1]["messages"] if m["role"] == "user"]
        assert seen == ["why?", "is the node fine?"]

        refused = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "chat", "nope", "--url", service.url]
            + ["-m", "hi"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and "no investigation with id 'nope'" in refused.stderr


def test_cli_interactive_session_and_unreachable_service(make_settings, ollama, tmp_path):
    with ServiceProcess(settings_env(make_settings()), tmp_path / "svc.log") as service:
        ident = investigate(httpx.Client(base_url=service.url, timeout=60), ollama)
        ollama.enqueue(say("First answer."), say("Second answer."))
        session = subprocess.run(
            [sys.executable, "-m", "sre_agent.cli", "chat", ident, "--url", service.url],
            input="what changed?\nand the node?\n\nnot asked\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert session.returncode == 0, session.stderr
    assert session.stdout == "> First answer.\n> Second answer.\n> "
    gone = subprocess.run(
        [sys.executable, "-m", "sre_agent.cli", "chat", ident, "--url", service.url, "-m", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1 and "cannot reach the service" in gone.stderr


async def test_chat_history_writes_never_stall_the_store(make_settings):
    """The checkpointer and the store share one SQLite file; the store's calls run on
    the event loop, so the checkpointer must never hold the write lock across an await."""
    import sqlite3

    from langgraph.checkpoint.base import empty_checkpoint
    from sre_agent_tools import ToolDeps

    from sre_agent.alerts import parse_payload
    from sre_agent.chat import ChatService
    from sre_agent.prompts import load_prompts
    from sre_agent.store import Store

    settings = make_settings()
    store = Store(settings.database_path)
    store.open()
    chat = ChatService(settings, load_prompts(), ToolDeps(), store)
    await chat.open()
    stop = False

    async def history_writes() -> None:
        step = 0
        while not stop:
            config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            await chat._saver.aput(config, empty_checkpoint(), {"source": "loop", "step": step}, {})
            step += 1

    writer = asyncio.create_task(history_writes())
    await asyncio.sleep(0.05)
    errors = []
    try:
        for i in range(200):
            alert = parse_payload(
                {
                    "version": "4",
                    "status": "firing",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {"alertname": "A", "severity": "critical"},
                            "startsAt": "2026-11-27T00:00:00Z",
                            "fingerprint": f"f{i}",
                        }
                    ],
                }
            ).alerts[0]
            try:
                store.create_or_get(alert)
            except sqlite3.OperationalError as exc:
                errors.append(str(exc))
            await asyncio.sleep(0)
    finally:
        stop = True
        await writer
        await chat.close()
        store.close()
    # A lock held across an await would block the loop (and so its own release) until
    # the store's 5 s busy timeout: "database is locked". None came.
    assert not errors
