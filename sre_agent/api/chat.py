"""``POST /investigations/{id}/chat`` (JSON or Server-Sent Events) and its history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from sre_agent.api.deps import ServicesDep, require_json
from sre_agent.app import Services
from sre_agent.chat import MAX_MESSAGE_CHARS, ChatUnavailable
from sre_agent.chat_events import Event
from sre_agent.store import ACTIVE

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


async def _investigation(services: Services, ident: str) -> dict[str, Any]:
    record = await asyncio.to_thread(services.store.get, ident)
    if record is None:
        raise HTTPException(404, f"no investigation with id {ident!r}")
    return record


@router.get("/investigations/{ident}/chat")
async def chat_history(ident: str, services: ServicesDep) -> dict[str, Any]:
    await _investigation(services, ident)
    return {"investigation_id": ident, "messages": await services.chat.history(ident)}


@router.post("/investigations/{ident}/chat", response_model=None)
async def chat(
    ident: str, body: ChatRequest, request: Request, services: ServicesDep
) -> dict[str, Any] | JSONResponse | StreamingResponse:
    require_json(request)
    record = await _investigation(services, ident)
    if record["status"] in ACTIVE:
        # Its evidence is stored when it finishes: answering now would be answering blind.
        raise HTTPException(
            409, f"investigation {ident} is still {record['status']}; ask when it has finished"
        )
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _sse(services.chat.ask(ident, body.message)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        return await services.chat.answer(ident, body.message)
    except ChatUnavailable as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    async for kind, data in events:
        yield f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
