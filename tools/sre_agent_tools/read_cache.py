"""A few seconds' memory of identical reads, shared by the investigations of a storm.

When a node fails, thirty alerts' evidence walks read the same node, list the same pods
on it and the same events, within a second or two. Each read is admitted (namespace
scope, no Secrets) by its caller first; only then does it ask here, so a cached answer
never reaches an investigation that could not have read it itself. Identical reads in
flight at once share one request (single flight); an answer is reused for ``ttl``
seconds, then read again. Failures are not kept: the next caller asks the server.

What is kept is the body as the server sent it, in this process's memory only; it is
masked where it is decoded, as before (:func:`sre_agent_tools.kube_api.get_json`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

__all__ = ["ReadCache"]


class ReadCache:
    """Bodies by request key for ``ttl`` seconds (at most ``size`` of them, or
    ``max_bytes`` in all); ``ttl`` 0 keeps nothing but still shares reads in flight."""

    def __init__(self, ttl: float, size: int = 256, max_bytes: int = 32 * 2**20) -> None:
        self.ttl = ttl
        self.size = size
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._flying: dict[Hashable, tuple[asyncio.AbstractEventLoop, asyncio.Future[bytes]]] = {}
        #: Reads answered from memory or by a read in flight, and reads sent.
        self.hits = 0
        self.misses = 0

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The body for ``key``: kept, in flight, or ``fetch()``-ed now."""
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None:
            if kept[0] > now:
                self._kept.move_to_end(key)
                self.hits += 1
                return kept[1]
            self._drop(key)
        loop = asyncio.get_running_loop()
        flying = self._flying.get(key)
        if flying is not None and flying[0] is loop:
            await asyncio.wait({flying[1]})  # our own cancellation still cancels us
            if not flying[1].cancelled():
                self.hits += 1
                return flying[1].result()  # its failure is ours too
            # the read we waited on was cancelled (its investigation ended): read ourselves
        self.misses += 1
        future: asyncio.Future[bytes] = loop.create_future()
        self._flying[key] = (loop, future)
        try:
            body = await fetch()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(body)
            if self.ttl > 0 and len(body) <= self.max_bytes // 4:
                self._keep(key, time.monotonic() + self.ttl, body)
            return body
        finally:
            if self._flying.get(key, (None, None))[1] is future:
                del self._flying[key]

    def _keep(self, key: Hashable, expires: float, body: bytes) -> None:
        self._drop(key)
        self._kept[key] = (expires, body)
        self._bytes += len(body)
        while self._kept and (len(self._kept) > self.size or self._bytes > self.max_bytes):
            self._drop(next(iter(self._kept)))

    def _drop(self, key: Hashable) -> None:
        gone = self._kept.pop(key, None)
        if gone is not None:
            self._bytes -= len(gone[1])
