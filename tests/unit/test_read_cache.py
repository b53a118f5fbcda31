"""Identical Kubernetes reads in a storm share one request, after each caller's scope
check; answers are kept seconds, failures not at all.

Against a fresh fake API server per test through the real ``kubernetes`` client, so
the request counts are the server's own log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sre_agent_tools import kubernetes as k8s
from sre_agent_tools.deps import ToolDeps
from sre_agent_tools.read_cache import ReadCache

from tests.support.fake_kube import FakeKube, homepage_world
from tests.unit.test_kube_scope import CRASHING, NS, OTHER


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    world = homepage_world()
    world.load([OTHER])
    yield world
    world.stop()


@pytest.fixture
def client(fake: FakeKube) -> Iterator[object]:
    made = fake.api_client()
    yield made
    made.close()


async def test_a_storm_of_identical_reads_sends_each_request_once(fake, client):
    alone = await k8s.describe(ToolDeps(kube=client, timeout=5), "pod", CRASHING, NS)
    one_walk = len(fake.requests)
    assert alone.status == "ok" and one_walk >= 2  # the pod, its events, …
    fake.requests.clear()
    shared = ToolDeps(kube=client, timeout=5, reads=ReadCache(ttl=5.0))
    copies = [shared.scoped({"labels": {"namespace": NS}}, []) for _ in range(8)]
    results = await asyncio.gather(*(k8s.describe(d, "pod", CRASHING, NS) for d in copies))
    assert [r.text for r in results] == [alone.text] * 8
    assert len(fake.requests) == one_walk
    assert shared.reads.hits == 7 * one_walk and shared.reads.misses == one_walk


async def test_an_answer_is_read_again_once_it_is_older_than_the_ttl(fake, client):
    deps = ToolDeps(kube=client, timeout=5, reads=ReadCache(ttl=0.2))
    await k8s.describe(deps, "pod", CRASHING, NS)
    one_walk = len(fake.requests)
    await k8s.describe(deps, "pod", CRASHING, NS)
    assert len(fake.requests) == one_walk
    await asyncio.sleep(0.3)
    await k8s.describe(deps, "pod", CRASHING, NS)
    assert len(fake.requests) == 2 * one_walk


async def test_the_scope_is_checked_before_the_cache_answers(fake, client):
    anyone = ToolDeps(kube=client, timeout=5, reads=ReadCache(ttl=5.0))
    read = await k8s.describe(anyone, "pod", "coredns-1", "kube-system")
    assert read.status == "ok" and "worker-1" in read.text  # its node
    before = len(fake.requests)
    scoped = anyone.scoped({"labels": {"namespace": NS}}, [])  # shares the cache
    assert scoped.reads is anyone.reads
    refused = await k8s.describe(scoped, "pod", "coredns-1", "kube-system")
    assert refused.status == "error" and "worker-1" not in refused.text
    assert "kube-system" in refused.text and len(fake.requests) == before


async def test_a_secret_is_refused_whatever_the_cache_holds(fake, client):
    deps = ToolDeps(kube=client, timeout=5, reads=ReadCache(ttl=5.0))
    refused = await k8s.describe(deps, "secret", "db-password", NS)
    assert refused.status == "error" and fake.requests == []


async def test_a_failure_is_not_kept_the_next_caller_asks_again() -> None:
    cache = ReadCache(ttl=5.0)
    calls = 0

    async def flaky() -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("connection reset")
        return b"{}"

    with pytest.raises(OSError):
        await cache.get("k", flaky)
    assert await cache.get("k", flaky) == b"{}"
    assert await cache.get("k", flaky) == b"{}"
    assert calls == 2


async def test_waiters_share_a_failure_and_read_again_after_a_cancel() -> None:
    cache = ReadCache(ttl=5.0)
    gate = asyncio.Event()
    calls = 0

    async def slow() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise TimeoutError("the API server did not answer")

    first = asyncio.create_task(cache.get("k", slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get("k", slow))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, second):
        with pytest.raises(TimeoutError):
            await task
    assert calls == 1  # the waiter shared the one read and its failure

    gate.clear()

    async def answer() -> bytes:
        return b"body"

    leader = asyncio.create_task(cache.get("c", slow))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.get("c", answer))
    await asyncio.sleep(0)
    leader.cancel()  # its investigation ended: the follower reads for itself
    assert await follower == b"body"
    assert leader.cancelled()


def test_the_cache_stays_within_its_bounds() -> None:
    cache = ReadCache(ttl=60.0, size=3, max_bytes=4000)

    async def fill() -> None:
        for n in range(10):
            await cache.get(n, lambda n=n: _body(n, 900))

    asyncio.run(fill())
    assert len(cache._kept) <= 3 and cache._bytes <= 4000
    assert list(cache._kept) == [7, 8, 9]  # the newest are kept


async def _body(n: int, size: int) -> bytes:
    return bytes([n % 256]) * size


def test_copies_of_the_deps_share_one_cache() -> None:
    deps = ToolDeps(reads=ReadCache(ttl=1.0))
    assert replace(deps, timeout=1).reads is deps.reads
