"""The investigation pipeline: an evidence stage for every alert at once, then the model
for the alerts that need it, in priority order, within a deadline per run.

1. **Evidence** (``SRE_AGENT_EVIDENCE_CONCURRENCY`` tasks, no GPU): each new alert's
   evidence is gathered and stored as its *evidence report* within moments of its
   arrival, and the alert joins its incident (:meth:`Store.join_incident`,
   :mod:`sre_agent.incidents`). A head whose analysis is already in links the
   newcomer it explains at once.
2. **Model** (``SRE_AGENT_MAX_CONCURRENT`` runs): a dispatcher reads the queued
   alerts whose report is in and runs the next one :func:`sre_agent.dispatch.pick`
   chooses: each incident's head first, once its incident has settled; members its
   analysis explains become ``linked`` when it completes; the others run on their own.

Status moves queued -> running -> completed | degraded | failed, or queued -> linked;
an alert that resolves while still queued ends ``cancelled``. Work left queued or
running when the process died is taken up again by :meth:`Worker.start` (the store
holds every decision: nothing lives only in memory).

Several replicas on one Postgres database share the queue, which is the table: each
stage takes an alert under a lease (:meth:`Store.lease_evidence`, :meth:`Store.claim`)
that this worker renews every third of SRE_AGENT_LEASE_SECONDS while it works. A
replica that dies leaves leases that expire; the others then take its work up (an
evidence report nobody is gathering, a run nobody is renewing), and none runs twice
while its lease is live. New work wakes the other replicas at once (LISTEN/NOTIFY,
:meth:`Worker.listen`); a sweep every :data:`SWEEP` seconds is the safety net.

Store calls run off the event loop -- writes on the store's writer thread
(:meth:`Store.call`), reads in a thread -- and each is awaited, so a run is claimed
before it starts and stored before the hooks and :meth:`Worker.wait` see it. The worker
renders nothing: each medium presents the stored record (:mod:`sre_agent.report`,
:mod:`sre_agent.notify`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import psycopg

from sre_agent import dispatch
from sre_agent import incidents as rule
from sre_agent.agent import History, Investigator, Result, RunLog, describe_error
from sre_agent.backends import check_ollama
from sre_agent.db import CHANNEL
from sre_agent.findings import fit_budget
from sre_agent.memory import Memory
from sre_agent.metrics import Metrics
from sre_agent.models import Evidence, Investigation
from sre_agent.store import WILL_RETRY, AtCapacity, LeaseLost, Store, no_retry
from sre_agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Runs of one investigation at most, re-investigations included: a model server that
#: lists its models but fails every chat must not keep us looping.
MAX_ATTEMPTS = 3
#: Seconds between attempts to mark a run failed when the store refuses writes.
FAIL_RETRY_DELAYS = (0.5, 2.0)
#: Seconds the dispatcher sleeps when nothing wakes it (a safety net: evidence, runs
#: ending and resolved alerts wake it at once).
IDLE_POLL = 5.0
#: Other alerts of its incident named in a head's prompt.
PROMPT_MEMBERS = 12
#: Seconds between an evidence task's looks at the table for work no replica holds.
SWEEP = 5.0
#: Seconds the dispatcher leaves an alert alone that another replica holds, or that the
#: global cap (SRE_AGENT_MAX_CONCURRENT_TOTAL) kept from starting.
BUSY_BACKOFF = 2.0

Hook = Callable[[Investigation], Awaitable[None]]


class Worker:
    def __init__(
        self,
        store: Store,
        investigator: Investigator,
        *,
        concurrency: int,
        timeout: float,
        on_finished: Hook | None = None,
        on_evidence: Hook | None = None,
        on_incident: Callable[[str], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.investigator = investigator
        self.settings = investigator.settings
        self.concurrency = concurrency
        self.timeout = timeout
        #: Called with the stored record after each finish (metrics, Slack; see services.py).
        self.on_finished = on_finished
        #: Called with the record once its evidence report is stored and it joined its incident.
        self.on_evidence = on_evidence
        #: Called with an incident's id whenever it changed (joins, head, analysis, resolved).
        self.on_incident = on_incident
        self.metrics = metrics
        self.queue: asyncio.Queue[str] = asyncio.Queue()  # the evidence stage's
        self._tasks: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._relinked: set[str] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._model_depth = 0
        self._finished: dict[str, asyncio.Event] = {}
        #: This process' name in its leases: the replica's, then this start's own.
        self.owner = f"{self.settings.replica_id}/{uuid.uuid4().hex[:8]}"
        self.lease_seconds = self.settings.lease_seconds
        self._held: set[str] = set()  # ids this process holds leases on
        self._busy: dict[str, float] = {}  # id -> monotonic time to try it again
        self._capped_until = 0.0  # SRE_AGENT_MAX_CONCURRENT_TOTAL reached: pick none till then
        #: The alert's history for the first prompt (SRE_AGENT_HISTORY).
        self.memory = (
            Memory(store, investigator.deps, self.settings.evidence_budget_tokens)
            if self.settings.history
            else None
        )

    async def start(self) -> None:
        resumed = await self.store.call(self.store.requeue_unfinished, self.settings.replica_id)
        for ident in resumed:  # those whose report is in skip straight to the model's queue
            self.submit(ident)
        if resumed:
            log.info("resuming %d investigation(s) left unfinished by the last run", len(resumed))
        if self.store.url is not None:  # shared with other replicas (one SQLite process
            # knows all its work: what it was given, and at start what the last one left)
            self._tasks.append(asyncio.create_task(self._keep_leases(), name="leases"))
            self._tasks.append(asyncio.create_task(self.listen(self.store.url), name="listen"))
        if self.settings.reinvestigate:
            self._tasks.append(asyncio.create_task(self._reinvestigate(), name="reinvestigate"))
        self._tasks += [
            asyncio.create_task(self._evidence_loop(), name=f"evidence-{i}")
            for i in range(self.settings.evidence_concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._dispatch(), name="dispatcher"))

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._runs])
        self._tasks = []

    def submit(self, ident: str) -> None:
        """A new (or resumed) investigation: its evidence first."""
        self.queue.put_nowait(ident)

    def poke(self) -> None:
        """Something the model's queue depends on changed (an alert resolved)."""
        self._wake.set()

    def announced(self) -> None:
        """Another replica announced work (Postgres NOTIFY): look for it now."""
        self._wake.set()
        for _ in range(min(self.settings.evidence_concurrency, 8) - self.queue.qsize()):
            self.queue.put_nowait("")  # each evidence task sweeps the table once

    @property
    def depth(self) -> int:
        """Alerts waiting: for their evidence, or (report in) for the model."""
        return self.queue.qsize() + self._model_depth

    async def wait(self, ident: str, timeout: float) -> Investigation | None:
        """The record once it is final, or as it is when ``timeout`` runs out."""
        event = self._finished.setdefault(ident, asyncio.Event())
        record = await asyncio.to_thread(self.store.get, ident)
        if record is None or record.final:
            if not event.is_set() and self._finished.get(ident) is event:
                del self._finished[ident]  # nobody will set it: do not keep it
            return record
        deadline = time.monotonic() + timeout
        while True:  # on a shared database another replica may run it: look now and then
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(min(left, 1.0) if self.store.shared else left):
                    await event.wait()
            except TimeoutError:
                pass
            record = await asyncio.to_thread(self.store.get, ident)
            if record is None or record.final or time.monotonic() >= deadline:
                return record
            if event.is_set():  # set, yet not final (another replica holds it): wait on
                event = self._finished.setdefault(ident, asyncio.Event())

    def _done(self, ident: str) -> None:
        event = self._finished.pop(ident, None)
        if event is not None:
            event.set()

    # --- one alert, start to end (the CLI's investigate, the lab, eval) ------------------
    async def process(self, ident: str) -> None:
        """Evidence, then the model's run, now: an incident of its own."""
        await self.gather_stage(ident, alone=True)
        await self.model_stage(ident)

    # --- stage 1: the evidence report -----------------------------------------------------
    async def _evidence_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(SWEEP if self.store.shared else None):
                    hint: str | None = await self.queue.get()
            except TimeoutError:
                hint = None  # nothing submitted here: look for work nobody holds
            else:
                self.queue.task_done()
            try:
                ident = await self.store.call(
                    self.store.lease_evidence, self.owner, self.lease_seconds, hint or None
                )
            except Exception:  # the store failed: the sweep tries again
                log.exception("evidence: the queue could not be read")
                continue
            if ident is None:  # another replica has it, or it is done
                continue
            self._held.add(ident)
            try:
                await self.gather_stage(ident)
            except Exception:  # the store failed: its lease expires, and a sweep retries it
                log.exception("investigation %s: its evidence report could not be stored", ident)
            finally:
                await self._release(ident)
                self._wake.set()

    async def listen(self, url: str) -> None:
        """Wake at once when another replica stores new work or frees a slot (Postgres
        LISTEN/NOTIFY); reconnects after a failure, the sweep covering the gap."""
        delay = 1.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=5
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 1.0
                    async for note in conn.notifies():
                        if note.payload != self.store.instance:  # not our own
                            self.announced()
            except psycopg.Error as exc:
                log.warning("LISTEN %s: %s; again in %.0f s", CHANNEL, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _release(self, ident: str) -> None:
        self._held.discard(ident)
        try:
            await self.store.call(self.store.release, ident, self.owner)
        except Exception:  # it expires instead
            log.exception("investigation %s: its lease could not be released", ident)

    async def _keep_leases(self) -> None:
        """Renew this process' leases every third of their length; queue again the runs
        of replicas whose leases expired (they died, or hung)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = sorted(self._held)
                kept = await self.store.call(
                    self.store.renew_leases, self.owner, held, self.lease_seconds
                )
                # held then and still, yet not renewed (one released meanwhile is no loss)
                for lost in (set(held) & self._held) - kept:
                    log.warning(
                        "investigation %s: its lease was lost (this replica stalled?)", lost
                    )
                requeued = await self.store.call(self.store.requeue_expired)
            except Exception:
                log.exception("leases could not be renewed")
                continue
            if requeued:
                log.warning(
                    "%d run(s) of a replica that stopped renewing its leases queued again: %s",
                    len(requeued),
                    ", ".join(requeued[:5]),
                )
                self._wake.set()

    async def gather_stage(self, ident: str, *, alone: bool = False) -> Investigation | None:
        """Gather and store the evidence report (unless it is in), then join the incident."""
        record = await asyncio.to_thread(self.store.get, ident)
        if record is None or record.status != "queued":
            return record
        enabled = self.settings.incidents and not alone
        if record.evidence_at is None:
            run = RunLog()
            try:
                await self.investigator.gather(record.alert, run)
            except Exception:  # a bug of ours in the walk: the report says what answered
                log.exception("investigation %s: evidence phase failed", ident)
            save = functools.partial(
                self.store.save_evidence, window=self.settings.incident_window, enabled=enabled
            )
            stored = await self.store.call(
                save,
                ident,
                run.evidence,
                run.tool_calls,
                self.investigator.sources(record.alert, run),
                run.objects,
                run.usage(),
            )
            if stored is None:  # resolved meanwhile
                return None
            joined: Investigation | None = stored
        else:  # a restart: the report is in, the join may not be
            joined = await self.store.call(
                self.store.join_incident, ident, self.settings.incident_window, enabled
            )
        if joined is None:
            return None
        if record.evidence_at is None:
            log.info(
                "investigation %s: evidence report in (%d finding(s)), incident %s%s",
                ident,
                len(joined.evidence),
                joined.incident_id,
                f" joined: {joined.joined[0].reason}" if joined.joined else "",
            )
        if self.metrics is not None:
            self.metrics.observe_report(joined)
            if record.incident_id is None and joined.incident_id and not joined.joined:
                self.metrics.incidents.inc()  # it joined none: a new incident
        await self._hook(self.on_evidence, joined)
        if joined.status == "linked":
            await self._finish_hooks([joined])
        if joined.incident_id:
            await self._incident_hook(joined.incident_id)
        return joined

    # --- stage 2: the model ---------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                ident = await self._next()
            except BaseException:
                self._slots.release()
                raise
            self._running.add(ident)
            task = asyncio.create_task(self._model_task(ident), name=f"model-{ident}")
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _next(self) -> str:
        """The next investigation to give the model; waits until there is one."""
        while True:
            capped = self._capped_until - time.monotonic()
            if capped > 0:  # no queue reads while the replicas are at their cap
                await asyncio.sleep(capped)
            self._wake.clear()
            try:
                queued, incidents, heads, pending = await asyncio.to_thread(
                    self.store.model_queue, 2 * self.settings.evidence_timeout
                )
                now = time.monotonic()
                self._busy = {i: t for i, t in self._busy.items() if t > now}
                choice = dispatch.pick(
                    queued,
                    incidents,
                    heads,
                    self._running | set(self._busy),
                    self.settings,
                    pending=pending,
                )
            except Exception:  # the store failed: try again shortly
                log.exception("model queue: could not be read")
                choice = dispatch.Choice(wake_in=IDLE_POLL)
            self._model_depth = sum(choice.depth.values())
            if self.metrics is not None:
                self.metrics.set_model_queue(choice.depth)
            for head_id in dict.fromkeys(choice.relink):
                if head_id not in self._relinked:  # once: it cannot link them twice
                    self._relinked.add(head_id)
                    await self._link_to(head_id)
            if choice.ident is not None:
                if choice.set_head is not None:
                    await self.store.call(self.store.set_head, *choice.set_head)
                    await self._incident_hook(choice.set_head[0])
                if self.metrics is not None:
                    picked = next(q for q in queued if q.id == choice.ident)
                    role = "head" if choice.head else "own"
                    self.metrics.observe_wait(picked.severity, role, choice.waited)
                if choice.storm:
                    log.info("storm: %d alerts wait for the model; heads first", self._model_depth)
                return choice.ident
            try:
                async with asyncio.timeout(max(0.05, choice.wake_in or IDLE_POLL)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _model_task(self, ident: str) -> None:
        try:
            await self.model_stage(ident)
        except Exception as exc:  # never let one investigation take the dispatcher down
            log.exception("investigation %s: unexpected error", ident)
            # and never leave it "running" until the next restart
            await self._fail(ident, f"internal error: {describe_error(exc)}")
        finally:
            self._running.discard(ident)
            self._slots.release()
            self._done(ident)
            self._wake.set()

    async def model_stage(self, ident: str) -> None:
        """The model's run of one queued investigation, from its stored evidence report."""
        try:
            record = await self.store.call(
                self.store.claim,
                ident,
                self.owner,
                self.lease_seconds,
                self.settings.max_concurrent_total if self.store.shared else None,
            )
        except AtCapacity:  # the replicas run all they may: the dispatcher waits a while
            self._capped_until = time.monotonic() + BUSY_BACKOFF
            return
        if record is None:  # cancelled (resolved), linked, done, or another replica's
            self._busy[ident] = time.monotonic() + BUSY_BACKOFF
            return
        self._held.add(ident)
        try:
            await self._run(ident, record)
        except LeaseLost as exc:  # it stalled past its lease: the other replica's run counts
            log.warning("%s; this replica's run of it is dropped", exc)
        except Exception as exc:  # never left "running": failed, before the lease goes
            log.exception("investigation %s: unexpected error", ident)
            await self._fail(ident, f"internal error: {describe_error(exc)}")
        finally:
            await self._release(ident)

    async def _run(self, ident: str, record: Investigation) -> None:
        alert = record.alert
        log.info("investigation %s started: %s", ident, alert.labels.get("alertname"))
        run = RunLog()
        findings = self._restore(record, run)
        if findings is not None:
            findings = await self._with_history(record, run, findings)
        context = await self._incident_context(record)
        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel (stop()) that
            # comes as the run ends, and the worker would loop on past its stop.
            async with asyncio.timeout(self.timeout):
                result = await self.investigator.run(
                    alert, run, findings=findings, incident=context, history=self._history(record)
                )
        except TimeoutError:
            reason = f"deadline of {self.timeout:g} s reached (SRE_AGENT_INVESTIGATION_TIMEOUT)"
            result = self.investigator.salvage(run, reason)  # keeps what the run had done
        except Exception as exc:
            log.exception("investigation %s failed", ident)
            result = Result("failed", f"internal error: {describe_error(exc)}")
        elapsed = time.perf_counter() - started
        try:
            await self.store.call(self._store_result, ident, record, result, run, elapsed)
        except LeaseLost:
            raise
        except Exception as exc:  # disk full, an unencodable text...: failed, never "running"
            log.exception("investigation %s: its result could not be stored", ident)
            result = Result("failed", f"the result could not be stored: {describe_error(exc)}")
            await self._fail(ident, str(result.reason))
        log.info(
            "investigation %s %s in %.1f s (%d LLM calls, %d tool calls)%s",
            ident,
            result.status,
            elapsed,
            run.llm_calls,
            len(run.tool_calls),
            f": {result.reason}" if result.reason else "",
        )
        stored = await asyncio.to_thread(self.store.get, ident)
        linked: list[Investigation] = []
        if stored is not None and stored.llm_retry and record.incident_id:
            linked = await self.store.call(self.store.head_awaits_model, ident)
        elif result.status == "completed" and record.incident_id:
            linked = await self.store.call(self.store.head_finished, ident)
            if linked:
                log.info(
                    "investigation %s explains %d other alert(s) of its incident",
                    ident,
                    len(linked),
                )
        await self._finish_hooks([r for r in (stored, *linked) if r is not None])
        if record.incident_id:
            await self._incident_hook(record.incident_id)

    def _restore(self, record: Investigation, run: RunLog) -> list[Evidence] | None:
        """The stored evidence report into ``run``, and the findings the prompt shows;
        None (gather again) when there is none or it is older than
        SRE_AGENT_EVIDENCE_MAX_AGE."""
        if not record.evidence_at or not self.settings.evidence_first:
            return None
        age = (datetime.now(UTC) - _parse(record.evidence_at)).total_seconds()
        if age > self.settings.evidence_max_age:
            log.info("investigation %s: evidence is %.0f s old: gathering it again", record.id, age)
            return None
        run.evidence = [e for e in record.evidence if e.phase == "evidence"]
        run.tool_calls = [c for c in record.tool_calls if c.phase == "evidence"]
        run.objects = list(record.objects)
        run.evidence_seconds = record.llm_usage.evidence_seconds
        run.next_id = 1 + max((_number(e.id) for e in run.evidence), default=0)
        shown = [e for e in run.evidence if e.in_prompt]
        return fit_budget(shown, self.settings.evidence_budget_tokens)

    async def _incident_context(self, record: Investigation) -> str:
        """For a run in an incident of several alerts: the others, for the prompt."""
        if not record.incident_id:
            return ""
        members = await asyncio.to_thread(self.store.incident_members, record.incident_id)
        others = [m for m in members if m.id != record.id]
        if not others:
            return ""
        lines = [
            f"## Other alerts of this incident ({len(others)})",
            "They joined this alert because they share what it is about. Say in the"
            " summary which of them the root cause explains.",
        ]
        for member in others[:PROMPT_MEMBERS]:
            why = rule.link(record, member)
            lines.append(
                f"- {member.alertname} ({member.severity})"
                + (f": {why.reason}" if why is not None else "")
            )
        if len(others) > PROMPT_MEMBERS:
            lines.append(f"- ... and {len(others) - PROMPT_MEMBERS} more")
        return "\n".join(lines)

    async def _with_history(
        self, record: Investigation, run: RunLog, findings: list[Evidence]
    ) -> list[Evidence]:
        """The stored report's findings with the alert's history first (read now, before
        the model: only alerts the model runs for pay for it, and it is as fresh as it
        gets); the rest refitted into what the history leaves of the budget."""
        history = self._history(record)
        if history is None:
            return findings
        kept: list[Evidence] = []
        await self.investigator.add_history(history, kept.append)
        if not kept:
            return findings
        # A run again (the model server came back): today's history replaces the last.
        old = {e.id for e in run.evidence if e.tool == "history"}
        run.evidence = [e for e in run.evidence if e.id not in old]
        run.tool_calls = [c for c in run.tool_calls if c.id not in old]
        item = kept[0]
        item.id = f"E{run.next_id}"
        run.next_id += 1
        run.evidence.insert(0, item)
        run.tool_calls.insert(0, item.tool_call())
        shown = [item, *(e for e in run.evidence[1:] if e.in_prompt)]
        fitted = fit_budget(shown, self.settings.evidence_budget_tokens)
        ids = {e.id for e in fitted}
        for e in run.evidence:
            e.in_prompt = e.id in ids
        return fitted

    def _history(self, record: Investigation) -> History | None:
        """What makes the record's history finding (SRE_AGENT_HISTORY), for the gatherer."""
        if self.memory is None:
            return None
        return functools.partial(self.memory.history, record)

    async def _remember(self, record: Investigation) -> Investigation:
        """Index the record and find the past investigations like it ("Seen before");
        a failure here costs the list, never the investigation."""
        try:
            return await self.store.call(self.store.remember, record.id) or record
        except Exception:
            log.exception("investigation %s: similar investigations not found", record.id)
            return record

    async def _link_to(self, head_id: str) -> None:
        linked = await self.store.call(self.store.head_finished, head_id)
        await self._finish_hooks(linked)

    # --- hooks --------------------------------------------------------------------------
    async def _finish_hooks(self, records: Iterable[Investigation]) -> None:
        for record in records:
            record = await self._remember(record)  # final: "Seen before" for what it is
            if self.metrics is not None:
                self.metrics.observe_explained(record)
            await self._hook(self.on_finished, record)
            self._done(record.id)

    async def _hook(self, hook: Hook | None, record: Investigation) -> None:
        if hook is None:
            return
        try:
            await hook(record)
        except Exception:
            log.exception("investigation %s: hook failed", record.id)

    async def _incident_hook(self, incident_id: str) -> None:
        if self.on_incident is None:
            return
        try:
            await self.on_incident(incident_id)
        except Exception:
            log.exception("incident %s: hook failed", incident_id)

    async def alerts_resolved(self, records: Iterable[Investigation]) -> None:
        """Alerts resolved at intake: their incidents changed, the model's queue too."""
        for incident_id in dict.fromkeys(r.incident_id for r in records if r.incident_id):
            await self._incident_hook(incident_id)
        self._wake.set()

    # --- re-investigation ----------------------------------------------------------------
    async def _reinvestigate(self) -> None:
        """Alerts that got only an evidence report because the model server failed are
        investigated again once it answers (SRE_AGENT_REINVESTIGATE)."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.reinvestigate_interval)
            try:
                if not await asyncio.to_thread(self.store.awaiting_llm, MAX_ATTEMPTS):
                    continue
                if not (await check_ollama(settings))["ok"]:
                    continue
                idents = await self.store.call(self.store.requeue_for_llm, MAX_ATTEMPTS)
            except Exception:  # a hiccup here must not end the loop
                log.exception("re-investigation check failed")
                continue
            if idents:
                log.info(
                    "the model server answers again: investigating %d alert(s) again", len(idents)
                )
            for ident in idents:
                self.submit(ident)

    async def _fail(self, ident: str, reason: str) -> bool:
        """Mark a running investigation failed; retried, since the store may be what failed."""
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        owner = self.owner if self.store.shared else ""
        for delay in (*FAIL_RETRY_DELAYS, None):
            try:
                await self.store.call(self.store.fail_running, ident, reason, owner)
                return True
            except LeaseLost as exc:  # another replica runs it now: its run decides
                log.warning("%s; not marked failed here", exc)
                return False
            except Exception:
                log.exception("investigation %s: could not be marked failed", ident)
            if delay is not None:
                await asyncio.sleep(delay)
        return False

    def _store_result(
        self, ident: str, record: Investigation, result: Result, run: RunLog, elapsed: float
    ) -> None:
        """Store the run (on the store's thread: a large record takes a while to encode)."""
        retry = result.llm_unavailable and self.settings.reinvestigate
        if retry and record.attempts >= MAX_ATTEMPTS:
            retry = False
            result.reason = no_retry(result.reason, f"{MAX_ATTEMPTS} runs made")
        elif retry:
            result.reason = f"{result.reason or 'the model server failed'}{WILL_RETRY}"
        done = record.model_copy(
            update={
                "status": result.status,
                "status_reason": result.reason,
                "evidence": run.evidence,
                "tool_calls": run.tool_calls,
                "llm_usage": run.usage(),
                "sources": self.investigator.sources(record.alert, run),
                "objects": run.objects or record.objects,
                "analysis": result.analysis,
                "raw_text": result.raw_text,
                "duration_s": elapsed,
                "llm_retry": retry,
            }
        )
        self.store.finish(done, self.owner if self.store.shared else "")


def _parse(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _number(ident: str) -> int:
    match = re.fullmatch(r"E(\d+)", ident)
    return int(match.group(1)) if match else 0
