"""The live feed's poller and streams against a real store: a client that does not read
is ended (and the others go on), one too far behind is told to reload, and each batch
ends with the cursor a reconnect resumes from."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sre_agent.alerts import Alert
from sre_agent.store import Store
from sre_agent.web.feed import Batch, Feed, Filters, frames


def alert(name: str = "TargetDown", namespace: str = "web") -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": name, "severity": "warning", "namespace": namespace},
        startsAt=datetime.now(UTC),
        fingerprint=uuid.uuid4().hex,
    )


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "db.sqlite")
    store.open()
    yield store
    store.close()


async def frame_of(stream: AsyncIterator[bytes], timeout: float = 3.0) -> bytes:
    return await asyncio.wait_for(anext(stream), timeout)


async def test_a_client_that_does_not_read_is_ended_and_the_others_go_on(store):
    feed = Feed(store, poll_seconds=0.02, queue_batches=2)
    await feed.start()
    try:
        slow, fast = feed.stream(Filters()), feed.stream(Filters())
        assert (await frame_of(slow)).startswith(b"retry:")
        assert (await frame_of(fast)).startswith(b"retry:")
        assert feed.streams == 2
        made = []
        for n in range(4):  # one batch each: more than the slow one's queue holds
            made.append(store.create_or_get(alert(f"A{n}"))[0].id)
            got = await frame_of(fast)
            assert made[-1].encode() in got
        assert feed.streams == 1  # the slow one was dropped, not waited for
        with pytest.raises(StopAsyncIteration):  # it ends (its client reconnects)
            await frame_of(slow)
        made.append(store.create_or_get(alert("Later"))[0].id)
        assert made[-1].encode() in await frame_of(fast)
    finally:
        await feed.stop()


async def test_a_client_too_far_behind_is_told_to_reload(store):
    feed = Feed(store, poll_seconds=0.02, max_catch_up=2)
    await feed.start()
    try:
        for n in range(3):
            store.create_or_get(alert(f"A{n}"))
        for _ in range(100):
            if feed.cursor >= 3:
                break
            await asyncio.sleep(0.02)
        stream = feed.stream(Filters(), after=0)
        assert (await frame_of(stream)).startswith(b"retry:")
        assert await frame_of(stream) == b"event: reset\ndata: {}\n\n"
        with pytest.raises(StopAsyncIteration):
            await frame_of(stream)
    finally:
        await feed.stop()


async def test_stop_ends_every_stream_and_refuses_new_ones(store):
    feed = Feed(store, poll_seconds=0.02)
    await feed.start()
    stream = feed.stream(Filters())
    await frame_of(stream)
    waiting = asyncio.ensure_future(frame_of(stream))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(feed.stop(), 1.0)
    with pytest.raises(StopAsyncIteration):
        await waiting
    with pytest.raises(StopAsyncIteration):
        await frame_of(feed.stream(Filters()))


def test_a_batch_with_nothing_for_a_stream_still_moves_its_cursor(store):
    record, _ = store.create_or_get(alert("Elsewhere", namespace="homepage"))
    batch = Feed(store).read(0)
    assert [c.record.id for c in batch.changes] == [record.id]

    only_web = frames(batch, Filters(namespace="web"))
    assert only_web == [
        f'event: gone\ndata: {{"id": "{record.id}"}}\nid: {batch.cursor}\n\n'.encode()
    ]
    other_id = frames(batch, Filters(id="someone-else"))
    assert other_id == [f"id: {batch.cursor}\n\n".encode()]
    assert frames(Batch(7, []), Filters()) == [b"id: 7\n\n"]


def test_text_filter_matches_as_the_store_does(store):
    record, _ = store.create_or_get(alert("KubePodCrashLooping"))
    batch = Feed(store).read(0)
    for text in ("crashloop", "KUBEPOD", "web"):
        assert Filters(text=text).matches(batch.changes[0]), text
        assert [r.id for r in store.list(text=text)] == [record.id], text
    assert not Filters(text="nowhere").matches(batch.changes[0])
    assert store.list(text="nowhere") == []
