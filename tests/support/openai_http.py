"""The OpenAI-compatible chat API as the fake speaks it under ``/v1`` -- what Ollama serves
there (``openai/openai.go``, ``middleware/openai.go`` in Ollama 0.12), and llama.cpp's
llama-server, vLLM and LM Studio too: the bodies of ``/v1/models`` and
``/v1/chat/completions`` (``chat.completion.chunk`` objects for Server-Sent Events, or one
``chat.completion``) and OpenAI's error body. The HTTP plumbing is
:mod:`tests.support.ollama_http`'s; the replies and token estimates are
:mod:`tests.support.ollama_replies`' (shared with ``/api/chat``).

Shapes follow what the ``openai`` client and ``langchain_openai.ChatOpenAI`` parse:

- a stream opens with a ``{"role": "assistant", "content": ""}`` delta, then content over a
  few chunks, one delta per tool call (``index``, ``id``, ``type``, ``function.name``,
  ``function.arguments`` as a JSON string), then an empty delta with ``finish_reason``;
  with ``stream_options.include_usage`` one more chunk has ``choices: []`` and ``usage``;
- ``finish_reason`` is ``"tool_calls"`` when the reply calls tools, else the reply's
  ``done_reason`` (``"stop"``, ``"length"``, ...), as Ollama maps it;
- thinking goes out as ``reasoning`` (Ollama's field; the clients keep it but ``ChatOpenAI``
  does not surface it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from tests.support.ollama_replies import Say, stream_pieces, usage_counts

SYSTEM_FINGERPRINT = "fp_ollama"
# What _tag() in ollama_http says the models were modified at: 2025-06-01T12:00:00Z.
MODELS_CREATED = 1748779200


def error_body(message: str, error_type: str = "api_error") -> dict[str, Any]:
    """OpenAI's error body. Ollama before 0.18 says ``api_error`` whatever the status (it
    rewrote every ``/api`` error as a 500's); 0.18 and later say ``not_found_error`` for
    404 and ``invalid_request_error`` for 400."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def model_object(name: str) -> dict[str, Any]:
    # Ollama's owned_by is the name's namespace: "library" unless it is "user/model".
    owner = name.split("/")[-2] if "/" in name else "library"
    return {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": owner}


def models_list(names: Sequence[str]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(n) for n in names]}


def wants_usage(request: dict[str, Any]) -> bool:
    """Whether a streaming request asked for the final usage chunk."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def finish_reason(reply: Say) -> str | None:
    if reply.tool_calls:
        return "tool_calls"
    return reply.done_reason or None


def usage(request: dict[str, Any], reply: Say) -> dict[str, int]:
    prompt, output = usage_counts(request, reply)
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def tool_calls(reply: Say) -> list[dict[str, Any]]:
    """The reply's tool calls in OpenAI's shape, each with its ``index``."""
    return [
        {
            "index": i,
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(reply.tool_calls)
    ]


def _envelope(request: dict[str, Any], obj: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": obj,
        "created": int(time.time()),
        "model": request.get("model"),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def stream_chunks(request: dict[str, Any], reply: Say) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply (``[DONE]`` not included)."""
    head = _envelope(request, "chat.completion.chunk")

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return {**head, "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    if reply.thinking:
        for piece in stream_pieces(reply.thinking):
            yield chunk({"reasoning": piece})
    if reply.content:
        for piece in stream_pieces(reply.content):
            yield chunk({"content": piece})
    for call in tool_calls(reply):
        yield chunk({"tool_calls": [call]})
    yield chunk({}, finish_reason(reply))
    if wants_usage(request):
        yield {**head, "choices": [], "usage": usage(request, reply)}


def completion(request: dict[str, Any], reply: Say) -> dict[str, Any]:
    """The one ``chat.completion`` object of a reply that is not streamed."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.thinking:
        message["reasoning"] = reply.thinking
    if reply.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in call.items() if k != "index"} for call in tool_calls(reply)
        ]
    return {
        **_envelope(request, "chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply)}],
        "usage": usage(request, reply),
    }


def sse_event(obj: Any) -> bytes:
    """One Server-Sent Event: ``data: <obj as JSON>`` (a ``str`` is sent as it is)."""
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return b"data: " + data.encode() + b"\n\n"


SSE_DONE = sse_event("[DONE]")
