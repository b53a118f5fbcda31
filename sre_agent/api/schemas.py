"""The API's answers as models, for ``/openapi.json`` (schemathesis fuzzes from it, and
clients generate from it) and for the routes' ``response_model`` s.

Each keeps the JSON shape the API had before it was typed: keys a record may lack
stay absent (``response_model_exclude_unset``), and answers that carry open-ended
parts (a backend's check, a usage record) allow more keys than they name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sre_agent.models import IncidentAlert, LlmUsage, Status

#: What each error status means, for the documentation of a route's error answers.
ERRORS = {
    400: "Malformed JSON, or a Host not in SRE_AGENT_ALLOWED_HOSTS",
    401: "Missing or wrong credentials: on the webhook its bearer token"
    " (SRE_AGENT_WEBHOOK_TOKEN); elsewhere one of SRE_AGENT_API_TOKENS, a web session"
    " or the auth proxy's header",
    403: "A state-changing request from another site, or on a web session without its X-CSRF-Token",
    404: "No investigation with that id",
    405: "Method not allowed on this path",
    408: "Body not sent within SRE_AGENT_BODY_TIMEOUT",
    409: "The investigation is still queued or running",
    413: "Body over SRE_AGENT_MAX_BODY_BYTES",
    415: "Content-Type is not application/json",
    422: "Invalid parameters or body, or an unknown query parameter",
    429: "Too many questions (SRE_AGENT_CHAT_RATE_PER_MINUTE per user) or the model is busy"
    " (SRE_AGENT_CHAT_MAX_CONCURRENT): ask again after Retry-After seconds",
    431: "Too many or too large request headers",
    500: "An error of ours: the answer says so, the service log has the details",
    503: "A backend this request needs failed: nothing was changed, retry",
}


def clean_text(value: str) -> str:
    """A text a person sent (a question, a cause): ValueError for what SQLite, the
    redactor or a viewer cannot hold -- a lone surrogate, a NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid Unicode)") from None
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


class ErrorBody(BaseModel):
    """Every error answer: one message that says what is wrong and what to change."""

    error: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's error answers (all ``{"error": ...}``)."""
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


def edge_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The app's ``responses=``: what the edge answers on any route, before it runs --
    JSON whatever the route's own media type (``/metrics`` answers text)."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {code: {"description": ERRORS[code], "content": body} for code in codes}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- the webhook ------------------------------------------------------------------
class AlertResult(BaseModel):
    """What became of one alert of the delivery, in the order of the body."""

    alert_name: str
    severity: str
    fingerprint: str
    status: str = Field(
        description="queued, running (a duplicate), completed, linked... (with ?wait=true),"
        " skipped (severity not investigated) or resolved"
    )
    investigation_id: str | None
    duplicate: bool | None = Field(None, description="firing: delivered before")
    reason: str | None = Field(None, description="skipped: why")
    investigation_status: str | None = Field(None, description="resolved: its investigation's")
    analysis: str | None = Field(
        None,
        description="?wait=true: the report (markdown); for a linked alert, its evidence"
        " report and then the report of the investigation that explains it",
    )
    explained_by: str | None = Field(
        None, description="?wait=true, linked: the investigation whose analysis explains it"
    )


class WebhookAnswer(BaseModel):
    message: str
    results: list[AlertResult]
    service: Literal["sre-agent"] = "sre-agent"
    timestamp: str


# --- investigations ---------------------------------------------------------------
class InvestigationSummary(BaseModel):
    """One line of ``GET /investigations``; the whole record is ``/investigations/{id}``."""

    id: str
    alertname: str
    severity: str
    namespace: str | None
    fingerprint: str
    status: Status
    status_reason: str | None
    alert_status: Literal["firing", "resolved"]
    created_at: str
    finished_at: str | None
    summary: str | None = Field(description="the analysis' summary, once there is one")
    verdict: Literal["confirmed", "wrong", "partial"] | None = Field(
        None, description="the latest verdict a person gave on its analysis (feedback)"
    )


class InvestigationList(BaseModel):
    investigations: list[InvestigationSummary]
    count: int
    next_before: str | None = Field(description="?before= this for the next page; null: no more")
    next: str | None = Field(description="the next page's path and query; null: no more")


# --- incidents --------------------------------------------------------------------
class IncidentSummary(BaseModel):
    """One line of ``GET /incidents``: its alerts without the head's analysis (that is
    ``/incidents/{id}``)."""

    id: str
    status: Literal["open", "resolved"]
    title: str
    head_id: str | None
    opened_at: str
    updated_at: str
    resolved_at: str | None
    summary: str | None = Field(description="the head's analysis' summary, once there is one")
    alerts: list[IncidentAlert]


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]
    count: int
    next_before: str | None = Field(description="?before= this for the next page; null: no more")
    next: str | None = Field(description="the next page's path and query; null: no more")


# --- chat -------------------------------------------------------------------------
class ChatToolCall(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: list[ChatToolCall] | None = None
    name: str | None = None


class ChatHistory(BaseModel):
    investigation_id: str
    messages: list[ChatMessage]


class ChatToolResult(_Open):
    name: str | None = None
    status: str
    size: int


class ChatAnswer(_Open):
    """One turn, not streamed (``Accept: application/json``)."""

    investigation_id: str
    answer: str
    usage: LlmUsage
    tool_calls: list[ChatToolResult]


#: The streamed turn (``Accept: text/event-stream``): each event's ``data`` is JSON.
CHAT_EVENTS = """Server-Sent Events, each `data` a JSON object:
`token` `{"text"}` (the answer as it comes), `tool_call` `{"name", "args"}`,
`tool_result` `{"name", "status", "size"}`, then `done` `{"answer", "usage"}`
or `error` `{"error"}`."""


# --- health -----------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]


class Check(_Open):
    """One component's state as the background checker last saw it."""

    ok: bool
    url: str | None = None
    error: str | None = None


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    degraded: bool
    degraded_components: list[str]
    database: Check
    ollama: Check
    prometheus: Check
    kubernetes: Check
    queue_depth: int
