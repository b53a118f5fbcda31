"""The fake Ollama behaves like Ollama for the real ``ChatOllama`` and ``ollama`` clients."""

from __future__ import annotations

import json
import math

import httpx
import ollama
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

from tests.support.fake_ollama import (
    DEFAULT_MODEL,
    FakeOllama,
    answer_json,
    call,
    calls,
    fail,
    fake_ollama_fixture,  # noqa: F401 - provides the fake_ollama fixture
    free_port,
    hang,
    prompt_eval_count,
    say,
)


def chat(fake: FakeOllama, **kwargs: object) -> ChatOllama:
    return ChatOllama(model=DEFAULT_MODEL, base_url=fake.url, **kwargs)


@tool
async def pod_status(namespace: str, pod: str) -> str:
    """Show a pod's phase and restarts."""
    return f"{namespace}/{pod}: Running, 0 restarts"


async def test_ainvoke_returns_content_and_usage(fake_ollama: FakeOllama) -> None:
    system, user, answer = "You are an SRE.", "Why is checkout slow?", "The database is saturated."
    fake_ollama.enqueue(say(answer))

    reply = await chat(fake_ollama).ainvoke([SystemMessage(system), HumanMessage(user)])

    assert reply.content == answer
    assert reply.response_metadata["done_reason"] == "stop"
    expected_in = math.ceil((len(system) + len(user)) / 4)
    expected_out = math.ceil(len(answer) / 4)
    assert reply.usage_metadata == {
        "input_tokens": expected_in,
        "output_tokens": expected_out,
        "total_tokens": expected_in + expected_out,
    }
    request = fake_ollama.requests[0]
    assert request["model"] == DEFAULT_MODEL and request["stream"] is True
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    # ChatOllama calls nothing but /api/chat unless validate_model_on_init=True.
    assert fake_ollama.paths == ["POST /api/chat"]


def test_sync_invoke_and_options(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue("plain strings are say()")

    reply = chat(fake_ollama, temperature=0, num_ctx=8192).invoke("hi")

    assert reply.content == "plain strings are say()"
    assert fake_ollama.requests[0]["options"] == {"temperature": 0, "num_ctx": 8192}


async def test_bound_tools_reach_the_fake_and_calls_come_back(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(call("pod_status", namespace="shop", pod="checkout-1"))

    reply = await chat(fake_ollama).bind_tools([pod_status]).ainvoke("check checkout")

    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("pod_status", {"namespace": "shop", "pod": "checkout-1"})
    ]
    tools = fake_ollama.requests[0]["tools"]
    assert tools[0]["type"] == "function"
    assert tools[0]["function"]["name"] == "pod_status"
    assert set(tools[0]["function"]["parameters"]["properties"]) == {"namespace", "pod"}
    # The tool schemas count toward the prompt tokens.
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == prompt_eval_count(fake_ollama.requests[0])
    assert reply.usage_metadata["input_tokens"] > math.ceil(len("check checkout") / 4)


async def test_several_calls_with_content(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        calls(
            [
                ("pod_status", {"namespace": "a", "pod": "p"}),
                ("pod_status", {"namespace": "b", "pod": "q"}),
            ],
            content="Checking both.",
        )
    )

    reply = await chat(fake_ollama).bind_tools([pod_status]).ainvoke("go")

    assert reply.content == "Checking both."
    assert [c["args"]["namespace"] for c in reply.tool_calls] == ["a", "b"]


async def test_astream_yields_several_chunks(fake_ollama: FakeOllama) -> None:
    text = "Memory limit too low for the JVM heap; raise it to 2Gi."
    fake_ollama.enqueue(say(text))

    chunks = [chunk async for chunk in chat(fake_ollama).astream("why OOM?")]

    assert len([c for c in chunks if c.content]) >= 3
    assert "".join(str(c.content) for c in chunks) == text
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1  # only Ollama's final done chunk carries the counts
    assert usage[0]["output_tokens"] == math.ceil(len(text) / 4)


async def test_format_schema_is_sent(fake_ollama: FakeOllama) -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
    }
    fake_ollama.enqueue(answer_json({"summary": "disk full"}))

    reply = await chat(fake_ollama, format=schema).ainvoke("analyse")

    assert fake_ollama.requests[0]["format"] == schema
    assert json.loads(str(reply.content)) == {"summary": "disk full"}


