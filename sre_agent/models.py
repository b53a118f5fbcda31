"""The investigation record, typed, from intake to the API: one :class:`Investigation`
with its :class:`Evidence`, :class:`ToolCall` s, :class:`LlmUsage` and :class:`Sources`,
and the model's :class:`~sre_agent.analysis.Analysis` beside them.

The store reads and writes these (``model_validate_json`` / ``model_dump_json``); the
presenters at the edges (markdown, Slack, chat context, the API) read them; nothing in
between passes ``dict[str, Any]`` records around. Everything here was redacted where it
entered (the alert at intake, each tool's output where the tool returns it, the model's
text where it arrives), so nothing that reads these redacts again.

Rows from before a field existed still validate: a field an old row may lack has a
default — None where "unknown" must not read as a value (``sources``, timings), the
neutral value otherwise (zero counts, an evidence item's ``status`` "ok", as rows
from before statuses kept only the lookups that answered).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sre_agent.analysis import Analysis, RootCause

__all__ = [
    "ACTIVE",
    "FINAL",
    "AlertRecord",
    "Analysis",
    "Backend",
    "Evidence",
    "Feedback",
    "Incident",
    "IncidentAlert",
    "IncidentRole",
    "Investigation",
    "Join",
    "LlmCall",
    "LlmUsage",
    "RootCause",
    "SimilarRef",
    "Sources",
    "Status",
    "ToolCall",
    "Verdict",
    "WalkedObject",
    "call_signature",
]

#: ``linked``: final without a model run of its own, because the analysis of its
#: incident's head explains it (``explained_by``); it keeps its own evidence report.
Status = Literal["queued", "running", "completed", "degraded", "failed", "cancelled", "linked"]
ACTIVE: tuple[Status, ...] = ("queued", "running")
FINAL: tuple[Status, ...] = ("completed", "degraded", "failed", "cancelled", "linked")

#: Evidence and tool-call statuses (the first line of a tool's text, ``status: ...``).
ToolStatus = str
Phase = Literal["evidence", "agent"]


class _Record(BaseModel):
    """Stored parts: unknown keys of old rows are dropped, never an error."""

    model_config = ConfigDict(extra="ignore")


def call_signature(tool: str, args: dict[str, Any]) -> str:
    """Identity of a tool call: the same tool with the same (non-empty) arguments."""
    clean = {k: v for k, v in args.items() if v not in (None, "", False)}
    return f"{tool}:{json.dumps(clean, sort_keys=True, default=str)}"


class Evidence(_Record):
    """One piece of evidence: a finding of the evidence-first gatherer (``phase``
    ``evidence``) or the result of a tool call the agent made (``agent``), as the model
    read it and the record keeps it. ``id`` (``E1``, ``E2``, ...) is what the analysis
    cites."""

    id: str = ""
    title: str = ""
    tool: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    status: ToolStatus = "ok"
    output: str = ""
    phase: Phase = "evidence"
    #: False when the prompt budget left it out of the first prompt (the record keeps it).
    in_prompt: bool = True
    #: How long the lookup took; the gatherer's ordering (0 = most important) and start
    #: order. Working values: not stored (the tool call keeps the duration).
    duration_ms: float = Field(default=0.0, exclude=True)
    priority: int = Field(default=0, exclude=True)
    order: int = Field(default=0, exclude=True)

    def signature(self) -> str:
        return call_signature(self.tool, self.args)

    def answered(self) -> bool:
        """The backend answered (with data or without): errors are no evidence."""
        return self.status in ("ok", "no_data")

    def tool_call(self) -> ToolCall:
        """The call that produced it, as the record's ``tool_calls`` list keeps it."""
        return ToolCall(
            id=self.id,
            name=self.tool,
            args=self.args,
            duration_ms=round(self.duration_ms, 1),
            status=self.status,
            output_chars=len(self.output),
            phase=self.phase,
        )


class ToolCall(_Record):
    """One tool call of a run: what was asked, how long it took, how it ended."""

    id: str = ""
    name: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    duration_ms: float = 0.0
    status: ToolStatus = "ok"
    output_chars: int = 0
    phase: Phase = "agent"


