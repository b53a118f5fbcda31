"""Follow-up chat about one investigation.

The stored investigation (alert, analysis, redacted evidence) is the system
prompt; nothing is re-run. The agent is the investigation's: the same
``ChatOllama`` settings, read-only tools, guards and limits. The conversation
is a LangGraph thread (``thread_id`` = investigation id) checkpointed by
``AsyncSqliteSaver`` into the service's own SQLite file (``AsyncPostgresSaver`` into
its Postgres database, so any replica answers a follow-up), so it survives
restarts. Each model call fits ``prompt_budget_tokens``: older tool results
are cleared first, then the oldest turns are left out of the request (the
stored history keeps them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
from langchain.agents import create_agent
from langchain.agents.middleware import ClearToolUsesEdit
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sre_agent_tools import ToolDeps, make_tools
from sre_agent_tools.redact import redact

from sre_agent import tokens
from sre_agent.agent import (
    LLM_ERRORS,
    RunLog,
    alert_fields,
    describe_error,
    guarded_middleware,
    scoped_deps,
)
from sre_agent.chat_events import Event, EventStream
from sre_agent.chat_limits import ChatLimits
from sre_agent.db import CHAT_SETUP_LOCK
from sre_agent.db_url import is_postgres
from sre_agent.findings import fit_budget, render
from sre_agent.llm import make_model
from sre_agent.models import Analysis, Investigation
from sre_agent.prompts import Prompts, default_prompts_dir, load_prompts
from sre_agent.settings import Settings
from sre_agent.store import Store

log = logging.getLogger(__name__)

#: The longest question accepted (characters).
MAX_MESSAGE_CHARS = 4000
#: Tokens kept free below the budget for the chat template's own framing.
_MARGIN = 40
#: Placeholder for tool results cleared to stay within the budget.
_CLEARED = "[cleared to stay within the prompt budget]"


class ChatUnavailable(Exception):
    """The model server failed; the message names the URL and the setting."""


@dataclass
class TrimTurns:
    """A context edit: the oldest whole turns left out until the request fits ``limit``
    (``trim_messages``, counted with our tokenizer); the latest question always stays.

    Should the latest turn alone be too large, its tool results are shortened, then its
    longest texts. The stored history is untouched (this edits the request only).
    """

    limit: int

    def apply(self, messages: list[AnyMessage], *, count_tokens: Any) -> None:
        if count_tokens(messages) <= self.limit:
            return
        kept = trim_messages(
            messages,
            max_tokens=self.limit - 20,  # room for the note
            token_counter=count_tokens,
            strategy="last",
            start_on="human",
            allow_partial=False,
        )
        starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)] or [0]
        cut = len(messages) - len(kept) if kept else starts[-1]
        cut = min(cut, starts[-1])  # never past the latest question
        if cut > 0:
            first = messages[cut]
            note = f"[{cut} earlier messages left out to fit the prompt budget]\n\n"
            messages[cut] = first.model_copy(update={"content": note + str(first.content)})
            del messages[:cut]
        _shorten(messages, count_tokens, self.limit)


def _shorten(messages: list[AnyMessage], count_tokens: Any, limit: int) -> None:
    """Shorten the tool results first, then the longest texts, until ``messages`` fit."""
    sizes = [count_tokens([m]) for m in messages]
    over = sum(sizes) - limit
    order = sorted(
        range(len(messages)),
        key=lambda i: (not isinstance(messages[i], ToolMessage), -sizes[i]),
    )
    for i in order:
        message = messages[i]
        if over <= 0:
            break
        if not isinstance(message.content, str) or not message.content:
            continue
        text = message.content
        keep = max(0, sizes[i] - over - 20)
        cut_text = text[: int(len(text) * keep / max(1, sizes[i]))]
        messages[i] = message.model_copy(
            update={"content": cut_text + "\n… [shortened to fit the prompt budget]"}
        )
        new = count_tokens([messages[i]])
        over -= sizes[i] - new
        sizes[i] = new


class ChatService:
    """Answers questions about stored investigations; one conversation per investigation."""

    def __init__(self, settings: Settings, prompts: Prompts, deps: ToolDeps, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.deps = deps
        if "chat" not in prompts.templates:  # an older copy of the prompts: ours fills in
            prompts = load_prompts(default_prompts_dir())
        self.prompts = prompts
        self.model, self.tools = make_model(settings), make_tools()  # the investigation's
        self.tools_tokens = tokens.count(
            json.dumps([convert_to_openai_tool(t) for t in self.tools])
        )
        self._saver: AsyncSqliteSaver | AsyncPostgresSaver | None = None
        self._conn: aiosqlite.Connection | None = None
        self._pool: AsyncConnectionPool[Any] | None = None
        self._reader: Any = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._forgetting: dict[str, asyncio.Future[None]] = {}  # turns cut off, being dropped
        self._sizes: dict[tuple[Any, ...], int] = {}
        # Checked by the route before any work: questions per user, chats at once.
        self.limits = ChatLimits(settings.chat_rate_per_minute, settings.chat_max_concurrent)

    async def open(self) -> None:
        if is_postgres(self.settings.database_url):
            await self._open_postgres()
            return
        path = self.settings.database_path
        path.parent.mkdir(parents=True, exist_ok=True)
        # sqlite3's busy timeout, like the store's: writers wait for each other (WAL).
        # Autocommit: the checkpointer must never hold the write lock across an await,
        # or a store call on the event loop would wait out its busy timeout behind it.
        self._conn = await aiosqlite.connect(path, timeout=5.0, isolation_level=None)
        self._saver = AsyncSqliteSaver(self._conn)
        await self._saver.setup()
        self._reader = create_agent(self.model, self.tools, checkpointer=self._saver)

    async def _open_postgres(self) -> None:
        """The checkpoints in the store's Postgres database (LangGraph's Postgres
        checkpointer), so a follow-up works whichever replica answers it. Its tables are
        set up under an advisory lock: two replicas starting at once do it once."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.settings.database_url,
            min_size=1,
            max_size=4,
            timeout=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        )
        await pool.open(wait=True, timeout=15)
        try:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            async with pool.connection() as conn:
                # Tried, not waited for: a session waiting on the lock holds a snapshot,
                # and the setup's CREATE INDEX CONCURRENTLY waits for every snapshot: the
                # two replicas would wait for each other forever.
                await _take_lock(conn, CHAT_SETUP_LOCK)
                try:
                    await saver.setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (CHAT_SETUP_LOCK,))
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._saver = saver
        self._reader = create_agent(self.model, self.tools, checkpointer=self._saver)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = self._saver = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._saver = None

    async def forget(self, idents: Sequence[str]) -> None:
        """Drop the conversations of these investigations (retention deleted them)."""
        if self._saver is None:
            return
        for ident in idents:
            await self._saver.adelete_thread(ident)

    # --- history ------------------------------------------------------------
    async def messages(self, ident: str) -> list[BaseMessage]:
        state = await self._reader.aget_state(_config(ident))
        return list(state.values.get("messages", []))

    async def history(self, ident: str) -> list[dict[str, Any]]:
        """The conversation as the API shows it (the system prompt is not part of it)."""
        shown = []
        for message in await self.messages(ident):
            content = message.content if isinstance(message.content, str) else ""
            if isinstance(message, HumanMessage):
                shown.append({"role": "user", "content": content})
            elif isinstance(message, AIMessage):
                item: dict[str, Any] = {"role": "assistant", "content": content}
                if message.tool_calls:
                    item["tool_calls"] = [
                        {"name": c["name"], "args": c["args"]} for c in message.tool_calls
                    ]
                shown.append(item)
            elif isinstance(message, ToolMessage):
                shown.append({"role": "tool", "content": content, "name": message.name or ""})
        return shown

    # --- one turn -----------------------------------------------------------
    async def answer(self, ident: str, question: str) -> dict[str, Any]:
        """One turn, not streamed: the answer, the tool calls made and the usage."""
        calls: list[dict[str, Any]] = []
        async for kind, data in self.ask(ident, question):
            if kind == "tool_result":
                calls.append(data)
            elif kind == "error":
                raise ChatUnavailable(data["error"])
            elif kind == "done":
                return {"investigation_id": ident, **data, "tool_calls": calls}
        raise ChatUnavailable("the turn ended without an answer")  # pragma: no cover

    async def ask(self, ident: str, question: str) -> AsyncGenerator[Event, None]:
        """One turn, as events: tokens, tool calls and results, then done (or error)."""
        record = await asyncio.to_thread(self.store.get, ident)
        if record is None:
            raise KeyError(ident)
        lock = self._locks.setdefault(ident, asyncio.Lock())
        async with lock:
            if (forgetting := self._forgetting.pop(ident, None)) is not None:
                await forgetting  # a turn cut off before this one is dropped first
            # The question enters here: redacted before the model, the history or a log.
            async for event in self._turn(record, redact(question.strip())):
                yield event

    async def _turn(self, record: Investigation, question: str) -> AsyncIterator[Event]:
        run = RunLog(model=self.settings.model, prompt_version=self.prompts.version)
        config = _config(record.id)
        history = await self.messages(record.id)
        before = len(history)
        # This turn's tool results are cited after the investigation's and earlier turns'.
        run.next_id = _last_id(record) + sum(isinstance(m, ToolMessage) for m in history) + 1
        stream = EventStream()
        try:
            async with asyncio.timeout(self.settings.investigation_timeout):
                async for mode, chunk in self._agent(record, run, question).astream(
                    {"messages": [HumanMessage(question)]},
                    config,
                    context=self._scoped_deps(record),
                    stream_mode=["messages", "updates"],
                ):
                    for event in stream.feed(mode, chunk):
                        yield event
        except LLM_ERRORS as exc:
            await self._forget_turn(record.id, before)
            message = redact(
                f"the model server failed ({self.settings.llm_url}): {describe_error(exc)};"
                f" check that it runs there ({self.settings.llm_setting}) with the model"
                f" {self.settings.model!r} (SRE_AGENT_MODEL)"
            )
            log.warning("chat about %s: %s", record.id, message)
            yield "error", {"error": message}
            return
        except TimeoutError:
            await self._forget_turn(record.id, before)
            yield (
                "error",
                {
                    "error": f"no answer within {self.settings.investigation_timeout:.0f} s"
                    " (SRE_AGENT_INVESTIGATION_TIMEOUT)"
                },
            )
            return
        except Exception:
            log.exception("chat about %s failed", record.id)
            await self._forget_turn(record.id, before)
            yield "error", {"error": "internal error; see the service log"}
            return
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-turn: no half-answered question stays behind. Not
            # awaited here (a cancel scope would cut the wait short): the next turn does.
            forget = asyncio.ensure_future(self._forget_turn(record.id, before))
            self._forgetting[record.id] = forget
            raise
        for event in stream.close():  # a line whose message never completed
            yield event
        yield "done", {"answer": stream.answer, "usage": run.usage().model_dump(mode="json")}

    async def _forget_turn(self, ident: str, before: int) -> None:
        """A failed turn leaves no half-answered question in the history."""
        try:
            added = (await self.messages(ident))[before:]
            if added:
                removals = [RemoveMessage(id=m.id) for m in added if m.id]
                await self._reader.aupdate_state(_config(ident), {"messages": removals})
        except Exception:  # the history keeps the question; nothing worse
            log.exception("could not drop the failed turn of %s from the chat history", ident)

    def _scoped_deps(self, record: Investigation) -> ToolDeps:
        """The tools' clients, reading only the namespaces the investigation's evidence names."""
        return scoped_deps(
            self.deps,
            record.alert,
            record.tool_calls,
            self.settings.allowed_namespaces,
            owner="this chat's",
        )

    def _agent(self, record: Investigation, run: RunLog, question: str) -> Any:
        system = self._system_prompt(record, question)
        room = (
            self.settings.prompt_budget_tokens
            - (tokens.MESSAGE_OVERHEAD + tokens.count(system))
            - self.tools_tokens
            - _MARGIN
        )
        return create_agent(
            self.model,
            self.tools,
            system_prompt=system,
            middleware=guarded_middleware(
                self.settings,
                run,
                [
                    ClearToolUsesEdit(trigger=room, keep=1, placeholder=_CLEARED),
                    TrimTurns(limit=room),
                ],
                self._count,
            ),
            context_schema=ToolDeps,
            checkpointer=self._saver,
        )

    def _system_prompt(self, record: Investigation, question: str) -> str:
        """The investigation, with as much of its evidence as leaves room for the turn."""
        fields = alert_fields(record.alert)
        status: str = record.status
        if record.status_reason:
            status += f" ({record.status_reason})"
        fields.update(investigation=status, analysis=analysis_context(record), evidence="")
        total = self.settings.prompt_budget_tokens
        room = (
            total
            - tokens.count(self.prompts.render("chat", **fields))
            - self.tools_tokens
            - tokens.count(question)
            - total // 4  # for this turn's tool results and the latest turns
        )
        budget = min(self.settings.evidence_budget_tokens, total // 4, room)
        cited = {
            i
            for c in (record.analysis.root_causes if record.analysis else [])
            for i in c.evidence_ids
        }
        # What the analysis cites first, then the rest in the investigation's order.
        findings = [
            f
            for _, f in sorted(
                enumerate(record.evidence), key=lambda p: (p[1].id not in cited, p[0])
            )
        ]
        kept = fit_budget(findings, budget) if budget >= 60 else []
        if kept:
            fields["evidence"] = render(kept)
        elif findings:
            fields["evidence"] = "(left out to fit the prompt budget: use the tools)"
        else:
            fields["evidence"] = "(none was gathered)"
        return self.prompts.render("chat", **fields)

    def _count(self, messages: Sequence[BaseMessage]) -> int:
        """``tokens.count_messages``, remembered per message: old turns are counted once."""
        total = 0
        for m in messages:
            key = (m.id, type(m).__name__, len(str(m.content)), len(getattr(m, "tool_calls", ())))
            if m.id is None or key not in self._sizes:
                size = tokens.count_messages([m])
                if m.id is None:
                    total += size
                    continue
                if len(self._sizes) > 20_000:
                    self._sizes.clear()
                self._sizes[key] = size
            total += self._sizes[key]
        return total


def _last_id(record: Investigation) -> int:
    """The highest evidence id number the investigation gave (0 for none, or old rows)."""
    numbers = [int(item.id[1:]) for item in record.evidence if item.id[1:].isdigit()]
    return max(numbers, default=0)


def analysis_context(record: Investigation) -> str:
    """The analysis as the chat's system prompt gives it (the model's last text when
    there is none)."""
    if record.analysis is None:
        raw = (record.raw_text or "").strip()
        return raw[:2000] if raw else "(no analysis: see the investigation status)"
    return _analysis_lines(record.analysis)


def _analysis_lines(analysis: Analysis) -> str:
    lines = [f"Summary: {analysis.summary}"]
    for cause in analysis.root_causes:
        lines.append(f"Likely cause ({cause.confidence}): {cause.cause}")
        lines.extend(f"  - evidence: {e}" for e in cause.evidence)
        if cause.evidence_ids:
            lines.append(f"  - cites: {', '.join(cause.evidence_ids)}")
    lines.append(f"Impact: {analysis.impact}")
    lines.extend(f"Mitigation: {step}" for step in analysis.mitigation)
    return "\n".join(lines)


def _config(ident: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": ident}}


async def _take_lock(conn: Any, key: int) -> None:
    """Take a session advisory lock by trying every 0.2 s (see ``_open_postgres``)."""
    for _ in range(600):  # two minutes: a setup that long is stuck, say so
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,))).fetchone()
        if row["ok"]:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("chat's checkpoint tables: another replica held their setup for 2 min")
