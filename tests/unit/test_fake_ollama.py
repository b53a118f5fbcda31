"""The fake Ollama behaves like Ollama for the real ``ChatOllama`` and ``ollama`` clients, and
like Ollama's OpenAI-compatible ``/v1`` API for ``ChatOpenAI`` and the ``openai`` client."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import ollama
import openai
import openai.resources.beta.beta  # noqa: F401 - ~1 s to import: at collection, not in a test
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

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


# --- the OpenAI-compatible API under /v1 (ChatOpenAI, the openai client) -------------------


def chat_openai(fake: FakeOllama, **kwargs: Any) -> ChatOpenAI:
    # No retries: the openai client retries 5xx and dropped connections twice, with backoff.
    return ChatOpenAI(
        model=DEFAULT_MODEL, base_url=fake.url + "/v1", api_key="x", max_retries=0, **kwargs
    )


def openai_client(fake: FakeOllama, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0, **kwargs)


async def test_openai_client_streams_content_finish_and_usage(fake_ollama: FakeOllama) -> None:
    text = "Memory limit too low for the JVM heap; raise it to 2Gi."
    fake_ollama.enqueue(say(text))

    stream = await openai_client(fake_ollama).chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "why OOM?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len([d for d in deltas if d]) >= 3 and "".join(d or "" for d in deltas) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == math.ceil(len("why OOM?") / 4)
    assert chunks[-1].usage.completion_tokens == math.ceil(len(text) / 4)
    request = fake_ollama.requests[0]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert fake_ollama.paths == ["POST /v1/chat/completions"]


def test_sync_openai_client_tool_calls_not_streamed(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(
        calls(
            [("pod_status", {"namespace": "a", "pod": "p"}), ("pod_status", {"namespace": "b"})],
            content="Checking both.",
        )
    )
    client = openai.OpenAI(base_url=fake_ollama.url + "/v1", api_key="x", max_retries=0)

    response = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "go"}]
    )

    choice = response.choices[0]
    assert response.object == "chat.completion" and choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    tool_calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in tool_calls] == [  # type: ignore[union-attr]
        {"namespace": "a", "pod": "p"},
        {"namespace": "b"},
    ]
    assert all(c.id.startswith("call_") and c.type == "function" for c in tool_calls)
    assert response.usage is not None
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert "stream" not in fake_ollama.requests[0]  # absent means not streamed


@pytest.mark.parametrize("streaming", [True, False])
async def test_chat_openai_content_and_usage(fake_ollama: FakeOllama, streaming: bool) -> None:
    system, user, answer = "You are an SRE.", "Why is checkout slow?", "The database is saturated."
    fake_ollama.enqueue(say(answer))

    reply = await chat_openai(fake_ollama, streaming=streaming, stream_usage=True).ainvoke(
        [SystemMessage(system), HumanMessage(user)]
    )

    assert reply.content == answer
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == DEFAULT_MODEL
    expected_in = math.ceil((len(system) + len(user)) / 4)
    expected_out = math.ceil(len(answer) / 4)
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == (
        expected_in,
        expected_out,
    )
    request = fake_ollama.requests[0]
    assert request["stream"] is streaming
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    # stream_usage=True is what makes ChatOpenAI ask for the usage chunk.
    assert request.get("stream_options") == ({"include_usage": True} if streaming else None)


async def test_chat_openai_streams_several_chunks_and_one_usage(fake_ollama: FakeOllama) -> None:
    text = "Memory limit too low for the JVM heap; raise it to 2Gi."
    fake_ollama.enqueue(say(text))

    model = chat_openai(fake_ollama, streaming=True, stream_usage=True)
    chunks = [chunk async for chunk in model.astream("why OOM?")]

    assert len([c for c in chunks if c.content]) >= 3
    assert "".join(str(c.content) for c in chunks) == text
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1 and usage[0]["output_tokens"] == math.ceil(len(text) / 4)


@pytest.mark.parametrize("streaming", [True, False])
async def test_chat_openai_bound_tools_and_calls(fake_ollama: FakeOllama, streaming: bool) -> None:
    fake_ollama.enqueue(call("pod_status", namespace="shop", pod="checkout-1"))

    model = chat_openai(fake_ollama, streaming=streaming, stream_usage=True)
    reply = await model.bind_tools([pod_status]).ainvoke("check checkout")

    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("pod_status", {"namespace": "shop", "pod": "checkout-1"})
    ]
    assert str(reply.tool_calls[0]["id"]).startswith("call_")
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    request = fake_ollama.requests[0]
    assert request["tools"][0]["function"]["name"] == "pod_status"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == prompt_eval_count(request)
    assert reply.usage_metadata["input_tokens"] > math.ceil(len("check checkout") / 4)


@pytest.mark.parametrize("streaming", [True, False])
async def test_chat_openai_max_tokens_cuts_the_reply(
    fake_ollama: FakeOllama, streaming: bool
) -> None:
    fake_ollama.enqueue(say("x" * 40))

    model = chat_openai(fake_ollama, streaming=streaming, stream_usage=True, max_tokens=3)
    reply = await model.ainvoke("hi")

    assert reply.content == "x" * 12
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 3
    # ChatOpenAI sends max_tokens as max_completion_tokens.
    assert fake_ollama.requests[0]["max_completion_tokens"] == 3
    assert "max_tokens" not in fake_ollama.requests[0]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_openai_client_either_cap_field(fake_ollama: FakeOllama, field: str) -> None:
    fake_ollama.enqueue(call("pod_status", namespace="n" * 80, pod="p"))

    response = await openai_client(fake_ollama).chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={field: 5},
    )

    # The tool call it never finished is not sent.
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.tool_calls is None
    assert response.usage is not None and response.usage.completion_tokens == 5


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_openai_fail_is_api_status_error(fake_ollama: FakeOllama, status: int) -> None:
    fake_ollama.enqueue(fail(status, "llama runner process has terminated"))

    with pytest.raises(openai.APIStatusError) as info:
        await openai_client(fake_ollama).chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )

    assert info.value.status_code == status
    assert info.value.body == {
        "message": "llama runner process has terminated",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    # ChatOpenAI raises its own subclasses of the openai errors.
    fake_ollama.enqueue(fail(status, "again"))
    with pytest.raises(openai.APIStatusError, match="again"):
        await chat_openai(fake_ollama, streaming=True).ainvoke("hi")


async def test_openai_unknown_model_is_404_and_consumes_no_reply(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(say("unused"))

    with pytest.raises(openai.NotFoundError) as info:
        await openai_client(fake_ollama).chat.completions.create(
            model="llama9:70b", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 404
    assert (
        info.value.message == 'Error code: 404 - model "llama9:70b" not found, try pulling it first'
    )
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "api_error"

    model = ChatOpenAI(model="llama9:70b", base_url=fake_ollama.url + "/v1", api_key="x")
    with pytest.raises(openai.NotFoundError):
        await model.ainvoke("hi")
    assert fake_ollama.pending == 1


async def test_v1_models_lists_the_models() -> None:
    with FakeOllama(models=[DEFAULT_MODEL, "llama3.2"]) as fake:
        client = openai_client(fake)
        models = await client.models.list()
        one = await client.models.retrieve("llama3.2")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("missing")

    assert models.object == "list"
    assert [(m.id, m.object, m.owned_by) for m in models.data] == [
        (DEFAULT_MODEL, "model", "library"),
        ("llama3.2", "model", "library"),
    ]
    assert all(isinstance(m.created, int) for m in models.data)
    assert one.id == "llama3.2"
    assert fake.paths[0] == "GET /v1/models"


async def test_openai_busy_dropping_hanging_and_back(fake_ollama: FakeOllama) -> None:
    client = openai_client(fake_ollama, timeout=0.2)
    messages: Any = [{"role": "user", "content": "hi"}]

    fake_ollama.unavailable = "busy"
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model=DEFAULT_MODEL, messages=messages)
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and "server busy" in info.value.body["message"]

    fake_ollama.unavailable = "drop"
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=DEFAULT_MODEL, messages=messages)

    fake_ollama.unavailable = None
    fake_ollama.enqueue(hang(5), say("after"))
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model=DEFAULT_MODEL, messages=messages, stream=True)
    response = await client.chat.completions.create(model=DEFAULT_MODEL, messages=messages)
    assert response.choices[0].message.content == "after"


async def test_openai_callable_reply_sees_the_openai_request(fake_ollama: FakeOllama) -> None:
    seen: list[dict[str, Any]] = []

    def reply(request: dict[str, Any]) -> Any:
        seen.append(request)
        return say("parts: " + request["messages"][-1]["content"][0]["text"])

    fake_ollama.enqueue(reply)
    content: Any = [{"type": "text", "text": "ping "}, {"type": "text", "text": "pong"}]

    response = await openai_client(fake_ollama).chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": content}], temperature=0
    )

    assert response.choices[0].message.content == "parts: ping "
    assert seen == fake_ollama.requests and seen[0]["temperature"] == 0
    # A list of content parts counts by its text.
    assert response.usage is not None
    assert response.usage.prompt_tokens == math.ceil(len("ping pong") / 4)
    assert prompt_eval_count(seen[0]) == math.ceil(len("ping pong") / 4)


@pytest.mark.parametrize("streaming", [True, False])
async def test_chat_openai_response_format_is_recorded(
    fake_ollama: FakeOllama, streaming: bool
) -> None:
    schema = {
        "title": "Summary",
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"],
    }
    fake_ollama.enqueue(answer_json({"summary": "disk full"}))

    model = chat_openai(fake_ollama, streaming=streaming)
    result = await model.with_structured_output(schema, method="json_schema").ainvoke("analyse")

    assert result == {"summary": "disk full"}
    response_format = fake_ollama.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"] == schema["properties"]


async def test_create_agent_end_to_end_over_v1(fake_ollama: FakeOllama) -> None:
    @tool
    async def double(x: int) -> str:
        """Double a number."""
        return f"doubled: {x * 2}"

    fake_ollama.enqueue(call("double", x=1), say("done"))
    model = chat_openai(fake_ollama, streaming=True, stream_usage=True)
    agent = create_agent(model=model, tools=[double])

    result = await agent.ainvoke({"messages": [HumanMessage("double 1")]})

    assert result["messages"][-1].content == "done"
    second = fake_ollama.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert json.loads(second[1]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert second[2]["tool_call_id"] == second[1]["tool_calls"][0]["id"]
    assert second[2]["content"] == "doubled: 2"


async def test_broken_script_is_reported_in_openai_form(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(lambda request: 1 / 0)

    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        await openai_client(fake_ollama).chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
