"""One investigation: LangChain ``create_agent`` on ``ChatOllama`` with our
read-only tools, then a validated :class:`Analysis`.

We write no agent loop of our own: limits are LangChain middleware, and the
:class:`Recorder` middleware keeps the tool calls, evidence, token counts and
answers of the run as they happen, so a deadline that cuts a run short still
leaves what was gathered and said (:meth:`Investigator.salvage`). Model-server
faults are told apart from our own bugs where they happen (:mod:`sre_agent.llm`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ClearToolUsesEdit,
    ContextEditingMiddleware,
    ModelCallLimitMiddleware,
    ToolCallLimitMiddleware,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from sre_agent_tools import ToolDeps, make_tools
from sre_agent_tools.redact import redact

from sre_agent import evidence, sources, tokens
from sre_agent.analysis import (
    Analysis,
    CitationError,
    analysis_schema,
    check_citations,
    parse_analysis,
)
from sre_agent.echoes import Instructions, check_echo
from sre_agent.errors import ModelServerError
from sre_agent.findings import assign_ids, fit_budget, render
from sre_agent.guards import ArgumentRepair, RepeatGuard, TextToolCalls
from sre_agent.llm import (
    LLM_ERRORS,
    SCHEMA_REFUSED,
    constrained,
    describe_error,
    make_model,
    refused_schema,
    server_down,
)
from sre_agent.models import AlertRecord, Evidence, Sources, ToolCall
from sre_agent.prompts import Prompts
from sre_agent.recorder import Recorder, clean_reply
from sre_agent.runlog import RunLog
from sre_agent.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["completed", "degraded", "failed"]
#: Makes an alert's history finding (None: it has no history).
History = Callable[[], Awaitable[Evidence | None]]

__all__ = ["LLM_ERRORS", "Investigator", "Result", "RunLog", "describe_error"]


class _Unsupported:
    """The model server refused a JSON schema (:meth:`Investigator._answer`)."""


UNSUPPORTED = _Unsupported()


@dataclass
class Result:
    status: Outcome
    reason: str | None = None
    analysis: Analysis | None = None
    raw_text: str | None = None
    #: The model server failed: worth investigating again once it answers.
    llm_unavailable: bool = False


def alert_fields(alert: AlertRecord) -> dict[str, str]:
    """The fields the investigation prompt is filled with."""
    labels, annotations = alert.labels, alert.annotations
    shown = {k: v for k, v in labels.items() if k not in ("prometheus",)}
    return {
        "alertname": labels.get("alertname", "?"),
        "severity": labels.get("severity", "none"),
        "status": alert.status,
        "starts_at": alert.startsAt or "?",
        "labels": ", ".join(f'{k}="{v}"' for k, v in shown.items()),
        "summary": annotations.get("summary", "(none)"),
        "description": annotations.get("description", "(none)"),
        "runbook_url": annotations.get("runbook_url", "(none)"),
        "expr": alert.expr or "(unknown)",
        "evidence": "(none gathered)",
    }


def scoped_deps(
    deps: ToolDeps,
    alert: AlertRecord,
    tool_calls: Iterable[ToolCall],
    allowed: Iterable[str],
    owner: str = "this investigation's",
) -> ToolDeps:
    """The tools' clients, reading only the namespaces the alert and its evidence name."""
    calls = [c.model_dump() for c in tool_calls]
    return deps.scoped({"labels": alert.labels}, calls, allowed, owner=owner)


def guarded_middleware(
    settings: Settings,
    run: RunLog,
    edits: list[Any],
    count: Callable[[Sequence[BaseMessage]], int],
    already: Iterable[str] = (),
) -> list[AgentMiddleware[Any, Any, Any]]:
    """The middleware every agent of ours runs with (investigations and chat alike):
    recording, the small-model guards, the prompt budget ``edits``, the call limits."""
    return [
        Recorder(run),
        TextToolCalls(),
        ArgumentRepair(),
        RepeatGuard(already),
        ContextEditingMiddleware(token_counter=count, edits=edits),
        ModelCallLimitMiddleware(run_limit=settings.max_model_calls, exit_behavior="end"),
        ToolCallLimitMiddleware(run_limit=settings.max_tool_calls, exit_behavior="continue"),
    ]


