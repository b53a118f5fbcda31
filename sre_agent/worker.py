"""The investigation queue: asyncio workers with bounded concurrency and a
deadline per investigation.

Status moves queued -> running -> completed | degraded | failed; an alert that
resolves while still queued ends ``cancelled``. Work that was queued or
running when the process died is taken up again by :meth:`Worker.start`.

Store calls run off the event loop -- writes on the store's writer thread
(:meth:`Store.call`), reads in a thread -- and each is awaited, so a run is claimed
before it starts and stored before ``on_finished`` and :meth:`Worker.wait` see it.
The worker renders nothing: it stores the :class:`Investigation`, and each medium
presents it when asked (:mod:`sre_agent.report`, :mod:`sre_agent.notify`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sre_agent.agent import Investigator, Result, RunLog, describe_error
from sre_agent.backends import check_ollama
from sre_agent.models import Investigation
from sre_agent.store import WILL_RETRY, Store, no_retry
from sre_agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Runs of one investigation at most, re-investigations included: a model server that
#: lists its models but fails every chat must not keep us looping.
MAX_ATTEMPTS = 3
#: Seconds between attempts to mark a run failed when the store refuses writes.
FAIL_RETRY_DELAYS = (0.5, 2.0)


class Worker:
    def __init__(
        self,
        store: Store,
        investigator: Investigator,
        *,
        concurrency: int,
        timeout: float,
        on_finished: Callable[[Investigation], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        #: Called with the stored record after each finish (metrics, Slack; see app.py).
        self.on_finished = on_finished
        self.investigator = investigator
        self.concurrency = concurrency
        self.timeout = timeout
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._finished: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        resumed = await self.store.call(self.store.requeue_unfinished)
        for ident in resumed:
            self.submit(ident)
        if resumed:
            log.info("resuming %d investigation(s) left unfinished by the last run", len(resumed))
        if self.investigator.settings.reinvestigate:
            self._tasks.append(asyncio.create_task(self._reinvestigate(), name="reinvestigate"))
        self._tasks += [
            asyncio.create_task(self._loop(), name=f"worker-{i}") for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    def submit(self, ident: str) -> None:
        self.queue.put_nowait(ident)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def wait(self, ident: str, timeout: float) -> Investigation | None:
        """The record once it is final, or as it is when ``timeout`` runs out."""
        event = self._finished.setdefault(ident, asyncio.Event())
        record = await asyncio.to_thread(self.store.get, ident)
        if record is None or record.final:
            if not event.is_set() and self._finished.get(ident) is event:
                del self._finished[ident]  # nobody will set it: do not keep it
            return record
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        return await asyncio.to_thread(self.store.get, ident)

    async def _reinvestigate(self) -> None:
        """Alerts that got only an evidence report because the model server failed are
        investigated again once it answers (SRE_AGENT_REINVESTIGATE)."""
        settings = self.investigator.settings
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
                log.info("Ollama answers again: investigating %d alert(s) again", len(idents))
            for ident in idents:
                self.submit(ident)

    async def _loop(self) -> None:
        while True:
            ident = await self.queue.get()
            try:
                await self.process(ident)
            except Exception as exc:  # never let one investigation take a worker down
                log.exception("investigation %s: unexpected error", ident)
                # and never leave it "running" until the next restart
                await self._fail(ident, f"internal error: {describe_error(exc)}")
            finally:
                self.queue.task_done()
                event = self._finished.pop(ident, None)
                if event is not None:
                    event.set()

    async def _fail(self, ident: str, reason: str) -> bool:
        """Mark a running investigation failed; retried, since the store may be what failed."""
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        for delay in (*FAIL_RETRY_DELAYS, None):
            try:
                await self.store.call(self.store.fail_running, ident, reason)
                return True
            except Exception:
                log.exception("investigation %s: could not be marked failed", ident)
            if delay is not None:
                await asyncio.sleep(delay)
        return False

    async def process(self, ident: str) -> None:
        record = await self.store.call(self.store.claim, ident)
        if record is None:  # cancelled (resolved) or already done
            return
        alert = record.alert
        name = alert.labels.get("alertname")
        log.info("investigation %s started: %s", ident, name)
        run = RunLog()
        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel (stop()) that
            # comes as the run ends, and the worker would loop on past its stop.
            async with asyncio.timeout(self.timeout):
                result = await self.investigator.run(alert, run)
        except TimeoutError:
            reason = f"deadline of {self.timeout:g} s reached (SRE_AGENT_INVESTIGATION_TIMEOUT)"
            result = self.investigator.salvage(run, reason)  # keeps what the run had done
        except Exception as exc:
            log.exception("investigation %s failed", ident)
            result = Result("failed", f"internal error: {describe_error(exc)}")
        elapsed = time.perf_counter() - started
        try:
            await self.store.call(self._store_result, ident, record, result, run, elapsed)
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
        if self.on_finished is not None:  # hook: metrics + Slack (wired in app.py)
            try:
                stored = await asyncio.to_thread(self.store.get, ident)
                if stored is not None:
                    await self.on_finished(stored)
            except Exception:
                log.exception("investigation %s: on_finished hook failed", ident)

    def _store_result(
        self, ident: str, record: Investigation, result: Result, run: RunLog, elapsed: float
    ) -> None:
        """Store the run (on the store's thread: a large record takes a while to encode)."""
        retry = result.llm_unavailable and self.investigator.settings.reinvestigate
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
                "analysis": result.analysis,
                "raw_text": result.raw_text,
                "duration_s": elapsed,
                "llm_retry": retry,
            }
        )
        self.store.finish(done)