class LlmCall(_Record):
    """One model call: its kind (``agent``, ``repair``, ``chat``...), why it ended, its
    tokens and seconds. ``partial``: it ended before Ollama's final chunk, so its tokens
    are our tokenizer's count; ``ended`` then says how (``cancelled``, ``error``...)."""

    kind: str = ""
    done_reason: str | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    partial: bool = False
    ended: str | None = None


class LlmUsage(_Record):
    """What the model cost one run (rows from before a field existed: zero / None)."""

    model: str = ""
    prompt_version: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    #: How long the evidence-first phase took; None when it did not run.
    evidence_seconds: float | None = None
    truncated: int = 0
    repeated: int = 0
    partial_calls: int = 0
    calls_detail: list[LlmCall] = Field(default_factory=list)


BackendState = Literal["answered", "failed", "not configured", "not consulted"]


class Backend(_Record):
    """One backend's part in a run (:func:`sre_agent.sources.compute_sources`)."""

    name: str
    state: BackendState
    #: The first error, when every call failed.
    why: str | None = None
    answered: int = 0
    no_data: int = 0
    errors: int = 0
    #: The evidence ids of the calls it answered.
    ids: list[str] = Field(default_factory=list)
    #: Prometheus only: the base of graph links (``.../graph``).
    graph_base: str | None = None


class Sources(_Record):
    """Which backends answered a run: ``prometheus``, ``kubernetes``, ``logs``."""

    backends: dict[str, Backend] = Field(default_factory=dict)


class AlertRecord(_Record):
    """The alert as stored: masked where it entered (labels as label values, so they
    still match their series)."""

    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str | None = None
    generatorURL: str = ""
    #: The rule's PromQL, from generatorURL (None when it carries none).
    expr: str | None = None
    fingerprint: str = ""


#: How the evidence walk reached the root of an object's chain: an object the alert's
#: labels name (``alert``), the object behind its address (``address``), the pod of a
#: scrape target that is down (``target``), an object with warning events in the
#: namespace (``warned``: incidental, never a reason to join alerts).
Origin = Literal["alert", "address", "target", "warned"]


class WalkedObject(_Record):
    """One object the evidence walk reached: where, how far from the alert, and why."""

    kind: str  # graph_relations.kind_key spelling: "pod", "deployment", "kustomization.kustomize.toolkit.fluxcd.io"
    name: str
    namespace: str | None = None
    depth: int = 0
    why: str = ""
    origin: Origin = "alert"
    #: The object it was reached from, as ``kind/namespace/name`` (``kind/name`` when
    #: cluster-scoped); None for a root.
    parent: str | None = None
    #: False when it could not be read (not found, forbidden, no answer).
    found: bool = True

    def key(self) -> str:
        return (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind}/{self.name}"
        )


JoinRule = Literal["same-object", "reaches", "same-workload", "same-claim", "same-group"]


class Join(_Record):
    """Why an alert joined its incident: the member it links to and what they share."""

    investigation_id: str = ""
    alertname: str = ""
    rule: JoinRule
    #: A sentence a person reads: "KubePodNotReady names pod shop/web-1, whose node
    #: node-3 KubeNodeNotReady names".
    reason: str


#: A person's word on an analysis (``POST /investigations/{id}/feedback``).
Verdict = Literal["confirmed", "wrong", "partial"]


class Feedback(_Record):
    """One verdict on an investigation's analysis, kept as given (an audit trail)."""

    id: int = 0
    investigation_id: str
    verdict: Verdict
    #: The cause as it stands after this word: the one given, else (confirmed, partial)
    #: the analysis' first root cause; None for "wrong" with no correction.
    cause: str | None = None
    #: What the analysis said the cause was, when it said one.
    analysis_cause: str | None = None
    note: str | None = None
    #: Who: the authenticated user (``alice``), ``slack:<user>`` from a Slack button.
    author: str = "anonymous"
    #: How they were known: ``token``, ``session``, ``proxy``, ``anonymous``, ``slack``.
    via: str = "anonymous"
    created_at: str


