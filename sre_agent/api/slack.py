"""``POST /slack/interactions``: the Slack app's interactivity request URL, where Slack
sends the clicks of the feedback buttons (:func:`sre_agent.notify_blocks.feedback_buttons`).

Slack signs every request with the app's signing secret (``SRE_AGENT_SLACK_SIGNING_SECRET``):
``X-Slack-Signature`` is ``v0=`` HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{body}``,
checked here by ``slack_sdk``'s verifier over the body exactly as it was sent. That is
this route's authentication (Slack sends no API token: ``auth.py`` lists the path as
open): a forged, unsigned or replayed request (signed over 5 minutes ago) is a 401 that
stores nothing. Without the secret the route is a 404.

A signed click is Slack's: it answers 200 whatever became of it (Slack retries
anything else, and shows a person nothing of a 4xx). The verdict is stored as
``POST /investigations/{id}/feedback`` stores one (:func:`sre_agent.api.memory.
give_feedback`), by ``slack:<user name>``; what became of it goes to the person who
clicked as a note only they see, in the background (Slack wants its answer in 3 s).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, HTTPException, Request, Response
from pydantic import BaseModel, ValidationError
from slack_sdk.signature import SignatureVerifier

from sre_agent.api.deps import NotifierDep, SettingsDep, StoreDep
from sre_agent.api.memory import MAX_AUTHOR_CHARS, give_feedback
from sre_agent.api.rejections import printable
from sre_agent.api.schemas import errors
from sre_agent.notify import signing_secret
from sre_agent.notify_blocks import FEEDBACK_ACTIONS, escape

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/slack/interactions"
#: A signature older (or newer) than this is refused: the verifier's window, for the message.
MAX_AGE = 5 * 60


class SlackUser(BaseModel):
    id: str = ""
    username: str | None = None
    name: str | None = None


class SlackAction(BaseModel):
    action_id: str = ""
    value: str | None = None


class BlockActions(BaseModel):
    """What a ``block_actions`` payload holds that we read (Slack sends much more)."""

    type: str
    user: SlackUser = SlackUser()
    actions: list[SlackAction] = []
    response_url: str | None = None


_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "What Slack sends: `payload=<JSON>`, form-encoded, signed",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"payload": {"type": "string"}},
                    "required": ["payload"],
                }
            }
        },
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Taken (a click of ours stored, or nothing of ours to do): an empty body",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    400: {
        **errors(400)[400],
        "description": "Signed, but no Slack interaction payload; or a Host not in"
        " SRE_AGENT_ALLOWED_HOSTS",
    },
    401: {
        **errors(401)[401],
        "description": "Not signed with SRE_AGENT_SLACK_SIGNING_SECRET: a signature missing"
        " or wrong, or a timestamp over 5 minutes from now; nothing is stored",
    },
    404: {**errors(404)[404], "description": "SRE_AGENT_SLACK_SIGNING_SECRET is not set"},
    **errors(408, 413, 422),
}


def refusal(
    secret: str, body: bytes, timestamp: str | None, signature: str | None
) -> tuple[str, str] | None:
    """Why the request is not Slack's, as (reason, message); None when it is (its
    signature is good and fresh)."""
    if not timestamp or not signature:
        return "unsigned", "not signed: Slack sends X-Slack-Signature and X-Slack-Request-Timestamp"
    try:
        age = time.time() - int(timestamp)
    except (ValueError, OverflowError):
        return "bad_timestamp", "X-Slack-Request-Timestamp is not a Unix time"
    if abs(age) > MAX_AGE:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        return "stale", (
            f"stale: X-Slack-Request-Timestamp is {when}, over {MAX_AGE} s (a replayed"
            " request, or this host's clock is off)"
        )
    try:
        if SignatureVerifier(secret).is_valid(body, timestamp, signature):
            return None
    except (UnicodeDecodeError, TypeError):
        pass  # a body that is not UTF-8, a signature that is not ASCII: not Slack's
    return "bad_signature", (
        "the X-Slack-Signature does not match the body and the app's signing secret"
    )


def interaction(body: bytes) -> dict[str, Any]:
    """The ``payload`` JSON of a form-encoded body (400 when there is none)."""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise HTTPException(400, "not a Slack interaction: the body has no payload=<JSON object>")
    return payload


def author_of(user: SlackUser) -> str:
    """``slack:<name>`` as Slack names the person (its handle, else name, else id)."""
    name = "".join(c for c in (user.username or user.name or user.id) if c.isprintable())
    return f"slack:{name.strip() or 'unknown'}"[:MAX_AUTHOR_CHARS]


@router.post(
    PATH,
    response_class=Response,
    responses=_RESPONSES,
    openapi_extra=_OPENAPI,
)
async def slack_interactions(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    notifier: NotifierDep,
    x_slack_request_timestamp: str | None = Header(None, description="Unix time of signing"),
    x_slack_signature: str | None = Header(None, description="`v0=` HMAC-SHA256, hex"),
) -> Response:
    secret = signing_secret(settings)
    if secret is None:
        raise HTTPException(
            404,
            "Slack interactivity is not configured: set SRE_AGENT_SLACK_SIGNING_SECRET to"
            " the Slack app's signing secret (and the bot token) to take its buttons' clicks",
        )
    body = await request.body()  # exactly as sent (bounded by the edge): what is signed
    refused = refusal(secret, body, x_slack_request_timestamp, x_slack_signature)
    if refused is not None:
        _log_refusal(request, *refused)
        raise HTTPException(401, f"refused: {refused[1]}; nothing was stored")
    if _replayed(request, x_slack_signature or ""):
        log.warning("slack: a signed request seen before was sent again: ignored")
        return Response(status_code=200)
    payload = interaction(body)
    if payload.get("type") != "block_actions":
        log.info("slack: ignored a %s interaction", printable(str(payload.get("type")), 40))
        return Response(status_code=200)
    try:
        clicked = BlockActions.model_validate(payload)
    except ValidationError:
        raise HTTPException(
            400, "not a Slack interaction: a block_actions payload of another shape"
        ) from None
    author = author_of(clicked.user)
    for action in clicked.actions:
        if action.action_id not in FEEDBACK_ACTIONS:
            log.info("slack: ignored action %s", printable(action.action_id, 60))
            continue
        verdict, label = FEEDBACK_ACTIONS[action.action_id]
        ident = action.value or ""
        try:
            await give_feedback(
                store, ident, verdict, cause=None, note=None, author=author, via="slack"
            )
        except HTTPException as exc:
            log.warning(
                "slack: %s's %s on %s not stored: %s",
                author,
                verdict,
                printable(ident, 40),
                exc.detail,
            )
            notifier.answer_click(
                clicked.response_url, f":warning: Not recorded: {escape(str(exc.detail))}"
            )
            continue
        log.info("slack: %s says %s of investigation %s", author, verdict, ident)
        notifier.answer_click(
            clicked.response_url,
            f":white_check_mark: Recorded *{label}* for investigation `{escape(ident)}`,"
            f" by {escape(author)}. Thank you.",
        )
    return Response(status_code=200)


def _replayed(request: Request, signature: str) -> bool:
    """Whether this very request (its signature: of its timestamp and body) came before,
    within the window a signature is good for: a captured click sent again stores no
    second verdict. Remembered per process, for MAX_AGE seconds."""
    seen: dict[str, float] = request.app.state.__dict__.setdefault("slack_seen", {})
    now = time.monotonic()
    for old in [k for k, at in seen.items() if now - at > 2 * MAX_AGE]:
        del seen[old]
    if signature in seen:
        return True
    seen[signature] = now
    return False


def _log_refusal(request: Request, reason: str, problem: str) -> None:
    """One line per reason a second at most (a flood of forgeries is no flood of lines);
    the headers and the secret are never in it."""
    throttle = getattr(request.app.state, "auth_log", None)
    held = throttle.allow(f"slack_{reason}") if throttle is not None else 0
    if held is None:
        return
    client = request.client
    log.warning(
        "slack: POST %s from %s refused: %s%s",
        PATH,
        client.host if client else "unknown",
        problem,
        f"; {held} more like it in the last second, not logged" if held else "",
    )
