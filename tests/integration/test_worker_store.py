"""The worker and its store: store calls never stall the event loop, and a store that
refuses the result leaves the investigation ``failed`` with the reason, never ``running``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sre_agent.agent import Investigator
from sre_agent.alerts import parse_payload
from sre_agent.backends import make_deps
from sre_agent.models import Investigation
from sre_agent.prompts import load_prompts
from sre_agent.store import Store
from sre_agent.worker import Worker
from tests.conftest import EXAMPLES
from tests.support.fake_ollama import answer_json
from tests.support.model_scripts import analysis_from

CRASH = parse_payload(json.loads((EXAMPLES / "group-firing-homepage.json").read_text())).alerts[1]


@asynccontextmanager
async def worker_for(settings) -> AsyncIterator[tuple[Store, Worker]]:
    store = Store(settings.database_path)
    store.open()
    deps = make_deps(settings)
    try:
        investigator = Investigator(settings, load_prompts(), deps)
        yield store, Worker(store, investigator, concurrency=1, timeout=30)
    finally:
        store.close()
        if deps.kube is not None:
            deps.kube.close()


async def heartbeat(ticks: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.01)


async def test_a_locked_database_does_not_stall_the_event_loop(make_settings, ollama):
    """Another writer (the chat checkpointer, a second replica) holds SQLite's write lock
    for a second while the run is stored: the worker waits in a thread, the loop runs on."""
    settings = make_settings()
    other = sqlite3.connect(settings.database_path, check_same_thread=False, isolation_level=None)
    held = threading.Event()
    ticks: list[float] = []
    window: list[int] = []  # heartbeats counted as the lock is taken, and as it is let go

    def commit() -> None:
        window.append(len(ticks))
        other.execute("COMMIT")

    def answer_and_lock(request: dict[str, Any]):
        other.execute("BEGIN IMMEDIATE")  # taken as the model answers, before the finish
        window.append(len(ticks))
        held.set()
        threading.Timer(1.0, commit).start()
        return answer_json(analysis_from(request))

    ollama.enqueue(answer_and_lock)
    async with worker_for(settings) as (store, worker):
        record, _ = store.create_or_get(CRASH)
        stop = asyncio.Event()
        beat = asyncio.create_task(heartbeat(ticks, stop))
        await worker.process(record.id)
        stop.set()
        await beat
        stored = store.get(record.id)
    other.close()
    assert held.is_set()
    assert stored is not None and stored.status == "completed", stored
    # A heartbeat every 10 ms: about 100 in the held second if the loop ran on, none at
    # all while the store waited for the lock if it waited on the loop.
    beats = window[1] - window[0]
    assert beats >= 10, f"the event loop beat {beats} times in the second the store waited"


async def test_a_full_disk_when_storing_leaves_the_run_failed_with_the_reason(
    make_settings, ollama
):
    settings = make_settings(num_predict=100_000)  # the large answer is not cut short

    def answer_and_fill_the_disk(request: dict[str, Any]):
        # From now on the database may not grow (SQLite's own limit, on the store's
        # connection): the small status update fits, the whole record does not.
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]  # noqa: SLF001
        store._db.execute(f"PRAGMA max_page_count={pages}")  # noqa: SLF001
        analysis = analysis_from(request)
        # A large record: needs new pages (words that do not loop: a loop is stopped).
        analysis["impact"] = " ".join(f"service {n} is affected," for n in range(10_000))
        return answer_json(analysis)

    ollama.enqueue(answer_and_fill_the_disk)
    finished: list[Investigation] = []

    async def on_finished(record: Investigation) -> None:
        finished.append(record)

    async with worker_for(settings) as (store, worker):
        record, _ = store.create_or_get(CRASH)
        worker.on_finished = on_finished
        worker.submit(record.id)
        await worker.start()
        stored = await worker.wait(record.id, 20)
        await worker.stop()
    assert stored is not None
    assert stored.status == "failed", stored.status
    assert "the result could not be stored" in stored.status_reason
    assert "database or disk is full" in stored.status_reason
    assert [r.status for r in finished] == ["failed"]  # the hook saw the final state
