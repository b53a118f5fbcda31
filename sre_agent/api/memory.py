"""``POST /investigations/{id}/feedback`` (a person's verdict on an analysis), its list,
and ``GET /runbooks/{alertname}`` (a runbook draft from the confirmed causes).

Feedback is kept as given (an audit trail: who, how they were known, when); the latest
verdict is the investigation's. The author is the authenticated user; with no
authentication configured (everyone anonymous) the body may name one, marked as such.
Cause and note are masked like every text that enters (secret-looking values).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, field_validator
from sre_agent_tools.redact import redact

from sre_agent.alerts import mask_label
from sre_agent.api.deps import SettingsDep, StoreDep, require_json
from sre_agent.api.schemas import clean_text, errors
from sre_agent.auth import User, UserDep
from sre_agent.models import Feedback, Verdict
from sre_agent.runbooks import Runbook, draft, markdown
from sre_agent.store import Store

router = APIRouter()

MAX_CAUSE_CHARS, MAX_NOTE_CHARS, MAX_AUTHOR_CHARS = 500, 2000, 100


def _text(value: str | None) -> str | None:
    """Blank is none; a NUL or a lone surrogate is refused."""
    if value is None or not value.strip():
        return None
    return clean_text(value).strip()


class FeedbackRequest(BaseModel):
    verdict: Verdict = Field(
        description="confirmed: the analysis' cause is right; partial: partly (say what in"
        " cause or note); wrong: it is not (cause: what it was, when known)"
    )
    cause: str | None = Field(
        None,
        max_length=MAX_CAUSE_CHARS,
        description="The cause as it was; for confirmed, default the analysis' first root cause",
    )
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, description="e.g. what fixed it")
    author: str | None = Field(
        None,
        max_length=MAX_AUTHOR_CHARS,
        description="Only without authentication (anonymous): who says so",
    )

    _clean = field_validator("cause", "note", "author")(lambda cls, v: _text(v))


class FeedbackList(BaseModel):
    investigation_id: str
    verdict: Verdict | None
    feedback: list[Feedback]


def author_of(user: User, named: str | None) -> tuple[str, str]:
    """(author, via): the authenticated user; anonymous, the name the body gives."""
    if user.via != "anonymous":
        return user.name, user.via
    return (f"{named} (unverified)" if named else "anonymous"), "anonymous"


async def give_feedback(
    store: Store,
    ident: str,
    verdict: Verdict,
    *,
    cause: str | None,
    note: str | None,
    author: str,
    via: str,
) -> Feedback:
    """Store one verdict (masked where it enters); 404 / 409 / 422 as HTTP errors."""
    try:
        return await store.call(
            lambda: store.add_feedback(
                ident,
                verdict,
                cause=redact(cause) if cause else None,
                note=redact(note) if note else None,
                author=redact(author),
                via=via,
            )
        )
    except KeyError:
        raise HTTPException(404, f"no investigation with id {ident[:40]!r}") from None
    except ValueError as exc:
        status = 409 if "still" in str(exc) else 422
        raise HTTPException(status, str(exc)) from None


@router.post(
    "/investigations/{ident}/feedback",
    response_model=Feedback,
    status_code=201,
    responses=errors(404, 409, 413, 415, 422),
    dependencies=[Depends(require_json)],  # before the body is read: a form is a 415
)
async def post_feedback(
    ident: str, body: FeedbackRequest, store: StoreDep, user: UserDep
) -> Feedback:
    author, via = author_of(user, body.author)
    return await give_feedback(
        store, ident, body.verdict, cause=body.cause, note=body.note, author=author, via=via
    )


@router.get(
    "/investigations/{ident}/feedback", response_model=FeedbackList, responses=errors(404, 422)
)
async def list_feedback(ident: str, store: StoreDep) -> FeedbackList:
    record = await asyncio.to_thread(store.get, ident)
    if record is None:
        raise HTTPException(404, f"no investigation with id {ident[:40]!r}")
    return FeedbackList(investigation_id=ident, verdict=record.verdict, feedback=record.feedback)


@router.get(
    "/runbooks/{alertname}",
    response_model=Runbook,
    responses={
        200: {
            "description": "The draft; with `?format=markdown` as a markdown document",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
        404: {**errors(404)[404], "description": "No confirmed cause for that alert yet"},
        **errors(422),
    },
)
async def get_runbook(
    alertname: str,
    store: StoreDep,
    settings: SettingsDep,
    format: Literal["json", "markdown"] | None = None,
) -> Runbook | PlainTextResponse:
    stored = mask_label("alertname", alertname) or alertname  # stored masked: match alike
    judged = await asyncio.to_thread(store.judged, stored)
    if not judged:
        raise HTTPException(
            404,
            f"no runbook for {alertname[:80]!r} yet: none of its investigations has a cause a"
            " person confirmed or gave (POST /investigations/{id}/feedback)",
        )
    book = draft(stored, judged, settings.public_url)
    if format == "markdown":
        return PlainTextResponse(markdown(book), media_type="text/markdown; charset=utf-8")
    return book
