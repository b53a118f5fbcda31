"""``POST /investigations/{id}/chat`` (JSON or Server-Sent Events) and its history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, Field, field_validator

from sre_agent.api.deps import ChatDep, StoreDep, require_json
from sre_agent.api.schemas import CHAT_EVENTS, ChatAnswer, ChatHistory, errors
from sre_agent.chat import MAX_MESSAGE_CHARS, ChatUnavailable
from sre_agent.chat_events import Event
from sre_agent.models import Investigation
from sre_agent.store import ACTIVE, Store

router = APIRouter()


class ChatRequest(BaseModel):
    message: str = Field(max_length=MAX_MESSAGE_CHARS)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (not valid Unicode)") from None
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        return value


async def _investigation(store: Store, ident: str) -> Investigation:
    record = await asyncio.to_thread(store.get, ident)
    if record is None:
        raise HTTPException(404, f"no investigation with id {ident[:40]!r}")
    return record


@router.get(
    "/investigations/{ident}/chat",
    response_model=ChatHistory,
    response_model_exclude_unset=True,  # a user's message has no tool_calls, not null ones
    responses=errors(404, 422),
)
async def chat_history(ident: str, store: StoreDep, talk: ChatDep) -> dict[str, Any]:
    await _investigation(store, ident)
    return {"investigation_id": ident, "messages": await talk.history(ident)}


@router.post(
    "/investigations/{ident}/chat",
    response_model=ChatAnswer,
    responses={
        200: {
            "description": "The answer: JSON, or with `Accept: text/event-stream` streamed as"
            f" it comes. {CHAT_EVENTS}",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(404, 409, 413, 415, 422, 503),
    },
)
async def chat(
    ident: str, body: ChatRequest, request: Request, store: StoreDep, talk: ChatDep
) -> dict[str, Any] | JSONResponse | EventSourceResponse:
    require_json(request)
    record = await _investigation(store, ident)
    if record.status in ACTIVE:
        # Its evidence is stored when it finishes: answering now would be answering blind.
        raise HTTPException(
            409, f"investigation {ident} is still {record.status}; ask when it has finished"
        )
    if "text/event-stream" in request.headers.get("accept", ""):
        return EventSourceResponse(
            _sse(talk.ask(ident, body.message)),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        return await talk.answer(ident, body.message)
    except ChatUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    async for kind, data in events:
        yield format_sse_event(event=kind, data_str=json.dumps(data))
