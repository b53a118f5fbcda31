"""How many questions chat takes: per user a rate, and across the process a cap on the
chats being answered at once (each holds the model server, usually one GPU).

A question over either limit is refused at once with a wait (the route answers 429 and
``Retry-After``), never queued: a queue behind a busy GPU only grows, and the person
waiting cannot tell a slow answer from a lost one.

- **Rate**: a token bucket per user of ``SRE_AGENT_CHAT_RATE_PER_MINUTE`` questions,
  refilled evenly over a minute, so a burst of that many is allowed and then one every
  ``60 / rate`` seconds. Buckets live in memory (one process serves the API), at most
  :data:`MAX_USERS` of them: a bucket refilled to full is the same as none and is
  dropped, and past the bound the least recently seen user is forgotten (so a flood of
  addresses costs memory in proportion to the bound, not to the flood).
- **Busy**: at most ``SRE_AGENT_CHAT_MAX_CONCURRENT`` :class:`Slot` s are held; a
  streamed answer holds its slot until the stream ends or the client goes away.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

#: Users (token names, proxy users, or addresses of anonymous clients) remembered at once.
MAX_USERS = 10_000
#: Retry-After for a question refused because every slot is taken: answers take seconds
#: to minutes, and a client that retries sooner only gets refused again.
BUSY_RETRY_SECONDS = 5

Reason = Literal["rate", "busy"]


class ChatRefused(Exception):
    """A question over a limit; ``retry_after`` is whole seconds, at least 1."""

    def __init__(self, reason: Reason, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = max(1, retry_after)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Slot:
    """One chat being answered; :meth:`release` (idempotent) frees it."""

    def __init__(self, limits: ChatLimits) -> None:
        self._limits: ChatLimits | None = limits

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            limits.active -= 1

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ChatLimits:
    """The rate per user and the cap on chats at once. Used from the event loop only
    (one thread), so a check and the take that follows it cannot interleave."""

    def __init__(
        self,
        rate_per_minute: int,
        max_concurrent: int,
        *,
        max_users: int = MAX_USERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(rate_per_minute)
        self.refill = rate_per_minute / 60.0  # tokens per second
        self.max_concurrent = max_concurrent
        self.max_users = max_users
        self.active = 0
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def users(self) -> int:
        """Buckets held now (bounded by ``max_users``)."""
        return len(self._buckets)

    def admit(self, user: str) -> Slot:
        """A slot for one question of ``user``, or :class:`ChatRefused`.

        A question refused as busy costs the user nothing; one admitted costs a token
        whatever becomes of it (a 404 too: probing ids is asking questions).
        """
        now = self._clock()
        bucket = self._level(user, now)
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / self.refill)
            raise ChatRefused(
                "rate",
                wait,
                f"too many questions: at most {self.capacity:.0f} a minute per user"
                f" (SRE_AGENT_CHAT_RATE_PER_MINUTE); ask again in {max(1, wait)} s",
            )
        if self.active >= self.max_concurrent:
            raise ChatRefused(
                "busy",
                BUSY_RETRY_SECONDS,
                f"the model is busy answering {self.active} other question(s)"
                f" (SRE_AGENT_CHAT_MAX_CONCURRENT={self.max_concurrent});"
                f" ask again in {BUSY_RETRY_SECONDS} s",
            )
        bucket.tokens -= 1.0
        self.active += 1
        return Slot(self)

    def _level(self, user: str, now: float) -> _Bucket:
        """``user``'s bucket refilled to ``now``, as the most recently seen; idle and
        excess buckets are dropped on the way."""
        bucket = self._buckets.pop(user, None)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.refill)
            bucket.at = now
        self._forget(now)
        self._buckets[user] = bucket
        return bucket

    def _forget(self, now: float) -> None:
        """Drop the least recently seen buckets while they are full again (no different
        from a new user's), and any beyond the bound to make room for one more."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            refilled = oldest.tokens + (now - oldest.at) * self.refill >= self.capacity
            if not refilled and len(self._buckets) < self.max_users:
                break
            self._buckets.popitem(last=False)