class Investigator:
    """Runs investigations against one Ollama model with one set of tool clients."""

    def __init__(self, settings: Settings, prompts: Prompts, deps: ToolDeps) -> None:
        self.settings = settings
        self.prompts = prompts
        self.deps = deps
        self.model = make_model(settings)
        self.tools = make_tools()
        #: What the model is told (an answer that repeats it is refused).
        self.told = Instructions.of(prompts.instructions(), analysis_schema())
        #: The model server refused a JSON schema once: the first call uses the tools' path.
        self._no_schema = False
        tokens.count("warm up")  # load the tokenizer now, not during the first investigation

    def _agent(self, run: RunLog, already: list[str]) -> Any:
        # Per call, the prompt stays under the budget: older tool results are cleared
        # first (the system prompt and tool schemas are counted in the overhead).
        overhead = 1200
        clear = ClearToolUsesEdit(
            trigger=max(1000, self.settings.prompt_budget_tokens - overhead),
            keep=1,
            placeholder="[cleared to stay within the prompt budget]",
        )
        return create_agent(
            self.model,
            self.tools,
            system_prompt=self.prompts.render("system"),
            middleware=guarded_middleware(
                self.settings, run, [clear], tokens.count_messages, already
            ),
            context_schema=ToolDeps,
        )

    async def gather(
        self, alert: AlertRecord, run: RunLog, *, history: History | None = None
    ) -> list[Evidence]:
        """Evidence first: what the alert points at; the prompt gets it within the budget.

        Each finding reaches the run's record as it comes (a deadline in the middle
        keeps what answered); once all are in, the record holds them in priority order,
        numbered ``E1``, ``E2``, ... in that order (the prompt's), those the budget
        leaves out marked ``in_prompt: false``. The objects the walk reached go to
        ``run.objects``, for the incident rule. ``history`` makes the alert's history
        finding (:mod:`sre_agent.memory`), gathered beside the walk, first in the prompt.
        """
        if not self.settings.evidence_first:
            return []
        first = len(run.evidence), len(run.tool_calls)
        gathered: list[Evidence] = []
        started = time.perf_counter()

        def keep(finding: Evidence) -> None:
            gathered.append(finding)
            run.evidence.append(finding)
            run.tool_calls.append(finding.tool_call())

        timeout = min(self.settings.evidence_timeout, self.settings.investigation_timeout / 2)
        try:
            async with asyncio.TaskGroup() as both:  # the history beside the walk
                both.create_task(self.add_history(history, keep))
                await evidence.gather(
                    alert, self.deps, on_finding=keep, timeout=timeout, walked=run.objects
                )
        finally:  # cancelled too: the record in priority order, whatever answered
            gathered.sort(key=lambda f: (f.priority, f.order))
            run.next_id = assign_ids(gathered, run.next_id)
            run.evidence_seconds = time.perf_counter() - started
            run.evidence[first[0] :] = gathered
            run.tool_calls[first[1] :] = [f.tool_call() for f in gathered]
        kept = fit_budget(gathered, self.settings.evidence_budget_tokens)
        log.info(
            "evidence: %d finding(s) in %.1f s, %d in the prompt",
            len(gathered),
            run.evidence_seconds or 0.0,
            len(kept),
        )
        shown = {f.id for f in kept}
        for item in gathered:
            item.in_prompt = item.id in shown
        return kept

    async def add_history(self, history: History | None, keep: Callable[[Evidence], None]) -> None:
        """The history finding; without it the run goes on (a safety bound: its Prometheus
        query has its own, so our records always count)."""
        if history is None:
            return
        try:
            async with asyncio.timeout(self.settings.backend_timeout * 2 + 5):
                found = await history()
        except Exception as exc:  # the store failed: no history, said in the log
            log.warning("history of this alert not read: %s", describe_error(exc))
            return
        if found is not None:
            found.order = -1
            keep(found)

    async def run(
        self,
        alert: AlertRecord,
        run: RunLog,
        *,
        findings: list[Evidence] | None = None,
        incident: str = "",
        history: History | None = None,
    ) -> Result:
        """Investigate one alert. Never raises for backend trouble: the result says what happened.

        ``findings``: the evidence already gathered (and in ``run``), as the prompt shows it;
        None gathers it now (with ``history``, the alert's history finding). ``incident``:
        the other alerts of its incident, for the prompt.
        """
        run.model = self.settings.model
        run.prompt_version = self.prompts.version
        if findings is None:
            findings = await self.gather(alert, run, history=history)
        fields = alert_fields(alert)
        fields["evidence"] = (
            render(findings) if self.settings.evidence_first else "(none gathered: use your tools)"
        )
        if incident:
            fields["evidence"] += "\n\n" + incident
        question = self.prompts.render("investigation", **fields)
        run.question = question
        final_text: str | None = None
        first = "agent"
        try:
            answered: str | None | _Unsupported = UNSUPPORTED
            if self._structured_first(findings):
                answered = await self._answer(question, run)
            if isinstance(answered, _Unsupported):  # the tools' path
                state = await self._agent(run, [f.signature() for f in findings]).ainvoke(
                    {"messages": [HumanMessage(question)]},
                    # Kubernetes reads stay in the namespaces the alert and its evidence name.
                    context=scoped_deps(
                        self.deps, alert, run.tool_calls, self.settings.allowed_namespaces
                    ),
                )
                final_text = _final_text(state["messages"])
            else:
                first, final_text = "answer", answered
        except LLM_ERRORS as exc:  # the model server failed: keep what was gathered
            # The worker adds whether it will be investigated again (it knows the attempts).
            url = redact(self.settings.llm_url)  # a setting: it may carry a password
            reason = f"LLM call failed ({url}): {llm_failure(exc)}"
            log.warning("investigation of %s: %s", alert.labels.get("alertname"), reason)
            status: Outcome = "degraded" if run.answered() else "failed"
            return Result(status, reason, llm_unavailable=server_down(exc))

        error = "the answer was empty"
        if final_text:
            try:
                analysis = self.validate(final_text, run)
            except CitationError as exc:  # invented ids: the retry names them
                return await self._repair(alert, run, final_text, str(exc), miscited=True)
            except ValueError as exc:
                error = str(exc)
            else:
                return Result("completed", analysis=analysis, raw_text=final_text)
        cut = run.cut_off(first)
        if cut == "length":
            error = (
                f"it was cut off at the {self.settings.num_predict}-token limit before it was"
                f" complete (done_reason: length), so {error}. Keep the analysis short"
            )
        elif cut == "repetition":
            error = (
                "it was stopped because it kept repeating the same text (done_reason:"
                f" repetition), so {error}. Write each point once"
            )
        elif final_text and first == "agent" and _not_json(error):
            error = f"it was prose, not JSON ({error})"
        return await self._repair(alert, run, final_text, error)

    def _structured_first(self, findings: list[Evidence]) -> bool:
        """Whether the first call is the final answer, constrained to the Analysis schema:
        when the evidence-first phase found something that answered (the model has what
        it needs without tools) and the model server takes a schema."""
        return (
            self.settings.first_call == "structured"
            and self.settings.evidence_first
            and not self._no_schema
            and any(f.answered() for f in findings)
        )

    async def _answer(self, question: str, run: RunLog) -> str | None | _Unsupported:
        """The first call as the final answer, constrained to the Analysis schema; a model
        server that refuses the schema is asked again without it (the tools' path) and
        not asked for one again."""
        messages = [SystemMessage(self.prompts.render("system")), HumanMessage(question)]
        try:
            with run.metered("answer") as meter:
                schema = analysis_schema(run.gathered())  # cites only what it was shown
                reply = await constrained(self.model, schema).ainvoke(messages)
                meter.adopt(reply)
        except SCHEMA_REFUSED as exc:
            if not refused_schema(exc):
                raise
            self._refuse_schemas(exc)
            return UNSUPPORTED
        reply = clean_reply(reply)  # redacted where it arrives
        run.remember([reply])
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        return text.strip() or None

    def validate(self, text: str, run: RunLog) -> Analysis:
        """The analysis in ``text``, held to the schema, to saying what the evidence shows
        (not the instructions: :mod:`sre_agent.echoes`) and to citing what was gathered.
        Raises ValueError (CitationError for invented ids) with a message for the retry."""
        analysis = parse_analysis(text)
        facts = [run.question, *(item.output for item in run.evidence if item.in_prompt)]
        check_echo(analysis, self.told, "\n".join(facts))
        check_citations(analysis, run.gathered())
        return analysis

    def salvage(self, run: RunLog, reason: str) -> Result:
        """What a run cut short (the deadline) still has: the model's last complete answer,
        completed if it validates, else a report with it and the evidence."""
        ongoing = _ongoing(run)
        if ongoing:
            reason = f"{reason}; {ongoing}"
        answer = run.last_answer
        if answer:
            try:
                analysis = self.validate(answer, run)
            except CitationError as exc:  # not shown: its citations are invented
                reason, answer = f"{reason}; the model's last answer {exc}", None
            except ValueError as exc:
                reason = f"{reason}; the model's last answer is not a valid analysis: {exc}"
            else:
                kept = f"{reason}; the analysis is the model's last complete answer"
                return Result("completed", kept, analysis=analysis, raw_text=answer)
        status: Outcome = "degraded" if run.answered() or answer else "failed"
        return Result(status, reason, raw_text=answer)

    def sources(self, alert: AlertRecord, run: RunLog) -> Sources:
        """Which backends answered this run (:func:`sources.compute_sources`)."""
        return sources.compute_sources(
            run.evidence,
            prometheus=self.deps.prometheus is not None,
            kubernetes=self.deps.kube is not None,
            graph_base=sources.graph_base(
                self.settings.prometheus_external_url, alert.generatorURL
            ),
        )

    async def _repair(
        self,
        alert: AlertRecord,
        run: RunLog,
        final_text: str | None,
        error: str,
        *,
        miscited: bool = False,
    ) -> Result:
        """One more call, constrained to the Analysis JSON schema, with the validation error.

        A first answer that cited ids never gathered (``miscited``) is not kept as the
        raw text: no report shows invented citations.
        """
        kept_text = None if miscited else final_text
        notes = self._notes(alert, run, final_text)
        prompt = self.prompts.render("repair", error=error, notes=notes)
        messages = [SystemMessage(self.prompts.render("system")), HumanMessage(prompt)]
        try:
            reply = await self._retry_call(messages, run)
        except LLM_ERRORS as exc:
            reason = f"final answer invalid ({error}); retry failed: {llm_failure(exc)}"
            return Result("degraded", reason, raw_text=kept_text, llm_unavailable=server_down(exc))
        run.remember([reply])
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        try:
            analysis = self.validate(text, run)
            return Result("completed", analysis=analysis, raw_text=text)
        except ValueError as exc:
            reason = f"the model gave no valid analysis after one retry: {exc}"
            if isinstance(exc, CitationError):
                return Result("degraded", reason, raw_text=kept_text)
            cut = run.cut_off("repair")
            if cut == "length":
                reason += f" (the retry was cut off at {self.settings.num_predict} tokens)"
            elif cut == "repetition":
                reason += " (the retry was stopped: it kept repeating itself)"
            return Result("degraded", reason, raw_text=kept_text or text)

    async def _retry_call(self, messages: list[BaseMessage], run: RunLog) -> BaseMessage:
        """The retry's model call: held to the schema (citing only what the model was
        shown), unless the server refuses schemas: then, and from then on, asked plainly."""
        for held in (not self._no_schema, False):
            model = constrained(self.model, analysis_schema(run.gathered())) if held else self.model
            try:
                with run.metered("repair") as meter:
                    reply = await model.ainvoke(messages)
                    meter.adopt(reply)
                return clean_reply(reply)  # redacted where it arrives
            except SCHEMA_REFUSED as exc:
                if not (held and refused_schema(exc)):
                    raise
                self._refuse_schemas(exc)
        raise AssertionError("unreachable: the plain call returns or raises")

    def _refuse_schemas(self, exc: BaseException) -> None:
        self._no_schema = True
        log.warning(
            "the model server refused a JSON schema (%s): the first call and the retry go"
            " without one from now on (restart sre-agent after changing the server)",
            describe_error(exc),
        )

    def _notes(self, alert: AlertRecord, run: RunLog, final_text: str | None) -> str:
        """What the model saw, within the evidence budget, for the schema-constrained retry."""
        budget = self.settings.evidence_budget_tokens * 4
        parts = [self.prompts.render("investigation", **alert_fields(alert))]
        for item in run.evidence:
            if not item.in_prompt:  # not shown before: not citable now either
                continue
            label = f"[{item.id}] " if item.id else ""
            block = f"## {label}{item.title}\n{item.output}"
            if len(block) > budget:
                block = block[: max(0, budget)]
            budget -= len(block)
            parts.append(block)
            if budget <= 0:
                break
        if final_text:  # a cut-off answer ran long: its start is all the retry needs
            shown = 1000 if run.cut_off() else 4000
            parts.append(f"## Your previous answer\n{final_text[:shown]}")
        return "\n\n".join(parts)


def _final_text(messages: list[BaseMessage]) -> str | None:
    """The model's last answer that is not a tool call (nor the call-limit notice)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            content = message.content if isinstance(message.content, str) else ""
            if not message.response_metadata and content.startswith("Model call limit"):
                return None
            return content.strip() or None
        if isinstance(message, AIMessage | ToolMessage):
            return None
    return None


def llm_failure(exc: BaseException) -> str:
    """A model-server failure, for a reason: ours already says what the server did
    (redacted where it was made, in :mod:`sre_agent.llm`)."""
    return str(exc)[:500] if isinstance(exc, ModelServerError) else describe_error(exc)


def _not_json(error: str) -> bool:
    return "no JSON" in error


def _ongoing(run: RunLog) -> str:
    """What the model call the deadline cut was doing, if one was."""
    if not run.calls_detail or run.calls_detail[-1].ended != "cancelled":
        return ""
    call = run.calls_detail[-1]
    what = f"LLM call {len(run.calls_detail)} ({call.kind}) was cut after {call.seconds:g} s"
    if call.completion_tokens:
        return f"{what}: the model was still generating (~{call.completion_tokens} tokens)"
    return f"{what}: the model server had sent no tokens yet"
