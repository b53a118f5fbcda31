"""The live feed of investigations: ``GET /events/investigations`` as Server-Sent Events.

One poller per process asks the store what changed (:meth:`Store.changed`, in a thread,
about every second) and hands each batch to every open stream; each stream keeps what
matches its filters and sends it as an ``investigation`` event ``{"id", "status",
"html"}``, the list row rendered here, once per change, for all. A changed record that
no longer matches a stream's filters is sent as ``gone`` ``{"id"}`` (a list filtered to
``running`` drops a row that finished). Each batch ends with the change cursor as the
SSE ``id``, so a browser that reconnects (``Last-Event-ID``) is sent what it missed;
a page passes the cursor it was rendered at (``after``) for the same reason.

A stream whose queue is full (a client that does not read) is ended, not waited for: it
reconnects and catches up from its last cursor. A store error is logged and retried; the
poller never takes the event loop's time for SQLite or rendering. At shutdown
:meth:`Feed.close` ends every stream, so the server is not held open by them (uvicorn
waits for open responses before the lifespan ends: a stream also ends by itself after
:data:`LIFETIME_SECONDS`, and the browser reconnects).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cached_property

from fastapi.sse import format_sse_event

from sre_agent import web
from sre_agent.alerts import mask_label
from sre_agent.models import Investigation
from sre_agent.rows import dump
from sre_agent.store import Store
from sre_agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds between the poller's questions to the store.
POLL_SECONDS = 1.0
#: Seconds between keep-alive comments on an idle stream (proxies close silent ones).
KEEPALIVE_SECONDS = 15.0
#: Records per store question.
BATCH = 100
#: Batches a stream may have waiting before it is ended as too slow.
QUEUE_BATCHES = 64
#: Changes a reconnecting stream is sent before it is told to reload instead.
MAX_CATCH_UP = 1000
#: What the browser waits before reconnecting (milliseconds).
RETRY_MS = 2000
#: Seconds a stream lasts before it ends and the browser reconnects (and catches up):
#: a bound on what an open stream can hold up should shutdown not end it first.
LIFETIME_SECONDS = 25.0


def _lower(text: str) -> str:
    """ASCII-only lower case, as SQLite's LIKE compares: the feed matches as the list."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Change:
    """One record as it changed, with its list row and the texts ``text`` searches
    (worked out only when a stream filters by text, then once for all of them)."""

    record: Investigation
    html: str

    @cached_property
    def texts(self) -> tuple[str, ...]:
        return _texts(self.record)


@dataclass(frozen=True)
class Batch:
    cursor: int
    changes: list[Change]


@dataclass(frozen=True)
class Filters:
    """The list's filters (:meth:`Store.list`'s), and one record's ``id``."""

    status: str | None = None
    alertname: str | None = None
    namespace: str | None = None
    severity: str | None = None
    text: str | None = None
    id: str | None = None

    def matches(self, change: Change) -> bool:
        record = change.record
        for value, wanted in (
            (record.status, self.status),
            (record.alertname, mask_label("alertname", self.alertname)),
            (record.namespace, mask_label("namespace", self.namespace)),
            (record.severity, mask_label("severity", self.severity)),
        ):
            if wanted and value != wanted:
                return False
        if self.text:
            needle = _lower(self.text)
            return any(needle in text for text in change.texts)
        return True


def _texts(record: Investigation) -> tuple[str, ...]:
    """The columns ``Store.list(text=...)`` searches, as the store holds them."""
    texts = [record.alertname, record.namespace or "", dump("alert", record.alert)]
    if record.analysis is not None:
        texts.append(dump("analysis", record.analysis))
    texts.append(record.status_reason or "")
    return tuple(_lower(t) for t in texts)


class _Stream:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(size)


