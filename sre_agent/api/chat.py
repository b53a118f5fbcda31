"""``POST /investigations/{id}/chat`` (JSON or Server-Sent Events) and its history.

A question is admitted by the chat's limits (:mod:`sre_agent.chat_limits`) before any
work: over the user's rate, or with every slot answering, it is a 429 with
``Retry-After``. The slot is held while the answer is made -- for a stream, until the
stream ends or its client goes away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, Field, field_validator
from starlette.types import Receive, Scope, Send

from sre_agent.api.deps import ChatDep, MetricsDep, StoreDep, require_json
from sre_agent.api.schemas import CHAT_EVENTS, ChatAnswer, ChatHistory, clean_text, errors
from sre_agent.auth import User, UserDep
from sre_agent.chat import MAX_MESSAGE_CHARS, ChatService, ChatUnavailable
from sre_agent.chat_events import Event
from sre_agent.chat_limits import ChatRefused, Slot
from sre_agent.metrics import Metrics
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
        return clean_text(value)


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


#: The 429's documentation: when to ask again.
_REFUSED = {
    "headers": {
        "Retry-After": {
            "description": "Whole seconds until a question will be taken",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}


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
        429: {**errors(429)[429], **_REFUSED},
    },
)
async def chat(
    ident: str,
    body: ChatRequest,
    request: Request,
    store: StoreDep,
    talk: ChatDep,
    metrics: MetricsDep,
    user: UserDep,
) -> dict[str, Any] | JSONResponse | EventSourceResponse:
    require_json(request)
    slot = _admit(talk, metrics, _asker(user, request))
    held: Slot | None = slot
    try:
        record = await _investigation(store, ident)
        if record.status in ACTIVE:
            # Its evidence is stored when it finishes: answering now would be answering blind.
            raise HTTPException(
                409, f"investigation {ident} is still {record.status}; ask when it has finished"
            )
        if "text/event-stream" in request.headers.get("accept", ""):
            response = _HeldStream(
                _sse(talk.ask(ident, body.message), slot),
                slot,
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
            held = None  # the stream has it now, and frees it when it ends
            return response
        try:
            return await talk.answer(ident, body.message)
        except ChatUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
    finally:
        if held is not None:
            held.release()


def _asker(user: User, request: Request) -> str:
    """Whose rate a question counts against: the user's name, or with no authentication
    configured (everyone is anonymous) the client's address."""
    if user.via == "anonymous":
        return f"address:{request.client.host if request.client else 'unknown'}"
    return f"user:{user.name}"


def _admit(talk: ChatService, metrics: Metrics, asker: str) -> Slot:
    try:
        return talk.limits.admit(asker)
    except ChatRefused as refused:
        metrics.count_chat_refused(refused.reason)
        raise HTTPException(
            429, str(refused), headers={"Retry-After": str(refused.retry_after)}
        ) from None


class _HeldStream(EventSourceResponse):
    """A stream that frees its chat slot however it ends: finished, failed, or cut off by
    a client that went away (Starlette then cancels the stream, which may be waiting on
    the model or on the client, outside the generator's own ``finally``)."""

    def __init__(self, content: AsyncIterator[bytes], slot: Slot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


async def _sse(events: AsyncGenerator[Event, None], slot: Slot) -> AsyncIterator[bytes]:
    try:
        async with aclosing(events):  # a turn cut off is dropped now (ChatService.ask)
            async for kind, data in events:
                yield format_sse_event(event=kind, data_str=json.dumps(data))
    finally:
        slot.release()