#: How a past investigation matches: the same alert on the same object, the same object,
#: the same alert elsewhere in the namespace, or only its text.
SimilarMatch = Literal["same alert and object", "same object", "same alert", "similar text"]


class SimilarRef(_Record):
    """A past investigation like this one (:meth:`Store.similar`), best first."""

    investigation_id: str
    alertname: str
    created_at: str
    match: SimilarMatch
    #: Its confirmed (or corrected) cause, else its analysis' first root cause.
    cause: str | None = None
    #: The latest verdict on it, None when nobody judged it.
    verdict: Verdict | None = None
    summary: str | None = None


class Investigation(_Record):
    """One firing alert's investigation: the whole record (``GET /investigations/{id}``)."""

    id: str
    fingerprint: str
    alertname: str
    severity: str
    namespace: str | None = None
    group_key: str = ""
    alert: AlertRecord
    status: Status
    status_reason: str | None = None
    alert_status: Literal["firing", "resolved"] = "firing"
    resolved_at: str | None = None
    #: Times Alertmanager delivered this firing (repeats, HA pairs).
    deliveries: int = 1
    #: Runs so far (re-investigations included).
    attempts: int = 0
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    llm_usage: LlmUsage = Field(default_factory=LlmUsage)
    analysis: Analysis | None = None
    #: The model's last answer when it gave no valid analysis.
    raw_text: str | None = None
    #: Waiting to be investigated again once the model server answers.
    llm_retry: bool = False
    #: None on rows from before sources were recorded: unknown, not "none answered".
    sources: Sources | None = None
    #: The incident it belongs to (None until its evidence is in, and on old rows).
    incident_id: str | None = None
    #: Why it joined its incident (empty: it opened it).
    joined: list[Join] = Field(default_factory=list)
    #: What the evidence walk reached (the incident's joins are made from these).
    objects: list[WalkedObject] = Field(default_factory=list)
    #: When its evidence report was stored (before the model's run, if any).
    evidence_at: str | None = None
    #: ``linked``: the investigation whose analysis explains it.
    explained_by: str | None = None
    #: The alert and the object it is about (:func:`sre_agent.memory.subject_key`):
    #: what earlier firings of "the same alert" are matched on.
    subject: str | None = None
    #: The latest verdict on its analysis, and every one given (oldest first).
    verdict: Verdict | None = None
    feedback: list[Feedback] = Field(default_factory=list)
    #: Past investigations like this one, best first ("Seen before").
    similar: list[SimilarRef] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def answered(self) -> bool:
        """Whether any lookup answered (with data or without)."""
        return any(item.answered() for item in self.evidence)


#: An alert's part in its incident: the ``head`` (its analysis is the incident's),
#: ``linked`` (explained by an analysis of the incident), ``waiting`` (queued for the
#: head's analysis or its own run), ``own`` (a run of its own: not explained).
IncidentRole = Literal["head", "linked", "waiting", "own"]


class IncidentAlert(_Record):
    """One alert of an incident, as the incident lists it."""

    investigation_id: str
    alertname: str
    severity: str
    namespace: str | None = None
    status: Status
    alert_status: Literal["firing", "resolved"] = "firing"
    role: IncidentRole
    joined: list[Join] = Field(default_factory=list)
    explained_by: str | None = None
    created_at: str
    evidence_at: str | None = None
    finished_at: str | None = None
    #: Its analysis' summary, else why it is where it is (``status_reason``).
    summary: str | None = None


class Incident(_Record):
    """Alerts joined because they share what a person would join them on
    (:mod:`sre_agent.incidents`); ``GET /incidents/{id}``."""

    id: str
    status: Literal["open", "resolved"] = "open"
    title: str = ""
    #: The investigation whose analysis is the incident's (None until one is chosen).
    head_id: str | None = None
    opened_at: str
    #: The last time an alert joined.
    updated_at: str
    resolved_at: str | None = None
    alerts: list[IncidentAlert] = Field(default_factory=list)
    #: The head's analysis, once it has one.
    analysis: Analysis | None = None
    #: Investigations the head's analysis explains (``linked`` to it).
    explains: list[str] = Field(default_factory=list)