class Feed:
    """The poller and the open streams (one per process: :mod:`sre_agent.services`)."""

    def __init__(
        self,
        store: Store,
        render_row: Callable[[Investigation], str] | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        queue_batches: int = QUEUE_BATCHES,
        max_catch_up: int = MAX_CATCH_UP,
        lifetime_seconds: float = LIFETIME_SECONDS,
    ) -> None:
        self.store = store
        self.render_row = render_row or web.render_row
        self.poll_seconds = poll_seconds
        self.keepalive_seconds = keepalive_seconds
        self.queue_batches = queue_batches
        self.max_catch_up = max_catch_up
        self.lifetime_seconds = lifetime_seconds
        #: The last change handed to the streams (a page is rendered "as of" it).
        self.cursor = 0
        self._streams: set[_Stream] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def start(self) -> None:
        self.cursor, _ = await asyncio.to_thread(self.store.changed, -1)
        self._task = asyncio.create_task(self._poll(), name="sre-agent-feed")

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    def close(self) -> None:
        """End every stream now, and refuse new ones (shutdown)."""
        self._closed = True
        for stream in list(self._streams):
            self._end(stream)

    # --- the poller ------------------------------------------------------------
    def read(self, after: int) -> Batch:
        """What changed since ``after``, rendered (blocking: run it in a thread)."""
        cursor, records = self.store.changed(after, BATCH)
        return Batch(cursor, [Change(r, self.render_row(r)) for r in records])

    async def _poll(self) -> None:
        failing = 0
        while True:
            try:
                if self._streams:
                    batch = await asyncio.to_thread(self.read, self.cursor)
                else:  # nobody listens: only keep up, render nothing
                    latest = (await asyncio.to_thread(self.store.changed, -1))[0]
                    if self._streams:  # one came meanwhile: it reads from the cursor it
                        continue  # was given, so a change made as it came is not skipped
                    batch = Batch(latest, [])
            except Exception as exc:  # the store is busy or broken: say so once, retry
                failing += 1
                if failing == 1:
                    log.warning("live feed: reading changes failed (retrying): %s", exc)
                await asyncio.sleep(min(self.poll_seconds * failing, 5.0))
                continue
            if failing:
                log.info("live feed: reading changes works again after %d failures", failing)
                failing = 0
            if batch.changes:
                self._publish(batch)
            self.cursor = max(self.cursor, batch.cursor)
            if len(batch.changes) < BATCH:  # a full batch: more are waiting, ask at once
                await asyncio.sleep(self.poll_seconds)

    def _publish(self, batch: Batch) -> None:
        for stream in list(self._streams):
            try:
                stream.queue.put_nowait(batch)
            except asyncio.QueueFull:
                log.info("live feed: a client did not keep up; its stream is ended")
                self._end(stream)

    def _end(self, stream: _Stream) -> None:
        """The stream ends after what it has read: its client reconnects and catches up."""
        self._streams.discard(stream)
        while not stream.queue.empty():
            stream.queue.get_nowait()
        stream.queue.put_nowait(None)

    # --- one stream ------------------------------------------------------------
    async def stream(self, filters: Filters, after: int | None = None) -> AsyncIterator[bytes]:
        """The SSE frames of one client: what changed after ``after`` (default: now)."""
        if self._closed:
            return
        stream = _Stream(self.queue_batches)
        self._streams.add(stream)
        # As of now, with no await between: every later batch is in the stream's queue.
        now = self.cursor
        sent = now if after is None else after
        ends = asyncio.get_running_loop().time() + self.lifetime_seconds
        try:
            yield format_sse_event(retry=RETRY_MS)
            if sent < now:
                try:
                    caught_up = await self._catch_up(filters, sent, now)
                except Exception as exc:  # ended: the client retries, from where it was
                    log.warning("live feed: catching a client up failed: %s", exc)
                    return
                if caught_up is None:
                    yield format_sse_event(event="reset", data_str="{}")
                    return
                for frame, cursor in caught_up:
                    yield frame
                    sent = cursor
            while (left := ends - asyncio.get_running_loop().time()) > 0:
                try:
                    async with asyncio.timeout(min(self.keepalive_seconds, left)):
                        batch = await stream.queue.get()
                except TimeoutError:
                    yield format_sse_event(comment="keep-alive")
                    continue
                if batch is None:
                    return
                if batch.cursor <= sent:
                    continue  # sent while catching up
                for frame in frames(batch, filters):
                    yield frame
                sent = batch.cursor
        finally:
            self._streams.discard(stream)

    async def _catch_up(
        self, filters: Filters, after: int, until: int
    ) -> list[tuple[bytes, int]] | None:
        """The frames of the changes after ``after`` up to ``until`` (each with the cursor
        it brings the client to); None when they are too many: the page should reload."""
        out: list[tuple[bytes, int]] = []
        seen = 0
        cursor = after
        while cursor < until:
            batch = await asyncio.to_thread(self.read, cursor)
            if not batch.changes:
                break
            seen += len(batch.changes)
            if seen > self.max_catch_up:
                return None
            out += [(frame, batch.cursor) for frame in frames(batch, filters)]
            cursor = batch.cursor
        return out


def frames(batch: Batch, filters: Filters) -> list[bytes]:
    """A batch as one stream sees it; the last frame carries the cursor as its ``id``."""
    events: list[tuple[str, dict[str, str]]] = []
    for change in batch.changes:
        record = change.record
        if filters.id is not None and record.id != filters.id:
            continue
        if filters.matches(change):
            data = {"id": record.id, "status": record.status, "html": change.html}
            events.append(("investigation", data))
        elif filters.id is None:
            events.append(("gone", {"id": record.id}))
    out = [format_sse_event(event=kind, data_str=json.dumps(data)) for kind, data in events[:-1]]
    last = events[-1] if events else None
    cursor = str(batch.cursor)
    if last is None:
        out.append(format_sse_event(id=cursor))
    else:
        out.append(format_sse_event(event=last[0], data_str=json.dumps(last[1]), id=cursor))
    return out