async def test_server_error_raises_response_error(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(fail(500, "llama runner process has terminated"))

    with pytest.raises(ollama.ResponseError) as info:
        await chat(fake_ollama).ainvoke("hi")

    assert info.value.status_code == 500
    assert info.value.error == "llama runner process has terminated"


async def test_unscripted_call_fails_loudly_and_default_is_settable(
    fake_ollama: FakeOllama,
) -> None:
    with pytest.raises(ollama.ResponseError, match="no scripted reply left"):
        await chat(fake_ollama).ainvoke("hi")

    fake_ollama.default = say("fallback")
    assert (await chat(fake_ollama).ainvoke("hi")).content == "fallback"


async def test_unknown_model_is_404_and_consumes_no_reply(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(say("unused"))

    with pytest.raises(ollama.ResponseError) as info:
        await ChatOllama(model="llama9:70b", base_url=fake_ollama.url).ainvoke("hi")

    assert info.value.status_code == 404
    assert info.value.error == 'model "llama9:70b" not found, try pulling it first'
    assert fake_ollama.pending == 1


def test_validate_model_on_init_lists_tags(fake_ollama: FakeOllama) -> None:
    chat(fake_ollama, validate_model_on_init=True)
    assert fake_ollama.paths == ["GET /api/tags"]

    # pydantic's ValidationError, a ValueError, wrapping ChatOllama's own ValueError.
    with pytest.raises(ValueError, match="not found in Ollama"):
        ChatOllama(model="missing", base_url=fake_ollama.url, validate_model_on_init=True)


async def test_callable_reply_sees_the_request(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(lambda request: say("echo: " + request["messages"][-1]["content"]))

    reply = await chat(fake_ollama).ainvoke("ping")

    assert reply.content == "echo: ping"


async def test_everything_sent_is_recorded_for_grepping(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(say("ok"))

    await chat(fake_ollama).ainvoke("password=hunter2 leaked into the prompt")

    assert "hunter2" in fake_ollama.received_text()
    assert fake_ollama.chat_count == 1 and len(fake_ollama.raw_bodies) == 1


async def test_hang_trips_the_client_read_timeout(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(hang(5), say("after"))

    with pytest.raises(httpx.ReadTimeout):
        await chat(fake_ollama, client_kwargs={"timeout": 0.2}).ainvoke("hi")

    assert (await chat(fake_ollama).ainvoke("hi")).content == "after"


async def test_ollama_down_busy_dropping_and_back(fake_ollama: FakeOllama) -> None:
    model = chat(fake_ollama)
    fake_ollama.unavailable = "busy"
    with pytest.raises(ollama.ResponseError) as info:
        await model.ainvoke("hi")
    assert info.value.status_code == 503

    fake_ollama.unavailable = "drop"
    with pytest.raises(httpx.RemoteProtocolError):
        await model.ainvoke("hi")

    fake_ollama.unavailable = None
    fake_ollama.stop_accepting()
    with pytest.raises(httpx.ConnectError):
        await model.ainvoke("hi")

    fake_ollama.resume()
    fake_ollama.enqueue(say("back"))
    assert (await model.ainvoke("hi")).content == "back"


async def test_nothing_listening_is_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    # ChatOllama streams, and the ollama client's streaming path lets httpx's error through.
    with pytest.raises(httpx.ConnectError):
        await ChatOllama(model=DEFAULT_MODEL, base_url=url).ainvoke("hi")
    # Its non-streaming calls translate it to the builtin ConnectionError.
    with pytest.raises(ConnectionError):
        await ollama.AsyncClient(host=url).chat(model=DEFAULT_MODEL, messages=[], stream=False)


async def test_plain_ollama_client_endpoints(fake_ollama: FakeOllama) -> None:
    client = ollama.AsyncClient(host=fake_ollama.url)
    fake_ollama.enqueue(call("pod_status", namespace="n", pod="p"))

    response = await client.chat(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "q"}], stream=False
    )
    tags = await client.list()
    show = await client.show(DEFAULT_MODEL)
    async with httpx.AsyncClient(base_url=fake_ollama.url) as http:
        version = (await http.get("/api/version")).json()
        root = await http.get("/")

    assert response.done and response.done_reason == "stop"
    assert response.message.tool_calls is not None
    assert response.message.tool_calls[0].function.arguments == {"namespace": "n", "pod": "p"}
    assert [m.model for m in tags.models] == [DEFAULT_MODEL]
    assert show.capabilities == ["completion", "tools"]
    assert "version" in version and root.text == "Ollama is running"
    assert fake_ollama.requests[0]["stream"] is False


async def test_create_agent_end_to_end(fake_ollama: FakeOllama) -> None:
    ran: list[int] = []

    @tool
    async def double(x: int) -> str:
        """Double a number."""
        ran.append(x)
        return f"doubled: {x * 2}"

    fake_ollama.enqueue(call("double", x=1), say("done"))
    agent = create_agent(model=chat(fake_ollama), tools=[double])

    result = await agent.ainvoke({"messages": [HumanMessage("double 1")]})

    assert ran == [1]
    assert result["messages"][-1].content == "done"
    assert any(isinstance(m, ToolMessage) for m in result["messages"])
    assert fake_ollama.chat_count == 2
    second = fake_ollama.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[1]["tool_calls"][0]["function"]["name"] == "double"
    assert second[2]["content"] == "doubled: 2"


async def test_broken_script_is_reported_to_the_client(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(lambda request: 1 / 0)

    with pytest.raises(ollama.ResponseError, match="ZeroDivisionError"):
        await chat(fake_ollama).ainvoke("hi")
