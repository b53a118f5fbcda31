"""Retention (SRE_AGENT_RETENTION_DAYS): finished investigations older than that are
deleted in the background, with their feedback, index rows and chat; those whose cause a
person confirmed or gave are kept for SRE_AGENT_RETENTION_CONFIRMED_DAYS (what was
learned outlives what was only guessed). Active investigations are never pruned."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from sre_agent.settings import Settings
from sre_agent.store import Store

log = logging.getLogger(__name__)

#: Seconds between prunes (the first runs a minute after start).
INTERVAL = 3600.0
FIRST = 60.0


class Retention:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        forget: Callable[[Sequence[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.settings, self.store, self.forget = settings, store, forget
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.retention_days > 0

    def cutoffs(self, now: datetime) -> tuple[str, str]:
        """(before, confirmed_before) as stored timestamps."""
        days = self.settings.retention_days
        kept = max(days, self.settings.retention_confirmed_days)
        if self.settings.retention_confirmed_days == 0:
            kept = 365_000  # confirmed: forever
        return (
            (now - timedelta(days=days)).isoformat(timespec="milliseconds"),
            (now - timedelta(days=kept)).isoformat(timespec="milliseconds"),
        )

    async def prune(self, now: datetime | None = None) -> list[str]:
        """One prune; the ids deleted."""
        if not self.enabled:
            return []
        before, confirmed = self.cutoffs(now or datetime.now(UTC))
        ids = await self.store.call(self.store.prune, before, confirmed)
        if ids and self.forget is not None:
            await self.forget(ids)
        if ids:
            log.info(
                "retention: %d investigation(s) older than %d day(s) deleted"
                " (SRE_AGENT_RETENTION_DAYS)",
                len(ids),
                self.settings.retention_days,
            )
        return ids

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST)
        while True:
            try:
                await self.prune()
            except Exception:  # the store failed: next hour
                log.exception("retention: prune failed")
            await asyncio.sleep(INTERVAL)
